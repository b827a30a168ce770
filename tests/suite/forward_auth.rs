//! Forward auth (`/auth/verify`) in the three dialects, behind a real nginx, and the
//! decision endpoint (`POST /authz/check`).

use crate::common;

use common::nginx::Nginx;

use common::upstream::{Upstream, echoed_header};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn config(up: &str) -> String {
    format!(
        r#"
[roles.user]
scopes = ["profile"]
[roles.analyst]
scopes = ["docs:read"]
[roles.service]
scopes = ["authz:check"]

[gateway]
login_url = "https://auth.example.com/login"
return_origins = ["https://app.example.com"]

[[route]]
path = "/pub/*"
upstream = "{up}"
auth = "public"

[[route]]
path = "/req/*"
upstream = "{up}"

[[route]]
path = "/docs/*"
upstream = "{up}"
scopes = ["docs:read"]

[[route]]
path = "/fa-only/*"
scopes = ["docs:read"]
audience = "https://internal.example.com"
"#
    )
}

async fn start(up: &Upstream) -> TestServer {
    TestServer::start_with(
        Backend::Sqlite,
        Options {
            config: config(&up.base),
            env: vec![],
        },
    )
    .await
}

async fn signed_in(s: &TestServer, tag: &str, roles: &[&str]) -> (String, String, Cookies) {
    let (e, access) = s.user_with_roles(tag, roles).await;
    let jar = s.login_cookies(&e).await;
    (e, access, jar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_dialect() {
    let up = Upstream::start().await;
    let s = start(&up).await;
    let (e, access, jar) = signed_in(&s, "nginx", &[]).await;
    let auth = format!("Bearer {access}");
    let verify = |uri: &'static str, extra: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let mut h: Vec<(&str, String)> = vec![("x-original-uri", uri.to_string())];
            if !extra.iter().any(|(k, _)| *k == "x-original-method") {
                h.push(("x-original-method", "GET".into()));
            }
            h.extend(extra);
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.call(Method::GET, "/auth/verify", None, &refs).await
        }
    };
    let r = verify("/req/x?y=1", vec![("authorization", auth.clone())]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-tollgate-email"), e);
    assert_eq!(r.header("x-tollgate-scopes"), "profile");
    assert!(!r.header("x-tollgate-assertion").is_empty());
    let r = verify("/req/x", vec![("cookie", jar.header())]).await;
    assert_eq!(r.status, 200);
    // nginx cannot pass a redirect on: always 401, even for a browser.
    let r = verify("/req/x", vec![("accept", "text/html".into())]).await;
    r.assert_problem(401, "unauthenticated");
    verify("/docs/x", vec![("authorization", auth.clone())])
        .await
        .assert_problem(403, "insufficient_scope");
    let r = verify("/pub/x", vec![("authorization", auth.clone())]).await;
    assert_eq!(r.status, 200);
    // Anonymous: the identity headers are present and empty, so proxies that copy them
    // overwrite whatever the client forged.
    for h in [
        "x-tollgate-user",
        "x-tollgate-email",
        "x-tollgate-scopes",
        "x-tollgate-session",
        "x-tollgate-assertion",
    ] {
        assert_eq!(
            r.headers.get(h).map(|v| v.as_bytes()),
            Some(&b""[..]),
            "{h}"
        );
    }
    // Paths no route covers need a session (fail closed).
    verify("/elsewhere", vec![])
        .await
        .assert_problem(401, "unauthenticated");
    let r = verify("/elsewhere", vec![("authorization", auth.clone())]).await;
    assert_eq!(r.status, 200);
    // No route, no audience: identity without an assertion (never one for the issuer).
    assert_eq!(r.header("x-tollgate-assertion"), "");
    assert!(!r.header("x-tollgate-user").is_empty());
    // The same normalisation as the proxy.
    verify("/pub/../req/x", vec![])
        .await
        .assert_problem(401, "unauthenticated");
    verify("/pub/..%2freq/x", vec![])
        .await
        .assert_problem(403, "invalid_path");
    // Cookie requests that change state need the CSRF token.
    let cookie = jar.header();
    let post = vec![
        ("cookie", cookie.clone()),
        ("x-original-method", "POST".to_string()),
    ];
    verify("/req/x", post.clone())
        .await
        .assert_problem(403, "csrf_failed");
    let mut with_token = post;
    with_token.push(("x-csrf-token", jar.value("tg_csrf")));
    assert_eq!(verify("/req/x", with_token).await.status, 200);
    // A route without upstream is forward-auth only.
    let (_, analyst, _) = signed_in(&s, "analyst", &["analyst"]).await;
    let r = verify(
        "/fa-only/x",
        vec![("authorization", format!("Bearer {analyst}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let claims = jwt_part(r.header("x-tollgate-assertion"), 1);
    assert_eq!(claims["aud"], "https://internal.example.com");
    s.get_bearer("/fa-only/x", &analyst)
        .await
        .assert_problem(404, "not_found");
    // Nothing described: a client error.
    s.call(Method::GET, "/auth/verify", None, &[])
        .await
        .assert_problem(400, "invalid_request");
    // The method must be stated: a POST must not pass as a GET.
    s.call(
        Method::GET,
        "/auth/verify",
        None,
        &[("x-original-uri", "/req/x"), ("authorization", &auth)],
    )
    .await
    .assert_problem(403, "invalid_request");
    // A client cannot choose the checked path by adding another dialect's headers
    // (proxies pass client headers on to the auth request).
    for extra in [vec![
        ("x-forwarded-uri", "/pub/x"),
        ("x-forwarded-method", "GET"),
    ]] {
        let mut h = vec![("x-original-uri", "/req/x"), ("x-original-method", "GET")];
        h.extend(extra);
        s.call(Method::GET, "/auth/verify", None, &h)
            .await
            .assert_problem(403, "ambiguous_request");
    }
    s.call(
        Method::GET,
        "/auth/verify/req/x",
        None,
        &[("x-original-uri", "/pub/x"), ("x-original-method", "GET")],
    )
    .await
    .assert_problem(403, "ambiguous_request");
    // A describing header twice (a proxy appending its own to the client's): refused,
    // whichever copy comes first.
    for h in [
        vec![
            ("x-original-uri", "/pub/x"),
            ("x-original-uri", "/req/x"),
            ("x-original-method", "GET"),
        ],
        vec![
            ("x-original-uri", "/req/x"),
            ("x-original-method", "GET"),
            ("x-original-method", "POST"),
        ],
        vec![
            ("x-forwarded-uri", "/pub/x"),
            ("x-forwarded-uri", "/req/x"),
            ("x-forwarded-method", "GET"),
        ],
    ] {
        s.call(Method::GET, "/auth/verify", None, &h)
            .await
            .assert_problem(403, "ambiguous_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_never_rotates_refresh_tokens() {
    let up = Upstream::start().await;
    let s = start(&up).await;
    let (_, _, jar) = signed_in(&s, "norefresh", &[]).await;
    let mut stale = jar.clone();
    stale.0.remove("tg_at");
    let r = s
        .call(
            Method::GET,
            "/auth/verify",
            None,
            &[
                ("x-original-uri", "/req/x"),
                ("x-original-method", "GET"),
                ("cookie", &stale.header()),
            ],
        )
        .await;
    r.assert_problem(401, "unauthenticated");
    assert!(r.headers.get("set-cookie").is_none());
    // The refresh cookie was not spent: the page can still refresh itself.
    let r = s
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            &[
                ("cookie", &stale.header()),
                ("x-csrf-token", &jar.value("tg_csrf")),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Hardening item 18: with `refresh_cookie_path`, the browser sends the refresh cookie to
/// Tollgate's `/auth/` paths only, so no app behind a forward-auth proxy ever receives it;
/// refresh and sign-out still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_cookie_can_be_kept_to_tollgates_paths() {
    for (public, name) in [("http", "tg_rt"), ("https", "__Secure-tg_rt")] {
        let port = common::free_port();
        let s = TestServer::start_with(
            Backend::Sqlite,
            Options {
                config: "[session]\nrefresh_cookie_path = \"/auth/\"\n".into(),
                env: vec![
                    ("TOLLGATE_LISTEN", format!("127.0.0.1:{port}")),
                    (
                        "TOLLGATE_PUBLIC_URL",
                        format!("{public}://127.0.0.1:{port}"),
                    ),
                ],
            },
        )
        .await;
        let (e, _) = s.user_with_roles("scoped", &[]).await;
        let jar = s.login_cookies(&e).await;
        assert!(jar.has_attr(name, "httponly"), "{name}: {:?}", jar.0);
        assert_eq!(jar.attr(name, "path").as_deref(), Some("/auth/"));
        let access = if public == "https" {
            "__Host-tg_at"
        } else {
            "tg_at"
        };
        assert_eq!(jar.attr(access, "path").as_deref(), Some("/"));
        let csrf_name = if public == "https" {
            "__Host-tg_csrf"
        } else {
            "tg_csrf"
        };
        let only_refresh = format!(
            "{name}={}; {csrf_name}={}",
            jar.value(name),
            jar.value(csrf_name)
        );
        let r = s
            .call(
                Method::POST,
                "/auth/refresh",
                None,
                &[
                    ("cookie", &only_refresh),
                    ("x-csrf-token", &jar.value(csrf_name)),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.cookies.attr(name, "path").as_deref(), Some("/auth/"));
        // Sign-out with the refresh cookie alone ends the session, and deletes the cookie
        // at its path.
        let rotated = format!(
            "{name}={}; {csrf_name}={}",
            r.cookies.value(name),
            jar.value(csrf_name)
        );
        let out = s
            .call(
                Method::POST,
                "/auth/logout",
                None,
                &[
                    ("cookie", &rotated),
                    ("x-csrf-token", &jar.value(csrf_name)),
                ],
            )
            .await;
        assert_eq!(out.status, 204, "{}", out.text);
        assert_eq!(out.cookies.attr(name, "path").as_deref(), Some("/auth/"));
        let again = s
            .call(
                Method::POST,
                "/auth/refresh",
                None,
                &[
                    ("cookie", &rotated),
                    ("x-csrf-token", &jar.value(csrf_name)),
                ],
            )
            .await;
        assert_eq!(again.status, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_and_envoy_dialects() {
    let up = Upstream::start().await;
    let s = start(&up).await;
    let (_, access, _) = signed_in(&s, "traefik", &[]).await;
    let auth = format!("Bearer {access}");
    let traefik = |host: &'static str, extra: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let mut h: Vec<(&str, String)> = vec![
                ("x-forwarded-uri", "/req/page?tab=1".into()),
                ("x-forwarded-method", "GET".into()),
                ("x-forwarded-host", host.into()),
                ("x-forwarded-proto", "https".into()),
            ];
            h.extend(extra);
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.call(Method::GET, "/auth/verify", None, &refs).await
        }
    };
    let r = traefik("app.example.com", vec![("authorization", auth.clone())]).await;
    assert_eq!(r.status, 200);
    assert!(!r.header("x-tollgate-user").is_empty());
    // The assertion is for the route's upstream.
    let jwks: Value = s
        .call(Method::GET, "/.well-known/jwks.json", None, &[])
        .await
        .json;
    let assertion = r.header("x-tollgate-assertion");
    let header = jwt_part(assertion, 1);
    assert_eq!(header["aud"], up.base.as_str());
    let _ = jwks;
    // Browsers are redirected to sign in; the return URL only if its origin is allowed.
    let html = ("accept", "text/html".to_string());
    let r = traefik("app.example.com", vec![html.clone()]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Freq%2Fpage%3Ftab%3D1"
    );
    let r = traefik("evil.example.com", vec![html]).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), "https://auth.example.com/login");
    traefik("app.example.com", vec![])
        .await
        .assert_problem(401, "unauthenticated");
    // Envoy ext_authz: the original path follows the prefix, the method is the request's.
    let r = s
        .call(
            Method::GET,
            "/auth/verify/req/x",
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200);
    s.call(Method::DELETE, "/auth/verify/req/x", None, &[])
        .await
        .assert_problem(401, "unauthenticated");
}

/// nginx with `auth_request` against Tollgate, proxying to the upstream: the
/// configuration docs/deployment.md gives, with test paths.
async fn start_nginx(tollgate_port: u16, upstream_port: u16) -> Nginx {
    Nginx::start(|port| {
    let identity: String = ["user", "email", "email_verified", "scopes", "session", "client", "assertion"]
        .iter()
        .map(|h| {
            let header = h.replace('_', "-");
            format!(
                "      auth_request_set $tg_{h} $upstream_http_x_tollgate_{h};\n      proxy_set_header X-Tollgate-{header} $tg_{h};\n"
            )
        })
        .collect();
    format!(
        r#"
  # Tollgate's HttpOnly cookies stay away from the app (docs/deployment.md).
  map $http_cookie $tg_cookie_1 {{
    default $http_cookie;
    "~^(?:__Host-|__Secure-)?tg_rt=[^;]*(?:;\s*)?(?<rest>.*)$" $rest;
    "~^(?<before>.*?);\s*(?:__Host-|__Secure-)?tg_rt=[^;]*(?<after>.*)$" $before$after;
  }}
  map $tg_cookie_1 $tg_cookie_for_app {{
    default $tg_cookie_1;
    "~^(?:__Host-|__Secure-)?tg_at=[^;]*(?:;\s*)?(?<rest>.*)$" $rest;
    "~^(?<before>.*?);\s*(?:__Host-|__Secure-)?tg_at=[^;]*(?<after>.*)$" $before$after;
  }}
  server {{
    listen 127.0.0.1:{port};
    location = /_tollgate_verify {{
      internal;
      proxy_pass http://127.0.0.1:{tollgate_port}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location / {{
      auth_request /_tollgate_verify;
{identity}      proxy_set_header Cookie $tg_cookie_for_app;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
  }}
"#
    )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nginx_auth_request_in_front_of_an_upstream() {
    let up = Upstream::start().await;
    let s = start(&up).await;
    let nginx = start_nginx(s.port, up.port).await;
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let http = reqwest::Client::new();
    let get = |path: &str, headers: Vec<(&str, String)>| {
        let mut req = http.get(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (e, access, jar) = signed_in(&s, "behind-nginx", &[]).await;
    let forged = ("x-tollgate-user", "admin".to_string());

    let (status, echo) = get(
        "/pub/x",
        vec![forged.clone(), ("x-tollgate-client", "admin-app".into())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(echoed_header(&echo, "x-tollgate-user").is_none(), "{echo}");
    assert!(
        echoed_header(&echo, "x-tollgate-client").is_none(),
        "{echo}"
    );
    let (status, _) = get("/req/x", vec![forged.clone()]).await;
    assert_eq!(status, 401);
    let (status, echo) = get(
        "/req/x",
        vec![
            forged.clone(),
            ("authorization", format!("Bearer {access}")),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let me = s.get_bearer("/auth/me", &access).await;
    assert_eq!(
        echoed_header(&echo, "x-tollgate-user"),
        Some(me.str("id").as_str())
    );
    assert_eq!(
        echo["headers"]["x-tollgate-user"].as_array().unwrap().len(),
        1
    );
    assert_eq!(echoed_header(&echo, "x-tollgate-email"), Some(e.as_str()));
    let (status, echo) = get("/req/x", vec![("cookie", jar.header())]).await;
    assert_eq!(status, 200);
    assert!(echoed_header(&echo, "x-tollgate-assertion").is_some());
    assert_eq!(
        echoed_header(&echo, "x-tollgate-email-verified"),
        Some("false")
    );
    // Hardening item 18: the documented map keeps the refresh and access cookies from
    // the app, in whatever order they come, and leaves the app's own.
    for cookies in [
        format!(
            "tg_rt={}; app=1; tg_at={}",
            jar.value("tg_rt"),
            jar.value("tg_at")
        ),
        format!(
            "app=1; tg_at={}; tg_rt={}; theme=dark",
            jar.value("tg_at"),
            jar.value("tg_rt")
        ),
        format!("tg_at={}; tg_rt={}", jar.value("tg_at"), jar.value("tg_rt")),
    ] {
        let (status, echo) = get("/req/x", vec![("cookie", cookies.clone())]).await;
        assert_eq!(status, 200, "{cookies}");
        let seen = echoed_header(&echo, "cookie").unwrap_or("");
        assert!(!seen.contains("tg_rt") && !seen.contains("tg_at"), "{seen}");
        assert_eq!(seen.contains("app=1"), cookies.contains("app=1"), "{seen}");
        assert_eq!(
            seen.contains("theme=dark"),
            cookies.contains("theme=dark"),
            "{seen}"
        );
    }
    let (status, _) = get(
        "/docs/x",
        vec![("authorization", format!("Bearer {access}"))],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_check_answers_from_current_state() {
    let up = Upstream::start().await;
    let s = start(&up).await;
    let (e, access, _) = signed_in(&s, "subject", &["analyst"]).await;
    let me = s.get_bearer("/auth/me", &access).await;
    let id = me.str("id");
    // An upstream asks with the assertion it was given.
    let r = s.get_bearer("/req/x", &access).await;
    let assertion = echoed_header(&r.json, "x-tollgate-assertion")
        .unwrap()
        .to_string();
    let ask = |headers: Vec<(&'static str, String)>, body: Value| {
        let s = &s;
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.call(Method::POST, "/authz/check", Some(body), &refs)
                .await
        }
    };
    let with_assertion = || vec![("x-tollgate-assertion", assertion.clone())];
    let r = ask(with_assertion(), json!({ "scopes": ["docs:read"] })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["allowed"], true);
    assert_eq!(r.json["subject"], id.as_str());
    let r = ask(
        with_assertion(),
        json!({ "method": "GET", "path": "/docs/7" }),
    )
    .await;
    assert_eq!(r.json["allowed"], true, "{}", r.text);
    // A role granted a moment ago already counts, though the token does not carry it.
    let r = ask(with_assertion(), json!({ "scopes": ["authz:check"] })).await;
    assert_eq!(r.json["reason"], "insufficient_scope", "{}", r.text);
    assert!(
        s.cli(&["role", "grant", &e, "service"], None)
            .status
            .success()
    );
    let r = ask(with_assertion(), json!({ "scopes": ["authz:check"] })).await;
    assert_eq!(r.json["allowed"], true, "{}", r.text);
    // A role revoked a moment ago counts too, though the token still carries it. The
    // revocation also ends the session, which this server learns from the database
    // within a second: either reason may come first, neither allows.
    assert!(
        s.cli(&["role", "revoke", &e, "analyst"], None)
            .status
            .success()
    );
    let r = ask(with_assertion(), json!({ "scopes": ["docs:read"] })).await;
    assert_eq!(r.json["allowed"], false);
    assert!(
        ["insufficient_scope", "session_revoked"].contains(&r.json["reason"].as_str().unwrap()),
        "{}",
        r.text
    );
    // An assertion only answers for its own subject; a tampered one not at all.
    ask(
        with_assertion(),
        json!({ "subject": "someone-else", "scopes": [] }),
    )
    .await
    .assert_problem(403, "subject_mismatch");
    let mut tampered = assertion.clone();
    tampered.insert(tampered.len() - 4, 'x');
    ask(
        vec![("x-tollgate-assertion", tampered)],
        json!({ "scopes": ["profile"] }),
    )
    .await
    .assert_problem(401, "invalid_token");
    // An access token is not a service credential.
    ask(
        vec![("authorization", format!("Bearer {access}"))],
        json!({ "subject": id, "scopes": ["profile"] }),
    )
    .await
    .assert_problem(401, "unauthenticated");
    // A service asks with an API key scoped authz:check.
    let svc = email("svc");
    assert!(
        s.cli(&["user", "add", &svc, "--role", "service"], None)
            .status
            .success()
    );
    let key = String::from_utf8(
        s.cli(&["apikey", "add", &svc, "--scope", "authz:check"], None)
            .stdout,
    )
    .unwrap();
    let key = format!("Bearer {}", key.trim());
    let r = ask(
        vec![("authorization", key.clone())],
        json!({ "subject": id, "scopes": ["profile"] }),
    )
    .await;
    assert_eq!(r.json["allowed"], true, "{}", r.text);
    let r = ask(
        vec![("authorization", key.clone())],
        json!({ "subject": "nobody", "scopes": ["profile"] }),
    )
    .await;
    assert_eq!(r.json["reason"], "unknown_subject");
    // Asked by a service (no session involved), the revoked role is simply missing.
    let r = ask(
        vec![("authorization", key.clone())],
        json!({ "subject": id, "scopes": ["docs:read"] }),
    )
    .await;
    assert_eq!(r.json["reason"], "insufficient_scope", "{}", r.text);
    assert_eq!(r.json["missing_scopes"], json!(["docs:read"]));
    ask(
        vec![("authorization", key.clone())],
        json!({ "scopes": ["profile"] }),
    )
    .await
    .assert_problem(400, "invalid_request");
    let plain = email("plainkey");
    assert!(s.cli(&["user", "add", &plain], None).status.success());
    let weak = String::from_utf8(s.cli(&["apikey", "add", &plain], None).stdout).unwrap();
    ask(
        vec![("authorization", format!("Bearer {}", weak.trim()))],
        json!({ "subject": id, "scopes": [] }),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    // An assertion made for an API key stops answering once the key is revoked.
    let own =
        String::from_utf8(s.cli(&["apikey", "add", &e, "--name", "own"], None).stdout).unwrap();
    let r = s.get_bearer("/req/x", own.trim()).await;
    let key_assertion = echoed_header(&r.json, "x-tollgate-assertion")
        .unwrap()
        .to_string();
    let with_key_assertion = || vec![("x-tollgate-assertion", key_assertion.clone())];
    let r = ask(with_key_assertion(), json!({ "scopes": ["profile"] })).await;
    assert_eq!(r.json["allowed"], true, "{}", r.text);
    let listed = String::from_utf8(s.cli(&["apikey", "list", &e], None).stdout).unwrap();
    let key: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert!(
        s.cli(&["apikey", "revoke", key["id"].as_str().unwrap()], None)
            .status
            .success()
    );
    let r = ask(with_key_assertion(), json!({ "scopes": ["profile"] })).await;
    assert_eq!(r.json["reason"], "credential_revoked", "{}", r.text);
    // Disabled accounts and revoked sessions are refused.
    assert!(s.cli(&["user", "disable", &e], None).status.success());
    let r = ask(with_assertion(), json!({ "scopes": [] , "path": "/pub/x"})).await;
    assert_eq!(r.json["reason"], "account_disabled", "{}", r.text);
    ask(with_assertion(), json!({}))
        .await
        .assert_problem(400, "invalid_request");
}
