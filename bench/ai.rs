//! What the AI proxy adds to a call: latency at a fixed request rate, and maximum
//! throughput, each measured against calling the mock provider directly in the same run.
//!
//! The mock OpenAI-compatible provider (`tests/common/llm.rs`) answers a non-streamed
//! chat completion at once, reporting usage. Through Tollgate each call is authenticated
//! (bearer access token), checked (scope, model allow-list, output cap), reserved against
//! a quota with every limit set (requests and tokens per minute, tokens per day, USD per
//! month), forwarded with the provider key, read for usage, settled, and written to the
//! ledger: the whole metered path, on SQLite (the default; counters in the process),
//! PostgreSQL alone (counters shared in the database) and PostgreSQL with Redis (counters
//! in Redis): the last two, in the same run, say what Redis saves a cluster.
//!
//! 1. Fixed rate: [`RATE`] calls per second for [`SECONDS`] seconds, open loop (each call
//!    starts on schedule whatever the others do), direct then through Tollgate; p50 and
//!    p99 of each, and the difference (the added latency).
//! 2. Throughput: [`CLIENTS`] closed-loop clients for [`SECONDS`] seconds, direct then
//!    through Tollgate; the ratio of the two rates.
//!
//! Client, mock and server share the machine's cores. Run: `cargo bench --bench ai`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::llm::{MockLlm, provider_section};
use common::{Backend, Options, TestServer};
use serde_json::json;

const RATE: u64 = 500;
const SECONDS: u64 = 8;
const CLIENTS: usize = 16;
const KEY: &str = "sk-bench-0123456789abcdef";

fn config(upstream: &str) -> String {
    format!(
        r#"
[limits]
enabled = false

[roles.user]
scopes = ["ai:invoke"]
{}
[ai.price."gpt-bench"]
input = 0.15
output = 0.60

[ai.quota.user]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
tokens_per_day = 100000000000
usd_per_month = 1000000.0
max_output_tokens = 256
models = ["gpt-*"]
"#,
        provider_section("openai", "openai", upstream, "MOCK_KEY", "")
    )
}

/// Where a call goes: the mock itself, or Tollgate's proxy path with a token.
#[derive(Clone)]
struct Target {
    url: String,
    auth: String,
}

fn body() -> serde_json::Value {
    json!({
        "model": "gpt-bench",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Summarise the benchmark in one line."}]
    })
}

async fn one(http: &reqwest::Client, t: &Target) -> Duration {
    let start = Instant::now();
    let res = http
        .post(&t.url)
        .header("authorization", &t.auth)
        .json(&body())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    res.bytes().await.expect("body");
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// p50 and p99 of calls started at a fixed rate.
async fn fixed_rate(http: &reqwest::Client, t: &Target) -> (Duration, Duration) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity((RATE * SECONDS) as usize);
    for _ in 0..RATE * SECONDS {
        tick.tick().await;
        let (http, t) = (http.clone(), t.clone());
        tasks.push(tokio::spawn(async move { one(&http, &t).await }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort();
    (percentile(&latencies, 0.50), percentile(&latencies, 0.99))
}

/// Calls per second from closed-loop clients.
async fn throughput(http: &reqwest::Client, t: &Target) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, t, count) = (http.clone(), t.clone(), count.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    one(&http, &t).await;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    println!(
        "ai proxy bench: {RATE} calls/s for {SECONDS}s (open loop), then {CLIENTS} closed-loop clients for {SECONDS}s"
    );
    let redis = std::env::var("TOLLGATE_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    for (backend, with_redis) in [
        (Backend::Sqlite, false),
        (Backend::Postgres, false),
        (Backend::Postgres, true),
    ] {
        let mock = MockLlm::start(KEY).await;
        let mut env = vec![("MOCK_KEY", KEY.to_string())];
        if with_redis {
            env.push(("TOLLGATE_REDIS_URL", redis.clone()));
        }
        let s = TestServer::start_with(
            backend,
            Options {
                config: config(&mock.base),
                env,
            },
        )
        .await;
        let (_, token) = s.user_with_roles("bench", &[]).await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        let direct = Target {
            url: format!("{}/v1/chat/completions", mock.base),
            auth: format!("Bearer {KEY}"),
        };
        let proxied = Target {
            url: s.url("/ai/openai/v1/chat/completions"),
            auth: format!("Bearer {token}"),
        };
        // Warm both paths (connections, the server's pools and caches).
        for _ in 0..200 {
            one(&http, &direct).await;
            one(&http, &proxied).await;
        }
        let (d50, d99) = fixed_rate(&http, &direct).await;
        let (p50, p99) = fixed_rate(&http, &proxied).await;
        println!("{backend:?}{}:", if with_redis { " + Redis" } else { "" });
        println!(
            "  fixed rate   direct p50 {:.3} ms p99 {:.3} ms | through tollgate p50 {:.3} ms p99 {:.3} ms | added p50 {:.3} ms p99 {:.3} ms",
            ms(d50),
            ms(d99),
            ms(p50),
            ms(p99),
            ms(p50.saturating_sub(d50)),
            ms(p99.saturating_sub(d99)),
        );
        let direct_rate = throughput(&http, &direct).await;
        let proxied_rate = throughput(&http, &proxied).await;
        println!(
            "  throughput   direct {direct_rate:.0}/s | through tollgate {proxied_rate:.0}/s | ratio {:.3}",
            proxied_rate / direct_rate
        );
        let rows = s.sandbox.query_i64("SELECT COUNT(*) FROM ai_usage").await;
        println!("  ledger rows written: {rows}");
    }
}
