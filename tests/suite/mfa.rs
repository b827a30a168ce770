//! Second factors over HTTP: TOTP enrolment, sign-in with `mfa_required` and its second
//! step, a code working once, recovery codes, the code in the login body.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::json;

/// The current code of a base32 secret, as an authenticator app shows it.
pub fn code_now(secret_b32: &str) -> String {
    totp_code(secret_b32, 0)
}

/// Signs in `email` with the password alone: the `mfa_token` of the second step.
pub async fn mfa_token(s: &TestServer, email: &str) -> String {
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    r.assert_problem(401, "mfa_required");
    r.str("mfa_token")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Enrols TOTP for a new account: its email, secret and recovery codes.
pub async fn enrolled(s: &TestServer, tag: &str) -> (String, String, Vec<String>, String) {
    let email = email(tag);
    s.register(&email).await;
    let (access, _) = s.login_tokens(&email, PASSWORD).await;
    let (secret, codes, first) = enrol(s, &access).await;
    (email, secret, codes, first)
}

/// Enrols TOTP for the holder of `access` (signed in just now): the secret, the recovery
/// codes and the code that confirmed it.
pub async fn enrol(s: &TestServer, access: &str) -> (String, Vec<String>, String) {
    let auth = bearer(access);
    let r = s
        .call(
            Method::POST,
            "/auth/mfa/totp",
            Some(json!({})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.str("secret");
    assert!(
        r.str("otpauth_uri").starts_with("otpauth://totp/"),
        "{}",
        r.text
    );
    // A wrong first code does not confirm.
    let r = s
        .call(
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(json!({"code": "000000"})),
            &[("authorization", &auth)],
        )
        .await;
    assert_ne!(r.status, 200, "{}", r.text);
    let first = code_now(&secret);
    let r = s
        .call(
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(json!({"code": first})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes, first)
}

async fn sign_in_needs_the_second_factor_and_a_code_works_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (email, _secret, codes, first) = enrolled(&s, "totp").await;
    // The password alone: 401 mfa_required with a token.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    r.assert_problem(401, "mfa_required");
    assert!(r.json["access_token"].is_null());
    let token = r.str("mfa_token");
    assert_eq!(r.json["methods"], json!(["totp", "recovery_code"]));
    // The confirming code was spent: the same step is refused (replay).
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": first}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["code"], "invalid_code");
    // A recovery code completes it, once; the token is then spent too.
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": codes[0].to_lowercase()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = jwt_part(&r.str("access_token"), 1);
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "2", "{claims}");
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": codes[1]}),
        )
        .await;
    r.assert_problem(400, "invalid_mfa_token");
    let token = mfa_token(&s, &email).await;
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": codes[0]}),
        )
        .await;
    assert_eq!(
        r.json["code"], "invalid_code",
        "a recovery code works once: {}",
        r.text
    );
    // A wrong password never reaches the second step.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": "wrong wrong wrong", "totp": "123456"}),
        )
        .await;
    r.assert_problem(401, "invalid_credentials");
}

/// Cookie mode (the default) answers the same challenge and sets the browser's cookies
/// only once the second step passes; the code may also come with the password.
async fn cookie_mode_and_the_code_with_the_password(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (email, secret, _codes, first) = enrolled(&s, "cookie").await;
    let r = s
        .post("/auth/login", json!({"email": email, "password": PASSWORD}))
        .await;
    r.assert_problem(401, "mfa_required");
    assert!(r.cookies.0.is_empty(), "no session before the second step");
    let token = r.str("mfa_token");
    // Wait for a step later than the one the enrolment spent.
    let code = loop {
        let c = code_now(&secret);
        if c != first {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let r = s
        .post("/auth/login/mfa", json!({"mfa_token": token, "code": code}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.cookies.0.keys().any(|k| k.contains("tg_at")),
        "{:?}",
        r.cookies.0
    );
    // The same code again, with the password: a replay.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD, "totp": code}),
        )
        .await;
    assert_eq!(r.json["code"], "invalid_code", "{}", r.text);
    // A password-only account ignores `totp` and signs in as before (acr 1).
    let plain = email_of_new_account(&s, "plain").await;
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": plain, "password": PASSWORD, "totp": "123456"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = jwt_part(&r.str("access_token"), 1);
    assert_eq!(
        (claims["amr"].clone(), claims["acr"].clone()),
        (json!(["pwd"]), json!("1"))
    );
}

async fn email_of_new_account(s: &TestServer, tag: &str) -> String {
    let e = email(tag);
    s.register(&e).await;
    e
}

/// Guessing codes counts like guessing passwords: after `max_failures` wrong codes the
/// account is locked for this client, and the right code is refused unchecked.
async fn wrong_codes_lock_the_account_like_wrong_passwords(backend: Backend) {
    let config = "[limits]\ndefault_rules = false\n[limits.sign_in]\nmax_failures = 3\nip_max_failures = 50\naccount_max_failures = 10\nlockout = \"60s\"\nmax_lockout = \"60s\"\n\n[roles.user]\nscopes = [\"profile\"]\n";
    let s = TestServer::start_with(
        backend,
        Options {
            config: config.into(),
            env: vec![],
        },
    )
    .await;
    let (email, secret, _codes, first) = enrolled(&s, "guess").await;
    let guesses: Vec<&str> = ["000000", "111111", "222222"]
        .into_iter()
        .filter(|g| *g != first)
        .take(2)
        .collect();
    // Two wrong codes, then the right password again (which must not clear the count),
    // then a third wrong code: locked.
    let body = json!({"email": email, "password": PASSWORD});
    let token = s
        .post("/auth/login?mode=token", body.clone())
        .await
        .str("mfa_token");
    for guess in &guesses {
        let r = s
            .post(
                "/auth/login/mfa?mode=token",
                json!({"mfa_token": token, "code": guess}),
            )
            .await;
        assert_eq!(r.json["code"], "invalid_code", "{}", r.text);
    }
    let token = s
        .post("/auth/login?mode=token", body.clone())
        .await
        .str("mfa_token");
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": guesses[0]}),
        )
        .await;
    assert_eq!(r.json["code"], "invalid_code", "{}", r.text);
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    r.assert_problem(429, "too_many_attempts");
    let _ = secret;
}

/// Setting up a factor needs a recent sign-in (a stolen or forgotten session must not
/// plant its own authenticator); an administrator can remove a lost one, which ends the
/// account's sessions.
async fn enrolment_needs_a_recent_sign_in_and_an_admin_can_reset(backend: Backend) {
    let s = TestServer::start(backend).await;
    let stale = email("stale");
    s.register(&stale).await;
    let (_, refresh) = s.login_tokens(&stale, PASSWORD).await;
    let (old, _) = crate::step_up::aged(&s, &refresh).await;
    let old = bearer(&old);
    let r = s
        .call(
            Method::POST,
            "/auth/mfa/totp",
            Some(json!({})),
            &[("authorization", &old)],
        )
        .await;
    r.assert_problem(400, "reauthentication_required");

    let (email, _secret, _codes, _first) = enrolled(&s, "reset").await;
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    r.assert_problem(401, "mfa_required");
    let out = s.cli(&["user", "reset-mfa", &email], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No second factor any more; a second reset changes nothing and says so.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = s.cli(&["user", "reset-mfa", &email], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("had no second factor"));
}

/// One challenge completes one sign-in: racing completions, each with a different valid
/// recovery code (so only the challenge itself can stop the others), yield one session.
async fn racing_completions_of_one_challenge_yield_one_session(backend: Backend) {
    let s = std::sync::Arc::new(TestServer::start(backend).await);
    let (email, _secret, codes, _first) = enrolled(&s, "race").await;
    let token = mfa_token(&s, &email).await;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let codes = std::sync::Arc::new(codes);
    let replies = simultaneously(&s, 5, move |s| {
        let (token, codes, next) = (token.clone(), codes.clone(), next.clone());
        async move {
            let code = codes[next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)].clone();
            s.post(
                "/auth/login/mfa?mode=token",
                json!({"mfa_token": token, "code": code}),
            )
            .await
        }
    })
    .await;
    let won = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
}

on_both_backends!(
    racing_completions_of_one_challenge_yield_one_session,
    enrolment_needs_a_recent_sign_in_and_an_admin_can_reset,
    sign_in_needs_the_second_factor_and_a_code_works_once,
    cookie_mode_and_the_code_with_the_password,
    wrong_codes_lock_the_account_like_wrong_passwords
);
