//! Single-use tokens sent by mail, and the changes they authorise. Spending a token and
//! making its change happen in one transaction, guarded by `used_at IS NULL`, so a token
//! works exactly once even when presented twice at the same moment.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::{BeginWrite, Store, StoreResult, conflict_aware, on_pool};

/// A token's purpose, as stored.
pub const PURPOSE_VERIFY: &str = "verify";
pub const PURPOSE_RESET: &str = "reset";
pub const PURPOSE_EMAIL_CHANGE: &str = "email_change";

pub struct NewEmailToken<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub purpose: &'static str,
    /// The address the token was sent to (for an email change: the new address).
    pub email: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Spends a live token of `$purpose` in `$tx`; evaluates to `Option<(user_id, email)>`.
macro_rules! spend_token {
    ($tx:expr, $hash:expr, $purpose:expr, $now:expr) => {{
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $1
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1
             RETURNING user_id, email",
        )
        .bind($now)
        .bind($hash)
        .bind($purpose)
        .fetch_optional(&mut *$tx)
        .await?;
        match row {
            Some(r) => Some((
                r.try_get::<String, _>("user_id")?,
                r.try_get::<String, _>("email")?,
            )),
            None => None,
        }
    }};
}

/// Voids every unspent mailed code of `$user_id` inside `$tx`: what a password change,
/// reset or disable does, so an email change requested by whoever knew the old password
/// dies with it.
macro_rules! void_pending_codes {
    ($tx:expr, $user_id:expr, $now:expr) => {
        sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind($now)
            .bind($user_id)
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use void_pending_codes;

impl Store {
    /// Stores a new token; earlier unspent tokens of the same purpose for the user stop
    /// working (only the latest mail counts).
    pub async fn insert_email_token(
        &self,
        t: &NewEmailToken<'_>,
        audit: &Entry,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(t.now)
            .bind(t.user_id)
            .bind(t.purpose)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.token_hash)
            .bind(t.user_id)
            .bind(t.purpose)
            .bind(t.email)
            .bind(t.now)
            .bind(t.expires_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A live token's `(user_id, email)`, without spending it.
    pub async fn peek_email_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<(String, String)>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT user_id, email FROM email_tokens
                 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(token_hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some((r.try_get("user_id")?, r.try_get("email")?))),
                None => Ok(None),
            }
        })
    }

    /// Spends a reset token: sets the password, marks the address verified (the mail
    /// reached it) and revokes every session. `None` if the token is not live. Returns
    /// the user id and the revoked session ids.
    pub async fn reset_password_with_token(
        &self,
        token_hash: &str,
        new_hash: &str,
        now: i64,
        audit: Entry,
    ) -> StoreResult<Option<(String, Vec<String>)>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some((user_id, email)) = spend_token!(tx, token_hash, PURPOSE_RESET, now) else {
                return Ok(None);
            };
            let updated = sqlx::query(
                "UPDATE users SET password_hash = $1, email_verified = TRUE, updated_at = $2
                 WHERE id = $3 AND email = $4 AND NOT disabled",
            )
            .bind(new_hash)
            .bind(now)
            .bind(&user_id)
            .bind(&email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                // The address changed or the account was disabled since the mail was sent.
                return Ok(None);
            }
            let rows = sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = 'password_reset'
                 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(&user_id)
            .fetch_all(&mut *tx)
            .await?;
            void_pending_codes!(tx, &user_id, now);
            let audit = audit.about(user_id.clone());
            append_audit!(tx, &audit);
            tx.commit().await?;
            let revoked = rows
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<Vec<String>, _>>()?;
            Ok(Some((user_id, revoked)))
        })
    }

    /// Spends a verification token and marks the address verified, if it is still the
    /// account's address. Returns the user id.
    pub async fn verify_email_with_token(
        &self,
        token_hash: &str,
        now: i64,
        audit: Entry,
    ) -> StoreResult<Option<String>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some((user_id, email)) = spend_token!(tx, token_hash, PURPOSE_VERIFY, now) else {
                return Ok(None);
            };
            let updated = sqlx::query(
                "UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2 AND email = $3",
            )
            .bind(now)
            .bind(&user_id)
            .bind(&email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                return Ok(None);
            }
            let audit = audit.about(user_id.clone());
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Spends an email-change token and moves the account to the new (now verified)
    /// address. `Conflict` when another account took the address meanwhile. Returns the
    /// user id, old and new address.
    pub async fn change_email_with_token(
        &self,
        token_hash: &str,
        now: i64,
        audit: Entry,
    ) -> StoreResult<Option<(String, String, String)>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some((user_id, new_email)) =
                spend_token!(tx, token_hash, PURPOSE_EMAIL_CHANGE, now)
            else {
                return Ok(None);
            };
            let Some(old) = sqlx::query("SELECT email FROM users WHERE id = $1 AND NOT disabled")
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            let old_email: String = old.try_get("email")?;
            sqlx::query(
                "UPDATE users SET email = $1, email_verified = TRUE, updated_at = $2 WHERE id = $3",
            )
            .bind(&new_email)
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict_aware)?;
            let audit = audit
                .about(user_id.clone())
                .with("old_email", old_email.as_str())
                .with("new_email", new_email.as_str());
            append_audit!(tx, &audit);
            tx.commit().await?;
            Ok(Some((user_id, old_email, new_email)))
        })
    }
}
