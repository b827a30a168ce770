//! The audit log's rows: appends (inside the caller's transaction or on their own), pages
//! for verification and export, filtered queries for the admin API, checkpoints.

use sqlx::Row;

use super::{BeginWrite, Store, StoreResult, on_pool};
use serde_json::Value;

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Refused before it was tried (locked out, rate limited, not allowed).
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One audit event before it is chained.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at_ms: i64,
    /// A stable dotted name (`auth.login`, `session.revoked`, …); docs/security.md lists them.
    pub action: &'static str,
    pub outcome: Outcome,
    pub actor: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Event-specific facts (a reason, a role, a session id); never a secret.
    pub detail: Value,
}

impl Entry {
    /// The same entry about `subject` (known only inside the store's transaction).
    pub fn about(self, subject: impl Into<String>) -> Entry {
        Entry {
            subject: Some(subject.into()),
            ..self
        }
    }

    /// Adds one detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Entry {
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_string(), value.into());
        }
        self
    }
}

/// An audit entry as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub action: String,
    pub outcome: String,
    pub actor: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON text, exactly as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for [`Store::audit_query`]; every field is optional. Results are newest first,
/// `before_seq` pages backwards.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str =
    "seq, at_ms, action, outcome, actor, subject, ip, user_agent, detail, prev_hash, hash";

macro_rules! audit_from_row {
    ($row:expr) => {
        AuditRecord {
            seq: $row.try_get("seq")?,
            at_ms: $row.try_get("at_ms")?,
            action: $row.try_get("action")?,
            outcome: $row.try_get("outcome")?,
            actor: $row.try_get("actor")?,
            subject: $row.try_get("subject")?,
            ip: $row.try_get("ip")?,
            user_agent: $row.try_get("user_agent")?,
            detail: $row.try_get("detail")?,
            prev_hash: $row.try_get("prev_hash")?,
            hash: $row.try_get("hash")?,
        }
    };
}

/// Appends `$entry` to the chain inside the open write transaction `$tx`. Taking the
/// head row (an `UPDATE`, so PostgreSQL locks it until commit) serialises appends; it is
/// the last thing a transaction does, so the lock is held only until the commit. Rolling
/// the transaction back removes the entry and restores the head.
macro_rules! append_audit {
    ($tx:expr, $entry:expr) => {{
        let entry: &$crate::store::Entry = $entry;
        let head = sqlx::query(
            "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
        )
        .fetch_one(&mut *$tx)
        .await?;
        let seq: i64 = sqlx::Row::try_get(&head, "seq")?;
        let prev: String = sqlx::Row::try_get(&head, "hash")?;
        let detail = entry.detail.to_string();
        let hash = $crate::store::chain::entry_hash(
            &$crate::store::chain::Fields {
                seq,
                at_ms: entry.at_ms,
                action: entry.action,
                outcome: entry.outcome.as_str(),
                actor: &entry.actor,
                subject: entry.subject.as_deref(),
                ip: entry.ip.as_deref(),
                user_agent: entry.user_agent.as_deref(),
                detail: &detail,
            },
            &prev,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, action, outcome, actor, subject, ip, user_agent, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(seq)
        .bind(entry.at_ms)
        .bind(entry.action)
        .bind(entry.outcome.as_str())
        .bind(&entry.actor)
        .bind(entry.subject.as_deref())
        .bind(entry.ip.as_deref())
        .bind(entry.user_agent.as_deref())
        .bind(&detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use append_audit;

impl Store {
    /// Records an event that changes nothing else (a failed sign-in, an admin read).
    pub async fn append_audit(&self, entry: &Entry) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            append_audit!(tx, entry);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` entries after `after_seq`, oldest first (verification, export).
    pub async fn audit_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            ));
            let rows = sqlx::query(sql)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(audit_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Entries matching `f`, newest first.
    pub async fn audit_query(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log
                 WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor = $2)
                   AND ($3 IS NULL OR subject = $3) AND ($4 IS NULL OR outcome = $4)
                   AND ($5 IS NULL OR at_ms >= $5) AND ($6 IS NULL OR at_ms < $6)
                   AND ($7 IS NULL OR seq < $7)
                 ORDER BY seq DESC LIMIT $8"
            ));
            let rows = sqlx::query(sql)
                .bind(f.action.as_deref())
                .bind(f.actor.as_deref())
                .bind(f.subject.as_deref())
                .bind(f.outcome.as_deref())
                .bind(f.since_ms)
                .bind(f.until_ms)
                .bind(f.before_seq)
                .bind(f.limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(audit_from_row!(row));
            }
            Ok(out)
        })
    }

    /// The `(seq, hash)` of the last append.
    pub async fn audit_head(&self) -> StoreResult<(i64, String)> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?;
            Ok((row.try_get("seq")?, row.try_get("hash")?))
        })
    }

    /// Every checkpoint's `(seq, signed token)`, oldest first.
    pub async fn audit_checkpoints(&self) -> StoreResult<Vec<(i64, String)>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query("SELECT seq, signature FROM audit_checkpoints ORDER BY seq")
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("seq")?, row.try_get("signature")?));
            }
            Ok(out)
        })
    }

    /// The newest checkpoint's position (0 for none).
    pub async fn last_audit_checkpoint(&self) -> StoreResult<i64> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM audit_checkpoints")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>("seq")?)
        })
    }

    /// Stores a checkpoint; another node's checkpoint of the same entry wins silently.
    pub async fn insert_audit_checkpoint(
        &self,
        seq: i64,
        hash: &str,
        at_ms: i64,
        signature: &str,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, at_ms, signature) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(seq)
            .bind(hash)
            .bind(at_ms)
            .bind(signature)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
