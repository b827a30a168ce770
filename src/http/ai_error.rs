//! Tollgate's own refusals at the AI door, in the provider's error shape.
//!
//! Clients there are the providers' SDKs, which read `{"error": {...}}` and show its
//! message; a problem+json body would reach the user as a bare "Error code: 429". The
//! status and headers (`Retry-After`, `WWW-Authenticate`) stay; the body carries the
//! problem's message and its stable `code`. Answers relayed from the provider are left
//! as they are: only responses made by [`Problem`](super::problem::Problem) carry a
//! [`ProblemSummary`].

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::problem::ProblemSummary;
use crate::ai::config::ProviderKind;

/// `res` with its problem body rewritten for `kind`'s clients.
pub fn in_provider_shape(kind: ProviderKind, res: Response) -> Response {
    let Some(summary) = res.extensions().get::<ProblemSummary>().cloned() else {
        return res;
    };
    let (mut parts, _) = res.into_parts();
    let body = provider_error(kind, parts.status, &summary);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = axum::Json(body).into_response();
    Response::from_parts(parts, fresh.into_body())
}

fn provider_error(kind: ProviderKind, status: StatusCode, p: &ProblemSummary) -> serde_json::Value {
    match kind {
        // openai-python reads `message`, `type`, `code` and `param` from `error`.
        ProviderKind::OpenAi => json!({
            "error": {
                "message": p.message,
                "type": openai_type(status, p.code),
                "param": null,
                "code": p.code,
            }
        }),
        // Anthropic's SDKs read `error.type` and `error.message`; `code` is extra.
        ProviderKind::Anthropic => json!({
            "type": "error",
            "error": {
                "type": anthropic_type(status),
                "message": p.message,
                "code": p.code,
            }
        }),
    }
}

fn openai_type(status: StatusCode, code: &str) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 if code == "quota_exceeded" => "insufficient_quota",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// The error types Anthropic documents, by status.
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::problem::Problem;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn refusals_take_the_providers_shape_and_keep_status_and_headers() {
        let problem = || {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                "AI quota exceeded",
            )
            .with_detail("this call would pass the usd_per_month limit of 5 USD")
            .with_header(header::RETRY_AFTER, HeaderValue::from(60))
            .into_response()
        };
        let res = in_provider_shape(ProviderKind::OpenAi, problem());
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "60");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let b = body(res).await;
        assert_eq!(b["error"]["code"], "quota_exceeded");
        assert_eq!(b["error"]["type"], "insufficient_quota");
        assert_eq!(
            b["error"]["message"],
            "AI quota exceeded: this call would pass the usd_per_month limit of 5 USD"
        );
        let b = body(in_provider_shape(ProviderKind::Anthropic, problem())).await;
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], "rate_limit_error");
        assert_eq!(b["error"]["code"], "quota_exceeded");
    }

    #[tokio::test]
    async fn relayed_answers_are_left_alone() {
        let relayed = (StatusCode::BAD_REQUEST, "provider's own").into_response();
        let res = in_provider_shape(ProviderKind::OpenAi, relayed);
        assert_eq!(
            axum::body::to_bytes(res.into_body(), 100).await.unwrap(),
            "provider's own"
        );
    }
}
