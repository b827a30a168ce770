//! `/admin/clients`: registering and managing OAuth clients (scope `admin`). The same
//! operations as `tollgate client …`; a secret is shown once, when created or rotated.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};

use super::admin::{Admin, audit_read};
use super::extract::{Body, PathParam};
use super::problem::ApiResult;
use crate::app::AppState;
use crate::oidc::clients::{ClientPatch, ClientSpec};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(create))
        .route(
            "/admin/clients/{id}",
            get(show).put(update).patch(update).delete(delete),
        )
        .route("/admin/clients/{id}/secret", post(rotate_secret))
}

async fn list(State(app): State<AppState>, admin: Admin) -> ApiResult<Json<Value>> {
    let clients = app.oidc.clients.list().await?;
    audit_read(&app, &admin, "clients", None).await?;
    Ok(Json(json!({
        "clients": clients.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
    })))
}

async fn create(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    Body(spec): Body<ClientSpec>,
) -> ApiResult<Response> {
    let (client, secret) = app.oidc.clients.create(spec, &ctx).await?;
    let mut body = client.to_json();
    if let Some(s) = secret {
        body["client_secret"] = s.into();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn show(
    State(app): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    let client = app.oidc.clients.live(&id).await?;
    audit_read(&app, &admin, "client", None).await?;
    Ok(Json(client.to_json()))
}

/// `PUT` and `PATCH` alike: the fields the body names change, the others stay.
async fn update(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
    Body(patch): Body<ClientPatch>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        app.oidc.clients.patch(&id, patch, &ctx).await?.to_json(),
    ))
}

async fn delete(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<StatusCode> {
    app.oidc.clients.delete(&id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    let secret = app.oidc.clients.rotate_secret(&id, &ctx).await?;
    Ok(Json(json!({ "client_id": id, "client_secret": secret })))
}
