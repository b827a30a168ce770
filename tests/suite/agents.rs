//! Agent-ready OAuth, black-box: protected resources (RFC 9728) pointing clients to their
//! metadata from every refusal, tokens bound to a resource (RFC 8707) and refused
//! anywhere else, dynamic client registration (RFC 7591) and its abuse, token exchange
//! with `act` (RFC 8693), and the device grant (RFC 8628). The MCP SDK end to end, in a
//! real browser, is in `browser::mcp_client_through_the_gateway`.

use crate::common;

use common::browser::Browser;
use common::oidc::{Rp, add_client, authorize_url, authorized_tokens, form_call, walk};
use common::upstream::{Upstream, echoed_header};
use common::{Backend, Options, Reply, TestServer, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

fn config(up: &str, extra: &str) -> String {
    format!(
        r#"
[roles.agent-user]
scopes = ["mcp:tools", "docs:read"]

[oauth]
dynamic_registration = "open"
{extra}

[[route]]
path = "/mcp"
upstream = "{up}"
resource = true
scopes = ["mcp:tools"]

[[route]]
path = "/docs/*"
upstream = "{up}"
resource = true
scopes = ["docs:read"]

[[route]]
path = "/apps/*"
upstream = "{up}"
clients = ["*"]
"#
    )
}

/// A server whose public URL is known before it starts (resource ids are made of it).
async fn start(b: Backend, up: &Upstream, extra: impl Fn(&str) -> String) -> TestServer {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    TestServer::start_with(
        b,
        Options {
            config: config(&up.base, &extra(&base)),
            env: vec![("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))],
        },
    )
    .await
}

async fn bearer(s: &TestServer, method: Method, path: &str, token: &str) -> Reply {
    s.call(
        method,
        path,
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// `POST /oauth2/register` with a JSON body (and an initial access token).
async fn register(s: &TestServer, body: &Value, token: Option<&str>) -> Reply {
    let mut req = s
        .http
        .post(s.url("/oauth2/register"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::from(req.send().await.unwrap()).await
}

fn agent_metadata() -> Value {
    json!({
        "client_name": "Test agent",
        "redirect_uris": ["http://127.0.0.1:9/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

async fn registered_agent(s: &TestServer) -> Rp {
    let r = register(s, &agent_metadata(), None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("client_secret").is_none(), "a public client");
    Rp {
        id: r.str("client_id"),
        secret: None,
        redirect_uri: "http://127.0.0.1:9/cb".into(),
    }
}

/// The assertion an upstream at `path` receives about the caller of `token`.
async fn assertion_seen(s: &TestServer, path: &str, token: &str) -> String {
    let seen = bearer(s, Method::GET, path, token).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    echoed_header(&seen.json, "x-tollgate-assertion")
        .unwrap()
        .to_string()
}

/// The fields of a token exchange whose subject is an assertion, for Tollgate itself.
fn assertion_subject(assertion: String, base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("subject_token", assertion),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:jwt".into(),
        ),
        ("audience", base.to_string()),
    ]
}

fn challenge_of(r: &Reply) -> String {
    r.header("www-authenticate").to_string()
}

async fn resources_describe_themselves_and_bind_their_tokens(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up, |_| String::new()).await;
    let mcp = format!("{}/mcp", s.base);
    let docs = format!("{}/docs", s.base);

    // The 401 says where the metadata is and which scope to ask for (RFC 9728 §5.1).
    let r = s.call(Method::POST, "/mcp", None, &[]).await;
    r.assert_problem(401, "unauthenticated");
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", s.base);
    assert!(
        challenge_of(&r).contains(&format!(r#"resource_metadata="{metadata_url}""#))
            && challenge_of(&r).contains(r#"scope="mcp:tools""#),
        "{}",
        challenge_of(&r)
    );
    let m = Reply::from(s.http.get(&metadata_url).send().await.unwrap()).await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.json["resource"], mcp);
    assert_eq!(m.json["authorization_servers"], json!([s.base]));
    assert_eq!(m.json["scopes_supported"], json!(["mcp:tools"]));
    let none = s
        .call(
            Method::GET,
            "/.well-known/oauth-protected-resource/apps",
            None,
            &[],
        )
        .await;
    assert_eq!(none.status, 404, "not a resource");
    // Forward auth points the same way (nginx passes the header on).
    let v = s
        .call(
            Method::GET,
            "/auth/verify",
            None,
            &[("x-original-uri", "/mcp"), ("x-original-method", "POST")],
        )
        .await;
    assert_eq!(v.status, 401);
    assert!(
        challenge_of(&v).contains(&metadata_url),
        "{}",
        challenge_of(&v)
    );

    // RFC 8414 metadata, with what an MCP client looks for.
    let a = s
        .call(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            &[],
        )
        .await;
    assert_eq!(a.json["issuer"], s.base);
    assert_eq!(
        a.json["registration_endpoint"],
        format!("{}/oauth2/register", s.base)
    );
    assert_eq!(a.json["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        a.json["device_authorization_endpoint"],
        format!("{}/oauth2/device_authorization", s.base)
    );
    assert!(
        a.json["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(EXCHANGE))
    );

    // A registered agent signs a user in for the resource: the token is bound to it.
    let agent = registered_agent(&s).await;
    let (email, own) = s.user_with_roles("agent-user", &["agent-user"]).await;
    let mut browser = Browser::new();
    let scope = [("scope", "mcp:tools"), ("resource", mcp.as_str())];
    let t = authorized_tokens(&mut browser, &s, &agent, &email, &scope).await;
    let access = t.str("access_token");
    let claims = common::jwt_part(&access, 1);
    assert_eq!(claims["aud"], mcp);
    assert_eq!(claims["client_id"], agent.id);
    let ok = bearer(&s, Method::POST, "/mcp", &access).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        echoed_header(&ok.json, "x-tollgate-client"),
        Some(agent.id.as_str())
    );
    assert_eq!(
        echoed_header(&ok.json, "x-tollgate-scopes"),
        Some("mcp:tools")
    );

    // An upstream asking /authz/check about the agent is told the same: its token is
    // for the MCP server, not for the documents.
    let assertion = echoed_header(&ok.json, "x-tollgate-assertion")
        .unwrap()
        .to_string();
    let check = |path: &'static str| {
        let (s, assertion) = (&s, assertion.clone());
        async move {
            s.call(
                Method::POST,
                "/authz/check",
                Some(json!({ "method": "GET", "path": path })),
                &[("x-tollgate-assertion", &assertion)],
            )
            .await
        }
    };
    let there = check("/mcp").await;
    assert_eq!(there.json["allowed"], true, "{}", there.text);
    let elsewhere = check("/docs/x").await;
    assert_eq!(elsewhere.json["allowed"], false, "{}", elsewhere.text);
    assert_eq!(elsewhere.json["reason"], "invalid_audience");

    // Anywhere else it is refused: another resource, a route for apps, Tollgate's API.
    let other = bearer(&s, Method::GET, "/docs/x", &access).await;
    other.assert_problem(401, "invalid_audience");
    assert!(
        challenge_of(&other).contains(r#"error="invalid_token""#)
            && challenge_of(&other).contains("oauth-protected-resource/docs"),
        "{}",
        challenge_of(&other)
    );
    bearer(&s, Method::GET, "/apps/x", &access)
        .await
        .assert_problem(401, "invalid_audience");
    assert_eq!(
        bearer(&s, Method::GET, "/auth/me", &access).await.status,
        401
    );
    let userinfo = bearer(&s, Method::GET, "/oauth2/userinfo", &access).await;
    assert_eq!(userinfo.status, 401, "{}", userinfo.text);

    // The user's own sign-in still works at the resource (first-party sessions).
    assert_eq!(bearer(&s, Method::POST, "/mcp", &own).await.status, 200);
    // A browser's form to the resource without the CSRF token is refused, and still
    // points to the metadata.
    let forged = browser.post_form(&s.url("/mcp"), &[("x", "1")]).await;
    forged.assert_problem(403, "csrf_failed");
    assert!(
        forged
            .header("www-authenticate")
            .contains("resource_metadata"),
        "{}",
        forged.text
    );

    // Consent given at one resource is not consent at another: a silent request for the
    // documents is refused, and the person is asked.
    let p = common::oidc::pkce();
    let silent = authorize_url(
        &s,
        &agent,
        &[
            ("scope", "docs:read"),
            ("resource", docs.as_str()),
            ("prompt", "none"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = walk(&mut browser, &s, &silent, &email).await;
    assert!(back.contains("error=consent_required"), "{back}");
    let mcp_only = authorize_url(
        &s,
        &agent,
        &[
            ("scope", "mcp:tools"),
            ("resource", docs.as_str()),
            ("prompt", "none"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = walk(&mut browser, &s, &mcp_only, &email).await;
    assert!(
        back.contains("error=consent_required"),
        "same scopes, another resource: {back}"
    );
    let unbound = authorize_url(
        &s,
        &agent,
        &[
            ("scope", "mcp:tools"),
            ("prompt", "none"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = walk(&mut browser, &s, &unbound, &email).await;
    assert!(
        back.contains("error=consent_required"),
        "a token for Tollgate itself: {back}"
    );

    // A refresh keeps the binding; naming another resource is refused.
    let refresh = t.str("refresh_token");
    let wrong = form_call(
        &s,
        "/oauth2/token",
        &agent,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("resource", &docs),
        ],
    )
    .await;
    common::oidc::assert_oauth_error(&wrong, 400, "invalid_target");
    let r = form_call(
        &s,
        "/oauth2/token",
        &agent,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(common::jwt_part(&r.str("access_token"), 1)["aud"], mcp);

    // The token request may not change the resource of the authorization.
    let (code, verifier) =
        common::oidc::authorized_code(&mut browser, &s, &agent, &email, &scope).await;
    let swapped = form_call(
        &s,
        "/oauth2/token",
        &agent,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &agent.redirect_uri),
            ("code_verifier", &verifier),
            ("resource", &docs),
        ],
    )
    .await;
    common::oidc::assert_oauth_error(&swapped, 400, "invalid_target");

    // An unknown resource is refused at the authorization endpoint, to the client.
    let p = common::oidc::pkce();
    let url = authorize_url(
        &s,
        &agent,
        &[
            ("scope", "mcp:tools"),
            ("resource", "https://elsewhere.example/mcp"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = walk(&mut browser, &s, &url, &email).await;
    assert!(back.contains("error=invalid_target"), "{back}");

    // A client's token for Tollgate itself is not a token for the resource.
    let unbound =
        authorized_tokens(&mut browser, &s, &agent, &email, &[("scope", "mcp:tools")]).await;
    bearer(&s, Method::POST, "/mcp", &unbound.str("access_token"))
        .await
        .assert_problem(401, "invalid_audience");
}

async fn registration_is_off_by_default_gated_and_guarded(b: Backend) {
    // Off by default: no endpoint, nothing advertised.
    let s = TestServer::start(b).await;
    assert_eq!(register(&s, &agent_metadata(), None).await.status, 404);
    let a = s
        .call(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            &[],
        )
        .await;
    assert!(a.json.get("registration_endpoint").is_none(), "{}", a.text);
    drop(s);

    // Gated by an initial access token.
    let token = "an-initial-access-token-of-forty-characters";
    let s = TestServer::start_with(
        b,
        Options {
            config: "[oauth]\ndynamic_registration = \"token\"\n".into(),
            env: vec![("TOLLGATE_OAUTH_REGISTRATION_TOKEN", token.into())],
        },
    )
    .await;
    let r = register(&s, &agent_metadata(), None).await;
    common::oidc::assert_oauth_error(&r, 401, "invalid_token");
    let r = register(&s, &agent_metadata(), Some("wrong-token")).await;
    assert_eq!(r.status, 401);
    let r = register(&s, &agent_metadata(), Some(token)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.str("client_id");

    // Registered clients are listed as such, and an operator can remove them.
    let listed = s.cli(&["client", "list"], None);
    let line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.contains(&id))
        .map(str::to_string)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["registered"],
        true
    );
    let (_, admin) = s.user_with_roles("admin", &["admin"]).await;
    let listed = bearer(&s, Method::GET, "/admin/clients", &admin).await;
    assert!(listed.text.contains(&id), "{}", listed.text);
    assert_eq!(
        bearer(&s, Method::DELETE, &format!("/admin/clients/{id}"), &admin)
            .await
            .status,
        204
    );
    drop(s);

    // Open, with the per-address limit on: abuse is refused, floods are slowed.
    let s = TestServer::start_with(
        b,
        Options {
            config: "[limits]\nenabled = true\n[oauth]\ndynamic_registration = \"open\"\nregistered_client_ttl = \"1s\"\n".into(),
            env: vec![],
        },
    )
    .await;
    let mut m = agent_metadata();
    m["client_name"] = json!("x".repeat(9000));
    let r = register(&s, &m, None).await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_client_metadata");
    for uri in ["javascript:alert(1)", "http://evil.example/cb"] {
        let mut m = agent_metadata();
        m["redirect_uris"] = json!([uri]);
        let r = register(&s, &m, None).await;
        common::oidc::assert_oauth_error(&r, 400, "invalid_redirect_uri");
    }
    let mut m = agent_metadata();
    m["grant_types"] = json!(["client_credentials"]);
    let r = register(&s, &m, None).await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_client_metadata");
    let r = Reply::from(
        s.http
            .post(s.url("/oauth2/register"))
            .header("content-type", "text/plain")
            .body(agent_metadata().to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_client_metadata");
    // Refused requests count too: the burst of 5 an hour was spent above.
    let r = register(&s, &agent_metadata(), None).await;
    assert_eq!(r.status, 429, "{}", r.text);
}

async fn unused_registered_clients_expire(b: Backend) {
    let config = "[oauth]\ndynamic_registration = \"open\"\nregistered_client_ttl = \"1s\"\n";
    let mut s = TestServer::start_with(
        b,
        Options {
            config: config.into(),
            env: vec![],
        },
    )
    .await;
    let r = register(&s, &agent_metadata(), None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.str("client_id");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // Expiry runs at start and every ten minutes.
    s.restart_with(None, vec![]).await;
    let gone = common::eventually(std::time::Duration::from_secs(10), || async {
        !String::from_utf8_lossy(&s.cli(&["client", "list"], None).stdout).contains(&id)
    })
    .await;
    assert!(gone, "the unused registered client is deleted");
}

async fn token_exchange_names_the_actor(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up, |base| {
        format!(
            "[[oauth.token_exchange]]\nclient = \"mcp-backend\"\naudiences = [\"{base}/docs\", \"{base}\"]\nscopes = [\"docs:read\"]\n"
        )
    })
    .await;
    let docs = format!("{}/docs", s.base);
    let backend = add_client(
        &s,
        "MCP backend",
        None,
        &[
            "--id",
            "mcp-backend",
            "--grant",
            EXCHANGE,
            "--grant",
            "client_credentials",
        ],
    );
    let stranger = add_client(
        &s,
        "Stranger",
        None,
        &["--id", "stranger", "--grant", EXCHANGE],
    );
    let (_, user_token) = s.user_with_roles("agent-user", &["agent-user"]).await;

    let exchange = |rp: &Rp, extra: Vec<(&'static str, String)>| {
        let s = &s;
        let rp = rp.clone();
        let subject = user_token.clone();
        async move {
            let mut fields: Vec<(&str, String)> = vec![
                ("grant_type", EXCHANGE.into()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS.into()),
            ];
            fields.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            fields.extend(extra);
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            form_call(s, "/oauth2/token", &rp, &fields).await
        }
    };
    let r = exchange(
        &backend,
        vec![("resource", docs.clone()), ("scope", "docs:read".into())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["issued_token_type"], ACCESS);
    assert!(r.json.get("refresh_token").is_none());
    let token = r.str("access_token");
    let claims = common::jwt_part(&token, 1);
    assert_eq!(claims["aud"], docs);
    assert_eq!(claims["scope"], "docs:read");
    assert_eq!(claims["act"]["sub"], "mcp-backend");
    assert_eq!(claims["client_id"], "mcp-backend");
    let subject = common::jwt_part(&user_token, 1);
    assert_eq!(claims["sub"], subject["sub"]);
    assert!(claims["exp"].as_i64() <= subject["exp"].as_i64());
    let ok = bearer(&s, Method::GET, "/docs/report", &token).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    bearer(&s, Method::POST, "/mcp", &token)
        .await
        .assert_problem(401, "invalid_audience");

    // Introspection shows the actor.
    let svc = add_client(&s, "Introspector", None, &[]);
    let i = form_call(&s, "/oauth2/introspect", &svc, &[("token", &token)]).await;
    assert_eq!(i.json["active"], true, "{}", i.text);
    assert_eq!(i.json["act"]["sub"], "mcp-backend");

    // Policy: no rule for this client, no audience outside its rule, no wider scope.
    let r = exchange(&stranger, vec![("resource", docs.clone())]).await;
    common::oidc::assert_oauth_error(&r, 400, "unauthorized_client");
    let r = exchange(&backend, vec![("resource", format!("{}/mcp", s.base))]).await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_target");
    let r = exchange(
        &backend,
        vec![("resource", docs.clone()), ("scope", "mcp:tools".into())],
    )
    .await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_scope");
    let r = exchange(
        &backend,
        vec![
            ("resource", docs.clone()),
            ("subject_token", "not-a-token".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // An actor token names the actor, nested over the earlier one.
    let r = exchange(
        &backend,
        vec![
            ("resource", docs.clone()),
            ("actor_token", token.clone()),
            ("actor_token_type", ACCESS.into()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let act = &common::jwt_part(&r.str("access_token"), 1)["act"];
    assert_eq!(act["sub"], subject["sub"], "{act}");

    // An upstream that saw only the gateway's assertion about the user exchanges that,
    // for a token for Tollgate itself (the AI door, routes for apps).
    let assertion = assertion_seen(&s, "/docs/page", &user_token).await;
    let r = exchange(&backend, assertion_subject(assertion.clone(), &s.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let for_tollgate = r.str("access_token");
    let c = common::jwt_part(&for_tollgate, 1);
    assert_eq!(
        (c["aud"].clone(), c["sub"].clone()),
        (json!(s.base), subject["sub"].clone())
    );
    assert!(c["exp"].as_i64().unwrap() <= common::jwt_part(&assertion, 1)["exp"].as_i64().unwrap());
    assert_eq!(
        bearer(&s, Method::GET, "/apps/x", &for_tollgate)
            .await
            .status,
        200
    );
    // The assertion about an exchanged token names its actor, so a further exchange
    // keeps the chain.
    let chained = assertion_seen(&s, "/docs/page", &token).await;
    let r = exchange(&backend, assertion_subject(chained, &s.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let act = &common::jwt_part(&r.str("access_token"), 1)["act"];
    assert_eq!(act["act"]["sub"], "mcp-backend", "{act}");

    // An API key's assertion is no subject: the key's revocation could not reach it.
    let key = {
        let r = s
            .call(
                Method::POST,
                "/auth/api-keys",
                Some(json!({ "name": "ci", "scopes": ["docs:read"] })),
                &[("authorization", &format!("Bearer {user_token}"))],
            )
            .await;
        assert!(r.status < 300, "{} {}", r.status, r.text);
        r.str("key")
    };
    let key_assertion = assertion_seen(&s, "/docs/page", &key).await;
    let r = exchange(&backend, assertion_subject(key_assertion, &s.base)).await;
    common::oidc::assert_oauth_error(&r, 400, "invalid_grant");

    // Signing the user out ends the exchanged token with the session it came from.
    let out = bearer(&s, Method::POST, "/auth/logout", &user_token).await;
    assert!(out.status < 300, "{}", out.text);
    bearer(&s, Method::GET, "/docs/report", &token)
        .await
        .assert_problem(401, "session_revoked");
}

/// The device grant, driven the way a CLI and a person would: start, poll, type the code
/// on the page, allow or deny.
async fn device_grant_end_to_end(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up, |_| "device_poll_interval = \"1s\"\n".into()).await;
    let cli = add_client(
        &s,
        "Agent CLI",
        None,
        &[
            "--public",
            "--grant",
            DEVICE,
            "--grant",
            "refresh_token",
            "--scope",
            "mcp:tools",
        ],
    );
    let (email, _) = s.user_with_roles("agent-user", &["agent-user"]).await;
    let mcp = format!("{}/mcp", s.base);
    let start_device = || {
        let (s, cli, mcp) = (&s, cli.clone(), mcp.clone());
        async move {
            let r = form_call(
                s,
                "/oauth2/device_authorization",
                &cli,
                &[("scope", "mcp:tools"), ("resource", &mcp)],
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r
        }
    };
    let poll = |device_code: String| {
        let (s, cli) = (&s, cli.clone());
        async move {
            form_call(
                s,
                "/oauth2/token",
                &cli,
                &[("grant_type", DEVICE), ("device_code", &device_code)],
            )
            .await
        }
    };

    let d = start_device().await;
    assert_eq!(d.json["verification_uri"], format!("{}/ui/device", s.base));
    assert_eq!(d.json["interval"], 1);
    let device_code = d.str("device_code");
    let user_code = d.str("user_code");
    common::oidc::assert_oauth_error(
        &poll(device_code.clone()).await,
        400,
        "authorization_pending",
    );
    // Polling again at once: slow down, and the interval grows.
    common::oidc::assert_oauth_error(&poll(device_code.clone()).await, 400, "slow_down");

    // The person follows the link, is sent to sign in first, and comes back to allow.
    let mut browser = Browser::new();
    let link = d.str("verification_uri_complete");
    let first = browser.get(&link).await;
    assert_eq!(first.status, 303);
    assert!(
        first.header("location").starts_with("/ui/login?rd="),
        "{}",
        first.header("location")
    );
    let login = browser.get(&s.url("/ui/login")).await;
    let csrf = common::browser::hidden(&login.text, "csrf_token").unwrap();
    let signed_in = browser
        .post_form(
            &s.url("/ui/login"),
            &[
                ("email", email.as_str()),
                ("password", common::PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    let confirm = browser.get(&link).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    assert!(confirm.text.contains("Agent CLI"), "{}", confirm.text);
    let csrf = common::browser::hidden(&confirm.text, "csrf_token").unwrap();
    let done = browser
        .post_form(
            &s.url("/ui/device"),
            &[
                ("csrf_token", &csrf),
                ("user_code", &user_code.to_lowercase()),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("Device connected"), "{}", done.text);
    tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
    let t = poll(device_code.clone()).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let access = t.str("access_token");
    assert_eq!(common::jwt_part(&access, 1)["aud"], mcp);
    assert!(t.json["refresh_token"].is_string());
    assert_eq!(bearer(&s, Method::POST, "/mcp", &access).await.status, 200);
    // Spent: a second redemption fails.
    tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
    common::oidc::assert_oauth_error(&poll(device_code).await, 400, "invalid_grant");

    // Denied: the device is told access_denied.
    let d = start_device().await;
    let confirm = browser.get(&d.str("verification_uri_complete")).await;
    let csrf = common::browser::hidden(&confirm.text, "csrf_token").unwrap();
    let done = browser
        .post_form(
            &s.url("/ui/device"),
            &[
                ("csrf_token", &csrf),
                ("user_code", &d.str("user_code")),
                ("decision", "deny"),
            ],
        )
        .await;
    assert!(done.text.contains("Device refused"), "{}", done.text);
    common::oidc::assert_oauth_error(&poll(d.str("device_code")).await, 400, "access_denied");

    // A wrong code reads as wrong; an answered code cannot be answered again.
    let wrong = browser
        .post_form(
            &s.url("/ui/device"),
            &[("csrf_token", &csrf), ("user_code", "BCDF-GHJK")],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.text.contains("not valid or has expired"),
        "{}",
        wrong.text
    );
    let again = browser
        .post_form(
            &s.url("/ui/device"),
            &[
                ("csrf_token", &csrf),
                ("user_code", &d.str("user_code")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.text);

    // Unknown device codes and other clients' codes are invalid_grant.
    common::oidc::assert_oauth_error(&poll("nope".into()).await, 400, "invalid_grant");
}

async fn device_codes_expire(b: Backend) {
    let up = Upstream::start().await;
    let s = start(b, &up, |_| "device_code_ttl = \"1s\"\n".into()).await;
    let cli = add_client(&s, "TV", None, &["--public", "--grant", DEVICE]);
    let d = form_call(&s, "/oauth2/device_authorization", &cli, &[]).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.json["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = form_call(
        &s,
        "/oauth2/token",
        &cli,
        &[
            ("grant_type", DEVICE),
            ("device_code", &d.str("device_code")),
        ],
    )
    .await;
    common::oidc::assert_oauth_error(&r, 400, "expired_token");
    // A client without the grant may not start one.
    let web = add_client(&s, "Web", Some("http://127.0.0.1:9/cb"), &[]);
    let r = form_call(&s, "/oauth2/device_authorization", &web, &[]).await;
    common::oidc::assert_oauth_error(&r, 400, "unauthorized_client");
}

crate::on_both_backends!(
    resources_describe_themselves_and_bind_their_tokens,
    token_exchange_names_the_actor,
    device_grant_end_to_end,
);

crate::on_sqlite!(
    registration_is_gated_and_guarded => registration_is_off_by_default_gated_and_guarded,
    unused_registered_clients_expire => unused_registered_clients_expire,
    device_codes_expire => device_codes_expire,
    client_id_metadata_documents => client_id_metadata_documents,
    behind_nginx => behind_nginx_the_challenge_reaches_the_agent,
);

/// Client ID metadata documents: a URL as `client_id`, fetched under guard.
async fn client_id_metadata_documents(b: Backend) {
    let own_base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let docs_base = own_base.clone();
    let refreshes = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let doc_refreshes = refreshes.clone();
    let host = Upstream::fixed(move |path| {
        let grants = if doc_refreshes.load(std::sync::atomic::Ordering::SeqCst) {
            json!(["authorization_code", "refresh_token"])
        } else {
            json!(["authorization_code"])
        };
        let base = docs_base.get().cloned().unwrap_or_default();
        let doc = |v: Value| v.to_string();
        let url = format!("{base}{path}");
        match path {
            "/good.json" => doc(json!({
                "client_id": url, "client_name": "Document agent",
                "redirect_uris": ["http://127.0.0.1:9/cb"],
                "grant_types": grants, "token_endpoint_auth_method": "none",
            })),
            "/big.json" => doc(json!({
                "client_id": url, "redirect_uris": ["http://127.0.0.1:9/cb"],
                "client_name": "x".repeat(6000),
            })),
            "/other.json" => doc(json!({
                "client_id": "https://elsewhere.example/c.json",
                "redirect_uris": ["http://127.0.0.1:9/cb"],
            })),
            "/js.json" => {
                doc(json!({ "client_id": url, "redirect_uris": ["javascript:alert(1)"] }))
            }
            "/secret.json" => doc(json!({
                "client_id": url, "redirect_uris": ["http://127.0.0.1:9/cb"], "client_secret": "s",
            })),
            _ => "not json".into(),
        }
    })
    .await;
    own_base.set(host.base.clone()).unwrap();
    let host_base = host.base.clone();
    let up = Upstream::start().await;
    let mut s = start(b, &up, |_| {
        "client_id_metadata = true\nmetadata_private_addresses = true\n".into()
    })
    .await;
    let a = s
        .call(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            &[],
        )
        .await;
    assert_eq!(a.json["client_id_metadata_document_supported"], true);

    // A good document: the whole flow, the client named by its URL.
    let url = format!("{}/good.json", host.base);
    let agent = Rp {
        id: url.clone(),
        secret: None,
        redirect_uri: "http://127.0.0.1:9/cb".into(),
    };
    let (email, _) = s.user_with_roles("agent-user", &["agent-user"]).await;
    let mut browser = Browser::new();
    let mcp = format!("{}/mcp", s.base);
    let t = authorized_tokens(
        &mut browser,
        &s,
        &agent,
        &email,
        &[("scope", "mcp:tools"), ("resource", &mcp)],
    )
    .await;
    let claims = common::jwt_part(&t.str("access_token"), 1);
    let id = claims["client_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("md-"), "{claims}");
    assert_eq!(
        bearer(&s, Method::POST, "/mcp", &t.str("access_token"))
            .await
            .status,
        200
    );
    let listed = String::from_utf8_lossy(&s.cli(&["client", "list"], None).stdout).into_owned();
    assert!(
        listed.contains(&url) && listed.contains("Document agent"),
        "{listed}"
    );
    assert!(!listed.contains("refresh_token"), "{listed}");

    // A changed document changes the client (its grants too), once read again.
    refreshes.store(true, std::sync::atomic::Ordering::SeqCst);
    s.restart_with(None, vec![]).await;
    let p = common::oidc::pkce();
    let again = authorize_url(
        &s,
        &agent,
        &[
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = Reply::from(s.http.get(again).send().await.unwrap()).await;
    assert!(r.status < 400, "{}", r.text);
    let listed = String::from_utf8_lossy(&s.cli(&["client", "list"], None).stdout).into_owned();
    assert!(listed.contains("refresh_token"), "{listed}");

    // Bad documents are refused on the page, saying why.
    let refused = |path: &'static str| {
        let (s, host) = (&s, host_base.clone());
        async move {
            let rp = Rp {
                id: format!("{host}{path}"),
                secret: None,
                redirect_uri: "http://127.0.0.1:9/cb".into(),
            };
            let p = common::oidc::pkce();
            let url = authorize_url(
                s,
                &rp,
                &[
                    ("code_challenge", &p.challenge),
                    ("code_challenge_method", "S256"),
                ],
            );
            Reply::from(s.http.get(url).send().await.unwrap()).await
        }
    };
    for (path, why) in [
        ("/big.json", "larger than"),
        ("/other.json", "its own URL"),
        ("/js.json", "redirect URI"),
        ("/secret.json", "secret"),
        ("/none.json", "not JSON"),
    ] {
        let r = refused(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.text.contains(why), "{path}: {}", r.text);
    }

    // Without private addresses allowed (the default), nothing inside is fetched.
    let strict = start(b, &up, |_| "client_id_metadata = true\n".into()).await;
    for (client_id, why) in [
        (format!("{host_base}/good.json"), "must be https"),
        (
            "https://127.0.0.1/client.json".to_string(),
            "private address",
        ),
        (
            "https://localhost:1/client.json".to_string(),
            "private address",
        ),
        (
            "https://169.254.169.254/latest/meta-data".to_string(),
            "private address",
        ),
    ] {
        let rp = Rp {
            id: client_id.clone(),
            secret: None,
            redirect_uri: "http://127.0.0.1:9/cb".into(),
        };
        let r = Reply::from(
            strict
                .http
                .get(authorize_url(&strict, &rp, &[]))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 400, "{client_id}: {}", r.text);
        assert!(r.text.contains(why), "{client_id}: {}", r.text);
    }

    // A known document client keeps working while its document cannot be read.
    s.restart_with(None, vec![]).await;
    drop(host);
    let p = common::oidc::pkce();
    let r = Reply::from(
        s.http
            .get(authorize_url(
                &s,
                &agent,
                &[
                    ("code_challenge", &p.challenge),
                    ("code_challenge_method", "S256"),
                ],
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r.status < 400, "{}", r.text);
}

/// nginx in front (forward auth), configured as docs/agents.md says: the agent meets the
/// challenge through nginx and finds the metadata there.
async fn behind_nginx_the_challenge_reaches_the_agent(b: Backend) {
    let up = Upstream::start().await;
    let tollgate_port = free_port();
    let nginx = common::nginx::Nginx::start(|port| {
        format!(
            r#"
  server {{
    listen 127.0.0.1:{port};
    location = /_tollgate {{
      internal;
      proxy_pass http://127.0.0.1:{tollgate_port}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location /mcp {{
      auth_request /_tollgate;
      auth_request_set $tollgate_challenge $upstream_http_www_authenticate;
      error_page 401 = @unauthorized;
      proxy_pass http://127.0.0.1:{up_port};
    }}
    location @unauthorized {{
      add_header WWW-Authenticate $tollgate_challenge always;
      return 401;
    }}
    location / {{
      proxy_pass http://127.0.0.1:{tollgate_port};
    }}
  }}
"#,
            up_port = up.port
        )
    })
    .await;
    let public = format!("http://127.0.0.1:{}", nginx.port);
    let s = TestServer::start_with(
        b,
        Options {
            config: "[[route]]\npath = \"/mcp\"\nresource = true\nscopes = [\"mcp:tools\"]\n"
                .into(),
            env: vec![
                ("TOLLGATE_LISTEN", format!("127.0.0.1:{tollgate_port}")),
                ("TOLLGATE_PUBLIC_URL", public.clone()),
            ],
        },
    )
    .await;
    let http = reqwest::Client::new();
    let r = http.post(format!("{public}/mcp")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let metadata_url = format!("{public}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{challenge}"
    );
    let m: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["resource"], format!("{public}/mcp"));
    // A service token bound to the resource passes nginx; an unbound one does not.
    let svc = add_client(
        &s,
        "Agent service",
        None,
        &["--scope", "mcp:tools", "--grant", "client_credentials"],
    );
    let token = |resource: Option<String>| {
        let (s, svc) = (&s, svc.clone());
        async move {
            let mut fields = vec![("grant_type", "client_credentials".to_string())];
            fields.extend(resource.map(|r| ("resource", r)));
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            form_call(s, "/oauth2/token", &svc, &fields)
                .await
                .str("access_token")
        }
    };
    let bound = token(Some(format!("{public}/mcp"))).await;
    let unbound = token(None).await;
    let call = |t: String| {
        let (http, public) = (http.clone(), public.clone());
        async move {
            http.post(format!("{public}/mcp"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(bound).await, 200);
    assert_eq!(call(unbound).await, 401);
}
