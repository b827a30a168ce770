//! Credentials at the gateway: transparent refresh, CSRF, CORS, API keys, sign-in
//! redirects.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::upstream::{Upstream, echoed_header};
use common::*;
use reqwest::Method;

fn config(up: &str, extra: &str) -> String {
    format!(
        r#"
[roles.user]
scopes = ["profile"]
[roles.analyst]
scopes = ["docs:read", "ai:invoke"]

[cors]
allowed_origins = ["https://app.example.com"]

[gateway]
login_url = "/ui/login"
return_origins = ["https://app.example.com"]

[[route]]
path = "/opt/*"
upstream = "{up}"
auth = "optional"

[[route]]
path = "/req/*"
upstream = "{up}"

[[route]]
path = "/nocsrf/*"
upstream = "{up}"
csrf = false

[[route]]
path = "/docs/*"
upstream = "{up}"
scopes = ["docs:read"]

[[route]]
path = "/docs/admin/*"
upstream = "{up}"
scopes = ["docs:admin"]

[[route]]
path = "/wild/*"
upstream = "{up}"
methods = ["GET", "PUT"]
auth = "public"
cors_origins = ["*"]
{extra}
"#
    )
}

async fn start(backend: Backend, up: &Upstream, env: Vec<(&'static str, String)>) -> TestServer {
    TestServer::start_with(
        backend,
        Options {
            config: config(&up.base, ""),
            env,
        },
    )
    .await
}

/// The cookies of a browser whose access token has lapsed: only refresh and CSRF.
fn without_access(jar: &Cookies) -> Cookies {
    let mut c = jar.clone();
    c.0.remove("tg_at");
    c
}

async fn expired_access_token_is_refreshed_in_flight(backend: Backend) {
    let up = Upstream::start().await;
    let s = start(backend, &up, vec![("TOLLGATE_ACCESS_TTL", "2".into())]).await;
    let e = email("transparent");
    s.register(&e).await;
    let mut jar = s.login_cookies(&e).await;
    let me = s
        .call(Method::GET, "/auth/me", None, &[("cookie", &jar.header())])
        .await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    s.call(Method::GET, "/auth/me", None, &[("cookie", &jar.header())])
        .await
        .assert_problem(401, "token_expired");
    // The same expired token as a bearer credential: refused, with the RFC 6750 error.
    let r = s.get_bearer("/req/x", &jar.value("tg_at")).await;
    r.assert_problem(401, "token_expired");
    assert!(
        r.header("www-authenticate")
            .contains(r#"error="invalid_token""#)
    );

    let r = s
        .call(Method::GET, "/req/x", None, &[("cookie", &jar.header())])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-user"),
        Some(me.str("id").as_str())
    );
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-session"),
        Some(me.str("session_id").as_str())
    );
    assert_ne!(r.cookies.value("tg_at"), jar.value("tg_at"));
    assert_ne!(r.cookies.value("tg_rt"), jar.value("tg_rt"));
    assert!(r.cookies.has_attr("tg_rt", "httponly"));
    // The CSRF cookie keeps its value: other tabs hold copies.
    assert_eq!(r.cookies.value("tg_csrf"), jar.value("tg_csrf"));
    // A response that sets credentials is never stored by a shared cache.
    assert_eq!(r.header("cache-control"), "no-store");
    jar.update(&r.cookies);
    let r = s
        .call(Method::GET, "/req/x", None, &[("cookie", &jar.header())])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.cookies.0.is_empty(), "no refresh needed: {:?}", r.cookies);

    // A missing access cookie is refreshed the same way.
    let r = s
        .call(
            Method::GET,
            "/req/x",
            None,
            &[("cookie", &without_access(&jar).header())],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.cookies.value("tg_at").is_empty());
}

async fn twenty_racing_requests_of_one_browser_all_pass(backend: Backend) {
    let up = Upstream::start().await;
    let s = Arc::new(start(backend, &up, vec![]).await);
    let e = email("race");
    s.register(&e).await;
    let jar = without_access(&s.login_cookies(&e).await);
    let cookie = jar.header();
    let replies = simultaneously(&s, 20, move |s| {
        let cookie = cookie.clone();
        async move {
            s.call(Method::GET, "/req/x", None, &[("cookie", &cookie)])
                .await
        }
    })
    .await;
    let mut successors = std::collections::HashSet::new();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(echoed_header(&r.json, "x-tollgate-user").is_some());
        successors.insert(r.cookies.value("tg_rt"));
    }
    assert_eq!(successors.len(), 1, "one successor for the whole race");
    // And the browser goes on with it.
    let mut next = jar.clone();
    next.update(&replies[0].cookies);
    let r = s
        .call(Method::GET, "/req/x", None, &[("cookie", &next.header())])
        .await;
    assert_eq!(r.status, 200);
    assert!(!s.server_log().contains("refresh_token_reused"));
}

async fn dead_refresh_cookies_are_cleared(backend: Backend) {
    let up = Upstream::start().await;
    let s = start(backend, &up, vec![]).await;
    let e = email("dead");
    s.register(&e).await;
    let jar = s.login_cookies(&e).await;
    let stale = without_access(&jar);
    let r = s
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[
                ("cookie", &jar.header()),
                ("x-csrf-token", &jar.value("tg_csrf")),
            ],
        )
        .await;
    assert_eq!(r.status, 204);
    // Optional route: anonymous, and the useless cookies are deleted.
    let r = s
        .call(Method::GET, "/opt/x", None, &[("cookie", &stale.header())])
        .await;
    assert_eq!(r.status, 200);
    assert!(echoed_header(&r.json, "x-tollgate-user").is_none());
    assert_eq!(r.cookies.attr("tg_rt", "max-age").as_deref(), Some("0"));
    // Required route: 401.
    let r = s
        .call(Method::GET, "/req/x", None, &[("cookie", &stale.header())])
        .await;
    r.assert_problem(401, "invalid_refresh_token");
    assert_eq!(r.cookies.attr("tg_at", "max-age").as_deref(), Some("0"));
    // A revoked session's still-unexpired access cookie is refused too.
    let r = s
        .call(Method::GET, "/req/x", None, &[("cookie", &jar.header())])
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

async fn csrf_guards_cookie_requests_that_change_state(backend: Backend) {
    let up = Upstream::start().await;
    let s = start(backend, &up, vec![]).await;
    let e = email("csrf");
    s.register(&e).await;
    let jar = s.login_cookies(&e).await;
    let cookie = jar.header();
    let csrf = jar.value("tg_csrf");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        s.call(method.clone(), "/req/x", None, &[("cookie", &cookie)])
            .await
            .assert_problem(403, "csrf_failed");
        s.call(
            method.clone(),
            "/req/x",
            None,
            &[("cookie", &cookie), ("x-csrf-token", "wrong")],
        )
        .await
        .assert_problem(403, "csrf_failed");
        let ok = s
            .call(
                method.clone(),
                "/req/x",
                None,
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            )
            .await;
        assert_eq!(ok.status, 200, "{method}");
    }
    // A transparent refresh is no way around it.
    let stale = without_access(&jar).header();
    s.call(Method::POST, "/req/x", None, &[("cookie", &stale)])
        .await
        .assert_problem(403, "csrf_failed");
    // Safe methods, bearer tokens and routes that opt out need no token.
    assert_eq!(
        s.call(Method::GET, "/req/x", None, &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let (access, _) = s.login_tokens(&e, PASSWORD).await;
    let auth = format!("Bearer {access}");
    assert_eq!(
        s.call(Method::POST, "/req/x", None, &[("authorization", &auth)])
            .await
            .status,
        200
    );
    assert_eq!(
        s.call(Method::POST, "/nocsrf/x", None, &[("cookie", &cookie)])
            .await
            .status,
        200
    );
}

async fn cors_preflights_are_answered_at_the_gateway(backend: Backend) {
    let up = Upstream::start().await;
    let s = start(backend, &up, vec![]).await;
    let preflight = |origin: &'static str, path: &'static str, method: &'static str| {
        let s = &s;
        async move {
            s.call(
                Method::OPTIONS,
                path,
                None,
                &[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    (
                        "access-control-request-headers",
                        "content-type, x-csrf-token",
                    ),
                ],
            )
            .await
        }
    };
    let r = preflight("https://app.example.com", "/req/x", "POST").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(r.header("access-control-allow-credentials"), "true");
    assert_eq!(r.header("access-control-allow-methods"), "POST");
    assert_eq!(
        r.header("access-control-allow-headers"),
        "content-type, x-csrf-token"
    );
    assert!(!r.header("access-control-max-age").is_empty());
    let r = preflight("https://evil.example.com", "/req/x", "POST").await;
    r.assert_problem(403, "cors_rejected");
    assert!(r.headers.get("access-control-allow-origin").is_none());
    // "*": any origin, never with credentials; the route's method list is announced.
    let r = preflight("https://any.example.net", "/wild/x", "PUT").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert!(r.headers.get("access-control-allow-credentials").is_none());
    assert_eq!(r.header("access-control-allow-methods"), "GET, PUT");
    preflight("https://any.example.net", "/wild/x", "DELETE")
        .await
        .assert_problem(405, "method_not_allowed");
    // Actual requests.
    let r = s
        .call(
            Method::GET,
            "/wild/x",
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(r.header("access-control-allow-credentials"), "true");
    assert!(r.header("vary").contains("Origin"));
    let r = s
        .call(
            Method::GET,
            "/req/x",
            None,
            &[("origin", "https://evil.example.com")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert!(
        r.header("vary").contains("Origin"),
        "caches must key on Origin"
    );
}

async fn browsers_are_sent_to_sign_in_without_open_redirects(backend: Backend) {
    let up = Upstream::start().await;
    let s = start(backend, &up, vec![]).await;
    let html = ("accept", "text/html,application/xhtml+xml");
    let r = s.call(Method::GET, "/req/page?tab=2", None, &[html]).await;
    assert_eq!(r.status, 302);
    let rd = format!("{}/req/page?tab=2", s.base);
    let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    assert_eq!(
        r.header("location"),
        format!("{}/ui/login?rd={encoded}", s.base)
    );
    // API calls get a 401, not a redirect.
    s.call(Method::GET, "/req/page", None, &[])
        .await
        .assert_problem(401, "unauthenticated");
    s.call(Method::POST, "/req/page", None, &[html])
        .await
        .assert_problem(401, "unauthenticated");
}

async fn api_keys_authenticate_with_their_own_scopes(backend: Backend) {
    let up = Upstream::start().await;
    let mut s = start(backend, &up, vec![]).await;
    let e = email("keys");
    let out = s.cli(&["user", "add", &e, "--role", "analyst"], None);
    assert!(out.status.success());
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let add = |args: &[&str]| {
        let mut full = vec!["apikey", "add", e.as_str()];
        full.extend(args);
        s.cli(&full, None)
    };
    let out = add(&["--scope", "docs:read", "--name", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("tg_") && key.len() > 40, "{key}");
    let r = s.get_bearer("/docs/x", &key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-user"),
        user["id"].as_str()
    );
    assert_eq!(echoed_header(&r.json, "x-tollgate-email"), Some(e.as_str()));
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-scopes"),
        Some("docs:read")
    );
    assert!(
        echoed_header(&r.json, "x-tollgate-session")
            .unwrap()
            .starts_with("apikey:")
    );
    assert!(echoed_header(&r.json, "x-tollgate-assertion").is_some());
    s.get_bearer("/docs/admin/x", &key)
        .await
        .assert_problem(403, "insufficient_scope");
    // Only the hash is stored.
    let stored = s
        .sandbox
        .query_strings("SELECT key_hash FROM api_keys")
        .await;
    assert!(stored.iter().all(|h| !h.contains(&key[3..])), "{stored:?}");
    // A key cannot grant what the roles do not; a bad duration is a one-line error.
    let out = add(&["--scope", "docs:admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("docs:admin"));
    assert!(!add(&["--expires", "soon"]).status.success());
    // Wrong and malformed keys.
    s.get_bearer("/req/x", &format!("{key}x"))
        .await
        .assert_problem(401, "invalid_token");
    s.get_bearer("/req/x", "tg_")
        .await
        .assert_problem(401, "invalid_token");
    // Expiry.
    // (5 s: the CLI's own start-up must not eat the key's whole life on a busy machine.)
    let short = String::from_utf8(add(&["--expires", "5s"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(s.get_bearer("/req/x", &short).await.status, 200);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    s.get_bearer("/req/x", &short)
        .await
        .assert_problem(401, "token_expired");
    // Revocation through the CLI (another process) takes effect within the cache time.
    let first = key_named(&s, &e, "ci");
    assert!(first["last_used_at"].is_null());
    let out = s.cli(&["apikey", "revoke", first["id"].as_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = eventually(Duration::from_secs(8), || async {
        s.get_bearer("/req/x", &key).await.status == 401
    })
    .await;
    assert!(refused, "a revoked key must stop working");
    // Last use is written in batches (and at shutdown), not per request.
    s.terminate();
    let first = key_named(&s, &e, "ci");
    assert!(first["last_used_at"].as_i64().is_some(), "{first}");
    s.restart_with(None, vec![]).await;
}

/// The `apikey list` entry with this name.
fn key_named(s: &TestServer, email: &str, name: &str) -> serde_json::Value {
    let list = s.cli(&["apikey", "list", email], None);
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no key named {name}"))
}

on_both_backends!(
    expired_access_token_is_refreshed_in_flight,
    twenty_racing_requests_of_one_browser_all_pass,
    dead_refresh_cookies_are_cleared,
    api_keys_authenticate_with_their_own_scopes,
);

on_sqlite!(
    csrf => csrf_guards_cookie_requests_that_change_state,
    cors => cors_preflights_are_answered_at_the_gateway,
    sign_in_redirect => browsers_are_sent_to_sign_in_without_open_redirects,
);
