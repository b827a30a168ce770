//! RFC 9457 problem+json: the one shape of every error response (OAuth endpoints aside).
//!
//! Domain errors map to a status here and nowhere else. 401s carry `WWW-Authenticate`
//! (RFC 6750 style), server-side failures are logged and answered without detail.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::admission::Refusal;
use crate::ai::charge::AiRefusal;
use crate::ai::exchange::ExchangeFailure;
use crate::ai::request::RequestError;
use crate::error::Error;
use crate::identity::signin::SignInRefusal;
use crate::limits::{Allowance, LimitRefusal};
use crate::outbound::SendError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: String,
    pub detail: Option<String>,
    www_authenticate: Option<&'static str>,
    /// More response headers (`Retry-After`, `RateLimit`, …).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Extension members of the body (RFC 9457 §3.2), e.g. `mfa_token`; boxed, since
    /// few problems have any and every handler's error carries a `Problem`.
    members: Option<Box<serde_json::Map<String, serde_json::Value>>>,
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
            members: None,
        }
    }

    pub fn with_member(
        mut self,
        name: &'static str,
        value: impl Into<serde_json::Value>,
    ) -> Problem {
        self.members
            .get_or_insert_default()
            .insert(name.to_string(), value.into());
        self
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

    /// 401 `mfa_required` for a user who must authenticate more (RFC 9470): a second
    /// factor (`acr_values="2"`) and/or a sign-in within `max_age` seconds. The body
    /// names the same, and where to raise the session.
    pub fn step_up(mfa: bool, max_age: Option<u64>) -> Problem {
        let (detail, description) = match (mfa, max_age) {
            (true, None) => (
                "this needs a second factor: POST /auth/mfa/verify".to_string(),
                "A second factor is required",
            ),
            (true, Some(secs)) => (
                format!(
                    "this needs a second factor within the last {secs} s: POST /auth/mfa/verify"
                ),
                "A recent second factor is required",
            ),
            (false, secs) => (
                format!(
                    "this needs a sign-in within the last {} s: POST /auth/mfa/verify, or sign in again",
                    secs.unwrap_or(0)
                ),
                "A more recent authentication is required",
            ),
        };
        let mut challenge = format!(
            r#"Bearer realm="tollgate", error="insufficient_user_authentication", error_description="{description}""#
        );
        let mut p =
            Problem::new(StatusCode::UNAUTHORIZED, "mfa_required", description).with_detail(detail);
        if mfa {
            challenge.push_str(r#", acr_values="2""#);
            p = p.with_member("acr_values", json!("2"));
        }
        if let Some(secs) = max_age {
            challenge.push_str(&format!(r#", max_age="{secs}""#));
            p = p.with_member("max_age", json!(secs));
        }
        match HeaderValue::from_str(&challenge) {
            Ok(v) => p.with_header(header::WWW_AUTHENTICATE, v),
            Err(_) => p,
        }
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
            Error::AccountDisabled | Error::EmailNotVerified | Error::MfaEnrolmentRequired => {
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
            Error::StepUpRequired { mfa, max_age } => Problem::step_up(mfa, max_age),
            Error::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, code, title),
            Error::Unavailable(source) => {
                // A database known to be down was logged once when it went (store::health).
                if matches!(source, crate::store::StoreError::Unavailable) {
                    tracing::debug!("refused: the database is down");
                } else {
                    tracing::error!(error = %source, "storage unavailable");
                }
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "Service temporarily unavailable",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from(1))
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
        let message = match &self.detail {
            Some(d) => format!("{}: {d}", self.title),
            None => self.title.clone(),
        };
        let mut body =
            json!({ "status": self.status.as_u16(), "title": self.title, "code": self.code });
        if let Some(d) = self.detail {
            body["detail"] = d.into();
        }
        for (name, value) in self.members.into_iter().flat_map(|m| *m) {
            body[name] = value;
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
        res.extensions_mut().insert(ProblemSummary {
            code: self.code,
            message,
        });
        res
    }
}

/// What a problem response said, kept on the response for doors whose clients expect
/// another error shape (the AI proxy answers in the provider's).
#[derive(Debug, Clone)]
pub struct ProblemSummary {
    pub code: &'static str,
    /// The title, then the detail when there is one.
    pub message: String,
}

/// Handler result type.
pub type ApiResult<T> = Result<T, Problem>;

/// A rate limit refused the request (429, with its fields), or the shared counters
/// cannot be reached and limits fail closed (503).
impl From<LimitRefusal> for Problem {
    fn from(r: LimitRefusal) -> Problem {
        match r {
            LimitRefusal::Limited(v) => {
                metrics::counter!("tollgate_rate_limited_total", "rule" => v.rule.clone()).increment(1);
                let retry = retry_secs(v.decision.retry_after_ms);
                let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests")
                    .with_detail(format!("limit '{}' reached; retry in {retry} s", v.rule))
                    .with_header(header::RETRY_AFTER, HeaderValue::from(retry));
                for (name, value) in rate_limit_fields(&v) {
                    p = p.with_header(name, value);
                }
                p
            }
            LimitRefusal::Unavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate_limiter_unavailable",
                "Rate limiter unavailable",
            )
            .with_detail("the shared rate-limit store cannot be reached and limits are configured to fail closed")
            .with_header(header::RETRY_AFTER, HeaderValue::from(1)),
        }
    }
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_secs(ms: i64) -> i64 {
    ((ms + 999) / 1000).max(1)
}

/// The `RateLimit-Policy` and `RateLimit` fields of the tightest rule that applied.
pub fn rate_limit_fields(v: &Allowance) -> Vec<(HeaderName, HeaderValue)> {
    let policy = format!(
        "\"{}\";q={};w={}",
        v.rule,
        v.quota.limit,
        (v.quota.window_ms / 1000).max(1)
    );
    let state = format!(
        "\"{}\";r={};t={}",
        v.rule,
        v.decision.remaining,
        retry_secs(v.decision.reset_ms.max(v.decision.retry_after_ms))
    );
    match (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        (Ok(p), Ok(s)) => vec![
            (HeaderName::from_static("ratelimit-policy"), p),
            (HeaderName::from_static("ratelimit"), s),
        ],
        _ => Vec::new(),
    }
}

/// A sign-in step refused: by a limit (429 with its fields), or by the account.
impl From<SignInRefusal> for Problem {
    fn from(r: SignInRefusal) -> Problem {
        match r {
            SignInRefusal::Limited(r) => r.into(),
            SignInRefusal::Denied(e) => e.into(),
            SignInRefusal::SecondFactorRequired { token, methods } => {
                Problem::unauthorized("mfa_required", "A second factor is required")
                    .with_detail("send a code to /auth/login/mfa with the mfa_token")
                    .with_member("mfa_token", token)
                    .with_member("methods", methods)
            }
        }
    }
}

/// A caller refused admission: 401 without an acceptable credential, 403 without a scope
/// or when this kind of caller is not admitted, 429 over its own limits.
impl From<Refusal> for Problem {
    fn from(why: Refusal) -> Problem {
        match why {
            Refusal::Unauthenticated { code } if code == "unauthenticated" => {
                Problem::unauthorized(code, unauthenticated_title(code))
            }
            Refusal::Unauthenticated { code } => {
                Problem::invalid_token(code, unauthenticated_title(code))
            }
            Refusal::InsufficientScope { missing } => Problem::insufficient_scope(&missing),
            Refusal::Forbidden { code } => {
                let title = match code {
                    "client_not_allowed" => "This route does not admit this client's tokens",
                    "email_unverified" => "This route needs a verified email address",
                    _ => "This route is for services only",
                };
                Problem::new(StatusCode::FORBIDDEN, code, title)
            }
            Refusal::StepUp { mfa, max_age } => Problem::step_up(mfa, max_age),
            Refusal::Limited(r) => r.into(),
        }
    }
}

fn unauthenticated_title(code: &str) -> &'static str {
    match code {
        "token_expired" => "the access token has expired",
        "session_revoked" => "the session has been revoked",
        "invalid_token" => "the access token is invalid",
        "invalid_audience" => "the access token was issued for another resource",
        "invalid_refresh_token" | "refresh_token_reused" => "the session has ended; sign in again",
        _ => "authentication required",
    }
}

/// What the AI door answers when no provider answer is relayed (a failed send is the
/// gateway's `upstream_failure`).
impl From<ExchangeFailure> for Problem {
    fn from(failure: ExchangeFailure) -> Problem {
        match failure {
            ExchangeFailure::InvalidTarget => {
                Problem::bad_request("invalid_path", "unusable request target")
            }
            ExchangeFailure::KeyRefused => Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream_auth_failed",
                "The AI provider refused the gateway's credentials",
            ),
            ExchangeFailure::Unreadable => Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream_invalid_response",
                "The AI provider answered in a form the gateway cannot check",
            ),
            ExchangeFailure::Upstream(e) => e.into(),
        }
    }
}

/// An outbound exchange that failed: 504 for time, 502 for an upstream that cannot be
/// reached or broke it, 408 or 400 when it was the client's body.
impl From<SendError> for Problem {
    fn from(e: SendError) -> Problem {
        let (status, code, title) = match e {
            SendError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream did not answer in time",
            ),
            SendError::Unreachable(_) | SendError::Broken(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "The upstream is unavailable",
            ),
            SendError::ClientStalled => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body stopped arriving",
            ),
            SendError::ClientBody => (
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "The request body could not be read",
            ),
        };
        Problem::new(status, code, title)
    }
}

/// An AI call refused before it was forwarded: 400 (the body), 403 (the model), 429 (a
/// quota), 503 (the counters cannot be reached).
impl From<AiRefusal> for Problem {
    fn from(why: AiRefusal) -> Problem {
        match why {
            // The pattern that matched stays private: naming it would teach how to avoid it.
            AiRefusal::Request(RequestError::Denied(_)) => Problem::bad_request(
                "prompt_rejected",
                "the prompt matches a pattern this service refuses",
            ),
            AiRefusal::Request(e) => {
                let code = match &e {
                    RequestError::PromptTooLong { .. } => "prompt_rejected",
                    RequestError::Unmeterable(_) => "unmeterable_request",
                    RequestError::OutputOverCap { .. } => "max_output_tokens_exceeded",
                    _ => "invalid_request",
                };
                Problem::bad_request(code, e.to_string())
            }
            AiRefusal::Model(detail) => Problem::new(
                StatusCode::FORBIDDEN,
                "model_not_allowed",
                "Model not allowed",
            )
            .with_detail(detail),
            AiRefusal::Quota {
                dimension,
                limit,
                retry_after_secs,
                never_fits,
            } => {
                let title = if dimension.code() == "rate_limited" {
                    "Too many AI requests"
                } else {
                    "AI quota exceeded"
                };
                Problem::new(StatusCode::TOO_MANY_REQUESTS, dimension.code(), title)
                    .with_detail(format!(
                        "this call{} would pass the {} limit of {}{}",
                        if never_fits { " alone" } else { "" },
                        dimension.name(),
                        limit_display(dimension.name(), limit),
                        if never_fits {
                            " (its worst case is the prompt estimate plus the output bound: send less or ask for fewer output tokens)"
                        } else {
                            ""
                        }
                    ))
                    .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
            }
            AiRefusal::LedgerFull => {
                tracing::warn!("AI call refused: the ledger spill file is nearly full");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "Usage cannot be recorded right now",
                )
                .with_detail(
                    "the database has been unreachable long enough to fill the ledger's spill file",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            }
            AiRefusal::Unavailable(e) => {
                tracing::warn!(error = %e, "AI quota check failed");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "quota_unavailable",
                    "Quotas cannot be checked right now",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
        }
    }
}

fn limit_display(name: &str, limit: i64) -> String {
    if name == "usd_per_month" {
        format!("{:.6} USD", limit as f64 / crate::ai::config::PICO_PER_USD)
    } else {
        limit.to_string()
    }
}
