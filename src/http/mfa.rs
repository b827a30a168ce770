//! `/auth/login/mfa` and `/auth/mfa/*`: the second step of a sign-in, and TOTP enrolment.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::auth::deliver;
use super::extract::{Body, Caller, Client, Mode, check_origin};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::error::Error;
use crate::store::UserRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login/mfa", post(login_mfa))
        .route("/auth/mfa/totp", post(begin_totp))
        .route("/auth/mfa/totp/confirm", post(confirm_totp))
}

#[derive(Deserialize)]
struct SecondStep {
    mfa_token: String,
    code: String,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

/// Completes a sign-in that answered `mfa_required`, in the caller's delivery mode.
async fn login_mfa(
    State(app): State<AppState>,
    Mode(mode): Mode,
    Client(client): Client,
    headers: HeaderMap,
    Body(b): Body<SecondStep>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    let signed_in = app.sign_in.complete(&b.mfa_token, &b.code, &client).await?;
    let amr: Vec<&str> = signed_in.amr.iter().map(String::as_str).collect();
    let issued = app.sessions.start(signed_in.user, &amr, &client).await?;
    tracing::info!(user_id = %issued.user.id, session_id = %issued.access_claims.sid, event = "login_succeeded");
    Ok(deliver(&app, mode, issued, None))
}

/// Starts a TOTP enrolment for the signed-in user: the secret and its `otpauth://` URI.
async fn begin_totp(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let enrolment = app
        .factors
        .begin_totp(&user, caller.claims.auth_time)
        .await?;
    Ok(axum::Json(json!({
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
    }))
    .into_response())
}

/// Confirms the enrolment with a first code: the ten recovery codes, shown this once.
async fn confirm_totp(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(b): Body<Code>,
) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let ctx = Context::user(&user.id, client);
    let codes = app
        .factors
        .confirm_totp(&user, &b.code, &ctx)
        .await
        .map_err(Problem::from)?;
    Ok(axum::Json(json!({ "recovery_codes": codes })).into_response())
}

/// The signed-in caller's account.
async fn account_of(app: &AppState, caller: &Caller) -> Result<UserRecord, Error> {
    app.store
        .user_by_id(&caller.claims.sub)
        .await?
        .ok_or(Error::NotFound("user"))
}
