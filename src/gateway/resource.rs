//! Protected resources (RFC 9728): a route with `resource = true` is named by the public
//! URL and its path, describes itself in metadata at
//! `/.well-known/oauth-protected-resource<path>`, and points clients there from every
//! refusal (`WWW-Authenticate: Bearer resource_metadata="…"`), so an MCP client can
//! discover the authorization server from a single 401. The tokens it then obtains are
//! bound to the resource (RFC 8707); `authz::policy` checks the binding.

use serde_json::{Value, json};

/// Where protected resources' metadata lives, before the resource's path (RFC 9728 §3.1).
pub const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// The metadata URL of `resource` (`public_url` followed by a path).
pub fn metadata_url(public_url: &str, resource: &str) -> String {
    let path = resource.strip_prefix(public_url).unwrap_or_default();
    format!("{public_url}{METADATA_PREFIX}{path}")
}

/// The resource whose metadata a request path asks for: the path after the well-known
/// prefix, under the public URL. `None` for paths that are not a metadata request.
pub fn resource_of_metadata_path(public_url: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(METADATA_PREFIX)?;
    (rest.starts_with('/') && rest.len() > 1)
        .then(|| format!("{public_url}{}", rest.trim_end_matches('/')))
}

/// The metadata document (RFC 9728 §2): the resource, the one authorization server
/// (Tollgate), the scopes its routes require, and that tokens go in the header only.
pub fn metadata(resource: &str, issuer: &str, scopes: &[&str]) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": [],
    })
}

/// A Bearer challenge with RFC 9728 §5.1's `resource_metadata` and, when the route
/// requires some, the `scope` to ask for (RFC 6750 §3): `existing` is the challenge the
/// refusal already carries (its `error`, if any, stays).
pub fn challenge(existing: Option<&str>, metadata_url: &str, scopes: &[String]) -> String {
    let mut value = existing.unwrap_or(r#"Bearer realm="tollgate""#).to_string();
    value.push_str(&format!(r#", resource_metadata="{metadata_url}""#));
    if !scopes.is_empty() && !value.contains(" scope=") {
        value.push_str(&format!(r#", scope="{}""#, scopes.join(" ")));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_and_paths_round_trip() {
        let public = "https://gw.test";
        let url = metadata_url(public, "https://gw.test/mcp");
        assert_eq!(
            url,
            "https://gw.test/.well-known/oauth-protected-resource/mcp"
        );
        let path = url.strip_prefix(public).unwrap();
        assert_eq!(
            resource_of_metadata_path(public, path).as_deref(),
            Some("https://gw.test/mcp")
        );
        assert_eq!(resource_of_metadata_path(public, METADATA_PREFIX), None);
        assert_eq!(
            resource_of_metadata_path(public, "/.well-known/oauth-protected-resourcex"),
            None
        );
    }

    #[test]
    fn challenges_keep_their_error_and_add_the_pointer() {
        let c = challenge(
            Some(r#"Bearer realm="tollgate", error="invalid_token""#),
            "https://gw.test/.well-known/oauth-protected-resource/mcp",
            &["mcp:tools".to_string()],
        );
        assert_eq!(
            c,
            r#"Bearer realm="tollgate", error="invalid_token", resource_metadata="https://gw.test/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#
        );
    }
}
