//! The AI proxy's domain: providers and their keys, who may call what, the worst case a
//! call can cost, exact quotas ([`meter`]), guards, usage read from responses, and the
//! ledger. The HTTP handler (`http::ai`) translates requests into these calls.

pub mod charge;
pub mod config;
pub mod exchange;
pub mod guard;
pub mod ledger;
pub mod meter;
pub mod relay;
pub mod request;
pub mod scrub;
pub mod spill;
pub mod upstream;
pub mod usage;
pub mod usage_chunk;

use std::collections::BTreeMap;
use std::sync::Arc;

use config::{AiConfig, Price, ProviderConfig, Quota};
use meter::{Charge, Meter, MeterDecision, MeterError, Seeds, Windows};

use crate::outbound::Outbound;
use crate::session::credentials::Principal;
use crate::store::{Store, UsageRow};

/// The error of a relayed body: whatever the provider's stream or the scrubber failed with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct AiProvider {
    pub config: ProviderConfig,
    /// The shared outbound client with this provider's timeouts.
    pub outbound: Outbound,
}

pub struct Ai {
    pub config: AiConfig,
    providers: BTreeMap<String, Arc<AiProvider>>,
    /// Model names the configuration names (prices, allow-lists): the only ones a metric
    /// label may carry, so callers cannot mint series.
    known_models: std::collections::BTreeSet<String>,
    pub meter: Meter,
    /// Refusals are audited at most twice per caller, reason and minute.
    pub refusals: crate::audit::throttle::Throttle,
    ledger: ledger::Ledger,
    store: Store,
}

/// Who a call is metered to.
#[derive(Debug, Clone)]
pub struct Payer {
    /// The user id, or a service's client id.
    pub principal: String,
    pub roles: Vec<String>,
    pub api_key_id: Option<String>,
    pub client_id: Option<String>,
}

impl Payer {
    /// The payer of a call made with `principal`'s credentials, under its live `roles`.
    pub fn of(principal: &Principal, roles: Vec<String>) -> Payer {
        Payer {
            principal: principal.user_id().to_string(),
            roles,
            api_key_id: match principal {
                Principal::ApiKey(k) => Some(k.key_id.clone()),
                Principal::Token(_) => None,
            },
            client_id: principal.oauth_client().map(str::to_string),
        }
    }
}

impl Ai {
    pub fn new(
        config: AiConfig,
        store: Store,
        outbound: &Outbound,
        redis_url: Option<&str>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Ai> {
        let mut providers = BTreeMap::new();
        for (name, p) in &config.providers {
            providers.insert(
                name.clone(),
                Arc::new(AiProvider {
                    config: p.clone(),
                    outbound: outbound.with_timeouts(p.timeouts.clone()),
                }),
            );
        }
        let meter = Meter::new(redis_url, config.on_redis_failure, store.shared_counters())?;
        let known_models = config
            .prices
            .keys()
            .cloned()
            .chain(
                config
                    .quotas
                    .values()
                    .flat_map(|q| q.models.iter().flatten())
                    .filter(|m| !m.ends_with('*'))
                    .cloned(),
            )
            .collect();
        Ok(Ai {
            config,
            providers,
            known_models,
            meter,
            refusals: Default::default(),
            ledger: ledger::Ledger::new(store.clone(), data_dir)?,
            store,
        })
    }

    pub fn provider(&self, name: &str) -> Option<Arc<AiProvider>> {
        self.providers.get(name).cloned()
    }

    /// The quota of a caller with these roles: per limit, the most generous among the
    /// roles that have an `[ai.quota.<role>]` (an absent limit is the most generous of
    /// all), else `[ai.quota.default]`; `None` is unmetered.
    pub fn quota_for(&self, roles: &[String]) -> Option<Quota> {
        let quotas = &self.config.quotas;
        let applicable: Vec<&Quota> = roles.iter().filter_map(|r| quotas.get(r)).collect();
        if applicable.is_empty() {
            return quotas.get("default").cloned();
        }
        let most = |f: fn(&Quota) -> Option<i64>| -> Option<i64> {
            applicable
                .iter()
                .map(|q| f(q))
                .try_fold(i64::MIN, |acc, v| v.map(|v| acc.max(v)))
        };
        let models = if applicable.iter().any(|q| q.models.is_none()) {
            None
        } else {
            let mut all: Vec<String> = applicable
                .iter()
                .flat_map(|q| q.models.iter().flatten().cloned())
                .collect();
            all.sort();
            all.dedup();
            Some(all)
        };
        Some(Quota {
            requests_per_minute: most(|q| q.requests_per_minute),
            tokens_per_minute: most(|q| q.tokens_per_minute),
            tokens_per_day: most(|q| q.tokens_per_day),
            usd_per_month: most(|q| q.usd_per_month),
            max_output_tokens: applicable
                .iter()
                .map(|q| q.max_output_tokens)
                .try_fold(0, |acc, v| v.map(|v| acc.max(v))),
            models,
        })
    }

    /// A model's name as a metric label: itself when the configuration names it, `other`
    /// for anything a caller made up.
    pub fn model_label(&self, model: &str) -> String {
        if self.known_models.contains(model) {
            model.to_string()
        } else {
            "other".to_string()
        }
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.config.prices.get(model).copied()
    }

    /// The cost of a call in pico-dollars, `cache_write` of the input at the cache-write
    /// rate; an unpriced model costs nothing.
    pub fn charge(&self, model: &str, input: i64, output: i64, cache_write: i64) -> Charge {
        let p = self.price(model).unwrap_or_default();
        let cache_write = cache_write.clamp(0, input.max(0));
        Charge {
            tokens: input.saturating_add(output),
            pico_usd: (input - cache_write)
                .saturating_mul(p.input)
                .saturating_add(cache_write.saturating_mul(p.cache_write))
                .saturating_add(output.saturating_mul(p.output)),
        }
    }

    /// Tokens reserved for one image sent to `model`.
    pub fn image_tokens(&self, model: &str) -> i64 {
        self.price(model)
            .and_then(|p| p.image_tokens)
            .unwrap_or(self.config.image_tokens)
    }

    /// Reserves a call's worst case against the caller's quota.
    pub async fn reserve(
        &self,
        caller: &Payer,
        quota: &Quota,
        worst: Charge,
    ) -> Result<MeterDecision, MeterError> {
        let w = Windows::at(crate::clock::now());
        let lines = meter::plan(&caller.principal, quota, &worst, &w);
        let store = &self.store;
        self.meter
            .reserve(lines, worst, || async {
                let (tokens_day, pico_month) = store
                    .ai_totals(&caller.principal, &w.day, &w.month_start)
                    .await?;
                Ok(Seeds {
                    tokens_day,
                    pico_month,
                })
            })
            .await
    }

    /// Settles a call (if it was metered) and writes its ledger row and metrics.
    pub async fn record(
        &self,
        reservation: Option<meter::Reservation>,
        used: Charge,
        row: UsageRow,
    ) {
        if let Some(r) = reservation {
            self.meter.settle(r, used).await;
        }
        let model = self.model_label(&row.model);
        let labels = [("provider", row.provider.clone()), ("model", model.clone())];
        metrics::counter!(
            "tollgate_ai_requests_total",
            &[
                ("provider", row.provider.clone()),
                ("model", model.clone()),
                ("outcome", row.outcome.to_string()),
            ]
        )
        .increment(1);
        for (direction, tokens) in [("input", row.input_tokens), ("output", row.output_tokens)] {
            metrics::counter!(
                "tollgate_ai_tokens_total",
                &[
                    ("provider", row.provider.clone()),
                    ("model", model.clone()),
                    ("direction", direction.to_string()),
                ]
            )
            .increment(tokens.max(0) as u64);
        }
        metrics::gauge!("tollgate_ai_cost_usd_total", &labels)
            .increment(row.cost_pico as f64 / config::PICO_PER_USD);
        let (principal, model) = (row.principal.clone(), row.model.clone());
        if let Err(e) = self.ledger.write(row).await {
            tracing::error!(error = %e, %principal, %model, "could not write an AI usage ledger row");
        }
    }

    /// Ledger totals for a caller's current day and month.
    pub async fn totals(
        &self,
        principal: &str,
    ) -> Result<(Windows, Seeds), crate::store::StoreError> {
        let w = Windows::at(crate::clock::now());
        let (tokens_day, pico_month) = self
            .store
            .ai_totals(principal, &w.day, &w.month_start)
            .await?;
        Ok((
            w,
            Seeds {
                tokens_day,
                pico_month,
            },
        ))
    }
}

/// Whether `model` is on an allow-list (`*` at the end matches a prefix).
pub fn model_allowed(allowed: Option<&[String]>, model: &str) -> bool {
    allowed.is_none_or(|list| {
        list.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => pattern == model,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ai(quotas: &[(&str, Quota)]) -> Ai {
        let mut config = AiConfig::default();
        for (role, q) in quotas {
            config.quotas.insert(role.to_string(), q.clone());
        }
        let store =
            Store::Sqlite(sqlx::sqlite::SqlitePool::connect_lazy("sqlite::memory:").unwrap());
        let dir = std::env::temp_dir().join(format!("tollgate-ai-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Ai::new(
            config,
            store,
            &Outbound::new(Default::default()).unwrap(),
            None,
            &dir,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_most_generous_role_applies_limit_by_limit() {
        let user = Quota {
            requests_per_minute: Some(10),
            usd_per_month: Some(5),
            max_output_tokens: Some(100),
            models: Some(vec!["small".into()]),
            ..Quota::default()
        };
        let pro = Quota {
            requests_per_minute: Some(60),
            usd_per_month: Some(2),
            tokens_per_day: Some(1000),
            max_output_tokens: Some(500),
            models: Some(vec!["big-*".into()]),
            ..Quota::default()
        };
        let a = ai(&[
            ("user", user.clone()),
            ("pro", pro),
            ("default", Quota::default()),
        ]);
        let q = a
            .quota_for(&["user".into(), "pro".into(), "other".into()])
            .unwrap();
        assert_eq!(q.requests_per_minute, Some(60));
        assert_eq!(q.usd_per_month, Some(5));
        assert_eq!(
            q.tokens_per_day, None,
            "user has no daily limit: none applies"
        );
        assert_eq!(q.max_output_tokens, Some(500));
        assert_eq!(
            q.models.as_deref(),
            Some(&["big-*".to_string(), "small".to_string()][..])
        );
        assert!(model_allowed(q.models.as_deref(), "big-1"));
        assert!(!model_allowed(q.models.as_deref(), "huge"));
        assert_eq!(a.quota_for(&["other".into()]), Some(Quota::default()));
        assert_eq!(ai(&[("user", user)]).quota_for(&[]), None);
    }
}
