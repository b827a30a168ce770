//! `/admin/*`: the admin API, for callers holding scope `admin` (the built-in `admin`
//! role grants it). Accounts (list, search, disable, enable, unlock, roles), sessions
//! (list, revoke); the audit log is `admin_audit`. Every call is audited with the admin
//! as actor: changes in the same transaction as the change, reads as `admin.read`.
//!
//! Callers authenticate like anywhere else: bearer access token, API key, or the session
//! cookie (with the CSRF header on changes). The credential must carry scope `admin` and
//! the account must hold it now: every call reads the caller's live roles (this is the
//! cold path), so a demotion takes effect at once. An admin with a second factor needs a
//! recent one (`[admin] mfa_max_age`) for every write; with `[admin] require_mfa`, an
//! admin without one is refused until they set one up.

use axum::extract::{FromRequestParts, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::request::Parts;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Caller, Client, PathParam, bearer_token};
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::audit::{Context, Outcome};
use crate::authz::ADMIN_SCOPE;
use crate::authz::policy::Authenticated;
use crate::error::Error;
use crate::identity::user_json;
use crate::session::api_keys::ApiKeys;
use crate::store::{SessionRecord, UserQuery, UserRecord, UserState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/users/{id}/password", post(set_password))
        .route("/admin/users/{id}", get(get_user).delete(erase_user))
        .route("/admin/users/{id}/disable", post(disable_user))
        .route("/admin/users/{id}/enable", post(enable_user))
        .route("/admin/users/{id}/unlock", post(unlock_user))
        .route("/admin/users/{id}/roles", post(change_roles))
        .route("/admin/users/{id}/mfa", delete(reset_mfa))
        .route("/admin/sessions", get(list_sessions))
        .route("/admin/sessions/{id}", delete(revoke_session))
}

/// A caller with scope `admin`, as the audit context of what they do.
pub struct Admin(pub Context);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let Client(client) = Client::from_request_parts(parts, app)
            .await
            .unwrap_or_else(|never| match never {});
        let (user_id, scopes, authenticated) = match bearer_token(&parts.headers)? {
            Some(key) if ApiKeys::looks_like_key(key) => {
                let k = app.api_keys.verify(key).await?;
                (k.user_id.clone(), k.scope.clone(), Authenticated::default())
            }
            _ => {
                let caller = Caller::from_request_parts(parts, app).await?;
                let authenticated = caller.claims.authenticated();
                (
                    caller.claims.sub.clone(),
                    caller.claims.scope.clone(),
                    authenticated,
                )
            }
        };
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        admit(app, &user_id, &scopes, authenticated, writes).await?;
        Ok(Admin(Context::admin(&user_id, client)))
    }
}

/// Whether `user_id`, whose credential carries `scopes` (space-separated), may act as an administrator
/// now: the credential and the account's live roles must both grant `admin`, and the
/// second-factor rules of `[admin]` hold (`SecondFactors::admit_admin`). The admin API and
/// the console both ask this.
pub async fn admit(
    app: &AppState,
    user_id: &str,
    scopes: &str,
    authenticated: Authenticated,
    writes: bool,
) -> Result<(), Problem> {
    if !crate::oidc::scope::contains(scopes, ADMIN_SCOPE) {
        return Err(Problem::insufficient_scope(&[ADMIN_SCOPE.to_string()]));
    }
    // The credential says what the roles were when it was issued; admin power follows
    // the roles as they are now (a demoted admin's token must not re-grant itself).
    let user = app
        .store
        .user_by_id(user_id)
        .await
        .map_err(Error::from)?
        .filter(|u| !u.disabled);
    let still_admin = user.is_some_and(|u| {
        app.config
            .roles
            .scopes_for(u.roles.iter().map(String::as_str))
            .iter()
            .any(|s| s == ADMIN_SCOPE)
    });
    if !still_admin {
        return Err(Problem::insufficient_scope(&[ADMIN_SCOPE.to_string()]));
    }
    app.factors
        .admit_admin(
            user_id,
            writes,
            authenticated,
            app.config.admin.require_mfa,
            app.config.admin.mfa_max_age,
        )
        .await?;
    Ok(())
}

pub(super) fn session_json(s: &SessionRecord) -> Value {
    json!({
        "id": s.id,
        "user_id": s.user_id,
        "client_id": s.client_id,
        "created_at": s.created_at,
        "last_used_at": s.last_used_at,
        "expires_at": s.expires_at.min(s.idle_expires_at),
        "user_agent": s.user_agent,
        "ip": s.ip,
    })
}

/// Account ids are UUIDs; anything else cannot exist (and must not reach SQL as, say, NUL).
pub(super) fn user_id(raw: &str) -> Result<&str, Problem> {
    uuid::Uuid::parse_str(raw)
        .map(|_| raw)
        .map_err(|_| Problem::not_found().with_detail("no such user"))
}

/// Records a read: who looked at what.
pub(crate) async fn audit_read(
    app: &AppState,
    admin: &Admin,
    what: &str,
    subject: Option<&str>,
) -> Result<(), Error> {
    let entry = admin
        .0
        .entry("admin.read", Outcome::Success, subject)
        .with("resource", what);
    Ok(app.store.append_audit(&entry).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    q: Option<String>,
    user: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// The user list's keyset filters (`UserQuery`).
    prefix: Option<String>,
    role: Option<String>,
    state: Option<String>,
    after: Option<String>,
}

pub(crate) fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), Problem> {
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    if !(1..=500).contains(&limit) || offset < 0 {
        return Err(Problem::bad_request(
            "invalid_request",
            "limit must be 1-500 and offset at least 0",
        ));
    }
    Ok((limit, offset))
}

/// Query strings that don't parse are a 400 problem, not axum's plain-text rejection.
pub(crate) fn query<T: serde::de::DeserializeOwned>(uri: &http::Uri) -> Result<T, Problem> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| Problem::bad_request("invalid_request", e.body_text()))
}

async fn list_users(
    State(app): State<AppState>,
    admin: Admin,
    uri: http::Uri,
) -> ApiResult<Json<Value>> {
    let p: Page = query(&uri)?;
    let (limit, offset) = page_bounds(p.limit, p.offset)?;
    // `q` (a substring) and `offset` are the older, slower list; everything else pages
    // by email (`next` is the `after` of the following page).
    let keyset = p.prefix.is_some() || p.role.is_some() || p.state.is_some() || p.after.is_some();
    if keyset && (p.q.is_some() || p.offset.is_some()) {
        // Mixing them would page one list and filter another: refuse rather than act on
        // more accounts than the caller asked for.
        return Err(Problem::bad_request(
            "invalid_request",
            "q and offset cannot be combined with prefix, role, state or after",
        ));
    }
    if p.q
        .as_deref()
        .is_some_and(|q| q.chars().any(char::is_control))
    {
        return Err(Problem::bad_request(
            "invalid_request",
            "q has a control character",
        ));
    }
    let body = if p.q.is_some() || p.offset.is_some() {
        let users = app
            .store
            .search_users(p.q.as_deref().unwrap_or(""), limit, offset)
            .await
            .map_err(Error::from)?;
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })
    } else {
        let q = user_query(p.prefix, p.role, p.state, p.after, limit)?;
        let users = app.store.user_page(&q).await.map_err(Error::from)?;
        let next = (users.len() as i64 == limit)
            .then(|| users.last().map(|u| u.email.clone()))
            .flatten();
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>(), "next": next })
    };
    audit_read(&app, &admin, "users", None).await?;
    Ok(Json(body))
}

/// The user list's filters, checked: the console reads the same ones from its form.
pub(crate) fn user_query(
    prefix: Option<String>,
    role: Option<String>,
    state: Option<String>,
    after: Option<String>,
    limit: i64,
) -> Result<UserQuery, Problem> {
    let state = match state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(UserState::parse(s).ok_or_else(|| {
            Problem::bad_request(
                "invalid_request",
                "state is one of active, disabled, unverified",
            )
        })?),
    };
    let text = |v: Option<String>| v.unwrap_or_default().trim().to_lowercase();
    let (prefix, role) = (text(prefix), text(role));
    if prefix.len() > 320 || role.len() > 64 || after.as_ref().is_some_and(|a| a.len() > 320) {
        return Err(Problem::bad_request("invalid_request", "filter too long"));
    }
    let control = |s: &str| s.chars().any(char::is_control);
    if control(&prefix) || control(&role) || after.as_deref().is_some_and(control) {
        return Err(Problem::bad_request(
            "invalid_request",
            "a filter has a control character",
        ));
    }
    Ok(UserQuery {
        prefix,
        role: Some(role).filter(|r| !r.is_empty()),
        state,
        after: after.filter(|a| !a.is_empty()),
        limit,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    /// Without one, the account cannot sign in until its owner chooses one.
    password: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Mail an invitation (a code to choose a password); default: when there is no
    /// password.
    invite: Option<bool>,
}

/// Creates an account (role `user` and `roles`), with a password or by invitation.
async fn create_user(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    Body(b): Body<NewAccount>,
) -> ApiResult<Response> {
    let (user, invited) = create_account(
        &app,
        &b.email,
        b.password.as_deref(),
        &b.roles,
        b.invite,
        &ctx,
    )
    .await?;
    let mut body = user_json(&user);
    body["invited"] = invited.into();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// An account an administrator creates (the API and the console), and whether its
/// invitation went out: by default there is one when there is no password. The account
/// exists either way; a mail that cannot go out is said in the answer, and
/// `POST …/password {"require_reset": true}` sends another.
pub(crate) async fn create_account(
    app: &AppState,
    email: &str,
    password: Option<&str>,
    roles: &[String],
    invite: Option<bool>,
    ctx: &Context,
) -> Result<(UserRecord, bool), Error> {
    let user = app
        .identity
        .create_user(email, password, roles, ctx)
        .await?;
    let invited = invite.unwrap_or(password.is_none())
        && match app.identity.invite(&user, ctx).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "invitation not sent");
                false
            }
        };
    Ok((user, invited))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    password: Option<String>,
    #[serde(default)]
    require_reset: bool,
}

/// Sets a user's password, or requires a reset (the password stops working and a reset
/// code is mailed); every session of the user ends.
async fn set_password(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
    Body(b): Body<PasswordChange>,
) -> ApiResult<StatusCode> {
    let password = match (b.password.as_deref(), b.require_reset) {
        (Some(p), false) => Some(p),
        (None, true) => None,
        _ => {
            return Err(Problem::bad_request(
                "invalid_request",
                "give either password or require_reset: true",
            ));
        }
    };
    let user = app.identity.by_id(user_id(&id)?).await?;
    app.identity
        .set_password_by_admin(&user, password, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erases an account (GDPR Art. 17): the account and everything tied to it; usage and
/// audit keep its id, which then names no one. An admin does not erase themselves here.
async fn erase_user(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<StatusCode> {
    let user = app.identity.by_id(user_id(&id)?).await?;
    erase_account(&app, &user, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An administrator erases `user`, never themselves (their own account is erased from
/// their account page, after signing in again).
pub(crate) async fn erase_account(
    app: &AppState,
    user: &UserRecord,
    ctx: &Context,
) -> Result<(), Problem> {
    if ctx.actor_id() == Some(user.id.as_str()) {
        return Err(Problem::bad_request(
            "cannot_erase_self",
            "an administrator cannot erase their own account here",
        ));
    }
    Ok(app.identity.erase(user, ctx).await?)
}

/// Removes every second factor of a user (lost authenticator and codes) and ends their
/// sessions; 404 when there was nothing to remove.
async fn reset_mfa(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let user = app.identity.by_id(user_id(&id)?).await?;
    if !app.factors.reset(&user, &ctx).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This account has no second factor",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_user(
    State(app): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    let user = app.identity.by_id(user_id(&id)?).await?;
    audit_read(&app, &admin, "user", Some(&user.id)).await?;
    Ok(Json(user_json(&user)))
}

async fn disable_user(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(
        &app.identity.set_disabled(user_id(&id)?, true, &ctx).await?,
    )))
}

async fn enable_user(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(
        &app.identity
            .set_disabled(user_id(&id)?, false, &ctx)
            .await?,
    )))
}

async fn unlock_user(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Value>> {
    let user = app.identity.by_id(user_id(&id)?).await?;
    let cleared = app
        .sign_in
        .guard()
        .unlock(&user.email, &user.id, &ctx)
        .await?;
    Ok(Json(
        json!({ "user": user_json(&user), "counters_cleared": cleared }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

async fn change_roles(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
    Body(b): Body<RoleChange>,
) -> ApiResult<Json<Value>> {
    let mut user = app.identity.by_id(user_id(&id)?).await?;
    for role in &b.grant {
        user = app.identity.set_role(&id, role, true, &ctx).await?;
    }
    for role in &b.revoke {
        user = app.identity.set_role(&id, role, false, &ctx).await?;
    }
    Ok(Json(user_json(&user)))
}

async fn list_sessions(
    State(app): State<AppState>,
    admin: Admin,
    uri: http::Uri,
) -> ApiResult<Json<Value>> {
    let p: Page = query(&uri)?;
    let (limit, offset) = page_bounds(p.limit, p.offset)?;
    let now = crate::clock::now();
    let sessions = match &p.user {
        Some(user) => app.sessions.list(user_id(user)?).await?,
        None => app
            .store
            .all_live_sessions(now, limit, offset)
            .await
            .map_err(Error::from)?,
    };
    audit_read(&app, &admin, "sessions", p.user.as_deref()).await?;
    Ok(Json(
        json!({ "sessions": sessions.iter().map(session_json).collect::<Vec<_>>() }),
    ))
}

async fn revoke_session(
    State(app): State<AppState>,
    Admin(ctx): Admin,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    if uuid::Uuid::parse_str(&id).is_err()
        || !app
            .sessions
            .end(&id, None, "revoked_by_admin", &ctx)
            .await?
    {
        return Err(Problem::not_found().with_detail("no such live session"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
