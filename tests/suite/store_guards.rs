//! Guards that only fire in races, exercised directly: the arbitration must not depend on
//! the PostgreSQL server's default isolation level, a session cannot be created for a
//! user disabled between sign-in and session creation, and the shared quota counters
//! neither deadlock nor lose an update under reservations and settlements racing on the
//! same rows.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use serde_json::json;
use tollgate::{AuditContext, AuditOutcome, CounterTake, NewSession, NewUser, Store};

on_both_backends!(session_insert_refuses_a_disabled_user);

/// With SERIALIZABLE as the database default, racing refreshes would turn into
/// serialization failures (503) unless Tollgate pins READ COMMITTED itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_survive_a_serializable_default() {
    let sandbox = Sandbox::new(Backend::Postgres).await;
    sandbox.make_serializable_the_default().await;
    let s = Arc::new(TestServer::start_in(sandbox, Options::default()).await);
    let email = email("serializable");
    s.register(&email).await;
    let (_, rt) = s.login_tokens(&email, PASSWORD).await;
    let replies = simultaneously(&s, 30, move |s| {
        let rt = rt.clone();
        async move {
            s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
                .await
        }
    })
    .await;
    let mut successors = HashSet::new();
    for r in replies {
        assert_eq!(r.status, 200, "{}", r.text);
        successors.insert(r.str("refresh_token"));
    }
    assert_eq!(successors.len(), 1);
}

async fn session_insert_refuses_a_disabled_user(b: Backend) {
    let sandbox = Sandbox::new(b).await;
    let store = Store::connect(&sandbox.database_url_for_store())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let roles = vec!["user".to_string()];
    let new_session = |id: &'static str, hash: &'static str| NewSession {
        id,
        user_id: "u1",
        client_id: "tollgate",
        amr: "pwd",
        auth_time: 1,
        now: 1,
        idle_expires_at: i64::MAX / 2,
        expires_at: i64::MAX / 2,
        user_agent: None,
        ip: None,
        refresh_hash: Some(hash),
        scope: None,
        parent_id: None,
        resource: None,
    };
    let audit = AuditContext::cli().entry("test", AuditOutcome::Success, None);
    store
        .insert_user(
            &NewUser {
                id: "u1",
                email: "u1@example.com",
                password_hash: None,
                roles: &roles,
                email_verified: false,
                now: 1,
            },
            &audit,
        )
        .await
        .unwrap();
    assert!(
        store
            .insert_session(&new_session("s1", "h1"), &audit)
            .await
            .unwrap()
    );
    store.set_disabled("u1", true, 2, &audit).await.unwrap();
    assert!(
        !store
            .insert_session(&new_session("s2", "h2"), &audit)
            .await
            .unwrap(),
        "no session for a disabled user"
    );
    assert_eq!(sandbox.query_i64("SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(
        sandbox
            .query_i64("SELECT COUNT(*) FROM refresh_tokens")
            .await,
        1,
        "nothing half-written"
    );
    store.close().await;
}

/// Sixteen tasks reserve against the same three counters (listed in different orders)
/// and settle part of it back, under a SERIALIZABLE server default. Before settlements
/// locked rows in key order as reservations do, this deadlocked (PostgreSQL failed one
/// side); none of it may fail now, and the counters hold exactly what was taken and
/// given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_counters_neither_deadlock_nor_lose_updates() {
    let sandbox = Sandbox::new(Backend::Postgres).await;
    sandbox.make_serializable_the_default().await;
    let store = Store::connect(&sandbox.database_url_for_store())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let counters = store.shared_counters().expect("PostgreSQL shares counters");
    let keys = ["k:a".to_string(), "k:b".to_string(), "k:c".to_string()];
    let kept = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|t: usize| {
            let (counters, keys, kept) = (counters.clone(), keys.clone(), kept.clone());
            tokio::spawn(async move {
                for _ in 0..40 {
                    // Different tasks name the counters in different orders.
                    let mut order: Vec<&str> = keys.iter().map(String::as_str).collect();
                    order.rotate_left(t % 3);
                    let takes: Vec<CounterTake<'_>> = order
                        .iter()
                        .map(|k| CounterTake {
                            key: k,
                            amount: 10,
                            limit: i64::MAX / 2,
                            seed: Some(0),
                            expires_ms: i64::MAX / 2,
                        })
                        .collect();
                    let seen = counters.reserve(&takes).await.unwrap();
                    assert_eq!(seen.len(), 3);
                    let back: Vec<(String, i64)> =
                        order.iter().map(|k| (k.to_string(), -3)).collect();
                    counters.settle(&back).await.unwrap();
                    kept.fetch_add(7, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let values = counters.peek(&keys).await.unwrap();
    let kept = kept.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(values, [Some(kept), Some(kept), Some(kept)]);
    store.close().await;
}
