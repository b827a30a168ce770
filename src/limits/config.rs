//! `[limits]` as written, and its resolution into [`LimitsConfig`].

use std::time::Duration;

use serde::Deserialize;

use super::rules::RuleSpec;
use super::signin::SignInPolicy;
use super::{Cidr, LimitsConfig, RedisFailure};
use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub enabled: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub on_redis_failure: Option<RedisFailure>,
    pub database_counters: Option<bool>,
    pub default_rules: Option<bool>,
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
    #[serde(default)]
    pub sign_in: SignInSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInSection {
    pub max_failures: Option<u32>,
    pub ip_max_failures: Option<u32>,
    pub account_max_failures: Option<u32>,
    pub lockout: Option<DurationValue>,
    pub max_lockout: Option<DurationValue>,
    pub account_lockout: Option<DurationValue>,
    pub reset_after: Option<DurationValue>,
}

pub fn resolve(
    l: LimitsSection,
    enabled: bool,
    duration: SectionDuration<'_>,
) -> Result<LimitsConfig, ConfigError> {
    let mut trusted_proxies = Vec::new();
    for raw in l.trusted_proxies.unwrap_or_default() {
        trusted_proxies.push(Cidr::parse(&raw).ok_or_else(|| {
            invalid(
                "limits.trusted_proxies",
                "addresses or ranges like 10.0.0.0/8",
                &raw,
            )
        })?);
    }
    let rules = crate::limits::rules::merge(l.default_rules.unwrap_or(true), l.rule)
        .map_err(ConfigError)?;
    let d = SignInPolicy::default();
    let s = l.sign_in;
    let sign_in = SignInPolicy {
        max_failures: s.max_failures.unwrap_or(d.max_failures),
        ip_max_failures: s.ip_max_failures.unwrap_or(d.ip_max_failures),
        account_max_failures: s.account_max_failures.unwrap_or(d.account_max_failures),
        lockout: duration("limits.sign_in.lockout", s.lockout, "1m", false)?,
        max_lockout: duration("limits.sign_in.max_lockout", s.max_lockout, "15m", false)?,
        account_lockout: duration(
            "limits.sign_in.account_lockout",
            s.account_lockout,
            "15m",
            false,
        )?,
        reset_after: duration("limits.sign_in.reset_after", s.reset_after, "1h", false)?,
    };
    if sign_in.max_failures == 0 || sign_in.ip_max_failures == 0 {
        return Err(ConfigError(
            "limits.sign_in: failure thresholds must be at least 1".into(),
        ));
    }
    if sign_in.account_max_failures <= sign_in.max_failures {
        return Err(ConfigError(format!(
            "limits.sign_in.account_max_failures ({}) must exceed max_failures ({}): otherwise one address alone could lock an account for everyone",
            sign_in.account_max_failures, sign_in.max_failures
        )));
    }
    Ok(LimitsConfig {
        enabled,
        trusted_proxies,
        on_redis_failure: l.on_redis_failure.unwrap_or(RedisFailure::Local),
        redis_timeout: Duration::from_millis(250),
        database_counters: l.database_counters.unwrap_or(true),
        rules,
        sign_in,
    })
}
