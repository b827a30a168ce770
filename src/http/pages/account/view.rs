//! What the account page shows: every section read for the signed-in person, and the
//! pages a form answers with (the authenticator set-up, codes or a key shown once).

use http::{HeaderMap, StatusCode};
use minijinja::{Value, context};

use super::Signed;
use crate::app::AppState;
use crate::error::Error;
use crate::http::html;
use crate::http::pages::{form_page, rows};
use crate::identity::factors::TotpEnrolment;
use axum::response::Response;

/// The message for `?done=`, from a fixed list (anything else says nothing).
pub fn done(key: &str) -> Option<&'static str> {
    const DONE: [&str; 8] = [
        "email_sent",
        "password_changed",
        "session_revoked",
        "others_revoked",
        "consent_withdrawn",
        "unlinked",
        "key_revoked",
        "passkey_added",
    ];
    DONE.iter()
        .find(|k| **k == key)
        .map(|k| html::t(&format!("done_{k}")))
}

/// The whole page, with `error` or `notice` at the top.
pub async fn overview(
    app: &AppState,
    headers: &HeaderMap,
    signed: &Signed,
    error: Option<(StatusCode, String)>,
    notice: Option<&str>,
) -> Result<Response, Error> {
    let user_id = &signed.session.user_id;
    let user = signed.user(app).await?;
    let status = app.factors.status(user_id).await?;
    let passkeys: Vec<Value> = app
        .passkeys
        .list(user_id)
        .await?
        .into_iter()
        .map(|p| context! { id => p.id, name => p.name })
        .collect();
    let current = Some(signed.session.session_id.as_str());
    let sessions: Vec<Value> = app
        .sessions
        .list(user_id)
        .await?
        .iter()
        .map(|s| rows::session(s, current))
        .collect();
    let mut consents = Vec::new();
    for c in app.oidc.consents(user_id).await? {
        let name = app
            .oidc
            .client_name(&c.client_id)
            .await
            .unwrap_or_else(|| c.client_id.clone());
        consents.push(context! { client_id => c.client_id.clone(), name, scopes => c.scopes.clone(), granted_at => c.granted_at });
    }
    let labels: Vec<(String, String)> = app
        .federation
        .providers()
        .map(|(n, l)| (n.to_string(), l.to_string()))
        .collect();
    let label = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or(name.to_string(), |(_, l)| l.clone())
    };
    let identities: Vec<Value> = app
        .identity
        .linked(user_id)
        .await?
        .iter()
        .map(|l| {
            context! {
                provider => l.provider.clone(), label => label(&l.provider), subject => l.subject.clone(),
                email => l.email.clone(), linked_at => l.created_at,
            }
        })
        .collect();
    let now = crate::clock::now();
    let keys: Vec<Value> = app
        .api_keys
        .list(user_id)
        .await?
        .iter()
        .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now))
        .map(rows::api_key)
        .collect();
    let held = app
        .config
        .roles
        .scopes_for(user.roles.iter().map(String::as_str));
    let usage = super::super::usage::section(app, user_id, &user.roles).await?;
    let (code, error) = match error {
        Some((code, e)) => (code, Some((e, None))),
        None => (StatusCode::OK, None),
    };
    Ok(form_page(
        app,
        headers,
        code,
        "account.html",
        error,
        context! {
            email => signed.email.clone(), email_verified => user.email_verified,
            has_password => user.password_hash.is_some(),
            notice,
            totp => status.totp,
            recovery_codes_left => status.recovery_codes_left,
            passkeys => app.passkeys.available(),
            passkeys_available => app.passkeys.available(),
            passkeys_list => passkeys,
            sessions, consents, identities, keys,
            providers => labels.iter().map(|(n, l)| context! { name => n, label => l }).collect::<Vec<_>>(),
            scopes_held => held,
            key_days => crate::http::my_access::DEFAULT_KEY_DAYS,
            key_days_max => crate::http::my_access::MAX_KEY_DAYS,
            usage,
        },
    ))
}

/// The set-up page: the secret three ways, and the field for the first code.
pub fn setup(
    app: &AppState,
    headers: &HeaderMap,
    enrolment: &TotpEnrolment,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (code, error) = match error {
        Some((code, e)) => (code, Some((e, None))),
        None => (StatusCode::OK, None),
    };
    form_page(
        app,
        headers,
        code,
        "totp_setup.html",
        error,
        context! {
            secret => &enrolment.secret,
            otpauth_uri => &enrolment.otpauth_uri,
            qr => crate::ui::qr::svg(&enrolment.otpauth_uri),
        },
    )
}

/// The recovery codes, this once.
pub fn codes(app: &AppState, headers: &HeaderMap, codes: &[String]) -> Response {
    form_page(
        app,
        headers,
        StatusCode::OK,
        "recovery_codes.html",
        None,
        context! { codes => codes.to_vec() },
    )
}

/// A new API key, this once.
pub fn key_created(app: &AppState, headers: &HeaderMap, name: &str, key: &str) -> Response {
    form_page(
        app,
        headers,
        StatusCode::CREATED,
        "key_created.html",
        None,
        context! { name, key },
    )
}
