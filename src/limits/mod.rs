//! Rate limiting (GCRA, per process or shared through Redis) and brute-force throttling
//! of sign-ins.
//!
//! [`Limiter`] answers "may this request go ahead?" for the [`rules`] that match it. State
//! lives in this process ([`local`]) unless `TOLLGATE_REDIS_URL` is set, in which case
//! every check is one atomic script in Redis ([`redis`]), shared by every node. When Redis
//! cannot answer, checks fall back to local state (logged) or, with
//! `limits.on_redis_failure = "deny"`, refuse. [`signin`] is the separate, database-backed
//! failed-sign-in accounting with lockouts.

pub mod address;
pub mod config;
pub mod gcra;
pub mod local;
pub mod redis;
pub mod rules;
pub mod signin;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use address::Cidr;
pub use gcra::{Quota, RateDecision};
pub use rules::{Per, Rule};

/// What to do when Redis cannot answer a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailure {
    /// Use this process's own counters (limits become per node for the duration).
    Local,
    /// Refuse the request (503).
    Deny,
}

/// `[limits]`, resolved.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub enabled: bool,
    pub trusted_proxies: Vec<Cidr>,
    pub on_redis_failure: RedisFailure,
    /// How long a Redis check may take before it counts as a failure.
    pub redis_timeout: Duration,
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
    /// Redis is unreachable and the configuration says to fail closed.
    Unavailable,
}

pub struct Limiter {
    config: LimitsConfig,
    local: local::LocalStore,
    redis: Option<redis::RedisStore>,
    /// When a Redis failure was last logged (ms), so an outage logs once a minute.
    last_redis_warning: AtomicI64,
}

impl Limiter {
    pub fn new(config: LimitsConfig, redis_url: Option<&str>) -> anyhow::Result<Limiter> {
        let redis = match redis_url {
            Some(url) if config.enabled => Some(redis::RedisStore::new(url, config.redis_timeout)?),
            _ => None,
        };
        Ok(Limiter {
            config,
            local: local::LocalStore::default(),
            redis,
            last_redis_warning: AtomicI64::new(0),
        })
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    pub fn backend(&self) -> &'static str {
        match (&self.redis, self.config.enabled) {
            (_, false) => "off",
            (Some(_), true) => "redis",
            (None, true) => "local",
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

    async fn decide(&self, rule: &Rule, key: &str) -> Result<RateDecision, LimitRefusal> {
        if let Some(redis) = &self.redis {
            let redis_key = format!("tollgate:rl:{}:{key}", rule.name);
            match redis.check(&redis_key, &rule.quota).await {
                Ok(d) => return Ok(d),
                Err(e) => {
                    self.warn_redis(&e);
                    if self.config.on_redis_failure == RedisFailure::Deny {
                        return Err(LimitRefusal::Unavailable);
                    }
                }
            }
        }
        let local_key = format!("{}\u{0}{key}", rule.name);
        Ok(self
            .local
            .check(&local_key, crate::clock::now_ms(), &rule.quota))
    }

    fn warn_redis(&self, e: &::redis::RedisError) {
        let now = crate::clock::now_ms();
        let last = self.last_redis_warning.load(Ordering::Relaxed);
        if now - last > 60_000
            && self
                .last_redis_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, fallback = ?self.config.on_redis_failure, "Redis unavailable for rate limits");
        }
        metrics::counter!("tollgate_rate_limit_redis_errors_total").increment(1);
    }

    /// Measures one local check (for the benchmark): same code path as a request.
    pub fn check_local_only(&self, rule: &Rule, key: &str) -> RateDecision {
        self.local.check(key, crate::clock::now_ms(), &rule.quota)
    }
}
