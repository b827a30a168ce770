//! Federation: signing in through external identity providers, so that the result is an
//! ordinary Tollgate session.
//!
//! The journey: Tollgate sends the browser to the provider (authorization code flow with
//! PKCE `S256`, `state`, and for OpenID Connect a `nonce`), keeping the secrets of the
//! journey in a signed, HttpOnly cookie bound to that browser; on return it checks the
//! state against the cookie (login CSRF), exchanges the code, and verifies the ID token
//! (signature from the provider's JWKS, issuer, audience, expiry, nonce) with the
//! openidconnect crate. A plain OAuth 2.0 provider (GitHub-style, no ID token) is asked
//! its user endpoint instead. The external subject then maps to an account: one already
//! linked; a new one created just in time; or, when the provider asserts a verified email
//! that an account already has, a link the user confirms with that account's password.

mod accounts;
mod apple;
pub mod config;
mod outbound;
mod presets;
mod protocol;
pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Validation};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::{ProviderConfig, ProviderKind, ProviderSpec};
use outbound::OauthHttp;

use crate::audit::{Context, Outcome};
use crate::authz::DEFAULT_ROLE;
use crate::clock;
use crate::identity::validate::normalize_email;
use crate::keys::KeyRing;
use crate::outbound::Outbound;
use crate::secret;
use crate::store::{FederatedLogin, NewUser, Store, StoreError, UserRecord};

/// How long a journey to a provider and back, or a pending link, may take.
const JOURNEY_TTL_SECS: i64 = 600;
/// How long a provider's discovery document (with its keys) is reused.
const METADATA_TTL_SECS: i64 = 600;
/// Spent journeys remembered at most; expired ones are dropped when it is reached (the
/// callback is rate limited per address). The record is per node: on another node, or
/// after a restart, a replay reaches the provider, which refuses the spent code.
const MAX_SPENT_JOURNEYS: usize = 100_000;
pub const JOURNEY_TYP: &str = "tollgate-federation+jwt";
pub const LINK_TYP: &str = "tollgate-federation-link+jwt";

/// Why a federated sign-in did not happen; `Display` is for the user.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("there is no identity provider '{0}'")]
    UnknownProvider(String),
    /// The browser's journey cookie is missing, expired or does not match the state.
    #[error("this sign-in did not start here or took too long; please start again")]
    BadJourney,
    /// The provider refused, could not be reached, or answered something unverifiable.
    #[error("signing in with {provider} did not work: {detail}")]
    Provider { provider: String, detail: String },
    /// The provider refused the code it was given back (spent, expired, not ours).
    #[error("{provider} did not accept this sign-in ({detail}); please start again")]
    CodeRefused { provider: String, detail: String },
    /// Tollgate's own rules refuse the result (no email, no account, disabled, …).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Domain(#[from] crate::error::Error),
}

impl From<StoreError> for FederationError {
    fn from(e: StoreError) -> Self {
        FederationError::Domain(e.into())
    }
}

type FedResult<T> = Result<T, FederationError>;

/// What the browser carries to the provider and back (the signed journey cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journey {
    iss: String,
    aud: String,
    exp: i64,
    pub provider: String,
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    verifier: String,
    /// The pending authorization to continue (a flow token), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Where to go afterwards, if no authorization is pending (already vetted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd: Option<String>,
}

/// A verified identity at a provider.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Every claim the provider stated (for role mapping).
    pub claims: Value,
}

/// A link waiting for the user to confirm it with the existing account's password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    iss: String,
    aud: String,
    exp: i64,
    pub provider: String,
    pub subject: String,
    pub user_id: String,
    pub email: String,
    pub mapped_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd: Option<String>,
}

/// What a verified external identity comes to.
pub enum Resolution {
    SignedIn(UserRecord),
    /// An account with the provider's verified email exists: ask for its password. The
    /// string is the signed pending link.
    ConfirmLink(String, PendingLink),
}

pub struct Federation {
    providers: Vec<ProviderConfig>,
    outbound: OauthHttp,
    keys: Arc<KeyRing>,
    issuer: String,
    store: Store,
    /// `mail.require_verification`: a federated sign-in needs a verified address too.
    require_verification: bool,
    metadata: RwLock<HashMap<String, (Arc<CoreProviderMetadata>, i64)>>,
    /// The states of journeys already answered here, until the journeys expire.
    spent: std::sync::Mutex<HashMap<String, i64>>,
}

impl Federation {
    pub fn new(
        providers: Vec<ProviderConfig>,
        outbound: Outbound,
        keys: Arc<KeyRing>,
        issuer: &str,
        store: Store,
        require_verification: bool,
    ) -> Federation {
        Federation {
            providers,
            outbound: OauthHttp(outbound),
            keys,
            issuer: issuer.to_string(),
            store,
            require_verification,
            metadata: RwLock::new(HashMap::new()),
            spent: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `(name, label)` of every provider, in configuration order.
    pub fn providers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .iter()
            .map(|p| (p.name.as_str(), p.label.as_str()))
    }

    fn provider(&self, name: &str) -> FedResult<&ProviderConfig> {
        self.providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| FederationError::UnknownProvider(name.chars().take(32).collect()))
    }

    /// Whether provider `name` answers with a cross-site POST (`response_mode =
    /// "form_post"`): its journey cookie must then travel on that POST.
    pub fn answers_by_post(&self, name: &str) -> bool {
        self.provider(name).is_ok_and(|p| p.form_post)
    }

    /// Where a provider sends the browser back (register it there).
    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/auth/federated/{name}/callback", self.issuer)
    }

    fn journey_audience(&self) -> String {
        format!("{}/auth/federated", self.issuer)
    }

    fn open<T: serde::de::DeserializeOwned>(&self, typ: &str, token: &str) -> FedResult<T> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = 1;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[self.journey_audience()]);
        v.set_required_spec_claims(&["iss", "aud", "exp"]);
        self.keys
            .verify::<T>(token, |t| t == typ, &v)
            .map(|(_, c)| c)
            .map_err(|_| FederationError::BadJourney)
    }

    /// The journey in a cookie, checked against the provider and `state` it came back
    /// with.
    pub fn journey(
        &self,
        cookie: Option<&str>,
        name: &str,
        state: Option<&str>,
    ) -> FedResult<Journey> {
        let j: Journey = self.open(JOURNEY_TYP, cookie.ok_or(FederationError::BadJourney)?)?;
        let state_ok = state.is_some_and(|s| secret::constant_time_eq(s, &j.state));
        if j.provider != name || !state_ok {
            return Err(FederationError::BadJourney);
        }
        // One answer per journey: a replayed cookie and state (with another code) never
        // reach the provider's token endpoint again.
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if spent.len() >= MAX_SPENT_JOURNEYS {
            let now = clock::now();
            spent.retain(|_, exp| *exp > now);
        }
        if spent.len() >= MAX_SPENT_JOURNEYS {
            // Full of live journeys (a flood from many addresses): sign-ins go on, and
            // a replay costs the provider one refused code, as without this record.
            tracing::warn!("too many federated sign-ins in ten minutes to remember them all");
        } else if spent.insert(j.state.clone(), j.exp).is_some() {
            return Err(FederationError::BadJourney);
        }
        Ok(j)
    }
}
