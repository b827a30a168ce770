//! The console's OAuth clients: the list and a registration form, a client's page to
//! edit its redirect URIs and scopes, rotate its secret (shown once) and delete it. The
//! rules are the registration's (`oidc::clients`); an edit changes only what its form
//! has fields for (`ClientPatch`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::{Value, context};

use super::{Operator, confirmed, console, console_form, encode, page};
use crate::app::AppState;
use crate::http::extract::Client;
use crate::http::html::{self, see_other};
use crate::http::problem::Problem;
use crate::oidc::clients::{ClientPatch, ClientSpec};
use crate::store::ClientRecord;

fn row(c: &ClientRecord) -> Value {
    context! {
        id => c.id.clone(), name => c.name.clone(), public => c.is_public(),
        href => format!("/ui/admin/clients/{}", encode(&c.id)),
        redirect_uris => c.redirect_uris.clone(), post_logout_redirect_uris => c.post_logout_redirect_uris.clone(),
        grant_types => c.grant_types.clone(), scopes => c.scopes.clone(), skip_consent => c.skip_consent,
        created_at => c.created_at, updated_at => c.updated_at,
        registered => c.registered, metadata_url => c.metadata_url.clone(),
    }
}

pub async fn list(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
) -> Response {
    console(
        app,
        &headers,
        info,
        false,
        "/ui/admin/clients",
        |app, op, headers| async move {
            let clients = app.oidc.clients.list().await?;
            op.read(&app, "clients", None).await?;
            Ok(page(
                &app,
                &headers,
                &op,
                "clients",
                "admin_clients.html",
                context! { clients => clients.iter().map(row).collect::<Vec<_>>() },
            ))
        },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ClientForm {
    csrf_token: String,
    name: String,
    /// One URI per line.
    redirect_uris: String,
    post_logout_redirect_uris: String,
    /// Separated by spaces.
    scopes: String,
    /// Checkboxes: present when ticked.
    public: Option<String>,
    skip_consent: Option<String>,
    confirm: String,
}

html::our_forms!(ClientForm);

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The page with a client's secret, this once.
fn secret_page(
    app: &AppState,
    headers: &HeaderMap,
    op: &Operator,
    id: &str,
    secret: &str,
) -> Response {
    let mut res = page(
        app,
        headers,
        op,
        "clients",
        "admin_secret.html",
        context! { client_id => id, secret, href => format!("/ui/admin/clients/{}", encode(id)) },
    );
    *res.status_mut() = StatusCode::CREATED;
    res
}

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
        "/ui/admin/clients",
        |app, op, headers, form: ClientForm| async move {
            let spec = ClientSpec {
                name: form.name.trim().to_string(),
                redirect_uris: lines(&form.redirect_uris),
                post_logout_redirect_uris: lines(&form.post_logout_redirect_uris),
                public: form.public.is_some(),
                scopes: words(&form.scopes),
                skip_consent: form.skip_consent.is_some(),
                ..ClientSpec::default()
            };
            let (client, secret) = app.oidc.clients.create(spec, &op.ctx).await?;
            Ok(match secret {
                Some(s) => secret_page(&app, &headers, &op, &client.id, &s),
                None => see_other(&format!("/ui/admin/clients/{}", encode(&client.id))),
            })
        },
    )
    .await
}

pub async fn show(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let here = format!("/ui/admin/clients/{}", encode(&id));
    console(
        app,
        &headers,
        info,
        false,
        &here,
        |app, op, headers| async move {
            let client = app.oidc.clients.live(&id).await?;
            op.read(&app, "client", None).await?;
            Ok(page(
                &app,
                &headers,
                &op,
                "clients",
                "admin_client.html",
                context! { client => row(&client) },
            ))
        },
    )
    .await
}

pub async fn update(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let here = format!("/ui/admin/clients/{}", encode(&id));
    console_form(
        app,
        &headers,
        info,
        &body,
        true,
        &here.clone(),
        |app, op, _headers, form: ClientForm| async move {
            let patch = ClientPatch {
                name: Some(form.name.trim().to_string()),
                redirect_uris: Some(lines(&form.redirect_uris)),
                post_logout_redirect_uris: Some(lines(&form.post_logout_redirect_uris)),
                scopes: Some(words(&form.scopes)),
                skip_consent: Some(form.skip_consent.is_some()),
                ..ClientPatch::default()
            };
            app.oidc.clients.patch(&id, patch, &op.ctx).await?;
            Ok(see_other(&here))
        },
    )
    .await
}

/// `POST /ui/admin/clients/{id}/secret` (rotate) and `…/delete`.
pub async fn act(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let here = format!("/ui/admin/clients/{}", encode(&id));
    console_form(
        app,
        &headers,
        info,
        &body,
        true,
        &here,
        |app, op, headers, form: ClientForm| async move {
            match action.as_str() {
                "secret" => {
                    let secret = app.oidc.clients.rotate_secret(&id, &op.ctx).await?;
                    Ok(secret_page(&app, &headers, &op, &id, &secret))
                }
                "delete" => {
                    confirmed(&form.confirm)?;
                    app.oidc.clients.delete(&id, &op.ctx).await?;
                    Ok(see_other("/ui/admin/clients"))
                }
                _ => Err(Problem::not_found()),
            }
        },
    )
    .await
}
