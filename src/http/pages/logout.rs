//! `/ui/logout`: `GET` asks "sign out?" (a link or a prefetch must not sign anyone out),
//! the form's `POST` ends the browser's session everywhere and clears its cookies.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::form_page;
use crate::app::AppState;
use crate::http::browser::{current_session, sign_out, signed_out};
use crate::http::extract::Client;
use crate::http::html::{self, see_other};

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
    let current = current_session(&app, &headers).await;
    sign_out(&app, current, info, see_other("/ui/logout")).await
}
