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
    let roles = principal.live_roles(&app.store).await?;
    Ok(usage_summary(app, principal.user_id(), &roles).await?)
}

/// What user `id` (holding `roles`) used this month and today against their quota, and
/// this month by provider and model (the `/auth/usage` body; the account page and the
/// console show it too).
pub(crate) async fn usage_summary(
    app: &AppState,
    id: &str,
    roles: &[String],
) -> Result<Value, Error> {
    let quota = app.ai.quota_for(roles);
    let (w, totals) = app.ai.totals(id).await.map_err(Error::from)?;
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
        .map_err(Error::from)?;
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

/// A usage report's filters as a query string: `/admin/usage` and the console's spend
/// page take the same ones.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    pub user: Option<String>,
    pub model: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
    /// `cost`: largest spend first (top spenders); default: in group order.
    pub order: Option<String>,
    /// `csv`: the rows as CSV (for a spreadsheet) instead of JSON.
    pub format: Option<String>,
    pub limit: Option<i64>,
}

fn day_param(name: &str, v: Option<String>) -> Result<Option<String>, Problem> {
    match v {
        Some(d) if crate::clock::parse_day(&d).is_none() => Err(Problem::bad_request(
            "invalid_request",
            format!("{name} must be a date like 2026-11-29"),
        )),
        other => Ok(other),
    }
}

/// The report a query asks for, checked.
pub(crate) fn usage_filter(q: UsageQuery) -> Result<UsageFilter, Problem> {
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
    let by_cost = match q.order.as_deref() {
        None | Some("") | Some("group") => false,
        Some("cost") => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "invalid_request",
                "order is group or cost",
            ));
        }
    };
    Ok(UsageFilter {
        principal: q.user.filter(|u| !u.is_empty()),
        model: q.model.filter(|m| !m.is_empty()),
        from_day: day_param("from", q.from.filter(|d| !d.is_empty()))?,
        to_day: day_param("to", q.to.filter(|d| !d.is_empty()))?,
        group_by,
        by_cost,
        limit,
    })
}

/// Report rows as CSV (RFC 4180), one column per grouping and the sums; a field a
/// spreadsheet would run as a formula is prefixed with `'` (OWASP CSV injection).
pub(crate) fn report_csv(group_by: &[UsageGroup], rows: &[UsageReportRow]) -> String {
    fn field(out: &mut String, value: &str) {
        // Spreadsheets skip leading blanks before reading a formula.
        let formula = value
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with(['=', '+', '-', '@']);
        let value = if formula || value.starts_with(['\t', '\r', '\n']) {
            format!("'{value}")
        } else {
            value.to_string()
        };
        if value.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&value);
        }
    }
    let mut out = String::new();
    for g in group_by {
        out.push_str(g.name());
        out.push(',');
    }
    out.push_str("requests,input_tokens,output_tokens,cost_usd\r\n");
    for r in rows {
        for g in group_by {
            let v = match g {
                UsageGroup::Day => &r.day,
                UsageGroup::User => &r.principal,
                UsageGroup::Provider => &r.provider,
                UsageGroup::Model => &r.model,
            };
            field(&mut out, v.as_deref().unwrap_or(""));
            out.push(',');
        }
        out.push_str(&format!(
            "{},{},{},{:.6}\r\n",
            r.requests,
            r.input_tokens,
            r.output_tokens,
            usd(r.cost_pico)
        ));
    }
    out
}

async fn admin_usage(
    State(app): State<AppState>,
    admin: Admin,
    uri: http::Uri,
) -> ApiResult<Response> {
    let q: UsageQuery = query(&uri)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "invalid_request",
                "format is json or csv",
            ));
        }
    };
    let filter = usage_filter(q)?;
    let rows = app
        .store
        .ai_usage_report(&filter)
        .await
        .map_err(Error::from)?;
    audit_read(&app, &admin, "ai_usage", filter.principal.as_deref()).await?;
    if csv {
        return Ok(csv_response(report_csv(&filter.group_by, &rows)));
    }
    Ok(Json(json!({
        "rows": rows.iter().map(report_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A CSV download.
pub(crate) fn csv_response(body: String) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"ai-usage.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let row = UsageReportRow {
            day: None,
            principal: Some("=HYPERLINK(\"x\")".into()),
            provider: None,
            model: Some("gpt, mini".into()),
            requests: 2,
            input_tokens: 3,
            output_tokens: 4,
            cost_pico: 1_500_000_000_000,
        };
        let csv = report_csv(&[UsageGroup::User, UsageGroup::Model], &[row]);
        let spaced = UsageReportRow {
            day: None,
            principal: Some(" \n=1+1".into()),
            provider: None,
            model: Some("-".into()),
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_pico: 0,
        };
        let out = report_csv(&[UsageGroup::User, UsageGroup::Model], &[spaced]);
        assert!(out.contains("\"' \n=1+1\",'-,"), "{out}");
        assert_eq!(
            csv,
            "user,model,requests,input_tokens,output_tokens,cost_usd\r\n\"'=HYPERLINK(\"\"x\"\")\",\"gpt, mini\",2,3,4,1.500000\r\n"
        );
    }
}
