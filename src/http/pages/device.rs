//! `/ui/device`: where a person types the code a device shows (RFC 8628 §3.3), signs in
//! if needed, sees which application asks for what, and allows or denies it. Typing is
//! rate-limited per address (`device-code-ip`); an unknown or expired code reads the
//! same as a wrong one.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::form_page;
use crate::app::AppState;
use crate::audit::Context;
use crate::http::browser::browser_session;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, see_other, t};
use crate::oidc::authorize::BrowserSession;
use crate::ui::{current_locale, describe_scope};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeviceForm {
    csrf_token: String,
    user_code: String,
    decision: String,
}

html::our_forms!(DeviceForm);

/// The code to show again in the entry field: what was typed, bounded and printable.
fn shown(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(16)
        .collect()
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    let (browser, resolved) = browser_session(&app, &headers).await;
    let typed = q.user_code.as_deref().map(shown).unwrap_or_default();
    let res = match browser {
        None => {
            let here = if typed.is_empty() {
                "/ui/device".to_string()
            } else {
                format!("/ui/device?user_code={typed}")
            };
            let rd: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            see_other(&format!("/ui/login?rd={rd}"))
        }
        Some((session, email)) if !typed.is_empty() => {
            confirm_or_retry(&app, &headers, &session, &email, &typed).await
        }
        Some(_) => entry(&app, &headers, StatusCode::OK, "", None),
    };
    with_session_cookies(&app, res, &resolved)
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: DeviceForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let (browser, resolved) = browser_session(&app, &headers).await;
    let Some((session, email)) = browser else {
        return see_other("/ui/login?rd=%2Fui%2Fdevice");
    };
    let typed = shown(&form.user_code);
    let res = match form.decision.as_str() {
        "" => confirm_or_retry(&app, &headers, &session, &email, &typed).await,
        decision @ ("allow" | "deny") => {
            let approve = decision == "allow";
            let ctx = Context::user(&session.user_id, info);
            match app
                .oidc
                .decide_device(&typed, &session, approve, &ctx)
                .await
            {
                Ok(true) if approve => html::message(
                    &app,
                    StatusCode::OK,
                    t("device_allowed_title"),
                    t("device_allowed_text"),
                    None,
                ),
                Ok(true) => html::message(
                    &app,
                    StatusCode::OK,
                    t("device_denied_title"),
                    t("device_denied_text"),
                    None,
                ),
                Ok(false) => entry(
                    &app,
                    &headers,
                    StatusCode::BAD_REQUEST,
                    &typed,
                    Some(t("device_code_invalid")),
                ),
                Err(e) => html::error_page(&app, &e.into()),
            }
        }
        _ => entry(
            &app,
            &headers,
            StatusCode::BAD_REQUEST,
            &typed,
            Some(t("device_code_invalid")),
        ),
    };
    with_session_cookies(&app, res, &resolved)
}

/// The confirmation for a pending code, or the entry form again saying it is not one.
async fn confirm_or_retry(
    app: &AppState,
    headers: &HeaderMap,
    session: &BrowserSession,
    email: &str,
    typed: &str,
) -> Response {
    let request = match app.oidc.device_request(typed).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return entry(
                app,
                headers,
                StatusCode::BAD_REQUEST,
                typed,
                Some(t("device_code_invalid")),
            );
        }
        Err(e) => return html::error_page(app, &e.into()),
    };
    let locale = current_locale();
    let user_scopes: Vec<&str> = session.scopes.iter().map(String::as_str).collect();
    let scopes: Vec<_> = crate::oidc::scope::grantable_by(&request.scopes, &user_scopes)
        .iter()
        .map(|s| context! { name => s, description => describe_scope(s, locale) })
        .collect();
    form_page(
        app,
        headers,
        StatusCode::OK,
        "device.html",
        None,
        context! {
            confirm => true, user_code => request.user_code, email, scopes,
            client_name => request.client.name.clone(),
            registered => request.client.registered,
            resource => request.resource,
        },
    )
}

/// The form to type a code into.
fn entry(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    typed: &str,
    error: Option<&str>,
) -> Response {
    form_page(
        app,
        headers,
        status,
        "device.html",
        error.map(|e| (e.to_string(), None)),
        context! { confirm => false, user_code => typed },
    )
}
