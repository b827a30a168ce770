//! Federation end to end: a second Tollgate process is the external identity provider.
//! Both run for real on loopback; a scripted browser carries the user between them, with
//! a cookie jar per origin (as two hosts would have).

use crate::common;

use common::browser::{Browser, absolute, hidden, query_of, unescape};
use common::federation::{
    APPLE_CLIENT_ID, APPLE_KEY_ID, APPLE_TEAM_ID, FakeApple, idp, relying, user_on,
    verified_user_on,
};
use common::oidc::{add_client, authorize_url, code_of, exchange, pkce, walk};
use common::{Backend, PASSWORD, TestServer, free_port};

/// From `/auth/federated/{provider}` on the relying side, through sign-in and consent at
/// the provider, back to the callback: the callback's answer.
async fn federate(
    browser: &mut Browser,
    rp: &TestServer,
    idp: &TestServer,
    provider: &str,
    start_query: &str,
    as_user: &str,
) -> (String, common::Reply) {
    let start = rp.url(&format!("/auth/federated/{provider}{start_query}"));
    let r = browser.get(&start).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to_idp = r.header("location").to_string();
    assert!(to_idp.starts_with(&idp.base), "{to_idp}");
    let q = query_of(&to_idp);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(!q["state"].is_empty());
    if provider == "corp" {
        assert!(!q["nonce"].is_empty());
    }
    assert!(r.cookies.has_attr("tg_fed", "httponly"));
    let back = walk(browser, idp, &to_idp, as_user).await;
    assert!(back.starts_with(&rp.base), "{back}");
    let r = browser.get(&back).await;
    (back, r)
}

async fn sign_in_through_another_tollgate(b: Backend) {
    let port = free_port();
    let idp = idp(b, port).await;
    let rp = relying(b, port, &idp).await;
    // A provider that has not verified the address cannot create an account with it.
    let mallory = user_on(&idp.server, "mallory", &[]);
    let (_, r) = federate(&mut Browser::new(), &rp, &idp.server, "corp", "", &mallory).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("has not verified"), "{}", r.text);
    let alice = verified_user_on(&idp.server, "alice", &["analyst"]).await;
    let mut browser = Browser::new();

    // The hosted sign-in page offers the provider.
    let page = unescape(&browser.get(&rp.url("/ui/login")).await.text);
    assert!(
        page.contains("/auth/federated/corp") && page.contains("Corp SSO"),
        "{page}"
    );

    // First sign-in: an account is created just in time, with the mapped role.
    let (back, r) = federate(&mut browser, &rp, &idp.server, "corp", "", &alice).await;
    assert!(
        r.cookies.0.get("tg_fed").is_some_and(|(v, _)| v.is_empty()),
        "the journey cookie is cleared"
    );
    let r = browser.landed_home(&back, &r).await;
    assert!(
        r.text.contains(&format!("signed in as {alice}")),
        "{}",
        r.text
    );
    let access = browser
        .cookie(&rp.base, "tg_at")
        .expect("signed in at the relying side");
    let me = rp.get_bearer("/auth/me", &access).await;
    let account = me.str("id");
    assert_eq!(me.json["email"], alice.as_str());
    assert_eq!(me.json["roles"], serde_json::json!(["reader", "user"]));
    assert_eq!(
        me.json["scopes"],
        serde_json::json!(["docs:read", "profile"])
    );
    assert_eq!(me.json["amr"], serde_json::json!(["fed"]));
    let listed = rp.cli(&["user", "list"], None);
    let accounts = String::from_utf8_lossy(&listed.stdout)
        .matches(&alice)
        .count();
    assert_eq!(accounts, 1);

    // The link is the account's only way in: its owner cannot remove it.
    let links = rp.get_bearer("/auth/identities", &access).await;
    assert_eq!(
        links.json["identities"][0]["provider"], "corp",
        "{}",
        links.text
    );
    let subject = links.json["identities"][0]["subject"]
        .as_str()
        .unwrap()
        .to_string();
    let unlink = format!("/auth/identities/corp/{subject}");
    let auth = format!("Bearer {access}");
    rp.call(
        reqwest::Method::DELETE,
        &unlink,
        None,
        &[("authorization", &auth)],
    )
    .await
    .assert_problem(400, "last_sign_in_method");

    // The provider withdraws the role: the next sign-in takes the mapped role away, and
    // signs into the same account.
    let out = idp.server.cli(&["role", "revoke", &alice, "analyst"], None);
    assert!(out.status.success());
    let mut second = Browser::new();
    let (back, r) = federate(&mut second, &rp, &idp.server, "corp", "", &alice).await;
    second.landed_home(&back, &r).await;
    let me = rp
        .get_bearer("/auth/me", &second.cookie(&rp.base, "tg_at").unwrap())
        .await;
    assert_eq!(me.str("id"), account, "the same account");
    assert_eq!(me.json["roles"], serde_json::json!(["user"]));
    let listed = rp.cli(&["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout)
            .matches(&alice)
            .count(),
        1
    );
    assert!(
        rp.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'federation.roles_synced'")
            .await
            >= 1
    );

    // A plain OAuth 2.0 provider (no ID token: the user endpoint says who it is).
    let bob = verified_user_on(&idp.server, "bob", &[]).await;
    let mut browser = Browser::new();
    let (back, r) = federate(&mut browser, &rp, &idp.server, "plain", "", &bob).await;
    let r = browser.landed_home(&back, &r).await;
    assert!(r.text.contains(&format!("signed in as {bob}")));

    // With a password as well, alice can unlink the provider.
    let (_, admin) = rp.user_with_roles("admin", &["admin"]).await;
    let r = rp
        .call(
            reqwest::Method::POST,
            &format!("/admin/users/{account}/password"),
            Some(serde_json::json!({"password": "another long passphrase"})),
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (access, _) = rp.login_tokens(&alice, "another long passphrase").await;
    let auth = format!("Bearer {access}");
    let r = rp
        .call(
            reqwest::Method::DELETE,
            &unlink,
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let links = rp.get_bearer("/auth/identities", &access).await;
    assert_eq!(links.json["identities"], serde_json::json!([]));
    assert_eq!(
        rp.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'federation.unlinked'")
            .await,
        1
    );
}

async fn journeys_are_bound_to_the_browser(b: Backend) {
    let port = free_port();
    let idp = idp(b, port).await;
    let rp = relying(b, port, &idp).await;
    let alice = verified_user_on(&idp.server, "alice", &[]).await;

    // A callback without the journey cookie (login CSRF), or with another state, fails.
    let mut browser = Browser::new();
    let r = browser.get(&rp.url("/auth/federated/corp")).await;
    let state = query_of(r.header("location"))["state"].clone();
    let r = Browser::new()
        .get(&rp.url(&format!(
            "/auth/federated/corp/callback?code=x&state={state}"
        )))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = browser
        .get(&rp.url("/auth/federated/corp/callback?code=x&state=other"))
        .await;
    assert_eq!(r.status, 400);
    // The journey is spent: the attacker's attempt cleared it, so even the right state fails.
    let r = browser
        .get(&rp.url(&format!(
            "/auth/federated/corp/callback?code=x&state={state}"
        )))
        .await;
    assert_eq!(r.status, 400);
    // A provider error is shown, not a crash; an unknown provider is 404.
    let mut browser = Browser::new();
    let r = browser.get(&rp.url("/auth/federated/corp")).await;
    let state = query_of(r.header("location"))["state"].clone();
    let r = browser
        .get(&rp.url(&format!(
            "/auth/federated/corp/callback?error=access_denied&state={state}"
        )))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("access_denied"));
    assert_eq!(
        Browser::new()
            .get(&rp.url("/auth/federated/nope"))
            .await
            .status,
        404
    );

    // A code from the provider is only good once, and only with its own journey.
    let mut browser = Browser::new();
    let (back, r) = federate(&mut browser, &rp, &idp.server, "corp", "", &alice).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let replay = browser.get(&back).await;
    assert_eq!(replay.status, 400, "{}", replay.text);
}

async fn existing_accounts_are_linked_only_with_a_verified_email_and_the_password(b: Backend) {
    let port = free_port();
    let idp = idp(b, port).await;
    let rp = relying(b, port, &idp).await;

    // The same address on both sides; the provider has not verified it: no link.
    let dave = user_on(&idp.server, "dave", &[]);
    let out = rp.cli(&["user", "add", &dave, "--password-stdin"], Some(PASSWORD));
    assert!(out.status.success());
    let mut browser = Browser::new();
    let (_, r) = federate(&mut browser, &rp, &idp.server, "corp", "", &dave).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("already exists"));

    // Verified at the provider: the user is asked for the existing account's password.
    idp.server
        .sandbox
        .execute("UPDATE users SET email_verified = TRUE")
        .await;
    let mut browser = Browser::new();
    let (_, page) = federate(&mut browser, &rp, &idp.server, "corp", "", &dave).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("Link your Corp SSO account"),
        "{}",
        page.text
    );
    assert!(
        browser.cookie(&rp.base, "tg_at").is_none(),
        "not signed in before confirming"
    );
    let link = hidden(&page.text, "link").unwrap();
    let csrf = hidden(&page.text, "csrf_token").unwrap();
    let r = browser
        .post_form(
            &rp.url("/auth/federated/link"),
            &[
                ("csrf_token", &csrf),
                ("link", &link),
                ("password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(browser.cookie(&rp.base, "tg_at").is_none());
    let r = browser
        .post_form(
            &rp.url("/auth/federated/link"),
            &[
                ("csrf_token", &csrf),
                ("link", &link),
                ("password", PASSWORD),
            ],
        )
        .await;
    browser
        .landed_home(&rp.url("/auth/federated/link"), &r)
        .await;
    let me = rp
        .get_bearer("/auth/me", &browser.cookie(&rp.base, "tg_at").unwrap())
        .await;
    assert_eq!(me.json["email"], dave.as_str());

    // Linked: the next federated sign-in goes straight in.
    let mut browser = Browser::new();
    let (back, r) = federate(&mut browser, &rp, &idp.server, "corp", "", &dave).await;
    let r = browser.landed_home(&back, &r).await;
    assert!(r.text.contains(&format!("signed in as {dave}")));
    assert_eq!(
        rp.sandbox
            .query_i64("SELECT COUNT(*) FROM federated_identities")
            .await,
        1
    );
}

/// An application of the relying Tollgate signs its user in through the provider: the
/// pending authorization survives the detour and ends in a code.
async fn a_pending_authorization_continues_after_federation(b: Backend) {
    let port = free_port();
    let idp = idp(b, port).await;
    let rp = relying(b, port, &idp).await;
    let erin = verified_user_on(&idp.server, "erin", &[]).await;
    let app = add_client(
        &rp,
        "App",
        Some(&format!("http://127.0.0.1:{}/cb", port + 1)),
        &["--skip-consent"],
    );
    let mut browser = Browser::new();
    let p = pkce();
    let start = authorize_url(
        &rp,
        &app,
        &[
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = browser.get(&start).await;
    let login = browser.get(&absolute(&start, r.header("location"))).await;
    let flow = hidden(&login.text, "flow").unwrap();
    let page = unescape(&login.text);
    assert!(
        page.contains(&format!("/auth/federated/corp?flow={flow}")),
        "{page}"
    );
    let (_, r) = federate(
        &mut browser,
        &rp,
        &idp.server,
        "corp",
        &format!("?flow={flow}"),
        &erin,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let back = r.header("location").to_string();
    let code = code_of(&rp, &back);
    let t = exchange(&rp, &app, &code, Some(&p.verifier)).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(
        common::jwt_part(&t.str("id_token"), 1)["email"],
        erin.as_str()
    );
}

/// From `/auth/federated/apple` to the stand-in's page: the code and state its "Continue"
/// form would post back.
async fn answer_at_apple(browser: &mut Browser, rp: &TestServer) -> (String, String) {
    let r = browser.get(&rp.url("/auth/federated/apple")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let page = browser.get(r.header("location")).await;
    let field = |name: &str| hidden(&page.text, name).unwrap_or_else(|| panic!("{name}"));
    (field("code"), field("state"))
}

/// Sign in with Apple (`kind = "apple"`) against a stand-in that checks what Apple
/// checks: the answer comes back as a cross-site form POST, so the journey cookie is
/// `SameSite=None; Secure`, and the client secret is an ES256 JWT Tollgate signs with the
/// team's key, sent in the body (PyJWT verifies it at the stand-in).
async fn sign_in_with_apple(b: Backend) {
    let port = free_port();
    let rp_base = format!("http://127.0.0.1:{port}");
    let email = common::email("apple");
    let apple = FakeApple::start(&rp_base, &email);
    let rp = apple.relying(b, port).await;
    let mut browser = Browser::new();

    // Out to Apple, asking for a form_post answer, with a journey cookie that can come
    // back on a cross-site POST.
    let r = browser.get(&rp.url("/auth/federated/apple")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to_apple = r.header("location").to_string();
    assert!(to_apple.starts_with(&format!("{}/auth/authorize?", apple.base)));
    let q = query_of(&to_apple);
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["client_id"], APPLE_CLIENT_ID);
    assert!(q["scope"].split(' ').any(|s| s == "name"));
    assert_eq!(
        r.cookies.attr("tg_fed", "samesite").as_deref(),
        Some("none")
    );
    assert!(r.cookies.has_attr("tg_fed", "secure"));
    assert!(r.cookies.has_attr("tg_fed", "httponly"));

    let page = browser.get(&to_apple).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let field = |name: &str| hidden(&page.text, name).unwrap_or_else(|| panic!("{name}"));
    let (code, user) = (field("code"), field("user"));
    let callback = rp.url("/auth/federated/apple/callback");

    // Another site's POST with a state that is not the journey's is refused.
    let forged = browser
        .post_form_from(
            &apple.base,
            &callback,
            &[("code", &code), ("state", "forged")],
        )
        .await;
    assert_eq!(forged.status, 400, "{}", forged.text);
    assert!(forged.text.contains("invalid_state"), "{}", forged.text);
    // ...and leaves the browser's journey alone (another site cannot end it).
    assert!(
        !forged.cookies.0.contains_key("tg_fed"),
        "{:?}",
        forged.cookies
    );

    // The real answer: a cross-site POST carrying the journey cookie.
    let (code, state) = answer_at_apple(&mut browser, &rp).await;
    // Not as a GET: the code would sit in the browser's history.
    let url = format!("{callback}?code={code}&state={state}");
    let r = browser.get(&url).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let journey = browser.cookie(&callback, "tg_fed").unwrap();
    let r = browser
        .post_form_from(
            &apple.base,
            &callback,
            &[("code", &code), ("state", &state), ("user", &user)],
        )
        .await;
    let home = browser.landed_home(&callback, &r).await;
    assert!(home.text.contains(&email), "{}", home.text);
    // The journey is spent: replayed with another code, it never reaches Apple again.
    browser.set_cookie(&callback, "tg_fed", &journey);
    let r = browser
        .post_form_from(
            &apple.base,
            &callback,
            &[("code", "another"), ("state", &state)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("invalid_state"), "{}", r.text);

    // The stand-in saw one exchange with a valid minted secret, in the body.
    let stats = apple.stats().await;
    assert_eq!(stats["issued"], 1, "{stats}");
    let secret = &stats["secret_claims"];
    assert_eq!(secret["header"]["alg"], "ES256");
    assert_eq!(secret["header"]["kid"], APPLE_KEY_ID);
    assert_eq!(secret["claims"]["iss"], APPLE_TEAM_ID);
    assert_eq!(secret["claims"]["sub"], APPLE_CLIENT_ID);
    assert_eq!(secret["claims"]["aud"], apple.base.as_str());
    assert_eq!(stats["refused"], serde_json::json!([]), "{stats}");
    // One account, created just in time from Apple's verified ("true") address.
    assert_eq!(rp.sandbox.query_i64("SELECT COUNT(*) FROM users").await, 1);

    // A person who cancels at Apple is told so; the journey is over either way.
    let mut other = Browser::new();
    let (_, state) = answer_at_apple(&mut other, &rp).await;
    let r = other
        .post_form_from(
            &apple.base,
            &callback,
            &[("error", "user_cancelled_authorize"), ("state", &state)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("user_cancelled_authorize"), "{}", r.text);
    assert_eq!(r.cookies.attr("tg_fed", "max-age").as_deref(), Some("0"));

    // An answer naming another issuer is the browser's (or a mix-up's) doing: 400.
    let (code, state) = answer_at_apple(&mut other, &rp).await;
    let r = other
        .post_form_from(
            &apple.base,
            &callback,
            &[
                ("code", &code),
                ("state", &state),
                ("iss", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Only a provider that answers by POST takes one; a name is not echoed at length.
    let long = "x".repeat(300);
    let r = other
        .post_form_from(
            &apple.base,
            &rp.url(&format!("/auth/federated/{long}/callback")),
            &[("code", "c"), ("state", "s")],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains(&"x".repeat(33)), "{}", r.text);
    assert_eq!(apple.stats().await["issued"], 1);
}

on_both_backends!(sign_in_through_another_tollgate);
on_sqlite!(
    journeys_are_bound_to_the_browser => journeys_are_bound_to_the_browser,
    linking => existing_accounts_are_linked_only_with_a_verified_email_and_the_password,
    pending_authorization => a_pending_authorization_continues_after_federation,
    apple => sign_in_with_apple,
);
