//! Sessions: sign-in results, refresh-token rotation, revocation and access tokens.
//!
//! A session is a refresh-token family. Each refresh spends the presented token and issues
//! its successor in one transaction (`Store::spend_refresh_token`). A spent token presented
//! again within the grace window gets that same successor (racing browser tabs); after the
//! window it is treated as stolen and the whole session is revoked.

pub mod api_keys;
pub mod assertion;
pub mod fanout;
pub mod keys;
pub mod refresh;
pub mod revocation;
pub mod tokens;

use std::sync::Arc;

use crate::audit::{Context, Outcome};
use crate::authz::RoleMap;
use crate::clock;
use crate::config::SessionConfig;
use crate::error::{Error, Result};
use crate::secret;
use crate::store::{NewSession, RefreshSpend, SessionRecord, Store, UserRecord};
pub use revocation::RevocationSet;
pub use tokens::{AccessClaims, AccessTokens, TokenSubject};

/// The client id of Tollgate's own first-party sign-in (cookie and token mode).
pub const FIRST_PARTY_CLIENT: &str = "tollgate";

/// Where a sign-in came from, kept with the session for the user's session list.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A freshly issued token pair.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub access_claims: AccessClaims,
    pub refresh_token: String,
    /// When the refresh token stops working at the latest (idle or absolute end).
    pub refresh_expires_at: i64,
    pub user: UserRecord,
}

pub struct Sessions {
    store: Store,
    tokens: Arc<AccessTokens>,
    revoked: Arc<RevocationSet>,
    roles: RoleMap,
    cfg: SessionConfig,
    absolute_ttl_secs: i64,
}

impl Sessions {
    pub fn new(
        store: Store,
        tokens: Arc<AccessTokens>,
        revoked: Arc<RevocationSet>,
        roles: RoleMap,
        cfg: SessionConfig,
        absolute_ttl: std::time::Duration,
    ) -> Sessions {
        Sessions {
            store,
            tokens,
            revoked,
            roles,
            cfg,
            absolute_ttl_secs: absolute_ttl.as_secs() as i64,
        }
    }

    pub fn tokens(&self) -> &Arc<AccessTokens> {
        &self.tokens
    }

    /// Starts a session for an authenticated user.
    pub async fn start(
        &self,
        user: UserRecord,
        amr: &[&str],
        client: &ClientInfo,
    ) -> Result<Issued> {
        let now = clock::now();
        let id = uuid::Uuid::new_v4().to_string();
        let refresh = secret::generate();
        let expires_at = now + self.absolute_ttl_secs;
        let idle_expires_at = (now + self.cfg.idle_ttl.as_secs() as i64).min(expires_at);
        let amr = amr.join(" ");
        let audit = Context::user(&user.id, client.clone())
            .entry("auth.login", Outcome::Success, Some(&user.id))
            .with("session_id", id.as_str())
            .with("amr", amr.as_str());
        let created = self
            .store
            .insert_session(
                &NewSession {
                    id: &id,
                    user_id: &user.id,
                    client_id: FIRST_PARTY_CLIENT,
                    amr: &amr,
                    now,
                    idle_expires_at,
                    expires_at,
                    user_agent: client.user_agent.as_deref(),
                    ip: client.ip.as_deref(),
                    refresh_hash: &secret::digest_hex(&refresh),
                },
                &audit,
            )
            .await?;
        if !created {
            return Err(Error::AccountDisabled);
        }
        let session = SessionRecord {
            id,
            user_id: user.id.clone(),
            client_id: FIRST_PARTY_CLIENT.into(),
            amr,
            auth_time: now,
            created_at: now,
            last_used_at: now,
            idle_expires_at,
            expires_at,
            revoked_at: None,
            user_agent: None,
            ip: None,
        };
        self.issue(user, &session, refresh)
    }

    /// Spends `refresh_token` and returns its successor with a new access token.
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<Issued> {
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
                &secret::digest_hex(&successor),
                &sealed,
                now,
                self.cfg.idle_ttl.as_secs() as i64,
            )
            .await?;
        let (session, successor) = match spend {
            RefreshSpend::Unknown => return Err(Error::InvalidRefreshToken),
            RefreshSpend::Rotated { session } => (session, successor),
            RefreshSpend::AlreadySpent {
                session,
                spent_at,
                successor_sealed,
            } => {
                let in_grace = now - spent_at <= self.cfg.refresh_grace.as_secs() as i64;
                match successor_sealed.and_then(|s| refresh::open(refresh_token, &s)) {
                    Some(same) if in_grace => (session, same),
                    _ => {
                        self.revoke_for_reuse(&session.id, now, client).await?;
                        return Err(Error::RefreshTokenReused);
                    }
                }
            }
        };
        let user = self
            .store
            .user_by_id(&session.user_id)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        if user.disabled {
            return Err(Error::InvalidRefreshToken);
        }
        self.issue(user, &session, successor)
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
        self.store
            .revoke_session(session_id, None, "refresh_token_reused", now, audit)
            .await?;
        self.revoked.announce(&[session_id.to_string()], now).await;
        tracing::warn!(
            session_id,
            event = "refresh_token_reused",
            "spent refresh token presented after its grace window; session revoked"
        );
        Ok(())
    }

    fn issue(
        &self,
        user: UserRecord,
        session: &SessionRecord,
        refresh_token: String,
    ) -> Result<Issued> {
        let scopes = self.roles.scopes_for(user.roles.iter().map(String::as_str));
        let amr: Vec<String> = session.amr.split_whitespace().map(str::to_string).collect();
        let (access_token, access_claims) = self.tokens.mint(&TokenSubject {
            user_id: &user.id,
            email: &user.email,
            email_verified: user.email_verified,
            session_id: &session.id,
            client_id: &session.client_id,
            scopes: &scopes,
            roles: &user.roles,
            auth_time: session.auth_time,
            amr: &amr,
        })?;
        Ok(Issued {
            access_token,
            access_claims,
            refresh_token,
            refresh_expires_at: session.idle_expires_at.min(session.expires_at),
            user,
        })
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
        let ended = self
            .store
            .revoke_session(session_id, owner, reason, now, audit)
            .await?;
        if ended || owner.is_none() {
            self.revoked.announce(&[session_id.to_string()], now).await;
        }
        Ok(ended)
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
            .session_id_for_refresh(&secret::digest_hex(refresh_token))
            .await?
        {
            Some(id) => self.end(&id, None, reason, ctx).await,
            None => Ok(false),
        }
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<SessionRecord>> {
        Ok(self.store.live_sessions(user_id, clock::now()).await?)
    }

    /// Verifies an access token (signature, claims, revocation).
    pub fn verify(&self, access_token: &str) -> Result<Arc<AccessClaims>> {
        self.tokens.verify(access_token)
    }
}
