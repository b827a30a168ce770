//! Rate limiting (GCRA, per process or shared through Redis) and brute-force throttling
//! of sign-ins.
//!
//! [`Limiter`] answers "may this request go ahead?" for the [`rules`] that match it, with
//! state shared by every node wherever there is somewhere to share it: with
//! `TOLLGATE_REDIS_URL`, every check is one atomic script in Redis ([`redis`]); on
//! PostgreSQL, one atomic statement in the database (`store::counters`), which is also
//! where checks go while Redis is down; on SQLite (one node), this process ([`local`]).
//! When no shared store can answer, checks fall back to local state (logged, see
//! [`outage`]) or, with `limits.on_redis_failure = "deny"`, refuse. [`signin`] is the
//! separate, database-backed failed-sign-in accounting with lockouts.

pub mod address;
pub mod config;
pub mod gcra;
pub mod local;
pub mod outage;
pub mod redis;
pub mod rules;
pub mod signin;

use std::time::Duration;

use crate::store::counters::SharedCounters;

pub use address::Cidr;
pub use gcra::{Quota, RateDecision};
pub use rules::{Per, Rule};

/// What to do when no shared store (Redis, then the database) can answer a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Use this process's own counters (limits become per node for the duration).
    Local,
    /// Refuse the request (503).
    Deny,
}

impl RedisFailure {
    /// As the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            RedisFailure::Local => "local",
            RedisFailure::Deny => "deny",
        }
    }
}

/// `[limits]`, resolved.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub enabled: bool,
    pub trusted_proxies: Vec<Cidr>,
    pub on_redis_failure: RedisFailure,
    /// How long a Redis check may take before it counts as a failure.
    pub redis_timeout: Duration,
    /// Whether, without Redis, checks share state through PostgreSQL (a round trip per
    /// check) rather than counting per node.
    pub database_counters: bool,
    pub rules: Vec<Rule>,
    pub sign_in: signin::SignInPolicy,
}

/// The outcome of a check that applied at least one rule.
#[derive(Debug, Clone)]
pub struct Allowance {
    pub rule: String,
    pub quota: Quota,
    pub decision: RateDecision,
}

#[derive(Debug)]
pub enum LimitRefusal {
    /// Over a limit.
    Limited(Allowance),
    /// No shared store answers and the configuration says to fail closed.
    Unavailable,
}

pub struct Limiter {
    config: LimitsConfig,
    local: local::LocalStore,
    redis: Option<redis::RedisStore>,
    redis_outage: outage::Outage,
    database: Option<SharedCounters>,
    database_outage: outage::Outage,
}

/// A key in a shared store. Built only on the way to one: a node without shared stores
/// (SQLite) pays for its own key alone. Keys carry what clients typed; PostgreSQL's text
/// refuses NUL (a collision with U+FFFD only shares a bucket with the typist's own
/// variants).
fn shared_key(rule: &Rule, key: &str) -> String {
    format!(
        "tollgate:rl:{}:{}",
        rule.name,
        key.replace('\0', "\u{FFFD}")
    )
}

impl Limiter {
    /// `database` is the store's shared counters, when the store has them (PostgreSQL).
    pub fn new(
        config: LimitsConfig,
        redis_url: Option<&str>,
        database: Option<SharedCounters>,
    ) -> anyhow::Result<Limiter> {
        let redis = match redis_url {
            Some(url) if config.enabled => Some(redis::RedisStore::new(url, config.redis_timeout)?),
            _ => None,
        };
        let database = database.filter(|_| config.enabled && config.database_counters);
        Ok(Limiter {
            config,
            local: local::LocalStore::default(),
            redis,
            redis_outage: Default::default(),
            database,
            database_outage: Default::default(),
        })
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    pub fn backend(&self) -> &'static str {
        match (&self.redis, &self.database, self.config.enabled) {
            (_, _, false) => "off",
            (Some(_), Some(_), true) => "redis+database",
            (Some(_), None, true) => "redis",
            (None, Some(_), true) => "database",
            (None, None, true) => "local",
        }
    }

    /// Checks every rule of kind `per` that matches the request, counting `key`. Returns
    /// the tightest verdict (for `RateLimit` headers) or the first refusal. Every matching
    /// rule is charged, so a refusal by one does not refund the others: that keeps the
    /// check one round trip per rule and errs on the side of limiting.
    pub async fn check(
        &self,
        per: Per,
        method: &str,
        path: &str,
        key: &str,
    ) -> Result<Option<Allowance>, LimitRefusal> {
        if !self.config.enabled {
            return Ok(None);
        }
        let path = rules::match_form(path);
        let mut tightest: Option<Allowance> = None;
        for rule in &self.config.rules {
            if rule.per != per || !rule.matches(method, &path) {
                continue;
            }
            let decision = self.decide(rule, key).await?;
            let verdict = Allowance {
                rule: rule.name.clone(),
                quota: rule.quota,
                decision,
            };
            if !decision.allowed {
                return Err(LimitRefusal::Limited(verdict));
            }
            if tightest
                .as_ref()
                .is_none_or(|t| decision.remaining < t.decision.remaining)
            {
                tightest = Some(verdict);
            }
        }
        Ok(tightest)
    }

    /// Redis first, then the database, then (or refused, per `on_redis_failure`) this
    /// process; a store that failed within the last second is not asked.
    async fn decide(&self, rule: &Rule, key: &str) -> Result<RateDecision, LimitRefusal> {
        if let Some(redis) = &self.redis
            && !self.redis_outage.skip()
        {
            match redis.check(&shared_key(rule, key), &rule.quota).await {
                Ok(d) => return Ok(d),
                Err(e) => {
                    metrics::counter!("tollgate_rate_limit_redis_errors_total").increment(1);
                    self.redis_outage.failed(
                        "Redis unavailable for rate limits",
                        &e,
                        self.fallback(),
                    );
                }
            }
        }
        if let Some(database) = &self.database
            && !self.database_outage.skip()
        {
            let q = &rule.quota;
            match database
                .arrival_step(&shared_key(rule, key), q.interval_ms(), q.capacity_ms())
                .await
            {
                Ok(step) => return Ok(gcra::decided(step.now_ms, step.taken, step.before, q)),
                // A statement that failed (not a database that is gone) falls back for
                // this check alone.
                Err(e) if !crate::store::health::is_outage(&e) => {
                    metrics::counter!("tollgate_rate_limit_database_errors_total").increment(1);
                    tracing::warn!(error = %e, "a rate-limit check failed in the database");
                }
                Err(e) => {
                    metrics::counter!("tollgate_rate_limit_database_errors_total").increment(1);
                    self.database_outage.failed(
                        "the database is unavailable for rate limits",
                        &e,
                        self.config.on_redis_failure.name(),
                    );
                }
            }
        }
        let shared = self.redis.is_some() || self.database.is_some();
        if shared && self.config.on_redis_failure == RedisFailure::Deny {
            return Err(LimitRefusal::Unavailable);
        }
        let local_key = format!("{}\u{0}{key}", rule.name);
        Ok(self
            .local
            .check(&local_key, crate::clock::now_ms(), &rule.quota))
    }

    /// Where checks go when Redis fails, for the log.
    fn fallback(&self) -> &'static str {
        match &self.database {
            Some(_) if !self.database_outage.skip() => "database",
            _ => self.config.on_redis_failure.name(),
        }
    }

    /// Measures one local check (for the benchmark): same code path as a request.
    pub fn check_local_only(&self, rule: &Rule, key: &str) -> RateDecision {
        self.local.check(key, crate::clock::now_ms(), &rule.quota)
    }
}
