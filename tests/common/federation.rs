//! Federation fixtures: a second Tollgate process as the external identity provider, and
//! a relying Tollgate that trusts it, for the HTTP-level and the browser tests.

use super::{Backend, Options, PASSWORD, TestServer, email, free_port};

/// The identity provider: users with roles, and a client for the relying Tollgate.
pub struct Idp {
    pub server: TestServer,
    pub client_id: String,
    pub secret: String,
}

pub async fn idp(b: Backend, rp_port: u16) -> Idp {
    idp_at(b, &format!("http://127.0.0.1:{rp_port}"), "127.0.0.1").await
}

/// The provider listening on `host` (its own cookie jar in a browser when the relying side
/// is on another host), with a client whose redirect URIs are under `rp_base`.
pub async fn idp_at(b: Backend, rp_base: &str, host: &str) -> Idp {
    let server = TestServer::start_with(
        b,
        Options {
            config:
                "[roles.user]\nscopes = [\"profile\"]\n[roles.analyst]\nscopes = [\"docs:read\"]\n"
                    .into(),
            env: vec![("TOLLGATE_LISTEN", format!("{host}:{}", free_port()))],
        },
    )
    .await;
    let base = format!("{rp_base}/auth/federated");
    let out = server.cli(
        &[
            "client",
            "add",
            "Relying Tollgate",
            "--redirect-uri",
            &format!("{base}/corp/callback"),
            "--redirect-uri",
            &format!("{base}/plain/callback"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Idp {
        client_id: v["client_id"].as_str().unwrap().into(),
        secret: v["client_secret"].as_str().unwrap().into(),
        server,
    }
}

/// The relying Tollgate, on `port`, trusting `idp` as "corp" (OIDC) and "plain" (OAuth 2).
pub async fn relying(b: Backend, port: u16, idp: &Idp) -> TestServer {
    let i = &idp.server.base;
    let config = format!(
        r#"
[roles.user]
scopes = ["profile"]
[roles.reader]
scopes = ["docs:read"]

[[identity_provider]]
name = "corp"
display_name = "Corp SSO"
issuer = "{i}"
client_id = "{id}"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "roles"]
role_claim = "roles"
[identity_provider.roles]
"analyst" = "reader"

[[identity_provider]]
name = "plain"
kind = "oauth2"
authorization_url = "{i}/oauth2/authorize"
token_url = "{i}/oauth2/token"
userinfo_url = "{i}/oauth2/userinfo"
subject_claim = "sub"
client_id = "{id}"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email"]
"#,
        id = idp.client_id
    );
    TestServer::start_with(
        b,
        Options {
            config,
            env: vec![
                ("TOLLGATE_LISTEN", format!("127.0.0.1:{port}")),
                ("CORP_SECRET", idp.secret.clone()),
            ],
        },
    )
    .await
}

/// A user at the provider, whose address the provider has verified (`verified`).
pub async fn verified_user_on(s: &TestServer, tag: &str, roles: &[&str]) -> String {
    let email = user_on(s, tag, roles);
    s.sandbox
        .execute("UPDATE users SET email_verified = TRUE")
        .await;
    email
}

pub fn user_on(s: &TestServer, tag: &str, roles: &[&str]) -> String {
    let email = email(tag);
    let mut args = vec!["user", "add", email.as_str(), "--password-stdin"];
    for r in roles {
        args.extend(["--role", r]);
    }
    let out = s.cli(&args, Some(PASSWORD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    email
}
