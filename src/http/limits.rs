//! Rate limits at the edge: the client address every later step uses, the per-address and
//! per-route rules checked before routing, and the 429 every limit answers with.
//!
//! Responses to limited requests carry the draft IETF `RateLimit-Policy` and `RateLimit`
//! fields (`"<rule>";q=<limit>;w=<window s>` and `"<rule>";r=<remaining>;t=<reset s>`)
//! for the tightest rule that applied; refusals add `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::problem::{Problem, rate_limit_fields};
use crate::app::AppState;
use crate::gateway::path;
use crate::limits::address::{client_ip, limit_key};
use crate::limits::{Allowance, Per};

/// The client's address as decided at the edge (trusted proxies applied).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The request path normalised once at the edge (`None`: the gateway refuses it), for
/// the rules here and for the gateway, which would otherwise normalise it again.
#[derive(Debug, Clone)]
pub struct NormalizedPath(pub Option<String>);

/// Works out the client address and the normalised path, then checks `ip` and `route`
/// rules.
pub async fn edge(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let ip = client_ip(peer, forwarded, &app.config.limits.trusted_proxies);
    // Rules see the path the gateway will route and forward, not a spelling of it
    // (`//x`, `/./x`, `%78`); paths it refuses are refused later anyway.
    let normalized = path::normalize(req.uri().path()).ok();
    req.extensions_mut().insert(ClientIp(ip));
    if !app.config.limits.enabled {
        req.extensions_mut().insert(NormalizedPath(normalized));
        return next.run(req).await;
    }
    let path = normalized
        .clone()
        .unwrap_or_else(|| req.uri().path().to_owned());
    req.extensions_mut().insert(NormalizedPath(normalized));
    let method = req.method().as_str().to_owned();
    let ip_text = limit_key(ip);
    let by_ip = app.limits.check(Per::Ip, &method, &path, &ip_text).await;
    let by_route = match &by_ip {
        Ok(_) => app.limits.check(Per::Route, &method, &path, "all").await,
        Err(_) => Ok(None),
    };
    match (by_ip, by_route) {
        (Err(r), _) | (_, Err(r)) => Problem::from(r).into_response(),
        (Ok(a), Ok(b)) => {
            let mut res = next.run(req).await;
            if let Some(v) = tightest(a, b) {
                add_headers(res.headers_mut(), &v);
            }
            res
        }
    }
}

fn tightest(a: Option<Allowance>, b: Option<Allowance>) -> Option<Allowance> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.decision.remaining < a.decision.remaining {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Adds the fields unless the response already has them (a tighter refusal from a
/// handler's own check wins).
fn add_headers(h: &mut HeaderMap, v: &Allowance) {
    if h.contains_key("ratelimit") {
        return;
    }
    for (name, value) in rate_limit_fields(v) {
        h.insert(name, value);
    }
}
