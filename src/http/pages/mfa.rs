//! `/ui/mfa`: the second step of a hosted sign-in, and the step-up page.
//!
//! Every hosted sign-in (password, identity provider, account link) ends in
//! `login::signed_in`, which shows the form instead of starting the session when the
//! account has a second factor; the form carries the challenge's token (never in a URL)
//! and the pending authorization or return address, and completes the sign-in through
//! the same rules as `/auth/login/mfa` (lockout, single use, audit).
//!
//! `GET /ui/mfa?rd=…[&acr=2]` is where the gateway sends a browser whose session must be
//! raised (a route's `mfa`/`max_age`): a code, or the password for an account without a
//! second factor (enough for `max_age`, never for `acr=2`); the form raises the session
//! through the same rules as `/auth/mfa/verify` and returns to `rd`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::{explain_code, form_page, login::signed_in, return_target};
use crate::app::AppState;
use crate::http::browser::browser_session;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, see_other};
use crate::http::mfa::{Raising, StepUpProof, raise};
use crate::http::problem::Problem;
use crate::session::ClientInfo;

#[derive(Deserialize, Default)]
#[serde(default)]
struct MfaForm {
    /// Empty for a step-up (the browser's session says who).
    mfa_token: String,
    code: String,
    /// A step-up of an account without a second factor.
    password: Option<String>,
    /// A passkey's answer (`toJSON()`), put in by `passkey.js`.
    credential: Option<String>,
    csrf_token: String,
    flow: Option<String>,
    rd: Option<String>,
    acr: Option<String>,
    /// `1`: the second step offers the account's passkey.
    passkey: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StepUpQuery {
    rd: Option<String>,
    /// `2`: the page needs a second factor (a password will not do).
    acr: Option<String>,
}

html::our_forms!(MfaForm);

/// A sign-in's second step, as its form carries it.
pub struct SecondStep<'a> {
    /// The challenge's token.
    pub token: &'a str,
    pub flow: Option<&'a str>,
    pub rd: Option<&'a str>,
    /// The account has a passkey: the page offers it.
    pub passkey: bool,
}

/// The form of a second step.
pub fn render(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    step: &SecondStep<'_>,
    error: Option<(String, Option<String>)>,
) -> Response {
    form_page(
        app,
        headers,
        status,
        "mfa.html",
        error,
        context! {
            mfa_token => step.token, flow => step.flow, rd => step.rd,
            passkeys => step.passkey && app.passkeys.available(),
        },
    )
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: MfaForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let rd = return_target(&app, form.rd.as_deref());
    if form.mfa_token.is_empty() {
        return step_up(&app, &headers, &info, &form, rd.as_deref()).await;
    }
    let completed = match form.credential.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let credential = serde_json::from_str(c).unwrap_or(serde_json::Value::Null);
            app.passkeys
                .sign_in(credential, Some(&form.mfa_token))
                .await
                .map_err(|e| Problem::from(passkey_refusal(e)))
        }
        None => app
            .sign_in
            .complete(&form.mfa_token, &form.code, &info)
            .await
            .map_err(Problem::from),
    };
    match completed {
        Ok(done) => {
            let amr: Vec<&str> = done.amr.iter().map(String::as_str).collect();
            signed_in(
                &app,
                &headers,
                done.user,
                &amr,
                &info,
                form.flow.as_deref(),
                rd.as_deref(),
            )
            .await
        }
        Err(problem) => {
            let error = (explain_code(problem.code).to_string(), None);
            let step = SecondStep {
                token: &form.mfa_token,
                flow: form.flow.as_deref(),
                rd: rd.as_deref(),
                passkey: form.passkey.as_deref() == Some("1"),
            };
            render(&app, &headers, problem.status, &step, Some(error))
        }
    }
}

/// The step-up page for the browser's signed-in session (sign in first without one).
pub async fn step_up_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StepUpQuery>,
) -> Response {
    let rd = return_target(&app, q.rd.as_deref());
    let needs_factor = q.acr.as_deref() == Some("2");
    let (browser, resolved) = browser_session(&app, &headers).await;
    let res = match browser {
        None => {
            let login = match &rd {
                Some(rd) => format!(
                    "/ui/login?rd={}",
                    url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
                ),
                None => "/ui/login".to_string(),
            };
            see_other(&login)
        }
        Some((session, email)) => {
            match step_up_form(
                &app,
                &headers,
                &session.user_id,
                &email,
                needs_factor,
                rd.as_deref(),
                None,
            )
            .await
            {
                Ok(res) => res,
                Err(e) => Problem::from(e).into_response(),
            }
        }
    };
    with_session_cookies(&app, res, &resolved)
}

/// The step-up form for `user_id`: a code field when the account has a second factor,
/// a password field when it has none and none is needed, else the way to set one up.
async fn step_up_form(
    app: &AppState,
    headers: &HeaderMap,
    user_id: &str,
    email: &str,
    needs_factor: bool,
    rd: Option<&str>,
    error: Option<(StatusCode, (String, Option<String>))>,
) -> Result<Response, crate::error::Error> {
    let has_factor = app.factors.required(user_id).await?;
    let has_passkey = app.passkeys.available() && !app.passkeys.list(user_id).await?.is_empty();
    if !has_factor && needs_factor {
        return Ok(html::message_with_link(
            app,
            StatusCode::FORBIDDEN,
            html::t("step_up_title"),
            html::t("step_up_no_factor"),
            "/ui/account",
            html::t("step_up_set_up"),
        ));
    }
    let (status, error) = match error {
        Some((status, e)) => (status, Some(e)),
        None => (StatusCode::OK, None),
    };
    Ok(form_page(
        app,
        headers,
        status,
        "step_up.html",
        error,
        context! {
            rd,
            acr => needs_factor.then_some("2"),
            with_password => !has_factor,
            email,
            passkeys => has_passkey,
        },
    ))
}

/// A posted step-up: checks the code (or password) for the browser's session, raises
/// it, and returns to `rd` with the new access cookie.
async fn step_up(
    app: &AppState,
    headers: &HeaderMap,
    info: &ClientInfo,
    form: &MfaForm,
    rd: Option<&str>,
) -> Response {
    let (browser, resolved) = browser_session(app, headers).await;
    let Some((session, email)) = browser else {
        return with_session_cookies(app, see_other("/ui/login"), &resolved);
    };
    let needs_factor = form.acr.as_deref() == Some("2");
    let user = match app.store.user_by_id(&session.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return see_other("/ui/login"),
        Err(e) => return Problem::from(crate::error::Error::from(e)).into_response(),
    };
    let proof = match (&form.credential, &form.password) {
        (Some(c), _) if !c.is_empty() => {
            StepUpProof::Passkey(serde_json::from_str(c).unwrap_or(serde_json::Value::Null))
        }
        (_, Some(p)) if !p.is_empty() => StepUpProof::Password(p),
        _ => StepUpProof::Code(&form.code),
    };
    let with_passkey = matches!(proof, StepUpProof::Passkey(_));
    let amr: Vec<String> = session.amr.split_whitespace().map(str::to_string).collect();
    let raising = Raising {
        path: "/ui/mfa",
        session_id: &session.session_id,
        amr: &amr,
    };
    let res = match raise(app, &raising, user, proof, info).await {
        Ok(issued) => {
            // The cookies of an in-flight refresh first (the new refresh token must reach
            // the browser), then the raised access token, which wins.
            let mut res = with_session_cookies(app, see_other(rd.unwrap_or("/ui/")), &resolved);
            res.headers_mut()
                .append(header::SET_COOKIE, app.cookies.for_access(&issued));
            return res;
        }
        Err(problem) => {
            // A passkey that did not verify is said in the words the pages use for it.
            let code = match problem.code {
                "invalid_credentials" if with_passkey => "passkey_refused",
                code => code,
            };
            let error = (problem.status, (explain_code(code).to_string(), None));
            match step_up_form(
                app,
                headers,
                &session.user_id,
                &email,
                needs_factor,
                rd,
                Some(error),
            )
            .await
            {
                Ok(res) => res,
                Err(e) => Problem::from(e).into_response(),
            }
        }
    };
    with_session_cookies(app, res, &resolved)
}

/// A passkey that did not verify, in the words the pages use for it.
pub(super) fn passkey_refusal(e: crate::error::Error) -> crate::error::Error {
    match e {
        crate::error::Error::InvalidCredentials => {
            crate::error::Error::invalid("passkey_refused", "the passkey was refused")
        }
        other => other,
    }
}
