//! `/metrics` (hardening items 7 and 19): labels come from bounded sets whatever callers
//! send, the endpoint can be moved to its own listener and put behind a token, and the
//! recorder's memory stays flat when nobody scrapes.

use crate::common;

use std::time::Duration;

use common::llm::{MockLlm, provider_section};
use common::upstream::{Upstream, raw};
use common::*;
use reqwest::Method;
use serde_json::json;

const KEY: &str = "sk-mock-metrics-0123456789abcdef";

async fn labels_are_bounded_whatever_callers_send(backend: Backend) {
    let up = Upstream::start().await;
    let llm = MockLlm::start(KEY).await;
    let config = format!(
        r#"
[roles.user]
scopes = ["ai:invoke"]
{}
[ai.price."gpt-known"]
input = 1.0
output = 1.0

[[route]]
path = "/pub/*"
upstream = "{}"
auth = "public"
"#,
        provider_section("openai", "openai", &llm.base, "MOCK_KEY", ""),
        up.base
    );
    let s = TestServer::start_with(
        backend,
        Options {
            config,
            env: vec![("MOCK_KEY", KEY.to_string())],
        },
    )
    .await;
    // Made-up methods, on Tollgate's paths and the gateway's.
    for i in 0..20 {
        for path in ["/pub/x", "/auth/me", "/nowhere"] {
            let (status, _) = raw(
                s.port,
                &format!("XMETHOD{i} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert!(status >= 200, "{status}");
        }
    }
    // Made-up model names.
    let (_, token) = s.user_with_roles("labels", &[]).await;
    for i in 0..10 {
        let r = s
            .call(
                Method::POST,
                "/ai/openai/v1/chat/completions",
                Some(json!({"model": format!("made-up-{i}"), "messages": [{"role": "user", "content": "hi"}]})),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
    }
    let r = s
        .call(
            Method::POST,
            "/ai/openai/v1/chat/completions",
            Some(json!({"model": "gpt-known", "messages": [{"role": "user", "content": "hi"}]})),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(r.status, 200);
    let text = s.call(Method::GET, "/metrics", None, &[]).await.text;
    assert!(!text.contains("XMETHOD"), "a made-up method became a label");
    assert!(!text.contains("made-up-"), "a made-up model became a label");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"model="other""#), "{text}");
    assert!(text.contains(r#"model="gpt-known""#), "{text}");
}

async fn metrics_can_have_their_own_listener_and_a_token(backend: Backend) {
    let port = free_port();
    let s = TestServer::start_with(
        backend,
        Options {
            config: format!(
                "[metrics]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"METRICS_TOKEN\"\n"
            ),
            env: vec![("METRICS_TOKEN", "scrape-secret-123".into())],
        },
    )
    .await;
    s.call(Method::GET, "/metrics", None, &[])
        .await
        .assert_problem(404, "not_found");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut up = false;
    for _ in 0..100 {
        if http.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the metrics listener did not come up");
    for auth in [None, Some("Bearer wrong"), Some("scrape-secret-123")] {
        let mut req = http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = Reply::from(req.send().await.unwrap()).await;
        r.assert_problem(401, "unauthenticated");
        assert!(!r.header("www-authenticate").is_empty());
    }
    let r = http
        .get(&url)
        .header("authorization", "Bearer scrape-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("tollgate_http_requests_total")
    );
    // Nothing else is served there.
    let r = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Pipelined `GET /healthz` on a few connections: many requests, little client work.
async fn hammer(port: u16, requests: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BATCH: usize = 500;
    let per_conn = requests / 4;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
            let batch: Vec<u8> = one
                .iter()
                .copied()
                .cycle()
                .take(one.len() * BATCH)
                .collect();
            let mut buf = vec![0u8; 1 << 16];
            for _ in 0..per_conn / BATCH {
                conn.write_all(&batch).await.unwrap();
                let mut seen = 0;
                let mut tail = Vec::new();
                while seen < BATCH {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection closed");
                    tail.extend_from_slice(&buf[..n]);
                    seen += tail.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
                    let keep = tail.len().saturating_sub(11);
                    tail.drain(..keep);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

async fn memory_stays_flat_without_a_scrape(backend: Backend) {
    let s = TestServer::start(backend).await;
    // The recorder keeps every histogram sample (24 bytes) until its upkeep or a scrape.
    // With the upkeep timer, memory peaks at a second's worth of samples and stays there;
    // without it, 300,000 requests add about 7 MiB. Rounds: a warm-up (allocator arenas,
    // connection buffers, the first peak), then three equal rounds.
    hammer(s.port, 100_000).await;
    tokio::time::sleep(UPKEEP_WAIT).await;
    hammer(s.port, 150_000).await;
    tokio::time::sleep(UPKEEP_WAIT).await;
    let before = rss_kib(s.pid());
    for _ in 0..2 {
        hammer(s.port, 150_000).await;
        tokio::time::sleep(UPKEEP_WAIT).await;
    }
    let after = rss_kib(s.pid());
    eprintln!("RSS {before} KiB -> {after} KiB over 300,000 requests");
    assert!(
        after < before + 2 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 300,000 requests with no scrape"
    );
}

/// Longer than the recorder's upkeep interval (1 s).
const UPKEEP_WAIT: Duration = Duration::from_millis(2500);

on_sqlite!(
    bounded_labels => labels_are_bounded_whatever_callers_send,
    own_listener => metrics_can_have_their_own_listener_and_a_token,
    flat_memory => memory_stays_flat_without_a_scrape,
);
