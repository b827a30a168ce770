//! `/ui/account`: the signed-in person's account page. For now its second-factor
//! sections: set up an authenticator app (the secret, its `otpauth://` URI and a QR code
//! rendered here as SVG, then a first code), see how many recovery codes are left, make
//! new ones, remove the app; add passkeys (with `passkey.js`), name and remove them. The rules are the API's (`identity::factors`): setting up
//! needs a recent sign-in, removing or new codes a recent second factor; a page that
//! needs one sends the browser to the step-up page (`/ui/mfa`) and back here.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::{explain_code, form_page};
use crate::app::AppState;
use crate::error::Error;
use crate::http::browser::browser_session;
use crate::http::credentials::Resolved;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, see_other};
use crate::http::problem::Problem;
use crate::identity::factors::TotpEnrolment;
use crate::oidc::authorize::BrowserSession;
use crate::session::ClientInfo;
use crate::store::UserRecord;

const HERE: &str = "/ui/account";

#[derive(Deserialize, Default)]
#[serde(default)]
struct AccountForm {
    csrf_token: String,
    code: String,
    /// A new passkey (`toJSON()`, put in by `passkey.js`) and its name.
    credential: String,
    name: String,
    /// The passkey to remove.
    id: String,
}

html::our_forms!(AccountForm);

/// What a form on this page asks for.
#[derive(Clone, Copy)]
enum Action {
    BeginTotp,
    ConfirmTotp,
    RemoveTotp,
    RecoveryCodes,
    AddPasskey,
    RemovePasskey,
}

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (browser, resolved) = browser_session(&app, &headers).await;
    let res = match browser {
        None => see_other("/ui/login?rd=%2Fui%2Faccount"),
        Some((session, email)) => overview(&app, &headers, &session, &email, None)
            .await
            .unwrap_or_else(|e| Problem::from(e).into_response()),
    };
    with_session_cookies(&app, res, &resolved)
}

/// The page: who is signed in and the second factors, with `error` shown.
async fn overview(
    app: &AppState,
    headers: &HeaderMap,
    session: &BrowserSession,
    email: &str,
    error: Option<(StatusCode, String)>,
) -> Result<Response, Error> {
    let status = app.factors.status(&session.user_id).await?;
    let passkeys: Vec<_> = app
        .passkeys
        .list(&session.user_id)
        .await?
        .into_iter()
        .map(|p| context! { id => p.id, name => p.name })
        .collect();
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
            email,
            totp => status.totp,
            recovery_codes_left => status.recovery_codes_left,
            passkeys => app.passkeys.available(),
            passkeys_available => app.passkeys.available(),
            passkeys_list => passkeys,
        },
    ))
}

/// The set-up page: the secret three ways, and the field for the first code.
fn setup(
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
fn codes(app: &AppState, headers: &HeaderMap, codes: &[String]) -> Response {
    form_page(
        app,
        headers,
        StatusCode::OK,
        "recovery_codes.html",
        None,
        context! { codes => codes.to_vec() },
    )
}

/// Every form of the page: checked like every hosted form, for the browser's session.
async fn submit(
    app: AppState,
    action: Action,
    info: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: AccountForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let (browser, resolved) = browser_session(&app, &headers).await;
    let Some((session, email)) = browser else {
        return with_session_cookies(&app, see_other("/ui/login?rd=%2Fui%2Faccount"), &resolved);
    };
    let res = match act(&app, action, &info, &headers, &session, &resolved, &form).await {
        Ok(res) => res,
        Err(Error::StepUpRequired { mfa, .. }) => see_other(if mfa {
            "/ui/mfa?acr=2&rd=%2Fui%2Faccount"
        } else {
            "/ui/mfa?rd=%2Fui%2Faccount"
        }),
        Err(Error::Invalid {
            code: "reauthentication_required",
            ..
        }) => see_other("/ui/mfa?rd=%2Fui%2Faccount"),
        Err(e) => {
            let problem = Problem::from(e);
            if problem.status.is_server_error() {
                return problem.into_response();
            }
            let error = (problem.status, explain_code(problem.code).to_string());
            let shown = match action {
                Action::ConfirmTotp => {
                    match app.factors.pending_totp(&session.user_id, &email).await {
                        Ok(Some(enrolment)) => Ok(setup(&app, &headers, &enrolment, Some(error))),
                        Ok(None) => overview(&app, &headers, &session, &email, Some(error)).await,
                        Err(e) => Err(e),
                    }
                }
                _ => overview(&app, &headers, &session, &email, Some(error)).await,
            };
            shown.unwrap_or_else(|e| Problem::from(e).into_response())
        }
    };
    with_session_cookies(&app, res, &resolved)
}

async fn act(
    app: &AppState,
    action: Action,
    info: &ClientInfo,
    headers: &HeaderMap,
    session: &BrowserSession,
    resolved: &Resolved,
    form: &AccountForm,
) -> Result<Response, Error> {
    let user = account(app, &session.user_id).await?;
    let ctx = crate::audit::Context::user(&user.id, info.clone());
    let authenticated = match resolved.principal.as_ref() {
        Some(p) => p.authenticated(),
        None => Default::default(),
    };
    Ok(match action {
        Action::BeginTotp => {
            let enrolment = app.factors.begin_totp(&user, session.auth_time).await?;
            setup(app, headers, &enrolment, None)
        }
        Action::ConfirmTotp => {
            let list = app.factors.confirm_totp(&user, &form.code, &ctx).await?;
            codes(app, headers, &list)
        }
        Action::RecoveryCodes => {
            let list = app
                .factors
                .regenerate_recovery_codes(&user, authenticated, &ctx)
                .await?;
            codes(app, headers, &list)
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
            see_other(HERE)
        }
        Action::RemovePasskey => {
            app.passkeys
                .remove(&user, &form.id, authenticated, &ctx)
                .await?;
            see_other(HERE)
        }
    })
}

async fn account(app: &AppState, user_id: &str) -> Result<UserRecord, Error> {
    app.store
        .user_by_id(user_id)
        .await?
        .ok_or(Error::SessionRevoked)
}

/// The handler of each form: the same checks (`submit`), one action.
macro_rules! form_handlers {
    ($($name:ident => $action:expr),* $(,)?) => {$(
        pub async fn $name(
            State(app): State<AppState>,
            Client(info): Client,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            submit(app, $action, info, headers, body).await
        }
    )*};
}

form_handlers!(
    begin_totp => Action::BeginTotp,
    confirm_totp => Action::ConfirmTotp,
    remove_totp => Action::RemoveTotp,
    add_passkey => Action::AddPasskey,
    remove_passkey => Action::RemovePasskey,
    recovery_codes => Action::RecoveryCodes,
);
