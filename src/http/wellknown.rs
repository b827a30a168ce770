//! `/.well-known/*`: the JWKS, the OpenID Connect discovery document and its RFC 8414
//! twin, and the metadata of each protected resource (RFC 9728).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::problem::Problem;
use crate::app::AppState;
use crate::authz::STANDARD_SCOPES;
use crate::gateway::resource;
use crate::oidc::agents::Registration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(protected_resource),
        )
}

/// A protected resource's metadata: the resource, Tollgate as its authorization server,
/// the scopes its routes require.
async fn protected_resource(State(app): State<AppState>, Path(path): Path<String>) -> Response {
    let public_url = &app.config.public_url;
    let requested = format!("{}/{path}", resource::METADATA_PREFIX);
    let Some(id) = resource::resource_of_metadata_path(public_url, &requested) else {
        return Problem::not_found().into_response();
    };
    match app.config.routes.resource(&id) {
        Some(scopes) => Json(resource::metadata(&id, public_url, &scopes)).into_response(),
        None => Problem::not_found()
            .with_detail("no route with resource = true has this path")
            .into_response(),
    }
}

async fn jwks(State(app): State<AppState>) -> Json<Value> {
    Json(app.keys.current().jwks.clone())
}

/// The provider metadata (OpenID Connect Discovery 1.0, RFC 8414, one document for both):
/// every endpoint and what each supports.
async fn discovery(State(app): State<AppState>) -> Json<Value> {
    let issuer = &app.config.public_url;
    let mut scopes: Vec<String> = STANDARD_SCOPES.iter().map(|s| s.to_string()).collect();
    for s in app.config.roles.scopes_for(app.config.roles.names()) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let endpoint = |path: &str| format!("{issuer}{path}");
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint("/oauth2/authorize"),
        "token_endpoint": endpoint("/oauth2/token"),
        "userinfo_endpoint": endpoint("/oauth2/userinfo"),
        "jwks_uri": endpoint("/.well-known/jwks.json"),
        "introspection_endpoint": endpoint("/oauth2/introspect"),
        "revocation_endpoint": endpoint("/oauth2/revoke"),
        "end_session_endpoint": endpoint("/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            crate::oidc::clients::TOKEN_EXCHANGE, crate::oidc::clients::DEVICE_CODE,
        ],
        "device_authorization_endpoint": endpoint("/oauth2/device_authorization"),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
            "at_hash", "email", "email_verified", "preferred_username", "roles",
        ],
        "acr_values_supported": ["1", "2"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
        "ui_locales_supported": ["en"],
    });
    let oauth = &app.config.oauth;
    if oauth.registration != Registration::Off {
        doc["registration_endpoint"] = endpoint("/oauth2/register").into();
    }
    if oauth.client_id_metadata {
        doc["client_id_metadata_document_supported"] = true.into();
    }
    Json(doc)
}
