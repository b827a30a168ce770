//! Interoperability: an independent, widely used OpenID Connect library (openid-client for
//! Node.js, OpenID-certified) runs a whole relying party against Tollgate over HTTP:
//! discovery, code + PKCE for a confidential and a public client, ID token validation,
//! userinfo, refresh, introspection, revocation, client credentials and RP-initiated
//! logout (`tests/interop/rp.mjs`). And the gateway is put in front of a default Express
//! app (`tests/interop/express-app.mjs`), whose routing ignores case and trailing slashes,
//! to check that no spelling Express serves escapes the route that protects it.
//! `scripts/test` installs the packages (`npm ci`); these tests do too when missing.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::oidc::add_client;
use common::{Backend, Options, PASSWORD, TestServer, email};

fn ensure_library(dir: &Path) {
    if ["openid-client", "express"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).exists())
    {
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

/// Hardening item 2, against the real thing: Express serves `/API/ADMIN/users` and
/// `/reports/` as `/api/admin/users` and `/reports`; through Tollgate they keep the policy
/// of the routes that protect those paths.
async fn express_spellings_keep_their_policy(b: Backend) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    ensure_library(&dir);
    /// The app's process, stopped when the test ends, however it ends.
    struct App(std::process::Child);
    impl Drop for App {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut app = App(Command::new("node")
        .arg("express-app.mjs")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node (Node.js 20+) is needed for the interoperability test"));
    let mut line = String::new();
    BufReader::new(app.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = serde_json::from_str::<serde_json::Value>(&line).unwrap()["listening"]
        .as_u64()
        .unwrap();
    let express = format!("http://127.0.0.1:{port}");
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                r#"
[[route]]
path = "/*"
upstream = "{express}"
auth = "public"

[[route]]
path = "/api/admin/*"
upstream = "{express}"
scopes = ["admin"]

[[route]]
path = "/reports"
upstream = "{express}"

[[route]]
path = "/reports/*"
upstream = "{express}"
"#
            ),
            env: vec![],
        },
    )
    .await;
    let http = reqwest::Client::new();
    let spellings = [
        ("/api/admin/users", "admin-users"),
        ("/API/ADMIN/users", "admin-users"),
        ("/Api/Admin/Users/", "admin-users"),
        ("/api/admin/users/", "admin-users"),
        ("/reports", "reports"),
        ("/reports/", "reports"),
        ("/REPORTS", "reports"),
        ("/Reports/7", "report"),
    ];
    for (path, secret) in spellings {
        // Express itself serves the protected data under this spelling...
        let direct: serde_json::Value = http
            .get(format!("{express}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(direct["secret"], secret, "Express at {path}: {direct}");
        // ...and Tollgate does not let an anonymous caller reach it.
        let through = http.get(s.url(path)).send().await.unwrap();
        assert_eq!(through.status(), 401, "through Tollgate: {path}");
    }
    // The public rest of the app is unaffected.
    let r = http.get(s.url("/about")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

on_sqlite!(
    openid_client_library => openid_client_library,
    express_spellings => express_spellings_keep_their_policy,
);
