//! Refresh-token rotation, concurrency, the grace window, reuse detection and session
//! lifetimes, on both backends.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    rotation_spends_the_old_token,
    fifty_concurrent_refreshes_yield_one_successor,
    concurrent_cookie_refreshes_all_succeed,
    reuse_after_grace_revokes_the_family,
    sessions_end_after_idle_and_absolute_lifetimes,
);

async fn refresh(s: &TestServer, rt: &str) -> Reply {
    s.post("/auth/refresh?mode=token", json!({ "refresh_token": rt }))
        .await
}

async fn rotation_spends_the_old_token(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[session]\nrefresh_grace = \"1s\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let email = email("rotate");
    s.register(&email).await;
    let (at0, rt0) = s.login_tokens(&email, PASSWORD).await;
    let r1 = refresh(&s, &rt0).await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let (at1, rt1) = (r1.str("access_token"), r1.str("refresh_token"));
    assert_ne!(rt1, rt0);
    assert_ne!(at1, at0);
    assert_eq!(
        jwt_part(&at1, 1)["sid"],
        jwt_part(&at0, 1)["sid"],
        "same session"
    );
    assert_eq!(s.get_bearer("/auth/me", &at1).await.status, 200);
    let r2 = refresh(&s, &rt1).await;
    assert_eq!(r2.status, 200);
    // Only hashes are stored: no row holds a token in the clear.
    let stored = s
        .sandbox
        .query_strings("SELECT token_hash FROM refresh_tokens")
        .await;
    assert_eq!(stored.len(), 3);
    for t in [&rt0, &rt1, &r2.str("refresh_token")] {
        assert!(!stored.contains(t));
    }
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    );
    refresh(&s, "made-up-token")
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn fifty_concurrent_refreshes_yield_one_successor(b: Backend) {
    let s = Arc::new(TestServer::start(b).await);
    let email = email("race");
    s.register(&email).await;
    let (_, rt) = s.login_tokens(&email, PASSWORD).await;
    let replies = simultaneously(&s, 50, move |s| {
        let rt = rt.clone();
        async move { refresh(&s, &rt).await }
    })
    .await;
    let mut successors = HashSet::new();
    let mut sids = HashSet::new();
    for r in replies {
        assert_eq!(r.status, 200, "every racing refresh succeeds: {}", r.text);
        successors.insert(r.str("refresh_token"));
        sids.insert(
            jwt_part(&r.str("access_token"), 1)["sid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(successors.len(), 1, "exactly one successor");
    assert_eq!(sids.len(), 1);
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM refresh_tokens")
            .await,
        2,
        "one row per token: original + successor"
    );
    let next = successors.into_iter().next().unwrap();
    assert_eq!(refresh(&s, &next).await.status, 200, "the successor works");
}

async fn concurrent_cookie_refreshes_all_succeed(b: Backend) {
    let s = Arc::new(TestServer::start(b).await);
    let email = email("tabs");
    s.register(&email).await;
    let jar = s.login_cookies(&email).await;
    let (cookie, csrf) = (jar.header(), jar.value("tg_csrf"));
    let expected_csrf = csrf.clone();
    let replies = simultaneously(&s, 20, move |s| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            s.call(
                Method::POST,
                "/auth/refresh",
                None,
                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            )
            .await
        }
    })
    .await;
    let mut successors = HashSet::new();
    for r in replies {
        assert_eq!(r.status, 200, "{}", r.text);
        successors.insert(r.cookies.value("tg_rt"));
        assert_eq!(r.cookies.value("tg_csrf"), expected_csrf);
    }
    assert_eq!(successors.len(), 1);
}

async fn reuse_after_grace_revokes_the_family(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[session]\nrefresh_grace = \"1s\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let email = email("reuse");
    s.register(&email).await;
    let (_, rt0) = s.login_tokens(&email, PASSWORD).await;
    let r1 = refresh(&s, &rt0).await;
    let (at1, rt1) = (r1.str("access_token"), r1.str("refresh_token"));
    // Within the grace window the spent token yields the same successor.
    let again = refresh(&s, &rt0).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.str("refresh_token"), rt1);
    assert_eq!(s.get_bearer("/auth/me", &at1).await.status, 200);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    refresh(&s, &rt0)
        .await
        .assert_problem(401, "refresh_token_reused");
    // The whole family is gone: the live access token fails at once, the successor too.
    s.get_bearer("/auth/me", &at1)
        .await
        .assert_problem(401, "session_revoked");
    refresh(&s, &rt1)
        .await
        .assert_problem(401, "invalid_refresh_token");
    // And the reuse is recorded with the session.
    let reason = s
        .sandbox
        .query_string("SELECT revoked_reason FROM sessions")
        .await;
    assert_eq!(reason.as_deref(), Some("refresh_token_reused"));
    assert!(s.server_log().contains("refresh_token_reused"));
}

async fn sessions_end_after_idle_and_absolute_lifetimes(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            config: "[session]\nidle_ttl = \"3s\"\n".into(),
            env: vec![("TOLLGATE_REFRESH_TTL", "6s".into())],
        },
    )
    .await;
    let email = email("life");
    s.register(&email).await;
    // Idle: unused for longer than idle_ttl.
    let (_, idle_rt) = s.login_tokens(&email, PASSWORD).await;
    // Absolute: kept busy, still ends at refresh_ttl.
    let (_, mut busy_rt) = s.login_tokens(&email, PASSWORD).await;
    // Timestamps are whole seconds, so a window can be up to a second shorter than set:
    // refresh well inside it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let r = refresh(&s, &busy_rt).await;
        assert_eq!(r.status, 200, "{}", r.text);
        busy_rt = r.str("refresh_token");
    }
    refresh(&s, &idle_rt)
        .await
        .assert_problem(401, "invalid_refresh_token");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    refresh(&s, &busy_rt)
        .await
        .assert_problem(401, "invalid_refresh_token");
}
