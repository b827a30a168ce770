//! The console's users: the list (email prefix, role, state; paged by the last email,
//! so the 2,000th page costs what the first does) and a user's page: profile, roles,
//! sessions, second factors, linked identities, API keys, AI usage, and the actions an
//! administrator takes (the admin API's, through the same domain calls).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use minijinja::{Value, context};

use super::{confirmed, console, console_form, encode, page};
use crate::app::AppState;
use crate::http::admin::{create_account, erase_account, user_id, user_query};
use crate::http::extract::Client;
use crate::http::html::{self, see_other};
use crate::http::pages::{rows, usage};
use crate::http::problem::Problem;
use crate::store::UserRecord;

const PAGE_SIZE: i64 = 50;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    prefix: Option<String>,
    role: Option<String>,
    state: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

fn row(u: &UserRecord) -> Value {
    context! {
        id => u.id.clone(), email => u.email.clone(), roles => u.roles.clone(), disabled => u.disabled,
        verified => u.email_verified, created_at => u.created_at,
    }
}

pub async fn list(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    let here = uri.to_string();
    console(
        app,
        &headers,
        info,
        false,
        &here,
        |app, op, headers| async move {
            let q: ListQuery = crate::http::admin::query(&uri)?;
            let filter = user_query(
                q.prefix.clone(),
                q.role.clone(),
                q.state.clone(),
                q.after.clone(),
                PAGE_SIZE,
            )?;
            let users = app
                .store
                .user_page(&filter)
                .await
                .map_err(crate::error::Error::from)?;
            op.read(&app, "users", None).await?;
            // The filters as a query string; `after` is added for the next page.
            let filters = format!(
                "/ui/admin/users?prefix={}&role={}&state={}",
                encode(&filter.prefix),
                encode(filter.role.as_deref().unwrap_or("")),
                encode(filter.state.map_or("", |s| s.name()))
            );
            let next = (users.len() as i64 == PAGE_SIZE)
                .then(|| users.last())
                .flatten()
                .map(|last| format!("{filters}&after={}", encode(&last.email)));
            let first = filter.after.is_some().then_some(filters);
            let roles: Vec<String> = app.config.roles.names().map(str::to_string).collect();
            Ok(page(
                &app,
                &headers,
                &op,
                "users",
                "admin_users.html",
                context! {
                    users => users.iter().map(row).collect::<Vec<_>>(),
                    prefix => filter.prefix, role => filter.role,
                    state => filter.state.map(|s| s.name()), roles,
                    first, next,
                    deleted => q.done.as_deref() == Some("deleted"),
                },
            ))
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct NewUserForm {
    csrf_token: String,
    email: String,
    password: String,
}

html::our_forms!(NewUserForm, ActionForm);

pub async fn create(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    console_form(
        app,
        &headers,
        info,
        &body,
        true,
        "/ui/admin/users",
        |app, op, _headers, form: NewUserForm| async move {
            let password = Some(form.password.as_str()).filter(|p| !p.is_empty());
            let (user, _) = create_account(&app, &form.email, password, &[], None, &op.ctx).await?;
            Ok(see_other(&format!(
                "/ui/admin/users/{}?done=created",
                user.id
            )))
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    done: String,
}

/// What `?done=` on a user's page says, from a fixed list.
fn notice(done: &str) -> Option<&'static str> {
    const DONE: [&str; 12] = [
        "created",
        "disabled",
        "enabled",
        "unlocked",
        "reset_required",
        "factors_reset",
        "sessions_revoked",
        "session_revoked",
        "key_revoked",
        "role_granted",
        "role_revoked",
        "no_factors",
    ];
    DONE.iter()
        .find(|d| **d == done)
        .map(|d| html::t(&format!("admin_done_{d}")))
}

pub async fn show(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: http::Uri,
) -> Response {
    let here = uri.path().to_string();
    console(app, &headers, info, false, &here, |app, op, headers| async move {
        let user = app.identity.by_id(user_id(&id)?).await?;
        let q: ShowQuery = crate::http::admin::query(&uri).unwrap_or_default();
        let ctx = user_page(&app, &user).await?;
        op.read(&app, "user", Some(&user.id)).await?;
        Ok(page(
            &app,
            &headers,
            &op,
            "users",
            "admin_user.html",
            context! { notice => notice(&q.done), is_self => user.id.clone() == op.user_id, ..ctx },
        ))
    })
    .await
}

/// Everything the user's page shows.
async fn user_page(app: &AppState, user: &UserRecord) -> Result<Value, Problem> {
    let status = app.factors.status(&user.id).await?;
    let passkeys = app.passkeys.list(&user.id).await?.len();
    let sessions: Vec<Value> = app
        .sessions
        .list(&user.id)
        .await?
        .iter()
        .map(|s| rows::session(s, None))
        .collect();
    let identities: Vec<Value> = app
        .identity
        .linked(&user.id)
        .await?
        .iter()
        .map(|l| context! { provider => l.provider.clone(), email => l.email.clone(), linked_at => l.created_at, last_login_at => l.last_login_at })
        .collect();
    let keys: Vec<Value> = app
        .api_keys
        .list(&user.id)
        .await?
        .iter()
        .map(rows::api_key)
        .collect();
    let grantable: Vec<String> = app
        .config
        .roles
        .names()
        .filter(|r| !user.roles.iter().any(|h| h == r))
        .map(str::to_string)
        .collect();
    let usage = usage::section(app, &user.id, &user.roles).await?;
    Ok(context! {
        user => row(user), has_password => user.password_hash.is_some(),
        totp => status.totp, recovery_codes_left => status.recovery_codes_left, passkeys,
        sessions, identities, keys, grantable,
        scopes => app.config.roles.scopes_for(user.roles.iter().map(String::as_str)),
        usage,
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ActionForm {
    csrf_token: String,
    /// The session or key an action is about.
    id: String,
    role: String,
    /// "Delete" needs the box ticked.
    confirm: String,
}

/// The actions on a user's page: `POST /ui/admin/users/{id}/{action}`.
pub async fn act(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let here = format!("/ui/admin/users/{}", encode(&id));
    console_form(
        app,
        &headers,
        info,
        &body,
        true,
        &here.clone(),
        |app, op, _headers, form: ActionForm| async move {
            let user = app.identity.by_id(user_id(&id)?).await?;
            let ctx = &op.ctx;
            // An administrator does not lock themselves out here (disabling, or taking away
            // the role that makes them one): another administrator or the CLI can.
            let grants_admin = |role: &str| {
                app.config
                    .roles
                    .scopes_for([role])
                    .iter()
                    .any(|s| s == crate::authz::ADMIN_SCOPE)
            };
            if user.id == op.user_id
                && (action == "disable" || (action == "revoke-role" && grants_admin(&form.role)))
            {
                return Err(Problem::bad_request(
                    "cannot_lock_self_out",
                    "an administrator cannot disable themselves or drop their own admin role here",
                ));
            }
            let done = match action.as_str() {
                "disable" => {
                    app.identity.set_disabled(&user.id, true, ctx).await?;
                    "disabled"
                }
                "enable" => {
                    app.identity.set_disabled(&user.id, false, ctx).await?;
                    "enabled"
                }
                "unlock" => {
                    app.sign_in
                        .guard()
                        .unlock(&user.email, &user.id, ctx)
                        .await?;
                    "unlocked"
                }
                "reset-password" => {
                    app.identity.set_password_by_admin(&user, None, ctx).await?;
                    "reset_required"
                }
                "reset-factors" => {
                    if app.factors.reset(&user, ctx).await? {
                        "factors_reset"
                    } else {
                        "no_factors"
                    }
                }
                "revoke-sessions" => {
                    for s in app.sessions.list(&user.id).await? {
                        app.sessions
                            .end(&s.id, Some(&user.id), "revoked_by_admin", ctx)
                            .await?;
                    }
                    "sessions_revoked"
                }
                "revoke-session" => {
                    if !app
                        .sessions
                        .end(&form.id, Some(&user.id), "revoked_by_admin", ctx)
                        .await?
                    {
                        return Err(Problem::not_found());
                    }
                    "session_revoked"
                }
                "revoke-key" => {
                    if !app.api_keys.revoke(&form.id, Some(&user.id), ctx).await? {
                        return Err(Problem::not_found());
                    }
                    "key_revoked"
                }
                "grant-role" => {
                    app.identity
                        .set_role(&user.id, &form.role, true, ctx)
                        .await?;
                    "role_granted"
                }
                "revoke-role" => {
                    app.identity
                        .set_role(&user.id, &form.role, false, ctx)
                        .await?;
                    "role_revoked"
                }
                "delete" => {
                    confirmed(&form.confirm)?;
                    erase_account(&app, &user, ctx).await?;
                    return Ok(see_other("/ui/admin/users?done=deleted"));
                }
                _ => return Err(Problem::not_found()),
            };
            Ok(see_other(&format!("{here}?done={done}")))
        },
    )
    .await
}
