//! The pages the mails link to, and the one that sends the reset mail:
//! - `/ui/forgot`: ask for a reset link (the same answer for every address);
//! - `/ui/reset?token=…`: choose a new password (every session of the account ends);
//! - `/ui/verify?token=…`: confirm the address (a button: mail scanners that follow links
//!   must not spend the code);
//! - `/ui/confirm-email?token=…`: confirm a new address after a change.
//!
//! The codes are those of the JSON API (`identity::recovery`), with its limits.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::{blank_form, explain_code, form_page};
use crate::app::AppState;
use crate::audit::Context;
use crate::http::extract::Client;
use crate::http::html::{self, NotHandled};
use crate::http::problem::Problem;
use crate::identity::recovery::RESET_TTL_SECS;
use crate::mail::in_words;
use crate::ui::messages::fill;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmailForm {
    email: String,
    csrf_token: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    token: String,
    new_password: String,
    csrf_token: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenForm {
    token: String,
    csrf_token: String,
}

html::our_forms!(EmailForm, ResetForm, TokenForm);

pub async fn forgot_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    form_page(
        &app,
        &headers,
        StatusCode::OK,
        "forgot.html",
        None,
        context! { email => "" },
    )
}

pub async fn forgot_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: EmailForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        // Nothing posted is shown back: it may be another site's.
        Err(NotHandled::Refused(why)) => return blank_form(&app, &headers, "forgot.html", &why),
        Err(e) => return e.page(&app),
    };
    let again = |status, error| {
        form_page(
            &app,
            &headers,
            status,
            "forgot.html",
            Some(error),
            context! { email => form.email.clone() },
        )
    };
    if let Err(why) = app
        .sign_in
        .limit_address("/ui/forgot", &form.email, &info)
        .await
    {
        let problem = Problem::from(why);
        return again(
            problem.status,
            (explain_code(problem.code).to_string(), None),
        );
    }
    app.identity
        .request_password_reset(&form.email, Context::anonymous(info));
    let duration = in_words((RESET_TTL_SECS / 60) as u64);
    html::message_with_link(
        &app,
        StatusCode::OK,
        html::t("check_inbox_title"),
        &fill(
            html::t("forgot_sent"),
            &[("email", form.email.trim()), ("duration", &duration)],
        ),
        "/ui/login",
        html::t("back_to_sign_in"),
    )
}

/// The page for a code that is unknown, expired, superseded or spent.
fn link_invalid(app: &AppState, retry: &str) -> Response {
    html::message_with_link(
        app,
        StatusCode::BAD_REQUEST,
        html::t("link_invalid_title"),
        html::t("link_invalid"),
        retry,
        html::t("ask_new_link"),
    )
}

pub async fn reset_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    form_page(
        &app,
        &headers,
        StatusCode::OK,
        "reset.html",
        None,
        context! { token => q.token },
    )
}

pub async fn reset_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Refused: not the form again, its token may be another site's (a reset of the
    // attacker's own account); the link in the mail still works.
    let form: ResetForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let again = |status, error| {
        form_page(
            &app,
            &headers,
            status,
            "reset.html",
            Some(error),
            context! { token => form.token.clone() },
        )
    };
    match app
        .identity
        .reset_password(&form.token, &form.new_password, &Context::anonymous(info))
        .await
    {
        Ok(()) => html::message_with_link(
            &app,
            StatusCode::OK,
            html::t("reset_done_title"),
            html::t("reset_done"),
            "/ui/login",
            html::t("sign_in"),
        ),
        Err(e) => {
            let problem = Problem::from(e);
            if problem.code == "invalid_token" {
                return link_invalid(&app, "/ui/forgot");
            }
            again(
                problem.status,
                (explain_code(problem.code).to_string(), None),
            )
        }
    }
}

/// What a confirmation page says and does.
struct Confirmation {
    action: &'static str,
    title: &'static str,
    lead: &'static str,
    button: &'static str,
}

const VERIFY: Confirmation = Confirmation {
    action: "/ui/verify",
    title: "verify_title",
    lead: "verify_lead",
    button: "verify_button",
};

const CONFIRM_EMAIL: Confirmation = Confirmation {
    action: "/ui/confirm-email",
    title: "confirm_email_title",
    lead: "confirm_email_lead",
    button: "confirm_email_button",
};

fn confirmation_page(
    app: &AppState,
    headers: &HeaderMap,
    c: &Confirmation,
    token: &str,
    error: Option<(String, Option<String>)>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    form_page(
        app,
        headers,
        status,
        "confirm.html",
        error,
        context! {
            action => c.action, title => html::t(c.title), lead => html::t(c.lead),
            button => html::t(c.button), token,
        },
    )
}

pub async fn verify_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    confirmation_page(&app, &headers, &VERIFY, &q.token, None)
}

pub async fn confirm_email_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    confirmation_page(&app, &headers, &CONFIRM_EMAIL, &q.token, None)
}

pub async fn verify_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    confirm(&app, info, &headers, &body, &VERIFY).await
}

pub async fn confirm_email_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    confirm(&app, info, &headers, &body, &CONFIRM_EMAIL).await
}

async fn confirm(
    app: &AppState,
    info: crate::session::ClientInfo,
    headers: &HeaderMap,
    body: &[u8],
    c: &Confirmation,
) -> Response {
    // Refused: not the form again, its token may be another site's (the mailed link
    // still works).
    let form: TokenForm = match html::posted(app, headers, body) {
        Ok(f) => f,
        Err(e) => return e.page(app),
    };
    let ctx = Context::anonymous(info);
    let (done, title, text) = if c.action == VERIFY.action {
        (
            app.identity.verify_email(&form.token, &ctx).await,
            "verified_title",
            "verified",
        )
    } else {
        (
            app.identity.confirm_email_change(&form.token, &ctx).await,
            "email_changed_title",
            "email_changed",
        )
    };
    match done {
        Ok(()) => html::message_with_link(
            app,
            StatusCode::OK,
            html::t(title),
            html::t(text),
            "/ui/login",
            html::t("sign_in"),
        ),
        Err(e) => {
            let problem = Problem::from(e);
            if problem.code == "invalid_token" {
                return link_invalid(app, "/ui/login");
            }
            html::message(
                app,
                problem.status,
                html::t("error_title"),
                explain_code(problem.code),
                Some(problem.code),
            )
        }
    }
}
