//! `/auth/webauthn/*`: passkeys over JSON. Options come in the JSON form of WebAuthn's
//! `PublicKeyCredentialCreationOptions` / `…RequestOptions` (what
//! `PublicKeyCredential.parseCreationOptionsFromJSON` takes); answers are
//! `PublicKeyCredential.toJSON()`. Registration and the list need a signed-in caller;
//! sign-in needs nothing but the passkey, in the caller's delivery mode.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::deliver;
use super::extract::{Body, Caller, Client, Mode, PathParam, check_origin};
use super::mfa::account_of;
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::store::PasskeyRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/webauthn/register/options", post(register_options))
        .route("/auth/webauthn/register", post(register))
        .route("/auth/webauthn/login/options", post(login_options))
        .route("/auth/webauthn/login", post(login))
        .route("/auth/webauthn/verify/options", post(verify_options))
        .route("/auth/webauthn/credentials", get(list))
        .route(
            "/auth/webauthn/credentials/{id}",
            patch(rename).delete(remove),
        )
}

fn passkey_json(p: &PasskeyRecord) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "created_at": p.created_at,
        "last_used_at": p.last_used_at,
    })
}

async fn register_options(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let options = app
        .passkeys
        .register_options(&user, caller.claims.auth_time)
        .await?;
    Ok(axum::Json(options).into_response())
}

/// `PublicKeyCredential.toJSON()` of the new passkey, with an optional `name` beside it.
async fn register(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(mut body): Body<Value>,
) -> ApiResult<Response> {
    let name = take_string(&mut body, "name")?;
    let user = account_of(&app, &caller).await?;
    let ctx = Context::user(&user.id, client);
    let record = app
        .passkeys
        .register(&user, body, name.as_deref(), &ctx)
        .await?;
    Ok((http::StatusCode::CREATED, axum::Json(passkey_json(&record))).into_response())
}

/// `{"email"?}`: accepted and not looked at; the options are for any discoverable
/// passkey, so they never tell whether an address has one.
async fn login_options(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    Ok(axum::Json(app.passkeys.authenticate_options(None).await?).into_response())
}

/// Signs in with a passkey's answer (`toJSON()`), with `mfa_token` beside it when it is
/// the second step of a password sign-in.
async fn login(
    State(app): State<AppState>,
    Mode(mode): Mode,
    Client(client): Client,
    headers: HeaderMap,
    Body(mut body): Body<Value>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    let second_step = take_string(&mut body, "mfa_token")?;
    let signed_in = app
        .passkeys
        .sign_in(body, second_step.as_deref())
        .await
        .inspect_err(|e| {
            metrics::counter!("tollgate_logins_total", "outcome" => e.code()).increment(1);
        })?;
    metrics::counter!("tollgate_logins_total", "outcome" => "success").increment(1);
    let amr: Vec<&str> = signed_in.amr.iter().map(String::as_str).collect();
    let issued = app.sessions.start(signed_in.user, &amr, &client).await?;
    tracing::info!(user_id = %issued.user.id, session_id = %issued.access_claims.sid, event = "login_succeeded");
    Ok(deliver(&app, mode, issued, None))
}

/// Options for a step-up with a passkey of the caller's own account (then
/// `POST /auth/mfa/verify` with `{"credential": …}`).
async fn verify_options(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let options = app
        .passkeys
        .authenticate_options(Some(&caller.claims.sub))
        .await?;
    Ok(axum::Json(options).into_response())
}

async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let keys = app.passkeys.list(&caller.claims.sub).await?;
    Ok(axum::Json(json!({
        "passkeys": keys.iter().map(passkey_json).collect::<Vec<_>>()
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam(id): PathParam<String>,
    Body(b): Body<Rename>,
) -> ApiResult<Response> {
    let ctx = Context::user(&caller.claims.sub, client);
    app.passkeys
        .rename(&caller.claims.sub, &id, &b.name, &ctx)
        .await?;
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// Removes a passkey: needs a second factor within the last 10 minutes.
async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let ctx = Context::user(&user.id, client);
    app.passkeys
        .remove(&user, &id, caller.claims.authenticated(), &ctx)
        .await?;
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// Removes the member `name` from a JSON object (beside a credential), as a string.
fn take_string(body: &mut Value, name: &str) -> Result<Option<String>, Problem> {
    let Some(object) = body.as_object_mut() else {
        return Err(Problem::bad_request(
            "invalid_request",
            "expected a JSON object (PublicKeyCredential.toJSON())",
        ));
    };
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Problem::bad_request(
            "invalid_request",
            format!("{name} must be a string"),
        )),
    }
}
