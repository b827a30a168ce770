//! What each form of the account page does, and the page shown when it is refused.

use axum::response::Response;
use http::HeaderMap;

use super::{AccountForm, Action, HERE, Signed, shown, view};
use crate::app::AppState;
use crate::error::Error;
use crate::http::html::see_other;
use crate::http::problem::Problem;
use crate::session::ClientInfo;

/// Back to the page, saying what was done (`view::done`).
fn done(key: &str) -> Response {
    see_other(&format!("{HERE}?done={key}"))
}

/// The scopes ticked on the key form: checkboxes named `scope:<scope>`.
fn scopes_of(body: &[u8]) -> Vec<String> {
    let mut scopes: Vec<String> = url::form_urlencoded::parse(body)
        .filter_map(|(k, _)| k.strip_prefix("scope:").map(str::to_string))
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

pub async fn act(
    app: &AppState,
    action: Action,
    info: &ClientInfo,
    headers: &HeaderMap,
    signed: &Signed,
    form: &AccountForm,
    body: &[u8],
) -> Result<Response, Error> {
    let user = signed.user(app).await?;
    let ctx = crate::audit::Context::user(&user.id, info.clone());
    let authenticated = signed.authenticated();
    let session_id = &signed.session.session_id;
    Ok(match action {
        Action::BeginTotp => {
            let enrolment = app
                .factors
                .begin_totp(&user, signed.session.auth_time)
                .await?;
            view::setup(app, headers, &enrolment, None)
        }
        Action::ConfirmTotp => {
            let list = app.factors.confirm_totp(&user, &form.code, &ctx).await?;
            view::codes(app, headers, &list)
        }
        Action::RecoveryCodes => {
            let list = app
                .factors
                .regenerate_recovery_codes(&user, authenticated, &ctx)
                .await?;
            view::codes(app, headers, &list)
        }
        Action::RemoveTotp => {
            app.factors.remove_totp(&user, authenticated, &ctx).await?;
            see_other(HERE)
        }
        Action::AddPasskey => {
            let credential = serde_json::from_str(&form.credential)
                .map_err(|_| Error::invalid("invalid_passkey", "the browser sent no passkey"))?;
            app.passkeys
                .register(&user, credential, Some(&form.name), &ctx)
                .await?;
            done("passkey_added")
        }
        Action::RemovePasskey => {
            app.passkeys
                .remove(&user, &form.id, authenticated, &ctx)
                .await?;
            see_other(HERE)
        }
        Action::ChangeEmail => {
            app.identity
                .request_email_change(&user.id, &form.password, &form.email, &ctx)
                .await?;
            done("email_sent")
        }
        Action::ChangePassword => {
            app.identity
                .change_password(
                    &user.id,
                    &form.password,
                    &form.new_password,
                    session_id,
                    &ctx,
                )
                .await?;
            done("password_changed")
        }
        Action::RevokeSession => {
            if form.id == *session_id {
                return Err(Error::invalid(
                    "current_session",
                    "this is the session in use: sign out instead",
                ));
            }
            if !app
                .sessions
                .end(&form.id, Some(&user.id), "revoked_by_user", &ctx)
                .await?
            {
                return Err(Error::NotFound("session"));
            }
            done("session_revoked")
        }
        Action::RevokeOtherSessions => {
            for s in app.sessions.list(&user.id).await? {
                if s.id != *session_id {
                    app.sessions
                        .end(&s.id, Some(&user.id), "revoked_by_user", &ctx)
                        .await?;
                }
            }
            done("others_revoked")
        }
        Action::WithdrawConsent => {
            if !app
                .oidc
                .withdraw_consent(&user.id, &form.client_id, &ctx)
                .await?
            {
                return Err(Error::NotFound("consent"));
            }
            done("consent_withdrawn")
        }
        Action::Unlink => {
            app.identity
                .unlink(&user, &form.provider, &form.subject, &ctx)
                .await?;
            done("unlinked")
        }
        Action::CreateKey => {
            let days = match form.days.trim() {
                "" => None,
                d => Some(d.parse::<u32>().map_err(|_| {
                    Error::invalid("invalid_expiry", "the lifetime is a number of days")
                })?),
            };
            let (key, record) = crate::http::my_access::create_own_key(
                app,
                &user.id,
                &form.name,
                &scopes_of(body),
                days,
                authenticated,
                &ctx,
            )
            .await?;
            view::key_created(app, headers, &record.name, &key)
        }
        Action::RevokeKey => {
            if !app.api_keys.revoke(&form.id, Some(&user.id), &ctx).await? {
                return Err(Error::NotFound("API key"));
            }
            done("key_revoked")
        }
    })
}

/// The page again after a refusal: the authenticator set-up for a wrong first code (the
/// secret stays the same), else the account page, saying why.
pub async fn refused(
    app: &AppState,
    action: Action,
    headers: &HeaderMap,
    signed: &Signed,
    problem: &Problem,
) -> Result<Response, Error> {
    let error = shown(problem);
    if action == Action::ConfirmTotp
        && let Some(enrolment) = app
            .factors
            .pending_totp(&signed.session.user_id, &signed.email)
            .await?
    {
        return Ok(view::setup(app, headers, &enrolment, Some(error)));
    }
    view::overview(app, headers, signed, Some(error), None).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_scopes_are_the_ticked_boxes() {
        let body = b"csrf_token=x&name=ci&scope%3Aai%3Achat=on&scope:read=on&scope:read=on&days=30";
        assert_eq!(super::scopes_of(body), vec!["ai:chat", "read"]);
    }
}
