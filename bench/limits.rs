//! Cost of one rate-limit check, in this process, through Redis and through PostgreSQL.
//!
//! Local: `Limiter::check` with one matching rule over 10,000 distinct keys (the sharded
//! map, the rule scan, the key string), against the bare GCRA arithmetic
//! (`gcra::check`) on the same inputs. Redis: the same `Limiter::check` with
//! `TOLLGATE_REDIS_URL` semantics (one Lua script per check), one at a time and 32 in
//! flight, against a bare `PING` round trip on the same kind of connection. PostgreSQL
//! (no Redis: the database's shared counters, one atomic upsert per check), 1 and 32 in
//! flight, against a bare `SELECT 1` on a pool of the same size, in a database the bench
//! creates and drops.
//! Run: `cargo bench --bench limits` (needs the local Redis and PostgreSQL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::{
    Limiter, LimitsConfig, Per, RedisFailure, RuleSpec, SignInPolicy, Store, gcra, merge_rules,
};

const PHASE: Duration = Duration::from_secs(3);
const KEYS: usize = 10_000;

fn config() -> LimitsConfig {
    let rule = RuleSpec {
        name: format!("bench{}", uuid::Uuid::new_v4().simple()),
        paths: vec!["/api/*".into()],
        methods: vec![],
        per: Per::Ip,
        limit: 1_000_000_000,
        window: "1s".into(),
        burst: Some(1_000_000_000),
    };
    LimitsConfig {
        enabled: true,
        trusted_proxies: vec![],
        on_redis_failure: RedisFailure::Deny,
        redis_timeout: Duration::from_secs(1),
        database_counters: true,
        rules: merge_rules(true, vec![rule]).unwrap(),
        sign_in: SignInPolicy::default(),
    }
}

fn per_sec(mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < PHASE {
        for _ in 0..1000 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn per_sec_async<F, Fut>(concurrency: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while start.elapsed() < PHASE {
                    f(t * 1_000_000 + n).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// `Limiter::check` calls per second, `inflight` at a time, over the distinct keys.
async fn checks_per_sec(limiter: &Arc<Limiter>, keys: &Arc<Vec<String>>, inflight: usize) -> f64 {
    let (l, k) = (limiter.clone(), keys.clone());
    per_sec_async(inflight, move |n| {
        let (l, k) = (l.clone(), k.clone());
        async move {
            assert!(
                l.check(Per::Ip, "GET", "/api/x", &k[n % KEYS])
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    })
    .await
}

fn line(name: &str, rate: f64, base: f64) {
    println!(
        "{name:<44} {rate:>12.0}/s  {:>8.2} µs/check  ratio to baseline {:.2}",
        1e6 / rate,
        rate / base
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let limiter = Limiter::new(config(), None, None).unwrap();
    let quota = gcra::Quota {
        limit: 1_000_000_000,
        window_ms: 1000,
        burst: 1_000_000_000,
    };
    let mut tats = vec![None; KEYS];
    let raw = per_sec(|n| {
        let i = n % KEYS;
        let (_, t) = gcra::check(tats[i], n as i64, &quota);
        tats[i] = t;
    });
    let local = per_sec(|n| {
        let fut = limiter.check(Per::Ip, "GET", "/api/x", &keys[n % KEYS]);
        // No Redis: the future completes on its first poll.
        let out = futures_util::FutureExt::now_or_never(fut).expect("local checks do not wait");
        assert!(out.unwrap().is_some());
    });
    println!("one thread; {KEYS} distinct keys; default rules + 1 matching rule");
    line("baseline: bare GCRA arithmetic", raw, raw);
    line("local Limiter::check", local, raw);

    let url = std::env::var("TOLLGATE_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let redis_limiter = Arc::new(Limiter::new(config(), Some(&url), None).unwrap());
    let keys = Arc::new(keys);
    for inflight in [1usize, 32] {
        let c = conn.clone();
        let ping = per_sec_async(inflight, move |_| {
            let mut c = c.clone();
            async move {
                let _: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
            }
        })
        .await;
        let checks = checks_per_sec(&redis_limiter, &keys, inflight).await;
        println!("Redis, {inflight} in flight");
        line("  baseline: PING round trip", ping, ping);
        line("  Limiter::check through Redis (Lua GCRA)", checks, ping);
    }

    let admin = "postgres://postgres@127.0.0.1:5432/test";
    let db = format!(
        "bench_limits_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let admin_pool = sqlx::PgPool::connect(admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin_pool)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let db_limiter = Arc::new(Limiter::new(config(), None, store.shared_counters()).unwrap());
    assert_eq!(db_limiter.backend(), "database");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .unwrap();
    for inflight in [1usize, 32] {
        let p = pool.clone();
        let select = per_sec_async(inflight, move |_| {
            let p = p.clone();
            async move {
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&p).await.unwrap();
            }
        })
        .await;
        let checks = checks_per_sec(&db_limiter, &keys, inflight).await;
        println!("PostgreSQL, {inflight} in flight");
        line("  baseline: SELECT 1 round trip", select, select);
        line("  Limiter::check through PostgreSQL", checks, select);
    }
    pool.close().await;
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {db}")))
        .execute(&admin_pool)
        .await
        .unwrap();
}
