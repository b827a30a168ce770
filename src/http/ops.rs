//! Operational endpoints: liveness, readiness (database reachable) and Prometheus metrics.
//!
//! `/metrics` can be kept from the public: `[metrics] listen` serves it only on a second
//! address (the main listener then answers 404), and `[metrics] token_env`/`token_file`
//! require `Authorization: Bearer <token>` of scrapers.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use super::problem::Problem;
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(public_metrics))
}

/// The router of the separate metrics listener (`[metrics] listen`).
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn public_metrics(state: State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics.listen.is_some() {
        return Problem::not_found().into_response();
    }
    metrics(state, headers).await
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => {
            Json(json!({ "status": "ready", "database": app.store.backend() })).into_response()
        }
        Err(e) => {
            // A database known to be down was logged once when it went (store::health).
            if !matches!(e, crate::store::StoreError::Unavailable) {
                tracing::warn!(error = %e, "readiness check failed");
            }
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database unreachable",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(1))
            .into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &app.config.metrics.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::secret::constant_time_eq(presented.trim(), token) {
            return Problem::unauthorized("unauthenticated", "A metrics token is required")
                .into_response();
        }
    }
    metrics::gauge!("tollgate_revoked_sessions").set(app.revocations.set().len() as f64);
    let mut res = app.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
