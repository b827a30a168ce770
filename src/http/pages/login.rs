//! `/ui/login` and `/ui/`: sign-in through the same checks as `/auth/login` (limits,
//! lockout, audit), then the browser's own session; a pending authorization (a signed
//! flow token) continues to consent or straight back to the client, otherwise `rd` names
//! where to go next (if its origin is allowed), otherwise the landing page `/ui/`, which
//! says who is signed in and offers to sign out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::{explain_code, form_page, pending_of, refused_form, return_target};
use crate::app::AppState;
use crate::http::browser::{browser_of, browser_session};
use crate::http::extract::Client;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, NotHandled, error_page, see_other};
use crate::http::oauth::proceed;
use crate::http::problem::Problem;
use crate::oidc::authorize::Pending;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginQuery {
    pub flow: Option<String>,
    pub rd: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    csrf_token: String,
    flow: Option<String>,
    rd: Option<String>,
}

/// A passkey's answer (`toJSON()`, put in the form by `passkey.js`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct PasskeyForm {
    credential: String,
    csrf_token: String,
    flow: Option<String>,
    rd: Option<String>,
}

html::our_forms!(LoginForm, PasskeyForm);

#[derive(Default)]
struct LoginView<'a> {
    flow: Option<&'a str>,
    rd: Option<&'a str>,
    email: &'a str,
    error: Option<(String, Option<String>)>,
    client_name: Option<String>,
}

fn render(app: &AppState, headers: &HeaderMap, status: StatusCode, v: LoginView<'_>) -> Response {
    let providers: Vec<_> = app
        .federation
        .providers()
        .map(|(name, label)| {
            let mut href = format!("/auth/federated/{name}");
            if let Some(flow) = v.flow {
                href.push_str(&format!("?flow={flow}"));
            } else if let Some(rd) = v.rd {
                let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
                href.push_str(&format!("?rd={rd}"));
            }
            context! { href, label }
        })
        .collect();
    // Sign-up is offered on its own, not in the middle of an application's sign-in.
    let signup = (app.config.accounts.open_registration && v.flow.is_none()).then(|| match v.rd {
        Some(rd) => {
            let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            format!("/ui/signup?rd={rd}")
        }
        None => "/ui/signup".to_string(),
    });
    form_page(
        app,
        headers,
        status,
        "login.html",
        v.error,
        context! {
            flow => v.flow, rd => v.rd, email => v.email, client_name => v.client_name,
            providers, signup, passkeys => app.passkeys.available(),
        },
    )
}

async fn client_name(app: &AppState, p: Option<&Pending>) -> Option<String> {
    let p = p?;
    app.oidc
        .clients
        .live(&p.client_id)
        .await
        .ok()
        .map(|c| c.name.clone())
}

pub async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let pending = match pending_of(&app, q.flow.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &e),
    };
    let rd = return_target(&app, q.rd.as_deref());
    if pending.is_none() {
        let (browser, resolved) = browser_session(&app, &headers).await;
        if browser.is_some() {
            let res = see_other(rd.as_deref().unwrap_or("/ui/"));
            return with_session_cookies(&app, res, &resolved);
        }
    }
    let view = LoginView {
        flow: q.flow.as_deref().filter(|_| pending.is_some()),
        rd: rd.as_deref(),
        email: "",
        error: None,
        client_name: client_name(&app, pending.as_ref()).await,
    };
    render(&app, &headers, StatusCode::OK, view)
}

pub async fn submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: LoginForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(NotHandled::Refused(why)) => {
            // Nothing posted is shown back: it may be another site's (its address, its
            // authorization request).
            let (status, error) = refused_form(&app, &why);
            let blank = LoginView {
                error: Some(error),
                ..Default::default()
            };
            return render(&app, &headers, status, blank);
        }
        Err(e) => return e.page(&app),
    };
    let pending = match pending_of(&app, form.flow.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &e),
    };
    let rd = return_target(&app, form.rd.as_deref());
    let client_name = client_name(&app, pending.as_ref()).await;
    let view = |error| LoginView {
        flow: form.flow.as_deref().filter(|_| pending.is_some()),
        rd: rd.as_deref(),
        email: &form.email,
        error: Some(error),
        client_name: client_name.clone(),
    };
    let user = match app
        .sign_in
        .check("/ui/login", &form.email, &form.password, &info)
        .await
    {
        Ok(u) => u,
        Err(why) => return refused(&app, &headers, why.into(), view(Default::default())),
    };
    signed_in(
        &app,
        &headers,
        user,
        &["pwd"],
        &info,
        form.flow.as_deref().filter(|_| pending.is_some()),
        rd.as_deref(),
    )
    .await
}

/// Sign-in with a passkey alone (two factors in one): the same continuation as a password.
pub async fn passkey_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: PasskeyForm = match html::posted(&app, &headers, &body) {
        Ok(f) => f,
        Err(e) => return e.page(&app),
    };
    let pending = match pending_of(&app, form.flow.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &e),
    };
    let flow = form.flow.as_deref().filter(|_| pending.is_some());
    let rd = return_target(&app, form.rd.as_deref());
    let credential = serde_json::from_str(&form.credential).unwrap_or(serde_json::Value::Null);
    match app.passkeys.sign_in(credential, None).await {
        Ok(done) => {
            let amr: Vec<&str> = done.amr.iter().map(String::as_str).collect();
            signed_in(&app, &headers, done.user, &amr, &info, flow, rd.as_deref()).await
        }
        Err(e) => {
            let view = LoginView {
                flow,
                rd: rd.as_deref(),
                client_name: client_name(&app, pending.as_ref()).await,
                ..LoginView::default()
            };
            let problem = Problem::from(super::mfa::passkey_refusal(e));
            refused(&app, &headers, problem, view)
        }
    }
}

/// After any successful sign-in at a page (password, federation, account link): for an
/// account with a second factor not yet given, the second step (`/ui/mfa`); otherwise
/// starts the browser's session, sets its cookies, and continues the pending
/// authorization (`flow`), or goes to `rd`, or to the landing page.
pub async fn signed_in(
    app: &AppState,
    headers: &HeaderMap,
    user: crate::store::UserRecord,
    amr: &[&str],
    info: &crate::session::ClientInfo,
    flow: Option<&str>,
    rd: Option<&str>,
) -> Response {
    if !amr.contains(&"mfa") {
        let challenge = match app.factors.required(&user.id).await {
            Ok(true) => Some(app.factors.challenge(&user.id, amr).await),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        };
        match challenge {
            Some(Ok(token)) => {
                let passkey = match app.factors.methods(&user.id).await {
                    Ok(methods) => methods.contains(&"passkey"),
                    Err(e) => return Problem::from(e).into_response(),
                };
                let step = super::mfa::SecondStep {
                    token: &token,
                    flow,
                    rd,
                    passkey,
                };
                return super::mfa::render(app, headers, StatusCode::OK, &step, None);
            }
            Some(Err(e)) => return Problem::from(e).into_response(),
            None => {}
        }
    }
    let pending = flow.and_then(|f| app.oidc.open(f).ok());
    let pending = pending.as_ref();
    let issued = match app.sessions.start(user, amr, info).await {
        Ok(i) => i,
        Err(e) => return Problem::from(e).into_response(),
    };
    tracing::info!(user_id = %issued.user.id, session_id = %issued.access_claims.sid, event = "login_succeeded");
    let mut res = match (pending, rd) {
        (Some(p), _) => {
            // This sign-in satisfies the request's prompt=login or max_age.
            let p = Pending {
                signed_in_as: Some(issued.access_claims.sid.clone()),
                ..p.clone()
            };
            let browser = browser_of(&issued.access_claims);
            proceed(app, &p, Some(&browser), false, info).await
        }
        (None, Some(target)) => see_other(target),
        (None, None) => see_other("/ui/"),
    };
    // A new session gets a new CSRF token: one planted before sign-in must not survive.
    for v in app.cookies.for_issued(&issued, None) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The sign-in form again, saying why (and with `Retry-After` when locked out).
fn refused(app: &AppState, headers: &HeaderMap, problem: Problem, view: LoginView<'_>) -> Response {
    let status = problem.status;
    let text = explain_code(problem.code).to_string();
    let retry_after = problem
        .into_response()
        .headers()
        .get(header::RETRY_AFTER)
        .cloned();
    let view = LoginView {
        error: Some((text, None)),
        ..view
    };
    let mut res = render(app, headers, status, view);
    if let Some(v) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// `/ui/`: who is signed in, with a sign-out button; the sign-in page for anyone else.
pub async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (browser, resolved) = browser_session(&app, &headers).await;
    let res = match browser {
        Some((_, email)) => form_page(
            &app,
            &headers,
            StatusCode::OK,
            "home.html",
            None,
            context! { email },
        ),
        None => see_other("/ui/login"),
    };
    with_session_cookies(&app, res, &resolved)
}
