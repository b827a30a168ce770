//! Forward auth: `/auth/verify` answers "may this request through?" for a proxy in front
//! of the app, with the same route policy as the gateway's own proxy.
//!
//! The original request is described by
//! - `X-Original-URI` (+ `X-Original-Method`): nginx `auth_request`;
//! - `X-Forwarded-Uri` + `X-Forwarded-Method` + `X-Forwarded-Host` (+ `-Proto`): Traefik
//!   ForwardAuth, Caddy `forward_auth`;
//! - otherwise the request itself, with the original path after `/auth/verify`: Envoy
//!   `ext_authz` in HTTP mode (`path_prefix: /auth/verify`).
//!
//! 200 carries the identity headers for the proxy to copy upstream (none for anonymous
//! callers); refusals are 401 or 403. There is no transparent refresh here: proxies pass
//! at most one `Set-Cookie` of an auth response on (nginx's `$upstream_http_set_cookie`
//! is the first), and a rotated refresh token that never reaches the browser would look
//! like token theft on its next use. An expired access cookie gets 401 `token_expired`;
//! the page refreshes with `POST /auth/refresh` (or is sent to sign in). A path that matches no route is held to "sign-in
//! required" (fail closed). Refused browser navigations are redirected to the sign-in page
//! where the proxy passes redirects on (Traefik, Caddy, Envoy), never for nginx, whose
//! `auth_request` accepts only 2xx, 401 and 403.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode};

use super::gate::{SignIn, Verdict, attach_identity, evaluate};
use super::problem::Problem;
use crate::app::AppState;
use crate::authz::policy::Policy;
use crate::gateway::path;
use crate::gateway::routes::Match;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/verify", any(verify))
        .route("/auth/verify/{*rest}", any(verify))
}

/// The request a proxy asks about.
struct Original {
    method: Method,
    /// Path and query as sent by the client.
    uri: String,
    /// `scheme://host` when the proxy told us.
    origin: Option<String>,
    sign_in: bool,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn describe(req: &Request) -> Option<Original> {
    let h = req.headers();
    let method_from = |name| match header(h, name) {
        Some(m) => Method::from_bytes(m.as_bytes()).ok(),
        None => Some(Method::GET),
    };
    if let Some(uri) = header(h, "x-original-uri") {
        return Some(Original {
            method: method_from("x-original-method")?,
            uri: uri.to_string(),
            origin: None,
            sign_in: false,
        });
    }
    if let Some(uri) = header(h, "x-forwarded-uri") {
        let origin = header(h, "x-forwarded-host").map(|host| {
            let proto = header(h, "x-forwarded-proto").unwrap_or("https");
            format!("{proto}://{host}")
        });
        return Some(Original {
            method: method_from("x-forwarded-method")?,
            uri: uri.to_string(),
            origin,
            sign_in: true,
        });
    }
    let rest = req.uri().path().strip_prefix("/auth/verify")?;
    if rest.is_empty() {
        return None;
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Some(Original {
        method: req.method().clone(),
        uri: format!("{rest}{query}"),
        origin: header(h, "host").map(|host| format!("http://{host}")),
        sign_in: true,
    })
}

async fn verify(State(app): State<AppState>, req: Request) -> Response {
    let Some(original) = describe(&req) else {
        return Problem::bad_request(
            "invalid_request",
            "describe the original request with X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy)",
        )
        .into_response();
    };
    let raw_path = original.uri.split(['?', '#']).next().unwrap_or("");
    let Ok(normalized) = path::normalize(raw_path) else {
        return Problem::new(StatusCode::FORBIDDEN, "invalid_path", "Unacceptable path")
            .into_response();
    };
    let default_policy = Policy::default_forward_auth();
    let (policy, csrf, audience) = match app.gateway.routes.find(&original.method, &normalized) {
        Match::Found(route) => (
            &route.policy,
            route.csrf,
            route.upstream.as_ref().map(|u| u.audience.clone()),
        ),
        Match::NotFound => (&default_policy, true, None),
        Match::MethodNotAllowed(_) => {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "method_not_allowed",
                "This method is not allowed on this path",
            )
            .into_response();
        }
    };
    let sign_in = if original.sign_in {
        SignIn::Redirect(
            original
                .origin
                .as_ref()
                .map(|o| format!("{o}{}", original.uri)),
        )
    } else {
        SignIn::Never
    };
    let (resolved, identified) = match evaluate(
        &app,
        policy,
        csrf,
        &original.method,
        req.headers(),
        sign_in,
        false,
    )
    .await
    {
        Verdict::Allowed {
            resolved,
            identified,
        } => (resolved, identified),
        Verdict::Refused(res) => return res,
    };
    let mut res = StatusCode::OK.into_response();
    if identified && let Some(principal) = &resolved.principal {
        let audience = audience
            .or(original.origin)
            .unwrap_or_else(|| app.config.public_url.clone());
        if let Err(p) = attach_identity(&app, res.headers_mut(), principal, &audience) {
            return p.into_response();
        }
    }
    res
}
