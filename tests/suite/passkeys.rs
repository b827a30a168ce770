//! Passkeys over the API, answered by a software authenticator (`common::passkey`):
//! registration, passwordless sign-in, a passkey as the second step and as a step-up, a
//! challenge working once, a cloned authenticator refused, another account's passkey
//! refused, management, and passkeys off where the public URL is an IP address.

use crate::common;

use common::passkey::SoftPasskey;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

use crate::mfa::bearer;

/// A server whose public URL names a host (`localhost`): WebAuthn has no RP IDs for IP
/// addresses.
async fn start(backend: Backend) -> (TestServer, String) {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let s = TestServer::start_with(
        backend,
        Options {
            env: vec![
                ("TOLLGATE_LISTEN", format!("127.0.0.1:{port}")),
                ("TOLLGATE_PUBLIC_URL", origin.clone()),
            ],
            ..Options::default()
        },
    )
    .await;
    (s, origin)
}

async fn options(s: &TestServer, path: &str, access: Option<&str>) -> Value {
    let auth = access.map(bearer);
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let r = s.call(Method::POST, path, Some(json!({})), &headers).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json
}

/// Registers a new passkey for the holder of `access`, named `name`.
async fn register(s: &TestServer, key: &mut SoftPasskey, access: &str, name: &str) -> Reply {
    let o = options(s, "/auth/webauthn/register/options", Some(access)).await;
    assert_eq!(
        o["authenticatorSelection"]["residentKey"], "required",
        "{o}"
    );
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    let mut credential = key.create(&o);
    credential["name"] = json!(name);
    s.call(
        Method::POST,
        "/auth/webauthn/register",
        Some(credential),
        &[("authorization", &bearer(access))],
    )
    .await
}

async fn passkey_login(s: &TestServer, key: &mut SoftPasskey, extra: Value) -> Reply {
    let o = options(s, "/auth/webauthn/login/options", None).await;
    assert!(
        o["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "the options name no credential: {o}"
    );
    let mut credential = key.get(&o);
    for (k, v) in extra.as_object().unwrap() {
        credential[k] = v.clone();
    }
    s.post("/auth/webauthn/login?mode=token", credential).await
}

async fn passkeys_register_sign_in_and_count_as_two_factors(backend: Backend) {
    let (s, origin) = start(backend).await;
    let email = email("passkey");
    s.register(&email).await;
    let (access, _) = s.login_tokens(&email, PASSWORD).await;
    let mut key = SoftPasskey::new(&origin);
    let r = register(&s, &mut key, &access, "Laptop").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["name"], "Laptop");
    assert_eq!(r.json["id"], key.id());
    // The same answer again: its ceremony was taken.
    let list = s.get_bearer("/auth/webauthn/credentials", &access).await;
    assert_eq!(
        list.json["passkeys"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );

    // Passwordless: the passkey alone, two factors.
    let r = passkey_login(&s, &mut key, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = jwt_part(&r.str("access_token"), 1);
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "2");
    let raised = r.str("access_token");

    // One answer signs in once.
    let o = options(&s, "/auth/webauthn/login/options", None).await;
    let answer = key.get(&o);
    assert_eq!(
        s.post("/auth/webauthn/login?mode=token", answer.clone())
            .await
            .status,
        200
    );
    s.post("/auth/webauthn/login?mode=token", answer)
        .await
        .assert_problem(401, "invalid_credentials");
    // A clone replaying an old counter is refused.
    let o = options(&s, "/auth/webauthn/login/options", None).await;
    let cloned = key.assert_with_counter(&o, 1);
    s.post("/auth/webauthn/login?mode=token", cloned)
        .await
        .assert_problem(401, "invalid_credentials");
    // An answer without user verification is one factor at most: refused.
    key.user_verified = false;
    passkey_login(&s, &mut key, json!({}))
        .await
        .assert_problem(401, "invalid_credentials");
    key.user_verified = true;
    // Garbage is a clear 4xx.
    s.post("/auth/webauthn/login?mode=token", json!({"id": "x"}))
        .await
        .assert_problem(401, "invalid_credentials");
    s.post("/auth/webauthn/login?mode=token", json!([1, 2]))
        .await
        .assert_problem(400, "invalid_request");

    // The password alone no longer signs in: the passkey is the second step.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    r.assert_problem(401, "mfa_required");
    assert_eq!(r.json["methods"], json!(["passkey"]), "{}", r.text);
    let token = r.str("mfa_token");
    let r = passkey_login(&s, &mut key, json!({"mfa_token": token})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = jwt_part(&r.str("access_token"), 1);
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]), "{claims}");
    passkey_login(&s, &mut key, json!({"mfa_token": token}))
        .await
        .assert_problem(400, "invalid_mfa_token");

    // Another account's passkey neither completes this account's sign-in nor raises it.
    let other = common::email("other");
    s.register(&other).await;
    let (other_access, _) = s.login_tokens(&other, PASSWORD).await;
    let mut other_key = SoftPasskey::new(&origin);
    other_key.backup_eligible = true;
    assert_eq!(
        register(&s, &mut other_key, &other_access, "Phone")
            .await
            .status,
        201
    );
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    passkey_login(&s, &mut other_key, json!({"mfa_token": r.str("mfa_token")}))
        .await
        .assert_problem(401, "invalid_credentials");
    // A synced passkey says so.
    let r = passkey_login(&s, &mut other_key, json!({})).await;
    assert_eq!(
        jwt_part(&r.str("access_token"), 1)["amr"],
        json!(["swk", "mfa"])
    );

    // Step-up of the password-only session with the passkey.
    let o = options(&s, "/auth/webauthn/verify/options", Some(&access)).await;
    let wrong = other_key.get(&o);
    s.call(
        Method::POST,
        "/auth/mfa/verify",
        Some(json!({"credential": wrong})),
        &[("authorization", &bearer(&access))],
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let o = options(&s, "/auth/webauthn/verify/options", Some(&access)).await;
    let r = s
        .call(
            Method::POST,
            "/auth/mfa/verify",
            Some(json!({"credential": key.get(&o)})),
            &[("authorization", &bearer(&access))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(jwt_part(&r.str("access_token"), 1)["acr"], "2");

    // Management: rename; removal needs a recent second factor.
    let path = format!("/auth/webauthn/credentials/{}", key.id());
    let r = s
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Work laptop"})),
            &[("authorization", &bearer(&access))],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let second = SoftPasskey::new(&origin);
    let mut second = second;
    assert_eq!(
        register(&s, &mut second, &access, "Spare").await.status,
        201
    );
    let r = s.delete_bearer(&path, &access).await;
    assert_eq!(r.status, 401, "password-only: {}", r.text);
    let r = s.delete_bearer(&path, &raised).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let list = s.get_bearer("/auth/webauthn/credentials", &raised).await;
    let names: Vec<&str> = list.json["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Spare"]);
    // The removed passkey no longer signs in.
    passkey_login(&s, &mut key, json!({}))
        .await
        .assert_problem(401, "invalid_credentials");
    // Mailed and audited.
    let mails: Vec<String> = outbox(&s, &email)
        .iter()
        .map(|m| m.replace("=\r\n", ""))
        .collect();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("a passkey named \"Laptop\"")),
        "{mails:?}"
    );
    assert!(mails.iter().any(|m| m.contains("a passkey was removed")));
    let actions = s
        .sandbox
        .query_strings("SELECT action FROM audit_log WHERE action LIKE 'mfa.passkey%'")
        .await;
    assert_eq!(
        actions.len(),
        5,
        "three added, one renamed, one removed: {actions:?}"
    );
}

/// Registration needs a recent sign-in, a fresh ceremony, and this account's.
async fn registration_is_guarded(backend: Backend) {
    let (s, origin) = start(backend).await;
    let email = email("guard");
    s.register(&email).await;
    let (access, refresh) = s.login_tokens(&email, PASSWORD).await;
    let mut key = SoftPasskey::new(&origin);
    // An answer for another page's origin is refused.
    let mut evil = SoftPasskey::new("http://evil.example");
    let o = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    let r = s
        .call(
            Method::POST,
            "/auth/webauthn/register",
            Some(evil.create(&o)),
            &[("authorization", &bearer(&access))],
        )
        .await;
    r.assert_problem(400, "invalid_passkey");
    // A passkey that does not verify the person is not registered.
    let mut unverified = SoftPasskey::new(&origin);
    unverified.user_verified = false;
    let o = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    s.call(
        Method::POST,
        "/auth/webauthn/register",
        Some(unverified.create(&o)),
        &[("authorization", &bearer(&access))],
    )
    .await
    .assert_problem(400, "invalid_passkey");
    // Another account cannot finish this account's ceremony.
    let other = email_registered(&s, "thief").await;
    let (thief, _) = s.login_tokens(&other, PASSWORD).await;
    let o = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    s.call(
        Method::POST,
        "/auth/webauthn/register",
        Some(key.create(&o)),
        &[("authorization", &bearer(&thief))],
    )
    .await
    .assert_problem(400, "invalid_passkey");
    // A new ceremony supersedes the account's earlier one: no pile of rows.
    let first = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    let _second = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    s.call(
        Method::POST,
        "/auth/webauthn/register",
        Some(key.create(&first)),
        &[("authorization", &bearer(&access))],
    )
    .await
    .assert_problem(400, "invalid_passkey");
    for _ in 0..5 {
        options(&s, "/auth/webauthn/verify/options", Some(&access)).await;
    }
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM webauthn_ceremonies")
            .await,
        2,
        "one register and one verify ceremony"
    );
    // Names are bounded.
    let o = options(&s, "/auth/webauthn/register/options", Some(&access)).await;
    let mut c = key.create(&o);
    c["name"] = json!("x".repeat(100));
    s.call(
        Method::POST,
        "/auth/webauthn/register",
        Some(c),
        &[("authorization", &bearer(&access))],
    )
    .await
    .assert_problem(400, "invalid_name");
    // A session signed in long ago must sign in again first.
    let (old, _) = crate::step_up::aged(&s, &refresh).await;
    s.call(
        Method::POST,
        "/auth/webauthn/register/options",
        Some(json!({})),
        &[("authorization", &bearer(&old))],
    )
    .await
    .assert_problem(400, "reauthentication_required");
}

async fn email_registered(s: &TestServer, tag: &str) -> String {
    let e = email(tag);
    s.register(&e).await;
    e
}

/// On a public URL with an IP address there are no passkeys, and the API says why.
async fn passkeys_are_off_on_an_ip_address(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.post("/auth/webauthn/login/options", json!({}))
        .await
        .assert_problem(400, "passkeys_unavailable");
}

on_both_backends!(
    passkeys_register_sign_in_and_count_as_two_factors,
    registration_is_guarded,
    passkeys_are_off_on_an_ip_address,
);
