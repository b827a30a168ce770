//! Request extractors shared by the handlers: JSON bodies that fail as problem+json, the
//! authenticated caller (bearer token or cookie, with the CSRF rule for cookies), and the
//! client's address and user agent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::cookies;
use super::problem::Problem;
use crate::app::AppState;
use crate::error::Error;
use crate::secret::constant_time_eq;
use crate::session::{AccessClaims, ClientInfo, FIRST_PARTY_CLIENT};

/// A JSON body; every rejection (syntax, types, size, media type) is a 4xx problem.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// A path parameter; anything that does not decode (bad UTF-8, wrong type) is a 404.
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|_| Problem::not_found())
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    Cookie,
}

/// The verified caller of a request.
pub struct Caller {
    pub claims: Arc<AccessClaims>,
    pub credential: Credential,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    /// Only tokens of Tollgate's own sign-in manage an account: a token an OAuth client
    /// obtained (however scoped) or a service's own token is refused here, so a third
    /// party holding one cannot change passwords or sessions.
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let (claims, credential) = match bearer_token(&parts.headers)? {
            Some(token) => (app.sessions.verify(token)?, Credential::Bearer),
            None => {
                let Some(token) = cookies::read(&parts.headers, &app.cookies.access) else {
                    return Err(Error::Unauthenticated.into());
                };
                let claims = app.sessions.verify(token)?;
                check_csrf(&parts.method, &parts.headers, app)?;
                (claims, Credential::Cookie)
            }
        };
        if claims.client_id != FIRST_PARTY_CLIENT {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "first_party_only",
                "This endpoint takes tokens of Tollgate's own sign-in",
            )
            .with_detail(
                "a token issued to an OAuth client cannot manage the account; use /oauth2/userinfo",
            ));
        }
        Ok(Caller { claims, credential })
    }
}

/// `Some(token)` for `Authorization: Bearer <token>`, `None` without the header, an
/// `invalid_token` problem for any other authorization header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Problem::from(Error::InvalidToken))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::InvalidToken.into()),
    }
}

/// Double-submit check for cookie-authenticated unsafe requests.
pub fn check_csrf(method: &Method, headers: &HeaderMap, app: &AppState) -> Result<(), Problem> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    let cookie = cookies::read(headers, &app.cookies.csrf);
    let header = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    match (cookie, header) {
        (Some(c), Some(h)) if constant_time_eq(c, h) => Ok(()),
        _ => Err(Problem::csrf_failed()),
    }
}

/// Why a browser request does not come from one of our pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignOrigin {
    /// `Sec-Fetch-Site` says another site (or a sibling subdomain) sent it.
    CrossSite,
    /// An `Origin` that is neither the public URL's nor trusted: often the same server
    /// reached under another name (`localhost` for `127.0.0.1`).
    Other(String),
}

/// Whether a request comes from one of our own pages, as the browser's own headers say:
/// `Sec-Fetch-Site` (when sent) must be `same-origin` (or `none`: typed, not caused by a
/// page), and `Origin` (when sent) must be the public URL's or in `[http]
/// trusted_origins`. `Origin: null` is what a browser sends for a same-origin form under
/// a strict referrer policy, and also what a sandboxed or opaque page sends; it counts as
/// ours only with `Sec-Fetch-Site: same-origin`. Neither header (a script, an old
/// browser) passes: the form token or CSRF header still has to match.
pub fn origin_of_request(headers: &HeaderMap, app: &AppState) -> Result<(), ForeignOrigin> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(site) = fetch_site
        && !site.eq_ignore_ascii_case("same-origin")
        && !site.eq_ignore_ascii_case("none")
    {
        return Err(ForeignOrigin::CrossSite);
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim();
    if origin == "null" {
        return match fetch_site {
            Some(site) if site.eq_ignore_ascii_case("same-origin") => Ok(()),
            _ => Err(ForeignOrigin::CrossSite),
        };
    }
    let trusted = origin == app.config.public_origin()
        || app
            .config
            .http
            .trusted_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin);
    if trusted {
        Ok(())
    } else {
        Err(ForeignOrigin::Other(origin.chars().take(200).collect()))
    }
}

/// Login and register have no session yet; a browser's cross-site form or fetch is caught
/// by its `Origin` and `Sec-Fetch-Site` ([`origin_of_request`]). A foreign origin's refusal
/// names the setting that would make it ours.
pub fn check_origin(headers: &HeaderMap, app: &AppState) -> Result<(), Problem> {
    origin_of_request(headers, app).map_err(|why| match why {
        ForeignOrigin::CrossSite => {
            Problem::csrf_failed().with_detail("the request comes from another site")
        }
        ForeignOrigin::Other(origin) => Problem::csrf_failed().with_detail(format!(
            "the request comes from {origin}, but this service's public URL is {}: use that address, or set TOLLGATE_PUBLIC_URL (or [http] trusted_origins) to include {origin}",
            app.config.public_origin()
        )),
    })
}

/// The peer address and user agent, for the session list.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The edge layer's decision (trusted proxies applied) when it ran; the peer else.
        let ip = match parts.extensions.get::<super::limits::ClientIp>() {
            Some(c) => Some(c.0.to_string()),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        };
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Client(ClientInfo { user_agent, ip }))
    }
}

/// `?mode=token` selects bearer-token delivery; no mode (or `mode=cookie`) means cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Cookie,
    Token,
}

pub struct Mode(pub Delivery);

impl<S: Send + Sync> FromRequestParts<S> for Mode {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mode = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "mode")
            .map(|(_, v)| v);
        match mode {
            None | Some("cookie") => Ok(Mode(Delivery::Cookie)),
            Some("token") => Ok(Mode(Delivery::Token)),
            Some(_) => Err(Problem::bad_request(
                "invalid_request",
                "mode must be 'cookie' or 'token'",
            )),
        }
    }
}
