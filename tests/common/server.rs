//! A running `tollgate serve` on a free loopback port, and the CLI run against its
//! sandbox.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

/// Rate limits and lockouts are off unless a test's configuration has a `[limits]`
/// section: most suites sign in many times from one address; the suites about limits
/// configure them.
pub fn with_limits_off_unless_set(config: &str) -> String {
    if config.contains("[limits") {
        config.to_string()
    } else {
        format!("[limits]\nenabled = false\n\n{config}")
    }
}

/// A running `tollgate serve`.
pub struct TestServer {
    pub base: String,
    pub port: u16,
    pub sandbox: Sandbox,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

pub struct Options {
    pub config: String,
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: "[roles.user]\nscopes = [\"profile\"]\n".into(),
            env: vec![],
        }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> TestServer {
        let sandbox = Sandbox::new(backend).await;
        TestServer::start_in(sandbox, opts).await
    }

    pub async fn start_in(sandbox: Sandbox, opts: Options) -> TestServer {
        // A port chosen in advance (to register URLs on it elsewhere first) comes as
        // TOLLGATE_LISTEN, possibly on another loopback address (127.0.0.2: another host to
        // a browser, with its own cookies).
        let listen = opts
            .env
            .iter()
            .find(|(k, _)| *k == "TOLLGATE_LISTEN")
            .map(|(_, v)| v.clone());
        let (host, port) = listen
            .as_deref()
            .and_then(|v| {
                let (host, port) = v.rsplit_once(':')?;
                Some((host.to_string(), port.parse().ok()?))
            })
            .unwrap_or_else(|| ("127.0.0.1".to_string(), free_port()));
        let config_path = sandbox.dir.join("tollgate.toml");
        std::fs::write(&config_path, with_limits_off_unless_set(&opts.config)).unwrap();
        let mut env = vec![
            (
                "TOLLGATE_CONFIG".to_string(),
                config_path.display().to_string(),
            ),
            ("TOLLGATE_LISTEN".to_string(), format!("{host}:{port}")),
            (
                "TOLLGATE_DATA_DIR".to_string(),
                sandbox.dir.join("data").display().to_string(),
            ),
            (
                "TOLLGATE_DATABASE_URL".to_string(),
                sandbox.database_url.clone(),
            ),
            ("TOLLGATE_LOG".to_string(), "info".to_string()),
        ];
        for (k, v) in opts.env {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v));
        }
        let mut server = TestServer {
            base: format!("http://{host}:{port}"),
            port,
            sandbox,
            env,
            child: None,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        server.spawn().await;
        server
    }

    /// The server process id (to read its memory use).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.sandbox.dir.join("server.log")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tollgate");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "tollgate exited with {status}: {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tollgate did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server and starts it again with the same data, replacing env entries.
    pub async fn restart_with(&mut self, config: Option<&str>, env: Vec<(&'static str, String)>) {
        self.stop();
        if let Some(c) = config {
            std::fs::write(
                self.sandbox.dir.join("tollgate.toml"),
                with_limits_off_unless_set(c),
            )
            .unwrap();
        }
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            self.env.push((k.to_string(), v));
        }
        self.spawn().await;
    }

    /// Another node: a second process on its own port sharing this one's database, key
    /// directory and configuration file, with `env` on top.
    pub async fn sibling(&self, env: Vec<(&'static str, String)>) -> TestServer {
        let dir = std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut vars = self.env.clone();
        vars.retain(|(k, _)| k != "TOLLGATE_LISTEN");
        vars.push(("TOLLGATE_LISTEN".into(), format!("127.0.0.1:{port}")));
        // Nodes behind one load balancer share one public URL (the tokens' issuer).
        if !vars.iter().any(|(k, _)| k == "TOLLGATE_PUBLIC_URL") {
            vars.push(("TOLLGATE_PUBLIC_URL".into(), self.base.clone()));
        }
        for (k, v) in env {
            vars.retain(|(key, _)| key != k);
            vars.push((k.to_string(), v));
        }
        let mut server = TestServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            sandbox: Sandbox {
                dir,
                database_url: self.sandbox.database_url.clone(),
                // The first node's sandbox owns (and drops) the database.
                pg_database: None,
            },
            env: vars,
            child: None,
            http: self.http.clone(),
        };
        server.spawn().await;
        server
    }

    /// Stops the server gracefully (SIGTERM), as an orchestrator would.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The binary with this server's environment (for CLI subcommands). The binary is the
    /// one cargo built, or `TOLLGATE_TEST_BIN` (to show that a new test fails against the
    /// binary from before a fix).
    pub fn command(&self) -> Command {
        let bin = std::env::var("TOLLGATE_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tollgate").to_string());
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.current_dir(&self.sandbox.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI subcommand, feeding `stdin` if given.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Reply {
        self.call(
            Method::GET,
            path,
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
    }

    pub async fn delete_bearer(&self, path: &str, token: &str) -> Reply {
        self.call(
            Method::DELETE,
            path,
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
    }

    pub async fn register(&self, email: &str) -> Value {
        let r = self
            .post(
                "/auth/register",
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "register: {:?}", r.json);
        r.json
    }

    /// Token-mode login: `(access_token, refresh_token)`.
    pub async fn login_tokens(&self, email: &str, password: &str) -> (String, String) {
        let r = self
            .post(
                "/auth/login?mode=token",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(r.status, 200, "login: {:?}", r.json);
        (r.str("access_token"), r.str("refresh_token"))
    }

    /// Creates an account with extra roles through the CLI and signs it in (token mode):
    /// `(email, access_token)`.
    pub async fn user_with_roles(&self, tag: &str, roles: &[&str]) -> (String, String) {
        let email = email(tag);
        let mut args = vec!["user", "add", email.as_str(), "--password-stdin"];
        for r in roles {
            args.extend(["--role", r]);
        }
        let out = self.cli(&args, Some(PASSWORD));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (access, _) = self.login_tokens(&email, PASSWORD).await;
        (email, access)
    }

    /// Cookie-mode login: the cookies it set.
    pub async fn login_cookies(&self, email: &str) -> Cookies {
        let r = self
            .post(
                "/auth/login",
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 200, "login: {:?}", r.json);
        r.cookies
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
