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

pub mod config;
mod outbound;
pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Validation};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::{ProviderConfig, ProviderKind, ProviderSpec};
use outbound::Outbound;

use crate::audit::{Context, Outcome};
use crate::authz::DEFAULT_ROLE;
use crate::clock;
use crate::gateway::proxy::Proxy;
use crate::identity::validate::normalize_email;
use crate::keys::KeyRing;
use crate::secret;
use crate::store::{FederatedLogin, NewUser, Store, StoreError, UserRecord};

/// How long a journey to a provider and back, or a pending link, may take.
const JOURNEY_TTL_SECS: i64 = 600;
/// How long a provider's discovery document (with its keys) is reused.
const METADATA_TTL_SECS: i64 = 600;
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
    outbound: Outbound,
    keys: Arc<KeyRing>,
    issuer: String,
    store: Store,
    /// `mail.require_verification`: a federated sign-in needs a verified address too.
    require_verification: bool,
    metadata: RwLock<HashMap<String, (Arc<CoreProviderMetadata>, i64)>>,
}

impl Federation {
    pub fn new(
        providers: Vec<ProviderConfig>,
        proxy: Arc<Proxy>,
        keys: Arc<KeyRing>,
        issuer: &str,
        store: Store,
        require_verification: bool,
    ) -> Federation {
        Federation {
            providers,
            outbound: Outbound(proxy),
            keys,
            issuer: issuer.to_string(),
            store,
            require_verification,
            metadata: RwLock::new(HashMap::new()),
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

    /// Where a provider sends the browser back (register it there).
    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/auth/federated/{name}/callback", self.issuer)
    }

    fn provider_error(p: &ProviderConfig, detail: impl std::fmt::Display) -> FederationError {
        let detail = detail.to_string();
        tracing::warn!(provider = %p.name, error = %detail, "federated sign-in failed at the provider");
        FederationError::Provider {
            provider: p.label.clone(),
            detail,
        }
    }

    /// A failed code exchange: the provider refusing the code (spent, expired, not
    /// ours) is the browser's problem (400); anything else is the provider's (502).
    fn exchange_error<RE, T>(
        p: &ProviderConfig,
        e: openidconnect::RequestTokenError<RE, T>,
    ) -> FederationError
    where
        RE: std::error::Error + 'static,
        T: openidconnect::ErrorResponse + 'static,
    {
        match e {
            openidconnect::RequestTokenError::ServerResponse(r) => {
                tracing::info!(provider = %p.name, error = %r, "the provider refused the code");
                FederationError::CodeRefused {
                    provider: p.label.clone(),
                    detail: r.to_string(),
                }
            }
            other => Self::provider_error(p, format!("code exchange failed: {other}")),
        }
    }

    /// The provider's discovery document, cached; `fresh` refetches (rotated keys).
    async fn metadata(
        &self,
        p: &ProviderConfig,
        issuer: &str,
        fresh: bool,
    ) -> FedResult<Arc<CoreProviderMetadata>> {
        let now = clock::now();
        if !fresh
            && let Some((m, at)) = self
                .metadata
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p.name)
            && now - at < METADATA_TTL_SECS
        {
            return Ok(m.clone());
        }
        let url = IssuerUrl::new(issuer.to_string()).map_err(|e| Self::provider_error(p, e))?;
        let m = Arc::new(
            CoreProviderMetadata::discover_async(url, &self.outbound)
                .await
                .map_err(|e| Self::provider_error(p, format!("discovery failed: {e}")))?,
        );
        self.metadata
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.name.clone(), (m.clone(), now));
        Ok(m)
    }

    fn oidc_client(
        &self,
        p: &ProviderConfig,
        m: &CoreProviderMetadata,
    ) -> FedResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        Ok(CoreClient::from_provider_metadata(
            m.clone(),
            ClientId::new(p.client_id.clone()),
            p.client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.0.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri(&p.name)).map_err(|e| Self::provider_error(p, e))?,
        ))
    }

    fn oauth2_client(
        &self,
        p: &ProviderConfig,
        authorization_url: &str,
        token_url: &str,
    ) -> FedResult<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
    > {
        let mut client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(p.client_id.clone()))
                .set_auth_uri(
                    AuthUrl::new(authorization_url.to_string())
                        .map_err(|e| Self::provider_error(p, e))?,
                )
                .set_token_uri(
                    TokenUrl::new(token_url.to_string()).map_err(|e| Self::provider_error(p, e))?,
                )
                .set_redirect_uri(
                    RedirectUrl::new(self.redirect_uri(&p.name))
                        .map_err(|e| Self::provider_error(p, e))?,
                );
        if let Some(s) = &p.client_secret {
            client = client.set_client_secret(oauth2::ClientSecret::new(s.0.clone()));
        }
        Ok(client)
    }

    /// Starts a sign-in at provider `name`: the URL to send the browser to, and the signed
    /// journey for its cookie. `flow` (a pending authorization) or `rd` (a vetted return
    /// URL) says where to go afterwards.
    pub async fn start(
        &self,
        name: &str,
        flow: Option<String>,
        rd: Option<String>,
    ) -> FedResult<(String, String)> {
        let p = self.provider(name)?;
        let state = secret::generate();
        let verifier = secret::generate();
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        let scopes = p
            .scopes
            .iter()
            .filter(|s| *s != "openid")
            .map(|s| Scope::new(s.clone()));
        let (url, nonce) = match &p.kind {
            ProviderKind::Oidc { issuer } => {
                let m = self.metadata(p, issuer, false).await?;
                let client = self.oidc_client(p, &m)?;
                let nonce = secret::generate();
                let (state_for, nonce_for) = (state.clone(), nonce.clone());
                let (url, _, _) = client
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        move || CsrfToken::new(state_for),
                        move || Nonce::new(nonce_for),
                    )
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge)
                    .url();
                (url, Some(nonce))
            }
            ProviderKind::OAuth2 {
                authorization_url,
                token_url,
                ..
            } => {
                let client = self.oauth2_client(p, authorization_url, token_url)?;
                let state_for = state.clone();
                let (url, _) = client
                    .authorize_url(move || oauth2::CsrfToken::new(state_for))
                    .add_scopes(p.scopes.iter().map(|s| oauth2::Scope::new(s.clone())))
                    .set_pkce_challenge(challenge)
                    .url();
                (url, None)
            }
        };
        let journey = Journey {
            iss: self.issuer.clone(),
            aud: self.journey_audience(),
            exp: clock::now() + JOURNEY_TTL_SECS,
            provider: p.name.clone(),
            state,
            nonce,
            verifier,
            flow,
            rd,
        };
        Ok((url.to_string(), self.keys.sign(JOURNEY_TYP, &journey)?))
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
        Ok(j)
    }

    /// Exchanges the code the provider sent back and verifies who it says the user is.
    /// `iss` is the authorization response's issuer (RFC 9207), when the provider sent it.
    pub async fn finish(
        &self,
        j: &Journey,
        code: &str,
        iss: Option<&str>,
    ) -> FedResult<ExternalIdentity> {
        let p = self.provider(&j.provider)?;
        match &p.kind {
            ProviderKind::Oidc { issuer } => {
                if iss.is_some_and(|i| i.trim_end_matches('/') != issuer) {
                    return Err(Self::provider_error(p, "the response names another issuer"));
                }
                self.finish_oidc(p, issuer, j, code).await
            }
            ProviderKind::OAuth2 {
                authorization_url,
                token_url,
                userinfo_url,
                emails_url,
            } => {
                let client = self.oauth2_client(p, authorization_url, token_url)?;
                let token = client
                    .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
                    .set_pkce_verifier(oauth2::PkceCodeVerifier::new(j.verifier.clone()))
                    .request_async(&self.outbound)
                    .await
                    .map_err(|e| Self::exchange_error(p, e))?;
                let access = token.access_token().secret();
                let claims = self.get_json(p, userinfo_url, access).await?;
                let mut id = self.identity_from_claims(p, claims)?;
                if let Some(url) = emails_url
                    && (id.email.is_none() || !id.email_verified)
                {
                    let emails = self.get_json(p, url, access).await?;
                    if let Some((email, verified)) = primary_email(&emails) {
                        id.email = Some(email);
                        id.email_verified = verified;
                    }
                }
                Ok(id)
            }
        }
    }

    async fn finish_oidc(
        &self,
        p: &ProviderConfig,
        issuer: &str,
        j: &Journey,
        code: &str,
    ) -> FedResult<ExternalIdentity> {
        let m = self.metadata(p, issuer, false).await?;
        let client = self.oidc_client(p, &m)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Self::provider_error(p, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(j.verifier.clone()))
            .request_async(&self.outbound)
            .await
            .map_err(|e| Self::exchange_error(p, e))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| Self::provider_error(p, "no ID token in the token response"))?;
        let nonce = Nonce::new(j.nonce.clone().unwrap_or_default());
        // A code is exchanged once, so a token signed with a key the cached document
        // lacks (the provider rotated) is verified again with a fresh one.
        let first_try = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .err()
            .map(|e| e.to_string());
        let (m, client) = match first_try {
            None => (m, client),
            Some(e) => {
                tracing::info!(provider = %p.name, error = %e, "ID token did not verify; refetching the provider's keys");
                let m = self.metadata(p, issuer, true).await?;
                let client = self.oidc_client(p, &m)?;
                (m, client)
            }
        };
        // Only the provider's asymmetric algorithms: an HMAC "signature" keyed with our
        // own client secret proves nothing about the provider (RFC 8725 §3.1).
        let algs: Vec<CoreJwsSigningAlgorithm> = m
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| {
                !matches!(
                    a,
                    CoreJwsSigningAlgorithm::HmacSha256
                        | CoreJwsSigningAlgorithm::HmacSha384
                        | CoreJwsSigningAlgorithm::HmacSha512
                        | CoreJwsSigningAlgorithm::None
                )
            })
            .cloned()
            .collect();
        let verifier = client.id_token_verifier().set_allowed_algs(algs);
        let verified = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| Self::provider_error(p, format!("ID token rejected: {e}")))?;
        if let Some(expected) = verified.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| Self::provider_error(p, e))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| Self::provider_error(p, e))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| Self::provider_error(p, e))?;
            if actual != *expected {
                return Err(Self::provider_error(
                    p,
                    "at_hash does not match the access token",
                ));
            }
        }
        let mut claims = jwt_payload(&id_token.to_string()).unwrap_or(Value::Null);
        // Claims the ID token leaves out (email, groups) may be at the userinfo endpoint.
        let wanted_missing = verified.email().is_none()
            || p.role_claim
                .as_ref()
                .is_some_and(|c| roles::claim_values(&claims, c).is_empty());
        if wanted_missing && let Some(url) = m.userinfo_endpoint() {
            let info = self
                .get_json(p, url.as_str(), token.access_token().secret())
                .await?;
            if info.get("sub").and_then(Value::as_str) == Some(verified.subject().as_str())
                && let (Value::Object(base), Value::Object(extra)) = (&mut claims, info)
            {
                for (k, v) in extra {
                    base.entry(k).or_insert(v);
                }
            }
        }
        self.identity_from_claims(p, claims)
    }

    async fn get_json(
        &self,
        p: &ProviderConfig,
        url: &str,
        access_token: &str,
    ) -> FedResult<Value> {
        let req = http::Request::get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "tollgate")
            .body(Vec::new())
            .map_err(|e| Self::provider_error(p, e))?;
        let res = self
            .outbound
            .send(req)
            .await
            .map_err(|e| Self::provider_error(p, e))?;
        if !res.status().is_success() {
            return Err(Self::provider_error(
                p,
                format!("{url} answered {}", res.status()),
            ));
        }
        serde_json::from_slice(res.body())
            .map_err(|e| Self::provider_error(p, format!("{url}: {e}")))
    }

    fn identity_from_claims(
        &self,
        p: &ProviderConfig,
        claims: Value,
    ) -> FedResult<ExternalIdentity> {
        let subject = match claims.get(&p.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Self::provider_error(
                    p,
                    format!("no '{}' claim", p.subject_claim),
                ));
            }
        };
        if subject.len() > 255 || subject.chars().any(char::is_control) {
            return Err(Self::provider_error(
                p,
                "the subject is too long or not printable",
            ));
        }
        let email = claims
            .get(&p.email_claim)
            .and_then(Value::as_str)
            .and_then(|e| normalize_email(e).ok());
        let email_verified = match claims.get(&p.email_verified_claim) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        Ok(ExternalIdentity {
            provider: p.name.clone(),
            subject,
            email,
            email_verified,
            claims,
        })
    }

    /// Maps a verified external identity to an account: the linked one, a new one, or a
    /// link to confirm. Role mappings are applied to the account it signs into.
    pub async fn resolve(
        &self,
        ext: &ExternalIdentity,
        j: &Journey,
        ctx: &Context,
    ) -> FedResult<Resolution> {
        let p = self.provider(&ext.provider)?;
        let mapped = roles::mapped_roles(p, &ext.claims);
        if let Some(linked) = self.store.federated_identity(&p.name, &ext.subject).await? {
            let user = self
                .store
                .user_by_id(&linked.user_id)
                .await?
                .ok_or(FederationError::BadJourney)?;
            return self
                .signed_in(p, ext, user, &linked.mapped_roles, &mapped, ctx)
                .await;
        }
        let Some(email) = ext.email.clone() else {
            return Err(FederationError::Refused(format!(
                "{} did not share an email address, which an account needs",
                p.label
            )));
        };
        if let Some(existing) = self.store.user_by_email(&email).await? {
            if !(p.link_existing && ext.email_verified) {
                return Err(FederationError::Refused(format!(
                    "an account for {email} already exists; sign in with its password (linking needs an address {} has verified)",
                    p.label
                )));
            }
            if existing.password_hash.is_none() {
                return Err(FederationError::Refused(format!(
                    "an account for {email} already exists but has no password to confirm a link with; ask an administrator"
                )));
            }
            let link = PendingLink {
                iss: self.issuer.clone(),
                aud: self.journey_audience(),
                exp: clock::now() + JOURNEY_TTL_SECS,
                provider: p.name.clone(),
                subject: ext.subject.clone(),
                user_id: existing.id.clone(),
                email,
                mapped_roles: mapped,
                flow: j.flow.clone(),
                rd: j.rd.clone(),
            };
            return Ok(Resolution::ConfirmLink(
                self.keys.sign(LINK_TYP, &link)?,
                link,
            ));
        }
        if !p.create_accounts {
            return Err(FederationError::Refused(format!(
                "there is no account for {email}, and {} sign-ins do not create one",
                p.label
            )));
        }
        // An account claims its address: a provider that has not verified the address
        // cannot hand it out (else its owner, arriving later, would recover an account
        // the provider's user still signs into: pre-hijacking).
        if !ext.email_verified {
            return Err(FederationError::Refused(format!(
                "{} has not verified the address {email}; verify it there, then sign in again",
                p.label
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = clock::now();
        let mut user_roles = vec![DEFAULT_ROLE.to_string()];
        user_roles.extend(
            mapped
                .iter()
                .filter(|r| r.as_str() != DEFAULT_ROLE)
                .cloned(),
        );
        user_roles.sort();
        let audit = ctx
            .entry("user.created", Outcome::Success, Some(&id))
            .with("email", email.as_str())
            .with("roles", user_roles.clone())
            .with("provider", p.name.as_str());
        let login = FederatedLogin {
            provider: &p.name,
            subject: &ext.subject,
            user_id: &id,
            email: Some(&email),
            mapped_roles: &mapped,
            grant: &[],
            revoke: &[],
            now,
        };
        let new = NewUser {
            id: &id,
            email: &email,
            password_hash: None,
            roles: &user_roles,
            email_verified: ext.email_verified,
            now,
        };
        match self.store.create_federated_user(&new, &login, &audit).await {
            Ok(()) => {}
            // Someone registered the address (or linked the subject) a moment ago.
            Err(StoreError::Conflict) => {
                return Err(FederationError::Refused(format!(
                    "an account for {email} was just created; sign in again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let user = self
            .store
            .user_by_id(&id)
            .await?
            .ok_or(FederationError::BadJourney)?;
        Ok(Resolution::SignedIn(user))
    }

    /// A linked account signs in: its role mappings are brought up to date.
    async fn signed_in(
        &self,
        p: &ProviderConfig,
        ext: &ExternalIdentity,
        user: UserRecord,
        before: &[String],
        now_mapped: &[String],
        ctx: &Context,
    ) -> FedResult<Resolution> {
        if user.disabled {
            return Err(FederationError::Refused("this account is disabled".into()));
        }
        if self.require_verification && !user.email_verified {
            return Err(FederationError::Refused(
                "verify your email address first: follow the link we mailed you".into(),
            ));
        }
        let (grant, revoke) = roles::changes(&user.roles, before, now_mapped);
        let audit = ctx
            .entry("federation.roles_synced", Outcome::Success, Some(&user.id))
            .with("provider", p.name.as_str())
            .with("granted", grant.clone())
            .with("revoked", revoke.clone());
        self.store
            .record_federated_login(
                &FederatedLogin {
                    provider: &p.name,
                    subject: &ext.subject,
                    user_id: &user.id,
                    email: ext.email.as_deref(),
                    mapped_roles: now_mapped,
                    grant: &grant,
                    revoke: &revoke,
                    now: clock::now(),
                },
                &audit,
            )
            .await?;
        let user = if grant.is_empty() && revoke.is_empty() {
            user
        } else {
            self.store
                .user_by_id(&user.id)
                .await?
                .ok_or(FederationError::BadJourney)?
        };
        Ok(Resolution::SignedIn(user))
    }

    /// A pending link from its signed form.
    pub fn pending_link(&self, token: &str) -> FedResult<PendingLink> {
        self.open(LINK_TYP, token)
    }

    /// Links the provider's subject to `user`, who has just proved the password.
    pub async fn link(
        &self,
        link: &PendingLink,
        user: &UserRecord,
        ctx: &Context,
    ) -> FedResult<UserRecord> {
        if user.id != link.user_id {
            return Err(FederationError::BadJourney);
        }
        let p = self.provider(&link.provider)?;
        let (grant, _) = roles::changes(&user.roles, &[], &link.mapped_roles);
        let audit = ctx
            .entry("federation.linked", Outcome::Success, Some(&user.id))
            .with("provider", p.name.as_str())
            .with("granted", grant.clone());
        match self
            .store
            .link_federated_identity(
                &FederatedLogin {
                    provider: &p.name,
                    subject: &link.subject,
                    user_id: &user.id,
                    email: Some(&link.email),
                    mapped_roles: &link.mapped_roles,
                    grant: &grant,
                    revoke: &[],
                    now: clock::now(),
                },
                &audit,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(FederationError::Refused(
                    "this external account is already linked".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.store
            .user_by_id(&user.id)
            .await?
            .ok_or(FederationError::BadJourney)
    }
}

/// The claims of a JWT whose signature was already verified.
fn jwt_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&secret::from_b64url(payload)?).ok()
}

/// The primary address of a GitHub-style email list, with whether it is verified.
fn primary_email(list: &Value) -> Option<(String, bool)> {
    let items = list.as_array()?;
    let pick = items
        .iter()
        .find(|e| e["primary"] == Value::Bool(true))
        .or_else(|| items.iter().find(|e| e["verified"] == Value::Bool(true)))?;
    let email = normalize_email(pick["email"].as_str()?).ok()?;
    Some((email, pick["verified"] == Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_primary_verified_address_is_chosen() {
        let list = json!([
            { "email": "old@example.com", "primary": false, "verified": true },
            { "email": "Me@Example.com", "primary": true, "verified": true },
        ]);
        assert_eq!(primary_email(&list), Some(("me@example.com".into(), true)));
        assert_eq!(primary_email(&json!({})), None);
        // Look-alikes: one spelling, or no address at all.
        let fullwidth =
            json!([{ "email": "ｍｅ＠example.com", "primary": true, "verified": true }]);
        assert_eq!(
            primary_email(&fullwidth),
            Some(("me@example.com".into(), true))
        );
        let mixed =
            json!([{ "email": "\u{0430}dmin@example.com", "primary": true, "verified": true }]);
        assert_eq!(primary_email(&mixed), None);
        let unverified = json!([{ "email": "a@example.com", "primary": true, "verified": false }]);
        assert_eq!(
            primary_email(&unverified),
            Some(("a@example.com".into(), false))
        );
    }
}
