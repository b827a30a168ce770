//! `[ai]`: providers, prices and per-role quotas, as written and as resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::guard::{Guard, Redaction};
use crate::config::values::{parse_duration, secret_from};
use crate::outbound::Timeouts;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiSpec {
    /// `cap` (default): a request asking for more output than the role allows is capped;
    /// `reject`: it is refused.
    pub over_max_output: Option<OverMaxOutput>,
    /// The output bound injected into metered requests that name none.
    pub default_max_output_tokens: Option<u32>,
    /// Bytes of prompt text counted as one token when reserving (1 = a strict upper bound
    /// for byte-level BPE tokenizers).
    pub prompt_bytes_per_token: Option<u32>,
    /// Tokens reserved per image for models whose price names none.
    pub image_tokens: Option<u32>,
    /// After a client disconnects, how long the upstream is still read for its usage.
    pub drain_timeout: Option<toml::Value>,
    /// `deny` (default): without Redis, metered calls are refused (503); `local`: this
    /// process's counters are used meanwhile.
    pub on_redis_failure: Option<crate::limits::RedisFailure>,
    #[serde(default)]
    pub provider: BTreeMap<String, ProviderSpec>,
    #[serde(default)]
    pub price: BTreeMap<String, PriceSpec>,
    #[serde(default)]
    pub quota: BTreeMap<String, QuotaSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverMaxOutput {
    Cap,
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: String,
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    pub scope: Option<String>,
    /// Calls need a session that passed a second factor (step-up; default false).
    pub mfa: Option<bool>,
    /// Paths (after `/ai/<provider>/[v1/]`) that may be called; defaults per kind.
    pub endpoints: Option<Vec<String>>,
    pub connect_timeout: Option<toml::Value>,
    pub timeout: Option<toml::Value>,
    pub idle_timeout: Option<toml::Value>,
    /// Sent as `anthropic-version` when the client names none (kind `anthropic`).
    pub anthropic_version: Option<String>,
    pub max_request_bytes: Option<usize>,
    pub max_prompt_tokens: Option<u64>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub redact: Vec<Redaction>,
    pub log_prompts: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    pub input: f64,
    pub output: f64,
    /// Prompt-cache writes (Anthropic `cache_control`); default twice `input`, the
    /// dearest cache-write rate.
    pub cache_write: Option<f64>,
    /// Tokens reserved per image in a prompt (default `[ai] image_tokens`).
    pub image_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub usd_per_month: Option<f64>,
    pub max_output_tokens: Option<u32>,
    /// Models this role may call (`*` at the end matches a prefix); absent: any.
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
}

/// A provider key, redacted in `Debug` so no log line can carry it.
#[derive(Clone)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub scope: String,
    /// Calls need a second factor (API keys, which have none, are refused).
    pub mfa: bool,
    pub endpoints: Vec<String>,
    pub timeouts: Timeouts,
    pub anthropic_version: String,
    pub guard: Guard,
}

/// USD per token, in pico-dollars (10⁻¹² USD), so sums are exact integers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub input: i64,
    pub output: i64,
    pub cache_write: i64,
    pub image_tokens: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quota {
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub tokens_per_day: Option<i64>,
    /// Pico-dollars.
    pub usd_per_month: Option<i64>,
    pub max_output_tokens: Option<u32>,
    pub models: Option<Vec<String>>,
}

impl Quota {
    pub fn limit(&self, d: crate::ai::meter::Dimension) -> Option<i64> {
        use crate::ai::meter::Dimension;
        match d {
            Dimension::RequestsPerMinute => self.requests_per_minute,
            Dimension::TokensPerMinute => self.tokens_per_minute,
            Dimension::TokensPerDay => self.tokens_per_day,
            Dimension::UsdPerMonth => self.usd_per_month,
        }
    }

    /// A quota with every limit set, for naming every counter of a caller.
    pub fn metered_everywhere() -> Quota {
        Quota {
            requests_per_minute: Some(i64::MAX),
            tokens_per_minute: Some(i64::MAX),
            tokens_per_day: Some(i64::MAX),
            usd_per_month: Some(i64::MAX),
            ..Quota::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct AiConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    pub prices: BTreeMap<String, Price>,
    pub quotas: BTreeMap<String, Quota>,
    pub over_max_output: OverMaxOutput,
    pub default_max_output_tokens: u32,
    pub prompt_bytes_per_token: u32,
    pub image_tokens: i64,
    pub drain_timeout: Duration,
    pub on_redis_failure: crate::limits::RedisFailure,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            providers: BTreeMap::new(),
            prices: BTreeMap::new(),
            quotas: BTreeMap::new(),
            over_max_output: OverMaxOutput::Cap,
            default_max_output_tokens: 4096,
            prompt_bytes_per_token: 1,
            image_tokens: 2_600,
            drain_timeout: Duration::from_secs(60),
            on_redis_failure: crate::limits::RedisFailure::Deny,
        }
    }
}

pub const PICO_PER_USD: f64 = 1e12;

/// USD per million tokens → pico-dollars per token, rounded up (never under-charge).
fn pico_per_token(usd_per_million: f64) -> i64 {
    (usd_per_million * 1e6).ceil() as i64
}

const OPENAI_ENDPOINTS: &[&str] = &[
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "models",
];
const ANTHROPIC_ENDPOINTS: &[&str] = &["messages", "models"];
const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

fn duration(key: &str, v: Option<toml::Value>, default: Duration) -> Result<Duration, String> {
    let Some(v) = v else { return Ok(default) };
    let raw = match &v {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    parse_duration(&raw)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("invalid {key}: expected a duration like 10s or 5m, got '{raw}'"))
}

pub fn resolve(spec: AiSpec, env: &dyn Fn(&str) -> Option<String>) -> Result<AiConfig, String> {
    let defaults = AiConfig::default();
    let mut providers = BTreeMap::new();
    for (name, p) in spec.provider {
        let context = format!("ai.provider.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{context}: names are letters, digits, - and _"));
        }
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "anthropic" => ProviderKind::Anthropic,
            other => {
                return Err(format!(
                    "{context}.kind: expected \"openai\" or \"anthropic\", got '{other}'"
                ));
            }
        };
        let base = url::Url::parse(&p.base_url)
            .map_err(|_| format!("{context}.base_url: not an absolute URL"))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.query().is_some()
            || !base.username().is_empty()
        {
            return Err(format!(
                "{context}.base_url: an http(s) URL without query or credentials"
            ));
        }
        let api_key = secret_from(
            &context,
            "api_key",
            p.api_key_env.as_deref(),
            p.api_key_file.as_deref(),
            env,
        )?
        .map(ApiKey);
        let scope = p.scope.unwrap_or_else(|| "ai:invoke".into());
        if !crate::authz::valid_scope(&scope) {
            return Err(format!("{context}.scope: '{scope}' is not a valid scope"));
        }
        let known = match kind {
            ProviderKind::OpenAi => OPENAI_ENDPOINTS,
            ProviderKind::Anthropic => ANTHROPIC_ENDPOINTS,
        };
        let endpoints = p
            .endpoints
            .unwrap_or_else(|| known.iter().map(|s| s.to_string()).collect());
        // Anything else (files, batches, images, audio) would cost money unmetered.
        if let Some(e) = endpoints.iter().find(|e| !known.contains(&e.as_str())) {
            return Err(format!(
                "{context}.endpoints: '{e}' is not one Tollgate can meter (known: {})",
                known.join(", ")
            ));
        }
        if http::Uri::try_from(p.base_url.trim_end_matches('/')).is_err() {
            return Err(format!("{context}.base_url: not usable as a request URI"));
        }
        if let Some(k) = &api_key
            && http::HeaderValue::from_str(&format!("Bearer {}", k.0)).is_err()
        {
            return Err(format!(
                "{context}: the API key contains characters a header cannot carry"
            ));
        }
        let base_timeouts = Timeouts::default();
        let timeouts = Timeouts {
            connect_timeout: duration(
                &format!("{context}.connect_timeout"),
                p.connect_timeout,
                base_timeouts.connect_timeout,
            )?,
            response_timeout: duration(
                &format!("{context}.timeout"),
                p.timeout,
                Duration::from_secs(600),
            )?,
            idle_timeout: duration(
                &format!("{context}.idle_timeout"),
                p.idle_timeout,
                Duration::from_secs(120),
            )?,
        };
        let guard = Guard::new(
            p.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            p.max_prompt_tokens,
            &p.deny,
            p.redact,
            p.log_prompts.unwrap_or(false),
        )
        .map_err(|e| format!("{context}.deny: {e}"))?;
        providers.insert(
            name.clone(),
            ProviderConfig {
                name,
                kind,
                base_url: p.base_url.trim_end_matches('/').to_string(),
                api_key,
                scope,
                mfa: p.mfa.unwrap_or(false),
                endpoints,
                timeouts,
                anthropic_version: p.anthropic_version.unwrap_or_else(|| "2023-06-01".into()),
                guard,
            },
        );
    }
    let mut prices = BTreeMap::new();
    for (model, p) in spec.price {
        let cache_write = p.cache_write.unwrap_or(p.input * 2.0);
        if ![p.input, p.output, cache_write]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
        {
            return Err(format!(
                "ai.price.\"{model}\": input and output are non-negative USD per million tokens"
            ));
        }
        prices.insert(
            model,
            Price {
                input: pico_per_token(p.input),
                output: pico_per_token(p.output),
                cache_write: pico_per_token(cache_write),
                image_tokens: p.image_tokens.map(i64::from),
            },
        );
    }
    let mut quotas = BTreeMap::new();
    for (role, q) in spec.quota {
        if role != "default" && !crate::authz::valid_role_name(&role) {
            return Err(format!("ai.quota.{role}: not a valid role name"));
        }
        let usd = match q.usd_per_month {
            Some(usd) if !(usd.is_finite() && usd >= 0.0) => {
                return Err(format!(
                    "ai.quota.{role}.usd_per_month: a non-negative amount"
                ));
            }
            Some(usd) => Some((usd * PICO_PER_USD).round() as i64),
            None => None,
        };
        let count = |v: Option<u64>| v.map(|n| n.min(i64::MAX as u64) as i64);
        quotas.insert(
            role,
            Quota {
                requests_per_minute: count(q.requests_per_minute),
                tokens_per_minute: count(q.tokens_per_minute),
                tokens_per_day: count(q.tokens_per_day),
                usd_per_month: usd,
                max_output_tokens: q.max_output_tokens,
                models: q.models,
            },
        );
    }
    let prompt_bytes_per_token = spec
        .prompt_bytes_per_token
        .unwrap_or(defaults.prompt_bytes_per_token);
    if prompt_bytes_per_token == 0 {
        return Err("ai.prompt_bytes_per_token: at least 1".into());
    }
    Ok(AiConfig {
        providers,
        prices,
        quotas,
        over_max_output: spec.over_max_output.unwrap_or(defaults.over_max_output),
        default_max_output_tokens: spec
            .default_max_output_tokens
            .unwrap_or(defaults.default_max_output_tokens),
        prompt_bytes_per_token,
        image_tokens: spec.image_tokens.map_or(defaults.image_tokens, i64::from),
        drain_timeout: duration(
            "ai.drain_timeout",
            spec.drain_timeout,
            defaults.drain_timeout,
        )?,
        on_redis_failure: spec.on_redis_failure.unwrap_or(defaults.on_redis_failure),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<AiConfig, String> {
        resolve(toml::from_str(text).map_err(|e| e.to_string())?, env)
    }

    #[test]
    fn the_documented_example_resolves() {
        let c = parse(
            r#"
            [provider.openai]
            kind = "openai"
            base_url = "https://api.openai.com/v1/"
            api_key_env = "OPENAI_API_KEY"
            [price."gpt-4o-mini"]
            input = 0.15
            output = 0.60
            [quota.user]
            requests_per_minute = 20
            usd_per_month = 5.0
            max_output_tokens = 2048
            "#,
            &|k| (k == "OPENAI_API_KEY").then(|| "sk-test".to_string()),
        )
        .unwrap();
        let p = &c.providers["openai"];
        assert_eq!(p.base_url, "https://api.openai.com/v1");
        assert_eq!(p.scope, "ai:invoke");
        assert_eq!(p.api_key.as_ref().unwrap().0, "sk-test");
        assert!(!format!("{p:?}").contains("sk-test"));
        assert_eq!(c.prices["gpt-4o-mini"].input, 150_000);
        assert_eq!(c.prices["gpt-4o-mini"].output, 600_000);
        assert_eq!(c.quotas["user"].usd_per_month, Some(5_000_000_000_000));
    }

    #[test]
    fn mistakes_name_the_key() {
        let none = |_: &str| None;
        for (text, needle) in [
            (
                "[provider.x]\nkind = \"gemini\"\nbase_url = \"https://a\"",
                "kind",
            ),
            (
                "[provider.x]\nkind = \"openai\"\nbase_url = \"ftp://a\"",
                "base_url",
            ),
            (
                "[provider.x]\nkind = \"openai\"\nbase_url = \"https://a\"\napi_key_env = \"NOPE\"",
                "NOPE",
            ),
            (
                "[provider.x]\nkind = \"openai\"\nbase_url = \"https://a\"\ndeny = [\"(\"]",
                "deny",
            ),
            ("[price.m]\ninput = -1.0\noutput = 1.0", "ai.price"),
            (
                "[provider.x]\nkind = \"openai\"\nbase_url = \"https://a\"\nendpoints = [\"files\"]",
                "endpoints",
            ),
            (
                "[provider.x]\nkind = \"openai\"\nbase_url = \"https://a b/v1\"",
                "base_url",
            ),
            ("[quota.user]\nusd_per_month = -1.0", "usd_per_month"),
        ] {
            let err = parse(text, &none).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
