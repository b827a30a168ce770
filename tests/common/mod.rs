//! Black-box test harness: runs the real `tollgate` binary on a free loopback port, against
//! a throw-away SQLite file or a fresh PostgreSQL database, and talks to it over HTTP.
#![allow(dead_code)]

pub mod browser;
pub mod federation;
pub mod llm;
pub mod oidc;
pub mod smtp;
pub mod upstream;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::common::Backend::Postgres).await } )*
        }
    };
}

/// One `#[tokio::test]` on SQLite only for each `name => async fn(Backend)`: for tests whose
/// subject (proxying, path handling, headers) does not depend on the database backend.
#[macro_export]
macro_rules! on_sqlite {
    ($($name:ident => $f:ident),* $(,)?) => {
        mod sqlite_only {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$f($crate::common::Backend::Sqlite).await } )*
        }
    };
}

/// The PostgreSQL server the suite creates its databases in.
pub fn postgres_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private directory and database for one server (or CLI run), removed on drop.
pub struct Sandbox {
    pub dir: PathBuf,
    pub database_url: String,
    pg_database: Option<String>,
}

impl Sandbox {
    pub async fn new(backend: Backend) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/data/tollgate.db", dir.display()), None),
            Backend::Postgres => {
                let name = format!("tg_{}", uuid::Uuid::new_v4().simple());
                admin_sql(&format!("CREATE DATABASE {name}")).await;
                let base = postgres_admin_url();
                let server = base
                    .rsplit_once('/')
                    .map(|(s, _)| s)
                    .unwrap_or(&base)
                    .to_string();
                (format!("{server}/{name}"), Some(name))
            }
        };
        Sandbox {
            dir,
            database_url,
            pg_database,
        }
    }

    /// The database URL, with the SQLite file's folder created (the server does that itself).
    pub fn database_url_for_store(&self) -> String {
        std::fs::create_dir_all(self.dir.join("data")).unwrap();
        self.database_url.clone()
    }

    /// PostgreSQL only: makes SERIALIZABLE the database's default isolation, as a strict
    /// operator might; Tollgate must not depend on the server default.
    pub async fn make_serializable_the_default(&self) {
        let name = self.pg_database.as_ref().expect("PostgreSQL sandbox");
        admin_sql(&format!(
            "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
        ))
        .await;
    }

    /// A scalar from the server's database, read directly (for checking stored state).
    pub async fn query_string(&self, sql: &'static str) -> Option<String> {
        self.query_strings(sql).await.into_iter().next()
    }

    /// Every row's first column.
    pub async fn query_strings(&self, sql: &'static str) -> Vec<String> {
        with_test_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            rows.iter()
                .map(|r| sqlx::Row::try_get(r, 0).unwrap())
                .collect()
        })
    }

    pub async fn query_i64(&self, sql: &'static str) -> i64 {
        with_test_pool!(self, |pool| {
            let row = sqlx::query(sql).fetch_one(&pool).await.unwrap();
            sqlx::Row::try_get(&row, 0).unwrap()
        })
    }

    /// Runs a statement directly against the server's database (another process's write).
    pub async fn execute(&self, sql: &'static str) {
        with_test_pool!(self, |pool| {
            sqlx::query(sql).execute(&pool).await.unwrap();
        })
    }
}

/// Opens a short-lived pool on the sandbox's database and runs `$body` with it, once per
/// backend type.
macro_rules! with_test_pool {
    ($sandbox:expr, |$pool:ident| $body:expr) => {{
        if $sandbox.pg_database.is_some() {
            let $pool = sqlx::PgPool::connect(&$sandbox.database_url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::SqlitePool::connect(&$sandbox.database_url)
                .await
                .unwrap();
            let out = $body;
            $pool.close().await;
            out
        }
    }};
}
use with_test_pool;

async fn admin_sql(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL must be running for the test suite (see README)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_database.take() {
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(admin_sql(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            })
            .join();
        }
    }
}

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

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
    pub cookies: Cookies,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let cookies = Cookies::from_headers(&headers);
        Reply {
            status,
            headers,
            json,
            text,
            cookies,
        }
    }

    pub fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in {}", self.json))
            .to_string()
    }

    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A 4xx/5xx must be problem+json with status, title and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.header("content-type")
                .starts_with("application/problem+json"),
            "{:?}",
            self.headers
        );
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert!(self.json["title"].is_string(), "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
    }
}

/// `Set-Cookie` values by name: value and lower-cased attributes.
#[derive(Debug, Default, Clone)]
pub struct Cookies(pub HashMap<String, (String, Vec<String>)>);

impl Cookies {
    fn from_headers(h: &reqwest::header::HeaderMap) -> Cookies {
        let mut map = HashMap::new();
        for v in h.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            map.insert(
                name.to_string(),
                (
                    value.to_string(),
                    parts.map(|p| p.to_ascii_lowercase()).collect(),
                ),
            );
        }
        Cookies(map)
    }

    pub fn value(&self, name: &str) -> String {
        self.0
            .get(name)
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| panic!("no cookie {name}: {:?}", self.0))
    }

    pub fn has_attr(&self, name: &str, attr: &str) -> bool {
        self.0.get(name).is_some_and(|(_, a)| {
            a.iter()
                .any(|x| x == attr || x.starts_with(&format!("{attr}=")))
        })
    }

    pub fn attr(&self, name: &str, attr: &str) -> Option<String> {
        self.0
            .get(name)?
            .1
            .iter()
            .find_map(|x| x.strip_prefix(&format!("{attr}=")).map(str::to_string))
    }

    /// The `Cookie` request header a browser would send.
    pub fn header(&self) -> String {
        let mut pairs: Vec<_> = self
            .0
            .iter()
            .filter(|(_, (v, _))| !v.is_empty())
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect();
        pairs.sort();
        pairs.join("; ")
    }

    /// Merges newer `Set-Cookie`s over these, as a browser would.
    pub fn update(&mut self, newer: &Cookies) {
        for (k, v) in &newer.0 {
            self.0.insert(k.clone(), v.clone());
        }
    }
}

/// Runs `n` copies of `request` at the same instant: each task first opens its own
/// keep-alive connection with a `/readyz` call (which also grows the server's database
/// pool), then all wait on a barrier, so the requests really overlap in the database
/// instead of trickling in behind TCP and database handshakes.
pub async fn simultaneously<F, Fut>(
    s: &std::sync::Arc<TestServer>,
    n: usize,
    request: F,
) -> Vec<Reply>
where
    F: Fn(std::sync::Arc<TestServer>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (s, barrier, request) = (s.clone(), barrier.clone(), request.clone());
            tokio::spawn(async move {
                assert_eq!(s.call(Method::GET, "/readyz", None, &[]).await.status, 200);
                barrier.wait().await;
                request(s).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A unique email for this test.
pub fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Decodes a JWT segment (0 header, 1 claims).
pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine;
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every outbox message addressed to `to`, oldest first.
pub fn outbox(s: &TestServer, to: &str) -> Vec<String> {
    let dir = s.sandbox.dir.join("data").join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(to)))
        .collect()
}

pub async fn wait_for_mail(s: &TestServer, to: &str, count: usize) -> String {
    assert!(
        eventually(Duration::from_secs(10), || async {
            outbox(s, to).len() >= count
        })
        .await,
        "no mail #{count} to {to}"
    );
    outbox(s, to)[count - 1].clone()
}
