//! Rate limits and brute-force throttling, over HTTP against the real binary: exact
//! allowances under concurrency (in one process, through Redis across two, and through
//! PostgreSQL alone across three), the 429
//! shape, trusted proxies, Redis outages, lockouts, their expiry, and `user unlock`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Options, PASSWORD, TestServer, email, simultaneously};
use reqwest::Method;
use serde_json::json;

/// A rule on `/healthz` (cheap to call) with a name unique to this run, so state left in
/// the shared Redis by earlier runs cannot interfere.
fn healthz_rule(limit: u32, extra: &str) -> (String, String) {
    let name = format!("t{}", uuid::Uuid::new_v4().simple());
    let config = format!(
        "[limits]\ndefault_rules = false\n{extra}\n\n[[limits.rule]]\nname = \"{name}\"\npaths = [\"/healthz\"]\nper = \"ip\"\nlimit = {limit}\nwindow = \"1h\"\n"
    );
    (name, config)
}

fn count(replies: &[common::Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

async fn healthz(s: Arc<TestServer>) -> common::Reply {
    s.call(Method::GET, "/healthz", None, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_get_exactly_the_allowance_in_one_process() {
    let (rule, config) = healthz_rule(7, "");
    let s = Arc::new(
        TestServer::start_with(
            Backend::Sqlite,
            Options {
                config,
                env: vec![],
            },
        )
        .await,
    );
    // The start-up health probe spent one; the rest is the allowance under test.
    let replies = simultaneously(&s, 40, healthz).await;
    assert_eq!(
        count(&replies, 200),
        6,
        "7 allowed in all, one used by start-up"
    );
    assert_eq!(count(&replies, 429), 34);
    let refused = replies.iter().find(|r| r.status == 429).unwrap();
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(
        refused.header("ratelimit-policy"),
        format!("\"{rule}\";q=7;w=3600")
    );
    assert!(
        refused
            .header("ratelimit")
            .starts_with(&format!("\"{rule}\";r=0;t="))
    );
    let ok = replies.iter().find(|r| r.status == 200).unwrap();
    assert!(
        ok.header("ratelimit")
            .starts_with(&format!("\"{rule}\";r="))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_one_allowance_between_two_processes() {
    let (_, config) = healthz_rule(9, "");
    let redis = ("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379".to_string());
    let a = Arc::new(
        TestServer::start_with(
            Backend::Postgres,
            Options {
                config,
                env: vec![redis.clone()],
            },
        )
        .await,
    );
    let b = Arc::new(a.sibling(vec![redis]).await);
    // Two start-up probes spent two of the nine.
    let (ra, rb) = tokio::join!(
        simultaneously(&a, 30, healthz),
        simultaneously(&b, 30, healthz)
    );
    let allowed = count(&ra, 200) + count(&rb, 200);
    assert_eq!(
        allowed,
        7,
        "exactly the shared allowance: {} + {}",
        count(&ra, 200),
        count(&rb, 200)
    );
    assert_eq!(count(&ra, 429) + count(&rb, 429), 53);
}

/// Without Redis, nodes on one PostgreSQL share the allowance through the database;
/// with `database_counters = false` each node counts alone (three allowances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shares_one_allowance_between_three_processes() {
    for (shared, allowed) in [(true, 9 - 3), (false, 3 * (9 - 1))] {
        let extra = format!("database_counters = {shared}");
        let (_, config) = healthz_rule(9, &extra);
        let a = Arc::new(
            TestServer::start_with(
                Backend::Postgres,
                Options {
                    config,
                    env: vec![],
                },
            )
            .await,
        );
        let backend = if shared { "database" } else { "local" };
        assert!(
            a.server_log()
                .contains(&format!("\"rate_limits\":\"{backend}\"")),
            "{}",
            a.server_log()
        );
        let b = Arc::new(a.sibling(vec![]).await);
        let c = Arc::new(a.sibling(vec![]).await);
        // Three start-up probes spent three of the nine (one of each node's nine).
        let (ra, rb, rc) = tokio::join!(
            simultaneously(&a, 30, healthz),
            simultaneously(&b, 30, healthz),
            simultaneously(&c, 30, healthz)
        );
        let ok = count(&ra, 200) + count(&rb, 200) + count(&rc, 200);
        assert_eq!(ok, allowed, "database_counters = {shared}");
        assert_eq!(
            count(&ra, 429) + count(&rb, 429) + count(&rc, 429),
            90 - allowed
        );
    }
}

/// A NUL in a typed address reaches the per-account limits' keys, which PostgreSQL's text
/// refuses: it must be an ordinary refused sign-in, not a 503 with the database blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_typed_address_is_an_ordinary_refusal() {
    let s = TestServer::start_with(
        Backend::Postgres,
        Options {
            config: "[limits]\n".into(),
            env: vec![],
        },
    )
    .await;
    for email in ["\u{0}nul@example.com", "nul@example.com\u{0}"] {
        let r = s
            .post(
                "/auth/login?mode=token",
                json!({ "email": email, "password": "wrong password" }),
            )
            .await;
        assert!(
            r.status == 400 || r.status == 401,
            "{} {}",
            r.status,
            r.text
        );
    }
    assert!(!s.server_log().contains("storage unavailable"));
    assert!(!s.server_log().contains("failed in the database"));
}

/// Sixty guesses at one account at the same moment, each from its own address, over three
/// nodes. The account locks after 20 failures; before checks of an account ran one at a
/// time per node, all sixty passwords were checked (the lockout is read before a check
/// and the failure written after it). Now at most one guess per node gets past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_guesses_from_many_addresses_stop_at_the_account_limit() {
    let config =
        "[limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[roles.user]\nscopes = [\"profile\"]\n";
    let a = Arc::new(
        TestServer::start_with(
            Backend::Postgres,
            Options {
                config: config.into(),
                env: vec![],
            },
        )
        .await,
    );
    let b = Arc::new(a.sibling(vec![]).await);
    let c = Arc::new(a.sibling(vec![]).await);
    let account = email("guessed");
    a.register(&account).await;
    let nodes = [a.clone(), b.clone(), c.clone()];
    let barrier = Arc::new(tokio::sync::Barrier::new(60));
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (node, barrier, account) = (nodes[i % 3].clone(), barrier.clone(), account.clone());
            tokio::spawn(async move {
                assert_eq!(
                    node.call(Method::GET, "/readyz", None, &[]).await.status,
                    200
                );
                barrier.wait().await;
                let from = format!("10.9.{}.{}", i / 200, i % 200 + 1);
                node.call(
                    Method::POST,
                    "/auth/login?mode=token",
                    Some(json!({ "email": account, "password": "a wrong guess" })),
                    &[("x-forwarded-for", &from)],
                )
                .await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let checked = count(&replies, 401);
    let refused = count(&replies, 429);
    assert_eq!(checked + refused, 60);
    assert!(
        checked <= 20 + 2,
        "{checked} guesses checked against an account limit of 20 on 3 nodes"
    );
    assert!(checked >= 20, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_falls_back_to_local_limits_or_fails_closed() {
    let dead = ("TOLLGATE_REDIS_URL", "redis://127.0.0.1:1".to_string());
    let (_, config) = healthz_rule(5, "");
    let s = Arc::new(
        TestServer::start_with(
            Backend::Sqlite,
            Options {
                config,
                env: vec![dead.clone()],
            },
        )
        .await,
    );
    let replies = simultaneously(&s, 20, healthz).await;
    assert_eq!(count(&replies, 200), 4, "local limits still hold");
    assert!(s.server_log().contains("Redis unavailable for rate limits"));

    let config = "[limits]\ndefault_rules = false\non_redis_failure = \"deny\"\n\n[[limits.rule]]\nname = \"me\"\npaths = [\"/auth/me\"]\nper = \"ip\"\nlimit = 5\nwindow = \"1h\"\n".to_string();
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config,
            env: vec![dead],
        },
    )
    .await;
    let r = s.call(Method::GET, "/auth/me", None, &[]).await;
    r.assert_problem(503, "rate_limiter_unavailable");
    // Paths no rule covers are unaffected.
    assert_eq!(s.call(Method::GET, "/readyz", None, &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let (_, config) = healthz_rule(3, "trusted_proxies = [\"127.0.0.1\"]");
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let from = |ip: &'static str| {
        let s = &s;
        async move {
            s.call(Method::GET, "/healthz", None, &[("x-forwarded-for", ip)])
                .await
                .status
        }
    };
    for _ in 0..3 {
        assert_eq!(from("198.51.100.1").await, 200);
    }
    assert_eq!(from("198.51.100.1").await, 429);
    assert_eq!(
        from("198.51.100.2").await,
        200,
        "another client has its own allowance"
    );

    let (_, config) = healthz_rule(3, "");
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forged = format!("203.0.113.{i}");
        statuses.push(
            s.call(
                Method::GET,
                "/healthz",
                None,
                &[("x-forwarded-for", &forged)],
            )
            .await
            .status,
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "an untrusted peer's header is ignored"
    );
}

/// Brute-force settings small enough to test: 3 failures lock the pair for 2 s.
fn sign_in_config(extra: &str) -> String {
    format!(
        "[limits]\ndefault_rules = false\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}\n[limits.sign_in]\nmax_failures = 3\nip_max_failures = 50\naccount_max_failures = 10\nlockout = \"2s\"\nmax_lockout = \"4s\"\n\n[roles.user]\nscopes = []\n"
    )
}

async fn login_from(s: &TestServer, ip: &str, email: &str, password: &str) -> common::Reply {
    s.call(
        Method::POST,
        "/auth/login?mode=token",
        Some(json!({ "email": email, "password": password })),
        &[("x-forwarded-for", ip)],
    )
    .await
}

async fn lockout_expires_and_success_resets(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: sign_in_config(""),
            env: vec![],
        },
    )
    .await;
    let user = email("lock");
    s.register(&user).await;
    let ip = "192.0.2.10";
    // Two failures, then a success: the counter starts over.
    for _ in 0..2 {
        login_from(&s, ip, &user, "wrong password 1")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    assert_eq!(login_from(&s, ip, &user, PASSWORD).await.status, 200);
    for _ in 0..3 {
        login_from(&s, ip, &user, "wrong password 2")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // Locked: even the right password is refused, without being checked.
    let locked = login_from(&s, ip, &user, PASSWORD).await;
    locked.assert_problem(429, "too_many_attempts");
    assert!(locked.header("retry-after").parse::<u64>().unwrap() >= 1);
    // Unknown accounts lock the same way (no enumeration by lockout).
    let ghost = email("ghost");
    for _ in 0..3 {
        login_from(&s, ip, &ghost, "wrong password 3")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    login_from(&s, ip, &ghost, "wrong password 3")
        .await
        .assert_problem(429, "too_many_attempts");
    // The lockout expires.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(login_from(&s, ip, &user, PASSWORD).await.status, 200);
    let lockouts = s
        .sandbox
        .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'auth.lockout'")
        .await;
    assert!(lockouts >= 2, "lockouts are audited");
}

async fn one_address_cannot_lock_the_owner_out(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: sign_in_config(""),
            env: vec![],
        },
    )
    .await;
    let victim = email("victim");
    s.register(&victim).await;
    // The attacker keeps trying for longer than the account threshold (10) would allow.
    for _ in 0..15 {
        let r = login_from(&s, "203.0.113.66", &victim, "guess guess guess").await;
        assert!(r.status == 401 || r.status == 429, "{}", r.status);
    }
    login_from(&s, "203.0.113.66", &victim, PASSWORD)
        .await
        .assert_problem(429, "too_many_attempts");
    // The owner, elsewhere, is not locked out: one address contributes at most 3 failures
    // to the account's count.
    assert_eq!(
        login_from(&s, "198.51.100.20", &victim, PASSWORD)
            .await
            .status,
        200
    );
}

async fn cli_unlock_lifts_a_lockout(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: sign_in_config(""),
            env: vec![],
        },
    )
    .await;
    let user = email("unlock");
    s.register(&user).await;
    for _ in 0..3 {
        login_from(&s, "192.0.2.33", &user, "nope nope nope").await;
    }
    login_from(&s, "192.0.2.33", &user, PASSWORD)
        .await
        .assert_problem(429, "too_many_attempts");
    let out = s.cli(&["user", "unlock", &user], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        login_from(&s, "192.0.2.33", &user, PASSWORD).await.status,
        200
    );
    assert_eq!(
        s.sandbox
            .query_i64(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'user.unlocked' AND actor = 'cli'"
            )
            .await,
        1
    );
}

on_both_backends!(
    lockout_expires_and_success_resets,
    one_address_cannot_lock_the_owner_out,
    cli_unlock_lifts_a_lockout,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rules_limit_sign_in_per_account() {
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config: "[limits]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[roles.user]\nscopes = []\n"
                .into(),
            env: vec![],
        },
    )
    .await;
    let target = email("target");
    // login-account allows a burst of 5 per address typed, whatever the password.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            s.post(
                "/auth/login",
                json!({ "email": target, "password": "whatever it is" }),
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[5], 429);
    let r = s
        .post(
            "/auth/login",
            json!({ "email": target, "password": "whatever it is" }),
        )
        .await;
    r.assert_problem(429, "rate_limited");
    // Counted per account *and* client: the same account from elsewhere is not starved.
    let elsewhere = s
        .call(
            Method::POST,
            "/auth/login",
            Some(json!({ "email": target, "password": "whatever it is" })),
            &[("x-forwarded-for", "198.51.100.99")],
        )
        .await;
    elsewhere.assert_problem(401, "invalid_credentials");
    assert!(
        r.header("ratelimit-policy").contains("\"login-account\""),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_see_the_normalised_path_the_gateway_forwards() {
    let upstream = common::upstream::Upstream::fixed(|_| "ok".to_string()).await;
    let config = format!(
        "[limits]\ndefault_rules = false\n\n[[limits.rule]]\nname = \"app\"\npaths = [\"/app/*\"]\nper = \"route\"\nlimit = 2\nwindow = \"1h\"\n\n[[route]]\npath = \"/app/*\"\nupstream = \"{}\"\nauth = \"public\"\n\n[roles.user]\nscopes = []\n",
        upstream.base
    );
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config,
            env: vec![],
        },
    )
    .await;
    let mut statuses = Vec::new();
    for path in ["/app/x", "//app/x", "/./app/x", "/%61pp/x", "/z/../app/x"] {
        statuses.push(common::upstream::raw_get(s.port, path, "").await.0);
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 429, 429],
        "spellings of one path share its limit"
    );
}
