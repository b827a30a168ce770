//! The API behind the account page and the console: personal API keys and linked
//! identities (`/auth/api-keys`, `/auth/identities`), the admin user list's filters and
//! keyset paging, verifying the audit chain, and the spend report as CSV.

use crate::common;

use common::browser::{Browser, hidden};
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
    let (token, refresh) = s.login_tokens(&alice, PASSWORD).await;
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
    // A key outlives the session that made it: a session signed in an hour ago (a stolen
    // cookie, say) cannot make one without signing in again.
    let (stale, _) = crate::step_up::aged(&s, &refresh).await;
    let r = call(
        &s,
        &stale,
        Method::POST,
        "/auth/api-keys",
        Some(json!({"name": "persist", "scopes": ["docs:read"]})),
    )
    .await;
    r.assert_problem(401, "mfa_required");
    assert!(
        r.header("www-authenticate").contains("max_age=\"600\""),
        "{}",
        r.header("www-authenticate")
    );
    // Names are printable: no control or direction-override characters.
    for name in ["\u{0}x", "a\u{202e}b"] {
        call(
            &s,
            &token,
            Method::POST,
            "/auth/api-keys",
            Some(json!({"name": name, "scopes": ["docs:read"]})),
        )
        .await
        .assert_problem(400, "invalid_name");
    }
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
    // The older search and the filters do not mix (one would be ignored).
    for path in [
        "/admin/users?state=disabled&q=",
        "/admin/users?prefix=a&offset=0",
        "/admin/users?q=%00",
    ] {
        call(&s, &admin, Method::GET, path, None)
            .await
            .assert_problem(400, "invalid_request");
    }
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
    // Two calls of six million dollars each: their sum does not fit 64-bit picodollars,
    // and the report still answers.
    s.sandbox
        .execute(
            "INSERT INTO ai_usage (id, principal, api_key_id, client_id, provider, model, endpoint,
               input_tokens, output_tokens, cost_pico, latency_ms, status, outcome, streamed, created_at, day)
             VALUES ('big-1', 'someone', NULL, NULL, 'openai', 'm', 'chat', 1, 1, 6000000000000000000, 1, 200, 'ok', FALSE, 0, '2026-01-01'),
                    ('big-2', 'someone', NULL, NULL, 'openai', 'm', 'chat', 1, 1, 6000000000000000000, 1, 200, 'ok', FALSE, 0, '2026-01-02')",
        )
        .await;
    let r = call(&s, &admin, Method::GET, "/admin/usage?group_by=user", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["rows"][0]["cost_usd"].as_f64().unwrap() > 9_000_000.0,
        "{}",
        r.text
    );
    s.sandbox.execute("DELETE FROM ai_usage").await;
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

/// Signs `email` in through the hosted pages (and the second step with `secret`): the
/// browser.
async fn hosted_sign_in(s: &TestServer, email: &str, secret: Option<&str>) -> Browser {
    let mut b = Browser::new();
    let page = b.get(&s.url("/ui/login")).await;
    let csrf = hidden(&page.text, "csrf_token").unwrap();
    let r = b
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    if let Some(secret) = secret {
        assert_eq!(r.status, 200, "{}", r.text);
        let token = hidden(&r.text, "mfa_token").unwrap();
        let csrf = hidden(&r.text, "csrf_token").unwrap();
        let code = common::totp_code(secret, 1);
        let r = b
            .post_form(
                &s.url("/ui/mfa"),
                &[
                    ("mfa_token", &token),
                    ("code", &code),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
    } else {
        assert_eq!(r.status, 303, "{}", r.text);
    }
    b
}

/// The browser's session as if it had signed in two hours ago (its next request refreshes
/// in flight, with the old sign-in time).
async fn two_hours_later(s: &TestServer, b: &mut Browser) {
    s.sandbox
        .execute("UPDATE sessions SET auth_time = auth_time - 7200")
        .await;
    b.set_cookie(&s.base, "tg_at", "");
}

/// Console writes need a recent second factor from an admin who has one; deleting one's
/// own account needs a fresh sign-in; neither form can be posted from another site.
async fn stale_sessions_step_up_before_console_writes_and_deletion(b: Backend) {
    let s = TestServer::start(b).await;
    let (admin, admin_token) = s.user_with_roles("admin", &["admin"]).await;
    let (secret, _, _) = crate::mfa::enrol(&s, &admin_token).await;
    let target = email("target");
    let target_id = s.register(&target).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let disabled = || async {
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM users WHERE disabled = TRUE")
            .await
    };

    let mut browser = hosted_sign_in(&s, &admin, Some(&secret)).await;
    let page = browser
        .get(&s.url(&format!("/ui/admin/users/{target_id}")))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = hidden(&page.text, "csrf_token").unwrap();
    let disable = s.url(&format!("/ui/admin/users/{target_id}/disable"));

    // Another site's form is refused, token or not.
    let r = s
        .http
        .post(&disable)
        .header("cookie", browser.cookies(&s.base).header())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post_form(&disable, &[("csrf_token", "forged")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(disabled().await, 0);
    // An administrator does not lock themselves out from the console.
    let me = s.get_bearer("/auth/me", &admin_token).await.str("id");
    for (action, role) in [("disable", ""), ("revoke-role", "admin")] {
        let r = browser
            .post_form(
                &s.url(&format!("/ui/admin/users/{me}/{action}")),
                &[("csrf_token", &csrf), ("role", role)],
            )
            .await;
        assert_eq!(r.status, 400, "{action}: {}", r.text);
        assert!(r.text.contains("cannot disable yourself"), "{}", r.text);
    }
    assert_eq!(disabled().await, 0);

    // Two hours after the second factor (`[admin] mfa_max_age` is 1 h), a read still works and a write steps up first.
    two_hours_later(&s, &mut browser).await;
    let page = browser.get(&s.url("/ui/admin/users")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let r = browser.post_form(&disable, &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to = r.header("location");
    assert!(
        to.starts_with("/ui/mfa?acr=2&rd=%2Fui%2Fadmin%2Fusers%2F"),
        "{to}"
    );
    assert_eq!(disabled().await, 0);

    // The account page's forms: not from another site, and not on someone else's session.
    let mut browser = hosted_sign_in(&s, &target, None).await;
    let account = browser.get(&s.url("/ui/account")).await;
    let csrf = hidden(&account.text, "csrf_token").unwrap();
    let admin_session = s
        .get_bearer("/auth/me", &admin_token)
        .await
        .str("session_id");
    for path in [
        "/ui/account/email",
        "/ui/account/password",
        "/ui/account/sessions/revoke",
        "/ui/account/sessions/revoke-others",
        "/ui/account/consents/withdraw",
        "/ui/account/identities/unlink",
        "/ui/account/keys",
        "/ui/account/keys/revoke",
        "/ui/account/delete",
    ] {
        let r = s
            .http
            .post(s.url(path))
            .header("cookie", browser.cookies(&s.base).header())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "cross-site")
            .body(format!(
                "csrf_token={csrf}&id={admin_session}&name=x&scope%3Aprofile=on"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = browser
        .post_form(
            &s.url("/ui/account/sessions/revoke"),
            &[("csrf_token", &csrf), ("id", &admin_session)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(s.get_bearer("/auth/me", &admin_token).await.status, 200);
    assert_eq!(
        s.sandbox.query_i64("SELECT COUNT(*) FROM api_keys").await,
        0
    );

    // Deleting one's own account two hours after signing in: sign in again first.
    two_hours_later(&s, &mut browser).await;
    let r = browser.get(&s.url("/ui/account/delete")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), "/ui/mfa?rd=%2Fui%2Faccount%2Fdelete");
    let account = browser.get(&s.url("/ui/account")).await;
    let csrf = hidden(&account.text, "csrf_token").unwrap();
    let r = browser
        .post_form(&s.url("/ui/account/delete"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'user.erased'")
            .await,
        0
    );
    assert_eq!(s.sandbox.query_i64("SELECT COUNT(*) FROM users").await, 2);
}

on_both_backends!(
    stale_sessions_step_up_before_console_writes_and_deletion,
    people_manage_their_own_api_keys,
    the_user_list_pages_by_email_under_filters,
    the_audit_chain_is_verified_over_the_api,
    spend_reports_come_as_csv
);
