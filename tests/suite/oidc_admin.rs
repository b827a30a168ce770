//! The hosted sign-in page on its own (CSRF, return URLs, refusals, lockout), managing
//! clients through the admin API and the CLI, and users' consents.

use crate::common;

use common::browser::{Browser, hidden};
use common::oidc::{Rp, add_client, authorized_code, authorized_tokens, exchange, form_call};
use common::{Backend, Options, PASSWORD, TestServer, email};
use reqwest::Method;
use serde_json::{Value, json};

async fn hosted_sign_in_page(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[roles.user]\nscopes = [\"profile\"]\n[gateway]\nreturn_origins = [\"https://app.example.com\"]\n".into(),
            env: vec![],
        },
    )
    .await;
    let user = email("page");
    s.register(&user).await;
    let mut browser = Browser::new();
    let page = browser
        .get(&s.url("/ui/login?rd=https%3A%2F%2Fevil.example%2Fx"))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        hidden(&page.text, "rd").is_none(),
        "a return URL off the allowed origins is dropped"
    );
    assert!(
        page.cookies.0.contains_key("tg_csrf"),
        "the form's CSRF cookie is set"
    );
    let csrf = hidden(&page.text, "csrf_token").unwrap();

    // No CSRF token, or a foreign Origin: refused, and nobody is signed in.
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[("email", &user), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("did not come from this site"));
    assert!(!r.cookies.0.contains_key("tg_at"));
    let body = format!("email={user}&password={PASSWORD}&csrf_token={csrf}").replace(' ', "+");
    let r = s
        .http
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .header("cookie", format!("tg_csrf={csrf}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A wrong password: the page again, saying so, with the email kept.
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &user),
                ("password", "not the password!"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("role=\"alert\"") && r.text.contains("incorrect"));
    assert!(r.text.contains(&format!("value=\"{user}\"")));
    assert!(!r.cookies.0.contains_key("tg_at"));

    // Success with an allowed return URL goes there; an off-site one is ignored.
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &user),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("rd", "https://app.example.com/home"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), "https://app.example.com/home");
    for c in ["tg_at", "tg_rt"] {
        assert!(r.cookies.has_attr(c, "httponly"), "{c}");
    }
    assert_ne!(
        r.cookies.value("tg_csrf"),
        csrf,
        "a new session gets a new CSRF token"
    );
    let csrf = r.cookies.value("tg_csrf");
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &user),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("rd", "//evil.example/x"),
            ],
        )
        .await;
    // No redirect off-site: the account's own start page instead.
    let r = browser.landed_home(&s.url("/ui/login"), &r).await;
    assert!(r.text.contains(&format!("signed in as {user}")));
    // Signed in already: the page says so, or goes straight to an allowed return URL.
    let r = browser.get(&s.url("/ui/login?rd=%2Fwelcome")).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), s.url("/welcome"));
}

async fn hosted_sign_in_shares_the_lockout(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[limits]\n[limits.sign_in]\nmax_failures = 2\n".into(),
            env: vec![],
        },
    )
    .await;
    let user = email("locked");
    s.register(&user).await;
    let mut browser = Browser::new();
    let csrf = hidden(&browser.get(&s.url("/ui/login")).await.text, "csrf_token").unwrap();
    for _ in 0..2 {
        let r = browser
            .post_form(
                &s.url("/ui/login"),
                &[
                    ("email", &user),
                    ("password", "wrong password!"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // Locked, even with the right password, through the form and through the API alike.
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &user),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(!r.header("retry-after").is_empty());
    let api = s
        .post(
            "/auth/login",
            json!({ "email": user, "password": PASSWORD }),
        )
        .await;
    api.assert_problem(429, "too_many_attempts");
}

async fn clients_through_the_admin_api_and_the_cli(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let (_, plain) = s.user_with_roles("plain", &[]).await;
    let auth = format!("Bearer {admin}");
    let call = |method: Method, path: &str, body: Option<Value>| {
        let (s, auth, path) = (&s, auth.clone(), path.to_string());
        async move {
            s.call(method, &path, body, &[("authorization", &auth)])
                .await
        }
    };
    s.get_bearer("/admin/clients", &plain)
        .await
        .assert_problem(403, "insufficient_scope");

    let created = call(
        Method::POST,
        "/admin/clients",
        Some(json!({ "name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb"], "scopes": ["docs:read"] })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.str("client_id");
    let secret = created.str("client_secret");
    assert!(id.starts_with("wiki-"));
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(
        created.json["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );

    // Bad metadata is a 400 naming the problem.
    for bad in [
        json!({ "name": "X", "redirect_uris": ["http://wiki.example.com/cb"] }),
        json!({ "name": "X", "redirect_uris": ["https://wiki.example.com/cb#f"] }),
        json!({ "name": "X", "public": true, "grant_types": ["client_credentials"] }),
        json!({ "name": "", "grant_types": ["client_credentials"] }),
        json!({ "name": "X", "grant_types": ["implicit"] }),
        json!({ "name": "X", "id": "Tollgate" }),
        json!({ "name": "X", "secret": "mine" }),
    ] {
        let r = call(Method::POST, "/admin/clients", Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let dup = call(
        Method::POST,
        "/admin/clients",
        Some(json!({ "name": "W", "id": id })),
    )
    .await;
    dup.assert_problem(400, "client_exists");

    let listed = call(Method::GET, "/admin/clients", None).await;
    assert!(listed.text.contains(&id) && !listed.text.contains(&secret));
    let updated = call(
        Method::PUT,
        &format!("/admin/clients/{id}"),
        Some(json!({ "name": "Wiki 2", "redirect_uris": ["https://wiki.example.com/cb2"] })),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(
        updated.json["redirect_uris"],
        json!(["https://wiki.example.com/cb2"])
    );
    assert_eq!(updated.json["id_token_signed_response_alg"], "RS256");
    // A setting left out of a later update stays as it was.
    let ed = call(
        Method::PUT,
        &format!("/admin/clients/{id}"),
        Some(
            json!({ "name": "Wiki 2", "redirect_uris": ["https://wiki.example.com/cb2"],
                     "id_token_signed_response_alg": "EdDSA" }),
        ),
    )
    .await;
    assert_eq!(ed.json["id_token_signed_response_alg"], "EdDSA");
    let kept = call(
        Method::PUT,
        &format!("/admin/clients/{id}"),
        Some(json!({ "name": "Wiki 3", "redirect_uris": ["https://wiki.example.com/cb2"] })),
    )
    .await;
    assert_eq!(kept.json["id_token_signed_response_alg"], "EdDSA");
    // A partial body changes what it names and nothing else, with PUT or PATCH.
    let before = call(Method::GET, &format!("/admin/clients/{id}"), None).await;
    for (method, body) in [
        (Method::PUT, json!({ "name": "Wiki 4" })),
        (Method::PATCH, json!({ "skip_consent": true })),
        (Method::PATCH, json!({})),
    ] {
        let r = call(method, &format!("/admin/clients/{id}"), Some(body.clone())).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text);
        for field in [
            "redirect_uris",
            "post_logout_redirect_uris",
            "grant_types",
            "scopes",
            "id_token_signed_response_alg",
            "public",
        ] {
            assert_eq!(r.json[field], before.json[field], "{body} changed {field}");
        }
    }
    let after = call(Method::GET, &format!("/admin/clients/{id}"), None).await;
    assert_eq!(after.json["name"], "Wiki 4");
    assert_eq!(after.json["skip_consent"], true);
    call(
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({ "redirect_uri": ["https://typo.example/cb"] })),
    )
    .await
    .assert_problem(400, "invalid_request");

    // A rotated secret replaces the old one.
    let rp = Rp {
        id: id.clone(),
        secret: Some(secret.clone()),
        redirect_uri: String::new(),
    };
    let probe = |rp: Rp| {
        let s = &s;
        async move {
            form_call(s, "/oauth2/introspect", &rp, &[("token", "x")])
                .await
                .status
        }
    };
    assert_eq!(probe(rp.clone()).await, 200);
    let rotated = call(Method::POST, &format!("/admin/clients/{id}/secret"), None).await;
    let new_secret = rotated.str("client_secret");
    assert_eq!(probe(rp.clone()).await, 401);
    assert_eq!(
        probe(Rp {
            secret: Some(new_secret),
            ..rp.clone()
        })
        .await,
        200
    );

    // Deleted: gone from the API, its id never reused.
    assert_eq!(
        call(Method::DELETE, &format!("/admin/clients/{id}"), None)
            .await
            .status,
        204
    );
    call(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .assert_problem(404, "not_found");
    call(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await
        .assert_problem(404, "not_found");
    let again = call(
        Method::POST,
        "/admin/clients",
        Some(json!({ "name": "W", "id": id })),
    )
    .await;
    again.assert_problem(400, "client_exists");
    call(Method::GET, "/admin/clients/%00", None)
        .await
        .assert_problem(404, "not_found");

    // The CLI: public clients get no secret; list never shows one; errors are one line.
    let spa = add_client(&s, "Spa", Some("http://127.0.0.1:9/cb"), &["--public"]);
    assert!(spa.secret.is_none());
    let out = s.cli(&["client", "list"], None);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|c| c["client_id"] == spa.id.as_str() && c["public"] == true)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"));
    let out = s.cli(&["client", "add", "Bad", "--redirect-uri", "ftp://x"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("redirect URI"), "{err}");
    let out = s.cli(&["client", "rotate-secret", &spa.id], None);
    assert!(!out.status.success(), "a public client has no secret");
    let audit = s
        .sandbox
        .query_i64("SELECT COUNT(*) FROM audit_log WHERE action IN ('client.created', 'client.updated', 'client.secret_rotated', 'client.deleted')")
        .await;
    assert!(audit >= 5, "{audit}");
}

async fn consents_are_listed_and_withdrawn(b: Backend) {
    let s = TestServer::start(b).await;
    let user = email("carol");
    s.register(&user).await;
    let redirect = format!("http://127.0.0.1:{}/cb", s.port + 1);
    let rp = add_client(&s, "Notes", Some(&redirect), &[]);
    let mut browser = Browser::new();
    let t = authorized_tokens(&mut browser, &s, &rp, &user, &[]).await;
    let (own, _) = s.login_tokens(&user, PASSWORD).await;

    let listed = s.get_bearer("/auth/consents", &own).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json[0]["client_id"], rp.id.as_str());
    assert_eq!(listed.json[0]["client_name"], "Notes");
    assert_eq!(listed.json[0]["scopes"], json!(["openid", "email"]));

    // A code issued just before the withdrawal must not outlive it.
    let (late_code, late_verifier) = authorized_code(&mut browser, &s, &rp, &user, &[]).await;
    let auth = format!("Bearer {own}");
    let r = s
        .call(
            Method::DELETE,
            &format!("/auth/consents/{}", rp.id),
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The application's session ended with the consent; the next authorization asks again.
    let r = form_call(
        &s,
        "/oauth2/token",
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.str("refresh_token")),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        s.get_bearer("/oauth2/userinfo", &t.str("access_token"))
            .await
            .status,
        401
    );
    let late = exchange(&s, &rp, &late_code, Some(&late_verifier)).await;
    assert_eq!(late.status, 400, "{}", late.text);
    let r = s
        .call(
            Method::DELETE,
            &format!("/auth/consents/{}", rp.id),
            None,
            &[("authorization", &auth)],
        )
        .await;
    r.assert_problem(404, "not_found");
    let r = browser
        .get(&common::oidc::authorize_url(&s, &rp, &[]))
        .await;
    assert!(
        r.header("location").starts_with("/ui/consent"),
        "{}",
        r.header("location")
    );
}

on_both_backends!(
    clients_through_the_admin_api_and_the_cli,
    consents_are_listed_and_withdrawn
);
on_sqlite!(
    hosted_sign_in_page => hosted_sign_in_page,
    hosted_sign_in_shares_the_lockout => hosted_sign_in_shares_the_lockout,
);
