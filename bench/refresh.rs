//! Refresh rotations per second on SQLite and on PostgreSQL.
//!
//! Baseline: `GET /healthz` round trips per second with the same clients against the same
//! server (the cost of HTTP alone). Measured: `POST /auth/refresh?mode=token`, each client
//! walking its own refresh-token chain (every call is a real spend-and-issue transaction).
//! Run: `cargo bench --bench refresh`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Options, PASSWORD, TestServer};
use reqwest::Method;
use serde_json::json;

const SECONDS: u64 = 8;
const CLIENTS: usize = 8;

async fn rate(server: &Arc<TestServer>, refresh_tokens: Option<Vec<String>>) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (server, count) = (server.clone(), count.clone());
        let mut rt = refresh_tokens.as_ref().map(|v| v[i].clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match rt.as_mut() {
                    Some(token) => {
                        let r = server
                            .post(
                                "/auth/refresh?mode=token",
                                json!({ "refresh_token": token }),
                            )
                            .await;
                        assert_eq!(r.status, 200, "{}", r.text);
                        *token = r.str("refresh_token");
                    }
                    None => assert_eq!(
                        server.call(Method::GET, "/healthz", None, &[]).await.status,
                        200
                    ),
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    println!("refresh bench ({CLIENTS} clients, {SECONDS}s per phase)");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let opts = Options {
            config: "[limits]\nenabled = false\n".into(),
            env: vec![("TOLLGATE_LOG", "warn".into())],
        };
        let server = Arc::new(TestServer::start_with(backend, opts).await);
        let email = common::email("bench");
        server.register(&email).await;
        let mut tokens = Vec::new();
        for _ in 0..CLIENTS {
            tokens.push(server.login_tokens(&email, PASSWORD).await.1);
        }
        let baseline = rate(&server, None).await;
        let rotations = rate(&server, Some(tokens)).await;
        println!(
            "  {backend:?}: healthz {baseline:.0}/s, refresh rotations {rotations:.0}/s, ratio {:.3}",
            rotations / baseline
        );
    }
}
