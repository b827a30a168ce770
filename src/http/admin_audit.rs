//! `/admin/audit`: the audit log for administrators, filtered and paged backwards, and
//! `POST /admin/audit/verify`, which checks the hash chain and signed checkpoints as
//! `tollgate audit verify` does (the console's "verify chain" button calls the same).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{Admin, audit_read, page_bounds, query};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::{Context, Outcome};
use crate::error::Error;
use crate::store::{AuditFilter, AuditRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(audit))
        .route("/admin/audit/verify", post(verify))
}

pub(crate) fn audit_json(e: &AuditRecord) -> Value {
    json!({
        "seq": e.seq,
        "at_ms": e.at_ms,
        "action": e.action,
        "outcome": e.outcome,
        "actor": e.actor,
        "subject": e.subject,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
        "hash": e.hash,
    })
}

/// The log's filters as a query string (the API's and the console's).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub outcome: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// Page backwards from this sequence number (the previous page's `next`).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub(crate) fn filter(self) -> Result<AuditFilter, Problem> {
        let (limit, _) = page_bounds(self.limit, None)?;
        let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(AuditFilter {
            action: text(self.action),
            actor: text(self.actor),
            subject: text(self.subject),
            outcome: text(self.outcome),
            since_ms: self.since,
            until_ms: self.until,
            before_seq: self.before,
            limit,
        })
    }
}

/// A page of entries, newest first, and the `before` of the next (older) page.
pub(crate) async fn entries(
    app: &AppState,
    filter: &AuditFilter,
) -> Result<(Vec<AuditRecord>, Option<i64>), Error> {
    let entries = app.store.audit_query(filter).await?;
    let next = (entries.len() as i64 == filter.limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok((entries, next))
}

async fn audit(
    State(app): State<AppState>,
    admin: Admin,
    uri: http::Uri,
) -> ApiResult<Json<Value>> {
    let q: AuditQuery = query(&uri)?;
    let (entries, next) = entries(&app, &q.filter()?).await?;
    audit_read(&app, &admin, "audit", None).await?;
    Ok(Json(json!({
        "entries": entries.iter().map(audit_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// Walks the whole chain and the signed checkpoints; the check itself is audited (its
/// outcome says whether the log was intact).
pub(crate) async fn verify_chain(app: &AppState, ctx: &Context) -> Result<Value, Error> {
    let keys = crate::app::keys_dir(&app.config);
    let result = crate::audit::verify::verify_log(&app.store, &keys, None).await?;
    let (body, outcome) = match result {
        Ok(summary) => (summary.to_json(), Outcome::Success),
        Err(broken) => (
            json!({ "intact": false, "seq": broken.seq, "problem": broken.problem }),
            Outcome::Failure,
        ),
    };
    app.store
        .append_audit(&ctx.entry("audit.verified", outcome, None))
        .await?;
    Ok(body)
}

async fn verify(State(app): State<AppState>, Admin(ctx): Admin) -> ApiResult<Json<Value>> {
    Ok(Json(verify_chain(&app, &ctx).await?))
}
