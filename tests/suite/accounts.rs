//! Accounts and sessions over real HTTP, on SQLite and PostgreSQL: sign-up, both delivery
//! modes, cookie attributes, CSRF, logout, password change, disabled accounts, user
//! enumeration, the session list.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    cookie_mode_round_trip,
    token_mode_round_trip,
    https_public_url_uses_host_prefixed_secure_cookies,
    csrf_is_enforced_for_cookie_requests_only,
    password_change_ends_the_other_sessions,
    disabled_user_can_neither_log_in_nor_refresh,
    unknown_email_and_wrong_password_look_the_same,
    sessions_can_be_listed_and_revoked_by_their_owner_only,
    registration_normalises_and_validates,
    login_rehashes_when_parameters_were_raised,
    no_secret_reaches_the_log,
    revocations_stamped_in_the_past_still_reach_the_server,
);

/// A revocation committed by another process with an old `revoked_at` (a slow commit, a
/// skewed clock) is still picked up by the server's poll and enforced.
async fn revocations_stamped_in_the_past_still_reach_the_server(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("backdated");
    s.register(&email).await;
    let (at, _) = s.login_tokens(&email, PASSWORD).await;
    assert_eq!(s.get_bearer("/auth/me", &at).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.sandbox
        .execute("UPDATE sessions SET revoked_at = created_at - 30, revoked_reason = 'backdated'")
        .await;
    let refused = eventually(Duration::from_secs(4), || async {
        s.get_bearer("/auth/me", &at).await.status == 401
    })
    .await;
    assert!(refused, "a backdated revocation must still be enforced");
}

async fn cookie_mode_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("cookie");
    let reg = s.register(&email).await;
    assert_eq!(reg["user"]["email"], email);
    let user_id = reg["user"]["id"].as_str().unwrap().to_string();

    let login = s
        .post(
            "/auth/login",
            json!({ "email": email.to_uppercase(), "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.json["user"]["id"], user_id.as_str());
    assert_eq!(login.header("cache-control"), "no-store");
    let jar = login.cookies.clone();
    for name in ["tg_at", "tg_rt", "tg_csrf"] {
        assert!(jar.has_attr(name, "samesite"), "{name} SameSite");
        assert_eq!(jar.attr(name, "samesite").as_deref(), Some("lax"));
        assert_eq!(jar.attr(name, "path").as_deref(), Some("/"));
        assert!(
            !jar.has_attr(name, "secure"),
            "{name} must not be Secure over http"
        );
    }
    assert!(jar.has_attr("tg_at", "httponly") && jar.has_attr("tg_rt", "httponly"));
    assert!(
        !jar.has_attr("tg_csrf", "httponly"),
        "scripts must read the CSRF cookie"
    );
    assert_eq!(jar.attr("tg_at", "max-age").as_deref(), Some("900"));

    let cookie = jar.header();
    let me = s
        .call(Method::GET, "/auth/me", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["id"], user_id.as_str());
    assert_eq!(me.json["email"], email.as_str());
    assert_eq!(me.json["roles"], json!(["user"]));
    assert_eq!(me.json["scopes"], json!(["profile"]));
    let sid = me.str("session_id");
    let claims = jwt_part(&jar.value("tg_at"), 1);
    assert_eq!(claims["sid"], sid.as_str());

    // Refresh rotates all three… except the CSRF token, which stays stable for other tabs.
    let csrf = jar.value("tg_csrf");
    let refreshed = s
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_ne!(refreshed.cookies.value("tg_rt"), jar.value("tg_rt"));
    assert_eq!(refreshed.cookies.value("tg_csrf"), csrf);
    let mut jar2 = jar.clone();
    jar2.update(&refreshed.cookies);

    let out = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("cookie", &jar2.header()), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    for name in ["tg_at", "tg_rt", "tg_csrf"] {
        assert_eq!(
            out.cookies.attr(name, "max-age").as_deref(),
            Some("0"),
            "{name} cleared"
        );
    }
    // The access token dies at once, and the refresh token with it.
    let me = s
        .call(Method::GET, "/auth/me", None, &[("cookie", &jar2.header())])
        .await;
    me.assert_problem(401, "session_revoked");
    let again = s
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            &[("cookie", &jar2.header()), ("x-csrf-token", &csrf)],
        )
        .await;
    again.assert_problem(401, "invalid_refresh_token");
}

async fn token_mode_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("token");
    s.register(&email).await;
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.cookies.0.is_empty(), "token mode sets no cookies");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 900);
    let at = r.str("access_token");
    let rt = r.str("refresh_token");
    assert!(
        rt.len() >= 43
            && rt
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );

    let header = jwt_part(&at, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let claims = jwt_part(&at, 1);
    for c in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "sid",
        "client_id",
        "scope",
        "roles",
        "auth_time",
        "amr",
    ] {
        assert!(!claims[c].is_null(), "claim {c} missing: {claims}");
    }
    assert_eq!(claims["iss"], s.base.as_str());
    assert_eq!(claims["scope"], "profile");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["email_verified"], false);

    let me = s.get_bearer("/auth/me", &at).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["session_id"], claims["sid"]);

    // Bearer logout needs no CSRF token; afterwards the token is refused at once.
    let out = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("authorization", &format!("Bearer {at}"))],
        )
        .await;
    assert_eq!(out.status, 204);
    assert!(out.cookies.0.is_empty());
    s.get_bearer("/auth/me", &at)
        .await
        .assert_problem(401, "session_revoked");
    s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn https_public_url_uses_host_prefixed_secure_cookies(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            env: vec![("TOLLGATE_PUBLIC_URL", "https://auth.example.test".into())],
            ..Default::default()
        },
    )
    .await;
    let email = email("https");
    s.register(&email).await;
    let jar = s.login_cookies(&email).await;
    for name in ["__Host-tg_at", "__Host-tg_rt", "__Host-tg_csrf"] {
        assert!(jar.has_attr(name, "secure"), "{name} Secure: {:?}", jar.0);
        assert_eq!(jar.attr(name, "path").as_deref(), Some("/"));
        assert!(
            jar.attr(name, "domain").is_none(),
            "__Host- cookies have no Domain"
        );
    }
    assert!(!jar.0.contains_key("tg_at"));
    let r = s.call(Method::GET, "/healthz", None, &[]).await;
    assert!(
        r.header("strict-transport-security")
            .starts_with("max-age="),
        "HSTS over https"
    );
    let me = s
        .call(Method::GET, "/auth/me", None, &[("cookie", &jar.header())])
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    // Unprefixed names are not read when the prefix is in force.
    let planted = format!("tg_at={}", jar.value("__Host-tg_at"));
    s.call(Method::GET, "/auth/me", None, &[("cookie", &planted)])
        .await
        .assert_problem(401, "unauthenticated");
}

async fn csrf_is_enforced_for_cookie_requests_only(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("csrf");
    s.register(&email).await;
    let jar = s.login_cookies(&email).await;
    let cookie = jar.header();
    let csrf = jar.value("tg_csrf");
    let sid = jwt_part(&jar.value("tg_at"), 1)["sid"]
        .as_str()
        .unwrap()
        .to_string();

    // Missing, wrong, and header-without-cookie all fail.
    s.call(Method::POST, "/auth/logout", None, &[("cookie", &cookie)])
        .await
        .assert_problem(403, "csrf_failed");
    s.call(
        Method::POST,
        "/auth/logout",
        None,
        &[("cookie", &cookie), ("x-csrf-token", "nope")],
    )
    .await
    .assert_problem(403, "csrf_failed");
    let no_csrf_cookie = format!("tg_at={}; tg_rt={}", jar.value("tg_at"), jar.value("tg_rt"));
    s.call(
        Method::POST,
        "/auth/logout",
        None,
        &[("cookie", &no_csrf_cookie), ("x-csrf-token", &csrf)],
    )
    .await
    .assert_problem(403, "csrf_failed");
    s.call(Method::POST, "/auth/refresh", None, &[("cookie", &cookie)])
        .await
        .assert_problem(403, "csrf_failed");
    s.call(
        Method::DELETE,
        &format!("/auth/sessions/{sid}"),
        None,
        &[("cookie", &cookie)],
    )
    .await
    .assert_problem(403, "csrf_failed");
    let pw = json!({ "current_password": PASSWORD, "new_password": "another long password" });
    s.call(
        Method::POST,
        "/auth/password",
        Some(pw),
        &[("cookie", &cookie)],
    )
    .await
    .assert_problem(403, "csrf_failed");
    // Safe methods need no token.
    assert_eq!(
        s.call(Method::GET, "/auth/me", None, &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    // The session survived every refused attempt.
    assert_eq!(
        s.call(Method::GET, "/auth/sessions", None, &[("cookie", &cookie)])
            .await
            .status,
        200
    );

    // Bearer requests are exempt.
    let (at, _) = s.login_tokens(&email, PASSWORD).await;
    let r = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("authorization", &format!("Bearer {at}"))],
        )
        .await;
    assert_eq!(r.status, 204);

    // Login and register check Origin when present.
    let creds = json!({ "email": email, "password": PASSWORD });
    s.call(
        Method::POST,
        "/auth/login",
        Some(creds.clone()),
        &[("origin", "https://evil.example")],
    )
    .await
    .assert_problem(403, "csrf_failed");
    let reg = json!({ "email": common::email("x"), "password": PASSWORD });
    s.call(
        Method::POST,
        "/auth/register",
        Some(reg),
        &[("origin", "null")],
    )
    .await
    .assert_problem(403, "csrf_failed");
    let ok = s
        .call(
            Method::POST,
            "/auth/login",
            Some(creds),
            &[("origin", &s.base)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    // With the token the cookie session logs out.
    let r = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 204);
}

async fn password_change_ends_the_other_sessions(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("pwchange");
    s.register(&email).await;
    let (at_a, _) = s.login_tokens(&email, PASSWORD).await;
    let (at_b, rt_b) = s.login_tokens(&email, PASSWORD).await;
    let auth_a = format!("Bearer {at_a}");

    let wrong =
        json!({ "current_password": "not my password", "new_password": "brand new password" });
    s.call(
        Method::POST,
        "/auth/password",
        Some(wrong),
        &[("authorization", &auth_a)],
    )
    .await
    .assert_problem(403, "invalid_credentials");
    let short = json!({ "current_password": PASSWORD, "new_password": "short" });
    s.call(
        Method::POST,
        "/auth/password",
        Some(short),
        &[("authorization", &auth_a)],
    )
    .await
    .assert_problem(400, "password_too_short");
    assert_eq!(
        s.get_bearer("/auth/me", &at_b).await.status,
        200,
        "refused changes revoke nothing"
    );

    let change = json!({ "current_password": PASSWORD, "new_password": "brand new password" });
    let r = s
        .call(
            Method::POST,
            "/auth/password",
            Some(change),
            &[("authorization", &auth_a)],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        s.get_bearer("/auth/me", &at_a).await.status,
        200,
        "the changing session stays"
    );
    s.get_bearer("/auth/me", &at_b)
        .await
        .assert_problem(401, "session_revoked");
    s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt_b }))
        .await
        .assert_problem(401, "invalid_refresh_token");
    s.post(
        "/auth/login",
        json!({ "email": email, "password": PASSWORD }),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    s.login_tokens(&email, "brand new password").await;
}

async fn disabled_user_can_neither_log_in_nor_refresh(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("disabled");
    s.register(&email).await;
    let (at, rt) = s.login_tokens(&email, PASSWORD).await;

    // Disabled from the CLI, a separate process: the running server learns of it by its poll.
    let out = s.cli(&["user", "disable", &email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["disabled"], true);
    let refused = eventually(Duration::from_secs(3), || async {
        s.get_bearer("/auth/me", &at).await.status == 401
    })
    .await;
    assert!(refused, "a disabled user's access token must stop working");
    s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
        .await
        .assert_problem(401, "invalid_refresh_token");
    s.post(
        "/auth/login",
        json!({ "email": email, "password": PASSWORD }),
    )
    .await
    .assert_problem(403, "account_disabled");
    // A wrong password on a disabled account reveals nothing.
    s.post(
        "/auth/login",
        json!({ "email": email, "password": "wrong password!" }),
    )
    .await
    .assert_problem(401, "invalid_credentials");

    let out = s.cli(&["user", "enable", &email], None);
    assert!(out.status.success());
    s.login_tokens(&email, PASSWORD).await;
}

async fn unknown_email_and_wrong_password_look_the_same(b: Backend) {
    let s = TestServer::start(b).await;
    let known = email("known");
    s.register(&known).await;
    let unknown = email("nobody");
    let attempt = |e: String| {
        let s = &s;
        async move {
            let t = Instant::now();
            let r = s
                .post(
                    "/auth/login",
                    json!({ "email": e, "password": "definitely wrong" }),
                )
                .await;
            (r, t.elapsed())
        }
    };
    let (a, _) = attempt(known.clone()).await;
    let (b2, _) = attempt(unknown.clone()).await;
    assert_eq!(a.status, b2.status);
    assert_eq!(a.json, b2.json, "identical bodies");
    assert_eq!(a.header("www-authenticate"), b2.header("www-authenticate"));
    a.assert_problem(401, "invalid_credentials");

    // Timing: both pay one argon2 verification. Interleave to share any noise.
    let (mut known_t, mut unknown_t) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        known_t.push(attempt(known.clone()).await.1);
        unknown_t.push(attempt(unknown.clone()).await.1);
    }
    known_t.sort();
    unknown_t.sort();
    let ratio = unknown_t[3].as_secs_f64() / known_t[3].as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "median unknown/known time ratio {ratio:.2} ({:?} vs {:?})",
        unknown_t[3],
        known_t[3]
    );
}

async fn sessions_can_be_listed_and_revoked_by_their_owner_only(b: Backend) {
    let s = TestServer::start(b).await;
    let alice = email("alice");
    let mallory = email("mallory");
    s.register(&alice).await;
    s.register(&mallory).await;
    let (a1, _) = s.login_tokens(&alice, PASSWORD).await;
    let (a2, _) = s.login_tokens(&alice, PASSWORD).await;
    let (m1, _) = s.login_tokens(&mallory, PASSWORD).await;
    let sid = |t: &str| jwt_part(t, 1)["sid"].as_str().unwrap().to_string();

    let list = s.get_bearer("/auth/sessions", &a1).await;
    assert_eq!(list.status, 200);
    let ids: Vec<&str> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&sid(&a1).as_str()) && ids.contains(&sid(&a2).as_str()));
    let current: Vec<_> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], sid(&a1).as_str());

    // Mallory cannot see or end Alice's session: it looks like an unknown id.
    let r = s
        .call(
            Method::DELETE,
            &format!("/auth/sessions/{}", sid(&a2)),
            None,
            &[("authorization", &format!("Bearer {m1}"))],
        )
        .await;
    r.assert_problem(404, "not_found");
    assert_eq!(s.get_bearer("/auth/me", &a2).await.status, 200);

    let r = s
        .call(
            Method::DELETE,
            &format!("/auth/sessions/{}", sid(&a2)),
            None,
            &[("authorization", &format!("Bearer {a1}"))],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.get_bearer("/auth/me", &a2)
        .await
        .assert_problem(401, "session_revoked");
    let list = s.get_bearer("/auth/sessions", &a1).await;
    assert_eq!(list.json.as_array().unwrap().len(), 1);
    let r = s
        .call(
            Method::DELETE,
            &format!("/auth/sessions/{}", sid(&a2)),
            None,
            &[("authorization", &format!("Bearer {a1}"))],
        )
        .await;
    r.assert_problem(404, "not_found");
}

async fn registration_normalises_and_validates(b: Backend) {
    let s = TestServer::start(b).await;
    let raw = format!("  {}  ", email("Mixed").to_uppercase());
    let r = s
        .post(
            "/auth/register",
            json!({ "email": raw, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json["user"]["email"], raw.trim().to_lowercase());
    let again = s
        .post(
            "/auth/register",
            json!({ "email": raw.trim().to_lowercase(), "password": PASSWORD }),
        )
        .await;
    again.assert_problem(409, "email_taken");
    s.post(
        "/auth/register",
        json!({ "email": "not-an-email", "password": PASSWORD }),
    )
    .await
    .assert_problem(400, "invalid_email");
    s.post(
        "/auth/register",
        json!({ "email": email("p"), "password": "1234567" }),
    )
    .await
    .assert_problem(400, "password_too_short");
    s.post(
        "/auth/register",
        json!({ "email": email("p"), "password": "x".repeat(1025) }),
    )
    .await
    .assert_problem(400, "password_too_long");
    // No composition rules: eight characters of anything, Unicode counted as characters.
    let r = s
        .post(
            "/auth/register",
            json!({ "email": email("uni"), "password": "ключ🔑ключ🔑" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Hardening item 11: look-alikes of an address are that address, or refused.
    let plain = email("lookalike");
    assert_eq!(
        s.post(
            "/auth/register",
            json!({ "email": plain, "password": PASSWORD })
        )
        .await
        .status,
        201
    );
    let fullwidth: String = plain
        .chars()
        .map(|c| match c {
            'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap(),
            '@' => '＠',
            _ => c,
        })
        .collect();
    let zero_width = plain.replacen('@', "\u{200B}@", 1);
    for spelling in [fullwidth.as_str(), zero_width.as_str()] {
        s.post(
            "/auth/register",
            json!({ "email": spelling, "password": PASSWORD }),
        )
        .await
        .assert_problem(409, "email_taken");
        let r = s
            .post(
                "/auth/login?mode=token",
                json!({ "email": spelling, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 200, "signs in as the same account: {}", r.text);
    }
    let cyrillic_a = plain.replacen('a', "\u{0430}", 1);
    s.post(
        "/auth/register",
        json!({ "email": cyrillic_a, "password": PASSWORD }),
    )
    .await
    .assert_problem(400, "invalid_email");
}

async fn login_rehashes_when_parameters_were_raised(b: Backend) {
    let weak = "[password]\nmemory_kib = 1024\niterations = 1\n";
    let mut s = TestServer::start_with(
        b,
        Options {
            config: weak.into(),
            ..Default::default()
        },
    )
    .await;
    let email = email("rehash");
    s.register(&email).await;
    let stored = s
        .sandbox
        .query_string("SELECT password_hash FROM users")
        .await
        .unwrap();
    assert!(stored.contains("m=1024,t=1"), "{stored}");

    s.restart_with(Some(""), vec![]).await;
    s.login_tokens(&email, PASSWORD).await;
    let stored = s
        .sandbox
        .query_string("SELECT password_hash FROM users")
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "rehashed to the defaults: {stored}"
    );
    s.login_tokens(&email, PASSWORD).await;
}

async fn no_secret_reaches_the_log(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            env: vec![("TOLLGATE_LOG", "trace".into())],
            ..Default::default()
        },
    )
    .await;
    let email = email("logs");
    let secret_pw = "a very secret passphrase 9271";
    s.post(
        "/auth/register",
        json!({ "email": email, "password": secret_pw }),
    )
    .await;
    let (at, rt) = s.login_tokens(&email, secret_pw).await;
    let r = s
        .post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
        .await;
    let rt2 = r.str("refresh_token");
    s.get_bearer("/auth/me", &at).await;
    s.post(
        "/auth/login",
        json!({ "email": email, "password": "wrong secret 12345" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = s.server_log();
    assert!(
        log.contains("login_succeeded"),
        "the log is being written: {log}"
    );
    let hash = s
        .sandbox
        .query_string("SELECT password_hash FROM users")
        .await
        .unwrap();
    for secret in [secret_pw, "wrong secret 12345", &at, &rt, &rt2, &hash] {
        assert!(!log.contains(secret), "secret leaked into the log");
    }
    // Every line is JSON.
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
