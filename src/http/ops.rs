//! Operational endpoints: liveness, readiness (database reachable) and Prometheus metrics.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::problem::Problem;
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
            tracing::warn!(error = %e, "readiness check failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Database unreachable",
            )
            .into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    metrics::gauge!("tollgate_revoked_sessions").set(app.revoked.len() as f64);
    let mut res = app.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
