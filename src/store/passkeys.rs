//! Passkeys and the WebAuthn ceremonies in progress.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::factors::drop_codes_without_factor;
use super::{BeginWrite, Store, StoreResult, on_pool};

/// A passkey as stored: `passkey` is the WebAuthn library's serialisation.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

macro_rules! passkey_from_row {
    ($row:expr) => {
        PasskeyRecord {
            id: $row.try_get("id")?,
            user_id: $row.try_get("user_id")?,
            name: $row.try_get("name")?,
            passkey: $row.try_get("passkey")?,
            created_at: $row.try_get("created_at")?,
            last_used_at: $row.try_get("last_used_at")?,
        }
    };
}

const COLUMNS: &str = "id, user_id, name, passkey, created_at, last_used_at";

impl Store {
    /// Stores a ceremony's state under its challenge (replacing the account's earlier one
    /// of the same kind), and sheds expired ones.
    pub async fn insert_ceremony(
        &self,
        challenge: &str,
        kind: &str,
        user_id: Option<&str>,
        state: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // One live ceremony of a kind per account: a new one supersedes it, so a
            // signed-in caller cannot pile rows up.
            if let Some(user_id) = user_id {
                sqlx::query("DELETE FROM webauthn_ceremonies WHERE user_id = $1 AND kind = $2")
                    .bind(user_id)
                    .bind(kind)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO webauthn_ceremonies (challenge, kind, user_id, state, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(challenge)
            .bind(kind)
            .bind(user_id)
            .bind(state)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes a live ceremony of `kind` once: `(user_id, state)`; `None` when unknown,
    /// of another kind, expired or already taken.
    pub async fn take_ceremony(
        &self,
        challenge: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<(Option<String>, String)>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "DELETE FROM webauthn_ceremonies WHERE challenge = $1
                 RETURNING kind, user_id, state, expires_at",
            )
            .bind(challenge)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let live = row.try_get::<String, _>("kind")? == kind
                && row.try_get::<i64, _>("expires_at")? > now;
            if !live {
                return Ok(None);
            }
            Ok(Some((row.try_get("user_id")?, row.try_get("state")?)))
        })
    }

    /// Adds a passkey: `false` when its credential id is already registered (to anyone).
    pub async fn insert_passkey(&self, p: &PasskeyRecord, audit: &Entry) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO passkeys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO NOTHING"
            ));
            let done = sqlx::query(sql)
                .bind(&p.id)
                .bind(&p.user_id)
                .bind(&p.name)
                .bind(&p.passkey)
                .bind(p.created_at)
                .bind(p.last_used_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn passkeys_of(&self, user_id: &str) -> StoreResult<Vec<PasskeyRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
            ));
            let rows = sqlx::query(sql).bind(user_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(passkey_from_row!(row));
            }
            Ok(out)
        })
    }

    pub async fn passkey(&self, id: &str) -> StoreResult<Option<PasskeyRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM passkeys WHERE id = $1"));
            match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                Some(row) => Ok(Some(passkey_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    /// Records a sign-in with a passkey, with its new serialisation when the sign-in
    /// changed it (counter, backup state).
    pub async fn passkey_used(&self, id: &str, passkey: Option<&str>, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE passkeys SET last_used_at = $2, passkey = COALESCE($3, passkey) WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(passkey)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Renames one of a user's passkeys: `false` when it is not theirs.
    pub async fn rename_passkey(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Removes one of a user's passkeys; with it the recovery codes when no second factor
    /// is left. `false` when it is not theirs.
    pub async fn remove_passkey(
        &self,
        user_id: &str,
        id: &str,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            drop_codes_without_factor!(tx, user_id);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }
}
