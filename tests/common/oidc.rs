//! Relying-party helpers: registering clients through the CLI, PKCE computed here (not by
//! Tollgate's code), walking the hosted pages, and calling the token endpoint.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::browser::{Browser, absolute, hidden};
use super::{PASSWORD, Reply, TestServer};

/// A registered client.
#[derive(Debug, Clone)]
pub struct Rp {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

impl Rp {
    pub fn basic(&self) -> String {
        let creds = format!("{}:{}", self.id, self.secret.as_deref().unwrap_or(""));
        format!("Basic {}", STANDARD.encode(creds))
    }
}

/// `tollgate client add NAME ARGS…`, with `redirect` as its first redirect URI when given.
pub fn add_client(s: &TestServer, name: &str, redirect: Option<&str>, args: &[&str]) -> Rp {
    let mut all = vec!["client", "add", name];
    if let Some(r) = redirect {
        all.extend(["--redirect-uri", r]);
    }
    all.extend(args);
    let out = s.cli(&all, None);
    assert!(
        out.status.success(),
        "client add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Rp {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().map(str::to_string),
        redirect_uri: redirect.unwrap_or("").to_string(),
    }
}

/// A PKCE pair: a random verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Pkce {
        challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        verifier,
    }
}

/// The authorization URL for `rp` with the usual parameters, `extra` added or replacing
/// them (an empty value removes one).
pub fn authorize_url(s: &TestServer, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), rp.id.clone()),
        ("redirect_uri".into(), rp.redirect_uri.clone()),
        ("scope".into(), "openid email".into()),
        ("state".into(), "st4te".into()),
        ("nonce".into(), "n0nce".into()),
    ];
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    s.url(&format!("/oauth2/authorize?{query}"))
}

/// Follows an authorization through the hosted pages as `email` (password [`PASSWORD`]),
/// allowing whatever is asked, until the browser is sent off `s`: returns that URL.
pub async fn walk(b: &mut Browser, s: &TestServer, start: &str, email: &str) -> String {
    walk_as(b, s, start, email, None).await
}

/// [`walk`], giving `code` when the second step of a sign-in asks for one.
pub async fn walk_as(
    b: &mut Browser,
    s: &TestServer,
    start: &str,
    email: &str,
    code: Option<&str>,
) -> String {
    let mut url = start.to_string();
    let mut reply = b.get(&url).await;
    for _ in 0..12 {
        match reply.status {
            200 if hidden(&reply.text, "mfa_token").is_some() => {
                let code = code.unwrap_or_else(|| panic!("a second factor is asked for at {url}"));
                let mut form = vec![
                    ("mfa_token", hidden(&reply.text, "mfa_token").unwrap()),
                    ("csrf_token", hidden(&reply.text, "csrf_token").unwrap()),
                    ("code", code.to_string()),
                ];
                if let Some(f) = hidden(&reply.text, "flow") {
                    form.push(("flow", f));
                }
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                url = s.url("/ui/mfa");
                reply = b.post_form(&url, &form).await;
            }
            302 | 303 => {
                let next = absolute(&url, reply.header("location"));
                if !next.starts_with(&s.base) {
                    return next;
                }
                url = next;
                reply = b.get(&url).await;
            }
            200 if url.contains("/ui/login") => {
                let (csrf, flow) = (
                    hidden(&reply.text, "csrf_token").unwrap(),
                    hidden(&reply.text, "flow"),
                );
                let mut form = vec![
                    ("email", email),
                    ("password", PASSWORD),
                    ("csrf_token", csrf.as_str()),
                ];
                if let Some(f) = &flow {
                    form.push(("flow", f.as_str()));
                }
                url = s.url("/ui/login");
                reply = b.post_form(&url, &form).await;
            }
            200 if url.contains("/ui/consent") => {
                let csrf = hidden(&reply.text, "csrf_token").unwrap();
                let flow = hidden(&reply.text, "flow").unwrap();
                url = s.url("/ui/consent");
                reply = b
                    .post_form(
                        &url,
                        &[
                            ("csrf_token", &csrf),
                            ("flow", &flow),
                            ("decision", "allow"),
                        ],
                    )
                    .await;
            }
            _ => panic!("unexpected page at {url}: {} {}", reply.status, reply.text),
        }
    }
    panic!("too many steps");
}

/// The `code` of a redirect back to the client (checking `state` and `iss`).
pub fn code_of(s: &TestServer, redirect: &str) -> String {
    let q = super::browser::query_of(redirect);
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("st4te"),
        "{redirect}"
    );
    assert_eq!(q.get("iss"), Some(&s.base), "{redirect}");
    q.get("code")
        .unwrap_or_else(|| panic!("no code in {redirect}"))
        .clone()
}

/// `POST /oauth2/token` (or another form endpoint) authenticated as `rp`: Basic for a
/// confidential client, `client_id` in the body for a public one.
pub async fn form_call(s: &TestServer, path: &str, rp: &Rp, fields: &[(&str, &str)]) -> Reply {
    let mut fields = fields.to_vec();
    let mut headers = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    if rp.secret.is_some() {
        headers.push(("authorization", rp.basic()));
    } else {
        fields.push(("client_id", &rp.id));
    }
    raw_form(s, path, &headers, &fields).await
}

/// A form POST with exactly these headers.
pub async fn raw_form(
    s: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    fields: &[(&str, &str)],
) -> Reply {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().copied())
        .finish();
    let mut req = s.http.post(s.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    Reply::from(req.send().await.unwrap()).await
}

pub async fn exchange(s: &TestServer, rp: &Rp, code: &str, verifier: Option<&str>) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", rp.redirect_uri.as_str()),
    ];
    if let Some(v) = verifier {
        fields.push(("code_verifier", v));
    }
    form_call(s, "/oauth2/token", rp, &fields).await
}

/// An OAuth error answer: status, JSON `error`, no caching.
pub fn assert_oauth_error(r: &Reply, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"], error, "{}", r.text);
    assert!(r.json["error_description"].is_string(), "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store");
}

/// A whole authorization for `email` with a fresh PKCE pair: `(code, verifier)`.
pub async fn authorized_code(
    b: &mut Browser,
    s: &TestServer,
    rp: &Rp,
    email: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let p = pkce();
    let mut params = vec![
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let back = walk(b, s, &authorize_url(s, rp, &params), email).await;
    assert!(back.starts_with(&rp.redirect_uri), "{back}");
    (code_of(s, &back), p.verifier)
}

/// A whole authorization for `email` and its code exchange: the token response.
pub async fn authorized_tokens(
    b: &mut Browser,
    s: &TestServer,
    rp: &Rp,
    email: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let (code, verifier) = authorized_code(b, s, rp, email, extra).await;
    let t = exchange(s, rp, &code, Some(&verifier)).await;
    assert_eq!(t.status, 200, "{}", t.text);
    t
}
