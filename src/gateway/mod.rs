//! The gateway: Tollgate in front of an app.
//!
//! Every request outside Tollgate's own paths is matched against the route table
//! ([`routes`]) on its normalised path ([`path`]), its credential is verified locally,
//! the shared policy decision (`authz::policy`) allows or refuses it, and allowed requests
//! are proxied ([`proxy`]) with the verified identity attached ([`headers`]). Forward auth
//! runs the same steps and answers instead of proxying. CORS ([`cors`]) and sign-in
//! redirects ([`redirect`]) are decided here too. The HTTP handlers that compose these
//! pieces live in `http::gateway` and `http::forward_auth`.

pub mod config;
pub mod cors;
pub mod headers;
pub mod path;
pub mod redirect;
pub mod resource;
pub mod routes;
pub mod websocket;

use crate::outbound::Outbound;
use cors::CorsConfig;
use redirect::LoginRedirect;
use routes::RouteTable;

pub struct Gateway {
    pub routes: RouteTable,
    pub cors: CorsConfig,
    /// The shared outbound client with the `[gateway]` timeouts.
    pub outbound: Outbound,
    pub login: LoginRedirect,
    /// The public URL's `host[:port]`, the `X-Forwarded-Host` upstreams are told.
    pub public_host: String,
}

/// `"*"` or `scheme://host[:port]` exactly as browsers send `Origin`.
pub fn check_origin_syntax(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let ok = url::Url::parse(origin).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == origin
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid CORS origin '{origin}': expected \"*\" or scheme://host[:port] with no path or trailing slash"
        ))
    }
}
