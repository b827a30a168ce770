//! The credentials a gateway, forward-auth or AI request presents, taken from its
//! headers and cookies and handed to `session::credentials` to verify; and the
//! `Authorization` headers no upstream may receive. Authorization schemes other than
//! Bearer are not Tollgate's and are left alone.

use http::{HeaderMap, Method};

use super::cookies;
use super::extract::check_csrf;
use super::problem::Problem;
use crate::app::AppState;
use crate::session::api_keys::ApiKeys;
use crate::session::credentials::{self as verify, Presented};
pub use crate::session::credentials::{Principal, Resolved, Via};

/// Verifies the request's credential. `csrf` asks for the double-submit check on
/// cookie-authenticated unsafe methods; `refresh` allows a transparent refresh (only
/// where the response's three `Set-Cookie` headers are sure to reach the browser).
pub async fn resolve(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    csrf: bool,
    refresh: bool,
) -> Result<Resolved, Problem> {
    let names = &app.cookies;
    let presented = Presented {
        bearer: bearer(headers),
        access_cookie: cookies::read(headers, &names.access),
        refresh_cookie: cookies::read(headers, &names.refresh).filter(|_| refresh),
        csrf_cookie: cookies::read(headers, &names.csrf),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    verify::resolve(&app.sessions, &app.api_keys, presented, || {
        if csrf {
            check_csrf(method, headers, app)
        } else {
            Ok(())
        }
    })
    .await
}

/// Removes every `Authorization` header that holds a Tollgate credential (an API key, or
/// a JWT naming one of our keys), which no upstream may receive, whatever the route; other
/// schemes and foreign tokens stay. Each header counts, not just the first: a client may
/// send two.
pub fn strip_our_bearers(app: &AppState, headers: &mut HeaderMap) {
    let ours = |v: &http::HeaderValue| {
        bearer_of(v)
            .is_some_and(|t| ApiKeys::looks_like_key(t) || app.keys.key_for(t, |_| true).is_ok())
    };
    if !headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(ours)
    {
        return;
    }
    let kept: Vec<http::HeaderValue> = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    headers.remove(http::header::AUTHORIZATION);
    for v in kept {
        headers.append(http::header::AUTHORIZATION, v);
    }
}

/// The token of `Authorization: Bearer <token>`; other schemes are not ours. With several
/// `Authorization` headers (the field is a singleton), the first bearer token counts; the
/// others never reach the upstream if they are ours ([`strip_our_bearers`]).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .find_map(bearer_of)
}

fn bearer_of(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
