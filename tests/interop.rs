//! Interoperability: an independent, widely used OpenID Connect library (openid-client for
//! Node.js, OpenID-certified) runs a whole relying party against Tollgate over HTTP:
//! discovery, code + PKCE for a confidential and a public client, ID token validation,
//! userinfo, refresh, introspection, revocation, client credentials and RP-initiated
//! logout (`tests/interop/rp.mjs`). `scripts/test` installs the library (`npm ci`); this
//! test does too when it is missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::oidc::add_client;
use common::{Backend, Options, PASSWORD, TestServer, email};

fn ensure_library(dir: &Path) {
    if dir.join("node_modules/openid-client").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(dir)
        .status()
        .expect("npm (Node.js) is needed for the interoperability test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

async fn openid_client_library(b: Backend) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    ensure_library(&dir);
    let s = TestServer::start_with(
        b,
        Options {
            config: "[roles.user]\nscopes = [\"profile\"]\n".into(),
            env: vec![],
        },
    )
    .await;
    let user = email("interop");
    let out = s.cli(&["user", "add", &user, "--password-stdin"], Some(PASSWORD));
    assert!(out.status.success());
    let redirect = format!("http://127.0.0.1:{}/callback", s.port + 1);
    let after = format!("http://127.0.0.1:{}/signed-out", s.port + 1);
    let web = add_client(
        &s,
        "Interop web",
        Some(&redirect),
        &["--post-logout-redirect-uri", &after],
    );
    let spa = add_client(
        &s,
        "Interop SPA",
        Some(&redirect),
        &["--public", "--id-token-alg", "EdDSA"],
    );
    let svc = add_client(&s, "Interop service", None, &["--scope", "reports:read"]);
    let out = Command::new("node")
        .arg("rp.mjs")
        .current_dir(&dir)
        .env("ISSUER", &s.base)
        .env("CLIENT_ID", &web.id)
        .env("CLIENT_SECRET", web.secret.as_deref().unwrap())
        .env("PUBLIC_CLIENT_ID", &spa.id)
        .env("SERVICE_ID", &svc.id)
        .env("SERVICE_SECRET", svc.secret.as_deref().unwrap())
        .env("REDIRECT_URI", &redirect)
        .env("POST_LOGOUT_URI", &after)
        .env("EMAIL", &user)
        .env("PASSWORD", PASSWORD)
        .output()
        .expect("node (Node.js 20+) is needed for the interoperability test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openid-client relying party failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.server_log()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(stdout.contains("\"id_token_alg\":\"RS256\""), "{stdout}");
    assert!(
        stdout.contains("\"spa_id_token_alg\":\"EdDSA\""),
        "{stdout}"
    );
}

on_sqlite!(openid_client_library => openid_client_library);
