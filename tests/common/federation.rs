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

/// A stand-in for Sign in with Apple (`tests/interop/fake_apple.py`, PyJWT checking the
/// client secrets Tollgate mints), on `localhost`: another site than `127.0.0.1`, so its
/// form POST back is cross-site in a browser.
pub struct FakeApple {
    pub base: String,
    /// The team's `.p8` key, for the relying Tollgate's `private_key_env`.
    pub private_key: String,
    child: std::process::Child,
}

pub const APPLE_CLIENT_ID: &str = "com.example.tollgate.web";
pub const APPLE_TEAM_ID: &str = "TEAM123456";
pub const APPLE_KEY_ID: &str = "KEY1234567";

impl FakeApple {
    /// Answers sign-ins for `email` and sends them back to `rp_base`'s provider "apple".
    pub fn start(rp_base: &str, email: &str) -> FakeApple {
        use std::io::BufRead;
        let mut child = std::process::Command::new(super::python::python())
            .arg("fake_apple.py")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop"))
            .envs([
                ("CLIENT_ID", APPLE_CLIENT_ID),
                ("TEAM_ID", APPLE_TEAM_ID),
                ("KEY_ID", APPLE_KEY_ID),
                ("EMAIL", email),
                ("SUBJECT", "001234.apple-subject.0042"),
                (
                    "REDIRECT_URI",
                    &format!("{rp_base}/auth/federated/apple/callback"),
                ),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 for the fake Apple");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("fake_apple.py did not start: {e}: {line}"));
        FakeApple {
            base: ready["base"].as_str().unwrap().into(),
            private_key: ready["private_key"].as_str().unwrap().into(),
            child,
        }
    }

    /// What its token endpoint saw.
    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/stats", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A relying Tollgate on `port` with `kind = "apple"` pointed at this stand-in.
    pub async fn relying(&self, b: Backend, port: u16) -> TestServer {
        let config = format!(
            r#"
[roles.user]
scopes = ["profile"]

[[identity_provider]]
name = "apple"
kind = "apple"
issuer = "{issuer}"
client_id = "{APPLE_CLIENT_ID}"
team_id = "{APPLE_TEAM_ID}"
key_id = "{APPLE_KEY_ID}"
private_key_env = "APPLE_KEY"
"#,
            issuer = self.base
        );
        TestServer::start_with(
            b,
            Options {
                config,
                env: vec![
                    ("TOLLGATE_LISTEN", format!("127.0.0.1:{port}")),
                    ("APPLE_KEY", self.private_key.clone()),
                ],
            },
        )
        .await
    }
}

impl Drop for FakeApple {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
