//! `/auth/login/mfa` and `/auth/mfa/*`: the second step of a sign-in, TOTP enrolment and
//! step-up.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth::deliver;
use super::extract::{Body, Caller, Client, Credential, Mode, check_origin};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::error::Error;
use crate::identity::signin::Proof;
use crate::session::{ClientInfo, Issued};
use crate::store::UserRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login/mfa", post(login_mfa))
        .route("/auth/mfa", get(status))
        .route("/auth/mfa/totp", post(begin_totp).delete(remove_totp))
        .route("/auth/mfa/recovery-codes", post(regenerate_recovery_codes))
        .route("/auth/mfa/totp/confirm", post(confirm_totp))
        .route("/auth/mfa/verify", post(verify))
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

/// A step-up: a second-factor code, a passkey's answer (`toJSON()`, after
/// `/auth/webauthn/verify/options`), or (accounts without a second factor) the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUp {
    code: Option<String>,
    credential: Option<serde_json::Value>,
    password: Option<String>,
}

/// Raises the caller's session with a second factor (or, for an account without one,
/// the password again): a new access token in the caller's mode. The refresh token
/// stays; its successors carry the raised state.
async fn verify(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(b): Body<StepUp>,
) -> ApiResult<Response> {
    let proof = match (&b.code, b.credential, &b.password) {
        (Some(code), None, None) => StepUpProof::Code(code),
        (None, Some(credential), None) => StepUpProof::Passkey(credential),
        (None, None, Some(password)) => StepUpProof::Password(password),
        _ => {
            return Err(Problem::bad_request(
                "invalid_request",
                "give one of code (a second factor), credential (a passkey) or password",
            ));
        }
    };
    let user = account_of(&app, &caller).await?;
    let raising = Raising {
        path: "/auth/mfa/verify",
        session_id: &caller.claims.sid,
        amr: &caller.claims.amr,
    };
    let issued = raise(&app, &raising, user, proof, &client).await?;
    let expires_in = issued.access_claims.exp - issued.access_claims.iat;
    Ok(match caller.credential {
        Credential::Bearer => axum::Json(json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "session_id": issued.access_claims.sid,
            "acr": issued.access_claims.acr,
            "amr": issued.access_claims.amr,
        }))
        .into_response(),
        Credential::Cookie => {
            let mut res = axum::Json(json!({
                "expires_in": expires_in,
                "acr": issued.access_claims.acr,
                "amr": issued.access_claims.amr,
            }))
            .into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, app.cookies.for_access(&issued));
            res
        }
    })
}

/// What a step-up was given.
pub(super) enum StepUpProof<'a> {
    /// A TOTP or recovery code.
    Code(&'a str),
    /// A passkey's answer (`toJSON()`).
    Passkey(serde_json::Value),
    /// The password (accounts without a second factor only).
    Password(&'a str),
}

/// The session a step-up raises: the door it came through (for the rate rules), the
/// session, and the methods it has so far.
pub(super) struct Raising<'a> {
    pub path: &'a str,
    pub session_id: &'a str,
    pub amr: &'a [String],
}

/// Checks `proof` for `user` and raises the session: one rule for `/auth/mfa/verify`
/// and the hosted step-up page.
pub(super) async fn raise(
    app: &AppState,
    raising: &Raising<'_>,
    user: UserRecord,
    proof: StepUpProof<'_>,
    client: &ClientInfo,
) -> Result<Issued, Problem> {
    let factor = match proof {
        StepUpProof::Code(code) => {
            app.sign_in
                .step_up(raising.path, &user, Proof::Code(code), client)
                .await?
        }
        StepUpProof::Passkey(credential) => {
            app.passkeys
                .authenticate(credential, Some(&user.id))
                .await?
                .amr
        }
        StepUpProof::Password(password) => {
            app.sign_in
                .step_up(raising.path, &user, Proof::Password(password), client)
                .await?
        }
    };
    Ok(app
        .sessions
        .raise(raising.session_id, user, raising.amr, factor, client)
        .await?)
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

/// The caller's second factors.
async fn status(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let s = app.factors.status(&caller.claims.sub).await?;
    Ok(axum::Json(json!({
        "totp": s.totp,
        "totp_pending": s.totp_pending,
        "recovery_codes_left": s.recovery_codes_left,
        "acr": caller.claims.acr,
        "auth_time": caller.claims.auth_time,
    }))
    .into_response())
}

/// Removes the authenticator app (and its recovery codes): needs a recent second factor.
async fn remove_totp(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let ctx = Context::user(&user.id, client);
    app.factors
        .remove_totp(&user, caller.claims.authenticated(), &ctx)
        .await?;
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// Ten new recovery codes, shown this once: needs a recent second factor.
async fn regenerate_recovery_codes(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
) -> ApiResult<Response> {
    let user = account_of(&app, &caller).await?;
    let ctx = Context::user(&user.id, client);
    let codes = app
        .factors
        .regenerate_recovery_codes(&user, caller.claims.authenticated(), &ctx)
        .await?;
    Ok(axum::Json(json!({ "recovery_codes": codes })).into_response())
}

/// The signed-in caller's account.
pub(super) async fn account_of(app: &AppState, caller: &Caller) -> Result<UserRecord, Error> {
    app.store
        .user_by_id(&caller.claims.sub)
        .await?
        .ok_or(Error::NotFound("user"))
}
