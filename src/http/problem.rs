//! RFC 9457 problem+json: the one shape of every error response (OAuth endpoints aside).
//!
//! Domain errors map to a status here and nowhere else. 401s carry `WWW-Authenticate`
//! (RFC 6750 style), server-side failures are logged and answered without detail.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::Error;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: String,
    pub detail: Option<String>,
    www_authenticate: Option<&'static str>,
    /// More response headers (`Retry-After`, `RateLimit`, …).
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            title: title.into(),
            detail: None,
            www_authenticate: None,
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    fn challenge(mut self, value: &'static str) -> Problem {
        self.www_authenticate = Some(value);
        self
    }

    pub fn unauthorized(code: &'static str, title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, code, title).challenge(r#"Bearer realm="tollgate""#)
    }

    /// 401 for a presented credential that was refused (RFC 6750 §3.1 `invalid_token`).
    pub fn invalid_token(code: &'static str, title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, code, title)
            .challenge(r#"Bearer realm="tollgate", error="invalid_token""#)
    }

    /// 403 for a caller without every scope a route requires (RFC 6750 §3.1).
    pub fn insufficient_scope(missing: &[String]) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "The credential lacks a required scope",
        )
        .with_detail(format!("missing scopes: {}", missing.join(" ")))
        .challenge(r#"Bearer realm="tollgate", error="insufficient_scope""#)
    }

    pub fn csrf_failed() -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "csrf_failed", "CSRF check failed")
            .with_detail("cookie-authenticated requests that change state must send X-CSRF-Token equal to the CSRF cookie")
    }

    pub fn not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, "Invalid request").with_detail(detail)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let invalid_token = r#"Bearer realm="tollgate", error="invalid_token""#;
        let title = e.to_string();
        let code = e.code();
        match e {
            Error::Invalid { detail, .. } => {
                Problem::new(StatusCode::BAD_REQUEST, code, "Invalid request").with_detail(detail)
            }
            Error::EmailTaken => Problem::new(StatusCode::CONFLICT, code, title),
            Error::InvalidCredentials
            | Error::Unauthenticated
            | Error::InvalidRefreshToken
            | Error::RefreshTokenReused => Problem::unauthorized(code, title),
            Error::InvalidToken | Error::TokenExpired | Error::SessionRevoked => {
                Problem::new(StatusCode::UNAUTHORIZED, code, title).challenge(invalid_token)
            }
            Error::AccountDisabled | Error::EmailNotVerified => {
                Problem::new(StatusCode::FORBIDDEN, code, title)
            }
            Error::Locked { retry_after_secs } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, code, title)
                    .with_detail(format!("retry in {retry_after_secs} s"))
                    .with_header(
                        header::RETRY_AFTER,
                        HeaderValue::from(retry_after_secs.max(1)),
                    )
            }
            Error::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, code, title),
            Error::Unavailable(source) => {
                tracing::error!(error = %source, "storage unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "Service temporarily unavailable",
                )
            }
            Error::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "Internal server error",
                )
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        let status = r.status();
        let detail = r.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(status, "payload_too_large", "Request body too large")
                    .with_detail(detail)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Problem::new(status, "unsupported_media_type", "Expected a JSON body")
                    .with_detail("send Content-Type: application/json")
            }
            _ => match r {
                JsonRejection::JsonSyntaxError(_) => Problem::bad_request("malformed_json", detail),
                _ => Problem::bad_request("invalid_request", detail),
            },
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body =
            json!({ "status": self.status.as_u16(), "title": self.title, "code": self.code });
        if let Some(d) = self.detail {
            body["detail"] = d.into();
        }
        let mut res = (self.status, Json(body)).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(v) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        res
    }
}

/// Handler result type.
pub type ApiResult<T> = Result<T, Problem>;
