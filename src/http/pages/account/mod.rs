//! `/ui/account`: the signed-in person's own settings, one page in sections: profile
//! (email change, confirmed by mail), password, sessions (revoke one or every other),
//! second factors (authenticator app, recovery codes, passkeys), linked identities,
//! applications (withdraw consent), API keys (created with scopes they hold and an expiry,
//! shown once; revoked), AI usage (this month against the quota, a daily chart drawn as
//! SVG on the server), and deleting the account (`delete`).
//!
//! Each form posts to its own path and is checked like every hosted form; the rules are
//! the API's (`identity`, `session`, `identity::factors`). A form that needs a recent
//! sign-in or second factor sends the browser to the step-up page (`/ui/mfa`) and back.

mod actions;
mod delete;
mod view;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::app::AppState;
use crate::error::Error;
use crate::http::browser::browser_session;
use crate::http::credentials::Resolved;
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, see_other};
use crate::http::problem::Problem;
use crate::oidc::authorize::BrowserSession;
use crate::session::ClientInfo;
use crate::store::UserRecord;

pub use delete::{delete_page, delete_submit};

const HERE: &str = "/ui/account";
const SIGN_IN_HERE: &str = "/ui/login?rd=%2Fui%2Faccount";

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AccountForm {
    csrf_token: String,
    code: String,
    /// A new passkey (`toJSON()`, put in by `passkey.js`) and its name; a key's name.
    credential: String,
    name: String,
    /// The passkey, session or key the form is about.
    id: String,
    /// The new address of an email change.
    email: String,
    /// The current password (email and password changes ask for it).
    password: String,
    new_password: String,
    /// A new key's lifetime in days.
    days: String,
    client_id: String,
    provider: String,
    subject: String,
    // A new key's scopes are checkboxes named `scope:<scope>` (`actions::scopes_of`).
}

html::our_forms!(AccountForm);

/// What a form on this page asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    BeginTotp,
    ConfirmTotp,
    RemoveTotp,
    RecoveryCodes,
    AddPasskey,
    RemovePasskey,
    ChangeEmail,
    ChangePassword,
    RevokeSession,
    RevokeOtherSessions,
    WithdrawConsent,
    Unlink,
    CreateKey,
    RevokeKey,
}

/// The signed-in person a form or page is for.
struct Signed {
    session: BrowserSession,
    email: String,
    resolved: Resolved,
}

impl Signed {
    /// The browser's signed-in person, or the sign-in page to send it to.
    async fn of(app: &AppState, headers: &HeaderMap) -> Result<Signed, Response> {
        let (browser, resolved) = browser_session(app, headers).await;
        match browser {
            Some((session, email)) => Ok(Signed {
                session,
                email,
                resolved,
            }),
            None => Err(with_session_cookies(
                app,
                see_other(SIGN_IN_HERE),
                &resolved,
            )),
        }
    }

    fn authenticated(&self) -> crate::authz::policy::Authenticated {
        match self.resolved.principal.as_ref() {
            Some(p) => p.authenticated(),
            None => Default::default(),
        }
    }

    async fn user(&self, app: &AppState) -> Result<UserRecord, Error> {
        app.store
            .user_by_id(&self.session.user_id)
            .await?
            .ok_or(Error::SessionRevoked)
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PageQuery {
    /// What the previous form did, to say so (a fixed list of messages).
    done: String,
}

pub async fn page(State(app): State<AppState>, headers: HeaderMap, uri: http::Uri) -> Response {
    let signed = match Signed::of(&app, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let q: PageQuery = axum::extract::Query::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let res = view::overview(&app, &headers, &signed, None, view::done(&q.done))
        .await
        .unwrap_or_else(|e| Problem::from(e).into_response());
    with_session_cookies(&app, res, &signed.resolved)
}

/// Where the step-up page sends the browser back to after a refusal for `rd`.
fn step_up(rd: &str, e: &Error) -> Option<Response> {
    let rd = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>();
    match e {
        Error::StepUpRequired { mfa: true, .. } => {
            Some(see_other(&format!("/ui/mfa?acr=2&rd={rd}")))
        }
        Error::StepUpRequired { .. }
        | Error::Invalid {
            code: "reauthentication_required",
            ..
        } => Some(see_other(&format!("/ui/mfa?rd={rd}"))),
        _ => None,
    }
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
    let signed = match Signed::of(&app, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let res = match actions::act(&app, action, &info, &headers, &signed, &form, &body).await {
        Ok(res) => res,
        Err(e) => match step_up(HERE, &e) {
            Some(res) => res,
            None => {
                let problem = Problem::from(e);
                if problem.status.is_server_error() {
                    return problem.into_response();
                }
                actions::refused(&app, action, &headers, &signed, &problem)
                    .await
                    .unwrap_or_else(|e| Problem::from(e).into_response())
            }
        },
    };
    with_session_cookies(&app, res, &signed.resolved)
}

/// The status and words of a refusal shown on the page.
fn shown(problem: &Problem) -> (StatusCode, String) {
    (
        problem.status,
        super::explain_code(problem.code).to_string(),
    )
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
    change_email => Action::ChangeEmail,
    change_password => Action::ChangePassword,
    revoke_session => Action::RevokeSession,
    revoke_other_sessions => Action::RevokeOtherSessions,
    withdraw_consent => Action::WithdrawConsent,
    unlink => Action::Unlink,
    create_key => Action::CreateKey,
    revoke_key => Action::RevokeKey,
);
