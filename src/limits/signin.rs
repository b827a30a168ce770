//! Brute-force throttling of password sign-in, kept in the database so every node and
//! the CLI (`tollgate user unlock`) see the same counters.
//!
//! Each failure counts against three keys: the account from this address (the pair), the
//! account from anywhere, and the address. Lockouts:
//!
//! - **pair**: after `max_failures`, locked for `lockout`, doubling with each further
//!   failure up to `max_lockout` (the "growing delay"). Only this address is locked out
//!   of this account: an attacker cannot lock the owner out from elsewhere.
//! - **address**: after `ip_max_failures` across any accounts (credential stuffing),
//!   the same growing lockout for everything from that address.
//! - **account**: after `account_max_failures` from anywhere, locked for
//!   `account_lockout`. Each address contributes at most `max_failures` to this count,
//!   so a single address can never trigger it; it takes a distributed attack, and even
//!   then the lockout expires.
//!
//! Attempts during a lockout are refused without checking the password and are not
//! counted. Checks of one account run one at a time on each node
//! ([`SignInGuard::one_at_a_time`]): the lockout is read before a check and the failure
//! written after it, so simultaneous guesses would otherwise all be checked before any
//! was counted (an attack sent 150 at once over 3 nodes from 150 addresses and had every
//! one checked against a limit of 20). Now at most one guess per node is in flight past
//! the limit. A success clears the pair and account counters (not the address's: an
//! attacker's own valid account must not launder a stuffing run). Counters are forgotten
//! `reset_after` after their last failure.

use std::hash::BuildHasher;
use std::time::Duration;

use crate::audit::{Context, Entry, Outcome};
use crate::error::Result;
use crate::store::{FailureKeys, LockPolicy, Store};

#[derive(Debug, Clone)]
pub struct SignInPolicy {
    pub max_failures: u32,
    pub ip_max_failures: u32,
    pub account_max_failures: u32,
    pub lockout: Duration,
    pub max_lockout: Duration,
    pub account_lockout: Duration,
    pub reset_after: Duration,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy {
            max_failures: 5,
            ip_max_failures: 20,
            account_max_failures: 20,
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(15 * 60),
            account_lockout: Duration::from_secs(15 * 60),
            reset_after: Duration::from_secs(3600),
        }
    }
}

impl SignInPolicy {
    fn growing(&self, failures: i64, threshold: u32) -> Option<i64> {
        let over = failures - i64::from(threshold);
        (over >= 0).then(|| {
            let base = self.lockout.as_secs() as i64;
            let factor = 1i64 << over.min(20);
            base.saturating_mul(factor)
                .min(self.max_lockout.as_secs() as i64)
        })
    }
}

impl LockPolicy for SignInPolicy {
    fn reset_after_secs(&self) -> i64 {
        self.reset_after.as_secs() as i64
    }

    fn per_address_share(&self) -> i64 {
        i64::from(self.max_failures)
    }

    fn lock_secs(&self, scope: &'static str, failures: i64) -> Option<i64> {
        match scope {
            "pair" => self.growing(failures, self.max_failures),
            "ip" => self.growing(failures, self.ip_max_failures),
            _ => (failures >= i64::from(self.account_max_failures))
                .then_some(self.account_lockout.as_secs() as i64),
        }
    }
}

/// The counter keys of an account (an email, normalised when it can be) and an address.
struct Keys {
    pair: String,
    account: String,
    ip: String,
}

/// Everything under this prefix belongs to the account (emails contain no spaces).
fn account_prefix(email: &str) -> String {
    format!("a:{email} ")
}

impl Keys {
    fn new(email: &str, ip: &str) -> Keys {
        let prefix = account_prefix(email);
        Keys {
            pair: format!("{prefix}ip:{ip}"),
            account: format!("{prefix}*"),
            ip: format!("ip:{ip}"),
        }
    }
}

pub struct SignInGuard {
    store: Store,
    policy: SignInPolicy,
    enabled: bool,
    /// Striped by account: bounded memory whatever the number of accounts typed; two
    /// accounts sharing a stripe only wait for each other's check.
    gates: Vec<tokio::sync::Mutex<()>>,
    hasher: std::hash::RandomState,
}

/// How many account stripes each node serialises checks on.
const GATES: usize = 1024;

impl SignInGuard {
    pub fn new(store: Store, policy: SignInPolicy, enabled: bool) -> SignInGuard {
        SignInGuard {
            store,
            policy,
            enabled,
            gates: (0..GATES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Held from the lockout check until the outcome is recorded: this node checks one
    /// credential of `account` at a time, so each check sees the failures before it.
    pub async fn one_at_a_time(&self, account: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one(account) as usize % GATES;
        self.gates[stripe].lock().await
    }

    /// `Some(seconds)` while the account is locked for this address.
    pub async fn locked_for(&self, email: &str, ip: &str) -> Result<Option<i64>> {
        if !self.enabled {
            return Ok(None);
        }
        let k = Keys::new(email, ip);
        let until = self
            .store
            .sign_in_locked_until(&[&k.pair, &k.account, &k.ip])
            .await?;
        let now = crate::clock::now();
        Ok((until > now).then_some(until - now))
    }

    /// Records a failed sign-in (audited as `audit`); returns `Some(seconds)` when it set
    /// a lockout covering this address.
    pub async fn failed(&self, email: &str, ip: &str, audit: &Entry) -> Result<Option<i64>> {
        if !self.enabled {
            self.store.append_audit(audit).await?;
            return Ok(None);
        }
        let k = Keys::new(email, ip);
        let now = crate::clock::now();
        let keys = FailureKeys {
            pair: &k.pair,
            account: &k.account,
            ip: &k.ip,
        };
        let locks = self
            .store
            .record_sign_in_failure(&keys, now, &self.policy, audit)
            .await?;
        Ok(locks.iter().map(|(_, until)| until - now).max())
    }

    /// A successful sign-in: the account's counters start over.
    pub async fn succeeded(&self, email: &str, ip: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let k = Keys::new(email, ip);
        Ok(self
            .store
            .clear_sign_in_failures(&[&k.pair, &k.account])
            .await?)
    }

    /// `tollgate user unlock` and the admin API: lifts every lockout of the account.
    pub async fn unlock(&self, email: &str, user_id: &str, ctx: &Context) -> Result<u64> {
        let audit = ctx.entry("user.unlocked", Outcome::Success, Some(user_id));
        Ok(self
            .store
            .unlock_account(&account_prefix(email), &audit)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_grow_and_are_capped() {
        let p = SignInPolicy::default();
        assert_eq!(p.lock_secs("pair", 4), None);
        assert_eq!(p.lock_secs("pair", 5), Some(60));
        assert_eq!(p.lock_secs("pair", 6), Some(120));
        assert_eq!(p.lock_secs("pair", 8), Some(480));
        assert_eq!(p.lock_secs("pair", 9), Some(900));
        assert_eq!(p.lock_secs("pair", 500), Some(900));
        assert_eq!(p.lock_secs("ip", 19), None);
        assert_eq!(p.lock_secs("ip", 20), Some(60));
        assert_eq!(p.lock_secs("account", 20), Some(900));
        // One address contributes at most its share, which is below the account threshold.
        assert!(p.per_address_share() < i64::from(p.account_max_failures));
    }
}
