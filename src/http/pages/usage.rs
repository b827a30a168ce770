//! The AI usage section the account page and the console's user page share: this
//! month's spend and tokens against the quota (the `/auth/usage` figures), by model, and
//! a chart of spend per day drawn on the server.

use minijinja::{Value, context};

use crate::ai::config::PICO_PER_USD;
use crate::app::AppState;
use crate::error::Error;
use crate::store::{UsageFilter, UsageGroup};
use crate::ui::{chart, format};

/// The section for user `id`, who holds `roles`.
pub async fn section(app: &AppState, id: &str, roles: &[String]) -> Result<Value, Error> {
    let summary = crate::http::ai_usage::usage_summary(app, id, roles).await?;
    let now = crate::clock::now();
    let month_start = crate::ai::meter::Windows::at(now).month_start;
    let first = crate::clock::parse_day(&month_start).unwrap_or(now);
    let days = app
        .store
        .ai_usage_report(&UsageFilter {
            principal: Some(id.to_string()),
            from_day: Some(month_start),
            group_by: vec![UsageGroup::Day],
            limit: 40,
            ..UsageFilter::default()
        })
        .await?;
    let bars = chart::daily(first, now, |day| {
        let pico = days
            .iter()
            .find(|r| r.day.as_deref() == Some(day))
            .map_or(0, |r| r.cost_pico);
        let usd = pico as f64 / PICO_PER_USD;
        (usd, format::usd(usd))
    });
    let title = crate::http::html::t("usage_chart");
    let spent = summary["usage"]["usd_per_month"].as_f64().unwrap_or(0.0);
    let budget = summary["limits"]["usd_per_month"].as_f64();
    let tokens = summary["usage"]["tokens_per_day"].as_i64().unwrap_or(0);
    let token_limit = summary["limits"]["tokens_per_day"].as_i64();
    let models: Vec<Value> = summary["this_month"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            context! {
                provider => m["provider"].as_str(), model => m["model"].as_str(),
                requests => m["requests"].as_i64(),
                tokens => m["input_tokens"].as_i64().unwrap_or(0) + m["output_tokens"].as_i64().unwrap_or(0),
                spent => format::usd(m["cost_usd"].as_f64().unwrap_or(0.0)),
            }
        })
        .collect();
    Ok(context! {
        metered => summary["metered"].as_bool(),
        month => summary["month"].as_str(),
        spent => format::usd(spent),
        budget => budget.map(format::usd),
        tokens_today => tokens,
        token_limit,
        models,
        chart => Value::from_safe_string(chart::bars(title, &bars)),
    })
}
