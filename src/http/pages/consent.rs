//! `/ui/consent`: a person approves or denies an application's request (OpenID Connect).
//! The page lists what each scope reveals; the decision continues the pending
//! authorization, or answers the client `access_denied`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::login::LoginQuery;
use super::{form_page, pending_of};
use crate::app::AppState;
use crate::audit::{Context, Outcome};
use crate::http::browser::browser_session;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, error_page};
use crate::http::oauth::{proceed, reply_response};
use crate::oidc::authorize::Step;
use crate::oidc::error::OAuthError;
use crate::ui::{current_locale, describe_scope};

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConsentForm {
    csrf_token: String,
    flow: String,
    decision: String,
}

html::our_forms!(ConsentForm);

pub async fn page(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let pending = match pending_of(&app, q.flow.as_deref()) {
        Ok(Some(p)) => p,
        Ok(None) => return error_page(&app, &OAuthError::invalid_request("flow is missing")),
        Err(e) => return error_page(&app, &e),
    };
    let (browser, resolved) = browser_session(&app, &headers).await;
    let res = match &browser {
        None => proceed(&app, &pending, None, false, &info).await,
        Some((session, email)) => match app.oidc.step(&pending, Some(session), false).await {
            Ok((client, Step::Consent { scopes })) => {
                let locale = current_locale();
                let scopes: Vec<_> = scopes
                    .iter()
                    .map(|s| context! { name => s, description => describe_scope(s, locale) })
                    .collect();
                form_page(
                    &app,
                    &headers,
                    StatusCode::OK,
                    "consent.html",
                    None,
                    context! {
                        client_name => client.name.clone(), email, scopes,
                        registered => client.registered, resource => pending.resource.clone(),
                        flow => q.flow.unwrap_or_default(),
                    },
                )
            }
            Ok(_) => proceed(&app, &pending, Some(session), false, &info).await,
            Err(e) => error_page(&app, &e),
        },
    };
    with_session_cookies(&app, res, &resolved)
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: ConsentForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let pending = match app.oidc.open(&form.flow) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &e),
    };
    let (browser, resolved) = browser_session(&app, &headers).await;
    let res = match (&browser, form.decision.as_str()) {
        (None, _) => proceed(&app, &pending, None, false, &info).await,
        (Some((session, _)), "allow") => proceed(&app, &pending, Some(session), true, &info).await,
        (Some((session, _)), "deny") => {
            let entry = Context::user(&session.user_id, info.clone())
                .entry(
                    "oauth.consent_denied",
                    Outcome::Denied,
                    Some(&session.user_id),
                )
                .with("client_id", pending.client_id.as_str());
            if let Err(e) = app.store.append_audit(&entry).await {
                tracing::warn!(error = %e, "consent refusal not audited");
            }
            let e = OAuthError::access_denied("the user denied access");
            reply_response(&app, &app.oidc.refusal(&pending, &e))
        }
        (Some(_), _) => error_page(
            &app,
            &OAuthError::invalid_request("decision must be allow or deny"),
        ),
    };
    with_session_cookies(&app, res, &resolved)
}
