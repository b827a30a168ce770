//! Sessions: sign-in results, refresh-token rotation, revocation and access tokens.
//!
//! A session is a refresh-token family. Each refresh spends the presented token and issues
//! its successor in one transaction (`Store::spend_refresh_token`). A spent token presented
//! again within the grace window gets that same successor (racing browser tabs); after the
//! window it is treated as stolen and the whole session is revoked.

pub mod api_keys;
pub mod assertion;
pub mod cookies;
pub mod credentials;
pub mod fanout;
pub mod refresh;
pub mod revocation;
pub mod revocations;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Context, Outcome};
use crate::authz::{self, RoleMap};
use crate::clock;
use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};
use crate::error::{Error, Result};
use crate::secret;
use crate::store::{NewSession, RefreshSpend, SessionRecord, Store, UserRecord};
pub use revocation::RevocationSet;
pub use revocations::Revocations;
pub use tokens::{AccessClaims, AccessTokens, TokenSubject};

pub use crate::authz::FIRST_PARTY_CLIENT;

pub use crate::audit::ClientInfo;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A session unused for this long ends even before its absolute lifetime.
    pub idle_ttl: Duration,
    /// How long a spent refresh token still yields its successor (racing tabs).
    pub refresh_grace: Duration,
    /// `Path` of the refresh cookie: `/` (the gateway refreshes in flight), or a prefix of
    /// `/auth/refresh` for forward-auth deployments, where the app must never see it.
    pub refresh_cookie_path: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub idle_ttl: Option<DurationValue>,
    pub refresh_grace: Option<DurationValue>,
    pub refresh_cookie_path: Option<String>,
}

/// `[session]`, resolved: idle 7 days, grace 10 s, the refresh cookie on `/`.
pub fn resolve_config(
    s: SessionSection,
    duration: SectionDuration<'_>,
) -> Result<SessionConfig, ConfigError> {
    let session = SessionConfig {
        idle_ttl: duration("session.idle_ttl", s.idle_ttl, "7d", false)?,
        refresh_grace: duration("session.refresh_grace", s.refresh_grace, "10s", true)?,
        refresh_cookie_path: s.refresh_cookie_path.unwrap_or_else(|| "/".into()),
    };
    if !["/", "/auth", "/auth/", "/auth/refresh"].contains(&session.refresh_cookie_path.as_str()) {
        return Err(invalid(
            "session.refresh_cookie_path",
            "\"/\", \"/auth/\" or \"/auth/refresh\" (it must cover /auth/refresh)",
            &session.refresh_cookie_path,
        ));
    }
    Ok(session)
}

/// What a new session is: whose client it belongs to, what it may do, where it came from.
pub struct SessionTerms<'a> {
    pub client_id: &'a str,
    /// Scopes granted to an OAuth client; `None` for Tollgate's own sign-in.
    pub scope: Option<&'a str>,
    /// The sign-in session it derives from (it ends with it).
    pub parent_id: Option<&'a str>,
    pub auth_time: i64,
    /// Space-separated authentication methods (RFC 8176).
    pub amr: &'a str,
    /// The protected resource its tokens are bound to (RFC 8707); `None`: Tollgate.
    pub resource: Option<&'a str>,
}

/// A session about to be created: id, first refresh token and deadlines.
pub struct SessionDraft {
    pub id: String,
    pub refresh: Option<String>,
    refresh_hash: Option<String>,
    pub now: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
}

impl SessionDraft {
    /// The row to insert for `user_id` on these terms.
    pub fn session<'a>(
        &'a self,
        user_id: &'a str,
        terms: &'a SessionTerms<'a>,
        client: &'a ClientInfo,
    ) -> NewSession<'a> {
        NewSession {
            id: &self.id,
            user_id,
            client_id: terms.client_id,
            amr: terms.amr,
            auth_time: terms.auth_time,
            now: self.now,
            idle_expires_at: self.idle_expires_at,
            expires_at: self.expires_at,
            user_agent: client.user_agent.as_deref(),
            ip: client.ip.as_deref(),
            refresh_hash: self.refresh_hash.as_deref(),
            scope: terms.scope,
            parent_id: terms.parent_id,
            resource: terms.resource,
        }
    }
}

/// A freshly issued token pair.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub access_claims: AccessClaims,
    /// `None` for a client grant without refresh tokens.
    pub refresh_token: Option<String>,
    /// When the refresh token stops working at the latest (idle or absolute end).
    pub refresh_expires_at: i64,
    pub user: UserRecord,
    pub session: SessionRecord,
}

pub struct Sessions {
    store: Store,
    tokens: Arc<AccessTokens>,
    revocations: Arc<Revocations>,
    roles: RoleMap,
    cfg: SessionConfig,
    absolute_ttl_secs: i64,
}

impl Sessions {
    pub fn new(
        store: Store,
        tokens: Arc<AccessTokens>,
        revocations: Arc<Revocations>,
        roles: RoleMap,
        cfg: SessionConfig,
        absolute_ttl: std::time::Duration,
    ) -> Sessions {
        Sessions {
            store,
            tokens,
            revocations,
            roles,
            cfg,
            absolute_ttl_secs: absolute_ttl.as_secs() as i64,
        }
    }

    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.tokens
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Starts a session of Tollgate's own sign-in for an authenticated user.
    pub async fn start(
        &self,
        user: UserRecord,
        amr: &[&str],
        client: &ClientInfo,
    ) -> Result<Issued> {
        let draft = self.draft(true);
        let amr = amr.join(" ");
        let terms = SessionTerms {
            client_id: FIRST_PARTY_CLIENT,
            scope: None,
            parent_id: None,
            auth_time: draft.now,
            amr: &amr,
            resource: None,
        };
        let new = draft.session(&user.id, &terms, client);
        let audit = Context::user(&user.id, client.clone())
            .entry("auth.login", Outcome::Success, Some(&user.id))
            .with("session_id", new.id)
            .with("amr", amr.as_str());
        if !self.store.insert_session(&new, &audit).await? {
            return Err(Error::AccountDisabled);
        }
        let session = new.record();
        self.issue(user, &session, draft.refresh, None)
    }

    /// A new session id, its first refresh token (when `refresh`) and its deadlines, for
    /// whoever inserts the session in its own transaction (`start`, a code exchange). A
    /// session without a refresh token lives as long as its one access token.
    pub fn draft(&self, refresh: bool) -> SessionDraft {
        let now = clock::now();
        let (idle_expires_at, expires_at) = if refresh {
            let expires_at = now + self.absolute_ttl_secs;
            (
                (now + self.cfg.idle_ttl.as_secs() as i64).min(expires_at),
                expires_at,
            )
        } else {
            let end = now + self.tokens.ttl_secs();
            (end, end)
        };
        let refresh = refresh.then(secret::generate);
        SessionDraft {
            id: uuid::Uuid::new_v4().to_string(),
            refresh_hash: refresh.as_deref().map(secret::digest_hex),
            refresh,
            now,
            idle_expires_at,
            expires_at,
        }
    }

    /// Spends a refresh token of Tollgate's own sign-in and returns its successor.
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<Issued> {
        self.refresh_as(refresh_token, FIRST_PARTY_CLIENT, None, client)
            .await
    }

    /// Spends `refresh_token`, which must belong to `client_id`, and returns its
    /// successor with a new access token, whose scopes are `narrowed` when given (the
    /// caller has checked them against the grant; the session keeps its grant).
    pub async fn refresh_as(
        &self,
        refresh_token: &str,
        client_id: &str,
        narrowed: Option<&[String]>,
        client: &ClientInfo,
    ) -> Result<Issued> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(Error::InvalidRefreshToken);
        }
        let now = clock::now();
        let successor = secret::generate();
        let sealed = refresh::seal(refresh_token, &successor);
        let spend = self
            .store
            .spend_refresh_token(
                &secret::digest_hex(refresh_token),
                client_id,
                &secret::digest_hex(&successor),
                &sealed,
                now,
                self.cfg.idle_ttl.as_secs() as i64,
            )
            .await?;
        let (session, user, successor) = match spend {
            RefreshSpend::Unknown => return Err(Error::InvalidRefreshToken),
            RefreshSpend::Rotated { session, user } => (session, user, successor),
            RefreshSpend::AlreadySpent {
                session,
                user,
                spent_at,
                successor_sealed,
            } => {
                let in_grace = now - spent_at <= self.cfg.refresh_grace.as_secs() as i64;
                match successor_sealed.and_then(|s| refresh::open(refresh_token, &s)) {
                    Some(same) if in_grace => (session, user, same),
                    _ => {
                        self.revoke_for_reuse(&session.id, now, client).await?;
                        return Err(Error::RefreshTokenReused);
                    }
                }
            }
        };
        // The spend refused disabled users and dead sessions (and rolled back).
        self.issue(user, &session, Some(successor), narrowed)
    }

    async fn revoke_for_reuse(
        &self,
        session_id: &str,
        now: i64,
        client: &ClientInfo,
    ) -> Result<()> {
        let audit = Context::anonymous(client.clone())
            .entry("session.refresh_reuse", Outcome::Denied, None)
            .with("session_id", session_id);
        let mut revoked = self
            .store
            .revoke_session(session_id, None, "refresh_token_reused", now, audit)
            .await?;
        if revoked.is_empty() {
            revoked.push(session_id.to_string());
        }
        self.revocations.announce(&revoked, now).await;
        tracing::warn!(
            session_id,
            event = "refresh_token_reused",
            "spent refresh token presented after its grace window; session revoked"
        );
        Ok(())
    }

    /// Mints the access token of `session` for `user` and packs it with `refresh_token`.
    /// Tollgate's own sessions get every scope the user's roles grant now; a client's
    /// session gets what was granted to it (or `narrowed`), less any role scope the user
    /// has lost since. A client's token says no more about the user than its scopes
    /// allow: the address with `email`, the role names with `roles`.
    pub fn issue(
        &self,
        user: UserRecord,
        session: &SessionRecord,
        refresh_token: Option<String>,
        narrowed: Option<&[String]>,
    ) -> Result<Issued> {
        let role_scopes = self.roles.scopes_for(user.roles.iter().map(String::as_str));
        let scopes: Vec<String> = match narrowed.map(|n| n.join(" ")).or(session.scope.clone()) {
            None => role_scopes,
            Some(granted) => granted
                .split_ascii_whitespace()
                .filter(|s| authz::is_standard_scope(s) || role_scopes.iter().any(|r| r == s))
                .map(str::to_string)
                .collect(),
        };
        let amr: Vec<String> = session.amr.split_whitespace().map(str::to_string).collect();
        let first_party = session.client_id == FIRST_PARTY_CLIENT;
        let granted = |s: &str| first_party || scopes.iter().any(|g| g == s);
        let (access_token, access_claims) = self.tokens.mint(&TokenSubject {
            user_id: &user.id,
            email: if granted("email") { &user.email } else { "" },
            email_verified: granted("email") && user.email_verified,
            session_id: &session.id,
            client_id: &session.client_id,
            scopes: &scopes,
            roles: if granted("roles") { &user.roles } else { &[] },
            auth_time: session.auth_time,
            amr: &amr,
            service: false,
            audience: session.resource.as_deref(),
            act: None,
            not_after: None,
        })?;
        Ok(Issued {
            access_token,
            access_claims,
            refresh_token,
            refresh_expires_at: session.idle_expires_at.min(session.expires_at),
            user,
            session: session.clone(),
        })
    }

    /// Raises the session `session_id` of `user` after a step-up that proved `factor`
    /// (an RFC 8176 value; `pwd` for a password given again): `amr` gains it (and `mfa`
    /// for a second factor), `auth_time` becomes now. The session keeps its refresh token,
    /// whose successors carry the raised state; the new access token is returned alone.
    pub async fn raise(
        &self,
        session_id: &str,
        user: UserRecord,
        amr: &[String],
        factor: &str,
        client: &ClientInfo,
    ) -> Result<Issued> {
        let mut raised: Vec<&str> = amr.iter().map(String::as_str).collect();
        let extra: &[&str] = if factor == "pwd" {
            &["pwd"]
        } else {
            &[factor, "mfa"]
        };
        for m in extra {
            if !raised.contains(m) {
                raised.push(m);
            }
        }
        let raised = raised.join(" ");
        let audit = Context::user(&user.id, client.clone())
            .entry("auth.step_up", Outcome::Success, Some(&user.id))
            .with("session_id", session_id)
            .with("amr", raised.as_str());
        let session = self
            .store
            .raise_session(
                session_id,
                &user.id,
                FIRST_PARTY_CLIENT,
                &raised,
                clock::now(),
                &audit,
            )
            .await?
            .ok_or(Error::SessionRevoked)?;
        self.issue(user, &session, None, None)
    }

    /// Ends one session. With `owner`, only that user's session can be ended (others look
    /// like unknown ids). Returns whether a live session was ended.
    pub async fn end(
        &self,
        session_id: &str,
        owner: Option<&str>,
        reason: &str,
        ctx: &Context,
    ) -> Result<bool> {
        let now = clock::now();
        let action = if reason == "logout" {
            "auth.logout"
        } else {
            "session.revoked"
        };
        let audit = ctx
            .entry(action, Outcome::Success, None)
            .with("session_id", session_id)
            .with("reason", reason);
        let revoked = self
            .store
            .revoke_session(session_id, owner, reason, now, audit)
            .await?;
        if !revoked.is_empty() {
            self.revocations.announce(&revoked, now).await;
        } else if owner.is_none() {
            // Already revoked (maybe by another node): make sure this one knows.
            self.revocations
                .announce(&[session_id.to_string()], now)
                .await;
        }
        Ok(!revoked.is_empty())
    }

    /// Ends the session a refresh token belongs to (logout when the access token is gone).
    pub async fn end_by_refresh_token(
        &self,
        refresh_token: &str,
        reason: &str,
        ctx: &Context,
    ) -> Result<bool> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Ok(false);
        }
        match self
            .store
            .session_for_refresh(&secret::digest_hex(refresh_token))
            .await?
        {
            Some((session, _)) => self.end(&session.id, None, reason, ctx).await,
            None => Ok(false),
        }
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<SessionRecord>> {
        Ok(self.store.live_sessions(user_id, clock::now()).await?)
    }

    /// Verifies an access token for Tollgate itself (signature, claims, audience,
    /// revocation).
    pub fn verify(&self, access_token: &str) -> Result<Arc<AccessClaims>> {
        let claims = self.tokens.verify(access_token)?;
        crate::telemetry::record_user(&claims.sub);
        Ok(claims)
    }

    /// Whether the session `session_id` is revoked (the in-memory set).
    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.revocations.set().is_revoked(session_id)
    }

    /// Verifies an access token for any audience: Tollgate or one of the protected
    /// resources. The gateway's policy decides whether it fits the route.
    pub fn verify_any_audience(&self, access_token: &str) -> Result<Arc<AccessClaims>> {
        let claims = self.tokens.verify_any_audience(access_token)?;
        crate::telemetry::record_user(&claims.sub);
        Ok(claims)
    }
}
