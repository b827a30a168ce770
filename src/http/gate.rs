//! The admission step shared by the reverse proxy, forward auth and the AI door: take the
//! presented credentials, have them verified and admitted (`admission`), and either hand
//! back the verified caller or the rendered refusal.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::credentials::{Principal, Resolved, resolve};
use super::problem::Problem;
use crate::admission::{self, Counted, Refusal};
use crate::app::AppState;
use crate::authz::policy::{AuthMode, Policy};
use crate::gateway::headers::{IdentityHeaders, add_identity};
use crate::gateway::redirect::is_browser_navigation;
use crate::gateway::resource;
use crate::outbound::SendError;

/// Where a refused browser may be sent to sign in.
pub enum SignIn {
    /// Never redirect (nginx `auth_request` cannot pass a redirect on).
    Never,
    /// Redirect navigations, with this URL as the return target when it is allowed.
    Redirect(Option<String>),
}

pub enum Admission {
    Allowed {
        resolved: Resolved,
        identified: bool,
    },
    Refused(Response),
}

/// Resolves the caller of a request described by `method`/`headers` and admits it under
/// `policy` (and, with `counted`, its own rate limits); a refusal comes rendered, with
/// the cookie changes the resolution calls for.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate(
    app: &AppState,
    policy: &Policy,
    csrf: bool,
    method: &Method,
    headers: &HeaderMap,
    sign_in: SignIn,
    refresh: bool,
    counted: Option<Counted<'_>>,
) -> Admission {
    if policy.auth == AuthMode::Public {
        return Admission::Allowed {
            resolved: Resolved::default(),
            identified: false,
        };
    }
    let resolved = match resolve(app, method, headers, csrf, refresh).await {
        Ok(r) => r,
        Err(problem) => {
            let mut res = problem.into_response();
            if let Some(resource) = policy.resource.as_deref().filter(|r| !r.is_empty()) {
                point_to_metadata(app, &mut res, resource, &policy.scopes);
            }
            return Admission::Refused(res);
        }
    };
    match admission::admit(&app.limits, policy, &resolved, counted).await {
        Ok(identified) => Admission::Allowed {
            resolved,
            identified,
        },
        Err(why) => {
            let mut res = refusal_response(app, why, sign_in, method, headers);
            if let Some(resource) = policy.resource.as_deref().filter(|r| !r.is_empty()) {
                point_to_metadata(app, &mut res, resource, &policy.scopes);
            }
            Admission::Refused(with_session_cookies(app, res, &resolved))
        }
    }
}

/// A protected resource's 401s and 403s tell the client where its metadata is, and the
/// scopes to ask for (RFC 9728 §5.1).
fn point_to_metadata(app: &AppState, res: &mut Response, resource: &str, scopes: &[String]) {
    if !matches!(
        res.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        return;
    }
    let url = resource::metadata_url(&app.config.public_url, resource);
    let existing = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok());
    if let Ok(v) = HeaderValue::from_str(&resource::challenge(existing, &url, scopes)) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// The answer to a refused caller: a browser navigation that lacks a session goes to
/// sign in, one whose session must be raised to the step-up page (where `sign_in`
/// allows); everything else is a problem.
fn refusal_response(
    app: &AppState,
    why: Refusal,
    sign_in: SignIn,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let location = match (&why, sign_in) {
        (Refusal::Unauthenticated { .. }, SignIn::Redirect(return_to))
            if is_browser_navigation(method, headers) =>
        {
            app.gateway.login.location(return_to.as_deref())
        }
        (Refusal::StepUp { mfa, .. }, SignIn::Redirect(return_to))
            if is_browser_navigation(method, headers) =>
        {
            app.gateway
                .login
                .step_up_location(return_to.as_deref(), *mfa)
        }
        _ => None,
    };
    match location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        Some(l) => (StatusCode::FOUND, [(header::LOCATION, l)]).into_response(),
        None => Problem::from(why).into_response(),
    }
}

/// Adds the cookie changes a credential resolution calls for: new cookies after a
/// transparent refresh, or deletion of cookies that can never work again.
pub fn with_session_cookies(app: &AppState, mut res: Response, resolved: &Resolved) -> Response {
    let values: Vec<HeaderValue> = if let Some(issued) = &resolved.refreshed {
        app.cookies
            .for_issued(issued, resolved.keep_csrf.as_deref())
            .into_iter()
            .collect()
    } else if resolved.clear_cookies {
        app.cookies.clear_all().into_iter().collect()
    } else {
        return res;
    };
    // A response that sets credentials must never be stored by a shared cache.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for v in values {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Adds the identity headers, with a signed assertion when there is an `audience` (an
/// assertion must name whom it is for; it is never issued for the issuer itself).
pub fn attach_identity(
    app: &AppState,
    headers: &mut HeaderMap,
    principal: &Principal,
    audience: Option<&str>,
) -> Result<(), Problem> {
    let session_id = principal.session_id();
    let assertion = match audience {
        Some(aud) => Some(
            app.assertions
                .for_upstream(&principal.assertion_subject(&session_id), aud)?,
        ),
        None => None,
    };
    // A service is named as the client; the user headers stay empty, so no upstream can
    // take a client id for a user id.
    let user_id = match principal.service() {
        Some(_) => "",
        None => principal.user_id(),
    };
    add_identity(
        headers,
        &IdentityHeaders {
            user_id,
            email: principal.email(),
            email_verified: match (principal.service(), principal.email_verified()) {
                (Some(_), _) => "",
                (None, true) => "true",
                (None, false) => "false",
            },
            scope: principal.scope(),
            session_id: &session_id,
            client_id: principal.client_id(),
            assertion: assertion.as_deref().unwrap_or(""),
        },
    );
    Ok(())
}

pub(crate) fn upstream_failure(route: &str, e: SendError) -> Response {
    if matches!(e, SendError::ClientStalled | SendError::ClientBody) {
        tracing::debug!(route, error = %e, "the client's request body failed");
    } else {
        tracing::warn!(route, error = %e, "upstream exchange failed");
    }
    Problem::from(e).into_response()
}
