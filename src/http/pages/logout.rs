//! `/ui/logout`: `GET` asks "sign out?" (a link or a prefetch must not sign anyone out),
//! the form's `POST` ends the browser's session everywhere and clears its cookies.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::form_page;
use crate::app::AppState;
use crate::audit::Context;
use crate::http::extract::Client;
use crate::http::html::{self, see_other};
use crate::http::oauth::current_session;
use crate::http::problem::Problem;

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogoutForm {
    csrf_token: String,
}

html::our_forms!(LogoutForm);

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&app, &headers).await {
        Some((_, _, email)) => form_page(
            &app,
            &headers,
            StatusCode::OK,
            "logout.html",
            None,
            context! { action => "/ui/logout", email, cancel => "/ui/" },
        ),
        None => signed_out(&app),
    }
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = html::posted::<LogoutForm>(&app, &headers, &body) {
        return e.page(&app);
    }
    if let Some((sid, user_id, _)) = current_session(&app, &headers).await {
        let ctx = Context::user(&user_id, info);
        if let Err(e) = app.sessions.end(&sid, None, "logout", &ctx).await {
            return Problem::from(e).into_response();
        }
        tracing::info!(user_id = %user_id, session_id = %sid, event = "logout");
    }
    let mut res = see_other("/ui/logout");
    for v in app.cookies.clear_all() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn signed_out(app: &AppState) -> Response {
    html::message_with_link(
        app,
        StatusCode::OK,
        html::t("signed_out_title"),
        html::t("signed_out"),
        "/ui/login",
        html::t("sign_in"),
    )
}
