//! `[oauth]`: the authorization server's features for agents. Dynamic client
//! registration (RFC 7591), client ID metadata documents, token exchange (RFC 8693) and
//! the device authorization grant (RFC 8628), as configured.

use std::time::Duration;

use serde::Deserialize;

use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};

/// `[oauth]`'s settings for documents.
#[derive(Debug, Clone, Default)]
pub struct DocumentPolicy {
    /// Hosts whose documents are accepted; empty: any public host.
    pub hosts: Vec<String>,
    /// Loopback and private addresses allowed (tests, intranets), and plain http on a
    /// loopback host.
    pub private_addresses: bool,
}

/// Who may register a client (`POST /oauth2/register`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Nobody: the endpoint answers 404 and is not advertised (the default).
    Off,
    /// Anyone who can reach it (rate-limited per address: `client-register-ip`).
    Open,
    /// Whoever presents this initial access token (RFC 7591 §3): its SHA-256, hex.
    Token { digest: String },
}

/// One `[[oauth.token_exchange]]`: `client` may exchange a subject token for a token
/// for one of `audiences`, with at most `scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRule {
    pub client: String,
    /// Resource identifiers, or the public URL for Tollgate itself.
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub registration: Registration,
    /// A registered client that obtained no token for this long is deleted.
    pub registered_client_ttl: Duration,
    /// An HTTPS URL as `client_id` names a client ID metadata document.
    pub client_id_metadata: bool,
    /// Where documents may come from (`metadata_hosts`, `metadata_private_addresses`).
    pub documents: DocumentPolicy,
    pub token_exchange: Vec<ExchangeRule>,
    /// How long a device code and its user code stay valid.
    pub device_code_ttl: Duration,
    /// The least time between two polls of the token endpoint by a device.
    pub device_poll_interval: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            registration: Registration::Off,
            registered_client_ttl: Duration::from_secs(30 * 86_400),
            client_id_metadata: false,
            documents: Default::default(),
            token_exchange: Vec::new(),
            device_code_ttl: Duration::from_secs(600),
            device_poll_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    pub dynamic_registration: Option<String>,
    pub registration_token: Option<String>,
    pub registered_client_ttl: Option<DurationValue>,
    pub client_id_metadata: Option<bool>,
    pub metadata_hosts: Option<Vec<String>>,
    pub metadata_private_addresses: Option<bool>,
    #[serde(default)]
    pub token_exchange: Vec<ExchangeSpec>,
    pub device_code_ttl: Option<DurationValue>,
    pub device_poll_interval: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSpec {
    pub client: String,
    pub audiences: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[oauth]`, resolved. `token` is `TOLLGATE_OAUTH_REGISTRATION_TOKEN` when set;
/// `audience_known` says whether an exchange rule's audience is Tollgate or a resource.
pub fn resolve(
    o: OAuthSection,
    token: Option<String>,
    audience_known: &dyn Fn(&str) -> bool,
    duration: SectionDuration<'_>,
) -> Result<OAuthConfig, ConfigError> {
    let token = token.or(o.registration_token);
    let registration = match o.dynamic_registration.as_deref() {
        None | Some("off") => Registration::Off,
        Some("open") => Registration::Open,
        Some("token") => match token {
            Some(t) if t.len() >= 32 => Registration::Token {
                digest: crate::secret::digest_hex(&t),
            },
            _ => {
                return Err(ConfigError(
                    "oauth.dynamic_registration = \"token\" needs oauth.registration_token (or TOLLGATE_OAUTH_REGISTRATION_TOKEN) of at least 32 characters".into(),
                ));
            }
        },
        Some(other) => {
            return Err(invalid(
                "oauth.dynamic_registration",
                "\"off\", \"open\" or \"token\"",
                other,
            ));
        }
    };
    let mut token_exchange = Vec::new();
    for spec in o.token_exchange {
        if !crate::authz::valid_client_id(&spec.client) {
            return Err(invalid(
                "oauth.token_exchange.client",
                "a client id",
                &spec.client,
            ));
        }
        if spec.audiences.is_empty() {
            return Err(ConfigError(format!(
                "oauth.token_exchange for '{}': audiences is empty",
                spec.client
            )));
        }
        if let Some(bad) = spec.audiences.iter().find(|a| !audience_known(a)) {
            return Err(ConfigError(format!(
                "oauth.token_exchange for '{}': audience '{bad}' is neither the public URL nor a route with resource = true",
                spec.client
            )));
        }
        if let Some(bad) = spec.scopes.iter().find(|s| !crate::authz::valid_scope(s)) {
            return Err(invalid("oauth.token_exchange.scopes", "scopes", bad));
        }
        token_exchange.push(ExchangeRule {
            client: spec.client,
            audiences: spec.audiences,
            scopes: spec.scopes,
        });
    }
    let hosts = o.metadata_hosts.unwrap_or_default();
    if let Some(bad) = hosts
        .iter()
        .find(|h| h.is_empty() || h.contains(['/', ':', ' ', '*', '@']))
    {
        return Err(invalid("oauth.metadata_hosts", "host names", bad));
    }
    let device_code_ttl = duration("oauth.device_code_ttl", o.device_code_ttl, "10m", false)?;
    let device_poll_interval = duration(
        "oauth.device_poll_interval",
        o.device_poll_interval,
        "5s",
        false,
    )?;
    if device_code_ttl > Duration::from_secs(3600) || device_poll_interval.as_secs() == 0 {
        return Err(ConfigError(
            "oauth.device_code_ttl must be at most 1h and oauth.device_poll_interval at least 1s"
                .into(),
        ));
    }
    Ok(OAuthConfig {
        registration,
        registered_client_ttl: duration(
            "oauth.registered_client_ttl",
            o.registered_client_ttl,
            "30d",
            false,
        )?,
        client_id_metadata: o.client_id_metadata.unwrap_or(false),
        documents: DocumentPolicy {
            hosts,
            private_addresses: o.metadata_private_addresses.unwrap_or(false),
        },
        token_exchange,
        device_code_ttl,
        device_poll_interval,
    })
}
