//! Step-up (RFC 9470): routes and AI providers that need a second factor or a recent
//! sign-in, raising a session with `/auth/mfa/verify`, the factor life cycle that needs a
//! recent second factor, administrators' writes, and the OpenID Connect provider's
//! `acr_values`.

use crate::common;

use common::browser::Browser;
use common::llm::{MockLlm, provider_section};
use common::oidc::{add_client, authorize_url, code_of, exchange, pkce, walk, walk_as};
use common::upstream::Upstream;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

use crate::mfa::{bearer, enrol, mfa_token};

fn gateway_config(up: &Upstream) -> String {
    format!(
        r#"
[roles.user]
scopes = ["profile"]

[gateway]
login_url = "/ui/login"

[[route]]
path = "/billing/*"
upstream = "{up}"
mfa = true

[[route]]
path = "/export/*"
upstream = "{up}"
max_age = "10m"

[[route]]
path = "/app/*"
upstream = "{up}"
"#,
        up = up.base
    )
}

/// A server with the routes of [`gateway_config`] (and the upstream, to keep it running).
async fn with_routes(backend: Backend) -> (Upstream, TestServer) {
    let up = Upstream::start().await;
    let s = TestServer::start_with(
        backend,
        Options {
            config: gateway_config(&up),
            ..Options::default()
        },
    )
    .await;
    (up, s)
}

/// Forward auth (nginx's dialect) for `GET /billing/invoices` with `access`.
async fn forward(s: &TestServer, access: &str) -> Reply {
    s.call(
        Method::GET,
        "/auth/verify",
        None,
        &[
            ("x-original-uri", "/billing/invoices"),
            ("x-original-method", "GET"),
            ("authorization", &bearer(access)),
        ],
    )
    .await
}

/// The RFC 9470 challenge of a refusal, with its code.
fn assert_step_up(r: &Reply, max_age: Option<u64>, mfa: bool) {
    r.assert_problem(401, "mfa_required");
    assert_step_up_challenge(r, max_age, mfa);
}

/// The AI door's step-up refusal: the provider's error shape, the same challenge.
fn assert_ai_step_up(r: &Reply, mfa: bool) {
    r.assert_ai_error(401, "mfa_required");
    assert_step_up_challenge(r, None, mfa);
}

fn assert_step_up_challenge(r: &Reply, max_age: Option<u64>, mfa: bool) {
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(r#"error="insufficient_user_authentication""#),
        "{challenge}"
    );
    assert_eq!(challenge.contains(r#"acr_values="2""#), mfa, "{challenge}");
    match max_age {
        Some(secs) => assert!(
            challenge.contains(&format!(r#"max_age="{secs}""#)),
            "{challenge}"
        ),
        None => assert!(!challenge.contains("max_age"), "{challenge}"),
    }
}

/// Makes every session's sign-in an hour old (as if it happened long ago), then refreshes
/// `refresh` into an access token that says so.
pub async fn aged(s: &TestServer, refresh: &str) -> (String, String) {
    s.sandbox
        .execute("UPDATE sessions SET auth_time = auth_time - 3600")
        .await;
    let r = s
        .post(
            "/auth/refresh?mode=token",
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (r.str("access_token"), r.str("refresh_token"))
}

async fn verify(s: &TestServer, access: &str, body: Value) -> Reply {
    s.call(
        Method::POST,
        "/auth/mfa/verify",
        Some(body),
        &[("authorization", &bearer(access))],
    )
    .await
}

/// A route with `mfa = true` refuses a password-only session with the RFC 9470 challenge
/// (and sends a browser to the step-up page), admits it once `/auth/mfa/verify` raised
/// it, and refreshes keep the raised state. Forward auth decides the same.
async fn a_route_needing_mfa_admits_after_a_step_up(backend: Backend) {
    let (_up, s) = with_routes(backend).await;
    let email = email("stepup");
    s.register(&email).await;
    let (access, refresh) = s.login_tokens(&email, PASSWORD).await;
    let jar = s.login_cookies(&email).await;
    let (_, codes, _) = enrol(&s, &access).await;
    // A password-only token (signed in before the factor existed) passes plain routes only.
    assert_eq!(s.get_bearer("/app/x", &access).await.status, 200);
    let r = s.get_bearer("/billing/invoices", &access).await;
    assert_step_up(&r, None, true);
    assert_eq!(r.json["acr_values"], "2");
    // Forward auth: the same refusal.
    let r = forward(&s, &access).await;
    assert_step_up(&r, None, true);
    // A full URL as the original target would match no route (and get the default
    // policy, without the step-up): refused.
    for (name, value) in [
        ("x-original-uri", "http://h/billing/invoices"),
        ("x-forwarded-uri", "https://localhost/billing/invoices"),
    ] {
        let method = name.replace("uri", "method");
        s.call(
            Method::GET,
            "/auth/verify",
            None,
            &[
                (name, value),
                (method.as_str(), "GET"),
                ("authorization", &bearer(&access)),
            ],
        )
        .await
        .assert_problem(403, "invalid_request");
    }
    // A browser navigation goes to the step-up page, with where it was going.
    let r = s
        .call(
            Method::GET,
            "/billing/invoices?year=2026",
            None,
            &[("cookie", &jar.header()), ("accept", "text/html")],
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.text);
    let to = r.header("location");
    assert!(
        to.starts_with(&format!("{}/ui/mfa?acr=2&rd=", s.base))
            && to.contains("%2Fbilling%2Finvoices%3Fyear%3D2026"),
        "{to}"
    );
    // Wrong codes do not raise, nor the password; a recovery code does (a second factor).
    verify(&s, &access, json!({"code": "000000"}))
        .await
        .assert_problem(400, "invalid_code");
    verify(&s, &access, json!({"password": PASSWORD}))
        .await
        .assert_problem(400, "code_required");
    let r = verify(&s, &access, json!({"code": codes[0]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let raised = r.str("access_token");
    let claims = jwt_part(&raised, 1);
    assert_eq!(claims["acr"], "2", "{claims}");
    assert!(claims["amr"].as_array().unwrap().contains(&json!("otp")));
    let r = s.get_bearer("/billing/invoices", &raised).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The session itself was raised: its refresh token yields raised tokens.
    assert_eq!(jwt_part(&access, 1)["sid"], claims["sid"]);
    let r = s
        .post(
            "/auth/refresh?mode=token",
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(jwt_part(&r.str("access_token"), 1)["acr"], "2");
    let r = forward(&s, &raised).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A recovery code raises once.
    verify(&s, &access, json!({"code": codes[0]}))
        .await
        .assert_problem(400, "invalid_code");
}

/// `max_age` asks for a recent sign-in: a fresh one passes, an old one is refused naming
/// the limit, and an account without a second factor raises it with its password.
async fn max_age_asks_for_a_recent_sign_in(backend: Backend) {
    let (_up, s) = with_routes(backend).await;
    let email = email("maxage");
    s.register(&email).await;
    let (access, refresh) = s.login_tokens(&email, PASSWORD).await;
    assert_eq!(s.get_bearer("/export/all", &access).await.status, 200);
    let (old, _) = aged(&s, &refresh).await;
    let r = s.get_bearer("/export/all", &old).await;
    assert_step_up(&r, Some(600), false);
    assert_eq!(s.get_bearer("/app/x", &old).await.status, 200);
    // No second factor: a code cannot do, the password can (and a wrong one counts).
    verify(&s, &old, json!({"code": "123456"}))
        .await
        .assert_problem(400, "no_second_factor");
    verify(&s, &old, json!({"password": "not the password"}))
        .await
        .assert_problem(401, "invalid_credentials");
    verify(&s, &old, json!({}))
        .await
        .assert_problem(400, "invalid_request");
    let r = verify(&s, &old, json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let raised = r.str("access_token");
    assert_eq!(jwt_part(&raised, 1)["acr"], "1", "a password is one factor");
    assert_eq!(s.get_bearer("/export/all", &raised).await.status, 200);
    // Still not a second factor.
    assert_step_up(&s.get_bearer("/billing/x", &raised).await, None, true);
    // A revoked session cannot be raised.
    let r = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("authorization", &bearer(&raised))],
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        verify(&s, &raised, json!({"password": PASSWORD}))
            .await
            .status,
        401
    );
}

/// The hosted step-up page with a lapsed access cookie: the session is refreshed in
/// flight and raised; the new refresh cookie reaches the browser with the raised access
/// cookie, so the session lives on (no reuse alarm once the grace window has passed).
async fn a_hosted_step_up_keeps_the_refreshed_session(backend: Backend) {
    let up = Upstream::start().await;
    let s = TestServer::start_with(
        backend,
        Options {
            config: format!(
                "{}\n[session]\nrefresh_grace = \"1s\"\n",
                gateway_config(&up)
            ),
            ..Options::default()
        },
    )
    .await;
    let email = email("lapsed");
    s.register(&email).await;
    let mut b = Browser::new();
    let page = b.get(&s.url("/ui/login")).await;
    let csrf = common::browser::hidden(&page.text, "csrf_token").unwrap();
    let r = b
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    s.sandbox
        .execute("UPDATE sessions SET auth_time = auth_time - 3600")
        .await;
    // The access token lapses (an empty cookie is no token).
    b.set_cookie(&s.base, "tg_at", "");
    let before = b.cookie(&s.base, "tg_rt").unwrap();
    let page = b.get(&s.url("/ui/mfa?rd=%2Fexport%2Fall")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    b.set_cookie(&s.base, "tg_at", "");
    let csrf = common::browser::hidden(&page.text, "csrf_token").unwrap();
    let rd = common::browser::hidden(&page.text, "rd").unwrap();
    // Another site cannot post the step-up or the account's forms, even with the token.
    let cookie = b.cookies(&s.base).header();
    for path in [
        "/ui/mfa",
        "/ui/account/recovery-codes",
        "/ui/account/totp/remove",
    ] {
        let body = format!("password={PASSWORD}&csrf_token={csrf}");
        let r = s
            .http
            .post(s.url(path))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "cross-site")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = b
        .post_form(
            &s.url("/ui/mfa"),
            &[("password", PASSWORD), ("csrf_token", &csrf), ("rd", &rd)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(
        r.header("location").ends_with("/export/all"),
        "{}",
        r.header("location")
    );
    let after = b.cookie(&s.base, "tg_rt").unwrap();
    assert_ne!(before, after, "the refreshed token reached the browser");
    let at = b.cookie(&s.base, "tg_at").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(jwt_part(&at, 1)["auth_time"].as_i64().unwrap() > now - 60);
    // Past the grace window, the browser's refresh token still works.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    b.set_cookie(&s.base, "tg_at", "");
    let r = b.get(&s.url("/export/all")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let revoked = s
        .sandbox
        .query_i64("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(revoked, 0);
}

/// An AI provider with `mfa = true`: a password-only token and an API key are refused
/// with the step-up challenge; a raised session calls through.
async fn an_ai_provider_can_need_a_second_factor(backend: Backend) {
    let llm = MockLlm::start("sk-mock-stepup").await;
    let s = TestServer::start_with(
        backend,
        Options {
            config: format!(
                "[roles.user]\nscopes = [\"profile\", \"ai:invoke\"]\n{}\n[ai.price.\"gpt-test\"]\ninput = 1.0\noutput = 2.0\n",
                provider_section("openai", "openai", &llm.base, "MOCK_KEY", "mfa = true")
            ),
            env: vec![("MOCK_KEY", "sk-mock-stepup".to_string())],
        },
    )
    .await;
    let email = email("aimfa");
    s.register(&email).await;
    let (access, _) = s.login_tokens(&email, PASSWORD).await;
    let (_, codes, _) = enrol(&s, &access).await;
    let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let call = |token: String| {
        let s = &s;
        let body = body.clone();
        async move {
            s.call(
                Method::POST,
                "/ai/openai/v1/chat/completions",
                Some(body),
                &[("authorization", &bearer(&token))],
            )
            .await
        }
    };
    assert_ai_step_up(&call(access.clone()).await, true);
    assert_ai_step_up(&call(api_key(&s, &email, "ai:invoke")).await, true);
    assert!(llm.calls().is_empty(), "nothing reached the provider");
    let r = verify(&s, &access, json!({"code": codes[3]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(r.str("access_token")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(llm.calls().len(), 1);
}

/// Removing a factor and making new recovery codes need a second factor within 10
/// minutes; each change is audited and mailed; an administrator's reset (API) ends the
/// account's sessions.
async fn the_factor_life_cycle_needs_a_recent_second_factor(backend: Backend) {
    let s = TestServer::start(backend).await;
    let email = email("cycle");
    s.register(&email).await;
    let (access, refresh) = s.login_tokens(&email, PASSWORD).await;
    let (_, codes, _) = enrol(&s, &access).await;
    let status = s.get_bearer("/auth/mfa", &access).await;
    assert_eq!(status.json["totp"], true, "{}", status.text);
    assert_eq!(status.json["recovery_codes_left"], 10);
    // The enrolling session signed in with a password only: no recent second factor.
    let regenerate = |token: String| {
        let s = &s;
        async move {
            s.call(
                Method::POST,
                "/auth/mfa/recovery-codes",
                Some(json!({})),
                &[("authorization", &bearer(&token))],
            )
            .await
        }
    };
    assert_step_up(&regenerate(access.clone()).await, Some(600), true);
    let r = s.delete_bearer("/auth/mfa/totp", &access).await;
    assert_step_up(&r, Some(600), true);
    // Raised with a recovery code: new codes, the old ones void.
    let raised = verify(&s, &access, json!({"code": codes[0]}))
        .await
        .str("access_token");
    let r = regenerate(raised.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fresh.len(), 10);
    let token = mfa_token(&s, &email).await;
    let r = s
        .post(
            "/auth/login/mfa?mode=token",
            json!({"mfa_token": token, "code": codes[1]}),
        )
        .await;
    assert_eq!(r.json["code"], "invalid_code", "{}", r.text);
    // An hour later the raised session is no longer recent.
    let (old, _) = aged(&s, &refresh).await;
    let r = s.delete_bearer("/auth/mfa/totp", &old).await;
    assert_step_up(&r, Some(600), true);
    let raised = verify(&s, &old, json!({"code": fresh[0]}))
        .await
        .str("access_token");
    let r = s.delete_bearer("/auth/mfa/totp", &raised).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let status = s.get_bearer("/auth/mfa", &raised).await;
    assert_eq!(status.json["totp"], false);
    assert_eq!(status.json["recovery_codes_left"], 0, "codes go with it");
    // Each change was mailed: set up, recovery code used (×2), new codes, removed.
    let mails: Vec<String> = outbox(&s, &email)
        .iter()
        .map(|m| m.replace("=\r\n", ""))
        .collect();
    let about = |what: &str| mails.iter().filter(|m| m.contains(what)).count();
    assert_eq!(about("authenticator app was set up"), 1, "{mails:?}");
    assert_eq!(about("recovery code was used"), 2, "{mails:?}");
    assert_eq!(about("new recovery codes were made"), 1, "{mails:?}");
    assert_eq!(about("authenticator app was removed"), 1, "{mails:?}");
    // Audited.
    let actions: Vec<String> = s
        .sandbox
        .query_strings("SELECT action FROM audit_log ORDER BY seq")
        .await;
    for a in [
        "mfa.totp_enrolled",
        "mfa.recovery_code_used",
        "mfa.recovery_codes_regenerated",
        "auth.step_up",
        "mfa.totp_removed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

/// An administrator with a second factor writes only with a recent one (reads need none);
/// an API key never writes for them. With `require_mfa`, an admin without a factor is
/// refused until they set one up. The admin API resets a user's factors and ends their
/// sessions.
async fn admins_write_with_a_recent_second_factor(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: "[roles.user]\nscopes = [\"profile\"]\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (admin, access) = s.user_with_roles("admin", &["admin"]).await;
    let (victim_email, victim) = s.user_with_roles("victim", &[]).await;
    let victim_id = jwt_part(&victim, 1)["sub"].as_str().unwrap().to_string();
    let (_, victim_codes, _) = enrol(&s, &victim).await;
    let write = |token: String| {
        let s = &s;
        let path = format!("/admin/users/{victim_id}/unlock");
        async move {
            s.call(
                Method::POST,
                &path,
                None,
                &[("authorization", &bearer(&token))],
            )
            .await
        }
    };
    // No factor: writes as before.
    assert_eq!(write(access.clone()).await.status, 200);
    let (_, codes, _) = enrol(&s, &access).await;
    // Now a factor: the password-only token reads, but does not write.
    assert_eq!(s.get_bearer("/admin/users", &access).await.status, 200);
    assert_step_up(&write(access.clone()).await, Some(3600), true);
    let key = api_key(&s, &admin, "admin");
    assert_eq!(s.get_bearer("/admin/users", &key).await.status, 200);
    assert_step_up(&write(key.clone()).await, Some(3600), true);
    let raised = verify(&s, &access, json!({"code": codes[0]}))
        .await
        .str("access_token");
    assert_eq!(write(raised.clone()).await.status, 200);
    // The admin API resets the victim's factors: their sessions end, a second reset 404s.
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": victim_email, "password": PASSWORD, "totp": victim_codes[0]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let victim_refresh = r.str("refresh_token");
    let path = format!("/admin/users/{victim_id}/mfa");
    let r = s.delete_bearer(&path, &raised).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .post(
            "/auth/refresh?mode=token",
            json!({"refresh_token": victim_refresh}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    s.delete_bearer(&path, &raised)
        .await
        .assert_problem(404, "not_found");
    let r = s
        .post(
            "/auth/login?mode=token",
            json!({"email": victim_email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "no factor left: {}", r.text);
    let audited = s
        .sandbox
        .query_strings("SELECT actor FROM audit_log WHERE action = 'mfa.reset'")
        .await;
    assert_eq!(audited.len(), 1);
    assert!(audited[0].contains(jwt_part(&access, 1)["sub"].as_str().unwrap()));
}

/// `[admin] require_mfa`: an administrator without a second factor is refused until they
/// set one up.
async fn require_mfa_forces_admins_to_enrol(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: "[roles.user]\nscopes = [\"profile\"]\n[admin]\nrequire_mfa = true\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (_, access) = s.user_with_roles("admin", &["admin"]).await;
    s.get_bearer("/admin/users", &access)
        .await
        .assert_problem(403, "mfa_enrolment_required");
    let (_, codes, _) = enrol(&s, &access).await;
    assert_eq!(s.get_bearer("/admin/users", &access).await.status, 200);
    let raised = verify(&s, &access, json!({"code": codes[0]}))
        .await
        .str("access_token");
    assert_eq!(s.get_bearer("/admin/users", &raised).await.status, 200);
}

/// The OpenID Connect provider honours `acr_values=2`: a browser signed in with a
/// password alone must give its second factor, and the ID token says `acr: "2"`; an
/// account without one gets `unmet_authentication_requirements`.
async fn oidc_acr_values_2_forces_the_second_factor(backend: Backend) {
    let s = TestServer::start(backend).await;
    let redirect = format!("http://127.0.0.1:{}/cb", s.port + 1);
    let rp = add_client(&s, "acr-app", Some(&redirect), &["--skip-consent"]);
    let email = email("acr");
    s.register(&email).await;
    let mut b = Browser::new();
    // Signed in with a password while the account had no factor…
    let first = walk(
        &mut b,
        &s,
        &authorize_url(&s, &rp, &refs(&pkce_params(&pkce()))),
        &email,
    )
    .await;
    assert!(first.starts_with(&rp.redirect_uri), "{first}");
    // …then a factor is set up (over the API).
    let (access, _) = s.login_tokens(&email, PASSWORD).await;
    let (_, codes, _) = enrol(&s, &access).await;
    // Without acr_values the browser's session is enough.
    let p = pkce();
    let mut extra = pkce_params(&p);
    let back = walk(&mut b, &s, &authorize_url(&s, &rp, &refs(&extra)), &email).await;
    let t = exchange(&s, &rp, &code_of(&s, &back), Some(&p.verifier)).await;
    assert_eq!(jwt_part(&t.str("id_token"), 1)["acr"], "1");
    // With acr_values=2 it must sign in again, with the second factor.
    let p = pkce();
    extra = pkce_params(&p);
    extra.push(("acr_values".into(), "2".into()));
    let back = walk_as(
        &mut b,
        &s,
        &authorize_url(&s, &rp, &refs(&extra)),
        &email,
        Some(&codes[0]),
    )
    .await;
    let t = exchange(&s, &rp, &code_of(&s, &back), Some(&p.verifier)).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let id = jwt_part(&t.str("id_token"), 1);
    assert_eq!(id["acr"], "2", "{id}");
    assert!(
        id["amr"].as_array().unwrap().contains(&json!("otp")),
        "{id}"
    );
    assert_eq!(jwt_part(&t.str("access_token"), 1)["acr"], "2");
    // An account with no second factor cannot reach it.
    let other = email_of(&s, "noacr").await;
    let mut b = Browser::new();
    let p = pkce();
    let mut extra = pkce_params(&p);
    extra.push(("acr_values".into(), "2".into()));
    let back = walk(&mut b, &s, &authorize_url(&s, &rp, &refs(&extra)), &other).await;
    let q = common::browser::query_of(&back);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("unmet_authentication_requirements"),
        "{back}"
    );
}

/// `tollgate apikey add EMAIL --scope SCOPE`: the key.
fn api_key(s: &TestServer, email: &str, scope: &str) -> String {
    let out = s.cli(&["apikey", "add", email, "--scope", scope], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn pkce_params(p: &common::oidc::Pkce) -> Vec<(String, String)> {
    vec![
        ("code_challenge".into(), p.challenge.clone()),
        ("code_challenge_method".into(), "S256".into()),
    ]
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn email_of(s: &TestServer, tag: &str) -> String {
    let e = email(tag);
    s.register(&e).await;
    e
}

on_both_backends!(
    a_route_needing_mfa_admits_after_a_step_up,
    max_age_asks_for_a_recent_sign_in,
    an_ai_provider_can_need_a_second_factor,
    a_hosted_step_up_keeps_the_refreshed_session,
    the_factor_life_cycle_needs_a_recent_second_factor,
    admins_write_with_a_recent_second_factor,
    require_mfa_forces_admins_to_enrol,
    oidc_acr_values_2_forces_the_second_factor,
);
