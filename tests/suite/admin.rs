//! The admin API: scope `admin` required; accounts, sessions and the audit log; every
//! action audited with the admin as actor.

use crate::common;

use common::{Backend, PASSWORD, TestServer, email};
use reqwest::Method;
use serde_json::{Value, json};

async fn admin_call(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Reply {
    s.call(
        method,
        path,
        body,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

async fn admins_manage_accounts_and_sessions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let user = email("managed");
    let id = s.register(&user).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (user_token, _) = s.login_tokens(&user, PASSWORD).await;

    // Not for ordinary users, nor for anonymous callers.
    admin_call(&s, &user_token, Method::GET, "/admin/users", None)
        .await
        .assert_problem(403, "insufficient_scope");
    s.call(Method::GET, "/admin/users", None, &[])
        .await
        .assert_problem(401, "unauthenticated");

    // Search.
    let found = admin_call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users?q={}", &user[..12]),
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{:?}", found.json);
    let users = found.json["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], id.as_str());
    admin_call(&s, &admin, Method::GET, "/admin/users?limit=0", None)
        .await
        .assert_problem(400, "invalid_request");
    admin_call(&s, &admin, Method::GET, "/admin/users?bogus=1", None)
        .await
        .assert_problem(400, "invalid_request");

    // Sessions: list the user's, revoke one.
    let listed = admin_call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/sessions?user={id}"),
        None,
    )
    .await;
    let sessions = listed.json["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    let sid = sessions[0]["id"].as_str().unwrap();
    let r = admin_call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/admin/sessions/{sid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    s.get_bearer("/auth/me", &user_token)
        .await
        .assert_problem(401, "session_revoked");
    admin_call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/admin/sessions/{sid}"),
        None,
    )
    .await
    .assert_problem(404, "not_found");

    // Roles.
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{id}/roles"),
        Some(json!({ "grant": ["editor"] })),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["roles"], json!(["editor", "user"]));
    admin_call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{id}/roles"),
        Some(json!({ "grant": ["Bad Role"] })),
    )
    .await
    .assert_problem(400, "invalid_role");

    // Disable revokes sessions; enable; unlock.
    let (user_token, _) = s.login_tokens(&user, PASSWORD).await;
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{id}/disable"),
        None,
    )
    .await;
    assert_eq!((r.status, r.json["disabled"].clone()), (200, json!(true)));
    s.get_bearer("/auth/me", &user_token)
        .await
        .assert_problem(401, "session_revoked");
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(r.json["disabled"], false);
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &format!("/admin/users/{id}/unlock"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    admin_call(
        &s,
        &admin,
        Method::POST,
        "/admin/users/no-such-id/disable",
        None,
    )
    .await
    .assert_problem(404, "not_found");
    // Ids that could never be ours never reach SQL (PostgreSQL refuses NUL in text).
    for path in ["/admin/users/%00", "/admin/sessions?user=%00"] {
        admin_call(&s, &admin, Method::GET, path, None)
            .await
            .assert_problem(404, "not_found");
    }

    // Every action is in the log with the admin as actor.
    let admin_id = common::jwt_part(&admin, 1)["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let actions = s
        .sandbox
        .query_strings("SELECT action FROM audit_log WHERE actor LIKE 'admin:%' ORDER BY seq")
        .await;
    for expected in [
        "admin.read",
        "session.revoked",
        "role.granted",
        "user.disabled",
        "user.enabled",
        "user.unlocked",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    let actor = s
        .sandbox
        .query_string("SELECT actor FROM audit_log WHERE action = 'user.disabled'")
        .await
        .unwrap();
    assert_eq!(actor, format!("admin:{admin_id}"));
}

async fn the_audit_log_filters_and_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (admin_email, _) = s.user_with_roles("auditor", &["admin"]).await;
    // An API key with the admin scope works as well as a token.
    let out = s.cli(&["apikey", "add", &admin_email, "--scope", "admin"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    for i in 0..5 {
        s.register(&email(&format!("page{i}"))).await;
    }
    let page1 = admin_call(
        &s,
        &key,
        Method::GET,
        "/admin/audit?action=user.created&limit=4",
        None,
    )
    .await;
    assert_eq!(page1.status, 200, "{:?}", page1.json);
    let entries = page1.json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["action"] == "user.created"));
    assert!(
        entries[0]["seq"].as_i64() > entries[1]["seq"].as_i64(),
        "newest first"
    );
    let next = page1.json["next"].as_i64().unwrap();
    let page2 = admin_call(
        &s,
        &key,
        Method::GET,
        &format!("/admin/audit?action=user.created&limit=4&before={next}"),
        None,
    )
    .await;
    let rest = page2.json["entries"].as_array().unwrap();
    assert_eq!(rest.len(), 2, "6 accounts in all (the auditor too)");
    assert!(page2.json["next"].is_null());
    let failures = admin_call(&s, &key, Method::GET, "/admin/audit?outcome=failure", None).await;
    assert_eq!(failures.json["entries"].as_array().unwrap().len(), 0);
    admin_call(&s, &key, Method::GET, "/admin/audit?since=yesterday", None)
        .await
        .assert_problem(400, "invalid_request");
}

/// Hardening item 6: a demoted admin keeps nothing. Revoking the role ends the user's
/// sessions at once (through the API, and through the CLI from another process), and the
/// admin API reads live roles, so a credential minted while the user was admin (here an
/// API key, which is cached for a few seconds) cannot use or re-grant admin power.
async fn a_demoted_admin_keeps_no_power(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, boss) = s.user_with_roles("boss", &["admin"]).await;
    for via_cli in [false, true] {
        let (mallory, token) = s.user_with_roles("demoted", &["admin"]).await;
        let me = s.get_bearer("/auth/me", &token).await;
        let id = me.str("id");
        let key = s.cli(&["apikey", "add", &mallory, "--scope", "admin"], None);
        assert!(
            key.status.success(),
            "{}",
            String::from_utf8_lossy(&key.stderr)
        );
        let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
        // Both work while the role is held (and the key is now in the cache).
        assert_eq!(
            admin_call(&s, &token, Method::GET, "/admin/users", None)
                .await
                .status,
            200
        );
        assert_eq!(
            admin_call(&s, &key, Method::GET, "/admin/users", None)
                .await
                .status,
            200
        );
        if via_cli {
            let out = s.cli(&["role", "revoke", &mallory, "admin"], None);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let r = admin_call(
                &s,
                &boss,
                Method::POST,
                &format!("/admin/users/{id}/roles"),
                Some(json!({"revoke": ["admin"]})),
            )
            .await;
            assert_eq!(r.status, 200, "{:?}", r.json);
        }
        // The session is over (at once through the API; the CLI's revocation reaches the
        // server through the database within its poll).
        let ended = common::eventually(std::time::Duration::from_secs(10), || async {
            s.get_bearer("/auth/me", &token).await.status == 401
        })
        .await;
        assert!(ended, "the demoted admin's session lives on");
        admin_call(&s, &token, Method::GET, "/admin/users", None)
            .await
            .assert_problem(401, "session_revoked");
        // The key still authenticates (it is the user's), but not as an admin, and it
        // cannot put the role back.
        admin_call(&s, &key, Method::GET, "/admin/users", None)
            .await
            .assert_problem(403, "insufficient_scope");
        admin_call(
            &s,
            &key,
            Method::POST,
            &format!("/admin/users/{id}/roles"),
            Some(json!({"grant": ["admin"]})),
        )
        .await
        .assert_problem(403, "insufficient_scope");
        let roles = admin_call(&s, &boss, Method::GET, &format!("/admin/users/{id}"), None).await;
        assert!(
            !roles.json["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "admin"),
            "{:?}",
            roles.json
        );
    }
}

/// Admins create accounts with a password or by invitation (a mailed code to choose one,
/// on the reset page), set a user's password, or require a reset; each ends the user's
/// sessions and is audited with the admin as actor.
async fn admins_create_accounts_and_set_passwords(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let (_, plain) = s.user_with_roles("plain", &[]).await;
    let create = |body: Value| admin_call(&s, &admin, Method::POST, "/admin/users", Some(body));
    // With a password: signs in at once.
    let ada = email("ada");
    let r = create(json!({"email": ada, "password": PASSWORD, "roles": ["analyst"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["invited"], false);
    assert_eq!(r.json["roles"], json!(["analyst", "user"]));
    let (_, ada_refresh) = s.login_tokens(&ada, PASSWORD).await;
    create(json!({"email": ada, "password": PASSWORD}))
        .await
        .assert_problem(409, "email_taken");
    create(json!({"email": email("weak"), "password": "123"}))
        .await
        .assert_problem(400, "password_too_short");
    create(json!({"email": email("x"), "pasword": PASSWORD}))
        .await
        .assert_problem(400, "invalid_request");
    admin_call(
        &s,
        &plain,
        Method::POST,
        "/admin/users",
        Some(json!({"email": email("nope")})),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    // By invitation: no password until the owner chooses one with the mailed code.
    let bob = email("bob");
    let r = create(json!({"email": bob})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["invited"], true);
    let bob_id = r.str("id");
    let mail = common::wait_for_mail(&s, &bob, 1)
        .await
        .replace("=\r\n", "");
    assert!(mail.contains("choose your password"), "{mail}");
    assert!(mail.contains("7 days"), "{mail}");
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": bob, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 401, "no password yet: {}", r.text);
    let r = s
        .post(
            "/auth/password/reset",
            json!({"token": common::smtp::token_in(&mail), "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.login_tokens(&bob, PASSWORD).await;
    // Setting a password ends the sessions; the new one works.
    let ada_id = s
        .post(
            "/auth/login?mode=token",
            json!({"email": ada, "password": PASSWORD}),
        )
        .await;
    let ada_id = common::jwt_part(&ada_id.str("access_token"), 1)["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/admin/users/{ada_id}/password");
    let new_password = "another long passphrase 42";
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &path,
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .post(
            "/auth/refresh?mode=token",
            json!({"refresh_token": ada_refresh}),
        )
        .await;
    assert_eq!(r.status, 401, "the session ended: {}", r.text);
    s.login_tokens(&ada, new_password).await;
    // Requiring a reset: the password stops working and a reset code is mailed.
    let path = format!("/admin/users/{bob_id}/password");
    for bad in [
        json!({}),
        json!({"password": PASSWORD, "require_reset": true}),
    ] {
        admin_call(&s, &admin, Method::POST, &path, Some(bad))
            .await
            .assert_problem(400, "invalid_request");
    }
    let r = admin_call(
        &s,
        &admin,
        Method::POST,
        &path,
        Some(json!({"require_reset": true})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": bob, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let mail = common::wait_for_mail(&s, &bob, 2)
        .await
        .replace("=\r\n", "");
    assert!(mail.contains("Reset your password"), "{mail}");
    let r = s
        .post(
            "/auth/password/reset",
            json!({"token": common::smtp::token_in(&mail), "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.login_tokens(&bob, new_password).await;
    let actions = s
        .sandbox
        .query_strings(
            "SELECT action || ' ' || actor FROM audit_log WHERE action IN ('user.created', 'user.invited', 'password.set', 'password.reset_required') ORDER BY seq",
        )
        .await;
    let by_admin = actions.iter().filter(|a| a.contains(" admin:")).count();
    assert_eq!(by_admin, 5, "{actions:?}");
}

/// Export (GDPR Art. 15/20) gives everything held about a user; erasure (Art. 17)
/// removes the account and all tied to it, ends its sessions at once, and leaves usage
/// rows and audit entries under an id that names no one, the hash chain intact.
async fn admins_export_and_erase_accounts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (admin_email, admin) = s.user_with_roles("admin", &["admin"]).await;
    let (gone, access) = s.user_with_roles("gone", &[]).await;
    let id = common::jwt_part(&access, 1)["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let out = s.cli(&["apikey", "add", &gone, "--name", "ci"], None);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("tg_"), "{key}");
    let sql: &'static str = Box::leak(
        format!(
            "INSERT INTO ai_usage (id, principal, provider, model, endpoint, input_tokens,
               output_tokens, cost_pico, latency_ms, status, outcome, streamed, created_at, day)
             VALUES ('u1', '{id}', 'openai', 'gpt-test', 'chat/completions', 10, 20, 50, 5, 200,
               'ok', FALSE, 1796000000, '2026-11-30')"
        )
        .into_boxed_str(),
    );
    s.sandbox.execute(sql).await;
    // Export: the profile, sessions, keys (no secret), factors, usage.
    let r = admin_call(
        &s,
        &admin,
        Method::GET,
        &format!("/admin/users/{id}/export"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["profile"]["email"], gone.as_str());
    assert_eq!(r.json["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["api_keys"][0]["name"], "ci");
    assert!(!r.text.contains(&key[3..]), "no key secret in the export");
    assert_eq!(r.json["second_factors"]["totp"], false);
    assert_eq!(r.json["ai_usage"][0]["input_tokens"], 10);
    assert!(r.header("content-disposition").starts_with("attachment"));
    // Erasure.
    let admin_id = s
        .post(
            "/auth/login?mode=token",
            json!({"email": admin_email, "password": PASSWORD}),
        )
        .await;
    let admin_id = common::jwt_part(&admin_id.str("access_token"), 1)["sub"]
        .as_str()
        .unwrap()
        .to_string();
    admin_call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/admin/users/{admin_id}"),
        None,
    )
    .await
    .assert_problem(400, "cannot_erase_self");
    let r = admin_call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.get_bearer("/auth/me", &access)
        .await
        .assert_problem(401, "session_revoked");
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": gone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    admin_call(&s, &admin, Method::GET, &format!("/admin/users/{id}"), None)
        .await
        .assert_problem(404, "not_found");
    admin_call(
        &s,
        &admin,
        Method::DELETE,
        &format!("/admin/users/{id}"),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    // Usage and audit keep the id; the chain still verifies; nothing else remains.
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM ai_usage WHERE id = 'u1'")
            .await,
        1
    );
    for table in ["sessions", "api_keys", "user_roles"] {
        let sql: &'static str = Box::leak(
            format!("SELECT COUNT(*) FROM {table} WHERE user_id = '{id}'").into_boxed_str(),
        );
        assert_eq!(s.sandbox.query_i64(sql).await, 0, "{table}");
    }
    let erased = s
        .sandbox
        .query_strings("SELECT subject FROM audit_log WHERE action = 'user.erased'")
        .await;
    assert_eq!(erased, vec![id.clone()]);
    let out = s.cli(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

on_both_backends!(
    admins_export_and_erase_accounts,
    admins_create_accounts_and_set_passwords,
    admins_manage_accounts_and_sessions,
    the_audit_log_filters_and_pages,
    a_demoted_admin_keeps_no_power
);
