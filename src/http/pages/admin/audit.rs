//! The console's audit log: newest first, filtered by actor, subject, event, outcome and
//! days, paged backwards by sequence number; and "verify chain", which walks the hash
//! chain and the signed checkpoints (`admin_audit::verify_chain`) and shows the result.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use minijinja::{Value, context};

use super::{Operator, console, console_form, encode};
use crate::app::AppState;
use crate::http::admin_audit::{AuditQuery, entries, verify_chain};
use crate::http::extract::Client;
use crate::http::html;
use crate::http::problem::Problem;
use crate::ui::format;

const PAGE_SIZE: i64 = 50;

/// The filter form's fields (days rather than the API's milliseconds).
#[derive(serde::Deserialize, Default, Clone)]
#[serde(default)]
struct Filters {
    actor: String,
    subject: String,
    action: String,
    outcome: String,
    /// `YYYY-MM-DD`, inclusive.
    from: String,
    to: String,
    before: Option<i64>,
}

/// Midnight UTC of a `YYYY-MM-DD` day, in milliseconds.
fn day_ms(day: &str) -> Result<Option<i64>, Problem> {
    if day.is_empty() {
        return Ok(None);
    }
    crate::clock::parse_day(day)
        .map(|t| Some(t * 1000))
        .ok_or_else(|| Problem::bad_request("invalid_request", "a day is written 2026-11-29"))
}

/// An entry as the table shows it: accounts by their address where they still exist
/// (`names`: id → email), the id otherwise.
fn entry(e: &crate::store::AuditRecord, names: &HashMap<String, String>) -> Value {
    let name = |id: &str| names.get(id).cloned();
    let (kind, actor_id) = e.actor.split_once(':').unwrap_or((e.actor.as_str(), ""));
    context! {
        actor_name => name(actor_id).map(|email| format!("{kind}: {email}")),
        subject_name => e.subject.as_deref().and_then(name),
        seq => e.seq, at => format::when(Some(e.at_ms / 1000)), action => e.action.clone(),
        outcome => e.outcome.clone(), actor => e.actor.clone(), subject => e.subject.clone(), ip => e.ip.clone(),
        detail => e.detail.clone(), hash => e.hash.get(..12),
    }
}

/// The page: a page of entries under `f`, and a chain check's result when there is one.
async fn render(
    app: &AppState,
    headers: &HeaderMap,
    op: &Operator,
    f: Filters,
    verified: Option<serde_json::Value>,
) -> Result<Response, Problem> {
    // A subject is an account id; an address is looked up (an erased account's entries
    // are found by its id only).
    let subject = match f.subject.trim() {
        s if s.contains('@') => match app
            .store
            .user_by_email(&s.to_lowercase())
            .await
            .map_err(crate::error::Error::from)?
        {
            Some(u) => u.id.clone(),
            None => s.to_string(),
        },
        s => s.to_string(),
    };
    let filter = AuditQuery {
        action: Some(f.action.clone()),
        actor: Some(f.actor.clone()),
        subject: Some(subject),
        outcome: Some(f.outcome.clone()),
        since: day_ms(&f.from)?,
        until: day_ms(&f.to)?.map(|ms| ms + 86_400_000),
        before: f.before,
        limit: Some(PAGE_SIZE),
    }
    .filter()?;
    let (list, next) = entries(app, &filter).await?;
    let mut ids: Vec<String> = Vec::new();
    for e in &list {
        let actor = e.actor.split_once(':').map(|(_, id)| id.to_string());
        ids.extend(actor.into_iter().chain(e.subject.clone()));
    }
    ids.sort();
    ids.dedup();
    let mut names = HashMap::new();
    for id in ids {
        if uuid::Uuid::parse_str(&id).is_ok()
            && let Some(u) = app
                .store
                .user_by_id(&id)
                .await
                .map_err(crate::error::Error::from)?
        {
            names.insert(id, u.email);
        }
    }
    let older = next.map(|seq| {
        format!(
            "/ui/admin/audit?actor={}&subject={}&action={}&outcome={}&from={}&to={}&before={seq}",
            encode(&f.actor),
            encode(&f.subject),
            encode(&f.action),
            encode(&f.outcome),
            encode(&f.from),
            encode(&f.to)
        )
    });
    Ok(super::page(
        app,
        headers,
        op,
        "audit",
        "admin_audit.html",
        context! {
            entries => list.iter().map(|e| entry(e, &names)).collect::<Vec<_>>(), older,
            paged => f.before.is_some(),
            actor => f.actor, subject => f.subject, action => f.action, outcome => f.outcome,
            from => f.from, to => f.to,
            verified => verified.map(|v| Value::from(minijinja::value::Serde(v))),
        },
    ))
}

pub async fn page(
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
        |app, op, headers| async move {
            let f: Filters = crate::http::admin::query(&uri)?;
            render(&app, &headers, &op, f, None).await
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct VerifyForm {
    csrf_token: String,
}

html::our_forms!(VerifyForm);

pub async fn verify(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Checking is a read of the whole log, not a change: no fresh second factor needed.
    console_form(
        app,
        &headers,
        info,
        &body,
        false,
        "/ui/admin/audit",
        |app, op, headers, _: VerifyForm| async move {
            let result = verify_chain(&app, &op.ctx).await?;
            render(&app, &headers, &op, Filters::default(), Some(result)).await
        },
    )
    .await
}
