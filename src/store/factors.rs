//! Second factors: TOTP secrets (sealed), recovery codes (hashed) and sign-ins waiting for
//! their second factor.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::{BeginWrite, Store, StoreResult, on_pool};

/// A user's TOTP factor, as stored.
#[derive(Debug, Clone)]
pub struct TotpRecord {
    /// The secret, sealed (`keys::Sealer`).
    pub sealed: String,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<i64>,
}

/// What a pending second-factor challenge holds.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    pub user_id: String,
    /// The first factor's `amr` values, space-separated.
    pub amr: String,
    pub attempts: i64,
}

/// Replaces a user's recovery codes with `$hashes` inside the open write transaction.
macro_rules! replace_codes {
    ($tx:expr, $user_id:expr, $hashes:expr) => {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind($user_id)
            .execute(&mut *$tx)
            .await?;
        for hash in $hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind($user_id)
                .bind(hash)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// A user has a second factor: a confirmed authenticator app or a passkey (SQL condition
/// on the user id `$1`).
pub(super) const HAS_FACTOR: &str =
    "(EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)
      OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1))";

/// Inside the open write transaction: once a user has no second factor left, their
/// recovery codes (which back the factors up) and waiting sign-ins go too.
macro_rules! drop_codes_without_factor {
    ($tx:expr, $user_id:expr) => {
        for table in ["recovery_codes", "mfa_challenges"] {
            let sql = sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1 AND NOT {}",
                $crate::store::factors::HAS_FACTOR
            ));
            sqlx::query(sql).bind($user_id).execute(&mut *$tx).await?;
        }
    };
}
pub(crate) use drop_codes_without_factor;

impl Store {
    /// Starts (or restarts) a TOTP enrolment. A confirmed factor is not replaced: `false`.
    pub async fn begin_totp(&self, user_id: &str, sealed: &str, now: i64) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "INSERT INTO totp_factors (user_id, secret, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET secret = $2, created_at = $3, last_step = NULL
                 WHERE totp_factors.confirmed_at IS NULL",
            )
            .bind(user_id)
            .bind(sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(done == 1)
        })
    }

    pub async fn totp_of(&self, user_id: &str) -> StoreResult<Option<TotpRecord>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT secret, confirmed_at, last_step FROM totp_factors WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(Some(TotpRecord {
                    sealed: row.try_get("secret")?,
                    confirmed_at: row.try_get("confirmed_at")?,
                    last_step: row.try_get("last_step")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Confirms an enrolment with its first code's step and replaces the recovery codes,
    /// in one transaction. `false` when there was nothing to confirm (or the step was
    /// spent meanwhile).
    pub async fn confirm_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        code_hashes: &[String],
        now: i64,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE totp_factors SET confirmed_at = $2, last_step = $3
                 WHERE user_id = $1 AND confirmed_at IS NULL AND secret = $4
                   AND (last_step IS NULL OR last_step < $3)",
            )
            .bind(user_id)
            .bind(now)
            .bind(step)
            .bind(sealed)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            replace_codes!(tx, user_id, code_hashes);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records `step` as the last one accepted, if it is later than the last: the replay
    /// check, atomic across processes.
    pub async fn spend_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE totp_factors SET last_step = $2
                 WHERE user_id = $1 AND confirmed_at IS NOT NULL
                   AND (last_step IS NULL OR last_step < $2)",
            )
            .bind(user_id)
            .bind(step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(done == 1)
        })
    }

    /// Spends a recovery code, once: `false` if it is not one of the user's unused codes.
    pub async fn spend_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE recovery_codes SET used_at = $3
                 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(code_hash)
            .bind(now)
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

    /// Removes every second factor of a user (an administrator's reset) and revokes the
    /// user's sessions, in one transaction: the revoked session ids, or `None` when the
    /// user had no factor.
    pub async fn reset_factors(
        &self,
        user_id: &str,
        now: i64,
        audit: &Entry,
    ) -> StoreResult<Option<Vec<String>>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut removed = 0;
            for table in ["totp_factors", "passkeys"] {
                let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = $1"));
                removed += sqlx::query(sql)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            let codes = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed + codes == 0 {
                return Ok(None);
            }
            sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = 'factors_reset'
                 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut revoked = Vec::with_capacity(rows.len());
            for r in rows {
                revoked.push(r.try_get("id")?);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    /// Removes a confirmed authenticator app (and, when it was the last factor, the
    /// recovery codes and waiting sign-ins), in one transaction: `false` when there was
    /// none.
    pub async fn remove_totp(&self, user_id: &str, audit: &Entry) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query(
                "DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if removed == 0 {
                return Ok(false);
            }
            drop_codes_without_factor!(tx, user_id);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Replaces the recovery codes of a user with a second factor, in one transaction:
    /// `false` (nothing written) without one.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[String],
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!("SELECT {HAS_FACTOR} AS has"));
            let has_factor: bool = sqlx::query(sql)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("has")?;
            if !has_factor {
                return Ok(false);
            }
            replace_codes!(tx, user_id, code_hashes);
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Whether the user has a second factor (a confirmed authenticator app or a passkey).
    pub async fn has_second_factor(&self, user_id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!("SELECT {HAS_FACTOR} AS has"));
            Ok(sqlx::query(sql)
                .bind(user_id)
                .fetch_one(pool)
                .await?
                .try_get("has")?)
        })
    }

    /// Unused recovery codes left.
    pub async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<i64> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("n")?)
        })
    }

    pub async fn insert_mfa_challenge(
        &self,
        token_hash: &str,
        user_id: &str,
        amr: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO mfa_challenges (token_hash, user_id, amr, expires_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(amr)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            // Expired challenges of anyone go with each new one.
            sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1")
                .bind(expires_at - 3600)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Counts an attempt on a live challenge and returns it (with the attempts before this
    /// one), or `None` when it is unknown, expired or used up.
    pub async fn attempt_mfa_challenge(
        &self,
        token_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<MfaChallenge>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "UPDATE mfa_challenges SET attempts = attempts + 1
                 WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3
                 RETURNING user_id, amr, attempts",
            )
            .bind(token_hash)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            match row {
                Some(row) => Ok(Some(MfaChallenge {
                    user_id: row.try_get("user_id")?,
                    amr: row.try_get("amr")?,
                    attempts: row.try_get::<i64, _>("attempts")? - 1,
                })),
                None => Ok(None),
            }
        })
    }

    /// Ends a challenge (its sign-in completed): `false` if another request ended it first.
    pub async fn finish_mfa_challenge(&self, token_hash: &str) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(done == 1)
        })
    }
}
