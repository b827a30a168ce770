//! `GET /admin/users/{id}/export`: everything Tollgate holds about a user (GDPR Art. 15
//! and 20), for an administrator; audited as a read.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::admin::{Admin, audit_read, session_json, user_id};
use super::ai_usage::report_json;
use super::extract::PathParam;
use super::problem::ApiResult;
use crate::app::AppState;
use crate::error::Error;
use crate::identity::user_json;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/users/{id}/export", get(export_user))
}

/// Everything Tollgate holds about a user, as JSON (GDPR Art. 15 and 20): the profile,
/// live sessions, consents, API keys (never a secret), second factors (never a secret)
/// and AI usage by day and model.
async fn export_user(
    State(app): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let user = app.identity.by_id(user_id(&id)?).await?;
    let now = crate::clock::now();
    let sessions = app
        .store
        .live_sessions(&user.id, now)
        .await
        .map_err(Error::from)?;
    let consents = app.store.consents_of(&user.id).await.map_err(Error::from)?;
    let keys = app.store.api_keys_of(&user.id).await.map_err(Error::from)?;
    let factors = app.factors.status(&user.id).await?;
    let passkeys = app.passkeys.list(&user.id).await?;
    let usage = app
        .store
        .ai_usage_report(&crate::store::UsageFilter {
            principal: Some(user.id.clone()),
            model: None,
            from_day: None,
            to_day: None,
            group_by: vec![
                crate::store::UsageGroup::Day,
                crate::store::UsageGroup::Provider,
                crate::store::UsageGroup::Model,
            ],
            by_cost: false,
            limit: 100_000,
        })
        .await
        .map_err(Error::from)?;
    audit_read(&app, &admin, "user_export", Some(&user.id)).await?;
    let body = json!({
        "exported_at": now,
        "profile": user_json(&user),
        "sessions": sessions.iter().map(session_json).collect::<Vec<_>>(),
        "consents": consents.iter().map(|c| json!({
            "client_id": c.client_id, "scopes": c.scopes, "resources": c.resources, "granted_at": c.granted_at,
        })).collect::<Vec<_>>(),
        "api_keys": keys.iter().map(|k| json!({
            "id": k.id, "name": k.name, "scopes": k.scopes, "created_at": k.created_at,
            "expires_at": k.expires_at, "last_used_at": k.last_used_at, "revoked_at": k.revoked_at,
        })).collect::<Vec<_>>(),
        "second_factors": {
            "totp": factors.totp,
            "recovery_codes_left": factors.recovery_codes_left,
            "passkeys": passkeys.iter().map(|p| json!({
                "id": p.id, "name": p.name, "created_at": p.created_at, "last_used_at": p.last_used_at,
            })).collect::<Vec<_>>(),
        },
        "ai_usage": usage.iter().map(report_json).collect::<Vec<_>>(),
    });
    let disposition = format!("attachment; filename=\"tollgate-user-{}.json\"", user.id);
    Ok((
        [(
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_str(&disposition)
                .unwrap_or(http::HeaderValue::from_static("attachment")),
        )],
        Json(body),
    )
        .into_response())
}
