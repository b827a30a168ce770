//! API keys, stored by the SHA-256 of the key.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::{BeginWrite, Store, StoreResult, conflict_aware, on_pool};

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Space-separated; empty means "whatever the user's roles grant".
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub key_hash: &'a str,
    pub name: &'a str,
    pub scopes: &'a str,
    pub now: i64,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, last_used_at, revoked_at";

macro_rules! key_from_row {
    ($row:expr) => {
        ApiKeyRecord {
            id: $row.try_get("id")?,
            user_id: $row.try_get("user_id")?,
            name: $row.try_get("name")?,
            scopes: $row.try_get("scopes")?,
            created_at: $row.try_get("created_at")?,
            expires_at: $row.try_get("expires_at")?,
            last_used_at: $row.try_get("last_used_at")?,
            revoked_at: $row.try_get("revoked_at")?,
        }
    };
}

impl Store {
    pub async fn insert_api_key(&self, k: &NewApiKey<'_>, audit: &Entry) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, key_hash, name, scopes, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(k.id)
            .bind(k.user_id)
            .bind(k.key_hash)
            .bind(k.name)
            .bind(k.scopes)
            .bind(k.now)
            .bind(k.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_aware)?;
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"
            ));
            let row = sqlx::query(sql).bind(key_hash).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(key_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    pub async fn api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"));
            let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(key_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    pub async fn api_keys_of(&self, user_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id"
            ));
            let rows = sqlx::query(sql).bind(user_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(key_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Returns whether a live key was revoked (only then is it audited, with the key's
    /// owner as subject).
    pub async fn revoke_api_key(
        &self,
        id: &str,
        owner: Option<&str>,
        now: i64,
        audit: Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "UPDATE api_keys SET revoked_at = $1
                 WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)
                 RETURNING user_id",
            )
            .bind(now)
            .bind(id)
            .bind(owner)
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

    /// Records last-use times collected in memory (one statement per key, in one
    /// transaction); a time never moves backwards.
    pub async fn touch_api_keys(&self, used: &[(String, i64)]) -> StoreResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for (id, at) in used {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $1
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
