//! Counters shared by every node through PostgreSQL, for deployments without Redis: the
//! rate limiter's arrival times and the AI meter's quota counters (tables in
//! `0009_shared_counters.sql`). Each check is atomic in the database, so N nodes hold a
//! limit exactly as one would. The callers (`limits`, `ai::meter`) hand in the
//! arithmetic's inputs and read the raw figures back with their own rules
//! (`gcra::decided`, `meter::judge`); the all-or-nothing test of a reservation runs in
//! the database (`tollgate_reserve`), where it must hold the row locks.
//!
//! Time for rate limits is the database server's clock (`clock_timestamp()`), as Redis's
//! `TIME` is for the Redis script, so nodes whose clocks disagree share one timeline.

use sqlx::postgres::PgPool;

use super::{Store, StoreResult, health};

/// A handle on the shared counters; only a PostgreSQL store has one.
#[derive(Clone, Debug)]
pub struct SharedCounters {
    pool: PgPool,
}

impl Store {
    /// The database's shared counters, when the database is one that several nodes share.
    pub fn shared_counters(&self) -> Option<SharedCounters> {
        match self {
            Store::Postgres(pool) => Some(SharedCounters { pool: pool.clone() }),
            Store::Sqlite(_) => None,
        }
    }
}

/// What one rate-limit step saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalStep {
    /// The database's now, ms.
    pub now_ms: i64,
    /// The arrival time stored by this step: `None` when the step did not fit.
    pub taken: Option<i64>,
    /// The arrival time before the step, as far as it was visible (`None`: no row).
    pub before: Option<i64>,
}

/// One counter a reservation takes from.
#[derive(Debug, Clone)]
pub struct CounterTake<'a> {
    pub key: &'a str,
    pub amount: i64,
    /// The counter may not pass this.
    pub limit: i64,
    /// The value a counter that does not exist yet starts from; `None`: not known yet
    /// (the reservation then reports the counter as missing and takes nothing).
    pub seed: Option<i64>,
    /// When the row may be deleted (ms); the key names its window, so this is cleanup.
    pub expires_ms: i64,
}

impl SharedCounters {
    /// One GCRA step for `key`, atomically: move the arrival time one `interval_ms` on if
    /// that keeps it within `capacity_ms` of now, else leave it.
    pub async fn arrival_step(
        &self,
        key: &str,
        interval_ms: i64,
        capacity_ms: i64,
    ) -> StoreResult<ArrivalStep> {
        health::check()?;
        // The `clock` CTE is referenced twice, so PostgreSQL evaluates it once. The outer
        // read of the table sees the statement's snapshot, i.e. the value before the
        // step; it only serves the Retry-After of a refusal.
        let (now_ms, taken, before): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS ms),
             step AS (
               INSERT INTO rate_limit_tats AS t (key, tat)
               SELECT $1, clock.ms + $2 FROM clock
               ON CONFLICT (key) DO UPDATE
                 SET tat = GREATEST(t.tat, EXCLUDED.tat - $2) + $2
                 WHERE GREATEST(t.tat, EXCLUDED.tat - $2) + $2 - (EXCLUDED.tat - $2) <= $3
               RETURNING t.tat)
             SELECT clock.ms, (SELECT tat FROM step),
                    (SELECT tat FROM rate_limit_tats WHERE key = $1)
             FROM clock",
        )
        .bind(key)
        .bind(interval_ms)
        .bind(capacity_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(ArrivalStep {
            now_ms,
            taken,
            before,
        })
    }

    /// Takes every amount of `takes`, or none if any counter would pass its limit, in one
    /// call of `tollgate_reserve` (migration 0009): it locks the counters in key order
    /// (creating missing ones from their seeds) for the few microseconds it runs, so
    /// concurrent reservations on the same counters, from any node, queue and can never
    /// pass a limit together. Returns the values seen before the amounts; `None`
    /// everywhere when a counter is missing and its seed unknown (nothing changed).
    pub async fn reserve(&self, takes: &[CounterTake<'_>]) -> StoreResult<Vec<Option<i64>>> {
        health::check()?;
        let keys: Vec<&str> = takes.iter().map(|t| t.key).collect();
        let seeds: Vec<Option<i64>> = takes.iter().map(|t| t.seed).collect();
        let expiries: Vec<i64> = takes.iter().map(|t| t.expires_ms).collect();
        let amounts: Vec<i64> = takes.iter().map(|t| t.amount).collect();
        let limits: Vec<i64> = takes.iter().map(|t| t.limit).collect();
        let seen: Result<Option<Vec<Option<i64>>>, sqlx::Error> =
            sqlx::query_scalar("SELECT tollgate_reserve($1, $2, $3, $4, $5)")
                .bind(&keys)
                .bind(&seeds)
                .bind(&expiries)
                .bind(&amounts)
                .bind(&limits)
                .fetch_one(&self.pool)
                .await;
        match seen {
            Ok(Some(values)) => Ok(values),
            Ok(None) => Ok(vec![None; takes.len()]),
            // The function's own "a counter vanished while being seeded": nothing
            // changed, ask again with seeds.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("TGQ01") => {
                Ok(vec![None; takes.len()])
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds each delta to its counter, where the counter still exists.
    pub async fn settle(&self, deltas: &[(String, i64)]) -> StoreResult<()> {
        health::check()?;
        let keys: Vec<&str> = deltas.iter().map(|(k, _)| k.as_str()).collect();
        let amounts: Vec<i64> = deltas.iter().map(|(_, d)| *d).collect();
        // Locked in key order first, as `tollgate_reserve` locks them: otherwise a settle
        // holding one counter and a reservation holding another could each wait for the
        // other (PostgreSQL would break the deadlock by failing one of them).
        sqlx::query(
            "WITH locked AS MATERIALIZED (
               SELECT key FROM ai_counters WHERE key = ANY($1) ORDER BY key FOR UPDATE)
             UPDATE ai_counters AS c SET value = c.value + w.a
             FROM locked, unnest($1::text[], $2::int8[]) AS w(k, a)
             WHERE c.key = locked.key AND c.key = w.k",
        )
        .bind(&keys)
        .bind(&amounts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The current values of `keys` (`None` where a counter does not exist).
    pub async fn peek(&self, keys: &[String]) -> StoreResult<Vec<Option<i64>>> {
        health::check()?;
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT key, value FROM ai_counters WHERE key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await?;
        Ok(keys
            .iter()
            .map(|k| rows.iter().find(|(r, _)| r == k).and_then(|(_, v)| *v))
            .collect())
    }

    /// Deletes arrival times that have passed (a row in the past means the same as no
    /// row) and counters whose windows are long over.
    pub async fn prune(&self) -> StoreResult<()> {
        health::check()?;
        sqlx::query(
            "DELETE FROM rate_limit_tats
             WHERE tat < (extract(epoch FROM clock_timestamp()) * 1000)::int8",
        )
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM ai_counters WHERE expires_ms < $1")
            .bind(crate::clock::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
