//! Access-token verification per second, in-process, on one core.
//!
//! Baseline: a raw Ed25519 signature verification (aws-lc-rs) of the same token. Measured:
//! the full `AccessTokens::verify` (cache lookup, expiry, revocation set) over a working set
//! of distinct tokens, and the uncached path (header, kid, EdDSA, claims). Goal: ≥ 50,000/s
//! on one core; a revoked session must still fail at once (checked here too).
//! Run: `cargo bench --bench verify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use tollgate::{AccessTokens, Error, KeyRing, RevocationSet, TokenSubject};

const TOKENS: usize = 1000;
const PHASE: Duration = Duration::from_secs(3);

fn per_sec(mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < PHASE {
        for _ in 0..1000 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Seconds since the Unix epoch, as revocations are stamped.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A first-party access token for session `sid`, as a sign-in would mint it.
fn mint(tokens: &AccessTokens, sid: &str) -> String {
    let scopes = ["profile".to_string(), "docs:read".to_string()];
    let roles = ["user".to_string()];
    let amr = ["pwd".to_string()];
    let subject = TokenSubject {
        user_id: "0190a0b0-0000-7000-8000-000000000000",
        email: "bench@example.com",
        email_verified: true,
        session_id: sid,
        client_id: "tollgate",
        scopes: &scopes,
        roles: &roles,
        auth_time: 0,
        amr: &amr,
        service: false,
        audience: None,
        act: None,
        not_after: None,
    };
    tokens.mint(&subject).unwrap().0
}

fn main() {
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", uuid::Uuid::new_v4()));
    let ttl = Duration::from_secs(900);
    let keys = Arc::new(KeyRing::open(&dir, ttl).unwrap());
    let revoked = Arc::new(RevocationSet::new(ttl));
    let signer = |family| {
        AccessTokens::new(
            keys.clone(),
            revoked.clone(),
            "http://127.0.0.1:8080",
            ttl,
            family,
        )
    };
    let tokens = signer(tollgate::KeyFamily::Ed25519);
    let minted: Vec<String> = (0..TOKENS)
        .map(|i| mint(&tokens, &format!("session-{i}")))
        .collect();
    for _ in 0..5000 {
        revoked.revoke(&uuid::Uuid::new_v4().to_string(), unix_now());
    }

    let set = keys.current();
    let public = B64.decode(set.active.jwk["x"].as_str().unwrap()).unwrap();
    let prepared: Vec<(Vec<u8>, Vec<u8>)> = minted
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (input.as_bytes().to_vec(), B64.decode(sig).unwrap())
        })
        .collect();
    let key = UnparsedPublicKey::new(&ED25519, &public);
    let raw = per_sec(|i| {
        let (m, s) = &prepared[i % TOKENS];
        key.verify(m, s).unwrap();
    });
    let uncached = per_sec(|i| {
        tokens.verify_uncached(&minted[i % TOKENS]).unwrap();
    });
    for t in &minted {
        tokens.verify(t).unwrap();
    }
    let cached = per_sec(|i| {
        tokens.verify(&minted[i % TOKENS]).unwrap();
    });

    // `[tokens] access_token_alg`: the uncached path for the other two families, against
    // the same baseline (the cached path does not depend on the algorithm).
    let mut other_algs = Vec::new();
    for (name, family) in [
        ("ES256", tollgate::KeyFamily::P256),
        ("RS256", tollgate::KeyFamily::Rsa),
    ] {
        let token = mint(&signer(family), "session-alg");
        let rate = per_sec(|_| {
            tokens.verify_uncached(&token).unwrap();
        });
        other_algs.push((name, rate));
    }

    // Revocation still bites on a cached token.
    revoked.revoke("session-7", unix_now());
    assert!(matches!(
        tokens.verify(&minted[7]),
        Err(Error::SessionRevoked)
    ));

    println!(
        "verify bench (one thread, {TOKENS} distinct tokens, 5000 revoked sessions in the set)"
    );
    println!("  raw Ed25519 signature verify (baseline): {raw:>10.0}/s");
    println!(
        "  full uncached verification:              {uncached:>10.0}/s  ratio {:.2}",
        uncached / raw
    );
    println!(
        "  verify with cache + revocation check:    {cached:>10.0}/s  ratio {:.2} (goal >= 50000/s)",
        cached / raw
    );
    for (name, rate) in other_algs {
        println!(
            "  full uncached verification, {name}:       {rate:>10.0}/s  ratio {:.2}",
            rate / raw
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
