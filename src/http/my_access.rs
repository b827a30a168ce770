//! `/auth/api-keys` and `/auth/identities`: a signed-in person's own API keys (create
//! with scopes they hold and an expiry, shown once; list; revoke) and the provider
//! accounts linked to theirs (list; unlink). Only tokens of Tollgate's own sign-in reach
//! these (`Caller`): an application holding a user's token cannot mint keys with it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Caller, Client, PathParam};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::authz::policy::Authenticated;
use crate::error::Error;
use crate::store::{ApiKeyRecord, LinkedIdentity};

/// How long a key made here lives unless asked otherwise, and at most.
pub const DEFAULT_KEY_DAYS: u32 = 90;
pub const MAX_KEY_DAYS: u32 = 365;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/api-keys", get(list_keys).post(create_key))
        .route("/auth/api-keys/{id}", delete(revoke_key))
        .route("/auth/identities", get(list_identities))
        .route("/auth/identities/{provider}/{subject}", delete(unlink))
}

pub fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "scopes": k.scopes.split_whitespace().collect::<Vec<_>>(),
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "last_used_at": k.last_used_at,
        "revoked_at": k.revoked_at,
    })
}

fn identity_json(l: &LinkedIdentity) -> Value {
    json!({
        "provider": l.provider,
        "subject": l.subject,
        "email": l.email,
        "linked_at": l.created_at,
        "last_login_at": l.last_login_at,
    })
}

async fn list_keys(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let keys = app.api_keys.list(&caller.claims.sub).await?;
    Ok(Json(json!({
        "api_keys": keys.iter().map(key_json).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scopes: Vec<String>,
    expires_in_days: Option<u32>,
}

/// The checks of a self-service key, shared with the account page: a name, at least one
/// scope (the roles must grant each, `ApiKeys::create` checks), a bounded lifetime.
pub fn key_request(
    name: &str,
    scopes: &[String],
    days: Option<u32>,
) -> Result<std::time::Duration, Error> {
    let name = name.trim();
    // Control and bidirectional-override characters would let a name pose as another
    // in the console.
    let unreadable = |c: char| {
        c.is_control()
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(unreadable) {
        return Err(Error::invalid(
            "invalid_name",
            "a key needs a name of 1 to 64 printable characters",
        ));
    }
    if scopes.is_empty() {
        return Err(Error::invalid(
            "scope_required",
            "choose at least one scope for the key",
        ));
    }
    let days = days.unwrap_or(DEFAULT_KEY_DAYS);
    if !(1..=MAX_KEY_DAYS).contains(&days) {
        return Err(Error::invalid(
            "invalid_expiry",
            format!("a key lives 1 to {MAX_KEY_DAYS} days"),
        ));
    }
    Ok(std::time::Duration::from_secs(u64::from(days) * 86_400))
}

/// Creates a key for the signed-in person; the key is in this answer only.
pub async fn create_own_key(
    app: &AppState,
    user_id: &str,
    name: &str,
    scopes: &[String],
    days: Option<u32>,
    authenticated: Authenticated,
    ctx: &Context,
) -> Result<(String, ApiKeyRecord), Error> {
    let ttl = key_request(name, scopes, days)?;
    // A key outlives the session: a stolen cookie alone must not turn into a year of access.
    app.factors
        .require_fresh_sign_in(user_id, authenticated)
        .await?;
    let user = app.identity.by_id(user_id).await?;
    app.api_keys
        .create(&user, name.trim(), scopes, Some(ttl), ctx)
        .await
}

async fn create_key(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(b): Body<NewKey>,
) -> ApiResult<Response> {
    let ctx = Context::user(&caller.claims.sub, client);
    let (key, record) = create_own_key(
        &app,
        &caller.claims.sub,
        &b.name,
        &b.scopes,
        b.expires_in_days,
        caller.claims.authenticated(),
        &ctx,
    )
    .await?;
    let mut body = key_json(&record);
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_key(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam(id): PathParam<String>,
) -> ApiResult<StatusCode> {
    let ctx = Context::user(&caller.claims.sub, client);
    if uuid::Uuid::parse_str(&id).is_err()
        || !app
            .api_keys
            .revoke(&id, Some(&caller.claims.sub), &ctx)
            .await?
    {
        return Err(Problem::not_found().with_detail("no such live key"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_identities(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let links = app.identity.linked(&caller.claims.sub).await?;
    Ok(Json(json!({
        "identities": links.iter().map(identity_json).collect::<Vec<_>>()
    })))
}

async fn unlink(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam((provider, subject)): PathParam<(String, String)>,
) -> ApiResult<StatusCode> {
    let ctx = Context::user(&caller.claims.sub, client);
    let user = app.identity.by_id(&caller.claims.sub).await?;
    app.identity
        .unlink(&user, &provider, &subject, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
