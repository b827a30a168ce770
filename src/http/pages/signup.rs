//! `/ui/signup`: create an account, when `[accounts] open_registration`. The answer is the
//! same for a new address and one that already has an account ("check your inbox"), so the
//! page tells nobody which addresses exist: a new account is mailed its verification link,
//! a known address a note that someone tried (`Identity::sign_up`). The password rules are
//! those of every other door, and the per-address sign-up limit applies.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::login::LoginQuery;
use super::{blank_form, explain_code, form_page, return_target};
use crate::app::AppState;
use crate::audit::Context;
use crate::http::extract::Client;
use crate::http::html::{self, NotHandled};
use crate::http::problem::Problem;
use crate::ui::messages::fill;

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignupForm {
    email: String,
    password: String,
    csrf_token: String,
    rd: Option<String>,
}

html::our_forms!(SignupForm);

fn closed(app: &AppState) -> Response {
    html::message_with_link(
        app,
        StatusCode::FORBIDDEN,
        html::t("signup_title"),
        html::t("err_registration_closed"),
        "/ui/login",
        html::t("sign_in"),
    )
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !app.config.accounts.open_registration {
        return closed(&app);
    }
    let rd = return_target(&app, q.rd.as_deref());
    form_page(
        &app,
        &headers,
        StatusCode::OK,
        "signup.html",
        None,
        context! { email => "", rd },
    )
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.config.accounts.open_registration {
        return closed(&app);
    }
    let form: SignupForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        // Nothing posted is shown back: it may be another site's.
        Err(NotHandled::Refused(why)) => return blank_form(&app, &headers, "signup.html", &why),
        Err(e) => return e.page(&app),
    };
    let rd = return_target(&app, form.rd.as_deref());
    let again = |status, error| {
        form_page(
            &app,
            &headers,
            status,
            "signup.html",
            Some(error),
            context! { email => form.email.clone(), rd => rd.clone() },
        )
    };
    let ctx = Context::anonymous(info);
    if let Err(e) = app
        .identity
        .sign_up(&form.email, &form.password, &ctx)
        .await
    {
        let problem = Problem::from(e);
        return again(
            problem.status,
            (explain_code(problem.code).to_string(), None),
        );
    }
    let email =
        crate::identity::validate::normalize_email(&form.email).unwrap_or(form.email.clone());
    html::message_with_link(
        &app,
        StatusCode::OK,
        html::t("check_inbox_title"),
        &fill(html::t("signup_sent"), &[("email", &email)]),
        "/ui/login",
        html::t("sign_in"),
    )
}
