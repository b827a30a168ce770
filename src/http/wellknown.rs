//! `/.well-known/*`: the JWKS and the OpenID Connect discovery document.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
}

async fn jwks(State(app): State<AppState>) -> Json<Value> {
    Json(app.sessions.tokens().keys().current().jwks.clone())
}

/// The provider metadata this node can honour so far; the OIDC provider endpoints add
/// themselves here as they land.
async fn discovery(State(app): State<AppState>) -> Json<Value> {
    let issuer = &app.config.public_url;
    let mut scopes: Vec<String> = vec![
        "openid".into(),
        "profile".into(),
        "email".into(),
        "offline_access".into(),
    ];
    for s in app.config.roles.scopes_for(app.config.roles.names()) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "scopes_supported": scopes,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "amr", "email", "sid"],
    }))
}
