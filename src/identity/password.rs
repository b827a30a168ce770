//! argon2id password hashing, off the async runtime and bounded.
//!
//! Hashing is deliberately expensive (tens of milliseconds, ~19 MiB each), so every hash or
//! verification runs on tokio's blocking pool behind a semaphore sized to the cores: a login
//! flood queues here instead of starving the runtime's workers or exhausting memory.
//! Hashes are PHC strings, so their parameters travel with them and a login can tell when
//! they are weaker than the configured ones and rehash.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;
use crate::error::{Error, Result};

pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified when the email is unknown so that
    /// "no such user" costs the same time as "wrong password".
    dummy_hash: String,
}

/// Outcome of a verification.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but hashed with weaker parameters than configured: store a new hash.
    YesRehash,
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> Result<PasswordHasher> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let dummy_hash = hash_blocking(&params, crate::secret::generate().as_bytes())?;
        Ok(PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(cfg.max_concurrent)),
            dummy_hash,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// A new PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        let params = self.params.clone();
        self.run(move || hash_blocking(&params, password.as_bytes()))
            .await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no stored
    /// hash (unknown user, or an account without a password), which always fails.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<Verified> {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (self.dummy_hash.clone(), false),
        };
        let params = self.params.clone();
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified::No;
            };
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            match (ok && real, weaker_than(&parsed, &params)) {
                (false, _) => Verified::No,
                (true, true) => Verified::YesRehash,
                (true, false) => Verified::Yes,
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("password hasher closed".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))
    }
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// The stored hash is not argon2id or uses any cost below the configured one.
fn weaker_than(stored: &PasswordHash, wanted: &Params) -> bool {
    if stored.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(stored) {
        Ok(p) => {
            p.m_cost() < wanted.m_cost()
                || p.t_cost() < wanted.t_cost()
                || p.p_cost() < wanted.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(m: u32, t: u32) -> PasswordConfig {
        PasswordConfig {
            memory_kib: m,
            iterations: t,
            parallelism: 1,
            max_concurrent: 2,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let h = PasswordHasher::new(&cheap(64, 1)).unwrap();
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.verify("correct horse".into(), Some(phc.clone()))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            h.verify("wrong horse".into(), Some(phc)).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn missing_or_garbage_hash_never_verifies() {
        let h = PasswordHasher::new(&cheap(64, 1)).unwrap();
        assert_eq!(
            h.verify("anything".into(), None).await.unwrap(),
            Verified::No
        );
        assert_eq!(
            h.verify("anything".into(), Some("not a phc".into()))
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn raised_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(&cheap(64, 1)).unwrap();
        let phc = old.hash("pw-pw-pw-pw".into()).await.unwrap();
        let new = PasswordHasher::new(&cheap(128, 2)).unwrap();
        assert_eq!(
            new.verify("pw-pw-pw-pw".into(), Some(phc)).await.unwrap(),
            Verified::YesRehash
        );
    }
}
