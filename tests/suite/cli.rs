//! The command line and configuration: migrations, user/role administration, key
//! rotation, zero-configuration start-up, and configuration errors.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

on_both_backends!(
    migrations_twice_are_a_no_op,
    user_and_role_administration,
    key_rotation_keeps_old_tokens_valid
);

fn stdout_json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    err
}

async fn migrations_twice_are_a_no_op(b: Backend) {
    let s = TestServer::start(b).await;
    let before = s
        .sandbox
        .query_i64("SELECT COUNT(*) FROM _sqlx_migrations")
        .await;
    let email = email("migrate");
    s.register(&email).await;
    // Every key is made by migrate, for nodes that mount the key directory read-only.
    let seal = s.sandbox.dir.join("data").join("keys").join("seal.key");
    std::fs::remove_file(&seal).unwrap();
    for _ in 0..2 {
        let out = s.cli(&["migrate"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM _sqlx_migrations")
            .await,
        before
    );
    assert_eq!(
        s.sandbox.query_i64("SELECT COUNT(*) FROM users").await,
        1,
        "data untouched"
    );
    s.login_tokens(&email, PASSWORD).await;
    assert!(seal.is_file(), "migrate makes the sealing key");
}

async fn user_and_role_administration(b: Backend) {
    let config = "[roles.user]\nscopes = [\"profile\"]\n[roles.analyst]\nscopes = [\"docs:read\", \"ai:invoke\"]\n";
    let s = TestServer::start_with(
        b,
        Options {
            config: config.into(),
            ..Default::default()
        },
    )
    .await;
    let email = email("Admin-Made");
    let out = s.cli(
        &[
            "user",
            "add",
            &email,
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = &stdout_json_lines(&out)[0];
    assert_eq!(user["email"], email.to_lowercase());
    assert_eq!(user["roles"], json!(["analyst", "user"]));

    let (at, rt) = s.login_tokens(&email, PASSWORD).await;
    let me = s.get_bearer("/auth/me", &at).await;
    assert_eq!(
        me.json["scopes"],
        json!(["ai:invoke", "docs:read", "profile"])
    );

    let out = s.cli(&["role", "revoke", &email, "analyst"], None);
    assert!(out.status.success());
    assert_eq!(stdout_json_lines(&out)[0]["roles"], json!(["user"]));
    // A revoked role ends the sessions that carried it (as a disable does); tokens
    // minted from then on have the roles as they are.
    s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
        .await
        .assert_problem(401, "invalid_refresh_token");
    let (at, _) = s.login_tokens(&email, PASSWORD).await;
    assert_eq!(jwt_part(&at, 1)["scope"], "profile");
    let out = s.cli(&["role", "grant", &email, "analyst"], None);
    assert_eq!(
        stdout_json_lines(&out)[0]["roles"],
        json!(["analyst", "user"])
    );

    // A user without a password exists but cannot sign in.
    let other = common::email("nopass");
    assert!(s.cli(&["user", "add", &other], None).status.success());
    s.post(
        "/auth/login",
        json!({ "email": other, "password": PASSWORD }),
    )
    .await
    .assert_problem(401, "invalid_credentials");

    let out = s.cli(&["user", "list"], None);
    assert!(out.status.success());
    let users = stdout_json_lines(&out);
    assert_eq!(users.len(), 2);
    assert!(
        users.iter().all(|u| u.get("password_hash").is_none()),
        "hashes are never printed"
    );

    // Bad input: one line on stderr, non-zero exit, nothing written.
    one_line_error(&s.cli(&["user", "add", &email], None));
    one_line_error(&s.cli(&["user", "add", "not-an-email"], None));
    one_line_error(&s.cli(
        &["user", "add", &common::email("short"), "--password-stdin"],
        Some("short\n"),
    ));
    one_line_error(&s.cli(&["user", "disable", "ghost@example.com"], None));
    one_line_error(&s.cli(&["role", "grant", &email, "Bad Role"], None));
    assert_eq!(stdout_json_lines(&s.cli(&["user", "list"], None)).len(), 2);
}

async fn key_rotation_keeps_old_tokens_valid(b: Backend) {
    let s = TestServer::start(b).await;
    let email = email("keys");
    s.register(&email).await;
    let (old_at, _) = s.login_tokens(&email, PASSWORD).await;
    let old_kid = jwt_part(&old_at, 0)["kid"].as_str().unwrap().to_string();

    let out = s.cli(&["keys", "rotate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = stdout_json_lines(&out)[0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_kid, old_kid);

    let published = eventually(Duration::from_secs(8), || async {
        let jwks = s
            .call(reqwest::Method::GET, "/.well-known/jwks.json", None, &[])
            .await
            .json;
        let kids: Vec<String> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        kids.contains(&new_kid) && kids.contains(&old_kid)
    })
    .await;
    assert!(published, "both keys in the JWKS after rotation");
    // Published first, signing only once every node has had time to load it.
    let (early_at, _) = s.login_tokens(&email, PASSWORD).await;
    assert_eq!(
        jwt_part(&early_at, 0)["kid"],
        old_kid.as_str(),
        "not yet active"
    );
    let mut new_at = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        new_at = s.login_tokens(&email, PASSWORD).await.0;
        if jwt_part(&new_at, 0)["kid"] == new_kid.as_str() {
            break;
        }
    }
    assert_eq!(
        jwt_part(&new_at, 0)["kid"],
        new_kid.as_str(),
        "new tokens use the new key once active"
    );
    assert_eq!(
        s.get_bearer("/auth/me", &old_at).await.status,
        200,
        "old tokens still verify"
    );
    assert_eq!(s.get_bearer("/auth/me", &new_at).await.status, 200);
}

fn bare_command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

#[test]
fn bad_arguments_get_one_line_errors() {
    let dir = std::env::temp_dir();
    for args in [
        &["user", "add"][..],
        &["bogus"],
        &["user", "add", "a@b.c", "--colour"],
        &["keys"],
    ] {
        let out = bare_command(&dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.starts_with("tollgate: "), "{args:?}: {err}");
    }
    let help = bare_command(&dir).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("serve"));
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("tollgate-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = bare_command(&dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("serve").stdin(Stdio::null()).output().unwrap()
    };
    let err = one_line_error(&run(&[("TOLLGATE_ACCESS_TTL", "soon")]));
    assert!(
        err.contains("TOLLGATE_ACCESS_TTL") && err.contains("soon"),
        "{err}"
    );
    let err = one_line_error(&run(&[("TOLLGATE_LISTEN", "not-an-address")]));
    assert!(err.contains("TOLLGATE_LISTEN"), "{err}");
    let err = one_line_error(&run(&[("TOLLGATE_ACCESS_TOKEN_ALG", "HS256")]));
    assert!(
        err.contains("access_token_alg") && err.contains("EdDSA, ES256 or RS256"),
        "{err}"
    );
    let err = one_line_error(&run(&[("TOLLGATE_DATABASE_URL", "mysql://x")]));
    assert!(err.contains("TOLLGATE_DATABASE_URL"), "{err}");
    std::fs::write(dir.join("bad.toml"), "acess_ttl = \"1h\"\n").unwrap();
    let err = one_line_error(&run(&[("TOLLGATE_CONFIG", "bad.toml")]));
    assert!(err.contains("acess_ttl"), "{err}");
    std::fs::write(dir.join("bad2.toml"), "[session]\nidle_ttl = \"forever\"\n").unwrap();
    let err = one_line_error(&run(&[("TOLLGATE_CONFIG", "bad2.toml")]));
    assert!(err.contains("session.idle_ttl"), "{err}");
    std::fs::write(dir.join("bad3.toml"), "[password]\nmemory_kb = 5\n").unwrap();
    let err = one_line_error(&run(&[("TOLLGATE_CONFIG", "bad3.toml")]));
    assert!(err.contains("memory_kb"), "{err}");
    let err = one_line_error(&run(&[("TOLLGATE_CONFIG", "missing.toml")]));
    assert!(err.contains("missing.toml"), "{err}");
    assert!(
        !dir.join("tollgate-data").exists(),
        "nothing created for a bad configuration"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Only `serve` and `migrate` make an install: an administrative command run where there
/// is none (another directory, a mistyped data dir) fails naming where it looked, and
/// leaves nothing behind.
#[test]
fn admin_commands_never_create_an_install() {
    let dir = std::env::temp_dir().join(format!("tollgate-none-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for args in [
        &["user", "list"][..],
        &["user", "add", "a@example.com", "--password-stdin"],
        &["keys", "rotate"],
        &["audit", "verify"],
        &["client", "list"],
        &["user", "list", "--data-dir", "elsewhere"],
    ] {
        let out = bare_command(&dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = one_line_error(&out);
        assert!(
            err.contains("no Tollgate install here") && err.contains("data dir"),
            "{args:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "nothing created: {left:?}");
    std::fs::remove_dir_all(dir).ok();
}

/// `--data-dir` and `--config` work on every command, from any directory; secrets of
/// services an administrative command never calls (an AI provider's key) need not be in
/// its environment.
#[test]
fn admin_commands_find_the_install_by_flag_without_unused_secrets() {
    let dir = std::env::temp_dir().join(format!("tollgate-flags-{}", uuid::Uuid::new_v4()));
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let config = dir.join("tollgate.toml");
    std::fs::write(
        &config,
        "[ai.provider.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n",
    )
    .unwrap();
    let data = dir.join("data");
    let run = |args: &[&str]| {
        bare_command(&elsewhere)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", one_line_error(&out));
    let out = run(&["user", "list"]);
    assert!(out.status.success(), "{}", one_line_error(&out));
    assert!(data.join("tollgate.db").is_file() && data.join("keys").is_dir());
    assert!(!elsewhere.join("tollgate-data").exists());
    // `serve` does need the key it will use.
    let err = one_line_error(&run(&["serve"]));
    assert!(err.contains("OPENAI_API_KEY"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// `tollgate serve` with no configuration at all: data dir, SQLite file and signing key
/// appear and the service answers on 127.0.0.1:8080.
#[tokio::test]
async fn zero_configuration_serve() {
    let dir = std::env::temp_dir().join(format!("tollgate-zero-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = bare_command(&dir)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let up = eventually(Duration::from_secs(20), || async {
        http.get("http://127.0.0.1:8080/healthz")
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let disco = http
        .get("http://127.0.0.1:8080/.well-known/openid-configuration")
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        up,
        "serves on 127.0.0.1:8080 (is something else using that port?)"
    );
    let disco: Value = disco.unwrap().json().await.unwrap();
    assert_eq!(disco["issuer"], "http://127.0.0.1:8080");
    assert!(dir.join("tollgate-data/tollgate.db").is_file());
    // One key of each family: Ed25519, P-256 and RSA.
    let mut keys: Vec<String> = std::fs::read_dir(dir.join("tollgate-data/keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    // ...and the key that seals TOTP secrets.
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys[0].starts_with("ed25519-")
            && keys[1].starts_with("p256-")
            && keys[2].starts_with("rsa-")
            && keys[3] == "seal.key",
        "{keys:?}"
    );
    #[cfg(unix)]
    for key in &keys {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("tollgate-data/keys").join(key);
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
