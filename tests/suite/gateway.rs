//! The gateway over real HTTP: route policy, identity to the upstream, the signed
//! assertion, path normalisation, streaming, upgrades, upstream failures.

use crate::common;

use std::time::{Duration, Instant};

use common::upstream::{Upstream, echoed_header, raw, raw_get};
use common::*;
use reqwest::Method;
use serde_json::Value;

pub fn routes(up: &str) -> String {
    format!(
        r#"
[roles.user]
scopes = ["profile"]
[roles.analyst]
scopes = ["docs:read", "ai:invoke"]

[gateway]
timeout = "1s"

[[route]]
path = "/pub/*"
upstream = "{up}"
auth = "public"

[[route]]
path = "/opt/*"
upstream = "{up}"
auth = "optional"

[[route]]
path = "/req/*"
upstream = "{up}"

[[route]]
path = "/docs/*"
upstream = "{up}"
scopes = ["docs:read"]
strip_prefix = "/docs"

[[route]]
path = "/docs/admin/*"
upstream = "{up}"
methods = ["GET"]
scopes = ["docs:read", "docs:admin"]

[[route]]
path = "/down/*"
upstream = "http://127.0.0.1:1"
auth = "public"
"#
    )
}

pub async fn gateway(backend: Backend, up: &Upstream) -> TestServer {
    TestServer::start_with(
        backend,
        Options {
            config: routes(&up.base),
            env: vec![],
        },
    )
    .await
}

/// [`gateway`] with the given `[gateway] idle_timeout`.
async fn gateway_with_idle_timeout(backend: Backend, up: &Upstream, idle: &str) -> TestServer {
    TestServer::start_with(
        backend,
        Options {
            config: routes(&up.base).replace(
                "timeout = \"1s\"",
                &format!("timeout = \"1s\"\nidle_timeout = \"{idle}\""),
            ),
            env: vec![],
        },
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn policy_matrix(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let (_, plain) = s.user_with_roles("plain", &[]).await;
    let (_, analyst) = s.user_with_roles("analyst", &["analyst"]).await;
    let garbage = "eyJhbGciOiJFZERTQSJ9.e30.AAAA";
    // (path, credential, status, identified upstream, problem code)
    let cases: Vec<(&str, Option<&str>, u16, bool, &str)> = vec![
        ("/pub/x", None, 200, false, ""),
        ("/pub/x", Some(&plain), 200, false, ""),
        ("/pub/x", Some(garbage), 200, false, ""),
        ("/opt/x", None, 200, false, ""),
        ("/opt/x", Some(&plain), 200, true, ""),
        ("/opt/x", Some(garbage), 401, false, "invalid_token"),
        ("/req/x", None, 401, false, "unauthenticated"),
        ("/req/x", Some(garbage), 401, false, "invalid_token"),
        ("/req/x", Some(&plain), 200, true, ""),
        ("/docs/x", None, 401, false, "unauthenticated"),
        ("/docs/x", Some(&plain), 403, false, "insufficient_scope"),
        ("/docs/x", Some(&analyst), 200, true, ""),
        (
            "/docs/admin/x",
            Some(&analyst),
            403,
            false,
            "insufficient_scope",
        ),
        ("/nowhere", Some(&analyst), 404, false, "not_found"),
    ];
    for (path, cred, status, identified, code) in cases {
        let auth = cred.map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = s.call(Method::GET, path, None, &headers).await;
        let what = format!("{path} with {:?}", cred.map(|c| &c[..10.min(c.len())]));
        assert_eq!(r.status, status, "{what}: {:?}", r.json);
        if status == 200 {
            assert_eq!(
                echoed_header(&r.json, "x-tollgate-user").is_some(),
                identified,
                "{what}: {:?}",
                r.json
            );
        } else {
            r.assert_problem(status, code);
            if status == 401 {
                assert!(!r.header("www-authenticate").is_empty(), "{what}");
            }
        }
    }
    // The longest route's method list is final: no fall-through to "/docs/*".
    let r = s
        .call(
            Method::POST,
            "/docs/admin/x",
            None,
            &[("authorization", &bearer(&analyst))],
        )
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), "GET");
    // strip_prefix: "/docs/x" reaches the upstream as "/x".
    let r = s.get_bearer("/docs/x?q=1", &analyst).await;
    assert_eq!(r.json["path"], "/x");
    assert_eq!(r.json["query"], "q=1");
}

async fn identity_reaches_the_upstream_and_forgeries_do_not(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let (email, analyst) = s.user_with_roles("analyst", &["analyst"]).await;
    let me = s.get_bearer("/auth/me", &analyst).await;
    let forged = [
        ("x-tollgate-user", "admin"),
        ("X-Tollgate-Email", "admin@example.com"),
        ("x-tollgate-scopes", "admin"),
        ("x-tollgate-session", "forged"),
        ("x-tollgate-assertion", "forged.jwt.value"),
        ("x-tollgate-extra", "1"),
    ];
    // Anonymous on a public route: every forged header is gone, nothing added.
    let r = s.call(Method::GET, "/pub/x", None, &forged).await;
    assert_eq!(r.status, 200);
    let names: Vec<&String> = r.json["headers"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-tollgate-")),
        "{names:?}"
    );
    // Authenticated: the real identity replaces the forged one.
    let auth = bearer(&analyst);
    let mut headers = forged.to_vec();
    headers.push(("authorization", &auth));
    let r = s.call(Method::GET, "/req/x", None, &headers).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let h = |n| echoed_header(&r.json, n).unwrap_or_default().to_string();
    assert_eq!(h("x-tollgate-user"), me.str("id"));
    assert_eq!(h("x-tollgate-email"), email);
    assert_eq!(h("x-tollgate-scopes"), "ai:invoke docs:read profile");
    assert_eq!(h("x-tollgate-session"), me.str("session_id"));
    assert!(r.json["headers"]["x-tollgate-extra"].is_null());
    assert_eq!(
        r.json["headers"]["x-tollgate-user"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The credential Tollgate consumed is not handed on.
    assert!(r.json["headers"]["authorization"].is_null(), "{:?}", r.json);
    // The assertion verifies with the JWKS, for this upstream only.
    let assertion = h("x-tollgate-assertion");
    let jwks: Value = s
        .call(Method::GET, "/.well-known/jwks.json", None, &[])
        .await
        .json;
    let claims =
        verify_assertion(&jwks, &assertion, &up.base, &s.base).expect("assertion verifies");
    assert_eq!(claims["sub"], me.json["id"]);
    assert_eq!(claims["sid"], me.json["session_id"]);
    assert_eq!(claims["scope"], "ai:invoke docs:read profile");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 60);
    assert!(verify_assertion(&jwks, &assertion, "http://other.example", &s.base).is_err());
    // It is not an access token.
    s.get_bearer("/auth/me", &assertion)
        .await
        .assert_problem(401, "invalid_token");
    s.get_bearer("/req/x", &assertion)
        .await
        .assert_problem(401, "invalid_token");
    // Forwarding headers.
    assert_eq!(h("x-forwarded-for"), "127.0.0.1");
    assert_eq!(h("x-forwarded-proto"), "http");
    assert_eq!(h("x-forwarded-host"), format!("127.0.0.1:{}", s.port));
    assert_eq!(h("host"), format!("127.0.0.1:{}", up.port));
}

/// Hardening item 1: header names that WSGI, CGI and uWSGI apps read as ours
/// (`X_Tollgate_User` is `HTTP_X_TOLLGATE_USER`) never reach the upstream, and routes that
/// ask for it also drop other auth proxies' identity headers.
async fn identity_headers_cannot_be_forged_in_any_spelling(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let (_, token) = s.user_with_roles("spelling", &[]).await;
    let forged = [
        ("X_Tollgate_User", "admin"),
        ("x-tollgate_user", "admin"),
        ("X_TOLLGATE_SCOPES", "admin"),
        ("x_tollgate_email", "admin@example.com"),
        ("X-TOLLGATE-SESSION", "forged"),
        ("x-forwarded-user", "admin"),
        ("X_Forwarded_Email", "admin@example.com"),
        ("x-auth-request-user", "admin"),
        ("X_Auth_Request_Groups", "admins"),
        ("Remote-User", "admin"),
        ("remote_groups", "admins"),
        ("x-webauth-user", "admin"),
    ];
    let proxy_identity = |echo: &Value| {
        echo["headers"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|n| {
                let n = n.replace('_', "-");
                n.starts_with("x-forwarded-user")
                    || n.starts_with("x-forwarded-email")
                    || n.starts_with("x-auth-request-")
                    || n.starts_with("remote-")
                    || n == "x-webauth-user"
            })
            .count()
    };
    for (path, auth) in [("/pub/x", None), ("/req/x", Some(bearer(&token)))] {
        let mut headers = forged.to_vec();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let r = s.call(Method::GET, path, None, &headers).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.json);
        let ours: Vec<&String> = r.json["headers"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|n| n.replace('_', "-").starts_with("x-tollgate-"))
            .collect();
        if auth.is_some() {
            // Only the gateway's own, once each, with the real values.
            assert!(
                ours.iter().all(|n| n.starts_with("x-tollgate-")),
                "{ours:?}"
            );
            assert_ne!(echoed_header(&r.json, "x-tollgate-user"), Some("admin"));
            assert_eq!(
                r.json["headers"]["x-tollgate-user"]
                    .as_array()
                    .unwrap()
                    .len(),
                1
            );
        } else {
            assert!(ours.is_empty(), "{path}: {ours:?}");
        }
        // Other proxies' headers are the app's business unless the route says otherwise.
        assert_eq!(proxy_identity(&r.json), 7, "{path}");
    }
    let config = format!(
        "[[route]]\npath = \"/clean/*\"\nupstream = \"{}\"\nauth = \"public\"\nstrip_proxy_identity = true\n",
        up.base
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let r = s.call(Method::GET, "/clean/x", None, &forged).await;
    assert_eq!(r.status, 200);
    assert_eq!(proxy_identity(&r.json), 0, "{:?}", r.json["headers"]);
}

/// Hardening item 2: a path that differs from a protected route only in case, a trailing
/// slash or a letter that folds to ASCII is held to that route's policy, through the
/// proxy and through forward auth.
async fn other_spellings_of_a_protected_path_keep_its_policy(backend: Backend) {
    let up = Upstream::start().await;
    let config = format!(
        r#"
[[route]]
path = "/*"
upstream = "{up}"
auth = "public"

[[route]]
path = "/api/admin/*"
upstream = "{up}"
scopes = ["admin"]

[[route]]
path = "/reports"
upstream = "{up}"
"#,
        up = up.base
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    for path in [
        "/API/ADMIN/users",
        "/Api/Admin/users",
        "/api/ADMIN",
        "/api/admin/",
        "/api/adm%C4%B1n/users",
        "/api/%C4%B0nfo/../admin/users",
        "/reports/",
        "/Reports",
        "/REPORTS/",
    ] {
        let (status, text) = raw_get(s.port, path, "").await;
        assert_eq!(status, 401, "{path}: {text}");
        let verdict = s
            .call(
                Method::GET,
                "/auth/verify",
                None,
                &[("x-original-uri", path), ("x-original-method", "GET")],
            )
            .await;
        assert_eq!(verdict.status, 401, "forward auth, {path}");
    }
    // Signed in without the scope: still refused; the configured spelling still works.
    let (_, token) = s.user_with_roles("spelling", &[]).await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, _) = raw_get(s.port, "/API/ADMIN/users", &auth).await;
    assert_eq!(status, 403);
    let (status, text) = raw_get(s.port, "/Reports/", &auth).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#""path":"/Reports/""#),
        "the upstream gets the path as sent: {text}"
    );
    let (status, _) = raw_get(s.port, "/anything/else", "").await;
    assert_eq!(status, 200);
}

/// Hardening item 10: upstreams are told whether the address is verified (header and
/// assertion), and a route can refuse accounts whose address is not.
async fn unverified_addresses_are_named_and_can_be_refused(backend: Backend) {
    let up = Upstream::start().await;
    let config = format!(
        "{}\n[[route]]\npath = \"/verified/*\"\nupstream = \"{}\"\nverified_email = true\n",
        routes(&up.base),
        up.base
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let user = email("unverified");
    s.register(&user).await;
    let (token, _) = s.login_tokens(&user, PASSWORD).await;
    let auth = bearer(&token);
    let r = s
        .call(Method::GET, "/req/x", None, &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-email-verified"),
        Some("false")
    );
    let claims = jwt_part(echoed_header(&r.json, "x-tollgate-assertion").unwrap(), 1);
    assert_eq!(claims["email_verified"], false);
    s.call(
        Method::GET,
        "/verified/x",
        None,
        &[("authorization", &auth)],
    )
    .await
    .assert_problem(403, "email_unverified");
    let verdict = s
        .call(
            Method::GET,
            "/auth/verify",
            None,
            &[
                ("authorization", &auth),
                ("x-original-uri", "/verified/x"),
                ("x-original-method", "GET"),
            ],
        )
        .await;
    assert_eq!(verdict.status, 403);
    // Verified through the mailed code: the next token says so, and the route admits it.
    let mail = wait_for_mail(&s, &user, 1).await;
    let code = common::smtp::token_in(&mail);
    assert_eq!(
        s.post("/auth/email/verify", serde_json::json!({"token": code}))
            .await
            .status,
        204
    );
    let (token, _) = s.login_tokens(&user, PASSWORD).await;
    let r = s
        .call(
            Method::GET,
            "/verified/x",
            None,
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        echoed_header(&r.json, "x-tollgate-email-verified"),
        Some("true")
    );
    let claims = jwt_part(echoed_header(&r.json, "x-tollgate-assertion").unwrap(), 1);
    assert_eq!(claims["email_verified"], true);
    // A forged header in any spelling never survives.
    let r = s
        .call(
            Method::GET,
            "/pub/x",
            None,
            &[("x_tollgate_email_verified", "true")],
        )
        .await;
    assert!(r.json["headers"]["x_tollgate_email_verified"].is_null());
}

pub fn verify_assertion(jwks: &Value, token: &str, aud: &str, iss: &str) -> Result<Value, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).map_err(|e| e.to_string())?;
    assert_eq!(header.typ.as_deref(), Some("tollgate-assertion+jwt"));
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("kid not in the JWKS")?;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[aud]);
    v.set_issuer(&[iss]);
    v.leeway = 0;
    decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn our_cookies_stay_with_us(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let e = email("cookies");
    s.register(&e).await;
    let jar = s.login_cookies(&e).await;
    let cookie = format!("{}; app=1", jar.header());
    for path in ["/pub/x", "/req/x"] {
        let r = s
            .call(Method::GET, path, None, &[("cookie", &cookie)])
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(echoed_header(&r.json, "cookie"), Some("app=1"), "{path}");
    }
    // An upstream cannot plant Tollgate cookies; its own pass.
    let r = s.call(Method::GET, "/pub/set-cookie", None, &[]).await;
    let set: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, vec!["app=1; Path=/"]);
    // Tollgate's bearer credentials reach no upstream, not even on a public route;
    // other schemes and foreign bearer tokens are the app's business.
    let (access, _) = s.login_tokens(&e, PASSWORD).await;
    let ours = format!("Bearer {access}");
    let r = s
        .call(Method::GET, "/pub/x", None, &[("authorization", &ours)])
        .await;
    assert!(r.json["headers"]["authorization"].is_null(), "{}", r.text);
    for foreign in ["Bearer sk-upstream-own-token", "Basic YTpi"] {
        let r = s
            .call(Method::GET, "/pub/x", None, &[("authorization", foreign)])
            .await;
        assert_eq!(echoed_header(&r.json, "authorization"), Some(foreign));
    }
    // Ours is removed even behind another Authorization header; the other one passes.
    for path in ["/pub/x", "/opt/x"] {
        let r = s
            .call(
                Method::GET,
                path,
                None,
                &[("authorization", "Basic YTpi"), ("authorization", &ours)],
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let sent: Vec<&str> = r.json["headers"]["authorization"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert!(
            !sent.iter().any(|v| v.contains(&access)),
            "{path}: {sent:?}"
        );
        assert_eq!(
            echoed_header(&r.json, "authorization"),
            Some("Basic YTpi"),
            "{path}: the other scheme passes, even when ours authenticated the request"
        );
    }
    // Headers that would steer the upstream to another method, path or client address.
    let steering = [
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("forwarded", "for=1.2.3.4;host=evil"),
        ("x-real-ip", "1.2.3.4"),
        ("true-client-ip", "1.2.3.4"),
        ("x-client-ip", "1.2.3.4"),
        ("client-ip", "1.2.3.4"),
        ("cf-connecting-ip", "1.2.3.4"),
        ("fastly-client-ip", "1.2.3.4"),
        ("x-cluster-client-ip", "1.2.3.4"),
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-scheme", "https"),
        ("x-url-scheme", "https"),
        ("x-scheme", "https"),
        ("proxy", "http://evil.example:8080"),
        ("front-end-https", "on"),
        ("x-forwarded-protocol", "https"),
        ("x-original-host", "evil.example"),
        ("wl-proxy-client-ip", "1.2.3.4"),
    ];
    let r = s.call(Method::GET, "/pub/x", None, &steering).await;
    for (name, _) in steering {
        assert!(r.json["headers"][name].is_null(), "{name}: {}", r.text);
    }
}

/// Hardening items 14 and 15: forwarding headers are Tollgate's unless a trusted proxy
/// sent them; an upstream cannot switch HSTS off or plant our cookies under another
/// spelling.
async fn upstreams_hear_the_truth_and_cannot_override_us(backend: Backend) {
    let up = Upstream::start().await;
    let port = free_port();
    let public = format!("https://gate.example.com:{port}");
    let s = TestServer::start_with(
        backend,
        Options {
            config: routes(&up.base),
            env: vec![("TOLLGATE_PUBLIC_URL", public.clone())],
        },
    )
    .await;
    let lies = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("host", "evil.example"),
    ];
    // The same lies in the spellings WSGI and Rack read alike (`HTTP_X_FORWARDED_HOST`).
    let underscored = [
        ("X_Forwarded_For", "6.6.6.6"),
        ("x_forwarded_host", "evil.example"),
        ("X_Forwarded_Proto", "gopher"),
        ("X_Original_URL", "/admin"),
        ("x_http_method_override", "DELETE"),
        ("X_Real_IP", "7.7.7.7"),
    ];
    let r = s
        .call(
            Method::GET,
            "/pub/x",
            None,
            &[&lies[..], &underscored[..]].concat(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&String> = r.json["headers"].as_object().unwrap().keys().collect();
    assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
    assert_eq!(echoed_header(&r.json, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        echoed_header(&r.json, "x-forwarded-host"),
        Some(format!("gate.example.com:{port}").as_str())
    );
    assert_eq!(echoed_header(&r.json, "x-forwarded-proto"), Some("https"));
    let r = s.call(Method::GET, "/pub/set-cookie", None, &[]).await;
    assert_eq!(r.header("strict-transport-security"), "max-age=63072000");
    let set: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, vec!["app=1; Path=/"]);
    // From a trusted proxy, its account of the client is kept (and the peer appended).
    let s = TestServer::start_with(
        backend,
        Options {
            config: format!(
                "{}\n[limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
                routes(&up.base)
            ),
            env: vec![("TOLLGATE_PUBLIC_URL", public)],
        },
    )
    .await;
    let r = s.call(Method::GET, "/pub/x", None, &lies).await;
    assert_eq!(
        echoed_header(&r.json, "x-forwarded-for"),
        Some("6.6.6.6, 127.0.0.1")
    );
    assert_eq!(
        echoed_header(&r.json, "x-forwarded-host"),
        Some("evil.example")
    );
}

async fn proxied_responses_keep_upstream_headers_own_responses_get_ours(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let r = s.call(Method::GET, "/pub/x", None, &[]).await;
    assert_eq!(r.header("content-security-policy"), "default-src 'self'");
    assert!(r.headers.get("x-frame-options").is_none());
    let r = s.call(Method::GET, "/req/x", None, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(
        r.header("content-security-policy")
            .contains("default-src 'none'")
    );
}

async fn traversal_and_encoding_tricks_keep_their_policy(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    // Each would reach "/req/secret" (login required) from the public route if the
    // gateway matched the raw path and the upstream normalised it afterwards.
    for path in [
        "/pub/../req/secret",
        "/pub/%2e%2e/req/secret",
        "/pub/%2E%2E/req/secret",
        "/pub/.%2e/req/secret",
        "/pub/./../req/secret",
        "//req/secret",
        "/pub/..//req/secret",
        "/%70ub/../req/secret",
    ] {
        let (status, text) = raw_get(s.port, path, "").await;
        assert_eq!(status, 401, "{path}: {text}");
    }
    for path in [
        "/pub/..%2freq/secret",
        "/pub/%2e%2e%2Freq/secret",
        "/pub/..%5creq/secret",
        "/pub/x%00",
        "/pub/..;/req/secret",
        "/req;x/secret",
        "/pub/%zz",
        "/pub/../../etc/passwd",
        // Overlong UTF-8: `.` and `/` to a lenient decoder.
        "/pub/%c0%ae%c0%ae/req/secret",
        "/pub/%c0%af../req/secret",
    ] {
        let (status, text) = raw_get(s.port, path, "").await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("invalid_path"), "{path}: {text}");
    }
    // Reserved paths cannot be reached through a route by encoding.
    for path in ["/pub/../auth/me", "/%61uth/me", "/pub/%2e%2e/healthz"] {
        let (status, text) = raw_get(s.port, path, "").await;
        assert_eq!(status, 404, "{path}: {text}");
    }
    // The upstream receives the normalised path, the one whose policy was checked.
    let (status, text) = raw_get(s.port, "/pub/a/./b/../c%2Dd", "").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""path":"/pub/a/c-d""#), "{text}");
}

async fn oversized_headers_get_431(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let big = "a".repeat(40 * 1024);
    let r = s
        .call(Method::GET, "/pub/x", None, &[("x-big", &big)])
        .await;
    r.assert_problem(431, "headers_too_large");
    let huge = "b".repeat(1024 * 1024);
    let (status, _) = raw_get(s.port, "/pub/x", &format!("X-Huge: {huge}\r\n")).await;
    assert_eq!(status, 431);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = raw_get(s.port, "/pub/x", &many).await;
    assert!((400..500).contains(&status), "{status}");
}

async fn upstream_failures_are_502_and_504(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    s.call(Method::GET, "/down/x", None, &[])
        .await
        .assert_problem(502, "upstream_unavailable");
    let start = Instant::now();
    s.call(Method::GET, "/pub/slow", None, &[])
        .await
        .assert_problem(504, "upstream_timeout");
    // The timeout is 1 s and the upstream answers after 10 s.
    assert!(start.elapsed() < Duration::from_secs(6));
}

/// Connecting is timed on its own: an upstream that never completes the handshake gets
/// 504 after `connect_timeout`, not after the kernel gives up (minutes).
async fn a_connect_that_hangs_is_cut_after_the_connect_timeout(backend: Backend) {
    let up = Upstream::start().await;
    let hole = common::upstream::Blackhole::start().await;
    // An https upstream that takes the connection but never answers the TLS handshake:
    // connecting includes the handshake.
    let mute = common::upstream::Deaf::start().await;
    let mute_tls = mute.base.replace("http://", "https://");
    let config = routes(&up.base).replace(
        "timeout = \"1s\"",
        &format!(
            "timeout = \"30s\"\nconnect_timeout = \"1s\"\n\n[[route]]\npath = \"/hang/*\"\nupstream = \"{}\"\nauth = \"public\"\n\n[[route]]\npath = \"/tls/*\"\nupstream = \"{mute_tls}\"\nauth = \"public\"",
            hole.base
        ),
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    for path in ["/hang/x", "/tls/x"] {
        let start = Instant::now();
        s.call(Method::GET, path, None, &[])
            .await
            .assert_problem(504, "upstream_timeout");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{path}: {:?}",
            start.elapsed()
        );
    }
    // The same pool still serves the reachable upstream.
    assert_eq!(s.call(Method::GET, "/pub/x", None, &[]).await.status, 200);
}

/// An upstream that stops reading an upload: 504 once it has taken nothing for the idle
/// timeout, instead of holding the client's and the upstream's connections for ever (the
/// body's own idle timer only runs while hyper polls it, which it stops doing then).
async fn an_upstream_that_stops_reading_an_upload_times_out(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let deaf = common::upstream::Deaf::start().await;
    let config = routes(&up.base).replace(
        "timeout = \"1s\"",
        &format!(
            "timeout = \"30s\"\nidle_timeout = \"1s\"\n\n[[route]]\npath = \"/deaf/*\"\nupstream = \"{}\"\nauth = \"public\"",
            deaf.base
        ),
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let (mut read, mut write) = conn.into_split();
    let size: u64 = 256 * 1024 * 1024;
    let writer = tokio::spawn(async move {
        let head = format!("POST /deaf/x HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            write.write_all(&chunk).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), read.read(&mut buf))
            .await
            .expect("no answer while the upstream stopped reading")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // The connection to the upstream is closed, not left holding its unsent megabytes
    // (the client's connection is still open, so nothing else would end it).
    let port: u16 = deaf.base.rsplit(':').next().unwrap().parse().unwrap();
    let closed = eventually(Duration::from_secs(10), || async {
        common::upstream::established_to(s.pid(), port) == 0
    })
    .await;
    writer.abort();
    assert!(closed, "the upstream connection was left open");
}

/// A slow upstream that keeps reading is not cut. Progress is a write to its socket, as
/// for nginx's `proxy_send_timeout`; the kernel lets one happen once about a third of
/// the send buffer (megabytes on loopback) has drained, so "slow" means slower than that
/// per idle timeout.
async fn a_slow_but_steady_upstream_reader_is_not_cut(backend: Backend) {
    let up = Upstream::start().await;
    let slow = common::upstream::SlowReader::start().await;
    let config = routes(&up.base).replace(
        "timeout = \"1s\"",
        &format!(
            "timeout = \"60s\"\nidle_timeout = \"3s\"\n\n[[route]]\npath = \"/slow-reader/*\"\nupstream = \"{}\"\nauth = \"public\"",
            slow.base
        ),
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let size = 8 * 1024 * 1024;
    let res = s
        .http
        .post(s.url("/slow-reader/x"))
        .body(vec![7u8; size])
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), size.to_string());
}

/// A request body with broken chunked framing is the client's error (400), not the
/// upstream's (502), and is not logged as an upstream failure.
async fn malformed_chunked_bodies_are_the_clients_error(backend: Backend) {
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    for chunks in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n",
        "5\rhello\r\n0\r\n\r\n",
    ] {
        let request = format!(
            "POST /pub/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}"
        );
        let (status, text) = common::upstream::raw(s.port, &request).await;
        assert_eq!(status, 400, "{chunks:?}: {text}");
        assert!(text.contains("invalid_body"), "{text}");
    }
}

async fn streams_pass_without_buffering(backend: Backend) {
    use futures_util::StreamExt;
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let start = Instant::now();
    let res = s.http.get(s.url("/pub/stream")).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert_eq!(&first[..], b"data: first\n\n");
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let end_at = start.elapsed();
    assert_eq!(rest, b"data: second\n\n");
    assert!(
        first_at < Duration::from_millis(3000),
        "first event after {first_at:?}"
    );
    assert!(
        end_at >= Duration::from_millis(3900),
        "stream ended after {end_at:?}"
    );
}

async fn a_silent_upstream_stream_is_cut_after_the_idle_timeout(backend: Backend) {
    use futures_util::StreamExt;
    let up = Upstream::start().await;
    let s = gateway_with_idle_timeout(backend, &up, "1s").await;
    let res = s.http.get(s.url("/pub/stream")).send().await.unwrap();
    let mut body = res.bytes_stream();
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"data: first\n\n");
    // The upstream pauses 4 s before its second event: the stream ends in error at
    // about 1 s of silence instead.
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => assert!(!c.starts_with(b"data: second"), "the second event passed"),
            Err(_) => cut = true,
        }
    }
    assert!(cut, "the stream should end in an error");
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

async fn large_uploads_stream_in_constant_memory(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    assert_eq!(s.call(Method::GET, "/pub/x", None, &[]).await.status, 200);
    let before = rss_kib(s.pid(), "VmRSS:");
    let size: u64 = 1024 * 1024 * 1024;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    conn.write_all(
        format!("POST /pub/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let chunk = vec![7u8; 1024 * 1024];
    for _ in 0..size / chunk.len() as u64 {
        conn.write_all(&chunk).await.unwrap();
    }
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.contains(&format!(r#"{{"bytes":{size}}}"#)), "{reply}");
    let peak = rss_kib(s.pid(), "VmHWM:");
    assert!(
        peak < before + 64 * 1024,
        "tollgate grew from {before} KiB to a peak of {peak} KiB for a {} MiB upload",
        size >> 20
    );
}

/// Hardening item 5: `[gateway] timeout` is the wait for the upstream's answer once the
/// request has been sent; an upload may take longer (here 2.4 s against 1 s) as long as
/// bytes keep moving, and one that stalls for the idle timeout is cut with 408.
async fn uploads_are_timed_by_silence_not_length(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let s = gateway_with_idle_timeout(backend, &up, "2s").await;
    let upload = |pauses: Vec<Duration>| async move {
        let chunk = vec![b'x'; 64 * 1024];
        let total = chunk.len() * (pauses.len() + 1);
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        conn.write_all(
            format!("POST /pub/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        conn.write_all(&chunk).await.unwrap();
        for pause in pauses {
            tokio::time::sleep(pause).await;
            if conn.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let mut reply = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(20), conn.read_to_string(&mut reply)).await;
        (total, reply)
    };
    let (total, reply) = upload(vec![Duration::from_millis(600); 4]).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains(&format!(r#"{{"bytes":{total}}}"#)),
        "{reply}"
    );
    let (_, reply) = upload(vec![Duration::from_secs(5)]).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
}

async fn websocket_upgrades_pass_through(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let s = gateway(backend, &up).await;
    let (_, token) = s.user_with_roles("ws", &[]).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    conn.write_all(
        format!(
            "GET /req/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    conn.write_all(b"ping").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"echo:ping");
    // A cookie-authenticated handshake from a foreign Origin is refused (browsers send
    // cookies with WebSocket handshakes and cannot add a CSRF header to them).
    let e = email("ws-cookie");
    s.register(&e).await;
    let cookie = s.login_cookies(&e).await.header();
    let handshake = |origin: &str| {
        format!(
            "GET /req/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Origin: {origin}\r\nCookie: {cookie}\r\n\r\n"
        )
    };
    let (status, text) = raw(
        s.port,
        &handshake("https://evil.example.com").replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("csrf_failed"));
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    conn.write_all(handshake(&s.base).as_bytes()).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    // Only WebSocket upgrades are tunnelled: an h2c upgrade is an ordinary request.
    let (status, text) = raw(
        s.port,
        "GET /pub/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.contains("http2-settings") && !text.contains(r#""upgrade""#),
        "{text}"
    );
    // Hardening item 3: a 101 is tunnelled only when it completes the WebSocket handshake
    // the client asked for; anything else is a 502, never a raw connection.
    let (status, text) = raw(
        s.port,
        "GET /pub/ws-bad-accept HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("upstream_invalid_upgrade"), "{text}");
    for request in [
        "GET /pub/switch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /pub/switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n",
    ] {
        let (status, text) = raw(s.port, request).await;
        assert_eq!(status, 502, "{text}");
    }
    // Unauthenticated upgrades are refused like any request.
    let (status, _) = raw(
        s.port,
        "GET /req/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
}

on_both_backends!(
    policy_matrix,
    identity_reaches_the_upstream_and_forgeries_do_not
);

on_sqlite!(
    forged_spellings => identity_headers_cannot_be_forged_in_any_spelling,
    email_verified => unverified_addresses_are_named_and_can_be_refused,
    route_spellings => other_spellings_of_a_protected_path_keep_its_policy,
    cookies => our_cookies_stay_with_us,
    forwarding_and_overrides => upstreams_hear_the_truth_and_cannot_override_us,
    security_headers => proxied_responses_keep_upstream_headers_own_responses_get_ours,
    traversal => traversal_and_encoding_tricks_keep_their_policy,
    headers_431 => oversized_headers_get_431,
    upstream_failures => upstream_failures_are_502_and_504,
    connect_timeout => a_connect_that_hangs_is_cut_after_the_connect_timeout,
    deaf_upstream => an_upstream_that_stops_reading_an_upload_times_out,
    slow_reader => a_slow_but_steady_upstream_reader_is_not_cut,
    malformed_chunked => malformed_chunked_bodies_are_the_clients_error,
    streaming => streams_pass_without_buffering,
    idle_timeout => a_silent_upstream_stream_is_cut_after_the_idle_timeout,
    large_upload => large_uploads_stream_in_constant_memory,
    slow_upload => uploads_are_timed_by_silence_not_length,
    websocket => websocket_upgrades_pass_through,
);
