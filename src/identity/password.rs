//! argon2id password hashing, off the async runtime and bounded.
//!
//! Hashing is deliberately expensive (tens of milliseconds, ~19 MiB each), so it never runs
//! on the async workers: `password.max_concurrent` dedicated threads (default: one per
//! core) do every hash and verification, fed through a channel. Admission is a tokio
//! semaphore with two permits per thread (one job running, one ready), so a login flood
//! queues in arrival order in async land instead of starving the runtime or memory. A
//! permit travels with its job and is released when the hash is done, not when the caller
//! gives up: clients that disconnect cannot stack up work behind the queue's bound.
//!
//! Each thread owns one argon2 workspace for its lifetime. Compared with tokio's blocking
//! pool and the crate's `verify_password` (which allocates and faults in a fresh `m_cost`
//! buffer per call and hops between pool threads), this measured about 10% more sign-ins
//! per second on the same cores (bench/README.md). The computation itself is the crate's
//! (`hash_password_into_with_memory`); the output comparison is constant-time.
//!
//! Hashes are PHC strings, so their parameters travel with them and a login can tell when
//! they are weaker than the configured ones and rehash.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use serde::Deserialize;

use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};

/// argon2id cost parameters, how many hashes may run at once, and the password policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent: usize,
    /// Refuse passwords on the shipped list of common passwords.
    pub refuse_common: bool,
    /// A k-anonymity range API (`…/range/` + 5 hex digits of the SHA-1), when configured.
    pub breach_api: Option<String>,
    pub breach_timeout: Duration,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 1,
            refuse_common: true,
            breach_api: None,
            breach_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSection {
    pub memory_kib: Option<u32>,
    pub iterations: Option<u32>,
    pub parallelism: Option<u32>,
    pub max_concurrent: Option<usize>,
    pub refuse_common: Option<bool>,
    pub breach_api: Option<String>,
    pub breach_timeout: Option<DurationValue>,
}

/// `[password]`, resolved: argon2id costs (OWASP's m=19 MiB, t=2, p=1 by default), as many
/// hashes at once as cores, the common-password list on.
pub fn resolve(
    p: PasswordSection,
    duration: SectionDuration<'_>,
) -> Result<PasswordConfig, ConfigError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let password = PasswordConfig {
        memory_kib: p.memory_kib.unwrap_or(19_456),
        iterations: p.iterations.unwrap_or(2),
        parallelism: p.parallelism.unwrap_or(1),
        max_concurrent: p.max_concurrent.unwrap_or(cores),
        refuse_common: p.refuse_common.unwrap_or(true),
        breach_api: p.breach_api,
        breach_timeout: duration("password.breach_timeout", p.breach_timeout, "2", false)?,
    };
    if let Some(api) = &password.breach_api
        && !(api.starts_with("https://") || api.starts_with("http://"))
    {
        return Err(invalid("password.breach_api", "an http(s) URL", api));
    }
    if password.memory_kib < 8 * password.parallelism.max(1)
        || password.memory_kib > 4 * 1024 * 1024
    {
        return Err(invalid(
            "password.memory_kib",
            "8×parallelism to 4194304 KiB",
            password.memory_kib,
        ));
    }
    if password.iterations == 0 || password.parallelism == 0 || password.max_concurrent == 0 {
        return Err(ConfigError(
            "invalid password section: iterations, parallelism and max_concurrent must be at least 1".into(),
        ));
    }
    Ok(password)
}

/// Work for a hashing thread, given that thread's workspace.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordHasher {
    params: Params,
    admission: Arc<Semaphore>,
    jobs: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
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
    /// Starts the hashing threads; they stop when the hasher is dropped.
    pub fn new(cfg: &PasswordConfig) -> Result<PasswordHasher> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let dummy_hash = hash_blocking(&params, crate::secret::generate().as_bytes())?;
        let (jobs, queue) = mpsc::channel::<(Job, OwnedSemaphorePermit)>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..cfg.max_concurrent {
            let queue = queue.clone();
            let blocks = params.block_count();
            std::thread::Builder::new()
                .name(format!("tollgate-argon2-{i}"))
                .spawn(move || {
                    let mut workspace = vec![Block::new(); blocks];
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((job, _permit)) = next else {
                            return; // the hasher was dropped
                        };
                        // A panicking job loses its answer (the caller sees an error) but
                        // not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut workspace)));
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(PasswordHasher {
            params,
            admission: Arc::new(Semaphore::new(2 * cfg.max_concurrent)),
            jobs,
            dummy_hash,
        })
    }

    /// A new PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String> {
        let params = self.params.clone();
        self.run(move |_| hash_blocking(&params, password.as_bytes()))
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
        self.run(move |workspace| {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified::No;
            };
            let ok = verify_in(workspace, password.as_bytes(), &parsed);
            match (ok && real, weaker_than(&parsed, &params)) {
                (false, _) => Verified::No,
                (true, true) => Verified::YesRehash,
                (true, false) => Verified::Yes,
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("password hasher closed".into()))?;
        let (answer, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            let _ = answer.send(f(workspace));
        });
        self.jobs
            .send((job, permit))
            .map_err(|_| Error::Internal("password hashing threads stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Internal("password hashing failed".into()))
    }
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Recomputes the PHC hash's output for `password` in `workspace` (grown if the stored
/// parameters need more memory) and compares it in constant time: the crate's
/// `PasswordVerifier`, minus its per-call allocation.
fn verify_in(workspace: &mut Vec<Block>, password: &[u8], stored: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map(Version::try_from)
        .unwrap_or(Ok(Version::V0x13))
    else {
        return false;
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    if workspace.len() < params.block_count() {
        workspace.resize(params.block_count(), Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut workspace[..])
        .is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
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
            ..Default::default()
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

    #[test]
    fn pooled_verification_agrees_with_the_crate() {
        use argon2::PasswordVerifier as _;
        let mut ws = Vec::new();
        for (m, t, p) in [(64, 1, 1), (256, 2, 2), (1024, 3, 1)] {
            let params = Params::new(m, t, p, None).unwrap();
            for alg in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
                let phc = Argon2::new(alg, Version::V0x13, params.clone())
                    .hash_password(b"s3cret pass")
                    .unwrap()
                    .to_string();
                let parsed = PasswordHash::new(&phc).unwrap();
                assert!(
                    Argon2::default()
                        .verify_password(b"s3cret pass", &parsed)
                        .is_ok()
                );
                assert!(verify_in(&mut ws, b"s3cret pass", &parsed), "{phc}");
                assert!(!verify_in(&mut ws, b"s3cret pasS", &parsed));
                assert!(!verify_in(&mut ws, b"", &parsed));
            }
        }
        // The workspace grew to the largest need and is reused as it is.
        assert_eq!(ws.len(), 1024);
        // A tampered output or salt never verifies.
        let phc = Argon2::default().hash_password(b"pw").unwrap().to_string();
        let (head, tail) = phc.rsplit_once('$').unwrap();
        let flipped = format!(
            "{head}${}{}",
            if tail.starts_with('A') { 'B' } else { 'A' },
            &tail[1..]
        );
        assert!(!verify_in(
            &mut ws,
            b"pw",
            &PasswordHash::new(&flipped).unwrap()
        ));
        let no_hash = PasswordHash::new(head).unwrap();
        assert!(!verify_in(&mut ws, b"pw", &no_hash));
    }

    #[tokio::test]
    async fn abandoned_jobs_hold_their_admission_until_done() {
        let cfg = PasswordConfig {
            memory_kib: 32_768,
            iterations: 3,
            parallelism: 1,
            max_concurrent: 1,
            ..Default::default()
        };
        let h = Arc::new(PasswordHasher::new(&cfg).unwrap());
        let phc = h.hash("pw-pw-pw-pw".into()).await.unwrap();
        // The hashing thread hands the result over, then gives its permit back.
        let settle = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while h.admission.available_permits() < 2 && std::time::Instant::now() < settle {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(h.admission.available_permits(), 2);
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (h, p) = (h.clone(), phc.clone());
                tokio::spawn(async move { h.verify("guess".into(), Some(p)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for t in &tasks {
            t.abort();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(
            h.admission.available_permits(),
            0,
            "callers left, their hashes still count"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while h.admission.available_permits() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "permits come back when the work is done"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
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
