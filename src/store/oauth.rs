//! Authorization codes, consents and singly revoked tokens.
//!
//! A code is redeemed by one transaction that spends it and creates the client's session:
//! of racing exchanges exactly one wins (`UPDATE … WHERE used_at IS NULL`), and the
//! session it created is recorded on the code, so a replay can revoke it.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::sessions::{insert_session, revoke_client_sessions};
use super::{BeginWrite, NewSession, Store, StoreResult, on_pool};

/// An authorization code as stored.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub client_id: String,
    pub user_id: String,
    /// The sign-in session the user authorized from.
    pub browser_session: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The session the winning exchange created.
    pub session_id: Option<String>,
    /// The protected resource the tokens are to be bound to (RFC 8707).
    pub resource: Option<String>,
}

pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub browser_session: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub auth_time: i64,
    pub amr: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub resource: Option<&'a str>,
}

/// What redeeming a code did, decided in one transaction.
#[derive(Debug)]
pub enum Redeemed {
    /// This call spent the code and created the session.
    Issued,
    /// The code had been redeemed before: `session_id` is what that exchange created.
    Replayed { session_id: Option<String> },
    /// Unknown or expired code, or the user or sign-in session is no longer live.
    Invalid,
}

/// A consent on record.
#[derive(Debug, Clone, Default)]
pub struct ConsentRecord {
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The protected resources it was given for (RFC 8707).
    pub resources: Vec<String>,
    pub granted_at: i64,
}

fn words(list: String) -> Vec<String> {
    list.split_ascii_whitespace().map(str::to_string).collect()
}

impl Store {
    pub async fn insert_code(&self, c: &NewCode<'_>) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO oauth_codes (code_hash, client_id, user_id, browser_session, redirect_uri, scope,
                                          nonce, code_challenge, auth_time, amr, created_at, expires_at, resource)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(c.code_hash)
            .bind(c.client_id)
            .bind(c.user_id)
            .bind(c.browser_session)
            .bind(c.redirect_uri)
            .bind(c.scope)
            .bind(c.nonce)
            .bind(c.code_challenge)
            .bind(c.auth_time)
            .bind(c.amr)
            .bind(c.now)
            .bind(c.expires_at)
            .bind(c.resource)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<CodeRecord>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT client_id, user_id, browser_session, redirect_uri, scope, nonce, code_challenge,
                        auth_time, amr, expires_at, used_at, session_id, resource
                 FROM oauth_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            Ok(Some(CodeRecord {
                client_id: row.try_get("client_id")?,
                user_id: row.try_get("user_id")?,
                browser_session: row.try_get("browser_session")?,
                redirect_uri: row.try_get("redirect_uri")?,
                scope: row.try_get("scope")?,
                nonce: row.try_get("nonce")?,
                code_challenge: row.try_get("code_challenge")?,
                auth_time: row.try_get("auth_time")?,
                amr: row.try_get("amr")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
                session_id: row.try_get("session_id")?,
                resource: row.try_get("resource")?,
            }))
        })
    }

    /// Spends the code and creates `session` (derived from the code's sign-in session),
    /// atomically; the audit entry goes in the same transaction.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        session: &NewSession<'_>,
        audit: &Entry,
    ) -> StoreResult<Redeemed> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let won = sqlx::query(
                "UPDATE oauth_codes SET used_at = $1, session_id = $2
                 WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(session.now)
            .bind(session.id)
            .bind(code_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won {
                let row =
                    sqlx::query("SELECT used_at, session_id FROM oauth_codes WHERE code_hash = $1")
                        .bind(code_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(row) = row else {
                    return Ok(Redeemed::Invalid);
                };
                let used: Option<i64> = row.try_get("used_at")?;
                return Ok(match used {
                    Some(_) => Redeemed::Replayed {
                        session_id: row.try_get("session_id")?,
                    },
                    None => Redeemed::Invalid,
                });
            }
            // Dropping the transaction rolls the spend back when the user was disabled
            // or signed out in the meantime.
            if !insert_session!(tx, session) {
                return Ok(Redeemed::Invalid);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(Redeemed::Issued)
        })
    }

    /// What `user_id` has allowed `client_id`, if anything.
    pub async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> StoreResult<Option<ConsentRecord>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT scopes, resources, granted_at FROM oauth_consents
                 WHERE user_id = $1 AND client_id = $2",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            Ok(Some(ConsentRecord {
                client_id: client_id.to_string(),
                scopes: words(row.try_get("scopes")?),
                resources: words(row.try_get("resources")?),
                granted_at: row.try_get("granted_at")?,
            }))
        })
    }

    /// Records that the user allowed the client `scopes` at `resources` (replacing what
    /// was there: the caller passes the union when it means to add).
    pub async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        resources: &[String],
        now: i64,
        audit: &Entry,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO oauth_consents (user_id, client_id, scopes, resources, granted_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = $3, resources = $4, granted_at = $5",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(scopes.join(" "))
            .bind(resources.join(" "))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The user's consents, by client.
    pub async fn consents_of(&self, user_id: &str) -> StoreResult<Vec<ConsentRecord>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT client_id, scopes, resources, granted_at FROM oauth_consents WHERE user_id = $1 ORDER BY client_id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ConsentRecord {
                    client_id: row.try_get("client_id")?,
                    scopes: words(row.try_get("scopes")?),
                    resources: words(row.try_get("resources")?),
                    granted_at: row.try_get("granted_at")?,
                });
            }
            Ok(out)
        })
    }

    /// Withdraws a consent and ends the user's sessions with that client. `None` when
    /// there was no consent and no session; else the revoked session ids.
    pub async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let had_consent =
                sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            // A code issued a moment ago must not create a session after the withdrawal.
            sqlx::query(
                "DELETE FROM oauth_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            let revoked = revoke_client_sessions!(tx, client_id, user_id, "consent_withdrawn", now);
            if !had_consent && revoked.is_empty() {
                return Ok(None);
            }
            let audit = audit.clone().with("sessions_revoked", revoked.len());
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    /// Revokes one access token by its session-like id (a client-credentials token),
    /// remembered until `expires_at`. Returns whether it was not revoked before.
    pub async fn revoke_token(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO revoked_tokens (id, revoked_at, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Forgets codes and token revocations that can no longer matter: codes an hour past
    /// their expiry (long enough to still recognise a late replay) and revocations of
    /// tokens that have expired.
    pub async fn prune_oauth(&self, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
                .bind(now - 3600)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
