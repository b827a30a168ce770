//! Faults on purpose, against a PostgreSQL of the test's own (`common::pg_cluster`): the
//! database stops under a serving node and comes back. What clients see is counted and
//! what was written is checked.

use crate::common;

use std::time::{Duration, Instant};

use common::pg_cluster::PgCluster;
use common::{Backend, PASSWORD, TestServer, eventually};
use reqwest::Method;
use serde_json::json;

use crate::ai::{call_ai, start_with_env};

async fn refresh(s: &TestServer, token: &str) -> common::Reply {
    s.post(
        "/auth/refresh?mode=token",
        json!({ "refresh_token": token }),
    )
    .await
}

/// PostgreSQL stops under a serving node for several seconds. Once the node knows (its
/// probe asks every second), a request that needs the database answers 503
/// `unavailable` with `Retry-After` at once instead of waiting out the pool; a verified
/// token and the AI proxy keep serving, the AI calls' ledger rows kept in the spill file;
/// when PostgreSQL returns the node heals by itself, and the ledger holds exactly the
/// calls the provider answered. The loss and the return are logged once each. In a
/// second outage the node is killed before PostgreSQL returns: its next start writes
/// what it spilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_keeps_the_ledger_and_heals() {
    let pg = PgCluster::create();
    let (mut s, openai, _anthropic) = start_with_env(
        Backend::Sqlite,
        "",
        vec![("TOLLGATE_DATABASE_URL", pg.url())],
    )
    .await;
    let (email, access) = s.user_with_roles("outage", &["user"]).await;
    let (_, refresh_token) = s.login_tokens(&email, PASSWORD).await;
    let chat = json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }] });
    let path = "/ai/openai/chat/completions";
    assert_eq!(call_ai(&s, &access, path, chat.clone()).await.status, 200);

    pg.stop();
    let stopped = Instant::now();
    let known = eventually(Duration::from_secs(15), || async {
        s.call(Method::GET, "/readyz", None, &[]).await.status == 503
    })
    .await;
    assert!(known, "{}", s.server_log());
    let known_after = stopped.elapsed();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let r = refresh(&s, &refresh_token).await;
        slowest = slowest.max(t.elapsed());
        r.assert_problem(503, "unavailable");
        assert_eq!(r.header("retry-after"), "1");
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a refresh took {slowest:?}"
    );

    // What needs no database keeps serving.
    assert_eq!(s.get_bearer("/auth/me", &access).await.status, 200);
    let mut answered = 1;
    let mut slowest_ai = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let r = call_ai(&s, &access, path, chat.clone()).await;
        slowest_ai = slowest_ai.max(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text);
        answered += 1;
    }
    eprintln!(
        "database outage: known after {known_after:?}; slowest 503 {slowest:?}; slowest AI call {slowest_ai:?}"
    );
    assert!(
        slowest_ai < Duration::from_secs(2),
        "an AI call took {slowest_ai:?}"
    );

    pg.start();
    let restarted = Instant::now();
    let healed = eventually(Duration::from_secs(20), || async {
        refresh(&s, &refresh_token).await.status == 200
    })
    .await;
    assert!(healed, "{}", s.server_log());
    eprintln!(
        "database back: serving again after {:?}",
        restarted.elapsed()
    );

    // Every call the provider answered is in the ledger, once.
    let rows = || pg.query_i64("SELECT COUNT(*) FROM ai_usage");
    let written = eventually(Duration::from_secs(10), || async {
        rows().await == answered
    })
    .await;
    assert!(written, "{} ledger rows for {answered} calls", rows().await);
    assert_eq!(openai.calls().len() as i64, answered);
    let log = s.server_log();
    assert_eq!(log.matches("database unreachable").count(), 1, "{log}");
    assert_eq!(log.matches("database reachable again").count(), 1, "{log}");

    // Again, but the node is killed (-9) before PostgreSQL returns: the rows it spilled
    // to its data dir are written by the next start.
    pg.stop();
    let known = eventually(Duration::from_secs(15), || async {
        s.call(Method::GET, "/readyz", None, &[]).await.status == 503
    })
    .await;
    assert!(known, "{}", s.server_log());
    for _ in 0..4 {
        let r = call_ai(&s, &access, path, chat.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        answered += 1;
    }
    let spill = s.sandbox.dir.join("data").join("ai-ledger-spill.jsonl");
    let spilled = std::fs::read_to_string(&spill)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(spilled, 4, "{}", spill.display());
    s.stop();
    pg.start();
    s.restart_with(None, vec![]).await;
    let written = eventually(Duration::from_secs(15), || async {
        rows().await == answered
    })
    .await;
    assert!(written, "{} ledger rows for {answered} calls", rows().await);
    assert_eq!(openai.calls().len() as i64, answered);
    let emptied = eventually(Duration::from_secs(5), || async {
        std::fs::metadata(&spill).map(|m| m.len()).unwrap_or(0) == 0
    })
    .await;
    assert!(emptied, "the spill file was not emptied");
}

/// SQLite is for one node: a second server on the same file says so at start (its
/// revocations, limits and quotas would be its own), and the first does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_told() {
    const WARNING: &str = "another Tollgate server uses this SQLite file";
    let a = TestServer::start(Backend::Sqlite).await;
    let b = a.sibling(vec![]).await;
    let told = eventually(Duration::from_secs(10), || async {
        b.server_log().contains(WARNING)
    })
    .await;
    assert!(told, "{}", b.server_log());
    assert!(!a.server_log().contains(WARNING), "{}", a.server_log());
    // The CLI beside a server is fine and claims nothing.
    let out = a.cli(&["user", "list"], None);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(WARNING));
}
