//! Exact metering: reserve the worst case before a call, settle to what it used after.
//!
//! A call's [`Plan`] has one line per limit that applies to the caller: requests and
//! tokens in the current UTC minute, tokens in the UTC day, pico-dollars in the UTC
//! month. A reservation takes every line or none, atomically: in one Lua script in Redis
//! ([`redis`]), in one stored-function call on row locks in PostgreSQL
//! (`store::counters`), or under one lock in this process ([`local`], the single SQLite
//! node, or a fallback), so concurrent calls on any number of nodes can never together
//! pass a limit. Settling adds the difference between what was used and what was
//! reserved to the same windows (a call that straddles midnight settles into the day it
//! was admitted in).
//!
//! Day and month counters start from the usage ledger when they are first touched (in
//! whichever store), so budgets survive restarts; minute windows start empty. A
//! deployment has one shared store, Redis when configured, else the database; while it
//! cannot answer, `ai.on_redis_failure` refuses (the default) or counts in the process.
//! There is deliberately no switching from Redis to the database during an outage: two
//! stores each missing what the other took, with nodes switching at different moments
//! and reservations in flight on either side, let a budget through about twice (the
//! attack on the first version showed 1.9×).

pub mod local;
pub mod redis;

use super::config::Quota;
use crate::limits::RedisFailure;
use crate::limits::outage::Outage;
use crate::store::counters::{CounterTake, SharedCounters};

/// What a limit counts, and how a refusal is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
    UsdPerMonth,
}

impl Dimension {
    /// `rate_limited` for the per-minute limits, `quota_exceeded` for day and month.
    pub fn code(self) -> &'static str {
        match self {
            Dimension::RequestsPerMinute | Dimension::TokensPerMinute => "rate_limited",
            Dimension::TokensPerDay | Dimension::UsdPerMonth => "quota_exceeded",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dimension::RequestsPerMinute => "requests_per_minute",
            Dimension::TokensPerMinute => "tokens_per_minute",
            Dimension::TokensPerDay => "tokens_per_day",
            Dimension::UsdPerMonth => "usd_per_month",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Dimension::RequestsPerMinute => "rpm",
            Dimension::TokensPerMinute => "tpm",
            Dimension::TokensPerDay => "tpd",
            Dimension::UsdPerMonth => "usd",
        }
    }

    /// Whether the counter starts from the ledger rather than from zero.
    fn seeded(self) -> bool {
        matches!(self, Dimension::TokensPerDay | Dimension::UsdPerMonth)
    }

    pub const ALL: [Dimension; 4] = [
        Dimension::RequestsPerMinute,
        Dimension::TokensPerMinute,
        Dimension::TokensPerDay,
        Dimension::UsdPerMonth,
    ];
}

/// Tokens and pico-dollars of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    pub tokens: i64,
    pub pico_usd: i64,
}

impl Charge {
    fn amount(&self, d: Dimension) -> i64 {
        match d {
            Dimension::RequestsPerMinute => 1,
            Dimension::TokensPerMinute | Dimension::TokensPerDay => self.tokens,
            Dimension::UsdPerMonth => self.pico_usd,
        }
    }
}

/// The calendar windows of one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    pub now: i64,
    pub minute: i64,
    /// `YYYY-MM-DD`
    pub day: String,
    /// `YYYY-MM-01`: the first day of the month, as the ledger's `day` column spells it.
    pub month_start: String,
    pub day_end: i64,
    pub month_end: i64,
}

impl Windows {
    pub fn at(now: i64) -> Windows {
        let (y, m, d) = crate::clock::civil_date(now);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Windows {
            now,
            minute: now.div_euclid(60),
            day: format!("{y:04}-{m:02}-{d:02}"),
            month_start: format!("{y:04}-{m:02}-01"),
            day_end: crate::clock::unix_of_date(y, m, d) + 86_400,
            month_end: crate::clock::unix_of_date(ny, nm, 1),
        }
    }

    fn key(&self, principal: &str, d: Dimension) -> String {
        let window = match d {
            Dimension::RequestsPerMinute | Dimension::TokensPerMinute => self.minute.to_string(),
            Dimension::TokensPerDay => self.day.clone(),
            Dimension::UsdPerMonth => self.month_start[..7].to_string(),
        };
        // The braces are a Redis Cluster hash tag: a caller's counters share a slot, as
        // one script touching them all requires.
        format!("tollgate:ai:{{{principal}}}:{}:{window}", d.tag())
    }

    /// When the window of `d` ends (Unix seconds).
    fn end(&self, d: Dimension) -> i64 {
        match d {
            Dimension::RequestsPerMinute | Dimension::TokensPerMinute => (self.minute + 1) * 60,
            Dimension::TokensPerDay => self.day_end,
            Dimension::UsdPerMonth => self.month_end,
        }
    }
}

/// One limit a call is reserved against.
#[derive(Debug, Clone)]
pub struct Line {
    pub dimension: Dimension,
    pub key: String,
    pub limit: i64,
    pub amount: i64,
    /// How long the counter must outlive its window's end is short; the TTL covers the
    /// window plus a day of settling.
    pub ttl_ms: i64,
    pub window_end: i64,
}

/// Ledger totals a day and month counter start from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seeds {
    pub tokens_day: i64,
    pub pico_month: i64,
}

impl Seeds {
    fn for_line(&self, d: Dimension) -> i64 {
        match d {
            Dimension::TokensPerDay => self.tokens_day,
            Dimension::UsdPerMonth => self.pico_month,
            _ => 0,
        }
    }
}

/// The lines of a call for a caller with `quota`.
pub fn plan(principal: &str, quota: &Quota, charge: &Charge, w: &Windows) -> Vec<Line> {
    Dimension::ALL
        .into_iter()
        .filter_map(|d| {
            let limit = quota.limit(d)?;
            let end = w.end(d);
            Some(Line {
                dimension: d,
                key: w.key(principal, d),
                limit,
                amount: charge.amount(d),
                ttl_ms: ((end - w.now).max(1) + 86_400) * 1000,
                window_end: end,
            })
        })
        .collect()
}

/// How a reservation attempt ended in a backend.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Reserved,
    /// The line at this index does not fit.
    Refused(usize),
    /// A day or month counter does not exist yet: call again with the ledger's totals.
    NeedSeeds,
}

#[derive(Debug)]
pub enum MeterDecision {
    Reserved(Reservation),
    Refused {
        dimension: Dimension,
        limit: i64,
        retry_after_secs: i64,
        /// The call alone is over the limit: waiting will not help (a smaller prompt or
        /// output bound will).
        never_fits: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("the quota store cannot answer: {0}")]
    Unavailable(String),
    #[error("the usage ledger cannot answer: {0}")]
    Ledger(#[from] crate::store::StoreError),
}

/// Where a reservation was made, so it is settled in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    Redis,
    Database,
}

/// A call's hold on its limits until it is settled.
#[derive(Debug)]
pub struct Reservation {
    lines: Vec<Line>,
    pub reserved: Charge,
    backend: Backend,
}

pub struct Meter {
    local: local::LocalCounters,
    redis: Option<redis::RedisCounters>,
    redis_outage: Outage,
    database: Option<SharedCounters>,
    database_outage: Outage,
    on_redis_failure: RedisFailure,
}

impl Meter {
    /// `database` is the store's shared counters, when it has them (PostgreSQL).
    pub fn new(
        redis_url: Option<&str>,
        on_redis_failure: RedisFailure,
        database: Option<SharedCounters>,
    ) -> anyhow::Result<Meter> {
        let redis = redis_url.map(redis::RedisCounters::new).transpose()?;
        Ok(Meter {
            local: local::LocalCounters::default(),
            // Redis is the shared store when there is one (see the module's comment).
            database: database.filter(|_| redis.is_none()),
            redis,
            redis_outage: Outage::default(),
            database_outage: Outage::default(),
            on_redis_failure,
        })
    }

    pub fn backend(&self) -> &'static str {
        match (&self.redis, &self.database) {
            (Some(_), _) => "redis",
            (None, Some(_)) => "database",
            (None, None) => "local",
        }
    }

    /// Reserves `charge` against every line, or refuses naming the first that does not
    /// fit. `seeds` is asked for at most once, when a day or month counter is new.
    pub async fn reserve<F, Fut>(
        &self,
        lines: Vec<Line>,
        charge: Charge,
        seeds: F,
    ) -> Result<MeterDecision, MeterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Seeds, crate::store::StoreError>>,
    {
        let mut seeds = Some(seeds);
        let mut known: Option<Seeds> = None;
        loop {
            let (attempt, backend) = if lines.is_empty() {
                (Attempt::Reserved, Backend::Local)
            } else {
                self.attempt(&lines, known.as_ref()).await?
            };
            match attempt {
                Attempt::Reserved => {
                    return Ok(MeterDecision::Reserved(Reservation {
                        lines,
                        reserved: charge,
                        backend,
                    }));
                }
                Attempt::Refused(i) => {
                    let line = &lines[i];
                    return Ok(MeterDecision::Refused {
                        dimension: line.dimension,
                        limit: line.limit,
                        retry_after_secs: (line.window_end - crate::clock::now()).max(1),
                        never_fits: line.amount > line.limit,
                    });
                }
                Attempt::NeedSeeds => match seeds.take() {
                    Some(f) => known = Some(f().await?),
                    None => {
                        return Err(MeterError::Unavailable(
                            "a counter vanished while it was being seeded".into(),
                        ));
                    }
                },
            }
        }
    }

    /// The shared store (Redis, else the database), or while it cannot answer a refusal
    /// or this process, per `on_redis_failure`; a store that failed within the last
    /// second is not asked. Without a shared store (SQLite), this process.
    async fn attempt(
        &self,
        lines: &[Line],
        seeds: Option<&Seeds>,
    ) -> Result<(Attempt, Backend), MeterError> {
        if let Some(redis) = &self.redis {
            if !self.redis_outage.skip() {
                match redis.reserve(lines, seeds).await {
                    Ok(a) => {
                        // Local counters are only a stand-in during an outage: once
                        // Redis answers again they are stale, and the next outage
                        // starts over from the ledger.
                        self.local.forget(lines);
                        return Ok((a, Backend::Redis));
                    }
                    Err(e) => {
                        metrics::counter!("tollgate_ai_quota_redis_errors_total").increment(1);
                        self.redis_outage.failed(
                            "Redis unavailable for AI quotas",
                            &e,
                            self.on_redis_failure.name(),
                        );
                    }
                }
            }
        } else if let Some(database) = &self.database {
            if !self.database_outage.skip() {
                match attempt_in_database(database, lines, seeds).await {
                    Ok(a) => {
                        self.local.forget(lines);
                        return Ok((a, Backend::Database));
                    }
                    // A statement that failed (not a database that is gone) fails this
                    // call alone, with no fallback and no backoff.
                    Err(e) if !crate::store::health::is_outage(&e) => {
                        return Err(MeterError::Ledger(e));
                    }
                    Err(e) => {
                        metrics::counter!("tollgate_ai_quota_database_errors_total").increment(1);
                        self.database_outage.failed(
                            "the database is unavailable for AI quotas",
                            &e,
                            self.on_redis_failure.name(),
                        );
                    }
                }
            }
        } else {
            return Ok((self.local.reserve(lines, seeds), Backend::Local));
        }
        match self.on_redis_failure {
            RedisFailure::Deny => Err(MeterError::Unavailable(
                "the shared quota store does not answer".into(),
            )),
            RedisFailure::Local => Ok((self.local.reserve(lines, seeds), Backend::Local)),
        }
    }

    /// Replaces the reserved charge by the used one. Never fails the caller: a settle
    /// that cannot reach its store leaves the reservation standing (it errs towards
    /// refusing), and the ledger stays right either way.
    pub async fn settle(&self, r: Reservation, used: Charge) {
        let deltas: Vec<(String, i64)> = r
            .lines
            .iter()
            .map(|l| {
                (
                    l.key.clone(),
                    used.amount(l.dimension) - r.reserved.amount(l.dimension),
                )
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        if deltas.is_empty() {
            return;
        }
        match (r.backend, &self.redis, &self.database) {
            (Backend::Redis, Some(redis), _) => {
                if let Err(e) = redis.settle(&deltas).await {
                    tracing::warn!(error = %e, "could not settle an AI reservation in Redis");
                }
            }
            (Backend::Database, _, Some(database)) => {
                if let Err(e) = database.settle(&deltas).await {
                    tracing::warn!(error = %e, "could not settle an AI reservation in the database");
                }
            }
            _ => self.local.settle(&deltas),
        }
    }

    /// Current counter values (reservations included) for the keys of `lines`; `None`
    /// where a counter does not exist.
    pub async fn peek(&self, keys: &[String]) -> Vec<Option<i64>> {
        if let Some(redis) = &self.redis
            && let Ok(v) = redis.peek(keys).await
        {
            return v;
        }
        if let Some(database) = &self.database
            && let Ok(v) = database.peek(keys).await
        {
            return v;
        }
        self.local.peek(keys)
    }
}

/// One reservation in the database's shared counters.
async fn attempt_in_database(
    database: &SharedCounters,
    lines: &[Line],
    seeds: Option<&Seeds>,
) -> Result<Attempt, crate::store::StoreError> {
    let now = crate::clock::now_ms();
    let takes: Vec<CounterTake<'_>> = lines
        .iter()
        .map(|l| CounterTake {
            key: &l.key,
            amount: l.amount,
            limit: l.limit,
            seed: seed_of(l, seeds),
            expires_ms: now + l.ttl_ms,
        })
        .collect();
    // The database took the amounts exactly when `judge` says Reserved (same rule).
    let values = database.reserve(&takes).await?;
    Ok(judge(lines, &values))
}

/// The attempt for `lines` whose counters hold `current` (`None`: a counter that does not
/// exist and whose seed is not known yet). The process's counters decide with this; the
/// Redis script and the database's `tollgate_reserve` apply the same rule where the
/// counters are, and their answers are read back with it.
fn judge(lines: &[Line], current: &[Option<i64>]) -> Attempt {
    let mut values = Vec::with_capacity(current.len());
    for v in current {
        match v {
            Some(v) => values.push(*v),
            None => return Attempt::NeedSeeds,
        }
    }
    match lines
        .iter()
        .zip(&values)
        .position(|(l, v)| v.saturating_add(l.amount) > l.limit)
    {
        Some(i) => Attempt::Refused(i),
        None => Attempt::Reserved,
    }
}

/// The seed each line starts from, when it is new.
fn seed_of(line: &Line, seeds: Option<&Seeds>) -> Option<i64> {
    if !line.dimension.seeded() {
        return Some(0);
    }
    seeds.map(|s| s.for_line(line.dimension))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota {
            requests_per_minute: Some(3),
            tokens_per_day: Some(1000),
            usd_per_month: Some(500),
            ..Quota::default()
        }
    }

    #[test]
    fn windows_and_keys() {
        let w = Windows::at(1_796_083_199); // 2026-11-30T23:59:59Z
        assert_eq!(w.day, "2026-11-30");
        assert_eq!(w.month_start, "2026-11-01");
        assert_eq!(w.day_end, 1_796_083_200);
        assert_eq!(w.month_end, 1_796_083_200);
        let lines = plan(
            "u1",
            &quota(),
            &Charge {
                tokens: 10,
                pico_usd: 7,
            },
            &w,
        );
        let keys: Vec<_> = lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tollgate:ai:{u1}:rpm:29934719",
                "tollgate:ai:{u1}:tpd:2026-11-30",
                "tollgate:ai:{u1}:usd:2026-11"
            ]
        );
        assert_eq!(
            lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
            [1, 10, 7]
        );
    }

    #[tokio::test]
    async fn reservations_take_all_lines_or_none_and_settle() {
        let meter = Meter::new(None, RedisFailure::Deny, None).unwrap();
        let w = Windows::at(1_796_000_000);
        let charge = Charge {
            tokens: 300,
            pico_usd: 100,
        };
        let seeds = || async {
            Ok(Seeds {
                tokens_day: 0,
                pico_month: 250,
            })
        };
        let first = meter
            .reserve(plan("u", &quota(), &charge, &w), charge, seeds)
            .await
            .unwrap();
        let MeterDecision::Reserved(first) = first else {
            panic!("{first:?}")
        };
        let second = meter
            .reserve(plan("u", &quota(), &charge, &w), charge, seeds)
            .await
            .unwrap();
        assert!(matches!(second, MeterDecision::Reserved(_)));
        // The month has 250 + 200 of 500: a third does not fit, and takes nothing.
        let third = meter
            .reserve(plan("u", &quota(), &charge, &w), charge, seeds)
            .await
            .unwrap();
        assert!(
            matches!(
                third,
                MeterDecision::Refused {
                    dimension: Dimension::UsdPerMonth,
                    ..
                }
            ),
            "{third:?}"
        );
        let keys: Vec<String> = plan("u", &quota(), &charge, &w)
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(meter.peek(&keys).await, [Some(2), Some(600), Some(450)]);
        meter
            .settle(
                first,
                Charge {
                    tokens: 50,
                    pico_usd: 10,
                },
            )
            .await;
        assert_eq!(meter.peek(&keys).await, [Some(2), Some(350), Some(360)]);
    }
}
