//! Faults on purpose under several nodes and load: a node killed (-9) in the middle of
//! refresh rotations, PostgreSQL stopped for 15 s under refresh and AI load from three
//! nodes, Redis killed under limits and budgets. Each counts what clients saw and checks
//! what was written: no session lost, as many ledger rows as provider receipts, limits
//! held exactly. The figures are printed (`--nocapture`) for docs/deployment.md.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::llm::MockLlm;
use common::pg_cluster::PgCluster;
use common::redis_server::RedisServer;
use common::{Backend, Options, PASSWORD, TestServer, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// What one client walking its refresh chain saw.
#[derive(Debug, Default)]
struct Walk {
    rotations: usize,
    /// Requests that got no answer (the node died, or refused the connection).
    unanswered: usize,
    /// 503s (the database was down).
    unavailable: usize,
    /// When the first 503 came.
    first_unavailable: Option<Instant>,
    /// Anything else: the session was lost.
    lost: Option<String>,
    access: String,
    refresh: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// Rotates `refresh` until `until`, asking the nodes in turn. A request that got no
/// answer, or a 503, is asked again with the same token at the next node, as a client
/// behind a load balancer would: inside the grace window that returns the successor the
/// first node already made, so a rotation lost with its node costs nothing.
async fn walk(bases: Arc<Vec<String>>, refresh: String, until: Instant, offset: usize) -> Walk {
    let http = client();
    let mut w = Walk {
        refresh,
        ..Walk::default()
    };
    let mut turn = offset;
    while Instant::now() < until {
        turn += 1;
        let base = &bases[turn % bases.len()];
        let sent = http
            .post(format!("{base}/auth/refresh?mode=token"))
            .json(&json!({ "refresh_token": w.refresh }))
            .send()
            .await;
        let reply = match sent {
            Ok(r) => r,
            Err(_) => {
                w.unanswered += 1;
                continue;
            }
        };
        let status = reply.status().as_u16();
        let body: Value = match reply.json().await {
            Ok(b) => b,
            Err(_) => {
                w.unanswered += 1;
                continue;
            }
        };
        match status {
            200 => {
                w.rotations += 1;
                w.access = body["access_token"].as_str().unwrap().to_string();
                w.refresh = body["refresh_token"].as_str().unwrap().to_string();
            }
            503 => {
                w.unavailable += 1;
                w.first_unavailable.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                w.lost = Some(format!("{status} at {base}: {body}"));
                return w;
            }
        }
    }
    w
}

/// Walks every chain across `bases` until `until`, each starting at its own node.
fn walk_all(
    bases: &Arc<Vec<String>>,
    chains: Vec<String>,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<Walk>> {
    chains
        .into_iter()
        .enumerate()
        .map(|(i, rt)| tokio::spawn(walk(bases.clone(), rt, until, i)))
        .collect()
}

/// Signs `email` in `n` times: `n` sessions, each with its own refresh chain.
async fn sessions(s: &TestServer, email: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(s.login_tokens(email, PASSWORD).await.1);
    }
    out
}

/// After the fault every walk must still hold a working session: its last refresh token
/// rotates once more, and its access token is accepted.
async fn assert_no_session_lost(walks: &[Walk], node: &TestServer) {
    for (i, w) in walks.iter().enumerate() {
        assert!(w.lost.is_none(), "chain {i} lost its session: {:?}", w.lost);
        let r = node
            .post(
                "/auth/refresh?mode=token",
                json!({ "refresh_token": w.refresh }),
            )
            .await;
        assert_eq!(r.status, 200, "chain {i}: {}", r.text);
        assert_eq!(node.get_bearer("/auth/me", &w.access).await.status, 200);
    }
}

fn kill_9(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
}

/// Twelve refresh chains rotate across three nodes while one node is killed (-9). The
/// rotations that died with it are asked again elsewhere and get the successor it had
/// already made; no session is lost and none trips reuse detection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_mid_rotation_loses_no_session() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.sibling(vec![]).await;
    let mut c = a.sibling(vec![]).await;
    let email = common::email("kill9");
    a.register(&email).await;
    let chains = sessions(&a, &email, 12).await;
    let bases = Arc::new(vec![a.base.clone(), b.base.clone(), c.base.clone()]);
    let tasks = walk_all(&bases, chains, Instant::now() + Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill_9(c.pid());
    let mut walks = Vec::new();
    for t in tasks {
        walks.push(t.await.unwrap());
    }
    c.stop();
    let rotations: usize = walks.iter().map(|w| w.rotations).sum();
    let unanswered: usize = walks.iter().map(|w| w.unanswered).sum();
    eprintln!(
        "kill -9 of one node in three: {rotations} rotations by 12 chains, {unanswered} requests unanswered and asked again, sessions lost: {}",
        walks.iter().filter(|w| w.lost.is_some()).count()
    );
    assert!(unanswered > 0, "the killed node was never asked");
    assert!(rotations > 24, "the chains hardly moved: {rotations}");
    assert_no_session_lost(&walks, &a).await;
}

/// PostgreSQL stops for 15 s under three nodes, while six refresh chains rotate and
/// three clients call the AI proxy, across all nodes. Refreshes get 503 within a few
/// seconds and carry on when the database returns, no session lost; every AI call the
/// provider answered (they keep being answered during the outage, their rows spilled by
/// each node to its own file) is in the ledger exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_stop_under_load_from_three_nodes_loses_nothing() {
    let pg = PgCluster::create();
    let (a, openai, _anthropic) = crate::ai::start_with_env(
        Backend::Sqlite,
        "",
        vec![("TOLLGATE_DATABASE_URL", pg.url())],
    )
    .await;
    let b = a.sibling(vec![]).await;
    let c = a.sibling(vec![]).await;
    let (email, access) = a.user_with_roles("pgstop", &["user"]).await;
    let chains = sessions(&a, &email, 6).await;
    let bases = Arc::new(vec![a.base.clone(), b.base.clone(), c.base.clone()]);
    let load_ends = Instant::now() + Duration::from_secs(30);
    let walks = walk_all(&bases, chains, load_ends);
    let answered = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..3)
        .map(|i| {
            let (bases, access, answered) = (bases.clone(), access.clone(), answered.clone());
            tokio::spawn(async move {
                let http = client();
                let mut turn = i;
                while Instant::now() < load_ends {
                    turn += 1;
                    let r = http
                        .post(format!(
                            "{}/ai/openai/chat/completions",
                            bases[turn % bases.len()]
                        ))
                        .bearer_auth(&access)
                        .json(&json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }] }))
                        .send()
                        .await
                        .expect("the AI proxy answers");
                    assert_eq!(r.status(), 200, "{:?}", r.text().await);
                    answered.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = Instant::now();
    pg.stop();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = answered.load(Ordering::SeqCst);
    pg.start();
    let restarted = Instant::now();
    let mut results = Vec::new();
    for t in walks {
        results.push(t.await.unwrap());
    }
    for t in callers {
        t.await.unwrap();
    }
    let answered = answered.load(Ordering::SeqCst) as i64;
    let time_to_503 = results
        .iter()
        .filter_map(|w| w.first_unavailable)
        .min()
        .map(|t| t.duration_since(stopped));
    let unavailable: usize = results.iter().map(|w| w.unavailable).sum();
    let rotations: usize = results.iter().map(|w| w.rotations).sum();
    assert_no_session_lost(&results, &a).await;

    let rows = || pg.query_i64("SELECT COUNT(*) FROM ai_usage");
    let written = eventually(Duration::from_secs(20), || async {
        rows().await == answered
    })
    .await;
    let receipts = openai.calls().len() as i64;
    eprintln!(
        "15 s PostgreSQL stop under 3 nodes: first 503 after {time_to_503:?}; {unavailable} refreshes answered 503 and asked again; {rotations} rotations; sessions lost: 0; AI calls answered: {answered} ({during} by the end of the stop); provider receipts: {receipts}; ledger rows: {} ({:?} after the restart)",
        rows().await,
        restarted.elapsed()
    );
    assert!(written, "{} ledger rows for {answered} calls", rows().await);
    assert_eq!(receipts, answered);
    let time_to_503 = time_to_503.expect("the outage was seen");
    assert!(
        time_to_503 < Duration::from_secs(5),
        "first 503 after {time_to_503:?}"
    );
}

/// Redis (with an append-only file, as in production) is killed under two nodes with a
/// budget of 10 AI calls (4 spent) and a rate limit of 12 an hour. Rate limits move to
/// the database: both nodes together allow exactly 12, where each alone would allow 12.
/// Metered AI calls are refused (503 `quota_unavailable`, the default) rather than
/// counted somewhere that does not know what Redis holds; when Redis is back both nodes
/// together admit exactly the 6 calls left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_limits_and_budgets_exact() {
    use crate::ai_quota::{KEY, config, spend};
    let mut redis = RedisServer::start_persistent();
    let mock = MockLlm::start(KEY).await;
    let rule = format!("t{}", uuid::Uuid::new_v4().simple());
    let limits = format!(
        "[limits]\ndefault_rules = false\n\n[[limits.rule]]\nname = \"{rule}\"\npaths = [\"/healthz\"]\nper = \"ip\"\nlimit = 12\nwindow = \"1h\"\n"
    );
    let a = Arc::new(
        TestServer::start_with(
            Backend::Postgres,
            Options {
                config: format!("{limits}\n{}", config(&mock.base)),
                env: vec![
                    ("MOCK_KEY", KEY.to_string()),
                    ("TOLLGATE_REDIS_URL", redis.url()),
                ],
            },
        )
        .await,
    );
    let b = Arc::new(a.sibling(vec![]).await);
    let (_, token) = a.user_with_roles("redis-down", &[]).await;
    let token = Arc::new(token);
    for _ in 0..4 {
        assert_eq!(spend(a.clone(), token.clone()).await.status, 200);
    }
    let both = |n: usize| -> Vec<Arc<TestServer>> {
        (0..n)
            .map(|i| if i % 2 == 0 { a.clone() } else { b.clone() })
            .collect()
    };

    redis.kill();
    let killed = Instant::now();
    let mut refused = 0;
    for t in both(20)
        .into_iter()
        .map(|node| tokio::spawn(spend(node, token.clone())))
        .collect::<Vec<_>>()
    {
        t.await.unwrap().assert_ai_error(503, "quota_unavailable");
        refused += 1;
    }
    let mut allowed = 0;
    for t in both(40)
        .into_iter()
        .map(|node| {
            tokio::spawn(async move { node.call(Method::GET, "/healthz", None, &[]).await })
        })
        .collect::<Vec<_>>()
    {
        let r = t.await.unwrap();
        match r.status {
            200 => allowed += 1,
            _ => r.assert_problem(429, "rate_limited"),
        }
    }
    eprintln!(
        "Redis down under 2 nodes: {refused} of 20 metered AI calls refused with 503; {allowed} of 40 checks allowed by a limit of 12 (in {:?})",
        killed.elapsed()
    );
    assert_eq!(allowed, 12, "one allowance for both nodes, not one each");

    redis.restart();
    // Redis holds the arrival times of before the outage again (two start-up probes of
    // 12): a check allowed again shows the node asks Redis again.
    for node in [&a, &b] {
        let back = eventually(Duration::from_secs(15), || async {
            node.call(Method::GET, "/healthz", None, &[]).await.status == 200
        })
        .await;
        assert!(back, "{}", node.server_log());
    }
    // The AI quotas ask Redis again a second after their last failure.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut admitted = 0;
    for t in both(40)
        .into_iter()
        .map(|node| tokio::spawn(spend(node, token.clone())))
        .collect::<Vec<_>>()
    {
        let r = t.await.unwrap();
        match r.status {
            200 => admitted += 1,
            _ => r.assert_ai_error(429, "quota_exceeded"),
        }
    }
    assert_eq!(admitted, 6, "exactly what was left of the budget");
    assert_eq!(mock.calls().len(), 10);
    assert_eq!(
        a.sandbox.query_i64("SELECT COUNT(*) FROM ai_usage").await,
        10
    );
}
