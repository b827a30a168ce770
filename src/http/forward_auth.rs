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
//! 200 carries the identity headers for the proxy to copy upstream (empty for anonymous
//! callers), with an assertion for the route's `audience` (its `upstream` by default; no
//! audience, no assertion); refusals are 401 or 403. There is no transparent refresh here: proxies pass
//! at most one `Set-Cookie` of an auth response on (nginx's `$upstream_http_set_cookie`
//! is the first), and a rotated refresh token that never reaches the browser would look
//! like token theft on its next use. An expired access cookie gets 401 `token_expired`;
//! the page refreshes with `POST /auth/refresh` (or is sent to sign in). A path that matches no route is held to "sign-in
//! required" (fail closed). Refused browser navigations are redirected to the sign-in page
//! where the proxy passes redirects on (Traefik, Caddy, Envoy), never for nginx, whose
//! `auth_request` accepts only 2xx, 401 and 403.

use std::borrow::Cow;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode};

use super::gate::{Admission, SignIn, attach_identity, evaluate};
use super::problem::Problem;
use crate::app::AppState;
use crate::authz::policy::Policy;
use crate::gateway::headers::add_empty_identity;
use crate::gateway::path;
use crate::gateway::routes::Match;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/verify", any(verify))
        .route("/auth/verify/{*rest}", any(verify))
        .layer(axum::middleware::map_response(mark_for_proxy))
}

/// Marks an answer as meant for a proxy, not a person: it keeps its protocol format even
/// when the original request was a browser navigation (nginx reads only the status, and
/// Traefik/Caddy pass the body on as the app's own error).
#[derive(Clone, Copy)]
pub struct ForProxy;

async fn mark_for_proxy(mut res: Response) -> Response {
    res.extensions_mut().insert(ForProxy);
    res
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

/// Reads the description of the original request. Exactly one dialect must describe
/// it: proxies pass client headers on to the auth request, so a client adding another
/// dialect's headers could otherwise choose which path gets checked. The original method
/// must be stated (a missing one must not pass a POST off as a GET).
fn describe(req: &Request) -> Result<Original, Problem> {
    let h = req.headers();
    // Each describing header once: a proxy that appends its own to the client's would
    // otherwise let the client's copy, read first, choose what is checked.
    const DESCRIBING: [&str; 4] = [
        "x-original-uri",
        "x-original-method",
        "x-forwarded-uri",
        "x-forwarded-method",
    ];
    if let Some(twice) = DESCRIBING
        .iter()
        .find(|n| h.get_all(**n).iter().count() > 1)
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "ambiguous_request",
            "Unusable forward-auth request",
        )
        .with_detail(format!("{twice} is sent more than once")));
    }
    let nginx = header(h, "x-original-uri");
    let traefik = header(h, "x-forwarded-uri");
    let envoy = req
        .uri()
        .path()
        .strip_prefix("/auth/verify")
        .filter(|rest| !rest.is_empty());
    let refuse = |code: &'static str, detail: &str| {
        Problem::new(StatusCode::FORBIDDEN, code, "Unusable forward-auth request")
            .with_detail(detail)
    };
    let method = |name: &str| -> Result<Method, Problem> {
        header(h, name)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or_else(|| {
                refuse(
                    "invalid_request",
                    &format!("send the original method in {name}"),
                )
            })
    };
    // The original request's target as nginx's `$request_uri` and Traefik's header give
    // it: a path. A full URL would match no route and fall back to the default policy,
    // escaping the route's scopes and step-up, so it is refused.
    if let Some(uri) = nginx.or(traefik)
        && !uri.starts_with('/')
    {
        return Err(refuse(
            "invalid_request",
            "the original URI must be a path starting with '/' (as $request_uri gives it), not a full URL",
        ));
    }
    match (nginx, traefik, envoy) {
        (None, None, None) => Err(Problem::bad_request(
            "invalid_request",
            "describe the original request with X-Original-URI (nginx), X-Forwarded-Uri (Traefik, Caddy) or a path after /auth/verify (Envoy)",
        )),
        (Some(uri), None, None) => Ok(Original {
            method: method("x-original-method")?,
            uri: uri.to_string(),
            origin: None,
            sign_in: false,
        }),
        (None, Some(uri), None) => Ok(Original {
            method: method("x-forwarded-method")?,
            uri: uri.to_string(),
            origin: header(h, "x-forwarded-host").map(|host| {
                let proto = header(h, "x-forwarded-proto").unwrap_or("https");
                format!("{proto}://{host}")
            }),
            sign_in: true,
        }),
        (None, None, Some(rest)) => {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            Ok(Original {
                method: req.method().clone(),
                uri: format!("{rest}{query}"),
                origin: header(h, "host").map(|host| {
                    let proto = header(h, "x-forwarded-proto").unwrap_or("https");
                    format!("{proto}://{host}")
                }),
                sign_in: true,
            })
        }
        _ => Err(refuse(
            "ambiguous_request",
            "the original request is described in more than one way (X-Original-URI, X-Forwarded-Uri, a path after /auth/verify)",
        )),
    }
}

async fn verify(State(app): State<AppState>, req: Request) -> Response {
    let original = match describe(&req) {
        Ok(o) => o,
        Err(problem) => return problem.into_response(),
    };
    let raw_path = original.uri.split(['?', '#']).next().unwrap_or("");
    let Ok(normalized) = path::normalize(raw_path) else {
        return Problem::new(StatusCode::FORBIDDEN, "invalid_path", "Unacceptable path")
            .into_response();
    };
    let default_policy = Policy::default_forward_auth();
    let (policy, csrf, audience) = match app.gateway.routes.find(&original.method, &normalized) {
        Match::Found(m) => (m.policy, m.csrf, m.route.audience.as_deref()),
        Match::NotFound => (Cow::Borrowed(&default_policy), true, None),
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
        &policy,
        csrf,
        &original.method,
        req.headers(),
        sign_in,
        false,
        // Forward auth answers the proxy; the caller's own limits count where requests
        // are served (the proxy's own limits, or Tollgate's gateway).
        None,
    )
    .await
    {
        Admission::Allowed {
            resolved,
            identified,
        } => (resolved, identified),
        Admission::Refused(res) => return res,
    };
    let mut res = StatusCode::OK.into_response();
    match &resolved.principal {
        Some(principal) if identified => {
            if let Err(p) = attach_identity(&app, res.headers_mut(), principal, audience) {
                return p.into_response();
            }
        }
        _ => add_empty_identity(res.headers_mut()),
    }
    res
}
