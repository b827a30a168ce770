//! The OpenID Connect provider's token endpoints, per second, on this machine.
//!
//! Baseline: `GET /healthz` round trips with the same clients against the same server
//! (the cost of HTTP alone). Measured, with 8 concurrent clients and keep-alive:
//! - client-credentials grants (`POST /oauth2/token`, Basic authentication, a signed
//!   token each);
//! - introspections (`POST /oauth2/introspect`) of access tokens from a pool of 1000;
//! - refresh grants (`POST /oauth2/token`, `grant_type=refresh_token`, scope `openid
//!   email`), each client walking its own chain: a spend-and-issue transaction and a new
//!   ID token each, for a client with RS256 ID tokens (the default) and one with EdDSA;
//!   on SQLite and PostgreSQL.
//!
//! Run: `cargo bench --bench oidc` (PostgreSQL as for `scripts/test`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::oidc::{Rp, add_client, authorized_code, exchange, form_call};
use common::{Backend, Options, Reply, TestServer};
use reqwest::Method;

const SECONDS: u64 = 6;
const CLIENTS: usize = 8;
const POOL: usize = 1000;

/// Requests per second of `call(client index, iteration)` from [`CLIENTS`] tasks.
async fn rate<F, Fut>(call: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Reply> + Send,
{
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (count, call) = (count.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let r = call(i, n).await;
                assert_eq!(r.status, 200, "{}", r.text);
                n += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn healthz(s: &Arc<TestServer>) -> f64 {
    let s = s.clone();
    rate(move |_, _| {
        let s = s.clone();
        async move { s.call(Method::GET, "/healthz", None, &[]).await }
    })
    .await
}

fn row(what: &str, per_s: f64, baseline: f64) {
    println!(
        "  {what:<44} {per_s:>9.0}/s   ratio to healthz {:.3}",
        per_s / baseline
    );
}

#[tokio::main]
async fn main() {
    println!("oidc bench ({CLIENTS} clients, {SECONDS}s per phase, keep-alive)");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let opts = Options {
            config: "[limits]\nenabled = false\n".into(),
            env: vec![("TOLLGATE_LOG", "warn".into())],
        };
        let s = Arc::new(TestServer::start_with(backend, opts).await);
        let svc = Arc::new(add_client(
            &s,
            "Bench service",
            None,
            &["--scope", "reports:read"],
        ));
        let redirect = format!("http://127.0.0.1:{}/cb", s.port + 1);
        let web = Arc::new(add_client(
            &s,
            "Bench web",
            Some(&redirect),
            &["--skip-consent"],
        ));
        let web_ed = Arc::new(add_client(
            &s,
            "Bench web EdDSA",
            Some(&redirect),
            &["--skip-consent", "--id-token-alg", "EdDSA"],
        ));
        let user = common::email("bench");
        s.register(&user).await;

        // Chains of refresh tokens, one per bench client, from real code exchanges.
        let mut browser = Browser::new();
        let (mut chains, mut chains_ed) = (Vec::new(), Vec::new());
        for _ in 0..CLIENTS {
            for (rp, out) in [(&web, &mut chains), (&web_ed, &mut chains_ed)] {
                let (code, verifier) = authorized_code(&mut browser, &s, rp, &user, &[]).await;
                let t = exchange(&s, rp, &code, Some(&verifier)).await;
                out.push(t.str("refresh_token"));
            }
        }
        // Access tokens to introspect.
        let mut pool = Vec::with_capacity(POOL);
        for _ in 0..POOL {
            let r = form_call(
                &s,
                "/oauth2/token",
                &svc,
                &[("grant_type", "client_credentials")],
            )
            .await;
            pool.push(r.str("access_token"));
        }
        let pool = Arc::new(pool);

        let baseline = healthz(&s).await;
        let grants = {
            let (s, svc) = (s.clone(), svc.clone());
            rate(move |_, _| {
                let (s, svc) = (s.clone(), svc.clone());
                async move {
                    form_call(
                        &s,
                        "/oauth2/token",
                        &svc,
                        &[("grant_type", "client_credentials")],
                    )
                    .await
                }
            })
            .await
        };
        let introspections = {
            let (s, svc, pool) = (s.clone(), svc.clone(), pool.clone());
            rate(move |i, n| {
                let (s, svc, pool) = (s.clone(), svc.clone(), pool.clone());
                async move {
                    let token = &pool[(i * 131 + n as usize) % POOL];
                    form_call(&s, "/oauth2/introspect", &svc, &[("token", token)]).await
                }
            })
            .await
        };
        let refreshes = refresh_rate(&s, &web, chains).await;
        let refreshes_ed = refresh_rate(&s, &web_ed, chains_ed).await;
        let baseline_after = healthz(&s).await;
        let baseline = (baseline + baseline_after) / 2.0;
        println!("{backend:?}:");
        row(
            "GET /healthz (baseline, mean of before/after)",
            baseline,
            baseline,
        );
        row("client_credentials grants", grants, baseline);
        row(
            "introspections (pool of 1000 access tokens)",
            introspections,
            baseline,
        );
        row(
            "refresh_token grants, RS256 ID token (default)",
            refreshes,
            baseline,
        );
        row(
            "refresh_token grants, EdDSA ID token",
            refreshes_ed,
            baseline,
        );
    }
}

/// Refresh grants per second, each bench client walking its own chain of `web`'s tokens.
async fn refresh_rate(s: &Arc<TestServer>, web: &Arc<Rp>, chains: Vec<String>) -> f64 {
    let chains: Arc<Vec<tokio::sync::Mutex<String>>> =
        Arc::new(chains.into_iter().map(tokio::sync::Mutex::new).collect());
    let (s, web) = (s.clone(), web.clone());
    rate(move |i, _| {
        let (s, web, chains) = (s.clone(), web.clone(), chains.clone());
        async move {
            let mut token = chains[i].lock().await;
            let fields = [
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ];
            let r = form_call(&s, "/oauth2/token", &web, &fields).await;
            if r.status == 200 {
                *token = r.str("refresh_token");
            }
            r
        }
    })
    .await
}
