//! Building blocks of the HTML endpoints (hosted pages, the authorization and logout
//! endpoints, federation): page responses with their security policy, 303 redirects,
//! and the double-submit CSRF check of HTML forms.
//!
//! A form carries the `tg_csrf` cookie's value in a hidden `csrf_token` field; the cookie
//! is set with the page when the browser has none yet (before sign-in). A cross-site page
//! cannot read the cookie, so it cannot fill in the field.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use minijinja::{Value, context};

use super::cookies;
use super::extract::check_origin;
use crate::app::AppState;
use crate::oidc::error::OAuthError;
use crate::secret;

/// How long a CSRF cookie set for a sign-in form lives (sign-in replaces it with one
/// that lives as long as the session).
const FORM_CSRF_TTL_SECS: i64 = 2 * 3600;

/// A rendered page with the pages' security policy, never cached.
pub fn page(app: &AppState, status: StatusCode, template: &str, ctx: Value) -> Response {
    match app.pages.render(template, ctx) {
        Ok(html) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, crate::ui::PAGE_CSP),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A page with one message: a result, or an error the user has to read (never one the
/// client should have received; those go back to the client).
pub fn message(
    app: &AppState,
    status: StatusCode,
    heading: &str,
    text: &str,
    code: Option<&str>,
) -> Response {
    page(
        app,
        status,
        "message.html",
        context! { heading, text, code, is_error => status.is_client_error() || status.is_server_error() },
    )
}

/// An OAuth error shown to the user: the request could not be trusted enough to send
/// the error back to the client.
pub fn error_page(app: &AppState, e: &OAuthError) -> Response {
    let status = match e.code {
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    message(
        app,
        status,
        "This request cannot continue",
        &e.description,
        Some(e.code),
    )
}

/// `303 See Other`: after a form POST the browser follows with a GET, never re-posting
/// credentials (RFC 9700 §4.12).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(l) => (StatusCode::SEE_OTHER, [(header::LOCATION, l)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The CSRF token a form on this page must carry.
pub struct FormCsrf {
    pub token: String,
    /// Set when the browser had no CSRF cookie: the page's response must set it.
    new_cookie: Option<HeaderValue>,
}

impl FormCsrf {
    pub fn for_request(app: &AppState, headers: &HeaderMap) -> FormCsrf {
        match cookies::read(headers, &app.cookies.csrf).filter(|c| c.len() == 43) {
            Some(existing) => FormCsrf {
                token: existing.to_string(),
                new_cookie: None,
            },
            None => {
                let token = secret::generate();
                let cookie = app
                    .cookies
                    .set(&app.cookies.csrf, &token, FORM_CSRF_TTL_SECS, false);
                FormCsrf {
                    token,
                    new_cookie: Some(cookie),
                }
            }
        }
    }

    /// Adds the cookie to `res` when this page created it.
    pub fn apply(&self, mut res: Response) -> Response {
        if let Some(c) = &self.new_cookie {
            res.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        res
    }
}

/// Whether a submitted form came from one of our pages: its `csrf_token` matches the
/// browser's CSRF cookie, and its `Origin`, when sent, is ours.
pub fn form_trusted(app: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    check_origin(headers, app).is_ok()
        && cookies::read(headers, &app.cookies.csrf)
            .is_some_and(|c| !submitted.is_empty() && secret::constant_time_eq(c, submitted))
}

/// A form body as `T`; anything that is not one is refused.
pub fn form<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, OAuthError> {
    let text = form_body(headers, body)?;
    serde_urlencoded::from_str(&text).map_err(|_| OAuthError::invalid_request("malformed form"))
}

/// Parses an `application/x-www-form-urlencoded` body; anything else is refused.
pub fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<String, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))
}
