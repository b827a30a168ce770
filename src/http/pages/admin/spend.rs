//! The console's AI spend: the usage ledger summed per user, per model or per day over a
//! range of days (this month by default), top spenders first (or by name), with a chart of spend per
//! day, and the same report as CSV (`/admin/usage`'s filters and `report_csv`).

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use minijinja::{Value, context};

use super::console;
use crate::ai::config::PICO_PER_USD;
use crate::app::AppState;
use crate::error::Error;
use crate::http::ai_usage::{UsageQuery, csv_response, report_csv, usage_filter};
use crate::http::extract::Client;
use crate::store::{UsageFilter, UsageGroup};
use crate::ui::{chart, format};

/// Rows per report (the CSV has up to the API's maximum).
const ROWS: i64 = 100;

#[derive(serde::Deserialize, Default, Clone)]
#[serde(default)]
struct SpendQuery {
    from: String,
    to: String,
    /// `user` (default), `model` or `day`.
    group: String,
    /// `cost` (largest first) or `group` (by user, model or day); default: `cost`, and
    /// days in order.
    sort: String,
}

impl SpendQuery {
    /// This month unless the form says otherwise; one grouping.
    fn filter(
        &self,
        limit: i64,
    ) -> Result<(UsageFilter, UsageGroup, &'static str), crate::http::problem::Problem> {
        let now = crate::clock::now();
        let month_start = crate::ai::meter::Windows::at(now).month_start;
        let group = UsageGroup::parse(&self.group).unwrap_or(UsageGroup::User);
        let sort = match (self.sort.as_str(), group) {
            ("group", _) | ("", UsageGroup::Day) => "group",
            _ => "cost",
        };
        let group_by = match group {
            UsageGroup::Model => "provider,model",
            g => g.name(),
        };
        let filter = usage_filter(UsageQuery {
            from: Some(if self.from.is_empty() {
                month_start
            } else {
                self.from.clone()
            }),
            to: Some(if self.to.is_empty() {
                crate::clock::day_string(now)
            } else {
                self.to.clone()
            }),
            group_by: Some(group_by.to_string()),
            order: Some(sort.to_string()),
            limit: Some(limit),
            ..UsageQuery::default()
        })?;
        Ok((filter, group, sort))
    }
}

pub async fn page(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let here = uri.to_string();
    console(app, &headers, info, false, &here, |app, op, headers| async move {
        let q: SpendQuery = crate::http::admin::query(&uri)?;
        let (filter, group, sort) = q.filter(ROWS)?;
        let rows = app.store.ai_usage_report(&filter).await.map_err(Error::from)?;
        // Emails for the user ids (an erased account shows its id only).
        let mut shown: Vec<Value> = Vec::new();
        for r in &rows {
            let email = match &r.principal {
                Some(id) => app.store.user_by_id(id).await.map_err(Error::from)?.map(|u| u.email),
                None => None,
            };
            shown.push(context! {
                user_id => r.principal.clone(), email, day => r.day.clone(), provider => r.provider.clone(), model => r.model.clone(),
                requests => r.requests, tokens => r.input_tokens + r.output_tokens,
                spent => format::usd(r.cost_pico as f64 / PICO_PER_USD),
            });
        }
        let days = app
            .store
            .ai_usage_report(&UsageFilter {
                group_by: vec![UsageGroup::Day],
                by_cost: false,
                limit: 400,
                ..filter.clone()
            })
            .await
            .map_err(Error::from)?;
        let first = filter.from_day.as_deref().and_then(crate::clock::parse_day).unwrap_or_else(crate::clock::now);
        let last = filter.to_day.as_deref().and_then(crate::clock::parse_day).unwrap_or_else(crate::clock::now);
        let bars = chart::daily(first, last, |day| {
            let pico = days.iter().find(|r| r.day.as_deref() == Some(day)).map_or(0, |r| r.cost_pico);
            let usd = pico as f64 / PICO_PER_USD;
            (usd, format::usd(usd))
        });
        let total: f64 = days.iter().map(|r| r.cost_pico as f64).sum();
        op.read(&app, "ai_usage", None).await?;
        let csv = format!(
            "/ui/admin/spend.csv?from={}&to={}&group={}&sort={sort}",
            filter.from_day.as_deref().unwrap_or(""),
            filter.to_day.as_deref().unwrap_or(""),
            group.name()
        );
        Ok(super::page(
            &app,
            &headers,
            &op,
            "spend",
            "admin_spend.html",
            context! {
                rows => shown, group => group.name(), sort, csv,
                from => filter.from_day, to => filter.to_day,
                total => format::usd(total / PICO_PER_USD),
                chart => Value::from_safe_string(chart::bars(crate::http::html::t("spend_chart"), &bars)),
            },
        ))
    })
    .await
}

pub async fn csv(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let here = uri.to_string();
    console(
        app,
        &headers,
        info,
        false,
        &here,
        |app, op, _headers| async move {
            let q: SpendQuery = crate::http::admin::query(&uri)?;
            let (filter, _, _) = q.filter(10_000)?;
            let rows = app
                .store
                .ai_usage_report(&filter)
                .await
                .map_err(Error::from)?;
            op.read(&app, "ai_usage", None).await?;
            Ok(csv_response(report_csv(&filter.group_by, &rows)))
        },
    )
    .await
}
