//! Black-box test harness: runs the real `tollgate` binary on a free loopback port, against
//! a throw-away SQLite file or a fresh PostgreSQL database, and talks to it over HTTP.
#![allow(dead_code)]

pub mod browser;
pub mod federation;
pub mod llm;
pub mod nginx;
pub mod oidc;
pub mod passkey;
pub mod pg_cluster;
pub mod python;
pub mod redis_server;
pub mod reply;
pub mod sandbox;
pub mod server;
pub mod smtp;
pub mod upstream;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

pub use reply::*;
pub use sandbox::*;
pub use server::*;

pub const PASSWORD: &str = "correct horse battery staple";

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
/// The code an authenticator app shows for a base32 `secret`, `ahead` steps from now (one
/// step ahead is within the accepted drift).
pub fn totp_code(secret: &str, ahead: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new()
        .with_secret(secret.as_bytes().to_vec().into_boxed_slice())
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now + 30 * ahead).to_string()
}

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
