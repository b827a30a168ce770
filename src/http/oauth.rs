//! `/oauth2/*`: the OpenID Connect provider's endpoints. Token, introspection and
//! revocation take form bodies and authenticated clients and answer in the OAuth error
//! format (RFC 6749 §5.2); the authorization and logout endpoints talk to a browser, so
//! what cannot go back to a client is shown as a page.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use minijinja::context;

use super::browser::{browser_session, current_session};
use super::extract::Client;
use super::gate::with_session_cookies;
use super::html::{self, FormCsrf, error_page, form_trusted, see_other};
use crate::app::AppState;
use crate::audit::{Context, Outcome};
use crate::authz::valid_client_id;
use crate::oidc::authorize::{
    AuthorizeRefusal, BrowserSession, Pending, Reply, ResponseMode, Step, parse_params,
};
use crate::oidc::clients::PresentedClient;
use crate::oidc::error::OAuthError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
        .route("/oauth2/token", post(token))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/logout", get(logout_get).post(logout_post))
}

/// An OAuth error as JSON (RFC 6749 §5.2), with the status its code calls for.
pub struct OAuthFailure(pub OAuthError);

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match e.code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "insufficient_scope" => StatusCode::FORBIDDEN,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut res = (
            status,
            [(header::PRAGMA, "no-cache")],
            Json(serde_json::json!({ "error": e.code, "error_description": e.description })),
        )
            .into_response();
        let challenge = match e.code {
            "invalid_client" => Some(r#"Basic realm="tollgate""#.to_string()),
            "invalid_token" | "insufficient_scope" => {
                Some(format!(r#"Bearer realm="tollgate", error="{}""#, e.code))
            }
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

impl From<OAuthError> for OAuthFailure {
    fn from(e: OAuthError) -> Self {
        OAuthFailure(e)
    }
}

type OAuthResult = Result<Response, OAuthFailure>;

/// A form body's parameters, each at most once.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let text = html::form_body(headers, body)?;
    parse_params(&text).map_err(OAuthError::invalid_request)
}

/// The client authentication a request presents: `Authorization: Basic` (id and secret
/// form-encoded, RFC 6749 §2.3.1) or `client_id` (+ `client_secret`) in the body; never
/// both.
fn presented_client(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<PresentedClient, OAuthError> {
    let form_id = params.get("client_id").filter(|v| !v.is_empty());
    let form_secret = params.get("client_secret").filter(|v| !v.is_empty());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return match form_id {
            Some(id) => Ok(PresentedClient {
                id: id.clone(),
                secret: form_secret.cloned(),
            }),
            None => Err(OAuthError::invalid_client(
                "client authentication is required",
            )),
        };
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let (scheme, encoded) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "client authentication must use the Basic scheme",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    if form_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        ));
    }
    if form_id.is_some_and(|f| *f != id) {
        return Err(OAuthError::invalid_request(
            "client_id does not match the Authorization header",
        ));
    }
    Ok(PresentedClient {
        id,
        secret: (!secret.is_empty()).then_some(secret),
    })
}

/// Parses the body and authenticates its client; a refused authentication is audited.
pub(super) async fn authenticated(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    info: &crate::session::ClientInfo,
) -> Result<
    (
        std::sync::Arc<crate::store::ClientRecord>,
        HashMap<String, String>,
    ),
    OAuthError,
> {
    let params = form_params(headers, body)?;
    let presented = presented_client(headers, &params)?;
    match app.oidc.clients.authenticate(&presented).await {
        Ok(c) => Ok((c, params)),
        Err(e) => {
            if e.code == "invalid_client" {
                metrics::counter!("tollgate_oauth_client_auth_failures_total").increment(1);
                let named = if valid_client_id(&presented.id) {
                    presented.id.as_str()
                } else {
                    "(malformed)"
                };
                tracing::info!(event = "client_auth_failed", client_id = named);
                if app.oidc.clients.failure_worth_auditing(&presented.id).await {
                    let entry = Context::anonymous(info.clone())
                        .entry("oauth.client_auth_failed", Outcome::Failure, None)
                        .with("client_id", presented.id.as_str());
                    if let Err(err) = app.store.append_audit(&entry).await {
                        tracing::warn!(error = %err, "failed client authentication not audited");
                    }
                }
            }
            Err(e)
        }
    }
}

async fn token(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> OAuthResult {
    let (client, params) = authenticated(&app, &headers, &body, &info).await?;
    let granted = app.oidc.token(&client, &params, &info).await?;
    Ok(([(header::PRAGMA, "no-cache")], Json(granted)).into_response())
}

/// The `token` parameter of introspection and revocation.
fn token_param(params: &HashMap<String, String>) -> Result<&str, OAuthError> {
    params
        .get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))
}

async fn introspect(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> OAuthResult {
    let (client, params) = authenticated(&app, &headers, &body, &info).await?;
    let token = token_param(&params)?;
    Ok(Json(app.oidc.introspect(&client, token).await?).into_response())
}

async fn revoke(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> OAuthResult {
    let (client, params) = authenticated(&app, &headers, &body, &info).await?;
    app.oidc
        .revoke(&client, token_param(&params)?, &info)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn userinfo(State(app): State<AppState>, headers: HeaderMap) -> OAuthResult {
    let token = super::extract::bearer_token(&headers)
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::invalid_token("send the access token as a Bearer token"))?;
    let claims = app
        .sessions
        .verify(token)
        .map_err(|e| OAuthError::invalid_token(e.to_string()))?;
    Ok(Json(app.oidc.userinfo(&claims).await?).into_response())
}

async fn authorize_get(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    match parse_params(uri.query().unwrap_or("")) {
        Ok(params) => authorize(&app, &info, &headers, params).await,
        Err(e) => error_page(&app, &OAuthError::invalid_request(e)),
    }
}

async fn authorize_post(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match form_params(&headers, &body) {
        Ok(params) => authorize(&app, &info, &headers, params).await,
        Err(e) => error_page(&app, &e),
    }
}

async fn authorize(
    app: &AppState,
    info: &crate::session::ClientInfo,
    headers: &HeaderMap,
    params: HashMap<String, String>,
) -> Response {
    let pending = match app.oidc.begin(&params).await {
        Ok(p) => p,
        Err(AuthorizeRefusal::Untrusted(e)) => return error_page(app, &e),
        Err(AuthorizeRefusal::ToClient(reply)) => return reply_response(app, &reply),
    };
    let (browser, resolved) = browser_session(app, headers).await;
    let res = proceed(app, &pending, browser.as_ref().map(|(b, _)| b), false, info).await;
    with_session_cookies(app, res, &resolved)
}

/// Carries a pending authorization one step further for this browser: to the sign-in
/// page, to the consent page, or back to the client with a code or an error.
pub async fn proceed(
    app: &AppState,
    p: &Pending,
    browser: Option<&BrowserSession>,
    consented_now: bool,
    info: &crate::session::ClientInfo,
) -> Response {
    let (_, step) = match app.oidc.step(p, browser, consented_now).await {
        Ok(s) => s,
        Err(e) => return error_page(app, &e),
    };
    let to_page = |path: &str| match app.oidc.seal(p) {
        Ok(flow) => see_other(&format!("{path}?flow={flow}")),
        Err(e) => error_page(app, &OAuthError::from(e)),
    };
    match (step, browser) {
        (Step::SignIn, _) => to_page("/ui/login"),
        (Step::Consent { .. }, _) => to_page("/ui/consent"),
        (Step::Issue { scopes }, Some(session)) => {
            if consented_now {
                let ctx = Context::user(&session.user_id, info.clone());
                if let Err(e) = app
                    .oidc
                    .record_consent(session, &p.client_id, &scopes, p.resource.as_deref(), &ctx)
                    .await
                {
                    return error_page(app, &OAuthError::from(e));
                }
            }
            match app.oidc.issue_code(p, session, &scopes).await {
                Ok(reply) => reply_response(app, &reply),
                Err(e) => reply_response(app, &app.oidc.refusal(p, &OAuthError::from(e))),
            }
        }
        (Step::Issue { .. }, None) => to_page("/ui/login"),
        (Step::Refuse(e), _) => reply_response(app, &app.oidc.refusal(p, &e)),
    }
}

/// Delivers a reply to the client: a 303 to its redirect URI, or (`form_post`) a page
/// that posts the parameters there.
pub fn reply_response(app: &AppState, reply: &Reply) -> Response {
    match reply.mode {
        ResponseMode::Query => see_other(&reply.location()),
        ResponseMode::FormPost => {
            let params: Vec<(String, String)> = reply
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            match app.pages.render(
                "form_post.html",
                context! { action => reply.redirect_uri.clone(), params },
            ) {
                Ok(body) => (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                        (
                            header::CONTENT_SECURITY_POLICY,
                            app.pages.form_post_csp().to_string(),
                        ),
                    ],
                    body,
                )
                    .into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "form_post page failed");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
    confirm: Option<String>,
    csrf_token: Option<String>,
}

async fn logout_get(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Query(params): Query<LogoutParams>,
) -> Response {
    logout(&app, &info, &headers, params, false).await
}

async fn logout_post(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match html::form::<LogoutParams>(&headers, &body) {
        Ok(p) => logout(&app, &info, &headers, p, true).await,
        Err(e) => error_page(&app, &e),
    }
}

/// RP-initiated logout: ends the browser's session (and the client sessions derived
/// from it) once the user has confirmed, or at once when the `id_token_hint` names this
/// very session; then back to the client's registered URI, or a page.
async fn logout(
    app: &AppState,
    info: &crate::session::ClientInfo,
    headers: &HeaderMap,
    p: LogoutParams,
    posted: bool,
) -> Response {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let plan = match app
        .oidc
        .plan_logout(
            nonempty(&p.id_token_hint).as_deref(),
            nonempty(&p.client_id).as_deref(),
            nonempty(&p.post_logout_redirect_uri).as_deref(),
            nonempty(&p.state).as_deref(),
        )
        .await
    {
        Ok(plan) => plan,
        Err(e) => return error_page(app, &e),
    };
    let current = current_session(app, headers).await;
    let confirmed_here = posted
        && p.confirm.as_deref() == Some("yes")
        && form_trusted(app, headers, p.csrf_token.as_deref().unwrap_or("")).is_ok();
    // A cross-site POST from an application arrives without the SameSite=Lax cookies: the
    // session is invisible, not absent. The confirmation page posts again from this origin.
    let session_hidden = posted && current.is_none() && !confirmed_here;
    if current.is_some() || session_hidden {
        let (sid, email) = match &current {
            Some((sid, _, email)) => (sid.as_str(), email.as_str()),
            None => ("", ""),
        };
        let confirmed =
            (!sid.is_empty() && plan.hinted_session.as_deref() == Some(sid)) || confirmed_here;
        if !confirmed {
            let csrf = FormCsrf::for_request(app, headers);
            let params: Vec<(String, String)> = [
                ("id_token_hint", nonempty(&p.id_token_hint)),
                ("client_id", nonempty(&p.client_id)),
                (
                    "post_logout_redirect_uri",
                    nonempty(&p.post_logout_redirect_uri),
                ),
                ("state", nonempty(&p.state)),
                ("ui_locales", nonempty(&p.ui_locales)),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let page = html::page(
                app,
                StatusCode::OK,
                "logout.html",
                context! {
                    csrf => csrf.token.clone(), params, client_name => plan.client_name, email,
                    action => "/oauth2/logout",
                },
            );
            return csrf.apply(page);
        }
    }
    let then = match plan.redirect {
        Some(target) => see_other(&target),
        None => super::browser::signed_out(app),
    };
    super::browser::sign_out(app, current, info.clone(), then).await
}
