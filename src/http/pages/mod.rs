//! `/ui/*`: the hosted pages, HTML forms that work without JavaScript.
//!
//! - [`login`]: `/ui/login` (sign-in; the same checks as `/auth/login`) and `/ui/`, the
//!   signed-in landing page;
//! - [`mfa`]: `/ui/mfa`, the second step of a sign-in for accounts with a second factor,
//!   and the step-up page the gateway sends browsers to;
//! - [`account`]: `/ui/account`, the signed-in person's own settings (and `usage`, the
//!   AI usage section it shares with the console);
//! - [`signup`]: `/ui/signup`, when `[accounts] open_registration`;
//! - [`recovery`]: `/ui/forgot`, `/ui/reset`, `/ui/verify`, `/ui/confirm-email`, the pages
//!   the mails link to;
//! - [`consent`]: `/ui/consent`, for the OpenID Connect provider;
//! - [`device`]: `/ui/device`, where a person lets a device in (RFC 8628);
//! - [`admin`]: `/ui/admin`, the admin console;
//! - [`logout`]: `/ui/logout` (`GET` asks, `POST` signs out).
//!
//! Every form carries the browser's CSRF token and is checked against the browser's own
//! `Origin` and `Sec-Fetch-Site` (`html::form_trusted`). Pages are in the request's
//! language (`ui::messages`), chosen at the edge.

mod account;
mod admin;
mod consent;
mod device;
mod login;
mod logout;
mod mfa;
mod recovery;
mod rows;
mod signup;
mod usage;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use minijinja::{Value, context};

use super::html::{self, FormCsrf, FormRefusal};
use crate::app::AppState;
use crate::oidc::authorize::Pending;
use crate::oidc::error::OAuthError;

pub use login::signed_in;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/style.css", get(style))
        .route("/ui", get(|| async { html::see_other("/ui/") }))
        .route("/ui/", get(login::home))
        .route("/ui/login", get(login::page).post(login::submit))
        .route("/ui/login/passkey", post(login::passkey_submit))
        .route("/ui/passkey.js", get(passkey_script))
        .route("/ui/mfa", get(mfa::step_up_page).post(mfa::submit))
        .route("/ui/signup", get(signup::page).post(signup::submit))
        .route("/ui/device", get(device::page).post(device::submit))
        .route(
            "/ui/forgot",
            get(recovery::forgot_page).post(recovery::forgot_submit),
        )
        .route(
            "/ui/reset",
            get(recovery::reset_page).post(recovery::reset_submit),
        )
        .route(
            "/ui/verify",
            get(recovery::verify_page).post(recovery::verify_submit),
        )
        .route(
            "/ui/confirm-email",
            get(recovery::confirm_email_page).post(recovery::confirm_email_submit),
        )
        .route("/ui/logout", get(logout::page).post(logout::submit))
        .route("/ui/consent", get(consent::page).post(consent::submit))
        .route("/ui/account", get(account::page))
        .route("/ui/account/totp", post(account::begin_totp))
        .route("/ui/account/totp/confirm", post(account::confirm_totp))
        .route("/ui/account/totp/remove", post(account::remove_totp))
        .route("/ui/account/recovery-codes", post(account::recovery_codes))
        .route("/ui/account/passkey", post(account::add_passkey))
        .route("/ui/account/passkey/remove", post(account::remove_passkey))
        .merge(admin::router())
        .route("/ui/account/email", post(account::change_email))
        .route("/ui/account/password", post(account::change_password))
        .route("/ui/account/sessions/revoke", post(account::revoke_session))
        .route(
            "/ui/account/sessions/revoke-others",
            post(account::revoke_other_sessions),
        )
        .route(
            "/ui/account/consents/withdraw",
            post(account::withdraw_consent),
        )
        .route("/ui/account/identities/unlink", post(account::unlink))
        .route("/ui/account/keys", post(account::create_key))
        .route("/ui/account/keys/revoke", post(account::revoke_key))
        .route(
            "/ui/account/delete",
            get(account::delete_page).post(account::delete_submit),
        )
}

async fn style(State(app): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        app.pages.style().to_string(),
    )
        .into_response()
}

/// The one script of the pages: passkey buttons (every form works without it).
async fn passkey_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../ui/passkey.js"),
    )
        .into_response()
}

/// The pending authorization a `flow` parameter carries, if any.
pub fn pending_of(app: &AppState, flow: Option<&str>) -> Result<Option<Pending>, OAuthError> {
    match flow.filter(|f| !f.is_empty()) {
        Some(f) => app.oidc.open(f).map(Some),
        None => Ok(None),
    }
}

/// Paths whose `POST` is a form of a hosted page (the pages' own, account linking,
/// RP-initiated logout, the authorization endpoint's form).
const FORM_PATHS: [&str; 4] = [
    "/auth/federated/link",
    "/oauth2/logout",
    "/oauth2/authorize",
    "/ui/",
];

/// A browser submitting one of the hosted pages' forms: its errors (a rate limit, a body
/// over the limit) are shown as a page, like a navigation's.
pub fn is_form_submission(method: &http::Method, path: &str, headers: &HeaderMap) -> bool {
    method == http::Method::POST
        && FORM_PATHS.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            })
        && crate::gateway::redirect::prefers_html(headers)
}

/// `rd` as an absolute URL, when it points somewhere a sign-in may return to (Tollgate's
/// own origin or `[gateway] return_origins`): never an open redirect.
pub fn return_target(app: &AppState, rd: Option<&str>) -> Option<String> {
    let rd = rd.filter(|r| !r.is_empty())?;
    let absolute = if rd.starts_with('/') && !rd.starts_with("//") && !rd.starts_with("/\\") {
        format!("{}{rd}", app.config.public_url)
    } else {
        rd.to_string()
    };
    app.gateway.login.return_url(&absolute)
}

/// A form page: the template with `ctx`, the browser's CSRF token (`csrf`), and an error
/// to show (`error`, with `hint`), setting the CSRF cookie when the browser had none.
fn form_page(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    error: Option<(String, Option<String>)>,
    ctx: Value,
) -> Response {
    let csrf = FormCsrf::for_request(app, headers);
    let (error, hint) = match error {
        Some((e, h)) => (Some(e), h),
        None => (None, None),
    };
    let page = html::page(
        app,
        status,
        template,
        context! { csrf => csrf.token.clone(), error, hint, ..ctx },
    );
    csrf.apply(page)
}

/// The words for a refused form: the status, and what the person reads.
fn refused_form(app: &AppState, why: &FormRefusal) -> (StatusCode, (String, Option<String>)) {
    (StatusCode::FORBIDDEN, why.explain(app))
}

/// A refused form shown again empty, saying why.
fn blank_form(app: &AppState, headers: &HeaderMap, template: &str, why: &FormRefusal) -> Response {
    let (status, error) = refused_form(app, why);
    form_page(app, headers, status, template, Some(error), context! {})
}

/// What a person reads for a refusal of the account flows, by its problem code.
fn explain_code(code: &str) -> &'static str {
    html::t(match code {
        "invalid_credentials" => "err_credentials",
        "too_many_attempts" | "rate_limited" | "account_locked" => "err_too_many",
        "account_disabled" => "err_disabled",
        "email_not_verified" => "err_not_verified",
        "unavailable" => "err_unavailable",
        "password_too_short" => "err_password_too_short",
        "password_too_long" => "err_password_too_long",
        "password_too_common" => "err_password_too_common",
        "password_breached" => "err_password_breached",
        "password_equals_email" => "err_password_is_email",
        "invalid_email" => "err_invalid_email",
        "registration_closed" => "err_registration_closed",
        "invalid_token" => "link_invalid",
        "invalid_code" => "err_invalid_code",
        "invalid_mfa_token" => "err_mfa_expired",
        "code_required" => "err_code_required",
        "no_second_factor" => "err_no_second_factor",
        "passkey_refused" | "invalid_passkey" => "err_passkey",
        "passkeys_unavailable" => "err_passkeys_unavailable",
        "too_many_passkeys" => "err_too_many_passkeys",
        "totp_already_enrolled" => "err_totp_already_enrolled",
        "email_taken" => "err_email_taken",
        "email_unchanged" => "err_email_unchanged",
        "current_session" => "err_current_session",
        "last_sign_in_method" => "err_last_sign_in_method",
        "scope_required" => "err_scope_required",
        "scope_not_granted" | "insufficient_scope" => "err_scope_not_granted",
        "invalid_expiry" => "err_invalid_expiry",
        "invalid_name" => "err_invalid_name",
        "not_found" => "err_not_found",
        _ => "err_failed",
    })
}
