//! Login throughput against raw argon2id with the same parameters, same machine, same run.
//!
//! Baselines: argon2id verifications per second on as many threads as cores, in this
//! process, (a) through the crate's `verify_password` (allocating its memory per call) and
//! (b) with per-thread reused memory (`hash_password_into_with_memory`, what the server's
//! pooled workspaces do): (b) is the stricter baseline. Measured: `POST
//! /auth/login?mode=token` per second against a release `tollgate serve` (SQLite) from 8
//! concurrent clients. Goal: ratio ≥ 0.9, i.e. the server adds almost nothing to the hash.
//! Then the same with a second factor: `{"email","password","totp"}` in one request, each
//! sign-in a different account with an authenticator app (a code works once per step), as
//! a ratio to the password-only sign-ins of the same run. Goal ≥ 0.95 (argon2id dominates;
//! the code costs an unseal, an HMAC and one conditional UPDATE).
//! Run: `cargo bench --bench login`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
};
use common::{Backend, Options, PASSWORD, TestServer};
use serde_json::json;

const SECONDS: u64 = 10;
const CLIENTS: usize = 8;

fn raw_argon2_per_sec(threads: usize, reuse_memory: bool) -> f64 {
    let params = Params::new(19_456, 2, 1, None).unwrap();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count, phc) = (stop.clone(), count.clone(), phc.clone());
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).unwrap();
                let params = Params::try_from(&parsed).unwrap();
                let salt = parsed.salt.unwrap();
                let mut blocks = vec![Block::new(); params.block_count()];
                let mut out = [0u8; 32];
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                while !stop.load(Ordering::Relaxed) {
                    if reuse_memory {
                        argon
                            .hash_password_into_with_memory(
                                PASSWORD.as_bytes(),
                                salt.as_ref(),
                                &mut out,
                                &mut blocks[..],
                            )
                            .unwrap();
                    } else {
                        Argon2::default()
                            .verify_password(PASSWORD.as_bytes(), &parsed)
                            .unwrap();
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(SECONDS));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// `accounts` accounts with an authenticator app: `(email, base32 secret)`.
async fn enrolled_accounts(server: &Arc<TestServer>, accounts: usize) -> Vec<(String, String)> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (server, next) = (server.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < accounts as u64 {
                let email = common::email("totp");
                server.register(&email).await;
                let (access, _) = server.login_tokens(&email, PASSWORD).await;
                let auth = format!("Bearer {access}");
                let r = server
                    .call(
                        reqwest::Method::POST,
                        "/auth/mfa/totp",
                        Some(json!({})),
                        &[("authorization", &auth)],
                    )
                    .await;
                let secret = r.str("secret");
                let r = server
                    .call(
                        reqwest::Method::POST,
                        "/auth/mfa/totp/confirm",
                        Some(json!({ "code": common::totp_code(&secret, 0) })),
                        &[("authorization", &auth)],
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
                out.push((email, secret));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Sign-ins per second for `SECONDS` from `CLIENTS` clients; `body(n)` is the n-th
/// request's body (`n` counts across the calls that share `next`).
async fn logins_per_sec(
    server: &Arc<TestServer>,
    next: &Arc<AtomicU64>,
    body: Arc<dyn Fn(usize) -> serde_json::Value + Send + Sync>,
) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (server, count, next, body) =
            (server.clone(), count.clone(), next.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let r = server.post("/auth/login?mode=token", body(n)).await;
                assert_eq!(r.status, 200, "{}", r.text);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn raw(cores: usize, reuse_memory: bool) -> f64 {
    tokio::task::spawn_blocking(move || raw_argon2_per_sec(cores, reuse_memory))
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let config = "[limits]\nenabled = false\n".to_string();
    let server = Arc::new(
        TestServer::start_with(
            Backend::Sqlite,
            Options {
                config,
                env: vec![("TOLLGATE_LOG", "warn".into())],
            },
        )
        .await,
    );
    let email = common::email("bench");
    server.register(&email).await;

    let alloc_before = raw(cores, false).await;
    let reuse_before = raw(cores, true).await;

    // Password only and password + TOTP alternate (p, t, p, t) so drift hits both alike.
    let plain: Arc<dyn Fn(usize) -> serde_json::Value + Send + Sync> =
        Arc::new(move |_| json!({ "email": email, "password": PASSWORD }));
    let unused = Arc::new(AtomicU64::new(0));
    let plain1 = logins_per_sec(&server, &unused, plain.clone()).await;
    // A code works once per step: every TOTP sign-in is another account.
    let accounts =
        Arc::new(enrolled_accounts(&server, (plain1 * SECONDS as f64 * 2.6) as usize + 200).await);
    let totp: Arc<dyn Fn(usize) -> serde_json::Value + Send + Sync> = Arc::new(move |n| {
        let (email, secret) = accounts.get(n).expect("enough enrolled accounts");
        json!({ "email": email, "password": PASSWORD, "totp": common::totp_code(secret, 1) })
    });
    let next = Arc::new(AtomicU64::new(0));
    let totp1 = logins_per_sec(&server, &next, totp.clone()).await;
    let plain2 = logins_per_sec(&server, &unused, plain).await;
    let totp2 = logins_per_sec(&server, &next, totp).await;
    let logins = (plain1 + plain2) / 2.0;
    let with_totp = (totp1 + totp2) / 2.0;

    let reuse_after = raw(cores, true).await;
    let alloc_after = raw(cores, false).await;
    let alloc = (alloc_before + alloc_after) / 2.0;
    let reuse = (reuse_before + reuse_after) / 2.0;
    println!("login bench ({cores} cores, argon2id m=19456 KiB t=2 p=1, {SECONDS}s per phase)");
    println!(
        "  raw argon2id, crate verify_password: {alloc:6.1}/s (before {alloc_before:.1}, after {alloc_after:.1})"
    );
    println!(
        "  raw argon2id, reused memory:         {reuse:6.1}/s (before {reuse_before:.1}, after {reuse_after:.1})"
    );
    println!(
        "  HTTP logins, {CLIENTS} clients:             {logins:6.1}/s ({plain1:.1}, {plain2:.1})"
    );
    println!(
        "  HTTP logins with TOTP, {CLIENTS} clients:   {with_totp:6.1}/s ({totp1:.1}, {totp2:.1})"
    );
    println!(
        "  ratio with TOTP / without:           {:.3} (goal >= 0.95)",
        with_totp / logins
    );
    println!(
        "  ratio login / crate verify:          {:.3}",
        logins / alloc
    );
    println!(
        "  ratio login / reused-memory hash:    {:.3} (goal >= 0.9)",
        logins / reuse
    );
}
