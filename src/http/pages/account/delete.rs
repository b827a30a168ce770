//! `/ui/account/delete`: "delete my account". The page and its form both need a fresh
//! sign-in (within `RECENT_SIGN_IN_SECS`, with the second factor when the account has
//! one): anyone else is sent to the step-up page first. The form erases the account
//! (`Identity::erase`, as an administrator's erasure does) and clears the cookies.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use minijinja::context;

use super::{AccountForm, Signed, step_up};
use crate::app::AppState;
use crate::error::Error;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html;
use crate::http::pages::form_page;
use crate::http::problem::Problem;

const HERE: &str = "/ui/account/delete";

/// Refuses unless the session signed in (with every factor the account has) just now.
async fn fresh_enough(app: &AppState, signed: &Signed) -> Result<(), Error> {
    app.factors
        .require_fresh_sign_in(&signed.session.user_id, signed.authenticated())
        .await
}

pub async fn delete_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let signed = match Signed::of(&app, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let res = match fresh_enough(&app, &signed).await {
        Ok(()) => form_page(
            &app,
            &headers,
            StatusCode::OK,
            "account_delete.html",
            None,
            context! { email => signed.email },
        ),
        Err(e) => step_up(HERE, &e).unwrap_or_else(|| Problem::from(e).into_response()),
    };
    with_session_cookies(&app, res, &signed.resolved)
}

pub async fn delete_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = html::posted::<AccountForm>(&app, &headers, &body) {
        return e.page(&app);
    }
    let signed = match Signed::of(&app, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let erased = async {
        fresh_enough(&app, &signed).await?;
        let user = signed.user(&app).await?;
        let ctx = crate::audit::Context::user(&user.id, info);
        app.identity.erase(&user, &ctx).await
    }
    .await;
    match erased {
        Ok(()) => {
            let mut res = html::message(
                &app,
                StatusCode::OK,
                html::t("deleted_title"),
                html::t("deleted"),
                None,
            );
            for v in app.cookies.clear_all() {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            let res = step_up(HERE, &e).unwrap_or_else(|| Problem::from(e).into_response());
            with_session_cookies(&app, res, &signed.resolved)
        }
    }
}
