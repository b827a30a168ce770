//! The browser's own session, as the hosted pages, the authorization endpoint and
//! federation see it: who is signed in (refreshed in flight when the access cookie has
//! lapsed), and signing out.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};

use super::credentials::{Principal, Resolved, Via, resolve};
use super::html;
use super::problem::Problem;
use crate::app::AppState;
use crate::audit::{ClientInfo, Context};
use crate::oidc::authorize::BrowserSession;
use crate::session::{AccessClaims, FIRST_PARTY_CLIENT};

/// The browser's own signed-in session, from its cookies (refreshed in flight when the
/// access cookie has lapsed), with the user's email; and the resolution, whose cookie
/// changes the response must carry.
pub async fn browser_session(
    app: &AppState,
    headers: &HeaderMap,
) -> (Option<(BrowserSession, String)>, Resolved) {
    let resolved = match resolve(app, &Method::GET, headers, false, true).await {
        Ok(r) => r,
        Err(_) => return (None, Resolved::default()),
    };
    let browser = match (&resolved.principal, resolved.via) {
        (Some(Principal::Token(c)), Some(Via::Cookie))
            if c.client_id == FIRST_PARTY_CLIENT && !c.is_service() =>
        {
            Some((browser_of(c), c.email.clone()))
        }
        _ => None,
    };
    (browser, resolved)
}

/// The browser session an access token of Tollgate's own sign-in describes.
pub fn browser_of(c: &AccessClaims) -> BrowserSession {
    BrowserSession {
        session_id: c.sid.clone(),
        user_id: c.sub.clone(),
        auth_time: c.auth_time,
        amr: c.amr.join(" "),
        scopes: c.scopes().map(str::to_string).collect(),
    }
}

/// `(session id, user id, email)` of the browser's session, from the access cookie, or
/// from the refresh cookie when the access token has lapsed.
pub async fn current_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Option<(String, String, String)> {
    if let Some(c) = super::cookies::read(headers, &app.cookies.access)
        .and_then(|t| app.sessions.verify(t).ok())
        .filter(|c| c.client_id == FIRST_PARTY_CLIENT)
    {
        return Some((c.sid.clone(), c.sub.clone(), c.email.clone()));
    }
    let refresh = super::cookies::read(headers, &app.cookies.refresh)?;
    let (session, _) = app
        .store
        .session_for_refresh(&crate::secret::digest_hex(refresh))
        .await
        .ok()
        .flatten()?;
    (session.client_id == FIRST_PARTY_CLIENT && session.is_live(crate::clock::now()))
        .then(|| (session.id, session.user_id, String::new()))
}

/// Ends the browser's session (when it has one) and answers with `then`, clearing the
/// session cookies: the hosted sign-out and RP-initiated logout both end this way.
pub async fn sign_out(
    app: &AppState,
    current: Option<(String, String, String)>,
    info: ClientInfo,
    mut then: Response,
) -> Response {
    if let Some((sid, user_id, _)) = current {
        let ctx = Context::user(&user_id, info);
        if let Err(e) = app.sessions.end(&sid, None, "logout", &ctx).await {
            return Problem::from(e).into_response();
        }
        tracing::info!(user_id = %user_id, session_id = %sid, event = "logout");
    }
    for v in app.cookies.clear_all() {
        then.headers_mut().append(header::SET_COOKIE, v);
    }
    then
}

/// "You are signed out", with a link to sign in again.
pub fn signed_out(app: &AppState) -> Response {
    html::message_with_link(
        app,
        StatusCode::OK,
        html::t("signed_out_title"),
        html::t("signed_out"),
        "/ui/login",
        html::t("sign_in"),
    )
}
