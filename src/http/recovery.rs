//! `/auth/password/forgot|reset`, `/auth/email/verify[/request]`,
//! `/auth/email/change[/confirm]`: the mailed-token flows (`identity::recovery`).
//!
//! Requests that name an address answer 202 at once, identically for every address; the
//! work happens in the background. The per-address limit (`recovery-account`) keeps
//! anyone from flooding an inbox.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Body, Caller, Client, check_origin};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::error::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/password/forgot", post(forgot))
        .route("/auth/password/reset", post(reset))
        .route("/auth/email/verify", post(verify))
        .route("/auth/email/verify/request", post(request_verification))
        .route("/auth/email/change", post(change))
        .route("/auth/email/change/confirm", post(confirm_change))
}

#[derive(Deserialize)]
struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    new_password: String,
}

#[derive(Deserialize)]
struct ChangeBody {
    new_email: String,
    password: String,
}

/// The one answer to every request that names an address.
fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "detail": "if the address belongs to an account, a message is on its way" })),
    )
        .into_response()
}

async fn forgot(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<EmailBody>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    app.sign_in
        .limit_address("/auth/password/forgot", &b.email, &client)
        .await?;
    app.identity
        .request_password_reset(&b.email, Context::anonymous(client));
    Ok(accepted())
}

async fn reset(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<ResetBody>,
) -> ApiResult<StatusCode> {
    check_origin(&headers, &app)?;
    app.identity
        .reset_password(&b.token, &b.new_password, &Context::anonymous(client))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn verify(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<TokenBody>,
) -> ApiResult<StatusCode> {
    check_origin(&headers, &app)?;
    app.identity
        .verify_email(&b.token, &Context::anonymous(client))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn request_verification(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<EmailBody>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    app.sign_in
        .limit_address("/auth/email/verify/request", &b.email, &client)
        .await?;
    app.identity
        .request_verification(&b.email, Context::anonymous(client));
    Ok(accepted())
}

async fn change(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(b): Body<ChangeBody>,
) -> ApiResult<Response> {
    let ctx = Context::user(&caller.claims.sub, client);
    match app
        .identity
        .request_email_change(&caller.claims.sub, &b.password, &b.new_email, &ctx)
        .await
    {
        Ok(()) => Ok(accepted()),
        Err(Error::InvalidCredentials) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the password is incorrect",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn confirm_change(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<TokenBody>,
) -> ApiResult<StatusCode> {
    check_origin(&headers, &app)?;
    app.identity
        .confirm_email_change(&b.token, &Context::anonymous(client))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
