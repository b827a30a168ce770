//! `/ui/admin`: the admin console, for people whose roles grant scope `admin`. A client
//! of the same domain calls the admin API makes (`http::admin*`), checked the same way
//! (`admin::admit`): reads are audited as `admin.read`, every write is audited with the
//! admin as actor, and a write by an admin who has a second factor needs a recent one
//! (the browser goes to the step-up page and back). Forms are checked like every hosted
//! form (`html::posted`: CSRF token, the browser's `Origin` and `Sec-Fetch-Site`).
//!
//! - [`users`]: the user list (email prefix, role, state; keyset paging) and a user's
//!   page with its actions;
//! - [`roles`]: the configured roles, their scopes and members;
//! - [`clients`]: OAuth clients (register, edit, rotate the secret, delete);
//! - [`audit`]: the audit log (filters, paging) and "verify chain";
//! - [`spend`]: AI spend per user, model or day, top spenders first, as CSV too.
//!
//! Anyone else gets a 403 page for every page and form (the sign-in page when signed out).

mod audit;
mod clients;
mod roles;
mod spend;
mod users;

use std::future::Future;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use minijinja::{Value, context};

use super::{explain_code, form_page};
use crate::app::AppState;
use crate::audit::Context;
use crate::error::Error;
use crate::http::admin::{Admin, admit};
use crate::http::browser::browser_session;
use crate::http::gate::with_session_cookies;
use crate::http::html::{self, OurForm, see_other};
use crate::http::problem::Problem;
use crate::session::ClientInfo;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/admin", get(|| async { see_other("/ui/admin/users") }))
        .route("/ui/admin/", get(|| async { see_other("/ui/admin/users") }))
        .route("/ui/admin/users", get(users::list).post(users::create))
        .route("/ui/admin/users/{id}", get(users::show))
        .route("/ui/admin/users/{id}/{action}", post(users::act))
        .route("/ui/admin/roles", get(roles::page))
        .route(
            "/ui/admin/clients",
            get(clients::list).post(clients::create),
        )
        .route(
            "/ui/admin/clients/{id}",
            get(clients::show).post(clients::update),
        )
        .route("/ui/admin/clients/{id}/{action}", post(clients::act))
        .route("/ui/admin/audit", get(audit::page))
        .route("/ui/admin/audit/verify", post(audit::verify))
        .route("/ui/admin/spend", get(spend::page))
        .route("/ui/admin/spend.csv", get(spend::csv))
}

/// The administrator a console page or form is for.
pub struct Operator {
    pub user_id: String,
    pub email: String,
    /// The audit context of what they do (`admin:<id>`).
    pub ctx: Context,
}

impl Operator {
    /// Records that the operator looked at `what` (about `subject`).
    async fn read(&self, app: &AppState, what: &str, subject: Option<&str>) -> Result<(), Error> {
        crate::http::admin::audit_read(app, &Admin(self.ctx.clone()), what, subject).await
    }
}

/// Runs `work` for the browser's administrator, or answers for whoever else it is: the
/// sign-in page, the step-up page (a write by an admin whose second factor is not
/// recent; back to `here` after), or a 403 page. Refusals of `work` show as a page.
async fn console<F, Fut>(
    app: AppState,
    headers: &HeaderMap,
    info: ClientInfo,
    writes: bool,
    here: &str,
    work: F,
) -> Response
where
    F: FnOnce(AppState, Operator, HeaderMap) -> Fut,
    Fut: Future<Output = Result<Response, Problem>>,
{
    let (browser, resolved) = browser_session(&app, headers).await;
    let Some((session, email)) = browser else {
        let rd = encode(here);
        return with_session_cookies(&app, see_other(&format!("/ui/login?rd={rd}")), &resolved);
    };
    let authenticated = resolved
        .principal
        .as_ref()
        .map(|p| p.authenticated())
        .unwrap_or_default();
    let scopes = session.scopes.join(" ");
    let res = match admit(&app, &session.user_id, &scopes, authenticated, writes).await {
        Err(problem) => refused(&app, problem, here),
        Ok(()) => {
            let operator = Operator {
                ctx: Context::admin(&session.user_id, info),
                user_id: session.user_id,
                email,
            };
            match work(app.clone(), operator, headers.clone()).await {
                Ok(res) => res,
                Err(problem) => refused(&app, problem, here),
            }
        }
    };
    with_session_cookies(&app, res, &resolved)
}

/// `console` for a form: its body is checked like every hosted form's (`html::posted`)
/// before anything else, and handed to `work` as `T`.
async fn console_form<T, F, Fut>(
    app: AppState,
    headers: &HeaderMap,
    info: ClientInfo,
    body: &[u8],
    writes: bool,
    here: &str,
    work: F,
) -> Response
where
    T: OurForm,
    F: FnOnce(AppState, Operator, HeaderMap, T) -> Fut,
    Fut: Future<Output = Result<Response, Problem>>,
{
    match html::posted::<T>(&app, headers, body) {
        Ok(form) => {
            console(app, headers, info, writes, here, |app, op, headers| {
                work(app, op, headers, form)
            })
            .await
        }
        Err(e) => e.page(&app),
    }
}

/// A console form's "tick to confirm" box.
fn confirmed(confirm: &str) -> Result<(), Problem> {
    if confirm == "yes" {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "confirm_required",
            "tick the box to confirm",
        ))
    }
}

/// The page for a refused console request.
fn refused(app: &AppState, problem: Problem, here: &str) -> Response {
    match problem.code {
        "mfa_required" => see_other(&format!("/ui/mfa?acr=2&rd={}", encode(here))),
        "mfa_enrolment_required" => html::message_with_link(
            app,
            StatusCode::FORBIDDEN,
            html::t("error_403"),
            html::t("console_needs_mfa"),
            "/ui/account",
            html::t("account_title"),
        ),
        "insufficient_scope" | "forbidden" => html::message(
            app,
            StatusCode::FORBIDDEN,
            html::t("error_403"),
            html::t("console_forbidden"),
            Some("insufficient_scope"),
        ),
        _ if problem.status.is_server_error() => problem.into_response(),
        code => {
            // A registration's refusal says which field is wrong (in English, as the
            // API's does).
            let text = if code == "invalid_client_metadata" {
                let detail = problem.detail.as_deref().unwrap_or(&problem.title);
                format!("{} {detail}", explain(code))
            } else {
                explain(code).to_string()
            };
            html::message_with_link(
                app,
                problem.status,
                html::t("console_refused"),
                &text,
                here,
                html::t("console_back"),
            )
        }
    }
}

/// What an operator reads for a refusal: the account pages' words, or the console's.
fn explain(code: &str) -> &'static str {
    match code {
        "cannot_erase_self" => html::t("err_cannot_erase_self"),
        "cannot_lock_self_out" => html::t("err_cannot_lock_self_out"),
        "confirm_required" => html::t("err_confirm_required"),
        "invalid_client_metadata" => html::t("err_client"),
        "invalid_role" => html::t("err_invalid_role"),
        _ => explain_code(code),
    }
}

/// A percent-encoded query value.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A console page: `template` with `ctx`, the navigation (`section` marked), the
/// operator, and a notice (`?done=`).
fn page(
    app: &AppState,
    headers: &HeaderMap,
    operator: &Operator,
    section: &str,
    template: &str,
    ctx: Value,
) -> Response {
    form_page(
        app,
        headers,
        StatusCode::OK,
        template,
        None,
        context! { section, operator => operator.email.clone(), ..ctx },
    )
}
