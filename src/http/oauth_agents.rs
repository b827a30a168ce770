//! `/oauth2/register` (RFC 7591) and `/oauth2/device_authorization` (RFC 8628): the
//! endpoints agents use to become clients and to start a sign-in on another device.
//! Errors are in the OAuth JSON format their RFCs name.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};

use super::extract::Client;
use super::oauth::OAuthFailure;
use super::problem::Problem;
use crate::app::AppState;
use crate::audit::Context;
use crate::oidc::error::OAuthError;
use crate::oidc::registration::{self, ClientMetadata, Closed};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/register", post(register))
        .route("/oauth2/device_authorization", post(device_authorization))
}

/// Starts a device authorization (RFC 8628 §3.1): the client authenticates as at the
/// token endpoint (a public client by its id).
async fn device_authorization(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (client, params) = match super::oauth::authenticated(&app, &headers, &body, &info).await {
        Ok(c) => c,
        Err(e) => return OAuthFailure(e).into_response(),
    };
    match app.oidc.start_device(&client, &params).await {
        Ok(start) => ([(header::CACHE_CONTROL, "no-store")], Json(start)).into_response(),
        Err(e) => OAuthFailure(e).into_response(),
    }
}

/// Registers a client: open to anyone (`open`), or to holders of the initial access
/// token (`token`); absent (404) when registration is off.
async fn register(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = super::extract::bearer_token(&headers).ok().flatten();
    match registration::admit(&app.config.oauth.registration, bearer) {
        Ok(()) => {}
        Err(Closed::Off) => {
            return Problem::not_found()
                .with_detail("dynamic client registration is off ([oauth] dynamic_registration)")
                .into_response();
        }
        Err(Closed::Refused(e)) => return OAuthFailure(e).into_response(),
    }
    // RFC 7591 §3.1: the metadata is JSON (and a cross-site form cannot send that
    // without asking first).
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return OAuthFailure(OAuthError::invalid_client_metadata(
            "send the metadata as Content-Type: application/json",
        ))
        .into_response();
    }
    let metadata = match ClientMetadata::parse(&body) {
        Ok(m) => m,
        Err(e) => return OAuthFailure(e).into_response(),
    };
    let scopes = app.config.routes.resource_scopes();
    match app
        .oidc
        .register(metadata, &scopes, &Context::anonymous(info))
        .await
    {
        Ok(doc) => (
            StatusCode::CREATED,
            [(header::CACHE_CONTROL, "no-store")],
            Json(doc),
        )
            .into_response(),
        Err(e) => OAuthFailure(e).into_response(),
    }
}
