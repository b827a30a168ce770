//! Password sign-in, one implementation for every door: the JSON `/auth/login`, the
//! hosted form `/ui/login` and account linking. In order: the per-account rate limit,
//! the lockout (no password check while locked), the password (one argon2 verification
//! whether or not the account exists), the verification requirement (told only to
//! someone who knows the password), then the failure counters and the audit log.

use std::net::IpAddr;
use std::sync::Arc;

use super::Identity;
use super::factors::{Factor, SecondFactors};
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
    /// The password was right; the account also needs a second factor. `token` completes
    /// the sign-in with one of `methods`.
    SecondFactorRequired {
        token: String,
        methods: Vec<&'static str>,
    },
}

impl From<Error> for SignInRefusal {
    fn from(e: Error) -> SignInRefusal {
        SignInRefusal::Denied(e)
    }
}

/// A sign-in that passed: the user and how (`amr`, RFC 8176).
pub struct SignedIn {
    pub user: UserRecord,
    pub amr: Vec<String>,
}

/// What a step-up proves (`PasswordSignIn::step_up`).
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// A second-factor code (TOTP or recovery code).
    Code(&'a str),
    /// The password again: for a recent sign-in (`max_age`) on an account without a
    /// second factor, which has no code to give.
    Password(&'a str),
}

/// The password sign-in rules and what they need.
pub struct PasswordSignIn {
    identity: Arc<Identity>,
    factors: Arc<SecondFactors>,
    limits: Arc<Limiter>,
    guard: SignInGuard,
    store: Store,
    require_verification: bool,
}

impl PasswordSignIn {
    pub fn new(
        identity: Arc<Identity>,
        factors: Arc<SecondFactors>,
        limits: Arc<Limiter>,
        guard: SignInGuard,
        store: Store,
        require_verification: bool,
    ) -> PasswordSignIn {
        PasswordSignIn {
            identity,
            factors,
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

    /// Signs in with a password and, for an account that has one, a second factor: given
    /// with the password (`code`), or later with the challenge a refusal carries
    /// ([`PasswordSignIn::complete`]).
    pub async fn sign_in(
        &self,
        path: &str,
        email: &str,
        password: &str,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignedIn, SignInRefusal> {
        let (user, second_factor) = self.password(path, email, password, client).await?;
        if !second_factor {
            return Ok(SignedIn {
                user,
                amr: vec!["pwd".into()],
            });
        }
        match code {
            Some(code) => {
                let factor = self.second_factor(&user, code, client).await?;
                Ok(SignedIn {
                    user,
                    amr: vec!["pwd".into(), factor.amr().into(), "mfa".into()],
                })
            }
            None => Err(SignInRefusal::SecondFactorRequired {
                token: self.factors.challenge(&user.id, &["pwd"]).await?,
                methods: self.factors.methods(&user.id).await?,
            }),
        }
    }

    /// Completes a sign-in waiting for its second factor (`token` from the refusal).
    pub async fn complete(
        &self,
        token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, SignInRefusal> {
        let challenge = self.factors.attempt(token).await?;
        let user = self
            .store
            .user_by_id(&challenge.user_id)
            .await
            .map_err(Error::from)?
            .filter(|u| !u.disabled)
            .ok_or(Error::AccountDisabled)?;
        let factor = self.second_factor(&user, code, client).await?;
        self.factors.finish(token).await?;
        let mut amr: Vec<String> = challenge
            .amr
            .split_whitespace()
            .map(str::to_string)
            .collect();
        amr.push(factor.amr().into());
        amr.push("mfa".into());
        Ok(SignedIn { user, amr })
    }

    /// Checks what a signed-in `user` gives to raise their session: a code (the account
    /// must have a second factor), or the password again (only for an account without
    /// one: where a factor exists, a password must not refresh `auth_time`, which would
    /// let it pass for a recent second factor). The RFC 8176 value proved. Wrong answers
    /// count like wrong passwords.
    pub async fn step_up(
        &self,
        path: &str,
        user: &UserRecord,
        proof: Proof<'_>,
        client: &ClientInfo,
    ) -> Result<&'static str, SignInRefusal> {
        let has_factor = self.factors.required(&user.id).await?;
        match proof {
            Proof::Code(_) if !has_factor => Err(Error::invalid(
                "no_second_factor",
                "this account has no second factor: set one up (POST /auth/mfa/totp), or give the password for a recent sign-in",
            )
            .into()),
            Proof::Code(code) => Ok(self.second_factor(user, code, client).await?.amr()),
            Proof::Password(_) if has_factor => Err(Error::invalid(
                "code_required",
                "this account has a second factor: give a code from it",
            )
            .into()),
            Proof::Password(password) => {
                let (signed, _) = self.password(path, &user.email, password, client).await?;
                if signed.id != user.id {
                    // The address now names someone else (changed mid-session).
                    return Err(Error::InvalidCredentials.into());
                }
                Ok("pwd")
            }
        }
    }

    /// A second-factor code for `user`, under the same lockout as passwords: refused
    /// unchecked while locked, and a wrong one counts as a failed sign-in.
    async fn second_factor(
        &self,
        user: &UserRecord,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Factor, SignInRefusal> {
        let account = account_of(&user.email);
        let ip = client_key(client);
        let _turn = self.guard.one_at_a_time(&account).await;
        if let Some(secs) = self.guard.locked_for(&account, &ip).await? {
            return Err(Error::Locked {
                retry_after_secs: secs,
            }
            .into());
        }
        let ctx = Context::user(&user.id, client.clone());
        match self.factors.check(user, code, &ctx).await {
            Ok(factor) => {
                self.guard.succeeded(&account, &ip).await?;
                Ok(factor)
            }
            Err(Error::InvalidCredentials) => {
                metrics::counter!("tollgate_logins_total", "outcome" => "invalid_code")
                    .increment(1);
                let entry = ctx
                    .entry("auth.mfa", Outcome::Failure, Some(&user.id))
                    .with("reason", "invalid_code");
                self.guard.failed(&account, &ip, &entry).await?;
                Err(Error::invalid("invalid_code", "the code is wrong or was already used").into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks `email` and `password` posted to `path` (which names the rate-limit rules
    /// that apply). The user, or why not; a second factor is left to the caller
    /// (the hosted pages' `signed_in`).
    pub async fn check(
        &self,
        path: &str,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserRecord, SignInRefusal> {
        Ok(self.password(path, email, password, client).await?.0)
    }

    /// The first factor: the user, and whether a second one must follow.
    async fn password(
        &self,
        path: &str,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(UserRecord, bool), SignInRefusal> {
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
        let _turn = self.guard.one_at_a_time(&account).await;
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
                // With a second factor to come, the counters are cleared only once it
                // passes: a right password must not wipe the count of wrong codes.
                let second_factor = self.factors.required(&user.id).await?;
                if !second_factor {
                    self.guard.succeeded(&account, &ip).await?;
                }
                metrics::counter!("tollgate_logins_total", "outcome" => "success").increment(1);
                Ok((user, second_factor))
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
/// typed (lower case, bounded, without control characters, which PostgreSQL's text
/// refuses: a NUL here made every such request a 503) otherwise.
fn account_of(email: &str) -> String {
    normalize_email(email).unwrap_or_else(|_| {
        email
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_control())
            .take(254)
            .collect()
    })
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
