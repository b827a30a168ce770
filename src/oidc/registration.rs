//! Dynamic client registration (RFC 7591) for agents: an MCP client, a CLI or an IDE
//! registers itself, then runs the authorization code flow with PKCE like any client.
//!
//! What a self-registered client may be is narrower than what an operator can register:
//! the authorization code (with refresh) and device grants only, never a service's own
//! tokens or token exchange; the standard scopes and the scopes of the protected
//! resources only; never consent skipped. Its redirect URIs pass the same checks as an
//! operator's (https, or http on a loopback host, or a private-use scheme for a public
//! client). Unknown metadata is ignored (RFC 7591 §2). A registered client that obtains
//! no tokens for `[oauth] registered_client_ttl` is deleted.

use serde_json::{Value, json};

use super::OidcProvider;
use super::agents::Registration;
use super::clients::{AUTHORIZATION_CODE, ClientSpec, DEVICE_CODE, REFRESH_TOKEN};
use super::error::OAuthError;
use crate::audit::Context;
use crate::authz::STANDARD_SCOPES;
use crate::clock;
use crate::error::Error;
use crate::secret;
use crate::store::ClientRecord;

/// The largest registration request read (RFC 7591 sets none; real ones are < 2 KiB).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// A registration request as sent (RFC 7591 §2), the fields Tollgate uses.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    pub client_name: Option<String>,
    pub scope: Option<String>,
}

impl ClientMetadata {
    /// Parses a request body; every refusal is `invalid_client_metadata` (or
    /// `invalid_redirect_uri`), as RFC 7591 §3.2.2 names them.
    pub fn parse(body: &[u8]) -> Result<ClientMetadata, OAuthError> {
        if body.len() > MAX_METADATA_BYTES {
            return Err(OAuthError::invalid_client_metadata(format!(
                "the metadata is larger than {MAX_METADATA_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| OAuthError::invalid_client_metadata("the body must be a JSON object"))?;
        if !value.is_object() {
            return Err(OAuthError::invalid_client_metadata(
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| OAuthError::invalid_client_metadata(format!("malformed metadata: {e}")))
    }
}

/// Why a registration request does not go ahead.
#[derive(Debug)]
pub enum Closed {
    /// Registration is off: the endpoint does not exist.
    Off,
    /// The initial access token is missing or wrong.
    Refused(OAuthError),
}

/// Whether a registration may go ahead under `registration`, for a request that
/// presented `bearer` (RFC 7591 §3: the initial access token, compared by digest).
pub fn admit(registration: &Registration, bearer: Option<&str>) -> Result<(), Closed> {
    match registration {
        Registration::Off => Err(Closed::Off),
        Registration::Open => Ok(()),
        Registration::Token { digest } => {
            if bearer.is_some_and(|t| secret::constant_time_eq(&secret::digest_hex(t), digest)) {
                Ok(())
            } else {
                Err(Closed::Refused(OAuthError::invalid_token(
                    "registration needs the initial access token as a Bearer token",
                )))
            }
        }
    }
}

/// The scopes a self-registered client may hold: the standard ones and those the
/// protected resources require.
fn registrable_scopes(resource_scopes: &[String]) -> Vec<String> {
    let mut all: Vec<String> = STANDARD_SCOPES.iter().map(|s| s.to_string()).collect();
    for s in resource_scopes {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all
}

/// The client an operator would have registered for `m`, or why not.
pub fn to_spec(m: ClientMetadata, resource_scopes: &[String]) -> Result<ClientSpec, OAuthError> {
    let public = match m.token_endpoint_auth_method.as_deref() {
        // RFC 7591 §2 makes client_secret_basic the default.
        None | Some("client_secret_basic") | Some("client_secret_post") => false,
        Some("none") => true,
        Some(other) => {
            return Err(OAuthError::invalid_client_metadata(format!(
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post, not '{}'",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let mut grants = if m.grant_types.is_empty() {
        vec![AUTHORIZATION_CODE.to_string()]
    } else {
        m.grant_types
    };
    grants.sort();
    grants.dedup();
    if let Some(bad) = grants
        .iter()
        .find(|g| ![AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE].contains(&g.as_str()))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant type '{}' cannot be registered: authorization_code, refresh_token and the device code grant can",
            bad.chars().take(60).collect::<String>()
        )));
    }
    if m.response_types.iter().any(|r| r != "code") {
        return Err(OAuthError::invalid_client_metadata(
            "response_types may only be [\"code\"]",
        ));
    }
    let allowed = registrable_scopes(resource_scopes);
    let scopes: Vec<String> = match m.scope.as_deref() {
        None => allowed,
        Some(raw) => {
            let asked: Vec<String> = raw.split_ascii_whitespace().map(str::to_string).collect();
            if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
                return Err(OAuthError::invalid_client_metadata(format!(
                    "scope '{}' is not available to registered clients",
                    bad.chars().take(60).collect::<String>()
                )));
            }
            asked
        }
    };
    let name = m.client_name.unwrap_or_else(|| "Unnamed client".into());
    Ok(ClientSpec {
        id: None,
        name,
        redirect_uris: m.redirect_uris,
        post_logout_redirect_uris: Vec::new(),
        public,
        grant_types: grants,
        scopes,
        skip_consent: false,
        id_token_signed_response_alg: None,
    })
}

/// The registration response (RFC 7591 §3.2.1).
pub fn response(client: &ClientRecord, secret: Option<&str>) -> Value {
    let mut out = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": if client.redirect_uris.is_empty() { json!([]) } else { json!(["code"]) },
        "token_endpoint_auth_method": if client.is_public() { "none" } else { "client_secret_basic" },
        "scope": client.scopes.join(" "),
    });
    if let Some(secret) = secret {
        out["client_secret"] = secret.into();
        out["client_secret_expires_at"] = 0.into();
    }
    out
}

impl OidcProvider {
    /// Registers a client from its metadata; returns the registration response.
    pub async fn register(
        &self,
        metadata: ClientMetadata,
        resource_scopes: &[String],
        ctx: &Context,
    ) -> Result<Value, OAuthError> {
        let spec = to_spec(metadata, resource_scopes)?;
        match self.clients.register(spec, ctx).await {
            Ok((client, secret)) => Ok(response(&client, secret.as_deref())),
            Err(Error::Invalid { detail, .. }) if detail.contains("redirect URI") => {
                Err(OAuthError::invalid_redirect_uri(detail))
            }
            Err(Error::Invalid { detail, .. }) => Err(OAuthError::invalid_client_metadata(detail)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the registered clients that obtained no tokens for the configured time.
    pub async fn expire_unused_clients(&self, ttl_secs: i64) -> crate::error::Result<usize> {
        let before = clock::now() - ttl_secs;
        let ids = self.store.unused_registered_clients(before).await?;
        let ctx = Context::system();
        for id in &ids {
            self.clients.delete(id, &ctx).await?;
        }
        if !ids.is_empty() {
            tracing::info!(event = "registered_clients_expired", count = ids.len());
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: Value) -> Result<ClientSpec, OAuthError> {
        to_spec(
            ClientMetadata::parse(v.to_string().as_bytes())?,
            &["mcp:tools".into()],
        )
    }

    #[test]
    fn registered_clients_get_code_flows_and_resource_scopes_only() {
        let spec = meta(json!({
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Agent",
            "logo_uri": "ignored",
        }))
        .unwrap();
        assert!(spec.public);
        assert!(spec.scopes.contains(&"mcp:tools".to_string()));
        assert!(!spec.skip_consent);
        for bad in [
            json!({"grant_types": ["client_credentials"]}),
            json!({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"]}),
            json!({"scope": "admin:all"}),
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            json!({"response_types": ["token"]}),
            json!(["not", "an", "object"]),
            json!({"redirect_uris": "not a list"}),
        ] {
            assert_eq!(
                meta(bad.clone()).unwrap_err().code,
                "invalid_client_metadata",
                "{bad}"
            );
        }
        let huge = json!({"client_name": "x".repeat(MAX_METADATA_BYTES)});
        assert_eq!(
            ClientMetadata::parse(huge.to_string().as_bytes())
                .unwrap_err()
                .code,
            "invalid_client_metadata"
        );
    }
}
