//! The hosted pages in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/browser/*.mjs`), typing and clicking as a person does, with the browser's own
//! headers (no test client sets `Origin` or cookies by hand). Every page a flow reaches is
//! checked with axe-core and photographed (`target/ui-screenshots/`, the pictures in
//! docs/ui.md). `scripts/test` installs Chromium (Debian's `chromium`) and the Node.js
//! packages (`npm ci`, pinned by `tests/browser/package-lock.json`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::upstream::Upstream;
use common::{Backend, Options, TestServer};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn ensure_packages() {
    let dir = dir();
    if ["playwright-core", "axe-core"]
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

/// Runs one flow script with `env`; fails the test with its output when it fails.
fn flow(script: &str, env: &[(&str, String)]) {
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
}

fn outbox(s: &TestServer) -> String {
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
    tokio::task::spawn_blocking(move || flow("accounts.mjs", &env))
        .await
        .unwrap();
}

on_sqlite!(
    accounts => account_flows,
);
