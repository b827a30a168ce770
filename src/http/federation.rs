//! `/auth/federated/*`: signing in through an external identity provider.
//!
//! `GET /auth/federated/{name}` sends the browser to the provider with a signed journey
//! cookie; `…/callback` checks it, lets `oidc::federation` verify the answer, and signs
//! the user in (or asks to confirm a link); `POST /auth/federated/link` confirms a link
//! with the existing account's password. Every outcome is a page or a redirect.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::cookies;
use super::extract::{Client, PathParam};
use super::html::{self, FormCsrf, error_page, see_other};
use super::pages::{pending_of, return_target, signed_in};
use super::problem::Problem;
use crate::app::AppState;
use crate::audit::Context;
use crate::oidc::error::OAuthError;
use crate::oidc::federation::{FederationError, PendingLink, Resolution};
use crate::session::ClientInfo;

/// Where a journey's cookie lives at most (the journey itself expires sooner).
const JOURNEY_COOKIE_SECS: i64 = 600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/federated/link", post(link))
        .route("/auth/federated/{name}", get(start))
        .route(
            "/auth/federated/{name}/callback",
            get(callback_query).post(callback_form),
        )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StartQuery {
    flow: Option<String>,
    rd: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LinkForm {
    csrf_token: String,
    link: String,
    password: String,
}

html::our_forms!(LinkForm);

/// The page for a federation failure, with the status that fits it.
fn failure(app: &AppState, e: FederationError) -> Response {
    let (status, code) = match &e {
        FederationError::UnknownProvider(_) => (StatusCode::NOT_FOUND, "unknown_provider"),
        FederationError::BadJourney => {
            tracing::warn!(
                event = "federation_bad_journey",
                "federated sign-in without its journey cookie or with another state"
            );
            (StatusCode::BAD_REQUEST, "invalid_state")
        }
        FederationError::CodeRefused { .. } => (StatusCode::BAD_REQUEST, "invalid_grant"),
        FederationError::Provider { .. } => (StatusCode::BAD_GATEWAY, "provider_error"),
        FederationError::Refused(_) => (StatusCode::FORBIDDEN, "federation_refused"),
        FederationError::Domain(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    if let FederationError::Domain(inner) = e {
        return Problem::from(inner).into_response();
    }
    html::message(
        app,
        status,
        html::t("sign_in_failed_title"),
        &e.to_string(),
        Some(code),
    )
}

async fn start(
    State(app): State<AppState>,
    PathParam(name): PathParam<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    // A flow must be one of ours; an `rd` one a sign-in may return to.
    let flow = match pending_of(&app, q.flow.as_deref()) {
        Ok(Some(_)) => q.flow,
        Ok(None) => None,
        Err(e) => return error_page(&app, &e),
    };
    let rd = return_target(&app, q.rd.as_deref());
    match app.federation.start(&name, flow, rd).await {
        Ok((url, journey)) => {
            let mut res = see_other(&url);
            res.headers_mut().append(
                header::SET_COOKIE,
                journey_cookie(&app, &name, &journey, JOURNEY_COOKIE_SECS),
            );
            res
        }
        Err(e) => failure(&app, e),
    }
}

/// The journey's `Set-Cookie`: `SameSite=Lax` when the provider redirects back, `None`
/// when it answers with a cross-site POST (the cookie must travel on it; the state it
/// carries is what makes a forged POST fail).
fn journey_cookie(app: &AppState, provider: &str, value: &str, secs: i64) -> HeaderValue {
    if app.federation.answers_by_post(provider) {
        app.cookies
            .set_cross_site(&app.cookies.journey, value, secs)
    } else {
        app.cookies.set(&app.cookies.journey, value, secs, true)
    }
}

/// The provider's answer in the query (`response_mode=query`, the default).
async fn callback_query(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    PathParam(name): PathParam<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // A provider asked for a form post answers by POST: a code in a URL would sit in
    // the browser's history.
    if app.federation.answers_by_post(&name) {
        return error_page(
            &app,
            &OAuthError::invalid_request("this provider answers by form post"),
        );
    }
    callback(app, info, headers, name, q).await
}

/// The provider's answer as a cross-site form POST (`response_mode=form_post`, Apple).
/// It is not one of our forms, so no Origin check or CSRF token: the journey cookie and
/// its state are the check, as for the redirect. Only providers configured for it.
async fn callback_form(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    PathParam(name): PathParam<String>,
    body: Bytes,
) -> Response {
    if !app.federation.answers_by_post(&name) {
        if app.federation.providers().any(|(n, _)| n == name) {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        return failure(
            &app,
            FederationError::UnknownProvider(name.chars().take(32).collect()),
        );
    }
    match html::form::<CallbackQuery>(&headers, &body) {
        Ok(q) => callback(app, info, headers, name, q).await,
        Err(e) => error_page(&app, &e),
    }
}

async fn callback(
    app: AppState,
    info: ClientInfo,
    headers: HeaderMap,
    name: String,
    q: CallbackQuery,
) -> Response {
    let cookie = cookies::read(&headers, &app.cookies.journey);
    let mut res = match app.federation.journey(cookie, &name, q.state.as_deref()) {
        // The cookie stays: a request from another site with a made-up state must not
        // end a sign-in this browser has under way.
        Err(e) => return failure(&app, e),
        Ok(journey) => match (&q.code, &q.error) {
            (_, Some(error)) => {
                let detail = q.error_description.as_deref().unwrap_or(error);
                let retry = journey
                    .flow
                    .as_deref()
                    .map_or("/ui/login".to_string(), |f| format!("/ui/login?flow={f}"));
                html::page(
                    &app,
                    StatusCode::BAD_REQUEST,
                    "message.html",
                    context! {
                        heading => "Sign-in did not complete",
                        text => format!("The identity provider answered: {}", detail.chars().take(200).collect::<String>()),
                        code => "provider_error", is_error => true,
                        link => context! { href => retry, label => "Try again" },
                    },
                )
            }
            (None, None) => error_page(&app, &OAuthError::invalid_request("code is missing")),
            (Some(code), None) => {
                let ctx = Context::anonymous(info.clone());
                let outcome = match app
                    .federation
                    .finish(&journey, code, q.iss.as_deref())
                    .await
                {
                    Ok(identity) => app.federation.resolve(&identity, &journey, &ctx).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Err(e) => failure(&app, e),
                    Ok(Resolution::SignedIn(user)) => {
                        signed_in(
                            &app,
                            &headers,
                            user,
                            &["fed"],
                            &info,
                            journey.flow.as_deref(),
                            journey.rd.as_deref(),
                        )
                        .await
                    }
                    Ok(Resolution::ConfirmLink(token, link)) => {
                        link_page(&app, &headers, StatusCode::OK, &token, &link, None)
                    }
                }
            }
        },
    };
    // The journey is over, whatever its outcome (it is spent: `Federation::journey`).
    res.headers_mut()
        .append(header::SET_COOKIE, journey_cookie(&app, &name, "", 0));
    res
}

fn link_page(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    link: &PendingLink,
    error: Option<&str>,
) -> Response {
    let csrf = FormCsrf::for_request(app, headers);
    let provider = app
        .federation
        .providers()
        .find(|(name, _)| *name == link.provider)
        .map_or(link.provider.as_str(), |(_, label)| label)
        .to_string();
    let page = html::page(
        app,
        status,
        "link.html",
        context! { provider, email => link.email.clone(), csrf => csrf.token.clone(), link => token, error },
    );
    csrf.apply(page)
}

async fn link(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Refused: not the form again, the pending link may be another site's.
    let form: LinkForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let pending = match app.federation.pending_link(&form.link) {
        Ok(l) => l,
        Err(e) => return failure(&app, e),
    };
    let user = match app
        .sign_in
        .check(
            "/auth/federated/link",
            &pending.email,
            &form.password,
            &info,
        )
        .await
    {
        Ok(u) => u,
        Err(why) => {
            let problem = Problem::from(why);
            let msg = html::t(match problem.code {
                "invalid_credentials" => "err_credentials",
                "too_many_attempts" | "rate_limited" => "err_too_many",
                _ => "err_failed",
            });
            return link_page(
                &app,
                &headers,
                problem.status,
                &form.link,
                &pending,
                Some(msg),
            );
        }
    };
    let ctx = Context::user(&user.id, info.clone());
    match app.federation.link(&pending, &user, &ctx).await {
        Ok(user) => {
            signed_in(
                &app,
                &headers,
                user,
                &["pwd"],
                &info,
                pending.flow.as_deref(),
                pending.rd.as_deref(),
            )
            .await
        }
        Err(e) => failure(&app, e),
    }
}
