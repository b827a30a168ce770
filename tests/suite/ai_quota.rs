//! Zero overshoot: 200 simultaneous calls against a monthly budget that fits exactly 10,
//! in one process on SQLite and on PostgreSQL, through Redis across two processes, and
//! through PostgreSQL alone across three; budgets survive a restart (counters start from
//! the ledger).

use crate::common;

use std::sync::Arc;

use common::llm::{MockLlm, provider_section};
use common::{Backend, Options, Reply, TestServer, simultaneously};
use reqwest::Method;
use serde_json::json;

pub const KEY: &str = "sk-mock-quota-0a1b2c3d4e5f";

/// Output at 10 USD per million tokens; 100 output tokens a call = 0.001 USD; the
/// budget is 0.01 USD: exactly 10 calls.
pub fn config(upstream: &str) -> String {
    format!(
        r#"
[roles.user]
scopes = ["ai:invoke"]
{}
[ai.price."budget-model"]
input = 0.0
output = 10.0

[ai.quota.user]
usd_per_month = 0.01
"#,
        provider_section("openai", "openai", upstream, "MOCK_KEY", "")
    )
}

const CALL_PICO: i64 = 1_000_000_000;
const BUDGET_PICO: i64 = 10 * CALL_PICO;

async fn start(backend: Backend, mock: &MockLlm, redis: bool) -> TestServer {
    let mut env = vec![("MOCK_KEY", KEY.to_string())];
    if redis {
        env.push(("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379".to_string()));
    }
    TestServer::start_with(
        backend,
        Options {
            config: config(&mock.base),
            env,
        },
    )
    .await
}

pub async fn spend(s: Arc<TestServer>, token: Arc<String>) -> Reply {
    s.call(
        Method::POST,
        "/ai/openai/v1/chat/completions",
        Some(json!({
            "model": "budget-model",
            "max_tokens": 100,
            "mock_delay_ms": 300,
            "messages": [{"role": "user", "content": "spend"}]
        })),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

fn assert_exactly_ten(replies: &[Reply]) {
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
    assert_eq!(ok, 10, "exactly the budget's worth succeeds");
    for r in &refused {
        r.assert_ai_error(429, "quota_exceeded");
        assert!(!r.header("retry-after").is_empty());
    }
}

async fn assert_ledger_within_budget(s: &TestServer) {
    let spent = s
        .sandbox
        .query_i64("SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) FROM ai_usage")
        .await;
    assert_eq!(
        spent, BUDGET_PICO,
        "recorded spend is the budget, never more"
    );
    let rows = s.sandbox.query_i64("SELECT COUNT(*) FROM ai_usage").await;
    assert_eq!(rows, 10);
}

async fn two_hundred_calls_fit_a_budget_of_ten(backend: Backend) {
    let mock = MockLlm::start(KEY).await;
    let s = Arc::new(start(backend, &mock, false).await);
    let (_, token) = s.user_with_roles("budget", &[]).await;
    let token = Arc::new(token);
    let replies = simultaneously(&s, 200, {
        let token = token.clone();
        move |s| spend(s, token.clone())
    })
    .await;
    assert_exactly_ten(&replies);
    assert!(
        mock.state
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 10
    );
    assert_ledger_within_budget(&s).await;
    // Settled, and still nothing left.
    spend(s.clone(), token.clone())
        .await
        .assert_ai_error(429, "quota_exceeded");
    let u = s.get_bearer("/auth/usage", &token).await.json;
    assert_eq!(u["remaining"]["usd_per_month"], 0.0, "{u}");
}

/// Two processes share one budget through Redis: half of it is spent at one node,
/// then 100 simultaneous calls at each node get exactly the other half (each node alone
/// would admit a whole budget's worth).
async fn two_processes_share_a_budget_through_redis(backend: Backend) {
    nodes_share_a_budget(backend, true, 2).await;
}

/// Three processes on one PostgreSQL and no Redis share one budget through the
/// database's counters: without them, each node would admit a whole budget's worth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_a_budget_through_postgres() {
    nodes_share_a_budget(Backend::Postgres, false, 3).await;
}

async fn nodes_share_a_budget(backend: Backend, redis: bool, nodes: usize) {
    let mock = MockLlm::start(KEY).await;
    let first = Arc::new(start(backend, &mock, redis).await);
    let mut all = vec![first.clone()];
    for _ in 1..nodes {
        all.push(Arc::new(first.sibling(vec![]).await));
    }
    let (_, token) = first.user_with_roles("shared", &[]).await;
    let token = Arc::new(token);
    for _ in 0..5 {
        assert_eq!(spend(first.clone(), token.clone()).await.status, 200);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let node = all[i % nodes].clone();
            let (barrier, token) = (barrier.clone(), token.clone());
            tokio::spawn(async move {
                assert_eq!(
                    node.call(Method::GET, "/readyz", None, &[]).await.status,
                    200
                );
                barrier.wait().await;
                spend(node, token).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 5, "exactly what was left of the budget");
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_ai_error(429, "quota_exceeded");
    }
    assert_ledger_within_budget(&first).await;
    spend(all[nodes - 1].clone(), token.clone())
        .await
        .assert_ai_error(429, "quota_exceeded");
}

/// A restarted process starts the month from the ledger, not from zero.
async fn the_budget_survives_a_restart(backend: Backend) {
    let mock = MockLlm::start(KEY).await;
    let mut s = start(backend, &mock, false).await;
    let (_, token) = s.user_with_roles("restart", &[]).await;
    let token = Arc::new(token);
    for _ in 0..10 {
        let r = s
            .call(
                Method::POST,
                "/ai/openai/v1/chat/completions",
                Some(json!({"model": "budget-model", "max_tokens": 100, "messages": []})),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    s.restart_with(None, vec![]).await;
    let r = s
        .call(
            Method::POST,
            "/ai/openai/v1/chat/completions",
            Some(json!({"model": "budget-model", "max_tokens": 1, "messages": []})),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    r.assert_ai_error(429, "quota_exceeded");
}

on_both_backends!(
    two_hundred_calls_fit_a_budget_of_ten,
    the_budget_survives_a_restart
);
on_sqlite!(
    through_redis => two_processes_share_a_budget_through_redis,
    dead_redis => a_dead_redis_fails_closed_or_counts_locally,
);

/// Redis down: metered calls are refused (503) by default, or counted in the process
/// with `on_redis_failure = "local"`, still within the budget.
async fn a_dead_redis_fails_closed_or_counts_locally(backend: Backend) {
    let mock = MockLlm::start(KEY).await;
    let dead = format!("redis://127.0.0.1:{}", common::free_port());
    let env = vec![
        ("MOCK_KEY", KEY.to_string()),
        ("TOLLGATE_REDIS_URL", dead.clone()),
    ];
    let s = TestServer::start_with(
        backend,
        Options {
            config: config(&mock.base),
            env: env.clone(),
        },
    )
    .await;
    let (_, token) = s.user_with_roles("dead", &[]).await;
    let r = spend(Arc::new(s), Arc::new(token)).await;
    r.assert_ai_error(503, "quota_unavailable");

    let local = format!(
        "{}\n[ai]\non_redis_failure = \"local\"\n",
        config(&mock.base)
    );
    let s = Arc::new(TestServer::start_with(backend, Options { config: local, env }).await);
    let (_, token) = s.user_with_roles("local", &[]).await;
    let token = Arc::new(token);
    let replies = simultaneously(&s, 30, {
        let token = token.clone();
        move |s| spend(s, token.clone())
    })
    .await;
    assert_exactly_ten(&replies);
}
