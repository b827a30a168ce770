//! The console's roles: each role of the configuration (`[roles]`), the scopes it grants
//! and its first members (the user list filtered by the role has them all). Roles are
//! configuration, so they are read here, not edited.

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use minijinja::{Value, context};

use super::console;
use crate::app::AppState;
use crate::error::Error;
use crate::http::extract::Client;
use crate::store::UserQuery;

/// Members shown per role.
const MEMBERS: i64 = 20;

pub async fn page(
    State(app): State<AppState>,
    Client(info): Client,
    headers: HeaderMap,
) -> Response {
    console(app, &headers, info, false, "/ui/admin/roles", |app, op, headers| async move {
        let mut roles: Vec<Value> = Vec::new();
        for name in app.config.roles.names() {
            let members = app
                .store
                .user_page(&UserQuery {
                    role: Some(name.to_string()),
                    limit: MEMBERS + 1,
                    ..UserQuery::default()
                })
                .await
                .map_err(Error::from)?;
            roles.push(context! {
                name,
                scopes => app.config.roles.scopes_for([name]),
                more => members.len() as i64 > MEMBERS,
                members => members.iter().take(MEMBERS as usize)
                    .map(|u| context! { id => u.id.clone(), email => u.email.clone() }).collect::<Vec<_>>(),
            });
        }
        op.read(&app, "roles", None).await?;
        Ok(super::page(&app, &headers, &op, "roles", "admin_roles.html", context! { roles }))
    })
    .await
}
