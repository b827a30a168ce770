//! Scopes in OAuth requests: parsing (RFC 6749 §3.3), what a client may ask for, and
//! what a user can grant.

use super::error::OAuthError;
use crate::authz::{is_standard_scope, valid_scope};

/// At most this many scopes in one request.
const MAX_SCOPES: usize = 64;

/// Parses a space-separated `scope` parameter: valid scope tokens, duplicates dropped,
/// order kept. An absent or empty parameter is no scopes.
pub fn parse(raw: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !valid_scope(s) {
            return Err(OAuthError::invalid_scope(format!(
                "'{}' is not a valid scope",
                s.chars().take(64).collect::<String>()
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.len() > MAX_SCOPES {
        return Err(OAuthError::invalid_scope("too many scopes"));
    }
    Ok(out)
}

/// Refuses scopes a client is not registered for; the standard OpenID Connect scopes
/// are open to every client that acts for users.
pub fn check_allowed(requested: &[String], allowed: &[String]) -> Result<(), OAuthError> {
    let refused: Vec<&str> = requested
        .iter()
        .filter(|s| !is_standard_scope(s) && !allowed.contains(s))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(OAuthError::invalid_scope(format!(
            "the client may not request: {}",
            refused.join(" ")
        )))
    }
}

/// What a user can grant of `requested`: the standard scopes, and the others only when
/// the user's roles grant them (RFC 6749 §3.3 lets the server issue fewer scopes; the
/// token response says which).
pub fn grantable_by(requested: &[String], user_scopes: &[&str]) -> Vec<String> {
    requested
        .iter()
        .filter(|s| is_standard_scope(s) || user_scopes.contains(&s.as_str()))
        .cloned()
        .collect()
}

/// `scopes` less those the client is no longer registered for (its scopes were narrowed
/// after a request or code was made).
pub fn still_allowed(scopes: &[String], allowed: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| is_standard_scope(s) || allowed.contains(s))
        .cloned()
        .collect()
}

/// Whether every scope of `part` is in `whole`.
pub fn is_subset(part: &[String], whole: &[String]) -> bool {
    part.iter().all(|s| whole.contains(s))
}

/// Whether the space-separated list `list` contains `scope`.
pub fn contains(list: &str, scope: &str) -> bool {
    list.split_ascii_whitespace().any(|s| s == scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parsing_dedupes_and_refuses_bad_tokens() {
        assert_eq!(
            parse(Some("openid  email openid")).unwrap(),
            v(&["openid", "email"])
        );
        assert!(parse(None).unwrap().is_empty());
        assert_eq!(parse(Some("a\"b")).unwrap_err().code, "invalid_scope");
        assert_eq!(parse(Some("a\\b")).unwrap_err().code, "invalid_scope");
    }

    #[test]
    fn clients_get_standard_scopes_and_their_own() {
        let allowed = v(&["docs:read"]);
        assert!(check_allowed(&v(&["openid", "email", "docs:read"]), &allowed).is_ok());
        let err = check_allowed(&v(&["openid", "admin"]), &allowed).unwrap_err();
        assert_eq!(err.code, "invalid_scope");
        assert!(err.description.contains("admin"));
    }

    #[test]
    fn users_grant_only_what_their_roles_hold() {
        let requested = v(&["openid", "docs:read", "docs:write"]);
        assert_eq!(
            grantable_by(&requested, &["docs:read", "profile"]),
            v(&["openid", "docs:read"])
        );
        assert!(is_subset(&v(&["a"]), &v(&["a", "b"])));
        assert!(!is_subset(&v(&["c"]), &v(&["a", "b"])));
        assert!(contains("openid offline_access", "offline_access"));
        assert!(!contains("openid offline", "offline_access"));
    }
}
