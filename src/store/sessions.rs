//! Sessions and their refresh-token families.
//!
//! A session belongs to a client: Tollgate's own sign-in (`tollgate`, which gets whatever
//! the user's roles grant) or an OAuth client (with the scopes the user granted it, and
//! usually the sign-in session it came from as its parent: ending a session ends its
//! children too).

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::users::{USER_BY_ID, fetch_user};
use super::{BeginWrite, Store, StoreResult, UserRecord, on_pool};

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
    /// Scopes granted to an OAuth client; `None` for Tollgate's own sign-in.
    pub scope: Option<String>,
    /// The sign-in session this one derives from.
    pub parent_id: Option<String>,
    /// The protected resource its tokens are bound to (RFC 8707); `None`: Tollgate.
    pub resource: Option<String>,
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
    pub auth_time: i64,
    pub now: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// The first refresh token's hash; `None` when the grant has no refresh token.
    pub refresh_hash: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// Set: the session is created only while this session is live, and ends with it.
    pub parent_id: Option<&'a str>,
    pub resource: Option<&'a str>,
}

impl NewSession<'_> {
    /// The record of the session this describes, as inserted.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.to_string(),
            user_id: self.user_id.to_string(),
            client_id: self.client_id.to_string(),
            amr: self.amr.to_string(),
            auth_time: self.auth_time,
            created_at: self.now,
            last_used_at: self.now,
            idle_expires_at: self.idle_expires_at,
            expires_at: self.expires_at,
            revoked_at: None,
            user_agent: self.user_agent.map(str::to_string),
            ip: self.ip.map(str::to_string),
            scope: self.scope.map(str::to_string),
            parent_id: self.parent_id.map(str::to_string),
            resource: self.resource.map(str::to_string),
        }
    }
}

/// What presenting a refresh token did, decided inside one transaction.
#[derive(Debug)]
pub enum RefreshSpend {
    /// No such token, its session/user is no longer live, or it belongs to another client.
    /// Nothing changed.
    Unknown,
    /// This call spent the token and stored the successor. The user is read in the same
    /// transaction: nothing after the commit can fail and leave the client without the
    /// successor it would then be refused for presenting its old token again.
    Rotated {
        session: SessionRecord,
        user: UserRecord,
    },
    /// The token had been spent before, at `spent_at`; `successor_sealed` is what the
    /// winning call stored.
    AlreadySpent {
        session: SessionRecord,
        user: UserRecord,
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
            scope: $row.try_get("scope")?,
            parent_id: $row.try_get("parent_id")?,
            resource: $row.try_get("resource")?,
        }
    };
}

/// Inserts a session (and its first refresh token) inside the open write transaction
/// `$tx`; evaluates to whether it was inserted: not when the user is disabled or the
/// parent session is no longer live.
macro_rules! insert_session {
    ($tx:expr, $s:expr) => {{
        let s: &$crate::store::NewSession<'_> = $s;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, user_id, client_id, amr, auth_time, created_at, last_used_at,
                                   idle_expires_at, expires_at, user_agent, ip, scope, parent_id, resource)
             SELECT $1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND NOT disabled)
               AND ($12 IS NULL OR EXISTS (SELECT 1 FROM sessions p WHERE p.id = $12
                    AND p.revoked_at IS NULL AND p.expires_at > $6 AND p.idle_expires_at > $6))",
        )
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.client_id)
        .bind(s.amr)
        .bind(s.auth_time)
        .bind(s.now)
        .bind(s.idle_expires_at)
        .bind(s.expires_at)
        .bind(s.user_agent)
        .bind(s.ip)
        .bind(s.scope)
        .bind(s.parent_id)
        .bind(s.resource)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1;
        if inserted && let Some(hash) = s.refresh_hash {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(hash)
            .bind(s.id)
            .bind(s.now)
            .execute(&mut *$tx)
            .await?;
        }
        inserted
    }};
}
pub(crate) use insert_session;

/// Revokes the live sessions of one client inside the open write transaction `$tx`: one
/// user's (consent withdrawn) or, with an empty user id, everyone's (client deleted).
/// Evaluates to the revoked ids; the caller's transaction carries the audit entry.
macro_rules! revoke_client_sessions {
    ($tx:expr, $client_id:expr, $user_id:expr, $reason:expr, $now:expr) => {{
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             WHERE client_id = $3 AND ($4 = '' OR user_id = $4) AND revoked_at IS NULL RETURNING id",
        )
        .bind($now)
        .bind($reason)
        .bind($client_id)
        .bind($user_id)
        .fetch_all(&mut *$tx)
        .await?;
        let mut ids: Vec<String> = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(sqlx::Row::try_get(r, "id")?);
        }
        ids
    }};
}
pub(crate) use revoke_client_sessions;

/// The columns `session_from_row!` reads, for queries over `sessions s`.
const SESSION_COLUMNS: &str = "s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.created_at, s.last_used_at, \
     s.idle_expires_at, s.expires_at, s.revoked_at, s.user_agent, s.ip, s.scope, s.parent_id, s.resource";

impl Store {
    /// Creates a session with its first refresh token, atomically. Returns `false` (and
    /// writes nothing) when the user was disabled in the meantime.
    pub async fn insert_session(&self, s: &NewSession<'_>, audit: &Entry) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if !insert_session!(tx, s) {
                return Ok(false);
            }
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
        client_id: &str,
        successor_hash: &str,
        successor_sealed: &str,
        now: i64,
        idle_ttl_secs: i64,
    ) -> StoreResult<RefreshSpend> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Another client's token is neither spent nor counted as reuse: it is simply
            // not a token this client can present.
            let won = sqlx::query(
                "UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2
                 WHERE token_hash = $3 AND spent_at IS NULL
                   AND EXISTS (SELECT 1 FROM sessions s
                               WHERE s.id = refresh_tokens.session_id AND s.client_id = $4)",
            )
            .bind(now)
            .bind(successor_sealed)
            .bind(token_hash)
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS}, r.spent_at, r.successor_sealed, u.disabled
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
                 WHERE r.token_hash = $1 AND s.client_id = $2"
            ));
            let row = sqlx::query(sql)
                .bind(token_hash)
                .bind(client_id)
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
            let Some(user) = fetch_user!(&mut *tx, USER_BY_ID, &session.user_id) else {
                return Ok(RefreshSpend::Unknown);
            };
            if !won {
                let spent_at: Option<i64> = row.try_get("spent_at")?;
                let sealed: Option<String> = row.try_get("successor_sealed")?;
                tx.commit().await?;
                return Ok(RefreshSpend::AlreadySpent {
                    session,
                    user,
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
            Ok(RefreshSpend::Rotated { session, user })
        })
    }

    /// The session a refresh token belongs to, whatever its state, and whether the token
    /// is still unspent (logout, introspection, revocation).
    pub async fn session_for_refresh(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, bool)>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS}, r.spent_at FROM refresh_tokens r
                 JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1"
            ));
            let row = sqlx::query(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let unspent = row.try_get::<Option<i64>, _>("spent_at")?.is_none();
            Ok(Some((session_from_row!(row), unspent)))
        })
    }

    /// Revokes one session (if `user_id` is given, only when it belongs to that user) with
    /// the client sessions derived from it. Returns the ids revoked by this call, the
    /// named session first; empty when it was not live (only a revocation is audited).
    pub async fn revoke_session(
        &self,
        id: &str,
        user_id: Option<&str>,
        reason: &str,
        now: i64,
        audit: Entry,
    ) -> StoreResult<Vec<String>> {
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
                return Ok(Vec::new());
            };
            // Client sessions derived from it end with it, except those granted
            // offline_access: they were meant to outlive the sign-in.
            let children = sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = 'parent_ended'
                 WHERE parent_id = $2 AND revoked_at IS NULL
                   AND (scope IS NULL OR ' ' || scope || ' ' NOT LIKE '% offline_access %')
                 RETURNING id",
            )
            .bind(now)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut ids = vec![id.to_string()];
            for c in &children {
                ids.push(c.try_get("id")?);
            }
            let audit = audit.about(row.try_get::<String, _>("user_id")?);
            let audit = if ids.len() > 1 {
                audit.with("client_sessions", ids[1..].to_vec())
            } else {
                audit
            };
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(ids)
        })
    }

    /// Raises a live session of `user_id` with `client_id` after a step-up: its methods become `amr` and
    /// its authentication time `auth_time`, so refreshes keep both. `None` when the
    /// session is not live (or not the user's); nothing is written then.
    pub async fn raise_session(
        &self,
        id: &str,
        user_id: &str,
        client_id: &str,
        amr: &str,
        auth_time: i64,
        audit: &Entry,
    ) -> StoreResult<Option<SessionRecord>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE sessions SET amr = $1, auth_time = $2
                 WHERE id = $3 AND user_id = $4 AND client_id = $5 AND revoked_at IS NULL
                   AND expires_at > $2 AND idle_expires_at > $2
                 RETURNING {}",
                SESSION_COLUMNS.replace("s.", "")
            ));
            let row = sqlx::query(sql)
                .bind(amr)
                .bind(auth_time)
                .bind(id)
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let session = session_from_row!(row);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(Some(session))
        })
    }

    /// The user's sessions that are still live at `now`, newest first.
    pub async fn live_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s
                 WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.idle_expires_at > $2
                 ORDER BY s.created_at DESC, s.id"
            ));
            let rows = sqlx::query(sql)
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
            // Sessions, single revoked tokens, deleted clients (as `client:<id>`) and
            // narrowed ones (`client-tokens:<id>`).
            let rows = sqlx::query(
                "SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1
                 UNION ALL SELECT id, revoked_at FROM revoked_tokens WHERE revoked_at >= $1
                 UNION ALL SELECT 'client:' || id, deleted_at FROM oauth_clients WHERE deleted_at >= $1
                 UNION ALL SELECT 'client-tokens:' || id, tokens_valid_after FROM oauth_clients
                           WHERE tokens_valid_after >= $1",
            )
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
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s
                 WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND s.idle_expires_at > $1
                 ORDER BY s.created_at DESC, s.id LIMIT $2 OFFSET $3"
            ));
            let rows = sqlx::query(sql)
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
