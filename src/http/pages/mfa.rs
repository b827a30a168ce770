//! `/ui/mfa`: the second step of a hosted sign-in. Every hosted sign-in (password,
//! identity provider, account link) ends in `login::signed_in`, which shows this form
//! instead of starting the session when the account has a second factor; the form
//! carries the challenge's token (never in a URL) and the pending authorization or
//! return address, and completes the sign-in through the same rules as
//! `/auth/login/mfa` (lockout, single use, audit).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::{explain_code, form_page, login::signed_in, return_target};
use crate::app::AppState;
use crate::http::extract::Client;
use crate::http::html;
use crate::http::problem::Problem;

#[derive(Deserialize, Default)]
#[serde(default)]
struct MfaForm {
    mfa_token: String,
    code: String,
    csrf_token: String,
    flow: Option<String>,
    rd: Option<String>,
}

html::our_forms!(MfaForm);

/// The form, for the challenge `token`.
pub fn render(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    flow: Option<&str>,
    rd: Option<&str>,
    error: Option<(String, Option<String>)>,
) -> Response {
    form_page(
        app,
        headers,
        status,
        "mfa.html",
        error,
        context! { mfa_token => token, flow, rd },
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
    match app
        .sign_in
        .complete(&form.mfa_token, &form.code, &info)
        .await
    {
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
        Err(why) => {
            let problem = Problem::from(why);
            let error = (explain_code(problem.code).to_string(), None);
            render(
                &app,
                &headers,
                problem.status,
                &form.mfa_token,
                form.flow.as_deref(),
                rd.as_deref(),
                Some(error),
            )
        }
    }
}
