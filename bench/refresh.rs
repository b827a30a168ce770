//! Refresh rotations per second on SQLite and on PostgreSQL.
//!
//! Baseline: `GET /healthz` round trips per second with the same clients against the same
//! server (the cost of HTTP alone). Measured: `POST /auth/refresh?mode=token`, each client
//! walking its own refresh-token chain (every call is a real spend-and-issue transaction),
//! with the latency distribution of the refreshes (p50, p99, max): concurrent writers
//! must queue fairly, not wait in a busy-retry back-off.
//! Run: `cargo bench --bench refresh`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Options, PASSWORD, TestServer};
use reqwest::Method;
use serde_json::json;

const SECONDS: u64 = 8;
const CLIENTS: usize = 8;

/// Calls per second, and every call's latency.
async fn rate(
    server: &Arc<TestServer>,
    refresh_tokens: Option<Vec<String>>,
) -> (f64, Vec<Duration>) {
    let count = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (server, count, latencies) = (server.clone(), count.clone(), latencies.clone());
        let mut rt = refresh_tokens.as_ref().map(|v| v[i].clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let sent = Instant::now();
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
                latencies.lock().unwrap().push(sent.elapsed());
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    (rate, latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
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
        let (baseline, _) = rate(&server, None).await;
        let (rotations, latencies) = rate(&server, Some(tokens)).await;
        println!(
            "  {backend:?}: healthz {baseline:.0}/s, refresh rotations {rotations:.0}/s, ratio {:.3}; refresh latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            rotations / baseline,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
    }
}
