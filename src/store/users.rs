//! Accounts and their roles.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::email_tokens::void_pending_codes;
use super::{BeginWrite, Store, StoreResult, on_pool};

/// An account as stored, with its roles.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub email_verified: bool,
    pub created_at: i64,
    pub roles: Vec<String>,
}

pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub roles: &'a [String],
    /// Whether the address is known to be the user's (an identity provider said so).
    pub email_verified: bool,
    pub now: i64,
}

/// Inserts the account and its roles inside the open write transaction `$tx`; a taken
/// email is `StoreError::Conflict`.
macro_rules! insert_user {
    ($tx:expr, $user:expr) => {{
        let user: &$crate::store::NewUser<'_> = $user;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, disabled, email_verified, created_at, updated_at)
             VALUES ($1, $2, $3, FALSE, $4, $5, $5)",
        )
        .bind(user.id)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.email_verified)
        .bind(user.now)
        .execute(&mut *$tx)
        .await
        .map_err($crate::store::conflict_aware)?;
        for role in user.roles {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(user.id)
            .bind(role)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use insert_user;

macro_rules! user_from_row {
    ($row:expr, $roles:expr) => {
        UserRecord {
            id: $row.try_get("id")?,
            email: $row.try_get("email")?,
            password_hash: $row.try_get("password_hash")?,
            disabled: $row.try_get("disabled")?,
            email_verified: $row.try_get("email_verified")?,
            created_at: $row.try_get("created_at")?,
            roles: $roles,
        }
    };
}
pub(crate) use user_from_row;

/// A user and its roles by id, for [`fetch_user!`].
pub(crate) const USER_BY_ID: &str =
    "SELECT u.id, u.email, u.password_hash, u.disabled, u.email_verified, u.created_at, r.role
     FROM users u LEFT JOIN user_roles r ON r.user_id = u.id WHERE u.id = $1 ORDER BY r.role";

/// Runs `$sql` (one key, one row per role) on `$exec` (a pool, or a transaction to read
/// in it) and builds the user: one round trip, as sign-in and refresh need. The user's
/// columns repeat on one row per role, with a NULL role for a user that has none.
macro_rules! fetch_user {
    ($exec:expr, $sql:expr, $key:expr) => {{
        let rows = sqlx::query($sql).bind($key).fetch_all($exec).await?;
        match rows.first() {
            None => None,
            Some(first) => {
                let mut roles = Vec::with_capacity(rows.len());
                for row in &rows {
                    if let Some(role) = row.try_get::<Option<String>, _>("role")? {
                        roles.push(role);
                    }
                }
                Some($crate::store::users::user_from_row!(first, roles))
            }
        }
    }};
}
pub(crate) use fetch_user;

impl Store {
    /// Creates the account and its roles atomically; `Conflict` if the email is taken.
    pub async fn insert_user(&self, user: &NewUser<'_>, audit: &Entry) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_user!(tx, user);
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.find_user(
            "SELECT u.id, u.email, u.password_hash, u.disabled, u.email_verified, u.created_at, r.role
             FROM users u LEFT JOIN user_roles r ON r.user_id = u.id WHERE u.email = $1 ORDER BY r.role",
            email,
        )
        .await
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.find_user(USER_BY_ID, id).await
    }

    async fn find_user(&self, sql: &'static str, key: &str) -> StoreResult<Option<UserRecord>> {
        on_pool!(self, |pool| Ok(fetch_user!(pool, sql, key)))
    }

    /// Every account, oldest first, with roles.
    pub async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, email, password_hash, disabled, email_verified, created_at FROM users ORDER BY created_at, email",
            )
            .fetch_all(pool)
            .await?;
            let role_rows = sqlx::query("SELECT user_id, role FROM user_roles ORDER BY role")
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let id: String = row.try_get("id")?;
                let mut roles = Vec::new();
                for r in &role_rows {
                    if r.try_get::<String, _>("user_id")? == id {
                        roles.push(r.try_get("role")?);
                    }
                }
                out.push(user_from_row!(row, roles));
            }
            Ok(out)
        })
    }

    /// Replaces the hash only if it is still `expected` (a concurrent password change wins
    /// over an opportunistic rehash).
    pub async fn replace_password_hash(
        &self,
        user_id: &str,
        expected: &str,
        new_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
                .bind(new_hash)
                .bind(now)
                .bind(user_id)
                .bind(expected)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Sets a new password (`None`: none, until a reset) and revokes every live session of
    /// the user except `keep`, in one transaction. Returns the revoked session ids.
    pub async fn set_password_revoking_sessions(
        &self,
        user_id: &str,
        new_hash: Option<&str>,
        keep: Option<&str>,
        reason: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(new_hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
                 WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 RETURNING id",
            )
            .bind(now)
            .bind(reason)
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .fetch_all(&mut *tx)
            .await?;
            void_pending_codes!(tx, user_id, now);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<Vec<String>, _>>()?)
        })
    }

    /// Erases an account (GDPR Art. 17) in one transaction: the user row and all that
    /// hangs off it (sessions and refresh tokens, API keys, consents, codes, factors,
    /// passkeys, linked identities, mailed codes) and its address's lockout counters.
    /// Usage rows and audit entries keep the user id, which then names no one, so totals
    /// and the hash chain stay valid. The sessions that were live (to announce), or
    /// `None` for an unknown id.
    pub async fn erase_user(
        &self,
        user_id: &str,
        email: &str,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let live =
                sqlx::query("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let gone = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone != 1 {
                return Ok(None);
            }
            let prefix = format!("a:{email} ");
            sqlx::query("DELETE FROM sign_in_failures WHERE substr(key, 1, length($1)) = $1")
                .bind(&prefix)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(Some(
                live.iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<Vec<String>, _>>()?,
            ))
        })
    }

    /// Enables or disables an account; disabling revokes all its sessions in the same
    /// transaction. Returns `None` for an unknown id, else the revoked session ids.
    pub async fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(row) = sqlx::query(
                "UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3 RETURNING id",
            )
            .bind(disabled)
            .bind(now)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(None);
            };
            let user_id: String = row.try_get("id")?;
            let mut revoked = Vec::new();
            if disabled {
                let rows = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = 'user_disabled'
                     WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
                )
                .bind(now)
                .bind(&user_id)
                .fetch_all(&mut *tx)
                .await?;
                for r in rows {
                    revoked.push(r.try_get("id")?);
                }
                void_pending_codes!(tx, user_id, now);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    /// Adds or removes one role; returns whether anything changed (and only a change is
    /// audited) and, for a removal, the sessions it ended: their tokens carry the role's
    /// scopes, so a removal must take effect as fast as a disable does.
    pub async fn set_role(
        &self,
        user_id: &str,
        role: &str,
        granted: bool,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<(bool, Vec<String>)> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = if granted {
                sqlx::query(
                    "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(user_id)
                .bind(role)
                .execute(&mut *tx)
                .await?
            } else {
                sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
                    .bind(user_id)
                    .bind(role)
                    .execute(&mut *tx)
                    .await?
            };
            let changed = done.rows_affected() == 1;
            let mut revoked = Vec::new();
            if changed {
                if !granted {
                    let rows = sqlx::query(
                        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'role_revoked'
                         WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
                    )
                    .bind(now)
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    for r in rows {
                        revoked.push(r.try_get("id")?);
                    }
                }
                append_audit!(tx, audit);
            }
            tx.commit().await?;
            Ok((changed, revoked))
        })
    }
}

impl Store {
    /// Accounts whose email contains `search` (all when empty), by email, one page.
    pub async fn search_users(
        &self,
        search: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<UserRecord>> {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{}%", escaped.to_lowercase());
        let ids: Vec<String> = on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id FROM users WHERE email LIKE $1 ESCAPE '\\' ORDER BY email LIMIT $2 OFFSET $3",
            )
            .bind(&pattern)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.user_by_id(&id).await? {
                out.push(u);
            }
        }
        Ok(out)
    }
}
