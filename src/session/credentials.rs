//! Who is calling: the credentials a request presented, verified locally.
//!
//! In order: `Authorization: Bearer` (an API key `tg_…` or an access token), else the
//! access cookie. A browser whose access cookie is missing or expired but whose refresh
//! cookie is valid is refreshed in flight (transparent refresh): the request proceeds as
//! the user and the response carries the new cookies. Racing requests of one browser all
//! present the same refresh cookie; the refresh grace window gives them the same
//! successor, so none trips reuse detection. The HTTP layer only extracts what was
//! presented ([`Presented`]) and supplies the CSRF check for cookie-authenticated unsafe
//! requests, which runs before anything is refreshed.

use std::sync::Arc;

use super::api_keys::{ApiKeyPrincipal, ApiKeys};
use super::assertion::AssertionSubject;
use super::{AccessClaims, ClientInfo, FIRST_PARTY_CLIENT, Issued, Sessions};
use crate::authz::policy::{Authenticated, Presented as PolicyPresented};
use crate::error::Error;
use crate::store::Store;

/// What a request presented, as extracted from its headers and cookies.
#[derive(Default)]
pub struct Presented<'a> {
    /// The first `Authorization: Bearer` token.
    pub bearer: Option<&'a str>,
    pub access_cookie: Option<&'a str>,
    /// Present only where a transparent refresh may happen (the response's cookies are
    /// sure to reach the browser).
    pub refresh_cookie: Option<&'a str>,
    pub csrf_cookie: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// How a credential arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
    ApiKey,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Token(Arc<AccessClaims>),
    ApiKey(Arc<ApiKeyPrincipal>),
}

impl Principal {
    /// Who an audit entry names as the actor: the service for its own tokens, else the
    /// user.
    pub fn audit_context(&self, client: crate::audit::ClientInfo) -> crate::audit::Context {
        match self.service() {
            Some(id) => crate::audit::Context::client(id, client),
            None => crate::audit::Context::user(self.user_id(), client),
        }
    }

    pub fn user_id(&self) -> &str {
        match self {
            Principal::Token(c) => &c.sub,
            Principal::ApiKey(k) => &k.user_id,
        }
    }

    pub fn email(&self) -> &str {
        match self {
            Principal::Token(c) => &c.email,
            Principal::ApiKey(k) => &k.email,
        }
    }

    /// Whether the account's address has been verified (false for a service).
    pub fn email_verified(&self) -> bool {
        match self {
            Principal::Token(c) => c.email_verified && !c.is_service(),
            Principal::ApiKey(k) => k.email_verified,
        }
    }

    /// Space-separated scopes.
    pub fn scope(&self) -> &str {
        match self {
            Principal::Token(c) => &c.scope,
            Principal::ApiKey(k) => &k.scope,
        }
    }

    /// The account's roles (none for a service's own token); AI quotas follow them.
    pub fn roles(&self) -> &[String] {
        match self {
            Principal::Token(c) => &c.roles,
            Principal::ApiKey(k) => &k.roles,
        }
    }

    /// The account's roles as they are now, for quotas: a token issued to an OAuth client
    /// carries them only when the client was granted `roles`, so they are read from the
    /// account instead (one query, on the AI paths only).
    pub async fn live_roles(&self, store: &Store) -> Result<Vec<String>, Error> {
        match self {
            Principal::Token(c) if c.client_id != FIRST_PARTY_CLIENT && !c.is_service() => {
                let user = store.user_by_id(&c.sub).await?;
                Ok(user.map(|u| u.roles).unwrap_or_default())
            }
            _ => Ok(self.roles().to_vec()),
        }
    }

    /// How the user authenticated, for step-up: a token carries `acr` and `auth_time`;
    /// an API key stands for no sign-in at all.
    pub fn authenticated(&self) -> Authenticated {
        match self {
            Principal::Token(c) => c.authenticated(),
            Principal::ApiKey(_) => Authenticated::default(),
        }
    }

    /// The client of a service's own token (client credentials): no user behind it.
    pub fn service(&self) -> Option<&str> {
        match self {
            Principal::Token(c) if c.is_service() => Some(&c.client_id),
            _ => None,
        }
    }

    /// The OAuth client (an application or a service) a token was issued to; `None` for
    /// Tollgate's own sign-in and API keys.
    pub fn oauth_client(&self) -> Option<&str> {
        match self {
            Principal::Token(c) if c.client_id != FIRST_PARTY_CLIENT => Some(&c.client_id),
            _ => None,
        }
    }

    /// The protected resource a token is bound to (RFC 8707); `None` for Tollgate.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Principal::Token(c) => c.resource(),
            Principal::ApiKey(_) => None,
        }
    }

    /// The OAuth client a token was issued to (`tollgate` for Tollgate's own sign-in);
    /// empty for an API key.
    pub fn client_id(&self) -> &str {
        match self {
            Principal::Token(c) => &c.client_id,
            Principal::ApiKey(_) => "",
        }
    }

    /// The session id, `apikey:<id>` for an API key, empty for a service (neither has a
    /// session).
    pub fn session_id(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Principal::Token(c) if c.is_service() => "".into(),
            Principal::Token(c) => c.sid.as_str().into(),
            Principal::ApiKey(k) => format!("apikey:{}", k.key_id).into(),
        }
    }

    /// The subject of an upstream assertion.
    pub fn assertion_subject<'a>(&'a self, session_id: &'a str) -> AssertionSubject<'a> {
        AssertionSubject {
            credential_id: match self {
                Principal::Token(c) => &c.jti,
                Principal::ApiKey(k) => &k.key_id,
            },
            user_id: self.user_id(),
            email: self.email(),
            email_verified: self.email_verified(),
            session_id,
            scope: self.scope(),
            client_id: self.client_id(),
            service: self.service().is_some(),
            resource: self.resource(),
            act: match self {
                Principal::Token(c) => c.act.as_ref(),
                Principal::ApiKey(_) => None,
            },
        }
    }
}

/// The outcome of looking at a request's credentials.
#[derive(Default)]
pub struct Resolved {
    pub principal: Option<Principal>,
    pub via: Option<Via>,
    /// Why a presented credential was refused, and whether the client chose to send it.
    pub failure: Option<(&'static str, bool)>,
    /// A transparent refresh happened: the response must set these cookies.
    pub refreshed: Option<Box<Issued>>,
    /// The browser's CSRF cookie, kept across a transparent refresh (open tabs hold it).
    pub keep_csrf: Option<String>,
    /// The refresh cookie is dead: the response should delete the cookies.
    pub clear_cookies: bool,
}

impl Resolved {
    /// Scopes of the principal, for the policy decision.
    pub fn scopes(&self) -> Vec<&str> {
        self.principal
            .as_ref()
            .map(|p| p.scope().split_ascii_whitespace().collect())
            .unwrap_or_default()
    }

    pub fn presented<'a>(&'a self, scopes: &'a [&'a str]) -> PolicyPresented<'a> {
        match (&self.principal, self.failure) {
            (Some(p), _) => PolicyPresented::Verified {
                scopes,
                audience: p.resource(),
                client: p.oauth_client(),
                service: p.service().is_some(),
                email_verified: p.email_verified(),
                authenticated: p.authenticated(),
            },
            (None, Some((code, explicit))) => PolicyPresented::Rejected { code, explicit },
            (None, None) => PolicyPresented::Nothing,
        }
    }

    fn failed(code: &'static str, explicit: bool, via: Via) -> Resolved {
        Resolved {
            failure: Some((code, explicit)),
            via: Some(via),
            ..Resolved::default()
        }
    }
}

/// Verifies what a request presented. `csrf` is the double-submit check, run for a
/// cookie-authenticated request before it is trusted or refreshed (a failure there is
/// the answer, not an anonymous caller). Only a storage failure is otherwise an error.
pub async fn resolve<E: From<Error>>(
    sessions: &Sessions,
    api_keys: &ApiKeys,
    presented: Presented<'_>,
    csrf: impl Fn() -> Result<(), E>,
) -> Result<Resolved, E> {
    if let Some(credential) = presented.bearer {
        if ApiKeys::looks_like_key(credential) {
            return Ok(match api_keys.verify(credential).await {
                Ok(k) => Resolved {
                    principal: Some(Principal::ApiKey(k)),
                    via: Some(Via::ApiKey),
                    ..Resolved::default()
                },
                Err(e @ Error::Unavailable(_)) => return Err(e.into()),
                Err(e) => Resolved::failed(e.code(), true, Via::ApiKey),
            });
        }
        // Bearer tokens may be bound to a protected resource; the policy decides where.
        return Ok(match sessions.verify_any_audience(credential) {
            Ok(c) => Resolved {
                principal: Some(Principal::Token(c)),
                via: Some(Via::Bearer),
                ..Resolved::default()
            },
            Err(e) => Resolved::failed(e.code(), true, Via::Bearer),
        });
    }
    let access_failure = match presented.access_cookie.map(|t| sessions.verify(t)) {
        Some(Ok(claims)) => {
            csrf()?;
            return Ok(Resolved {
                principal: Some(Principal::Token(claims)),
                via: Some(Via::Cookie),
                ..Resolved::default()
            });
        }
        Some(Err(e)) => Some(e.code()),
        None => None,
    };
    let Some(refresh_token) = presented.refresh_cookie else {
        return Ok(match access_failure {
            Some(code) => Resolved::failed(code, false, Via::Cookie),
            None => Resolved::default(),
        });
    };
    csrf()?;
    // A transparent refresh happens deep inside a proxied request; the reuse audit gets
    // the user agent (the address is recorded by the edge's own logs).
    let client = ClientInfo {
        user_agent: presented.user_agent.map(|s| s.chars().take(256).collect()),
        ip: None,
    };
    match sessions.refresh(refresh_token, &client).await {
        Ok(issued) => {
            metrics::counter!("tollgate_refreshes_total", "outcome" => "transparent").increment(1);
            Ok(Resolved {
                principal: Some(Principal::Token(Arc::new(issued.access_claims.clone()))),
                via: Some(Via::Cookie),
                refreshed: Some(Box::new(issued)),
                keep_csrf: presented.csrf_cookie.map(str::to_string),
                ..Resolved::default()
            })
        }
        Err(e @ Error::Unavailable(_)) => Err(e.into()),
        Err(e) => Ok(Resolved {
            clear_cookies: true,
            ..Resolved::failed(e.code(), false, Via::Cookie)
        }),
    }
}
