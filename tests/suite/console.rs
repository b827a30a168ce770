//! The API behind the account page and the console: personal API keys and linked
//! identities (`/auth/api-keys`, `/auth/identities`), the admin user list's filters and
//! keyset paging, verifying the audit chain, and the spend report as CSV.

use crate::common;

use common::server::Options;
use common::{Backend, PASSWORD, TestServer, email};
use reqwest::Method;
use serde_json::{Value, json};

fn bearer(token: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {token}"))]
}

async fn call(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Reply {
    let h = bearer(token);
    s.call(method, path, body, &[(h[0].0, h[0].1.as_str())])
        .await
}

fn with_scopes() -> Options {
    Options {
        config: "[roles.user]\nscopes = [\"profile\", \"docs:read\"]\n".into(),
        ..Options::default()
    }
}

async fn people_manage_their_own_api_keys(b: Backend) {
    let s = TestServer::start_with(b, with_scopes()).await;
    let alice = email("alice");
    s.register(&alice).await;
    let (token, _) = s.login_tokens(&alice, PASSWORD).await;
    let bob = email("bob");
    s.register(&bob).await;
    let (bob_token, _) = s.login_tokens(&bob, PASSWORD).await;

    // Scopes the roles grant, at least one; a lifetime of 1 to 365 days; a name.
    for (body, code) in [
        (json!({"name": "ci", "scopes": []}), "scope_required"),
        (
            json!({"name": "ci", "scopes": ["admin"]}),
            "scope_not_granted",
        ),
        (
            json!({"name": "ci", "scopes": ["docs:read"], "expires_in_days": 0}),
            "invalid_expiry",
        ),
        (
            json!({"name": "ci", "scopes": ["docs:read"], "expires_in_days": 366}),
            "invalid_expiry",
        ),
        (
            json!({"name": " ", "scopes": ["docs:read"]}),
            "invalid_name",
        ),
        (
            json!({"name": "ci", "scopes": ["docs:read"], "owner": "x"}),
            "invalid_request",
        ),
    ] {
        call(
            &s,
            &token,
            Method::POST,
            "/auth/api-keys",
            Some(body.clone()),
        )
        .await
        .assert_problem(400, code);
    }
    s.call(
        Method::POST,
        "/auth/api-keys",
        Some(json!({"name": "x", "scopes": ["profile"]})),
        &[],
    )
    .await
    .assert_problem(401, "unauthenticated");

    let made = call(
        &s,
        &token,
        Method::POST,
        "/auth/api-keys",
        Some(json!({"name": "ci", "scopes": ["docs:read"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let key = made.str("key");
    let id = made.str("id");
    assert!(key.starts_with("tg_"), "{key}");
    let expires = made.json["expires_at"].as_i64().unwrap();
    let created = made.json["created_at"].as_i64().unwrap();
    assert_eq!(expires - created, 30 * 86_400);

    // Listed without the key; another person neither sees nor revokes it.
    let listed = call(&s, &token, Method::GET, "/auth/api-keys", None).await;
    assert_eq!(listed.json["api_keys"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key));
    let theirs = call(&s, &bob_token, Method::GET, "/auth/api-keys", None).await;
    assert_eq!(theirs.json["api_keys"], json!([]));
    call(
        &s,
        &bob_token,
        Method::DELETE,
        &format!("/auth/api-keys/{id}"),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    call(
        &s,
        &token,
        Method::DELETE,
        "/auth/api-keys/not-a-uuid",
        None,
    )
    .await
    .assert_problem(404, "not_found");

    // The key works until its owner revokes it.
    assert_eq!(s.get_bearer("/auth/usage", &key).await.status, 200);
    let r = call(
        &s,
        &token,
        Method::DELETE,
        &format!("/auth/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.get_bearer("/auth/usage", &key).await.status, 401);
    call(
        &s,
        &token,
        Method::DELETE,
        &format!("/auth/api-keys/{id}"),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action IN ('apikey.created', 'apikey.revoked')")
            .await,
        2
    );
    // Nobody has linked identities here; unlinking one that is not there is a 404.
    let ids = call(&s, &token, Method::GET, "/auth/identities", None).await;
    assert_eq!(ids.json["identities"], json!([]));
    call(
        &s,
        &token,
        Method::DELETE,
        "/auth/identities/corp/123",
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

async fn the_user_list_pages_by_email_under_filters(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let tag = format!("pg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut emails = Vec::new();
    for i in 0..7 {
        let e = format!("{tag}-{i}@example.com");
        let roles = if i % 2 == 0 {
            json!(["reader"])
        } else {
            json!([])
        };
        let r = call(
            &s,
            &admin,
            Method::POST,
            "/admin/users",
            Some(json!({"email": e, "password": PASSWORD, "roles": roles, "invite": false})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        emails.push((e, r.str("id")));
    }
    let disabled = &emails[3].1;
    let r = call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{disabled}/disable"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Every page of three, following `next`, gives each match once, in email order.
    let mut seen = Vec::new();
    let mut path = format!("/admin/users?prefix={tag}&limit=3");
    loop {
        let r = call(&s, &admin, Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for u in r.json["users"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_string());
        }
        match r.json["next"].as_str() {
            Some(after) => path = format!("/admin/users?prefix={tag}&limit=3&after={after}"),
            None => break,
        }
    }
    let want: Vec<String> = emails.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(seen, want);
    // An upper-case prefix finds the same (addresses are stored in lower case).
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={}", tag.to_uppercase()),
        None,
    )
    .await;
    assert_eq!(r.json["users"].as_array().unwrap().len(), 7);

    let count = |r: &common::Reply| r.json["users"].as_array().unwrap().len();
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={tag}&role=reader"),
        None,
    )
    .await;
    assert_eq!(count(&r), 4, "{}", r.text);
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={tag}&state=disabled"),
        None,
    )
    .await;
    assert_eq!(count(&r), 1);
    assert_eq!(r.json["users"][0]["id"], disabled.as_str());
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={tag}&state=active"),
        None,
    )
    .await;
    assert_eq!(count(&r), 6);
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={tag}&role=reader&state=disabled"),
        None,
    )
    .await;
    assert_eq!(count(&r), 0);
    // A prefix is text, not a pattern.
    let r = call(&s, &admin, Method::GET, "/admin/users?prefix=%25", None).await;
    assert_eq!(count(&r), 0);
    let r = call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?prefix={}_", &tag[..tag.len() - 1]),
        None,
    )
    .await;
    assert_eq!(count(&r), 0);
    call(&s, &admin, Method::GET, "/admin/users?state=gone", None)
        .await
        .assert_problem(400, "invalid_request");
}

async fn the_audit_chain_is_verified_over_the_api(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let user = email("plain");
    s.register(&user).await;
    let (user_token, _) = s.login_tokens(&user, PASSWORD).await;
    call(&s, &user_token, Method::POST, "/admin/audit/verify", None)
        .await
        .assert_problem(403, "insufficient_scope");
    let r = call(&s, &admin, Method::POST, "/admin/audit/verify", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intact"], true, "{}", r.text);
    assert!(r.json["entries"].as_i64().unwrap() > 2);
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'audit.verified' AND outcome = 'success'")
            .await,
        1
    );
    // Rewriting an entry (past the database's guards) breaks the chain, and the check
    // says where.
    crate::audit::drop_guards(&s, b).await;
    s.sandbox
        .execute("UPDATE audit_log SET action = 'auth.nothing' WHERE seq = 2")
        .await;
    let r = call(&s, &admin, Method::POST, "/admin/audit/verify", None).await;
    assert_eq!(r.json["intact"], false, "{}", r.text);
    assert_eq!(r.json["seq"], 2);
}

async fn spend_reports_come_as_csv(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let r = call(
        &s,
        &admin,
        Method::GET,
        "/admin/usage?format=csv&group_by=user,model&order=cost",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").starts_with("text/csv"));
    assert_eq!(
        r.text,
        "user,model,requests,input_tokens,output_tokens,cost_usd\r\n"
    );
    call(&s, &admin, Method::GET, "/admin/usage?format=xml", None)
        .await
        .assert_problem(400, "invalid_request");
    call(&s, &admin, Method::GET, "/admin/usage?order=random", None)
        .await
        .assert_problem(400, "invalid_request");
}

on_both_backends!(
    people_manage_their_own_api_keys,
    the_user_list_pages_by_email_under_filters,
    the_audit_chain_is_verified_over_the_api,
    spend_reports_come_as_csv
);
