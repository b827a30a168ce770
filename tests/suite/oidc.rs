//! The OpenID Connect provider over real HTTP: the code flow with PKCE through the
//! hosted pages, the token endpoint's grants and refusals, introspection, revocation,
//! userinfo and RP-initiated logout.

use crate::common;

use common::browser::{Browser, hidden, query_of};
use common::oidc::{
    Rp, add_client, assert_oauth_error, authorize_url, authorized_code, authorized_tokens, code_of,
    exchange, form_call, pkce, raw_form, walk,
};
use common::{Backend, Options, PASSWORD, TestServer, email, jwt_part};
use serde_json::Value;

const CONFIG: &str = r#"
[roles.user]
scopes = ["profile"]
[roles.analyst]
scopes = ["docs:read", "docs:write"]
"#;

async fn server(b: Backend, extra: &str) -> TestServer {
    TestServer::start_with(
        b,
        Options {
            config: format!("{CONFIG}\n{extra}"),
            env: vec![],
        },
    )
    .await
}

fn redirect(s: &TestServer) -> String {
    format!("http://127.0.0.1:{}/cb", s.port + 1)
}

/// A user with role analyst: its email.
fn analyst(s: &TestServer) -> String {
    let email = email("alice");
    let out = s.cli(
        &[
            "user",
            "add",
            &email,
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    email
}

fn web_client(s: &TestServer) -> Rp {
    add_client(s, "Docs", Some(&redirect(s)), &["--scope", "docs:read"])
}

async fn code_flow_over_http_end_to_end(b: Backend) {
    let s = server(b, "").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    assert_eq!(rp.secret.as_ref().map(String::len), Some(43));
    let mut browser = Browser::new();
    let p = pkce();
    let start = authorize_url(
        &s,
        &rp,
        &[
            ("scope", "openid email profile docs:read"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );

    // The browser is sent to sign in, then asked to consent, on pages that need no script.
    let r = browser.get(&start).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(r.header("location").starts_with("/ui/login?flow="));
    let login_url = s.url(r.header("location"));
    let page = browser.get(&login_url).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(
        page.text.contains("<label for=\"email\">") && page.text.contains("to continue to Docs")
    );
    assert!(
        !page.text.contains("<script"),
        "sign-in works without JavaScript"
    );
    let csrf = hidden(&page.text, "csrf_token").unwrap();
    let flow = hidden(&page.text, "flow").unwrap();
    let r = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", &user),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("flow", &flow),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(r.header("location").starts_with("/ui/consent?flow="));
    assert!(
        browser.cookie(&s.base, "tg_at").is_some(),
        "the browser is signed in"
    );
    let consent = browser.get(&s.url(r.header("location"))).await;
    assert_eq!(consent.status, 200);
    for shown in ["Docs", "docs:read", "see your email address", &user] {
        assert!(consent.text.contains(shown), "{shown}: {}", consent.text);
    }
    let r = browser
        .post_form(
            &s.url("/ui/consent"),
            &[
                ("csrf_token", &hidden(&consent.text, "csrf_token").unwrap()),
                ("flow", &hidden(&consent.text, "flow").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let back = r.header("location").to_string();
    assert!(back.starts_with(&rp.redirect_uri), "{back}");
    let code = code_of(&s, &back);

    // The code buys an access token, an ID token and a refresh token, once.
    let t = exchange(&s, &rp, &code, Some(&p.verifier)).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.json["token_type"], "Bearer");
    assert_eq!(t.header("cache-control"), "no-store");
    assert_eq!(t.header("pragma"), "no-cache");
    let scopes: Vec<&str> = t.json["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(scopes, ["openid", "email", "profile", "docs:read"]);
    let access = t.str("access_token");
    let at = jwt_part(&access, 1);
    assert_eq!(jwt_part(&access, 0)["typ"], "at+jwt");
    assert_eq!(at["client_id"], rp.id.as_str());
    assert_eq!(at["scope"], "openid email profile docs:read");
    assert!(
        !at["scope"].as_str().unwrap().contains("docs:write"),
        "never more than granted"
    );

    // RS256 by default (what every library accepts), verifiable with the published JWKS.
    let id_token = t.str("id_token");
    let header = jwt_part(&id_token, 0);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
    let jwks = s
        .call(reqwest::Method::GET, "/.well-known/jwks.json", None, &[])
        .await
        .json;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap()
        .clone();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[rp.id.as_str()]);
    validation.set_issuer(&[s.base.as_str()]);
    jsonwebtoken::decode::<Value>(
        &id_token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("the ID token verifies against the JWKS");
    let id = jwt_part(&id_token, 1);
    assert_eq!(id["iss"], s.base.as_str());
    assert_eq!(id["aud"], rp.id.as_str());
    assert_eq!(id["azp"], rp.id.as_str());
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["email"], user.as_str());
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["acr"], "1");
    assert_eq!(id["at_hash"], at_hash(&access));
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    let browser_session = jwt_part(&browser.cookie(&s.base, "tg_at").unwrap(), 1)["sid"].clone();
    assert_eq!(
        id["sid"], browser_session,
        "the ID token names the sign-in session"
    );
    assert_ne!(
        at["sid"], browser_session,
        "the client has a session of its own"
    );

    // Userinfo answers from the account as it is now.
    let info = s.get_bearer("/oauth2/userinfo", &access).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["sub"], at["sub"]);
    assert_eq!(info.json["email"], user.as_str());
    assert_eq!(info.json["preferred_username"], user.as_str());

    // The client sees its session among the user's.
    let sessions = s
        .get_bearer("/auth/sessions", &browser.cookie(&s.base, "tg_at").unwrap())
        .await;
    assert!(sessions.text.contains(&rp.id), "{}", sessions.text);

    // A second authorization needs no page at all: signed in, consent remembered.
    let p2 = pkce();
    let again = authorize_url(
        &s,
        &rp,
        &[
            ("scope", "openid email docs:read"),
            ("code_challenge", &p2.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = browser.get(&again).await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location").starts_with(&rp.redirect_uri),
        "{}",
        r.header("location")
    );

    // The refresh token rotates and keeps the grant.
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
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.str("refresh_token"), t.str("refresh_token"));
    assert!(r.json["id_token"].is_string());
    assert_eq!(jwt_part(&r.str("id_token"), 1)["sid"], browser_session);
    assert!(
        r.json["id_token"]
            .as_str()
            .is_some_and(|t| jwt_part(t, 1).get("nonce").is_none())
    );

    // A replayed code is refused, and what its first exchange issued is revoked.
    let replay = exchange(&s, &rp, &code, Some(&p.verifier)).await;
    assert_oauth_error(&replay, 400, "invalid_grant");
    let info = s
        .get_bearer("/oauth2/userinfo", &r.str("access_token"))
        .await;
    assert_eq!(info.status, 401, "{}", info.text);
    assert!(info.header("www-authenticate").contains("invalid_token"));
    let dead = form_call(
        &s,
        "/oauth2/token",
        &rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r.str("refresh_token")),
        ],
    )
    .await;
    assert_oauth_error(&dead, 400, "invalid_grant");
    assert!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'oauth.code_replayed'")
            .await
            >= 1
    );
}

/// `at_hash` computed here for an RS256 ID token: the left half of SHA-256, base64url.
fn at_hash(token: &str) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

async fn code_exchange_refusals(b: Backend) {
    let s = server(b, "").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    let other = add_client(&s, "Other", Some(&redirect(&s)), &[]);
    let mut browser = Browser::new();

    // Missing and wrong verifiers; the code survives them for its rightful holder.
    let (code, verifier) = authorized_code(&mut browser, &s, &rp, &user, &[]).await;
    assert_oauth_error(&exchange(&s, &rp, &code, None).await, 400, "invalid_grant");
    assert_oauth_error(
        &exchange(&s, &rp, &code, Some(&pkce().verifier)).await,
        400,
        "invalid_grant",
    );
    // Another client, even with the verifier, cannot use it.
    assert_oauth_error(
        &exchange(&s, &other, &code, Some(&verifier)).await,
        400,
        "invalid_grant",
    );
    // The redirect URI must be the one of the request.
    let wrong_uri = form_call(
        &s,
        "/oauth2/token",
        &rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/other"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(&wrong_uri, 400, "invalid_grant");
    assert_eq!(exchange(&s, &rp, &code, Some(&verifier)).await.status, 200);

    // A code issued without a challenge refuses a verifier (PKCE downgrade).
    let back = walk(&mut browser, &s, &authorize_url(&s, &rp, &[]), &user).await;
    let code = code_of(&s, &back);
    assert_oauth_error(
        &exchange(&s, &rp, &code, Some(&pkce().verifier)).await,
        400,
        "invalid_grant",
    );
    assert_eq!(exchange(&s, &rp, &code, None).await.status, 200);

    // Garbage is a 400, never a 500.
    for code in ["", "x", &"z".repeat(5000), "\u{0}"] {
        let r = exchange(&s, &rp, code, None).await;
        assert!(r.status == 400, "{code:?}: {} {}", r.status, r.text);
    }
}

async fn expired_codes_are_refused(b: Backend) {
    let s = server(b, "[oidc]\ncode_ttl = 1\n").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    let mut browser = Browser::new();
    // Expired codes (code_ttl = 1 s) are refused.
    let (code, verifier) = authorized_code(&mut browser, &s, &rp, &user, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_oauth_error(
        &exchange(&s, &rp, &code, Some(&verifier)).await,
        400,
        "invalid_grant",
    );
}

async fn authorize_refusals(b: Backend) {
    let s = server(b, "").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    let mut browser = Browser::new();

    // Unknown client or unregistered redirect URI: a page, never a redirect.
    for extra in [
        vec![("client_id", "nobody")],
        vec![("redirect_uri", "http://127.0.0.1:1/evil")],
        vec![("redirect_uri", "")],
        vec![("client_id", "")],
    ] {
        let r = browser.get(&authorize_url(&s, &rp, &extra)).await;
        assert_eq!(r.status, 400, "{extra:?}: {}", r.text);
        assert!(r.header("location").is_empty());
        assert!(r.header("content-type").starts_with("text/html"));
    }
    let dup = format!("{}&state=again", authorize_url(&s, &rp, &[]));
    assert_eq!(browser.get(&dup).await.status, 400, "repeated parameters");

    // Other errors go back to the client with state and iss.
    let error_of = |loc: &str| {
        assert!(loc.starts_with(&rp.redirect_uri), "{loc}");
        let q = query_of(loc);
        assert_eq!(q.get("state").map(String::as_str), Some("st4te"));
        assert_eq!(q.get("iss"), Some(&s.base));
        q["error"].clone()
    };
    for (extra, expected) in [
        (vec![("scope", "openid admin")], "invalid_scope"),
        (vec![("scope", "openid docs:write")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![
                ("code_challenge", "abc"),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (vec![("prompt", "none")], "login_required"),
        (vec![("max_age", "soon")], "invalid_request"),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
    ] {
        let r = browser.get(&authorize_url(&s, &rp, &extra)).await;
        assert_eq!(r.status, 303, "{extra:?}: {}", r.text);
        assert_eq!(error_of(r.header("location")), expected, "{extra:?}");
    }

    // A public client must use PKCE.
    let spa = add_client(&s, "SPA", Some(&redirect(&s)), &["--public"]);
    assert!(spa.secret.is_none());
    let r = browser.get(&authorize_url(&s, &spa, &[])).await;
    assert_eq!(query_of(r.header("location"))["error"], "invalid_request");

    // prompt=none after sign-in but before consent: consent_required.
    walk(&mut browser, &s, &authorize_url(&s, &rp, &[]), &user).await;
    let other = add_client(&s, "Other", Some(&redirect(&s)), &[]);
    let r = browser
        .get(&authorize_url(&s, &other, &[("prompt", "none")]))
        .await;
    assert_eq!(query_of(r.header("location"))["error"], "consent_required");

    // Denying consent tells the client access_denied.
    let r = browser.get(&authorize_url(&s, &other, &[])).await;
    let page = browser.get(&s.url(r.header("location"))).await;
    let r = browser
        .post_form(
            &s.url("/ui/consent"),
            &[
                ("csrf_token", &hidden(&page.text, "csrf_token").unwrap()),
                ("flow", &hidden(&page.text, "flow").unwrap()),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(query_of(r.header("location"))["error"], "access_denied");

    // form_post: an HTML form aimed at the redirect URI, posting code, state and iss.
    let r = browser
        .get(&authorize_url(&s, &rp, &[("response_mode", "form_post")]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let html = common::browser::unescape(&r.text);
    assert!(
        html.contains(&format!("action=\"{}\"", rp.redirect_uri)),
        "{html}"
    );
    assert!(
        hidden(&r.text, "code").is_some() && hidden(&r.text, "state").as_deref() == Some("st4te")
    );
    assert!(
        r.header("content-security-policy")
            .contains("script-src 'sha256-")
    );

    // prompt=login shows the sign-in page to a signed-in browser.
    let r = browser
        .get(&authorize_url(&s, &rp, &[("prompt", "login")]))
        .await;
    assert!(
        r.header("location").starts_with("/ui/login"),
        "{}",
        r.header("location")
    );
    // A tampered flow token is refused.
    let flow = query_of(&s.url(r.header("location")))["flow"].clone();
    let mut tampered = flow.clone();
    tampered.insert(tampered.len() - 3, 'A');
    let r = browser
        .get(&s.url(&format!("/ui/login?flow={tampered}")))
        .await;
    assert_eq!(r.status, 400);
}

async fn client_authentication_and_grant_errors(b: Backend) {
    let s = server(b, "").await;
    let rp = web_client(&s);
    let svc = add_client(
        &s,
        "Reports",
        None,
        &["--scope", "reports:read", "--id", "reports"],
    );
    assert_eq!(svc.id, "reports");
    let cc = [("grant_type", "client_credentials")];

    // Wrong or missing secrets: 401 invalid_client with a Basic challenge.
    let wrong = Rp {
        secret: Some("x".repeat(43)),
        ..svc.clone()
    };
    let r = form_call(&s, "/oauth2/token", &wrong, &cc).await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").starts_with("Basic"));
    // Failures are audited for an existing client, once per 10 s however many come; an
    // unknown client id writes nothing (no flooding the append-only log).
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &wrong, &cc).await,
        401,
        "invalid_client",
    );
    let unknown = Rp {
        id: "nobody".into(),
        ..wrong.clone()
    };
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &unknown, &cc).await,
        401,
        "invalid_client",
    );
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'oauth.client_auth_failed'")
            .await,
        1
    );
    let no_secret = Rp {
        secret: None,
        ..svc.clone()
    };
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &no_secret, &cc).await,
        401,
        "invalid_client",
    );
    let form = [(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    assert_oauth_error(
        &raw_form(&s, "/oauth2/token", &form, &cc).await,
        401,
        "invalid_client",
    );
    // client_secret_post works; Basic and post at once do not.
    let secret = svc.secret.clone().unwrap();
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", "reports"),
        ("client_secret", secret.as_str()),
    ];
    assert_eq!(
        raw_form(&s, "/oauth2/token", &form, &post).await.status,
        200
    );
    let both = [form[0].clone(), ("authorization", svc.basic())];
    assert_oauth_error(
        &raw_form(&s, "/oauth2/token", &both, &post).await,
        400,
        "invalid_request",
    );
    // Not a form body; no grant type; an unknown grant; a grant the client may not use.
    let json = [
        ("content-type", "application/json".to_string()),
        ("authorization", svc.basic()),
    ];
    assert_oauth_error(
        &raw_form(&s, "/oauth2/token", &json, &cc).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &svc, &[]).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &svc, &[("grant_type", "password")]).await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &form_call(&s, "/oauth2/token", &rp, &cc).await,
        400,
        "unauthorized_client",
    );
    assert_oauth_error(
        &form_call(
            &s,
            "/oauth2/token",
            &svc,
            &[("grant_type", "authorization_code"), ("code", "x")],
        )
        .await,
        400,
        "unauthorized_client",
    );
    // Scope escalation by a service.
    assert_oauth_error(
        &form_call(
            &s,
            "/oauth2/token",
            &svc,
            &[("grant_type", "client_credentials"), ("scope", "admin")],
        )
        .await,
        400,
        "invalid_scope",
    );

    // A service's token: itself as subject, its scopes, no user, no refresh token.
    let t = form_call(&s, "/oauth2/token", &svc, &cc).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert!(t.json.get("refresh_token").is_none() && t.json.get("id_token").is_none());
    let claims = jwt_part(&t.str("access_token"), 1);
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some("reports"), Some("reports"))
    );
    assert_eq!(claims["gty"], "client_credentials");
    assert_eq!(claims["scope"], "reports:read");
    assert!(claims.get("email").is_none());
    // It is not a user: account endpoints and userinfo refuse it.
    let me = s.get_bearer("/auth/me", &t.str("access_token")).await;
    me.assert_problem(403, "first_party_only");
    assert_eq!(
        s.get_bearer("/oauth2/userinfo", &t.str("access_token"))
            .await
            .status,
        401
    );

    // The secret is stored hashed, never as given.
    let stored = s
        .sandbox
        .query_string("SELECT secret_hash FROM oauth_clients WHERE id = 'reports'")
        .await
        .unwrap();
    assert_ne!(stored, secret);
    assert_eq!(stored.len(), 64);
}

async fn refresh_is_bound_to_its_client_and_grant(b: Backend) {
    let s = server(b, "[session]\nrefresh_grace = \"1s\"\n").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    let other = add_client(&s, "Other", Some(&redirect(&s)), &["--scope", "docs:read"]);
    let mut browser = Browser::new();
    let t = authorized_tokens(
        &mut browser,
        &s,
        &rp,
        &user,
        &[("scope", "openid docs:read")],
    )
    .await;
    let rt = t.str("refresh_token");
    let refresh = |rp: Rp, token: String, scope: Option<&'static str>| {
        let s = &s;
        async move {
            let mut f = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ];
            if let Some(sc) = scope {
                f.push(("scope", sc));
            }
            form_call(s, "/oauth2/token", &rp, &f).await
        }
    };
    // Another client cannot refresh it, and trying does not spend it.
    assert_oauth_error(
        &refresh(other.clone(), rt.clone(), None).await,
        400,
        "invalid_grant",
    );
    // Tollgate's own refresh endpoint does not take it either (it would widen the scopes).
    let own = s
        .post(
            "/auth/refresh?mode=token",
            serde_json::json!({ "refresh_token": rt }),
        )
        .await;
    own.assert_problem(401, "invalid_refresh_token");
    // Widening is refused; narrowing works and the grant stays for the next refresh.
    assert_oauth_error(
        &refresh(rp.clone(), rt.clone(), Some("openid docs:read docs:write")).await,
        400,
        "invalid_scope",
    );
    let narrow = refresh(rp.clone(), rt.clone(), Some("docs:read")).await;
    assert_eq!(narrow.status, 200, "{}", narrow.text);
    assert_eq!(narrow.json["scope"], "docs:read");
    assert!(
        narrow.json.get("id_token").is_none(),
        "no openid, no ID token"
    );
    let wide = refresh(rp.clone(), narrow.str("refresh_token"), None).await;
    assert_eq!(wide.json["scope"], "openid docs:read");

    // The other client loses docs:read: its sessions end with it.
    let o = authorized_tokens(
        &mut browser,
        &s,
        &other,
        &user,
        &[("scope", "openid docs:read")],
    )
    .await;
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/admin/clients/{}", other.id),
            Some(serde_json::json!({ "scopes": [] })),
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_oauth_error(
        &refresh(other.clone(), o.str("refresh_token"), None).await,
        400,
        "invalid_grant",
    );
    // The spent token, after the grace window, revokes the whole session.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_oauth_error(
        &refresh(rp.clone(), rt.clone(), None).await,
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &refresh(rp.clone(), wide.str("refresh_token"), None).await,
        400,
        "invalid_grant",
    );
    assert_eq!(
        s.get_bearer("/oauth2/userinfo", &wide.str("access_token"))
            .await
            .status,
        401
    );
}

async fn introspection_and_revocation(b: Backend) {
    let s = server(b, "").await;
    let user = analyst(&s);
    let rp = web_client(&s);
    let other = add_client(&s, "Other", Some(&redirect(&s)), &[]);
    let spa = add_client(&s, "SPA", Some(&redirect(&s)), &["--public"]);
    let mut browser = Browser::new();
    let t = authorized_tokens(&mut browser, &s, &rp, &user, &[]).await;
    let (access, refresh) = (t.str("access_token"), t.str("refresh_token"));

    // Unauthenticated, or public, callers learn nothing.
    let form = [(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    assert_oauth_error(
        &raw_form(&s, "/oauth2/introspect", &form, &[("token", &access)]).await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        &form_call(&s, "/oauth2/introspect", &spa, &[("token", &access)]).await,
        401,
        "invalid_client",
    );

    // Any confidential client (a resource server) may ask about an access token.
    let r = form_call(&s, "/oauth2/introspect", &other, &[("token", &access)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["client_id"], rp.id.as_str());
    assert_eq!(r.json["scope"], "openid email");
    assert_eq!(r.json["username"], user.as_str());
    // A refresh token is described only to the client holding it.
    let r = form_call(
        &s,
        "/oauth2/introspect",
        &rp,
        &[("token", &refresh), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(
        (r.json["active"].clone(), r.json["token_type"].clone()),
        (Value::Bool(true), "refresh_token".into())
    );
    let r = form_call(&s, "/oauth2/introspect", &other, &[("token", &refresh)]).await;
    assert_eq!(r.json, serde_json::json!({ "active": false }));
    for junk in ["x", "a.b.c", &"y".repeat(3000)] {
        let r = form_call(&s, "/oauth2/introspect", &rp, &[("token", junk)]).await;
        assert_eq!(r.json, serde_json::json!({ "active": false }), "{junk}");
    }

    // Revocation: another client's revocation is ignored (200), the holder's ends the
    // session: the access token goes inactive at once.
    assert_eq!(
        form_call(&s, "/oauth2/revoke", &other, &[("token", &refresh)])
            .await
            .status,
        200
    );
    let r = form_call(&s, "/oauth2/introspect", &rp, &[("token", &access)]).await;
    assert_eq!(r.json["active"], true);
    assert_eq!(
        form_call(&s, "/oauth2/revoke", &rp, &[("token", &refresh)])
            .await
            .status,
        200
    );
    let r = form_call(&s, "/oauth2/introspect", &rp, &[("token", &access)]).await;
    assert_eq!(r.json["active"], false);
    let r = form_call(
        &s,
        "/oauth2/token",
        &rp,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert_eq!(
        form_call(&s, "/oauth2/revoke", &rp, &[("token", "unknown")])
            .await
            .status,
        200
    );

    // A service token is revoked on its own, on every check.
    let svc = add_client(&s, "Svc", None, &["--scope", "reports:read"]);
    let cc = form_call(
        &s,
        "/oauth2/token",
        &svc,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let token = cc.str("access_token");
    let before = form_call(&s, "/oauth2/introspect", &svc, &[("token", &token)]).await;
    assert_eq!(before.json["active"], true);
    assert_eq!(before.json["gty"], "client_credentials");
    assert_eq!(
        form_call(&s, "/oauth2/revoke", &svc, &[("token", &token)])
            .await
            .status,
        200
    );
    let after = form_call(&s, "/oauth2/introspect", &svc, &[("token", &token)]).await;
    assert_eq!(after.json["active"], false);
}

async fn logout_ends_the_sign_in_and_its_client_sessions(b: Backend) {
    let s = server(b, "").await;
    let user = analyst(&s);
    let after = format!("http://127.0.0.1:{}/bye", s.port + 1);
    let rp = add_client(
        &s,
        "Docs",
        Some(&redirect(&s)),
        &["--post-logout-redirect-uri", &after],
    );
    let mut browser = Browser::new();
    let offline = authorized_tokens(
        &mut browser,
        &s,
        &rp,
        &user,
        &[("scope", "openid offline_access")],
    )
    .await;
    let online = authorized_tokens(&mut browser, &s, &rp, &user, &[]).await;
    let hint = online.str("id_token");

    // An unregistered post-logout URI is refused with a page.
    let bad = format!(
        "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fevil"
    );
    let r = browser.get(&s.url(&bad)).await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_empty());

    // Without a hint naming this session the user is asked; a POST without the CSRF
    // token only asks again.
    // A hint that does not verify counts as none: the user is asked, not shown an error.
    let r = browser
        .get(&s.url("/oauth2/logout?id_token_hint=eyJhbGciOiJub25lIn0.e30."))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Sign out?"));
    let r = browser.get(&s.url("/oauth2/logout")).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("Sign out?"));
    // A cross-site POST carries no SameSite=Lax cookies: the session is not seen, so the
    // user is asked on this origin instead of being told "signed out" falsely.
    let r = s
        .http
        .post(s.url("/oauth2/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("id_token_hint={hint}"))
        .send()
        .await
        .unwrap();
    let r = common::Reply::from(r).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("Sign out?") && r.text.contains("id_token_hint"));
    let r = browser
        .post_form(&s.url("/oauth2/logout"), &[("confirm", "yes")])
        .await;
    assert_eq!(r.status, 200);
    assert!(
        browser.cookie(&s.base, "tg_at").is_some(),
        "still signed in"
    );

    // With the hint: signed out at once, sent back with state.
    let url = s.url(&format!(
        "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
        url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
    ));
    let r = browser.get(&url).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), format!("{after}?state=bye"));
    assert!(
        browser.cookie(&s.base, "tg_at").is_none(),
        "cookies cleared"
    );
    // The online client session ended with the sign-in; the offline one did not.
    let refresh = |t: String| {
        let (s, rp) = (&s, &rp);
        async move {
            form_call(
                s,
                "/oauth2/token",
                rp,
                &[("grant_type", "refresh_token"), ("refresh_token", &t)],
            )
            .await
        }
    };
    assert_oauth_error(
        &refresh(online.str("refresh_token")).await,
        400,
        "invalid_grant",
    );
    assert_eq!(refresh(offline.str("refresh_token")).await.status, 200);
    // The next authorization asks to sign in again.
    let r = browser.get(&authorize_url(&s, &rp, &[])).await;
    assert!(r.header("location").starts_with("/ui/login"));
}

/// Hardening item 12: an application's access token says no more about the user than its
/// scopes allow (the address with `email`, role names with `roles`).
async fn client_tokens_follow_the_granted_scopes(b: Backend) {
    let s = server(b, "").await;
    let rp = web_client(&s);
    let user = analyst(&s);
    let roles = serde_json::json!(["analyst", "user"]);
    // (scope, the address it shows, the roles it shows)
    for (scope, shown_email, shown_roles) in [
        ("openid docs:read", "", serde_json::json!([])),
        ("openid email roles docs:read", user.as_str(), roles.clone()),
    ] {
        let mut browser = Browser::new();
        let t = authorized_tokens(&mut browser, &s, &rp, &user, &[("scope", scope)]).await;
        let claims = jwt_part(t.json["access_token"].as_str().unwrap(), 1);
        assert_eq!(
            claims["email"].as_str().unwrap_or(""),
            shown_email,
            "{claims}"
        );
        assert_eq!(claims["roles"], shown_roles, "{claims}");
        assert_eq!(claims["scope"], scope);
        if shown_email.is_empty() {
            assert_eq!(claims["email_verified"], false, "{claims}");
        }
    }
    // Tollgate's own sign-in keeps every claim.
    let (own, _) = s.login_tokens(&user, PASSWORD).await;
    let claims = jwt_part(&own, 1);
    assert_eq!(claims["email"], user.as_str());
    assert_eq!(claims["roles"], roles);
}

on_both_backends!(
    code_flow_over_http_end_to_end,
    code_exchange_refusals,
    expired_codes_are_refused,
    refresh_is_bound_to_its_client_and_grant,
    introspection_and_revocation,
    logout_ends_the_sign_in_and_its_client_sessions,
);
on_sqlite!(
    client_token_claims => client_tokens_follow_the_granted_scopes,
    authorize_refusals => authorize_refusals,
    client_authentication_and_grant_errors => client_authentication_and_grant_errors,
);
