//! The packaging files, checked by the tools that read them: the Dockerfile by hadolint
//! (no Docker daemon or registry here to build it), compose.yaml read as YAML and then run
//! as far as this machine can without containers (its nginx configuration in front of
//! three nodes on PostgreSQL and Redis, with its Tollgate configuration), the systemd unit
//! by `systemd-analyze verify`, and `tollgate.example.toml` against the configuration
//! reference and the binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::nginx::Nginx;
use common::python::{python, run_json};
use common::{Backend, Options, TestServer, email, eventually};
use reqwest::Method;
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_dockerfile_passes_hadolint_and_runs_unprivileged() {
    let hadolint = python().with_file_name("hadolint");
    let out = Command::new(&hadolint)
        .arg(repo("Dockerfile"))
        .output()
        .expect("hadolint (tests/interop/requirements.txt)");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let file = read("Dockerfile");
    for needed in [
        "AS build",
        "USER 10001",
        "VOLUME [\"/var/lib/tollgate\"]",
        "HEALTHCHECK",
        "/readyz",
        "TOLLGATE_LISTEN=0.0.0.0:8080",
    ] {
        assert!(file.contains(needed), "Dockerfile lacks {needed}");
    }
    assert!(read(".dockerignore").lines().any(|l| l == "target"));
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = read("deploy/tollgate.service")
        .replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate"));
    let dir = std::env::temp_dir().join(format!("tollgate-unit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tollgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && !said.contains("tollgate.service"),
        "{said}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Every key the configuration reference lists is in the example, and the example as
/// shipped is a configuration the binary accepts.
#[test]
fn the_example_configuration_names_every_key_and_loads() {
    let reference = read("docs/configuration.md");
    let example = read("tollgate.example.toml");
    let mut missing = Vec::new();
    for row in reference.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row[1..].split('|').next().unwrap();
        for key in first_cell.split('`').skip(1).step_by(2) {
            if !example.contains(&format!("{key} =")) && !example.contains(&format!("[{key}")) {
                missing.push(key.to_string());
            }
        }
    }
    // (Rows of the built-in rate-limit table name rules, not keys.)
    missing.retain(|k| !k.contains('-'));
    assert!(
        missing.is_empty(),
        "not in tollgate.example.toml: {missing:?}"
    );
    let dir = std::env::temp_dir().join(format!("tollgate-example-{}", uuid::Uuid::new_v4()));
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("migrate")
        .arg("--config")
        .arg(repo("tollgate.example.toml"))
        .arg("--data-dir")
        .arg(&dir)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}

/// compose.yaml's shape (three nodes sharing keys, database, Redis and configuration,
/// migrated once first, behind nginx), then its nginx and Tollgate configuration run for
/// real: three nodes on PostgreSQL and Redis behind deploy/nginx.conf. Any node serves
/// any request, a sign-out through one is honoured by all, and each node's access log
/// shows it served its share with the client address nginx passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_runs_three_nodes_behind_nginx() {
    let file = repo("compose.yaml").display().to_string();
    let compose = run_json(&python(), "compose_check.py", &[("COMPOSE_FILE", &file)]);
    let services = &compose["services"];
    let nodes = ["tollgate1", "tollgate2", "tollgate3"];
    for n in nodes {
        let s = &services[n];
        assert_eq!(
            s["environment"], services["tollgate1"]["environment"],
            "{n}"
        );
        assert!(
            s["volumes"]
                .as_array()
                .unwrap()
                .contains(&json!("keys:/var/lib/tollgate/keys")),
            "{n} shares the key volume: {s}"
        );
        assert_eq!(
            s["depends_on"]["migrate"]["condition"], "service_completed_successfully",
            "{n}"
        );
        assert!(
            s["environment"]["TOLLGATE_DATABASE_URL"]
                .as_str()
                .unwrap()
                .starts_with("postgres://")
                && s["environment"]["TOLLGATE_REDIS_URL"].is_string(),
            "{s}"
        );
    }
    assert_eq!(services["migrate"]["command"], json!(["migrate"]));
    assert_eq!(services["nginx"]["ports"], json!(["8080:80"]));
    assert!(services["postgres"].is_object() && services["redis"].is_object());

    // The nodes, with deploy/compose.toml (nginx here is 127.0.0.1, not 10.77.0.10).
    let config = read("deploy/compose.toml").replace("10.77.0.10", "127.0.0.1");
    assert_ne!(
        config,
        read("deploy/compose.toml"),
        "trusted_proxies names nginx"
    );
    let redis = vec![("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379".to_string())];
    let first = TestServer::start_with(
        Backend::Postgres,
        Options {
            config,
            env: redis.clone(),
        },
    )
    .await;
    let second = first.sibling(redis.clone()).await;
    let third = first.sibling(redis).await;
    let ports = [first.port, second.port, third.port];
    let site = read("deploy/nginx.conf");
    let nginx = Nginx::start(|port| {
        let mut conf = site.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        for (i, p) in ports.iter().enumerate() {
            conf = conf.replace(
                &format!("server tollgate{}:8080", i + 1),
                &format!("server 127.0.0.1:{p}"),
            );
        }
        assert!(!conf.contains("tollgate1:"), "{conf}");
        conf
    })
    .await;
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let http = reqwest::Client::new();
    let send = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .header("x-forwarded-for", "203.0.113.66");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let user = email("compose");
    let creds = json!({"email": user, "password": common::PASSWORD});
    let (status, _) = send(Method::POST, "/auth/register", None, Some(creds.clone())).await;
    assert_eq!(status, 201);
    let (status, tokens) = send(Method::POST, "/auth/login?mode=token", None, Some(creds)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    for _ in 0..9 {
        let (status, me) = send(Method::GET, "/auth/me", Some(&access), None).await;
        assert_eq!(status, 200, "{me}");
    }
    // The session's address is the one nginx saw (its X-Forwarded-For replaces what the
    // client sent, and only nginx's is believed).
    let (status, sessions) = send(Method::GET, "/auth/sessions", Some(&access), None).await;
    assert_eq!(status, 200);
    assert_eq!(sessions[0]["ip"], "127.0.0.1", "{sessions}");
    // Signed out through one node: refused through all of them at once (Redis).
    let (status, _) = send(Method::POST, "/auth/logout", Some(&access), None).await;
    assert_eq!(status, 204);
    let everywhere_refused = eventually(Duration::from_secs(5), || async {
        let mut refused = 0;
        for _ in 0..6 {
            if send(Method::GET, "/auth/me", Some(&access), None).await.0 == 401 {
                refused += 1;
            }
        }
        refused == 6
    })
    .await;
    assert!(everywhere_refused);
    // Round robin: every node served requests, each in its access log.
    for node in [&first, &second, &third] {
        let log = node.server_log();
        let served = log
            .lines()
            .filter(|l| l.contains("tollgate::access") && l.contains("/auth/me"))
            .count();
        assert!(served >= 1, "node {} served nothing:\n{log}", node.port);
    }
}
