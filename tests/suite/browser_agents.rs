//! An AI agent through Tollgate, with software we did not write: the official MCP
//! TypeScript SDK's client (`tests/browser/mcp.mjs`) connects to an MCP server built with
//! the same SDK (`tests/browser/mcp-server.mjs`) behind a `resource = true` route. It
//! discovers everything from the 401, registers itself, sends a person through sign-in
//! and consent in Chromium, and lists and calls tools with the token it obtained. The
//! token is then tried where it does not belong. And `/ui/device`, the page where a
//! person lets a device in.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::browser::{dir, ensure_packages, run, user};
use common::{Backend, Options, PASSWORD, TestServer, free_port};
use reqwest::Method;

/// The SDK-built MCP server, stopped when dropped.
struct McpServer {
    child: Child,
    port: u16,
}

impl McpServer {
    fn start() -> McpServer {
        ensure_packages();
        let port = free_port();
        let mut child = Command::new("node")
            .arg("mcp-server.mjs")
            .current_dir(dir())
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (Node.js 20+) is needed for the MCP test");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening"), "mcp-server.mjs said: {line}");
        McpServer { child, port }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mcp_client_through_the_gateway(b: Backend) {
    let mcp = tokio::task::spawn_blocking(McpServer::start).await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let s = TestServer::start_with(
        b,
        Options {
            config: format!(
                r#"
[roles.user]
scopes = ["profile", "mcp:tools", "docs:read"]

[oauth]
dynamic_registration = "open"

[[route]]
path = "/mcp"
upstream = "http://127.0.0.1:{mcp_port}"
resource = true
scopes = ["mcp:tools"]

[[route]]
path = "/docs/*"
upstream = "http://127.0.0.1:{mcp_port}"
resource = true
scopes = ["docs:read"]
"#,
                mcp_port = mcp.port
            ),
            env: vec![("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))],
        },
    )
    .await;
    let email = user(&s, "agent");
    let env = vec![
        ("BASE", base.clone()),
        ("MCP_URL", format!("{base}/mcp")),
        ("EMAIL", email),
        ("PASSWORD", PASSWORD.to_string()),
        ("CB_PORT", free_port().to_string()),
    ];
    let out = run("mcp.mjs", env).await;
    let last = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    let result: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(result["ok"], true, "{out}");
    let token = result["access_token"].as_str().unwrap();
    let claims = common::jwt_part(token, 1);
    assert_eq!(claims["aud"], format!("{base}/mcp"));
    assert_eq!(claims["client_id"], result["client_id"]);
    // The agent's token works at the MCP server only.
    let at = |path: &'static str| {
        let auth = format!("Bearer {token}");
        let s = &s;
        async move {
            s.call(Method::GET, path, None, &[("authorization", &auth)])
                .await
        }
    };
    at("/docs/x").await.assert_problem(401, "invalid_audience");
    assert_eq!(at("/auth/me").await.status, 401);
    // The server saw the user and the client, as Tollgate passed them.
    assert_eq!(result["whoami"]["client"], result["client_id"], "{out}");
    assert!(
        result["whoami"]["user"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{out}"
    );
}

/// `/ui/device` in Chromium: a device started by a CLI, allowed and denied by a person.
async fn device_sign_in(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[roles.user]\nscopes = [\"profile\", \"mcp:tools\"]\n[oauth]\ndevice_poll_interval = \"1s\"\n".into(),
            env: vec![],
        },
    )
    .await;
    let cli = common::oidc::add_client(
        &s,
        "Agent CLI",
        None,
        &[
            "--public",
            "--grant",
            "urn:ietf:params:oauth:grant-type:device_code",
            "--scope",
            "mcp:tools",
        ],
    );
    let env = vec![
        ("BASE", s.base.clone()),
        ("CLIENT_ID", cli.id),
        ("EMAIL", user(&s, "device")),
        ("PASSWORD", PASSWORD.to_string()),
    ];
    run("device.mjs", env).await;
}

crate::on_sqlite!(
    mcp_client => mcp_client_through_the_gateway,
    device => device_sign_in,
);
