//! OAuth 2.0 clients. Lists are stored space-separated; a deleted client keeps its row
//! (`deleted_at`), so its id is never handed out again and the revocation poll sees it.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::sessions::revoke_client_sessions;
use super::{BeginWrite, Store, StoreError, StoreResult, conflict_aware, on_pool};

/// How a deleted client is named on the fan-out channel and in the database poll.
pub const CLIENT_PREFIX: &str = "client:";
/// How a client whose earlier tokens are void is named: `client-tokens:<id>`, announced
/// with the time up to which its tokens were issued.
pub const CLIENT_TOKENS_PREFIX: &str = "client-tokens:";

/// A client as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 (hex) of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// A first-party client whose users are never asked for consent.
    pub skip_consent: bool,
    /// `RS256` or `EdDSA`: how its ID tokens are signed.
    pub id_token_alg: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    /// Registered itself (RFC 7591), not by an operator.
    pub registered: bool,
    /// When it last obtained tokens (kept for registered clients only).
    pub last_used_at: Option<i64>,
    /// The client ID metadata document it comes from.
    pub metadata_url: Option<String>,
}

const COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, skip_consent, id_token_alg, created_at, updated_at, deleted_at, \
     registered, last_used_at, metadata_url";

fn split(list: String) -> Vec<String> {
    list.split_ascii_whitespace().map(str::to_string).collect()
}

macro_rules! client_from_row {
    ($row:expr) => {
        ClientRecord {
            id: $row.try_get("id")?,
            name: $row.try_get("name")?,
            secret_hash: $row.try_get("secret_hash")?,
            redirect_uris: split($row.try_get("redirect_uris")?),
            post_logout_redirect_uris: split($row.try_get("post_logout_redirect_uris")?),
            grant_types: split($row.try_get("grant_types")?),
            scopes: split($row.try_get("scopes")?),
            skip_consent: $row.try_get("skip_consent")?,
            id_token_alg: $row.try_get("id_token_alg")?,
            created_at: $row.try_get("created_at")?,
            updated_at: $row.try_get("updated_at")?,
            deleted_at: $row.try_get("deleted_at")?,
            registered: $row.try_get("registered")?,
            last_used_at: $row.try_get("last_used_at")?,
            metadata_url: $row.try_get("metadata_url")?,
        }
    };
}

impl Store {
    /// Registers a client; `Conflict` when the id is taken (even by a deleted client).
    pub async fn insert_client(&self, c: &ClientRecord, audit: &Entry) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO oauth_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris,
                                            grant_types, scopes, skip_consent, id_token_alg, created_at, updated_at,
                                            registered, metadata_url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(c.secret_hash.as_deref())
            .bind(c.redirect_uris.join(" "))
            .bind(c.post_logout_redirect_uris.join(" "))
            .bind(c.grant_types.join(" "))
            .bind(c.scopes.join(" "))
            .bind(c.skip_consent)
            .bind(&c.id_token_alg)
            .bind(c.created_at)
            .bind(c.registered)
            .bind(c.metadata_url.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(conflict_aware)?;
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A client by id, deleted or not.
    pub async fn client_by_id(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        on_pool!(self, |pool| {
            let sql =
                sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = $1"));
            let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(client_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    /// Every client that is not deleted, by id.
    pub async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM oauth_clients WHERE deleted_at IS NULL ORDER BY id"
            ));
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(client_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Replaces a live client's settings (not its id, secret or creation time). When the
    /// new scopes drop one of the stored ones, in the same transaction: its sessions end,
    /// its unused codes go, and its tokens issued until now are void
    /// (`tokens_valid_after`). The stored scopes are compared inside the transaction and
    /// the update applies only if they are still those (`Conflict` otherwise: another
    /// change came first). `None` when there was no live client; else the revoked ids to
    /// announce (with `client-tokens:<id>` when narrowed).
    pub async fn update_client(
        &self,
        c: &ClientRecord,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "SELECT scopes FROM oauth_clients WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let stored: String = row.try_get("scopes")?;
            let narrowed = stored
                .split_ascii_whitespace()
                .any(|s| !c.scopes.iter().any(|n| n == s));
            let updated = sqlx::query(
                "UPDATE oauth_clients SET name = $2, redirect_uris = $3, post_logout_redirect_uris = $4,
                        grant_types = $5, scopes = $6, skip_consent = $7, id_token_alg = $8, updated_at = $9,
                        tokens_valid_after = CASE WHEN $10 THEN $9 ELSE tokens_valid_after END
                 WHERE id = $1 AND deleted_at IS NULL AND scopes = $11",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(c.redirect_uris.join(" "))
            .bind(c.post_logout_redirect_uris.join(" "))
            .bind(c.grant_types.join(" "))
            .bind(c.scopes.join(" "))
            .bind(c.skip_consent)
            .bind(&c.id_token_alg)
            .bind(c.updated_at)
            .bind(narrowed)
            .bind(&stored)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !updated {
                return Err(StoreError::Conflict);
            }
            let mut revoked = Vec::new();
            if narrowed {
                revoked =
                    revoke_client_sessions!(tx, &c.id, "", "client_scopes_reduced", c.updated_at);
                sqlx::query("DELETE FROM oauth_codes WHERE client_id = $1 AND used_at IS NULL")
                    .bind(&c.id)
                    .execute(&mut *tx)
                    .await?;
                revoked.push(format!("{CLIENT_TOKENS_PREFIX}{}", c.id));
            }
            let audit = audit
                .clone()
                .with("scopes_narrowed", narrowed)
                .with("sessions_revoked", revoked.len().saturating_sub(1));
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    /// Replaces a live confidential client's secret. Returns whether it did.
    pub async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE oauth_clients SET secret_hash = $1, updated_at = $2
                 WHERE id = $3 AND deleted_at IS NULL AND secret_hash IS NOT NULL",
            )
            .bind(secret_hash)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !updated {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes a client: marks it deleted, revokes every session it holds and forgets
    /// the consents given to it, in one transaction. `None` when there was no live client;
    /// else the revoked session ids.
    pub async fn delete_client(
        &self,
        id: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let deleted = sqlx::query(
                "UPDATE oauth_clients SET deleted_at = $1
                 WHERE id = $2 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !deleted {
                return Ok(None);
            }
            let revoked = revoke_client_sessions!(tx, id, "", "client_deleted", now);
            sqlx::query("DELETE FROM oauth_consents WHERE client_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let audit = audit.clone().with("sessions_revoked", revoked.len());
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    /// Records that a registered client obtained tokens now (at most once an hour a
    /// client, so a busy client costs no write per grant).
    pub async fn mark_client_used(&self, id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE oauth_clients SET last_used_at = $1
                 WHERE id = $2 AND registered AND (last_used_at IS NULL OR last_used_at < $1 - 3600)",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Registered clients that obtained no token since `before` (nor were registered
    /// after it): candidates for expiry.
    pub async fn unused_registered_clients(&self, before: i64) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id FROM oauth_clients
                 WHERE registered AND deleted_at IS NULL AND metadata_url IS NULL
                   AND COALESCE(last_used_at, created_at) < $1
                 ORDER BY id LIMIT 1000",
            )
            .bind(before)
            .fetch_all(pool)
            .await?;
            let mut ids = Vec::with_capacity(rows.len());
            for row in rows {
                ids.push(row.try_get("id")?);
            }
            Ok(ids)
        })
    }
}
