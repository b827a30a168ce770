//! The OpenID Connect provider: clients, the authorization code flow with PKCE, the
//! token endpoint's grants, introspection, revocation, userinfo and RP-initiated logout.
//! No HTTP here: `http::oauth` and `http::ui` translate requests into these calls.
//!
//! A user signs in once to Tollgate (the browser's own session). Each authorization a
//! client obtains becomes a session of that client, derived from the browser's session:
//! it carries the scopes the user granted, and ends when the browser's session ends
//! (sign-out) unless `offline_access` was granted. Its tokens are the same RFC 9068
//! access tokens and rotating refresh tokens as Tollgate's own, so the gateway, the
//! revocation set and reuse detection treat them alike. A service (client credentials)
//! gets access tokens for itself, with no session and no user.

pub mod agents;
pub mod authorize;
pub mod clients;
pub mod device;
pub mod error;
mod exchange;
pub mod federation;
pub mod flow;
pub mod grants;
pub mod id_token;
mod introspection;
pub mod metadata_document;
pub mod pkce;
pub mod registration;
pub mod scope;

use std::sync::Arc;
use std::time::Duration;

use authorize::{BrowserSession, Pending, Reply, Step};
use clients::Clients;
use error::OAuthError;

use crate::audit::{Context, Outcome};
use crate::clock;
use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};
use crate::error::Result;
use crate::keys::KeyRing;
use crate::secret;
use crate::session::Sessions;
use crate::store::{ClientRecord, NewCode, Store};

/// `[oidc]`.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// How long an authorization code can be exchanged.
    pub code_ttl: Duration,
    /// How long the sign-in and consent pages of one authorization request stay valid.
    pub flow_ttl: Duration,
    /// PKCE for confidential clients too (always required of public clients).
    pub require_pkce: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    pub code_ttl: Option<DurationValue>,
    pub flow_ttl: Option<DurationValue>,
    pub require_pkce: Option<bool>,
}

/// `[oidc]`, resolved: codes live 60 s (at most 10 minutes), flows 30 minutes, PKCE
/// required of public clients only.
pub fn resolve_config(
    o: OidcSection,
    duration: SectionDuration<'_>,
) -> Result<OidcConfig, ConfigError> {
    let oidc = OidcConfig {
        code_ttl: duration("oidc.code_ttl", o.code_ttl, "60s", false)?,
        flow_ttl: duration("oidc.flow_ttl", o.flow_ttl, "30m", false)?,
        require_pkce: o.require_pkce.unwrap_or(false),
    };
    if oidc.code_ttl > Duration::from_secs(600) {
        return Err(invalid(
            "oidc.code_ttl",
            "at most 10m (RFC 6749 §4.1.2)",
            "longer",
        ));
    }
    Ok(oidc)
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            code_ttl: Duration::from_secs(60),
            flow_ttl: Duration::from_secs(30 * 60),
            require_pkce: false,
        }
    }
}

pub struct OidcProvider {
    store: Store,
    sessions: Arc<Sessions>,
    pub clients: Clients,
    keys: Arc<KeyRing>,
    issuer: String,
    cfg: OidcConfig,
    /// The protected resources' identifiers (RFC 8707 `resource` values we accept).
    resources: Vec<String>,
    oauth: agents::OAuthConfig,
    /// The gateway's assertions, which an upstream may exchange (RFC 8693).
    assertions: Arc<crate::session::assertion::Assertions>,
    assertion_audiences: Vec<String>,
}

/// What the provider needs to know of the gateway and `[oauth]` for agents.
pub struct AgentSupport {
    /// The protected resources' identifiers.
    pub resources: Vec<String>,
    pub oauth: agents::OAuthConfig,
    pub assertions: Arc<crate::session::assertion::Assertions>,
    /// The audiences the gateway issues assertions for.
    pub assertion_audiences: Vec<String>,
}

impl OidcProvider {
    pub fn new(
        store: Store,
        sessions: Arc<Sessions>,
        clients: Clients,
        cfg: OidcConfig,
        agents: AgentSupport,
    ) -> OidcProvider {
        let keys = sessions.tokens().keys().clone();
        let issuer = sessions.tokens().issuer().to_string();
        OidcProvider {
            store,
            sessions,
            clients,
            keys,
            issuer,
            cfg,
            resources: agents.resources,
            oauth: agents.oauth,
            assertions: agents.assertions,
            assertion_audiences: agents.assertion_audiences,
        }
    }

    /// Whether `resource` names one of the protected resources.
    pub fn is_resource(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
    }

    /// Validates an authorization request's parameters against its client.
    pub async fn begin(
        &self,
        params: &std::collections::HashMap<String, String>,
    ) -> std::result::Result<Pending, authorize::AuthorizeRefusal> {
        let client = match params.get("client_id") {
            Some(id) => match self.clients.live(id).await {
                Ok(c) => Some(c),
                Err(crate::error::Error::NotFound(_)) => None,
                Err(e) => return Err(authorize::AuthorizeRefusal::Untrusted(e.into())),
            },
            None => None,
        };
        authorize::validate(
            params,
            client.as_deref(),
            self.cfg.require_pkce,
            &self.issuer,
            clock::now(),
            &|r| self.is_resource(r),
        )
    }

    /// The pending request as a signed flow token for the hosted pages.
    pub fn seal(&self, p: &Pending) -> Result<String> {
        flow::seal(
            &self.keys,
            &self.issuer,
            p,
            self.cfg.flow_ttl.as_secs() as i64,
        )
    }

    pub fn open(&self, flow_token: &str) -> std::result::Result<Pending, OAuthError> {
        flow::open(&self.keys, &self.issuer, flow_token)
    }

    /// The next step of a pending authorization for this browser, with its client.
    pub async fn step(
        &self,
        p: &Pending,
        session: Option<&BrowserSession>,
        consented_now: bool,
    ) -> std::result::Result<(Arc<ClientRecord>, Step), OAuthError> {
        let client = self
            .clients
            .live(&p.client_id)
            .await
            .map_err(|_| OAuthError::invalid_client("the client no longer exists"))?;
        // A consent remembered for one resource is not one for another (RFC 8707): an
        // agent allowed at one MCP server asks again before another, or before a token
        // for Tollgate itself (recorded as the issuer; consents from before resources
        // existed name none, and were all for Tollgate itself).
        let audience = p.resource.as_deref().unwrap_or(&self.issuer);
        let consent = match session {
            Some(s) if !client.skip_consent && !consented_now => self
                .store
                .consent(&s.user_id, &client.id)
                .await?
                .filter(|c| {
                    c.resources.iter().any(|r| r == audience)
                        || (c.resources.is_empty() && p.resource.is_none())
                })
                .map(|c| c.scopes),
            _ => None,
        };
        let step = authorize::next_step(p, &client, session, consent.as_deref(), consented_now);
        Ok((client, step))
    }

    /// Remembers that the user allowed the client `scopes`, at `resource` when the
    /// request named one (added to what was allowed).
    pub async fn record_consent(
        &self,
        session: &BrowserSession,
        client_id: &str,
        scopes: &[String],
        resource: Option<&str>,
        ctx: &Context,
    ) -> Result<()> {
        let before = self
            .store
            .consent(&session.user_id, client_id)
            .await?
            .unwrap_or_default();
        let (mut all, mut resources) = (before.scopes, before.resources);
        for s in scopes {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        let audience = resource.unwrap_or(&self.issuer);
        if !resources.iter().any(|x| x == audience) {
            resources.push(audience.to_string());
        }
        let audit = ctx
            .entry(
                "oauth.consent_granted",
                Outcome::Success,
                Some(&session.user_id),
            )
            .with("client_id", client_id)
            .with("scopes", scopes.to_vec())
            .with("resource", resource);
        self.store
            .grant_consent(
                &session.user_id,
                client_id,
                &all,
                &resources,
                clock::now(),
                &audit,
            )
            .await?;
        Ok(())
    }

    /// Issues an authorization code for `scopes` and returns the reply to the client.
    pub async fn issue_code(
        &self,
        p: &Pending,
        session: &BrowserSession,
        scopes: &[String],
    ) -> Result<Reply> {
        let code = secret::generate();
        let now = clock::now();
        self.store
            .insert_code(&NewCode {
                code_hash: &secret::digest_hex(&code),
                client_id: &p.client_id,
                user_id: &session.user_id,
                browser_session: &session.session_id,
                redirect_uri: &p.redirect_uri,
                scope: &scopes.join(" "),
                nonce: p.nonce.as_deref(),
                code_challenge: p.code_challenge.as_deref(),
                auth_time: session.auth_time,
                amr: &session.amr,
                now,
                expires_at: now + self.cfg.code_ttl.as_secs() as i64,
                resource: p.resource.as_deref(),
            })
            .await?;
        metrics::counter!("tollgate_oauth_codes_total").increment(1);
        Ok(Reply::code(p, code, &self.issuer))
    }

    /// The reply that tells the client its request was refused.
    pub fn refusal(&self, p: &Pending, e: &OAuthError) -> Reply {
        Reply::error(p, e, &self.issuer)
    }

    /// A registered client's name, for people to read (`None` once it is deleted).
    pub async fn client_name(&self, client_id: &str) -> Option<String> {
        self.clients
            .live(client_id)
            .await
            .ok()
            .map(|client| client.name.clone())
    }

    /// The user's consents, and withdrawing one (which ends the client's sessions).
    pub async fn consents(&self, user_id: &str) -> Result<Vec<crate::store::ConsentRecord>> {
        Ok(self.store.consents_of(user_id).await?)
    }

    pub async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        ctx: &Context,
    ) -> Result<bool> {
        let now = clock::now();
        let audit = ctx
            .entry("oauth.consent_withdrawn", Outcome::Success, Some(user_id))
            .with("client_id", client_id);
        match self
            .store
            .withdraw_consent(user_id, client_id, now, &audit)
            .await?
        {
            Some(revoked) => {
                self.sessions.revocations().announce(&revoked, now).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
