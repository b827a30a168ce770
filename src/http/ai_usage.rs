//! `GET /auth/usage` (the caller's AI usage and what is left of their quota) and
//! `GET /admin/usage` (the ledger by user, provider, model and day).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{Admin, audit_read, query};
use super::credentials::resolve;
use super::problem::{ApiResult, Problem};
use crate::ai::config::{PICO_PER_USD, Quota};
use crate::ai::meter::{self, Charge, Dimension};
use crate::app::AppState;
use crate::error::Error;
use crate::store::{UsageFilter, UsageGroup, UsageReportRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/usage", get(my_usage))
        .route("/admin/usage", get(admin_usage))
}

fn usd(pico: i64) -> f64 {
    pico as f64 / PICO_PER_USD
}

pub(super) fn report_json(r: &UsageReportRow) -> Value {
    let mut v = json!({
        "requests": r.requests,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": usd(r.cost_pico),
    });
    for (key, value) in [
        ("day", &r.day),
        ("user_id", &r.principal),
        ("provider", &r.provider),
        ("model", &r.model),
    ] {
        if let Some(x) = value {
            v[key] = json!(x);
        }
    }
    v
}

async fn my_usage(State(app): State<AppState>, req: axum::extract::Request) -> Response {
    match usage_of_caller(&app, req.method(), req.headers()).await {
        Ok(v) => Json(v).into_response(),
        Err(p) => p.into_response(),
    }
}

async fn usage_of_caller(
    app: &AppState,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Result<Value, Problem> {
    let resolved = resolve(app, method, headers, false, false).await?;
    let Some(principal) = resolved.principal else {
        let code = resolved.failure.map_or("unauthenticated", |f| f.0);
        return Err(Problem::unauthorized(code, "Authentication required"));
    };
    let id = principal.user_id();
    let quota = app.ai.quota_for(&principal.live_roles(&app.store).await?);
    let (w, totals) = app
        .ai
        .totals(id)
        .await
        .map_err(|e| Problem::from(Error::from(e)))?;
    // Live counters include calls in flight; the ledger has what has settled.
    let lines = meter::plan(id, &Quota::metered_everywhere(), &Charge::default(), &w);
    let keys: Vec<String> = lines.iter().map(|l| l.key.clone()).collect();
    let live = app.ai.meter.peek(&keys).await;
    let used = |d: Dimension| -> i64 {
        let i = Dimension::ALL.iter().position(|x| *x == d).unwrap_or(0);
        live.get(i).copied().flatten().unwrap_or(match d {
            Dimension::TokensPerDay => totals.tokens_day,
            Dimension::UsdPerMonth => totals.pico_month,
            _ => 0,
        })
    };
    let show = |d: Dimension, v: i64| -> Value {
        if d == Dimension::UsdPerMonth {
            json!(usd(v))
        } else {
            json!(v)
        }
    };
    let mut usage = json!({});
    let mut limits = json!({});
    let mut remaining = json!({});
    for d in Dimension::ALL {
        usage[d.name()] = show(d, used(d));
        let limit = quota.as_ref().and_then(|q| q.limit(d));
        limits[d.name()] = limit.map_or(Value::Null, |l| show(d, l));
        remaining[d.name()] = limit.map_or(Value::Null, |l| show(d, (l - used(d)).max(0)));
    }
    if let Some(q) = &quota {
        limits["max_output_tokens"] = json!(q.max_output_tokens);
        limits["models"] = json!(q.models);
    }
    let by_model = app
        .store
        .ai_usage_report(&UsageFilter {
            principal: Some(id.to_string()),
            from_day: Some(w.month_start.clone()),
            group_by: vec![UsageGroup::Provider, UsageGroup::Model],
            limit: 1000,
            ..UsageFilter::default()
        })
        .await
        .map_err(|e| Problem::from(Error::from(e)))?;
    Ok(json!({
        "user_id": id,
        "metered": quota.is_some(),
        "day": w.day,
        "month": &w.month_start[..7],
        "usage": usage,
        "limits": limits,
        "remaining": remaining,
        "this_month": by_model.iter().map(report_json).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    user: Option<String>,
    model: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    limit: Option<i64>,
}

fn day_param(name: &str, v: Option<String>) -> Result<Option<String>, Problem> {
    match v {
        Some(d)
            if d.len() != 10
                || !d.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                }) =>
        {
            Err(Problem::bad_request(
                "invalid_request",
                format!("{name} must be a date like 2026-11-29"),
            ))
        }
        other => Ok(other),
    }
}

async fn admin_usage(
    State(app): State<AppState>,
    admin: Admin,
    uri: http::Uri,
) -> ApiResult<Json<Value>> {
    let q: UsageQuery = query(&uri)?;
    let group_by = match q.group_by.as_deref() {
        None => vec![
            UsageGroup::Day,
            UsageGroup::User,
            UsageGroup::Provider,
            UsageGroup::Model,
        ],
        Some(list) => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                UsageGroup::parse(s.trim()).ok_or_else(|| {
                    Problem::bad_request(
                        "invalid_request",
                        "group_by is a comma-separated list of day, user, provider, model",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid_request",
            "limit must be between 1 and 10000",
        ));
    }
    let filter = UsageFilter {
        principal: q.user,
        model: q.model,
        from_day: day_param("from", q.from)?,
        to_day: day_param("to", q.to)?,
        group_by,
        limit,
    };
    let rows = app
        .store
        .ai_usage_report(&filter)
        .await
        .map_err(Error::from)?;
    audit_read(&app, &admin, "ai_usage", filter.principal.as_deref()).await?;
    Ok(Json(json!({
        "rows": rows.iter().map(report_json).collect::<Vec<_>>(),
    })))
}
