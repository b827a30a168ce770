//! The reverse-proxy handler: every request outside Tollgate's own paths.
//!
//! normalise the path → refuse reserved paths → answer CORS preflights → match a route →
//! shared policy step (`gate`) → rewrite headers → stream to the upstream and back.
//! Responses the gateway makes itself get the security headers; proxied responses are
//! marked [`Proxied`] and keep the upstream's own.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::{StatusCode, Uri};

use super::credentials::{Resolved, Via, strip_our_bearers};
use super::gate::{
    Admission, SignIn, attach_identity, evaluate, upstream_failure, with_session_cookies,
};
use super::limits::NormalizedPath;
use super::problem::Problem;
use crate::admission::Counted;
use crate::app::AppState;
use crate::gateway::cors::{self, CorsVerdict};
use crate::gateway::headers::{
    Forwarded, add_forwarded, strip_cookies, strip_forged, strip_set_cookies, strip_steering,
};
use crate::gateway::path;
use crate::gateway::redirect::is_browser_navigation;
use crate::gateway::routes::{Match, Route, is_reserved};
use crate::gateway::websocket::{is_websocket_acceptance, spawn_tunnel, wants_upgrade};
use crate::limits::address::canonical;
use crate::outbound::remove_hop_by_hop;

/// Marks a response that came from an upstream: the edge layers leave its headers alone.
#[derive(Clone, Copy)]
pub struct Proxied;

pub async fn handle(State(app): State<AppState>, mut req: Request) -> Response {
    // The edge layer normalised the path already; only a bare handler (tests) does it here.
    let normalized = match req.extensions_mut().remove::<NormalizedPath>() {
        Some(NormalizedPath(p)) => p,
        None => path::normalize(req.uri().path()).ok(),
    };
    let normalized = match normalized {
        Some(p) => p,
        None => {
            return Problem::bad_request(
                "invalid_path",
                "the path contains encoded slashes, ';', control characters, bad escapes or climbs above the root",
            )
            .into_response();
        }
    };
    if is_reserved(&normalized) {
        return Problem::not_found().into_response();
    }
    if let Some(method) = cors::preflight_method(req.method(), req.headers()) {
        return preflight(&app, &normalized, &method, &req);
    }
    let matched = match app.gateway.routes.find(req.method(), &normalized) {
        Match::Found(matched) => matched,
        Match::NotFound => return Problem::not_found().into_response(),
        Match::MethodNotAllowed(allowed) => return method_not_allowed(&allowed),
    };
    let route = matched.route;
    if route.upstream.is_none() {
        return Problem::not_found()
            .with_detail("this route is for forward auth only (it has no upstream)")
            .into_response();
    }
    // Only a browser navigation can be sent to sign in; don't build its URL otherwise.
    let return_to = is_browser_navigation(req.method(), req.headers()).then(|| {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        format!("{}{target}", app.config.public_url)
    });
    let (resolved, identified) = match evaluate(
        &app,
        &matched.policy,
        matched.csrf,
        req.method(),
        req.headers(),
        SignIn::Redirect(return_to),
        true,
        Some(Counted {
            method: req.method().as_str(),
            path: &normalized,
        }),
    )
    .await
    {
        Admission::Allowed {
            resolved,
            identified,
        } => (resolved, identified),
        Admission::Refused(res) => return with_cors(&app, route, req.headers(), res),
    };

    let (mut parts, body) = req.into_parts();
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let client_upgrade = wants_upgrade(&parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    let websocket_key = parts.headers.get("sec-websocket-key").cloned();
    if let Err(refusal) = rewrite_for_upstream(
        &app,
        route,
        &normalized,
        &mut parts,
        &resolved,
        identified,
        client_upgrade.is_some(),
    ) {
        return refusal.into_response();
    }
    let upstream_req = http::Request::from_parts(parts, body);
    let mut res = match app.gateway.outbound.send(upstream_req).await {
        Ok(res) => res,
        Err(e) => return upstream_failure(&route.name, e),
    };
    let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        match client_upgrade {
            Some(client) if is_websocket_acceptance(websocket_key.as_ref(), res.headers()) => {
                spawn_tunnel(client, hyper::upgrade::on(&mut res));
            }
            _ => {
                tracing::warn!(route = %route.name, "the upstream switched protocols without completing a WebSocket handshake");
                return Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_invalid_upgrade",
                    "The upstream switched protocols without a valid WebSocket handshake",
                )
                .into_response();
            }
        }
    }
    let (mut parts, body) = res.into_parts();
    remove_hop_by_hop(&mut parts.headers, switching);
    strip_set_cookies(&mut parts.headers, &app.cookies.all());
    parts.extensions.insert(Proxied);
    let mut res = Response::from_parts(parts, Body::new(body));
    if let Some(origin) = origin
        && app.gateway.cors.configured_for(route)
    {
        apply_cors(&app, route, &origin, &mut res);
    }
    with_session_cookies(&app, res, &resolved)
}

/// Turns the client's request head into the upstream's: what the upstream must not see
/// goes (forged identity, steering headers, hop-by-hop headers, Tollgate's cookies and
/// bearer credentials), the verified identity and forwarding headers come, and the target
/// becomes the upstream URL with the normalised path.
fn rewrite_for_upstream(
    app: &AppState,
    route: &Route,
    normalized: &str,
    parts: &mut http::request::Parts,
    resolved: &Resolved,
    identified: bool,
    upgrading: bool,
) -> Result<(), Problem> {
    let Some(upstream) = &route.upstream else {
        return Err(Problem::not_found());
    };
    let h = &mut parts.headers;
    strip_forged(h, route.strip_proxy_identity);
    strip_steering(h);
    remove_hop_by_hop(h, upgrading);
    strip_cookies(h, &app.cookies.all());
    // The credential that authenticated this request is one of ours, so it goes here,
    // with any other of ours; another scheme beside it is the app's.
    strip_our_bearers(app, h);
    // Browsers cannot add a CSRF header to a WebSocket handshake, and send cookies with
    // it: the handshake's Origin must be one we trust.
    if upgrading
        && resolved.via == Some(Via::Cookie)
        && !origin_trusted(app, route, h.get(header::ORIGIN))
    {
        return Err(Problem::csrf_failed()
            .with_detail("a cookie-authenticated WebSocket handshake from an untrusted Origin"));
    }
    if identified
        && let Some(principal) = &resolved.principal
        && let Err(p) = attach_identity(app, h, principal, route.audience.as_deref())
    {
        return Err(p);
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()));
    // HTTP/2 clients name the host in the `:authority` pseudo-header, not in `Host`.
    if !h.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        h.insert(header::HOST, v);
    }
    let proto = if app.config.secure_cookies() {
        "https"
    } else {
        "http"
    };
    add_forwarded(
        h,
        &Forwarded {
            peer,
            trusted_peer: peer.is_some_and(|ip| {
                app.config
                    .limits
                    .trusted_proxies
                    .iter()
                    .any(|c| c.contains(ip))
            }),
            proto,
            public_host: &app.gateway.public_host,
        },
    );
    if let Ok(host) = HeaderValue::from_str(upstream.authority.as_str()) {
        h.insert(header::HOST, host);
    }
    let mut target = route.upstream_path(normalized);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    parts.uri = match Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(target)
        .build()
    {
        Ok(uri) => uri,
        Err(_) => {
            return Err(Problem::bad_request(
                "invalid_path",
                "unusable request target",
            ));
        }
    };
    parts.version = http::Version::HTTP_11;
    Ok(())
}

fn method_not_allowed(allowed: &[http::Method]) -> Response {
    let list = allowed
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut res = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&list) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

/// Answers a CORS preflight for the route the real request would take.
fn preflight(app: &AppState, path: &str, method: &http::Method, req: &Request) -> Response {
    let route = match app.gateway.routes.find(method, path) {
        Match::Found(matched) => matched.route,
        Match::NotFound => return Problem::not_found().into_response(),
        Match::MethodNotAllowed(allowed) => return method_not_allowed(&allowed),
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    let verdict = app
        .gateway
        .cors
        .verdict(Some(route), origin.to_str().unwrap_or(""));
    if verdict == CorsVerdict::Denied {
        return Problem::new(
            cors::REFUSED,
            "cors_rejected",
            "Cross-origin request refused",
        )
        .with_detail("the Origin is not allowed for this route")
        .into_response();
    }
    let headers = app.gateway.cors.preflight_headers(
        verdict,
        &origin,
        route,
        method,
        req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS),
    );
    (StatusCode::NO_CONTENT, headers).into_response()
}

fn apply_cors(app: &AppState, route: &Route, origin: &HeaderValue, res: &mut Response) {
    let h = res.headers_mut();
    // The gateway owns CORS for this route: the upstream's opinion is dropped.
    let theirs: Vec<_> = h
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in theirs {
        h.remove(k);
    }
    let verdict = app
        .gateway
        .cors
        .verdict(Some(route), origin.to_str().unwrap_or(""));
    // `Vary: Origin` even when refused, so no cache serves one origin's answer to another.
    for (k, v) in app.gateway.cors.response_headers(verdict, origin) {
        if let Some(k) = k {
            h.append(k, v);
        }
    }
}

/// An `Origin` that may act with the user's cookies: ours, a trusted one, or one the
/// route's CORS configuration lists by name.
fn origin_trusted(app: &AppState, route: &Route, origin: Option<&HeaderValue>) -> bool {
    let Some(origin) = origin.and_then(|o| o.to_str().ok()) else {
        return true;
    };
    origin == app.config.public_origin()
        || app
            .config
            .http
            .trusted_origins
            .iter()
            .any(|t| t.trim_end_matches('/') == origin)
        || app.gateway.cors.verdict(Some(route), origin) == CorsVerdict::Credentialed
}

fn with_cors(
    app: &AppState,
    route: &Route,
    headers: &http::HeaderMap,
    mut res: Response,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN)
        && app.gateway.cors.configured_for(route)
    {
        apply_cors(app, route, &origin.clone(), &mut res);
    }
    res
}
