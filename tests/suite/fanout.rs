//! Several nodes on one PostgreSQL database: a session revoked on one process is refused
//! by the others within a second, through PostgreSQL `LISTEN/NOTIFY` or Redis pub/sub,
//! while each keeps verifying tokens from memory.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;

const REDIS: &str = "redis://127.0.0.1:6379";

/// Signs in on `a`, checks `b` accepts the token (shared keys), revokes through `revoke`
/// and returns how long `b` took to refuse it.
async fn time_until_refused_elsewhere<F, Fut>(a: &TestServer, b: &TestServer, revoke: F) -> Duration
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let e = email("nodes");
    a.register(&e).await;
    let (access, _) = a.login_tokens(&e, PASSWORD).await;
    // Cached on b: from now on b answers from memory.
    for _ in 0..3 {
        assert_eq!(b.get_bearer("/auth/me", &access).await.status, 200);
    }
    revoke(e, access.clone()).await;
    let start = Instant::now();
    loop {
        let r = b.get_bearer("/auth/me", &access).await;
        if r.status == 401 {
            r.assert_problem(401, "session_revoked");
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_nodes(env: Vec<(&'static str, String)>) -> (TestServer, TestServer) {
    let a = TestServer::start_with(
        Backend::Postgres,
        Options {
            env: env.clone(),
            ..Options::default()
        },
    )
    .await;
    let b = a.sibling(vec![]).await;
    (a, b)
}

async fn logout_on_one_node_reaches_the_other(env: Vec<(&'static str, String)>, channel: &str) {
    let (a, b) = two_nodes(env).await;
    assert!(
        b.server_log()
            .contains(&format!("\"revocation_fanout\":\"{channel}\"")),
        "{}",
        b.server_log()
    );
    let took = time_until_refused_elsewhere(&a, &b, |_, access| {
        let a = &a;
        async move { logout(a, &access).await }
    })
    .await;
    // The reconciliation poll runs every 5 s: under a second means the push worked.
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_reaches_every_node_within_a_second() {
    logout_on_one_node_reaches_the_other(vec![], "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_reaches_every_node_within_a_second() {
    logout_on_one_node_reaches_the_other(
        vec![("TOLLGATE_REDIS_URL", REDIS.into())],
        "redis+postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revocations_are_pushed_too() {
    for env in [vec![], vec![("TOLLGATE_REDIS_URL", REDIS.to_string())]] {
        let (a, b) = two_nodes(env).await;
        let took = time_until_refused_elsewhere(&a, &b, |email, _| {
            let a = &a;
            async move {
                let out = a.cli(&["user", "disable", &email], None);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
        .await;
        assert!(took < Duration::from_secs(1), "refused after {took:?}");
        // The first node too, of course.
        drop(b);
    }
}

/// Signs out with `access` on `a`.
async fn logout(a: &TestServer, access: &str) {
    let r = a
        .call(
            Method::POST,
            "/auth/logout",
            None,
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// Redis dies under two nodes on PostgreSQL: revocations keep arriving within a second
/// through PostgreSQL, each node says so once (not once a second), and when Redis returns
/// the nodes use it again, the very first revocation after its return included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_losing_redis() {
    let mut redis = common::redis_server::RedisServer::start();
    let (a, b) = two_nodes(vec![("TOLLGATE_REDIS_URL", redis.url())]).await;
    assert!(
        b.server_log()
            .contains("\"revocation_fanout\":\"redis+postgres\""),
        "{}",
        b.server_log()
    );
    let sign_out = |_: String, access: String| {
        let a = &a;
        async move { logout(a, &access).await }
    };
    redis.kill();
    let mut took = Vec::new();
    for _ in 0..10 {
        took.push(time_until_refused_elsewhere(&a, &b, sign_out).await);
    }
    took.sort();
    eprintln!(
        "revocation elsewhere with Redis down: median {:?}, worst {:?} of {}",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );
    assert!(took[took.len() - 1] < Duration::from_secs(1), "{took:?}");
    // Several reconnection attempts later, still one warning per node.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for node in [&a, &b] {
        let log = node.server_log();
        assert_eq!(log.matches("revocation channel lost").count(), 1, "{log}");
    }

    redis.restart();
    let back = eventually(Duration::from_secs(20), || async {
        [&a, &b].iter().all(|n| {
            n.server_log()
                .contains("revocation channel connected again")
        })
    })
    .await;
    assert!(back, "{}\n{}", a.server_log(), b.server_log());
    // The first revocation after Redis returned goes out on Redis too.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("tollgate_revocations").await.unwrap();
    let took = time_until_refused_elsewhere(&a, &b, sign_out).await;
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    use futures_util::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("the revocation reached Redis")
        .unwrap();
    let payload: String = message.get_payload().unwrap();
    assert!(payload.split(' ').count() >= 2, "{payload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_falls_back_to_the_database() {
    let (a, b) = two_nodes(vec![("TOLLGATE_REDIS_URL", "redis://127.0.0.1:1".into())]).await;
    assert!(
        a.server_log().contains("Redis unavailable"),
        "{}",
        a.server_log()
    );
    let took = time_until_refused_elsewhere(&a, &b, |_, access| {
        let a = &a;
        async move { logout(a, &access).await }
    })
    .await;
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
}
