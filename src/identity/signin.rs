//! Password sign-in, one implementation for every door: the JSON `/auth/login`, the
//! hosted form `/ui/login` and account linking. In order: the per-account rate limit,
//! the lockout (no password check while locked), the password (one argon2 verification
//! whether or not the account exists), the verification requirement (told only to
//! someone who knows the password), then the failure counters and the audit log.

use std::net::IpAddr;
use std::sync::Arc;

use super::Identity;
use super::validate::normalize_email;
use crate::audit::{Context, Entry, Outcome};
use crate::error::Error;
use crate::limits::address::limit_key;
use crate::limits::signin::SignInGuard;
use crate::limits::{LimitRefusal, Limiter, Per};
use crate::session::ClientInfo;
use crate::store::{Store, UserRecord};

/// Why a sign-in (or another per-address step) did not go ahead.
#[derive(Debug)]
pub enum SignInRefusal {
    /// A rate limit on the address as typed, from this client.
    Limited(LimitRefusal),
    /// The account's answer: wrong password, locked, disabled, not verified, unavailable.
    Denied(Error),
}

impl From<Error> for SignInRefusal {
    fn from(e: Error) -> SignInRefusal {
        SignInRefusal::Denied(e)
    }
}

/// The password sign-in rules and what they need.
pub struct PasswordSignIn {
    identity: Arc<Identity>,
    limits: Arc<Limiter>,
    guard: SignInGuard,
    store: Store,
    require_verification: bool,
}

impl PasswordSignIn {
    pub fn new(
        identity: Arc<Identity>,
        limits: Arc<Limiter>,
        guard: SignInGuard,
        store: Store,
        require_verification: bool,
    ) -> PasswordSignIn {
        PasswordSignIn {
            identity,
            limits,
            guard,
            store,
            require_verification,
        }
    }

    /// The lockout state (for `tollgate user unlock` and the admin API).
    pub fn guard(&self) -> &SignInGuard {
        &self.guard
    }

    /// Checks `email` and `password` posted to `path` (which names the rate-limit rules
    /// that apply). The user, or why not.
    pub async fn check(
        &self,
        path: &str,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserRecord, SignInRefusal> {
        let account = account_of(email);
        self.limit_address(path, email, client).await?;
        let ip = client_key(client);
        // What was typed is recorded only when it is an address: people type passwords
        // into the email field, and the log cannot be purged.
        let typed = normalize_email(email).unwrap_or_else(|_| "(not an email)".into());
        let ctx = Context::anonymous(client.clone());
        let failure = |reason: &'static str| {
            ctx.entry("auth.login", Outcome::Failure, None)
                .with("email", typed.as_str())
                .with("reason", reason)
        };
        if let Some(secs) = self.guard.locked_for(&account, &ip).await? {
            let entry = Entry {
                outcome: Outcome::Denied,
                ..failure("locked")
            };
            self.store.append_audit(&entry).await.map_err(Error::from)?;
            metrics::counter!("tollgate_logins_total", "outcome" => "locked").increment(1);
            return Err(Error::Locked {
                retry_after_secs: secs,
            }
            .into());
        }
        let outcome = match self.identity.authenticate(email, password).await {
            Ok(u) if self.require_verification && !u.email_verified => {
                Err((Error::EmailNotVerified, Some(u.id)))
            }
            Ok(u) => Ok(u),
            Err(e) => Err((e, None)),
        };
        match outcome {
            Ok(user) => {
                self.guard.succeeded(&account, &ip).await?;
                metrics::counter!("tollgate_logins_total", "outcome" => "success").increment(1);
                Ok(user)
            }
            Err((e, user_id)) => {
                metrics::counter!("tollgate_logins_total", "outcome" => e.code()).increment(1);
                tracing::info!(event = "login_failed", reason = e.code());
                let entry = Entry {
                    subject: user_id,
                    ..failure(e.code())
                };
                match e {
                    Error::InvalidCredentials => {
                        self.guard.failed(&account, &ip, &entry).await?;
                    }
                    Error::Unavailable(_) => {}
                    _ => self.store.append_audit(&entry).await.map_err(Error::from)?,
                }
                Err(e.into())
            }
        }
    }

    /// The per-address limit of `path` (sign-in, forgotten password, confirmation
    /// mails): keyed on the address as typed (normalised when it can be) from this
    /// client, so unknown and known accounts are throttled alike.
    pub async fn limit_address(
        &self,
        path: &str,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), SignInRefusal> {
        let key = account_key(&account_of(email), client);
        self.limits
            .check(Per::Account, "POST", path, &key)
            .await
            .map(|_| ())
            .map_err(SignInRefusal::Limited)
    }
}

/// The account an address names for counting: normalised when it is an address, as
/// typed (lower case, bounded) otherwise.
fn account_of(email: &str) -> String {
    normalize_email(email)
        .unwrap_or_else(|_| email.trim().to_lowercase().chars().take(254).collect())
}

/// The key of an account-scoped limit: the account *from this client*. Keyed on the
/// account alone, one address could spend a victim's whole allowance and keep the owner
/// out; per-account protection across addresses is the lockout's job.
fn account_key(account: &str, client: &ClientInfo) -> String {
    let account: String = account.chars().take(254).collect();
    format!("{account} {}", client_key(client))
}

/// The counting key of the client address (IPv6 by /64).
fn client_key(client: &ClientInfo) -> String {
    client
        .ip
        .as_deref()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .map(limit_key)
        .unwrap_or_default()
}
