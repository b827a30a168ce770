//! Tokens from the OpenID Connect provider at the gateway: services calling with their
//! own client-credentials tokens (admitted by client or by scope, refused elsewhere), a
//! user's token obtained by an application (scoped to what was granted), and tokens that
//! must never pass (ID tokens, deleted clients, revoked tokens).

use crate::common;

use common::browser::Browser;
use common::oidc::{add_client, authorized_tokens, form_call};
use common::upstream::{Upstream, echoed_header};
use common::{Backend, Options, PASSWORD, TestServer, email};
use reqwest::Method;

fn config(up: &str) -> String {
    format!(
        r#"
[roles.user]
scopes = ["profile"]
[roles.analyst]
scopes = ["docs:read", "reports:read"]

[[route]]
path = "/internal/*"
upstream = "{up}"
scopes = ["reports:read"]
clients = ["reports"]

[[route]]
path = "/any-service/*"
upstream = "{up}"
scopes = ["reports:read"]
clients = ["*"]

[[route]]
path = "/services-only/*"
upstream = "{up}"
clients = ["*"]
users = false

[[route]]
path = "/docs/*"
upstream = "{up}"
scopes = ["docs:read"]

[[route]]
path = "/for-apps/*"
upstream = "{up}"
scopes = ["docs:read"]
clients = ["*"]
"#
    )
}

async fn start(b: Backend, up: &Upstream) -> TestServer {
    TestServer::start_with(
        b,
        Options {
            config: config(&up.base),
            env: vec![],
        },
    )
    .await
}

async fn service_token(s: &TestServer, rp: &common::oidc::Rp) -> String {
    let r = form_call(
        s,
        "/oauth2/token",
        rp,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.str("access_token")
}

async fn bearer_get(s: &TestServer, path: &str, token: &str) -> common::Reply {
    let auth = format!("Bearer {token}");
    s.call(
        Method::GET,
        path,
        None,
        &[("authorization", &auth), ("x-tollgate-user", "forged")],
    )
    .await
}

async fn services_are_admitted_by_client_or_scope(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up).await;
    let reports = add_client(
        &s,
        "Reports",
        None,
        &["--id", "reports", "--scope", "reports:read"],
    );
    let billing = add_client(
        &s,
        "Billing",
        None,
        &["--id", "billing", "--scope", "reports:read"],
    );
    let bare = add_client(&s, "Bare", None, &["--id", "bare"]);
    let (rt, bt, nt) = (
        service_token(&s, &reports).await,
        service_token(&s, &billing).await,
        service_token(&s, &bare).await,
    );

    // Admitted by id: the upstream learns the client, never a user (forged or not).
    let r = bearer_get(&s, "/internal/x", &rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(echoed_header(&r.json, "x-tollgate-client"), Some("reports"));
    assert_eq!(echoed_header(&r.json, "x-tollgate-user"), Some(""));
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-scopes"),
        Some("reports:read")
    );
    assert!(
        echoed_header(&r.json, "authorization").is_none(),
        "our token never goes upstream"
    );
    let assertion = echoed_header(&r.json, "x-tollgate-assertion").unwrap();
    let claims = common::jwt_part(assertion, 1);
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some("reports"), Some("reports"))
    );
    assert_eq!(claims["gty"], "client_credentials", "a service says so");

    // Another service, though its scopes fit, is not on the list.
    bearer_get(&s, "/internal/x", &bt)
        .await
        .assert_problem(403, "client_not_allowed");
    // "*": any service with the scopes; without them, refused for scope.
    assert_eq!(bearer_get(&s, "/any-service/x", &bt).await.status, 200);
    bearer_get(&s, "/any-service/x", &nt)
        .await
        .assert_problem(403, "insufficient_scope");
    // Routes that name no clients refuse every client's token, whatever its scopes.
    bearer_get(&s, "/docs/x", &rt)
        .await
        .assert_problem(403, "client_not_allowed");

    // Users pass user routes, and service routes only where users are allowed.
    let (_, user) = s.user_with_roles("analyst", &["analyst"]).await;
    assert_eq!(bearer_get(&s, "/docs/x", &user).await.status, 200);
    assert_eq!(bearer_get(&s, "/any-service/x", &user).await.status, 200);
    bearer_get(&s, "/services-only/x", &user)
        .await
        .assert_problem(403, "user_not_allowed");
    assert_eq!(bearer_get(&s, "/services-only/x", &nt).await.status, 200);

    // Forward auth decides the same way.
    let verify = |token: &str, uri: &'static str| {
        let auth = format!("Bearer {token}");
        let s = &s;
        async move {
            s.call(
                Method::GET,
                "/auth/verify",
                None,
                &[
                    ("authorization", &auth),
                    ("x-original-uri", uri),
                    ("x-original-method", "GET"),
                ],
            )
            .await
        }
    };
    let r = verify(&rt, "/internal/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tollgate-client"), "reports");
    assert_eq!(r.header("x-tollgate-user"), "");
    verify(&bt, "/internal/x")
        .await
        .assert_problem(403, "client_not_allowed");

    // Taking a scope from a service voids the tokens it already holds; new ones carry less.
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let older = service_token(&s, &billing).await;
    assert_eq!(bearer_get(&s, "/any-service/x", &older).await.status, 200);
    let r = s
        .call(
            Method::PUT,
            "/admin/clients/billing",
            Some(serde_json::json!({ "name": "Billing", "scopes": [], "grant_types": ["client_credentials"] })),
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    bearer_get(&s, "/any-service/x", &older)
        .await
        .assert_problem(401, "session_revoked");
    // Tokens issued in the second of the change are void too (whole seconds).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = service_token(&s, &billing).await;
    assert_eq!(common::jwt_part(&newer, 1)["scope"], "");
    assert_eq!(bearer_get(&s, "/services-only/x", &newer).await.status, 200);
    bearer_get(&s, "/any-service/x", &newer)
        .await
        .assert_problem(403, "insufficient_scope");

    // A revoked token (RFC 7009) and a deleted client's tokens stop at once.
    assert_eq!(
        form_call(&s, "/oauth2/revoke", &billing, &[("token", &bt)])
            .await
            .status,
        200
    );
    bearer_get(&s, "/any-service/x", &bt)
        .await
        .assert_problem(401, "session_revoked");
    let out = s.cli(&["client", "delete", "reports"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The CLI is another process: its deletion reaches the server through the database.
    assert!(
        common::eventually(std::time::Duration::from_secs(5), || async {
            bearer_get(&s, "/internal/x", &rt).await.status == 401
        })
        .await,
        "a deleted client's token must stop working"
    );
    let r = form_call(
        &s,
        "/oauth2/token",
        &reports,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

async fn user_tokens_of_applications_carry_only_their_grant(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up).await;
    let user = email("bob");
    let out = s.cli(
        &[
            "user",
            "add",
            &user,
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success());
    let redirect = format!("http://127.0.0.1:{}/cb", s.port + 1);
    let rp = add_client(
        &s,
        "Docs",
        Some(&redirect),
        &["--scope", "docs:read", "--scope", "reports:read"],
    );
    let mut browser = Browser::new();
    let t = authorized_tokens(
        &mut browser,
        &s,
        &rp,
        &user,
        &[("scope", "openid reports:read")],
    )
    .await;
    let access = t.str("access_token");

    // Routes that do not name applications refuse their tokens, whatever the scopes.
    bearer_get(&s, "/docs/x", &access)
        .await
        .assert_problem(403, "client_not_allowed");
    // Where applications are admitted: the user's roles grant docs:read, but the
    // application was not granted it.
    bearer_get(&s, "/for-apps/x", &access)
        .await
        .assert_problem(403, "insufficient_scope");
    let r = bearer_get(&s, "/any-service/x", &access).await;
    assert_eq!(r.status, 200, "a user's token is not a service's");
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-client"),
        Some(rp.id.as_str())
    );
    assert!(
        !echoed_header(&r.json, "x-tollgate-user")
            .unwrap_or("")
            .is_empty()
    );
    // The upstream's deeper check answers within what the application was granted, not
    // everything the user's roles hold.
    let assertion = echoed_header(&r.json, "x-tollgate-assertion")
        .unwrap()
        .to_string();
    let check = s
        .call(
            Method::POST,
            "/authz/check",
            Some(serde_json::json!({ "scopes": ["docs:read"] })),
            &[("x-tollgate-assertion", &assertion)],
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.json["allowed"], false, "{}", check.text);
    assert_eq!(
        check.json["missing_scopes"],
        serde_json::json!(["docs:read"])
    );
    let check = s
        .call(
            Method::POST,
            "/authz/check",
            Some(serde_json::json!({ "method": "GET", "path": "/docs/x" })),
            &[("x-tollgate-assertion", &assertion)],
        )
        .await;
    assert_eq!(check.json["reason"], "client_not_allowed", "{}", check.text);

    // The ID token is not an access token: not at the gateway, not at the API.
    let id_token = t.str("id_token");
    bearer_get(&s, "/docs/x", &id_token)
        .await
        .assert_problem(401, "invalid_token");
    s.get_bearer("/auth/me", &id_token)
        .await
        .assert_problem(401, "invalid_token");
    // An application's token cannot manage the account.
    s.get_bearer("/auth/me", &access)
        .await
        .assert_problem(403, "first_party_only");
    let r = s
        .call(
            Method::POST,
            "/auth/password",
            Some(serde_json::json!({ "current_password": PASSWORD, "new_password": "another long passphrase" })),
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    r.assert_problem(403, "first_party_only");
}

on_both_backends!(services_are_admitted_by_client_or_scope);
on_sqlite!(user_tokens => user_tokens_of_applications_carry_only_their_grant);
