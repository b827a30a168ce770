//! Failed-sign-in counters and lockouts (`sign_in_failures`).

use sqlx::Row;

use super::audit::append_audit;
use super::{BeginWrite, Store, StoreResult, on_pool};
use super::{Entry, Outcome};

/// The three counters one failed sign-in moves.
pub struct FailureKeys<'a> {
    /// This account from this address.
    pub pair: &'a str,
    /// This account from anywhere.
    pub account: &'a str,
    /// Anything from this address.
    pub ip: &'a str,
}

/// How counts turn into lockouts; decided by the caller's policy.
pub trait LockPolicy {
    /// A count older than this (since the last failure) starts again from zero.
    fn reset_after_secs(&self) -> i64;
    /// The account counter only counts a pair's first this-many failures: one address
    /// alone can never lock an account for everyone.
    fn per_address_share(&self) -> i64;
    /// Seconds to lock `scope` ("pair", "account" or "ip") at `failures`, if any.
    fn lock_secs(&self, scope: &'static str, failures: i64) -> Option<i64>;
}

impl Store {
    /// The latest `locked_until` among `keys` (0 when none is locked or known).
    pub async fn sign_in_locked_until(&self, keys: &[&str; 3]) -> StoreResult<i64> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COALESCE(MAX(locked_until), 0) AS until FROM sign_in_failures
                 WHERE key = $1 OR key = $2 OR key = $3",
            )
            .bind(keys[0])
            .bind(keys[1])
            .bind(keys[2])
            .fetch_one(pool)
            .await?;
            Ok(row.try_get::<i64, _>("until")?)
        })
    }

    /// Counts one failure against each key, sets lockouts the policy asks for, and writes
    /// `audit` plus one `auth.lockout` entry per new lockout, in one transaction. Returns
    /// the lockouts set, as `(scope, locked_until)`.
    pub async fn record_sign_in_failure(
        &self,
        keys: &FailureKeys<'_>,
        now: i64,
        policy: &impl LockPolicy,
        audit: &Entry,
    ) -> StoreResult<Vec<(&'static str, i64)>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut locks = Vec::new();
            let mut bump = async |key: &str, scope: &'static str| -> StoreResult<i64> {
                let row = sqlx::query(
                    "INSERT INTO sign_in_failures (key, failures, last_at, locked_until) VALUES ($1, 1, $2, 0)
                     ON CONFLICT (key) DO UPDATE SET
                        failures = CASE WHEN $2 - sign_in_failures.last_at > $3 THEN 1 ELSE sign_in_failures.failures + 1 END,
                        last_at = $2
                     RETURNING failures, locked_until",
                )
                .bind(key)
                .bind(now)
                .bind(policy.reset_after_secs())
                .fetch_one(&mut *tx)
                .await?;
                let failures: i64 = row.try_get("failures")?;
                let locked_until: i64 = row.try_get("locked_until")?;
                if let Some(secs) = policy.lock_secs(scope, failures)
                    && now + secs > locked_until
                {
                    sqlx::query("UPDATE sign_in_failures SET locked_until = $1 WHERE key = $2")
                        .bind(now + secs)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                    locks.push((scope, now + secs));
                }
                Ok(failures)
            };
            let pair_failures = bump(keys.pair, "pair").await?;
            if pair_failures <= policy.per_address_share() {
                bump(keys.account, "account").await?;
            }
            bump(keys.ip, "ip").await?;
            append_audit!(tx, audit);
            for (scope, until) in &locks {
                let lockout = Entry {
                    action: "auth.lockout",
                    outcome: Outcome::Success,
                    ..audit.clone()
                }
                .with("scope", *scope)
                .with("locked_until", *until);
                append_audit!(tx, &lockout);
            }
            tx.commit().await?;
            Ok(locks)
        })
    }

    /// Forgets failures under `keys` (a successful sign-in).
    pub async fn clear_sign_in_failures(&self, keys: &[&str]) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for key in keys {
                sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Lifts every lockout of an account (its own counter and each of its address
    /// pairs, all starting with `prefix`), audited in the same transaction. Returns how
    /// many counters were removed.
    pub async fn unlock_account(&self, prefix: &str, audit: &Entry) -> StoreResult<u64> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM sign_in_failures WHERE substr(key, 1, $2) = $1")
                .bind(prefix)
                .bind(prefix.chars().count() as i32)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }
}
