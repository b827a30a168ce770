//! Sessions and their refresh-token families.

use sqlx::Row;

use super::audit::append_audit;
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::Entry;

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub amr: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionRecord {
    /// Not revoked and inside both its idle and absolute lifetime.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.idle_expires_at
    }
}

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub client_id: &'a str,
    pub amr: &'a str,
    pub now: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub refresh_hash: &'a str,
}

/// What presenting a refresh token did, decided inside one transaction.
#[derive(Debug)]
pub enum RefreshSpend {
    /// No such token, or its session/user is no longer live. Nothing changed.
    Unknown,
    /// This call spent the token and stored the successor.
    Rotated { session: SessionRecord },
    /// The token had been spent before, at `spent_at`; `successor_sealed` is what the
    /// winning call stored.
    AlreadySpent {
        session: SessionRecord,
        spent_at: i64,
        successor_sealed: Option<String>,
    },
}

macro_rules! session_from_row {
    ($row:expr) => {
        SessionRecord {
            id: $row.try_get("id")?,
            user_id: $row.try_get("user_id")?,
            client_id: $row.try_get("client_id")?,
            amr: $row.try_get("amr")?,
            auth_time: $row.try_get("auth_time")?,
            created_at: $row.try_get("created_at")?,
            last_used_at: $row.try_get("last_used_at")?,
            idle_expires_at: $row.try_get("idle_expires_at")?,
            expires_at: $row.try_get("expires_at")?,
            revoked_at: $row.try_get("revoked_at")?,
            user_agent: $row.try_get("user_agent")?,
            ip: $row.try_get("ip")?,
        }
    };
}

impl Store {
    /// Creates a session with its first refresh token, atomically. Returns `false` (and
    /// writes nothing) when the user was disabled in the meantime.
    pub async fn insert_session(&self, s: &NewSession<'_>, audit: &Entry) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, user_id, client_id, amr, auth_time, created_at, last_used_at,
                                       idle_expires_at, expires_at, user_agent, ip)
                 SELECT $1, $2, $3, $4, $5, $5, $5, $6, $7, $8, $9
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND NOT disabled)",
            )
            .bind(s.id)
            .bind(s.user_id)
            .bind(s.client_id)
            .bind(s.amr)
            .bind(s.now)
            .bind(s.idle_expires_at)
            .bind(s.expires_at)
            .bind(s.user_agent)
            .bind(s.ip)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                return Ok(false);
            }
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
                .bind(s.refresh_hash)
                .bind(s.id)
                .bind(s.now)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The atomic "spend this token, issue its successor" step.
    ///
    /// The conditional `UPDATE … WHERE spent_at IS NULL` is the arbiter: of any number of
    /// concurrent calls exactly one sees a row affected and inserts the successor; the
    /// others observe the token as already spent (PostgreSQL re-checks the condition after
    /// the winner commits; SQLite serialises the immediate transactions).
    pub async fn spend_refresh_token(
        &self,
        token_hash: &str,
        successor_hash: &str,
        successor_sealed: &str,
        now: i64,
        idle_ttl_secs: i64,
    ) -> StoreResult<RefreshSpend> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let won = sqlx::query(
                "UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2
                 WHERE token_hash = $3 AND spent_at IS NULL",
            )
            .bind(now)
            .bind(successor_sealed)
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let row = sqlx::query(
                "SELECT s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.created_at, s.last_used_at,
                        s.idle_expires_at, s.expires_at, s.revoked_at, s.user_agent, s.ip,
                        r.spent_at, r.successor_sealed, u.disabled
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
                 WHERE r.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(RefreshSpend::Unknown);
            };
            let mut session = session_from_row!(row);
            let disabled: bool = row.try_get("disabled")?;
            if disabled || !session.is_live(now) {
                // Dropping the transaction rolls the spend back: a dead session's token
                // stays as it was.
                return Ok(RefreshSpend::Unknown);
            }
            if !won {
                let spent_at: Option<i64> = row.try_get("spent_at")?;
                let sealed: Option<String> = row.try_get("successor_sealed")?;
                tx.commit().await?;
                return Ok(RefreshSpend::AlreadySpent {
                    session,
                    spent_at: spent_at.unwrap_or(now),
                    successor_sealed: sealed,
                });
            }
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
                .bind(successor_hash)
                .bind(&session.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            session.last_used_at = now;
            session.idle_expires_at = (now + idle_ttl_secs).min(session.expires_at);
            // Re-checked under the row lock: a logout or disable that committed since the
            // read above must win (dropping the transaction rolls the spend back).
            let still_live = sqlx::query(
                "UPDATE sessions SET last_used_at = $1, idle_expires_at = $2 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(session.idle_expires_at)
            .bind(&session.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !still_live {
                return Ok(RefreshSpend::Unknown);
            }
            tx.commit().await?;
            Ok(RefreshSpend::Rotated { session })
        })
    }

    /// The session a refresh token belongs to, whatever its state (for logout).
    pub async fn session_id_for_refresh(&self, token_hash: &str) -> StoreResult<Option<String>> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| r.try_get("session_id")).transpose()?)
        })
    }

    /// Revokes one session (if `user_id` is given, only when it belongs to that user).
    /// Returns whether a live session was revoked by this call (only then is it audited).
    pub async fn revoke_session(
        &self,
        id: &str,
        user_id: Option<&str>,
        reason: &str,
        now: i64,
        audit: Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
                 WHERE id = $3 AND revoked_at IS NULL AND ($4 = '' OR user_id = $4)
                 RETURNING user_id",
            )
            .bind(now)
            .bind(reason)
            .bind(id)
            .bind(user_id.unwrap_or(""))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            let audit = audit.about(row.try_get::<String, _>("user_id")?);
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The user's sessions that are still live at `now`, newest first.
    pub async fn live_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.created_at, s.last_used_at,
                        s.idle_expires_at, s.expires_at, s.revoked_at, s.user_agent, s.ip
                 FROM sessions s
                 WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.idle_expires_at > $2
                 ORDER BY s.created_at DESC, s.id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(session_from_row!(row));
            }
            Ok(out)
        })
    }

    /// `(session id, revoked_at)` of sessions revoked at or after `since`: what the
    /// in-memory revocation set loads at start and polls for.
    pub async fn revoked_since(&self, since: i64) -> StoreResult<Vec<(String, i64)>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query("SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("id")?, row.try_get("revoked_at")?));
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Live sessions of every user, newest first, one page (the admin API).
    pub async fn all_live_sessions(
        &self,
        now: i64,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.created_at, s.last_used_at,
                        s.idle_expires_at, s.expires_at, s.revoked_at, s.user_agent, s.ip
                 FROM sessions s
                 WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND s.idle_expires_at > $1
                 ORDER BY s.created_at DESC, s.id LIMIT $2 OFFSET $3",
            )
            .bind(now)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(session_from_row!(row));
            }
            Ok(out)
        })
    }
}
