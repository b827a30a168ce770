//! `/ui/*`: the hosted sign-in and consent pages (HTML forms that work without
//! JavaScript). Sign-in goes through the same checks as `/auth/login` (limits, lockout,
//! audit) and starts the browser's own session; a pending authorization (a signed flow
//! token) then continues to consent or straight back to the client. Without one, the
//! page signs in for the gateway: `rd` names where to go next, if its origin is allowed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use minijinja::context;
use serde::Deserialize;

use super::extract::Client;
use super::gate::with_session_cookies;
use super::html::{self, FormCsrf, error_page, form_trusted, see_other};
use super::oauth::{browser_of, browser_session, proceed, reply_response};
use super::problem::Problem;
use super::signin::check_password;
use crate::app::AppState;
use crate::audit::{Context, Outcome};
use crate::oidc::authorize::{Pending, Step};
use crate::oidc::error::OAuthError;
use crate::ui::{STYLE, describe_scope};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_page).post(login_submit))
        .route("/ui/consent", get(consent_page).post(consent_submit))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginQuery {
    flow: Option<String>,
    rd: Option<String>,
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConsentForm {
    csrf_token: String,
    flow: String,
    decision: String,
}

/// The pending authorization a `flow` parameter carries, if any.
pub fn pending_of(app: &AppState, flow: Option<&str>) -> Result<Option<Pending>, OAuthError> {
    match flow.filter(|f| !f.is_empty()) {
        Some(f) => app.oidc.open(f).map(Some),
        None => Ok(None),
    }
}

/// `rd` as an absolute URL, when it points somewhere a sign-in may return to (Tollgate's
/// own origin or `[gateway] return_origins`): never an open redirect.
pub fn return_target(app: &AppState, rd: Option<&str>) -> Option<String> {
    let rd = rd.filter(|r| !r.is_empty())?;
    let absolute = if rd.starts_with('/') && !rd.starts_with("//") && !rd.starts_with("/\\") {
        format!("{}{rd}", app.config.public_url)
    } else {
        rd.to_string()
    };
    app.gateway
        .login
        .return_allowed(&absolute)
        .then_some(absolute)
}

struct LoginView<'a> {
    flow: Option<&'a str>,
    rd: Option<&'a str>,
    email: &'a str,
    error: Option<&'a str>,
    client_name: Option<String>,
}

async fn render_login(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    v: LoginView<'_>,
) -> Response {
    let csrf = FormCsrf::for_request(app, headers);
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
    let page = html::page(
        app,
        status,
        "login.html",
        context! {
            csrf => csrf.token.clone(), flow => v.flow, rd => v.rd, email => v.email, error => v.error,
            client_name => v.client_name, providers,
        },
    );
    csrf.apply(page)
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

async fn login_page(
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
        if let Some((_, email)) = browser {
            let res = match &rd {
                Some(target) => see_other(target),
                None => html::message(
                    &app,
                    StatusCode::OK,
                    "Signed in",
                    &format!("You are signed in as {email}."),
                    None,
                ),
            };
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
    render_login(&app, &headers, StatusCode::OK, view).await
}

async fn login_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: LoginForm = match html::form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return error_page(&app, &e),
    };
    let pending = match pending_of(&app, form.flow.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &e),
    };
    let rd = return_target(&app, form.rd.as_deref());
    let view = |error| LoginView {
        flow: form.flow.as_deref().filter(|_| pending.is_some()),
        rd: rd.as_deref(),
        email: &form.email,
        error: Some(error),
        client_name: None,
    };
    if !form_trusted(&app, &headers, &form.csrf_token) {
        let v = view("This form expired or did not come from this site. Please try again.");
        return render_login(&app, &headers, StatusCode::FORBIDDEN, v).await;
    }
    let user = match check_password(&app, "/ui/login", &form.email, &form.password, &info).await {
        Ok(u) => u,
        Err(problem) => return login_refused(&app, &headers, problem, view).await,
    };
    signed_in(&app, user, &["pwd"], &info, pending.as_ref(), rd.as_deref()).await
}

/// After any successful sign-in at a page (password, federation, account link): starts
/// the browser's session, sets its cookies, and continues the pending authorization, or
/// goes to `rd`, or says who is signed in.
pub async fn signed_in(
    app: &AppState,
    user: crate::store::UserRecord,
    amr: &[&str],
    info: &crate::session::ClientInfo,
    pending: Option<&Pending>,
    rd: Option<&str>,
) -> Response {
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
        (None, None) => html::message(
            app,
            StatusCode::OK,
            "Signed in",
            &format!("You are signed in as {}.", issued.user.email),
            None,
        ),
    };
    // A new session gets a new CSRF token: one planted before sign-in must not survive.
    for v in app.cookies.for_issued(&issued, None) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The sign-in form again, saying why (and with `Retry-After` when locked out).
async fn login_refused<'a>(
    app: &AppState,
    headers: &HeaderMap,
    problem: Problem,
    view: impl Fn(&'a str) -> LoginView<'a>,
) -> Response {
    let status = problem.status;
    let message: &'static str = match problem.code {
        "invalid_credentials" => "The email or password is incorrect.",
        "too_many_attempts" | "rate_limited" => "Too many attempts. Wait a little, then try again.",
        "account_disabled" => "This account is disabled.",
        "email_not_verified" => "Verify your email address first: follow the link we mailed you.",
        "unavailable" => "The service is temporarily unavailable. Please try again.",
        _ => "Sign-in failed. Please try again.",
    };
    let retry_after = problem
        .into_response()
        .headers()
        .get(header::RETRY_AFTER)
        .cloned();
    let mut res = render_login(app, headers, status, view(message)).await;
    if let Some(v) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn consent_page(
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
                let csrf = FormCsrf::for_request(&app, &headers);
                let scopes: Vec<_> = scopes
                    .iter()
                    .map(|s| context! { name => s, description => describe_scope(s) })
                    .collect();
                let page = html::page(
                    &app,
                    StatusCode::OK,
                    "consent.html",
                    context! {
                        client_name => client.name.clone(), email, scopes, csrf => csrf.token.clone(),
                        flow => q.flow.unwrap_or_default(),
                    },
                );
                csrf.apply(page)
            }
            Ok(_) => proceed(&app, &pending, Some(session), false, &info).await,
            Err(e) => error_page(&app, &e),
        },
    };
    with_session_cookies(&app, res, &resolved)
}

async fn consent_submit(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: ConsentForm = match html::form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return error_page(&app, &e),
    };
    if !form_trusted(&app, &headers, &form.csrf_token) {
        return html::message(
            &app,
            StatusCode::FORBIDDEN,
            "Please try again",
            "This form expired or did not come from this site.",
            Some("csrf_failed"),
        );
    }
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
