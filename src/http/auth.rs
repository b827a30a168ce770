//! `/auth/*`: registration, sign-in, refresh, sign-out, the caller's profile and sessions,
//! password change. Handlers translate HTTP to `identity`/`session` calls and back.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::cookies;
use super::extract::{
    Body, Caller, Client, Credential, Delivery, Mode, PathParam, bearer_token, check_csrf,
    check_origin,
};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::Context;
use crate::error::Error;
use crate::session::Issued;
use crate::store::{SessionRecord, UserRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/sessions", get(list_sessions))
        .route("/auth/sessions/{id}", delete(delete_session))
        .route("/auth/password", post(change_password))
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
    /// The second factor in the same request, for accounts that have one.
    totp: Option<String>,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

fn user_json(u: &UserRecord) -> Value {
    json!({ "id": u.id, "email": u.email, "email_verified": u.email_verified, "roles": u.roles })
}

async fn register(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Body(c): Body<Credentials>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    if !app.config.accounts.open_registration {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "New accounts are created by an administrator",
        ));
    }
    let user = app
        .identity
        .register(&c.email, &c.password, &Context::anonymous(client.clone()))
        .await?;
    tracing::info!(user_id = %user.id, event = "user_registered");
    // The verification mail goes out in the background: the answer must not wait on SMTP.
    let identity = app.identity.clone();
    let (mailed, ctx) = (user.clone(), Context::user(&user.id, client));
    tokio::spawn(async move {
        if let Err(e) = identity.send_verification(&mailed, &ctx).await {
            tracing::warn!(error = %e, "verification mail not sent");
        }
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": { "id": user.id, "email": user.email } })),
    )
        .into_response())
}

async fn login(
    State(app): State<AppState>,
    Mode(mode): Mode,
    Client(client): Client,
    headers: HeaderMap,
    Body(c): Body<Credentials>,
) -> ApiResult<Response> {
    check_origin(&headers, &app)?;
    let signed_in = app
        .sign_in
        .sign_in(
            "/auth/login",
            &c.email,
            &c.password,
            c.totp.as_deref(),
            &client,
        )
        .await?;
    let amr: Vec<&str> = signed_in.amr.iter().map(String::as_str).collect();
    let issued = app.sessions.start(signed_in.user, &amr, &client).await?;
    tracing::info!(user_id = %issued.user.id, session_id = %issued.access_claims.sid, event = "login_succeeded");
    Ok(deliver(&app, mode, issued, None))
}

async fn refresh(
    State(app): State<AppState>,
    Mode(mode): Mode,
    Client(client): Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let outcome = match mode {
        Delivery::Token => {
            let axum::Json(RefreshBody { refresh_token }) =
                axum::Json::from_bytes(&body).map_err(Problem::from)?;
            app.sessions.refresh(&refresh_token, &client).await
        }
        Delivery::Cookie => {
            let token =
                cookies::read(&headers, &app.cookies.refresh).ok_or(Error::InvalidRefreshToken)?;
            check_csrf(&http::Method::POST, &headers, &app)?;
            app.sessions.refresh(token, &client).await
        }
    };
    metrics::counter!("tollgate_refreshes_total", "outcome" => match &outcome { Ok(_) => "success", Err(e) => e.code() }).increment(1);
    match outcome {
        Ok(issued) => {
            let csrf = cookies::read(&headers, &app.cookies.csrf).map(str::to_string);
            Ok(deliver(&app, mode, issued, csrf))
        }
        // A refresh cookie that can never work again is deleted; a transient failure
        // (database down) must not sign the browser out.
        Err(e @ (Error::InvalidRefreshToken | Error::RefreshTokenReused))
            if mode == Delivery::Cookie =>
        {
            Ok(with_cleared_cookies(&app, Problem::from(e).into_response()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Token mode: the pair in the body, no cookies. Cookie mode: the user in the body and the
/// three cookies; an existing CSRF token is kept so other tabs' copies stay valid.
pub(super) fn deliver(
    app: &AppState,
    mode: Delivery,
    issued: Issued,
    keep_csrf: Option<String>,
) -> Response {
    let expires_in = issued.access_claims.exp - issued.access_claims.iat;
    match mode {
        Delivery::Token => Json(json!({
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token.as_deref().unwrap_or_default(),
            "token_type": "Bearer",
            "expires_in": expires_in,
            "session_id": issued.access_claims.sid,
        }))
        .into_response(),
        Delivery::Cookie => {
            let mut res =
                Json(json!({ "user": user_json(&issued.user), "expires_in": expires_in }))
                    .into_response();
            for v in app.cookies.for_issued(&issued, keep_csrf.as_deref()) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
    }
}

fn with_cleared_cookies(app: &AppState, mut res: Response) -> Response {
    for v in app.cookies.clear_all() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Ends the caller's session. A bearer token names it directly; a browser's session is
/// found from its access cookie, or its refresh cookie when the access token has lapsed.
async fn logout(
    State(app): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(token) = bearer_token(&headers)? {
        let claims = app.sessions.verify(token)?;
        let ctx = Context::user(&claims.sub, client);
        app.sessions.end(&claims.sid, None, "logout", &ctx).await?;
        tracing::info!(user_id = %claims.sub, session_id = %claims.sid, event = "logout");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let access = cookies::read(&headers, &app.cookies.access);
    let refresh = cookies::read(&headers, &app.cookies.refresh);
    if access.is_none() && refresh.is_none() {
        return Err(Error::Unauthenticated.into());
    }
    check_csrf(&http::Method::POST, &headers, &app)?;
    let by_access = access.and_then(|t| app.sessions.tokens().verify_uncached(t).ok());
    match (by_access, refresh) {
        (Some(claims), _) => {
            let ctx = Context::user(&claims.sub, client);
            app.sessions.end(&claims.sid, None, "logout", &ctx).await?;
            tracing::info!(user_id = %claims.sub, session_id = %claims.sid, event = "logout");
        }
        (None, Some(rt)) => {
            app.sessions
                .end_by_refresh_token(rt, "logout", &Context::anonymous(client))
                .await?;
        }
        (None, None) => {}
    }
    Ok(with_cleared_cookies(
        &app,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

async fn me(caller: Caller) -> Json<Value> {
    let c = &caller.claims;
    Json(json!({
        "id": c.sub,
        "email": c.email,
        "roles": c.roles,
        "scopes": c.scopes().collect::<Vec<_>>(),
        "session_id": c.sid,
        "auth_time": c.auth_time,
        "amr": c.amr,
    }))
}

fn session_json(s: &SessionRecord, current: &str) -> Value {
    json!({
        "id": s.id,
        "client_id": s.client_id,
        "created_at": s.created_at,
        "last_used_at": s.last_used_at,
        "expires_at": s.expires_at.min(s.idle_expires_at),
        "user_agent": s.user_agent,
        "ip": s.ip,
        "current": s.id == current,
    })
}

async fn list_sessions(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let sessions = app.sessions.list(&caller.claims.sub).await?;
    Ok(Json(Value::Array(
        sessions
            .iter()
            .map(|s| session_json(s, &caller.claims.sid))
            .collect(),
    )))
}

async fn delete_session(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let ctx = Context::user(&caller.claims.sub, client);
    // Session ids are UUIDs; anything else cannot exist (and must not reach SQL as, say, NUL).
    if uuid::Uuid::parse_str(&id).is_err()
        || !app
            .sessions
            .end(&id, Some(&caller.claims.sub), "revoked_by_user", &ctx)
            .await?
    {
        return Err(Problem::not_found().with_detail("no such session"));
    }
    tracing::info!(user_id = %caller.claims.sub, session_id = %id, event = "session_revoked");
    let res = StatusCode::NO_CONTENT.into_response();
    if id == caller.claims.sid && caller.credential == Credential::Cookie {
        return Ok(with_cleared_cookies(&app, res));
    }
    Ok(res)
}

async fn change_password(
    State(app): State<AppState>,
    caller: Caller,
    Client(client): Client,
    Body(b): Body<PasswordChange>,
) -> ApiResult<StatusCode> {
    let c = &caller.claims;
    let ctx = Context::user(&c.sub, client);
    match app
        .identity
        .change_password(&c.sub, &b.current_password, &b.new_password, &c.sid, &ctx)
        .await
    {
        Ok(()) => {
            tracing::info!(user_id = %c.sub, event = "password_changed");
            Ok(StatusCode::NO_CONTENT)
        }
        // The caller is signed in; a wrong current password is a refusal, not a challenge.
        Err(Error::InvalidCredentials) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the current password is incorrect",
        )),
        Err(e) => Err(e.into()),
    }
}
