//! The hosted pages in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/browser/*.mjs`), typing and clicking as a person does, with the browser's own
//! headers (no test client sets `Origin` or cookies by hand). Every page a flow reaches is
//! checked with axe-core and photographed (`target/ui-screenshots/`, the pictures in
//! docs/ui.md). `scripts/test` installs Chromium (Debian's `chromium`) and the Node.js
//! packages (`npm ci`, pinned by `tests/browser/package-lock.json`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::federation::{FakeApple, idp_at, relying, verified_user_on};
use common::oidc::add_client;
use common::upstream::Upstream;
use common::{Backend, Options, PASSWORD, TestServer, email, free_port};

pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

pub(crate) fn ensure_packages() {
    let dir = dir();
    if [
        "playwright-core",
        "axe-core",
        "@modelcontextprotocol/sdk",
        "zod",
    ]
    .iter()
    .all(|p| dir.join("node_modules").join(p).exists())
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .status()
        .expect("npm (Node.js) is needed for the browser tests");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs one flow script with `env`; fails the test with its output when it fails, else
/// returns what it printed.
fn flow(script: &str, env: &[(&str, String)]) -> String {
    ensure_packages();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(dir())
        .env("SCREENSHOTS", &shots);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node (Node.js 20+) is needed for the browser tests");
    // Generous: a loaded two-core machine starts Chromium slowly.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn outbox(s: &TestServer) -> String {
    s.sandbox
        .dir
        .join("data")
        .join("outbox")
        .display()
        .to_string()
}

async fn account_flows(b: Backend) {
    let up = Upstream::start().await;
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                r#"
[mail]
require_verification = true

[gateway]
login_url = "/ui/login"

[[route]]
path = "/app/*"
upstream = "{}"
"#,
                up.base
            ),
            env: vec![],
        },
    )
    .await;
    let base = s.base.clone();
    let env = vec![
        ("BASE", base),
        ("OUTBOX", outbox(&s)),
        ("APP_PAGE", "/app/page".to_string()),
    ];
    run("accounts.mjs", env).await;
}

/// Sign-in with a second factor in the hosted pages: the account is enrolled over the API
/// (as a script would), then a person signs in through `/ui/login` and `/ui/mfa`.
async fn second_factor_sign_in(b: Backend) {
    let up = Upstream::start().await;
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                "[gateway]\nlogin_url = \"/ui/login\"\n\n[[route]]\npath = \"/app/*\"\nupstream = \"{}\"\n",
                up.base
            ),
            env: vec![],
        },
    )
    .await;
    let email = user(&s, "mfa");
    let (access, _) = s.login_tokens(&email, PASSWORD).await;
    let auth = format!("Bearer {access}");
    let r = s
        .call(
            reqwest::Method::POST,
            "/auth/mfa/totp",
            Some(serde_json::json!({})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.str("secret");
    let raw = totp_rs::Secret::try_from_base32(&secret).unwrap();
    let spent = totp_rs::Builder::new()
        .with_secret(raw.as_bytes().to_vec().into_boxed_slice())
        .build()
        .unwrap()
        .generate(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .to_string();
    let r = s
        .call(
            reqwest::Method::POST,
            "/auth/mfa/totp/confirm",
            Some(serde_json::json!({ "code": spent })),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let env = vec![
        ("BASE", s.base.clone()),
        ("APP_PAGE", "/app/page".to_string()),
        ("EMAIL", email),
        ("PASSWORD", PASSWORD.to_string()),
        ("TOTP_SECRET", secret),
        ("SPENT_CODE", spent),
    ];
    run("mfa.mjs", env).await;
}

/// Second factors from `/ui/account`: TOTP set up by reading the key off the page, the
/// step-up page, a passkey added with Chromium's virtual authenticator and a sign-in with
/// it alone. The public URL names `localhost` (WebAuthn has no RP IDs for IP addresses).
async fn account_second_factors(b: Backend) {
    let up = Upstream::start().await;
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                "[gateway]\nlogin_url = \"/ui/login\"\n\n[[route]]\npath = \"/billing/*\"\nupstream = \"{}\"\nmfa = true\n",
                up.base
            ),
            env: vec![
                ("TOLLGATE_LISTEN", format!("127.0.0.1:{port}")),
                ("TOLLGATE_PUBLIC_URL", base.clone()),
            ],
        },
    )
    .await;
    let env = vec![
        ("BASE", base),
        ("EMAIL", user(&s, "factors")),
        ("PASSWORD", PASSWORD.to_string()),
    ];
    run("factors.mjs", env).await;
}

/// Runs `script` on a blocking thread (Chromium and Node.js take their time); returns
/// what it printed.
pub(crate) async fn run(script: &'static str, env: Vec<(&'static str, String)>) -> String {
    tokio::task::spawn_blocking(move || flow(script, &env))
        .await
        .unwrap()
}

/// A user added through the CLI, with `PASSWORD`: their address.
pub(crate) fn user(s: &TestServer, tag: &str) -> String {
    let email = email(tag);
    let out = s.cli(&["user", "add", &email, "--password-stdin"], Some(PASSWORD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    email
}

async fn oidc_code_flow(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[roles.user]\nscopes = [\"profile\", \"docs:read\"]\n".into(),
            env: vec![],
        },
    )
    .await;
    let rp_port = free_port();
    let rp = format!("http://127.0.0.1:{rp_port}");
    let client = |name: &str| {
        add_client(
            &s,
            name,
            Some(&format!("{rp}/cb")),
            &[
                "--scope",
                "docs:read",
                "--post-logout-redirect-uri",
                &format!("{rp}/bye"),
            ],
        )
    };
    let (docs, wiki) = (client("Docs"), client("Wiki"));
    let env = vec![
        ("BASE", s.base.clone()),
        ("RP_PORT", rp_port.to_string()),
        ("EMAIL", user(&s, "oidc")),
        ("PASSWORD", PASSWORD.to_string()),
        ("DOCS_ID", docs.id),
        ("DOCS_SECRET", docs.secret.unwrap()),
        ("WIKI_ID", wiki.id),
        ("WIKI_SECRET", wiki.secret.unwrap()),
    ];
    run("oidc.mjs", env).await;
}

async fn federation_sign_in_and_linking(b: Backend) {
    let port = free_port();
    let rp_base = format!("http://127.0.0.1:{port}");
    // Another host for the browser: each side keeps its own cookies.
    let idp = idp_at(b, &rp_base, "127.0.0.2").await;
    let rp = relying(b, port, &idp).await;
    let alice = verified_user_on(&idp.server, "alice", &["analyst"]).await;
    let dave = user(&rp, "dave");
    let out = idp
        .server
        .cli(&["user", "add", &dave, "--password-stdin"], Some(PASSWORD));
    assert!(out.status.success());
    idp.server
        .sandbox
        .execute("UPDATE users SET email_verified = TRUE")
        .await;
    let env = vec![
        ("RP_BASE", rp.base.clone()),
        ("IDP_BASE", idp.server.base.clone()),
        ("PASSWORD", PASSWORD.to_string()),
        ("ALICE", alice),
        ("DAVE", dave),
    ];
    run("federation.mjs", env).await;
}

async fn sign_in_with_apple(b: Backend) {
    let port = free_port();
    let email = common::email("apple");
    let apple = FakeApple::start(&format!("http://127.0.0.1:{port}"), &email);
    let rp = apple.relying(b, port).await;
    let env = vec![
        ("RP_BASE", rp.base.clone()),
        ("APPLE_BASE", apple.base.clone()),
        ("EMAIL", email),
    ];
    run("apple.mjs", env).await;
}

async fn cross_site_forms(b: Backend) {
    let s = TestServer::start(b).await;
    let env = vec![
        ("BASE", s.base.clone()),
        ("EMAIL", user(&s, "victim")),
        ("ATTACKER_EMAIL", user(&s, "attacker")),
        ("PASSWORD", PASSWORD.to_string()),
        ("EVIL_PORT", free_port().to_string()),
    ];
    run("csrf.mjs", env).await;
}

async fn every_page_branded(b: Backend) {
    let logo_port = free_port();
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                r##"
[ui]
product_name = "Acme AI"
logo_url = "http://127.0.0.2:{logo_port}/logo.svg"
accent_colour = "#6d28d9"
"##
            ),
            env: vec![],
        },
    )
    .await;
    let env = vec![
        ("BASE", s.base.clone()),
        ("OUTBOX", outbox(&s)),
        ("EMAIL", user(&s, "pages")),
        ("PASSWORD", PASSWORD.to_string()),
        ("LOGO_PORT", logo_port.to_string()),
    ];
    run("pages.mjs", env).await;
}

on_sqlite!(
    accounts => account_flows,
    pages => every_page_branded,
    csrf => cross_site_forms,
    federation => federation_sign_in_and_linking,
    apple => sign_in_with_apple,
    oidc => oidc_code_flow,
    mfa => second_factor_sign_in,
    factors => account_second_factors,
);
