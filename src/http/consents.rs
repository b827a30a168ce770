//! `/auth/consents`: the applications a user has allowed, and withdrawing one (which
//! ends that application's sessions at once).

use axum::extract::State;
use axum::routing::{delete, get};
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};

use super::extract::{Caller, Client, PathParam};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::authz::valid_client_id;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/consents", get(list))
        .route("/auth/consents/{client_id}", delete(withdraw))
}

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let consents = app.oidc.consents(&caller.claims.sub).await?;
    let mut out = Vec::with_capacity(consents.len());
    for c in consents {
        let name = app.oidc.client_name(&c.client_id).await;
        out.push(json!({
            "client_id": c.client_id,
            "client_name": name,
            "scopes": c.scopes,
            "granted_at": c.granted_at,
        }));
    }
    Ok(Json(Value::Array(out)))
}

async fn withdraw(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam(client_id): PathParam<String>,
) -> ApiResult<StatusCode> {
    let ctx = Context::user(&caller.claims.sub, client);
    if !valid_client_id(&client_id)
        || !app
            .oidc
            .withdraw_consent(&caller.claims.sub, &client_id, &ctx)
            .await?
    {
        return Err(Problem::not_found().with_detail("no consent or session for this client"));
    }
    Ok(StatusCode::NO_CONTENT)
}
