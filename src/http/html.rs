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
use super::extract::{ForeignOrigin, origin_of_request};
use crate::app::AppState;
use crate::oidc::error::OAuthError;
use crate::secret;

/// How long a CSRF cookie set for a sign-in form lives (sign-in replaces it with one
/// that lives as long as the session).
const FORM_CSRF_TTL_SECS: i64 = 2 * 3600;

/// A rendered page with the pages' security policy, never cached. Its referrer policy is
/// `same-origin`: a browser then sends our own `Origin` with the page's form posts
/// (under `no-referrer` it sends `Origin: null`), and nothing to other sites.
pub fn page(app: &AppState, status: StatusCode, template: &str, ctx: Value) -> Response {
    match app.pages.render(template, ctx) {
        Ok(html) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, app.pages.page_csp()),
                (header::REFERRER_POLICY, "same-origin"),
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

/// A message of the current request's language (`ui::messages`).
pub fn t(key: &str) -> &'static str {
    crate::ui::current_locale().text(key)
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

/// A message page with a button to go on (`href`, labelled `label`).
pub fn message_with_link(
    app: &AppState,
    status: StatusCode,
    heading: &str,
    text: &str,
    href: &str,
    label: &str,
) -> Response {
    page(
        app,
        status,
        "message.html",
        context! { heading, text, link => context! { href, label }, is_error => status.is_client_error() },
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
        t("request_failed_title"),
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

/// Why a submitted form is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormRefusal {
    /// The browser says it came from another site, or from another origin.
    Origin(ForeignOrigin),
    /// The `csrf_token` field does not match the browser's CSRF cookie (an old page, or
    /// a form some other site built).
    Token,
}

/// Whether a submitted form came from one of our pages: the browser's headers say so
/// ([`origin_of_request`]), and its `csrf_token` matches the browser's CSRF cookie.
pub fn form_trusted(
    app: &AppState,
    headers: &HeaderMap,
    submitted: &str,
) -> Result<(), FormRefusal> {
    let matches = cookies::read(headers, &app.cookies.csrf)
        .is_some_and(|c| !submitted.is_empty() && secret::constant_time_eq(c, submitted));
    match origin_of_request(headers, app) {
        // Only a form with this browser's token was built by a page of ours (opened at
        // that other address): anyone else's form gets no advice naming their origin.
        Err(ForeignOrigin::Other(_)) if !matches => Err(FormRefusal::Token),
        Err(foreign) => Err(FormRefusal::Origin(foreign)),
        Ok(()) if matches => Ok(()),
        Ok(()) => Err(FormRefusal::Token),
    }
}

/// A form of one of our pages: it names the CSRF token it carries.
pub trait OurForm: serde::de::DeserializeOwned {
    fn csrf_token(&self) -> &str;
}

/// Implements [`OurForm`] for form structs with a `csrf_token: String` field.
macro_rules! our_forms {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::http::html::OurForm for $t {
            fn csrf_token(&self) -> &str {
                &self.csrf_token
            }
        })*
    };
}
pub(crate) use our_forms;

/// Why a posted form is not handled.
pub enum NotHandled {
    /// Not a form body, or not this form's fields: the error page to answer with.
    Malformed(Box<Response>),
    /// Not from one of our pages.
    Refused(FormRefusal),
}

impl NotHandled {
    /// The page to answer with: the error page, or the refusal page.
    pub fn page(self, app: &AppState) -> Response {
        match self {
            NotHandled::Malformed(res) => *res,
            NotHandled::Refused(why) => refusal_page(app, &why),
        }
    }
}

/// Every hosted form's first step: the body parsed as `T`, and the browser's headers and
/// CSRF token checked ([`form_trusted`]) before anything is looked at.
pub fn posted<T: OurForm>(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, NotHandled> {
    let form: T =
        form(headers, body).map_err(|e| NotHandled::Malformed(Box::new(error_page(app, &e))))?;
    form_trusted(app, headers, form.csrf_token()).map_err(NotHandled::Refused)?;
    Ok(form)
}

/// The page for a form that is not trusted, saying what to do about it.
pub fn refusal_page(app: &AppState, why: &FormRefusal) -> Response {
    let (text, hint) = why.explain(app);
    page(
        app,
        StatusCode::FORBIDDEN,
        "message.html",
        context! { heading => t("error_403"), text, hint, code => "csrf_failed", is_error => true },
    )
}

impl FormRefusal {
    /// What the person is told: the problem, and for a foreign origin the address to use
    /// (and the setting for whoever runs the service).
    pub fn explain(&self, app: &AppState) -> (String, Option<String>) {
        let locale = crate::ui::current_locale();
        match self {
            FormRefusal::Origin(ForeignOrigin::Other(origin)) => {
                let public = app.config.public_origin();
                let values = [("origin", origin.as_str()), ("public", public.as_str())];
                (
                    crate::ui::messages::fill(locale.text("err_origin"), &values),
                    Some(crate::ui::messages::fill(
                        locale.text("err_origin_admin"),
                        &values,
                    )),
                )
            }
            _ => (locale.text("err_form").to_string(), None),
        }
    }
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
