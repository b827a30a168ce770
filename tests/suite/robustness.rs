//! Malformed input of every kind gets a 4xx problem+json, never a 5xx; the operational
//! endpoints answer; unknown paths and methods are problems too.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    malformed_input_is_a_4xx_problem,
    garbage_credentials_are_401,
    operational_endpoints_answer
);

async fn raw(
    s: &TestServer,
    method: Method,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &[u8])],
) -> Reply {
    let mut req = s.http.request(method, s.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
    }
    Reply::from(req.send().await.unwrap()).await
}

/// (name, path, body, headers, expected status, expected code)
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<u8>,
    &'a [(&'a str, &'a [u8])],
    u16,
    &'a str,
);

async fn malformed_input_is_a_4xx_problem(b: Backend) {
    let s = TestServer::start(b).await;
    let json_ct: &[(&str, &[u8])] = &[("content-type", b"application/json")];
    let cases: Vec<Case> = vec![
        (
            "syntax",
            "/auth/login",
            b"{".to_vec(),
            json_ct,
            400,
            "malformed_json",
        ),
        (
            "wrong types",
            "/auth/login",
            br#"{"email": 5, "password": []}"#.to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            "missing field",
            "/auth/register",
            br#"{"email": "a@b.c"}"#.to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            "not an object",
            "/auth/register",
            b"[1,2,3]".to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            "non-UTF-8",
            "/auth/login",
            b"{\"email\": \"\xff\xfe\", \"password\": \"x\"}".to_vec(),
            json_ct,
            400,
            "malformed_json",
        ),
        (
            "null bytes",
            "/auth/register",
            b"{\"email\": \"a\\u0000@b.c\", \"password\": \"long enough\"}".to_vec(),
            json_ct,
            400,
            "invalid_email",
        ),
        (
            "no content type",
            "/auth/login",
            br#"{"email":"a@b.c","password":"x"}"#.to_vec(),
            &[],
            415,
            "unsupported_media_type",
        ),
        (
            "wrong content type",
            "/auth/login",
            b"email=a".to_vec(),
            &[("content-type", b"application/x-www-form-urlencoded")],
            415,
            "unsupported_media_type",
        ),
        (
            "deep nesting",
            "/auth/login",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            "refresh token of the wrong type",
            "/auth/refresh?mode=token",
            br#"{"refresh_token": 42}"#.to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            "unknown mode",
            "/auth/login?mode=carrier-pigeon",
            br#"{"email":"a@b.c","password":"x"}"#.to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
    ];
    for (name, path, body, headers, status, code) in cases {
        let r = raw(&s, Method::POST, path, body, headers).await;
        assert_eq!(r.status, status, "{name}: {}", r.text);
        r.assert_problem(status, code);
    }
    // An oversized body is refused from its Content-Length, before it is read; a raw
    // socket shows the answer (HTTP clients often fail writing the unread body instead).
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    let reply = raw_tcp(s.port, head).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("application/problem+json") && reply.contains("payload_too_large"),
        "{reply}"
    );
    let huge_token = json!({ "refresh_token": "x".repeat(10_000) });
    s.post("/auth/refresh?mode=token", huge_token)
        .await
        .assert_problem(401, "invalid_refresh_token");
    let r = s.call(Method::GET, "/no/such/path", None, &[]).await;
    r.assert_problem(404, "not_found");
    let r = s.call(Method::PUT, "/auth/login", None, &[]).await;
    r.assert_problem(405, "method_not_allowed");
}

async fn raw_tcp(port: u16, request: String) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap()
}

async fn garbage_credentials_are_401(b: Backend) {
    let s = TestServer::start(b).await;
    let long = format!("Bearer {}", "a".repeat(20_000));
    let headers: Vec<(&str, Vec<u8>)> = vec![
        ("authorization", b"Bearer garbage".to_vec()),
        ("authorization", b"Bearer a.b.c".to_vec()),
        ("authorization", b"Basic dXNlcjpwYXNz".to_vec()),
        ("authorization", b"Bearer".to_vec()),
        ("authorization", b"Bearer \xff\xfe".to_vec()),
        ("authorization", long.into_bytes()),
        ("cookie", b"tg_at=garbage".to_vec()),
        ("cookie", b"tg_at=a.b.c; tg_rt=zzz".to_vec()),
    ];
    for (name, value) in &headers {
        let r = raw(&s, Method::GET, "/auth/me", vec![], &[(name, value)]).await;
        assert_eq!(
            r.status,
            401,
            "{name}: {:?} -> {}",
            String::from_utf8_lossy(value),
            r.text
        );
        assert!(
            r.header("content-type")
                .starts_with("application/problem+json")
        );
        assert!(!r.header("www-authenticate").is_empty());
    }
    let r = raw(
        &s,
        Method::GET,
        "/auth/me",
        vec![],
        &[("cookie", b"\xff\xfe=\x80")],
    )
    .await;
    r.assert_problem(401, "unauthenticated");
    // Garbage refresh cookies: 401 (after the CSRF check), never 5xx.
    let r = raw(
        &s,
        Method::POST,
        "/auth/refresh",
        vec![],
        &[("cookie", b"tg_rt=nope; tg_csrf=c"), ("x-csrf-token", b"c")],
    )
    .await;
    r.assert_problem(401, "invalid_refresh_token");
    let r = raw(
        &s,
        Method::POST,
        "/auth/logout",
        vec![],
        &[("cookie", b"tg_rt=nope; tg_csrf=c"), ("x-csrf-token", b"c")],
    )
    .await;
    assert_eq!(
        r.status, 204,
        "logging out an unknown session just clears cookies"
    );
    // A long session id is a plain 404.
    let email = email("garbage");
    s.register(&email).await;
    let (at, _) = s.login_tokens(&email, PASSWORD).await;
    let auth = format!("Bearer {at}");
    for id in [
        "x".repeat(1000),
        "%00".into(),
        "%FF".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    ] {
        let r = s
            .call(
                Method::DELETE,
                &format!("/auth/sessions/{id}"),
                None,
                &[("authorization", &auth)],
            )
            .await;
        r.assert_problem(404, "not_found");
    }
}

async fn operational_endpoints_answer(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s.call(Method::GET, "/healthz", None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(!r.header("x-request-id").is_empty(), "request id echoed");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    let r = s
        .call(
            Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "trace-me-123")],
        )
        .await;
    assert_eq!(r.header("x-request-id"), "trace-me-123");
    let r = s.call(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json["database"],
        if b == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    s.post(
        "/auth/login",
        json!({ "email": "x@y.z", "password": "whatever!" }),
    )
    .await;
    let r = s.call(Method::GET, "/metrics", None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("tollgate_http_requests_total"),
        "{}",
        r.text
    );
    assert!(r.text.contains("tollgate_logins_total"), "{}", r.text);
    let d = s
        .call(Method::GET, "/.well-known/openid-configuration", None, &[])
        .await;
    assert_eq!(d.json["issuer"], s.base.as_str());
    assert_eq!(
        d.json["jwks_uri"],
        format!("{}/.well-known/jwks.json", s.base)
    );
}
