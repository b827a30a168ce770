//! Second factors: TOTP enrolment and use, recovery codes, and the challenge that a
//! sign-in with a second factor waits on between its two steps.
//!
//! A code is checked against the account's TOTP (a step later than the last accepted,
//! advanced atomically in the store, so a code works once even across nodes) or, failing
//! that, against its unused recovery codes (spent once, audited). Wrong codes count like
//! wrong passwords: the caller runs them through the sign-in guard.

use std::sync::Arc;

use crate::audit::{Context, Outcome};
use crate::authz::policy::Authenticated;
use crate::error::{Error, Result};
use crate::mail::{Mailer, Template, Vars};
use crate::secret::{self, Sealer};
use crate::session::Revocations;
use crate::store::{MfaChallenge, Store, UserRecord};

use super::totp;

/// How long an `mfa_token` stays good.
const CHALLENGE_TTL_SECS: i64 = 300;
/// Codes one challenge may be answered with before a new sign-in is needed.
const CHALLENGE_ATTEMPTS: i64 = 5;
/// Recovery codes per account.
const RECOVERY_CODES: usize = 10;
/// How recent a sign-in must be to set up a factor: a stolen session, or one left open
/// on a shared computer, must not be able to plant its own authenticator.
pub const RECENT_SIGN_IN_SECS: i64 = 600;
/// How recent a second factor must be to remove one or replace the recovery codes: a
/// session that merely knows the password must not be able to strip the account's
/// protection.
pub const RECENT_SECOND_FACTOR_SECS: u64 = 600;

/// The second factors an account has.
pub struct FactorStatus {
    /// A confirmed authenticator app.
    pub totp: bool,
    /// An enrolment waiting for its first code.
    pub totp_pending: bool,
    pub recovery_codes_left: i64,
}

/// A TOTP enrolment waiting for its first code.
pub struct TotpEnrolment {
    /// Base32, for typing into an app.
    pub secret: String,
    pub otpauth_uri: String,
}

/// Which factor a code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

impl Factor {
    /// The RFC 8176 `amr` value: `otp` for both (a recovery code is a one-time code
    /// from a list the user holds).
    pub fn amr(self) -> &'static str {
        "otp"
    }
}

pub struct SecondFactors {
    store: Store,
    revocations: Arc<Revocations>,
    sealer: Sealer,
    /// What authenticator apps show the account under.
    issuer: String,
    /// Tells the account's owner of every change (and of a recovery code used).
    mailer: Arc<Mailer>,
}

impl SecondFactors {
    pub fn new(
        store: Store,
        revocations: Arc<Revocations>,
        sealer: Sealer,
        issuer: String,
        mailer: Arc<Mailer>,
    ) -> SecondFactors {
        SecondFactors {
            store,
            revocations,
            sealer,
            issuer,
            mailer,
        }
    }

    /// What the account has.
    pub async fn status(&self, user_id: &str) -> Result<FactorStatus> {
        let totp = self.store.totp_of(user_id).await?;
        Ok(FactorStatus {
            totp: totp.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
            totp_pending: totp.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
            recovery_codes_left: self.store.recovery_codes_left(user_id).await?,
        })
    }

    /// Refuses (RFC 9470 step-up) unless the session (`authenticated`) passed a second
    /// factor within [`RECENT_SECOND_FACTOR_SECS`].
    pub fn require_recent(authenticated: Authenticated) -> Result<()> {
        recent_second_factor(authenticated, RECENT_SECOND_FACTOR_SECS)
    }

    /// Removes the authenticator app (and with it the recovery codes, which back it up),
    /// for a session with a recent second factor. The owner is mailed.
    pub async fn remove_totp(
        &self,
        user: &UserRecord,
        authenticated: Authenticated,
        ctx: &Context,
    ) -> Result<()> {
        Self::require_recent(authenticated)?;
        let audit = ctx.entry("mfa.totp_removed", Outcome::Success, Some(&user.id));
        if !self.store.remove_totp(&user.id, &audit).await? {
            return Err(Error::NotFound("authenticator app"));
        }
        self.notify(user, "the authenticator app was removed from your account; signing in now needs only your password")
            .await;
        Ok(())
    }

    /// Ten new recovery codes, shown once; the old ones stop working. Needs a recent
    /// second factor (the codes are the account's keys). The owner is mailed.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &UserRecord,
        authenticated: Authenticated,
        ctx: &Context,
    ) -> Result<Vec<String>> {
        Self::require_recent(authenticated)?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        let audit = ctx.entry(
            "mfa.recovery_codes_regenerated",
            Outcome::Success,
            Some(&user.id),
        );
        if !self
            .store
            .replace_recovery_codes(&user.id, &hashes, &audit)
            .await?
        {
            return Err(Error::invalid(
                "no_second_factor",
                "recovery codes back up an authenticator app: set one up first",
            ));
        }
        self.notify(
            user,
            "new recovery codes were made for your account; the old ones no longer work",
        )
        .await;
        Ok(codes)
    }

    /// Whether an administrator (`user_id`, holding scope `admin`) may go ahead: with
    /// `require_mfa`, only once they have a second factor; and a write (`writes`) by an
    /// admin who has one needs it within `max_age`. An API key has no sign-in behind it,
    /// so it never writes for such an admin.
    pub async fn admit_admin(
        &self,
        user_id: &str,
        writes: bool,
        authenticated: Authenticated,
        require_mfa: bool,
        max_age: std::time::Duration,
    ) -> Result<()> {
        if !require_mfa && !writes {
            return Ok(());
        }
        if !self.required(user_id).await? {
            return if require_mfa {
                Err(Error::MfaEnrolmentRequired)
            } else {
                Ok(())
            };
        }
        if writes {
            recent_second_factor(authenticated, max_age.as_secs())?;
        }
        Ok(())
    }

    /// Refuses (a step-up) unless the session signed in within [`RECENT_SIGN_IN_SECS`],
    /// with the second factor when `user_id` has one: for what a stolen session must not
    /// do alone (deleting the account, minting a long-lived API key).
    pub async fn require_fresh_sign_in(
        &self,
        user_id: &str,
        authenticated: Authenticated,
    ) -> Result<()> {
        let mfa = self.required(user_id).await?;
        let max_age = RECENT_SIGN_IN_SECS as u64;
        if authenticated.satisfies(mfa, Some(max_age)) {
            Ok(())
        } else {
            Err(Error::StepUpRequired {
                mfa,
                max_age: Some(max_age),
            })
        }
    }

    /// Mails the account's owner about a change to its second factors; a mail that
    /// cannot go out is logged, never a reason to undo the change.
    pub async fn notify(&self, user: &UserRecord, change: &str) {
        let vars = Vars {
            email: &user.email,
            token: "",
            minutes: 0,
            change,
        };
        if let Err(e) = self
            .mailer
            .send(Template::SecondFactors, &user.email, &vars)
            .await
        {
            tracing::warn!(user_id = %user.id, error = %e, "second-factor notice not sent");
        }
    }

    /// Whether the account must give a second factor to sign in.
    pub async fn required(&self, user_id: &str) -> Result<bool> {
        Ok(self.store.has_second_factor(user_id).await?)
    }

    /// The methods `user_id` can answer a challenge with: `totp` and `recovery_code`
    /// at `/auth/login/mfa`, `passkey` by signing in with one instead.
    pub async fn methods(&self, user_id: &str) -> Result<Vec<&'static str>> {
        let status = self.status(user_id).await?;
        let mut methods = Vec::new();
        if status.totp {
            methods.push("totp");
        }
        if !self.store.passkeys_of(user_id).await?.is_empty() {
            methods.push("passkey");
        }
        if status.recovery_codes_left > 0 {
            methods.push("recovery_code");
        }
        Ok(methods)
    }

    /// Starts (or restarts) a TOTP enrolment for someone who signed in (`auth_time`)
    /// within [`RECENT_SIGN_IN_SECS`]; refused while a confirmed one exists.
    pub async fn begin_totp(&self, user: &UserRecord, auth_time: i64) -> Result<TotpEnrolment> {
        if crate::clock::now() - auth_time > RECENT_SIGN_IN_SECS {
            return Err(Error::invalid(
                "reauthentication_required",
                "sign in again (within the last 10 minutes) to set up a second factor",
            ));
        }
        let raw = totp::new_secret();
        let enrolment = self.enrolment(&raw, &user.email)?;
        let sealed = self.sealer.seal(&user.id, &raw);
        if !self
            .store
            .begin_totp(&user.id, &sealed, crate::clock::now())
            .await?
        {
            return Err(Error::invalid(
                "totp_already_enrolled",
                "an authenticator app is already set up (an administrator can reset it)",
            ));
        }
        Ok(enrolment)
    }

    /// The enrolment waiting for its first code, to show again (a wrong first code).
    pub async fn pending_totp(&self, user_id: &str, email: &str) -> Result<Option<TotpEnrolment>> {
        let Some(record) = self
            .store
            .totp_of(user_id)
            .await?
            .filter(|t| t.confirmed_at.is_none())
        else {
            return Ok(None);
        };
        let raw = self
            .sealer
            .unseal(user_id, &record.sealed)
            .ok_or_else(|| Error::Internal("a TOTP secret cannot be unsealed".into()))?;
        self.enrolment(&raw, email).map(Some)
    }

    /// The secret of an enrolment as a person copies it and as an app scans it.
    fn enrolment(&self, raw: &[u8], email: &str) -> Result<TotpEnrolment> {
        Ok(TotpEnrolment {
            secret: totp::base32(raw),
            otpauth_uri: totp::otpauth_uri(raw, &self.issuer, email)
                .ok_or_else(|| Error::Internal("cannot build the otpauth URI".into()))?,
        })
    }

    /// Confirms the enrolment with a first code; the ten recovery codes, shown once.
    pub async fn confirm_totp(
        &self,
        user: &UserRecord,
        code: &str,
        ctx: &Context,
    ) -> Result<Vec<String>> {
        let record = self
            .store
            .totp_of(&user.id)
            .await?
            .filter(|t| t.confirmed_at.is_none())
            .ok_or_else(|| {
                Error::invalid(
                    "no_totp_enrolment",
                    "start the enrolment first (POST /auth/mfa/totp)",
                )
            })?;
        let raw = self
            .sealer
            .unseal(&user.id, &record.sealed)
            .ok_or_else(|| Error::Internal("a TOTP secret cannot be unsealed".into()))?;
        let now = crate::clock::now();
        let step = totp::accept(&raw, code, now as u64, record.last_step)
            .ok_or_else(|| Error::invalid("invalid_code", "the code is not the current one"))?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        let audit = ctx.entry("mfa.totp_enrolled", Outcome::Success, Some(&user.id));
        if !self
            .store
            .confirm_totp(&user.id, &record.sealed, step, &hashes, now, &audit)
            .await?
        {
            return Err(Error::invalid(
                "invalid_code",
                "the code is not the current one",
            ));
        }
        self.notify(
            user,
            "an authenticator app was set up on your account; signing in now needs a code from it",
        )
        .await;
        Ok(codes)
    }

    /// Checks a second-factor `code` for `user`: TOTP, else a recovery code (whose use
    /// is mailed to the owner).
    pub async fn check(&self, user: &UserRecord, code: &str, ctx: &Context) -> Result<Factor> {
        let user_id = user.id.as_str();
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let Some(record) = self.store.totp_of(user_id).await? else {
                return Err(Error::InvalidCredentials);
            };
            if record.confirmed_at.is_none() {
                return Err(Error::InvalidCredentials);
            }
            let raw = self
                .sealer
                .unseal(user_id, &record.sealed)
                .ok_or_else(|| Error::Internal("a TOTP secret cannot be unsealed".into()))?;
            let now = crate::clock::now() as u64;
            let step = totp::accept(&raw, &digits, now, record.last_step)
                .ok_or(Error::InvalidCredentials)?;
            if !self.store.spend_totp_step(user_id, step).await? {
                // Another request spent this step first: a replay.
                return Err(Error::InvalidCredentials);
            }
            return Ok(Factor::Totp);
        }
        let audit = ctx.entry("mfa.recovery_code_used", Outcome::Success, Some(user_id));
        let hash = recovery_hash(code);
        if self
            .store
            .spend_recovery_code(user_id, &hash, crate::clock::now(), &audit)
            .await?
        {
            self.notify(
                user,
                "a recovery code was used to sign in to your account; each code works once",
            )
            .await;
            return Ok(Factor::RecoveryCode);
        }
        Err(Error::InvalidCredentials)
    }

    /// Removes every second factor of `user` (an administrator's reset, for someone who
    /// lost their authenticator and recovery codes) and ends their sessions. `false` when
    /// there was nothing to remove.
    pub async fn reset(&self, user: &UserRecord, ctx: &Context) -> Result<bool> {
        let now = crate::clock::now();
        let audit = ctx.entry("mfa.reset", Outcome::Success, Some(&user.id));
        let Some(revoked) = self.store.reset_factors(&user.id, now, &audit).await? else {
            return Ok(false);
        };
        self.revocations.announce(&revoked, now).await;
        self.notify(
            user,
            "an administrator removed the second factors of your account and ended its sessions",
        )
        .await;
        Ok(true)
    }

    /// Parks a sign-in whose first factor (`amr`) passed; the `mfa_token` completes it.
    pub async fn challenge(&self, user_id: &str, amr: &[&str]) -> Result<String> {
        let token = secret::generate();
        let expires = crate::clock::now() + CHALLENGE_TTL_SECS;
        self.store
            .insert_mfa_challenge(
                &secret::digest_hex(&token),
                user_id,
                &amr.join(" "),
                expires,
            )
            .await?;
        Ok(token)
    }

    /// Counts an attempt on a challenge: its first factor's user and `amr`. A wrong code
    /// leaves it for another try, up to a few; then a new sign-in is needed.
    pub async fn attempt(&self, token: &str) -> Result<MfaChallenge> {
        self.store
            .attempt_mfa_challenge(
                &secret::digest_hex(token),
                crate::clock::now(),
                CHALLENGE_ATTEMPTS,
            )
            .await?
            .ok_or_else(expired)
    }

    /// Ends a challenge whose code was right: once (a racing request finds it gone).
    pub async fn finish(&self, token: &str) -> Result<()> {
        if self
            .store
            .finish_mfa_challenge(&secret::digest_hex(token))
            .await?
        {
            Ok(())
        } else {
            Err(expired())
        }
    }
}

/// Refuses (RFC 9470 step-up) unless `authenticated` passed a second factor within
/// `max_age` seconds.
fn recent_second_factor(authenticated: Authenticated, max_age: u64) -> Result<()> {
    if authenticated.satisfies(true, Some(max_age)) {
        Ok(())
    } else {
        Err(Error::StepUpRequired {
            mfa: true,
            max_age: Some(max_age),
        })
    }
}

fn expired() -> Error {
    Error::invalid(
        "invalid_mfa_token",
        "the sign-in expired or was completed; sign in again",
    )
}

/// A recovery code: 12 characters of base32 (60 bits) in groups of four, easy to copy.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = secret::random_bytes::<12>();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!(
        "{}-{}-{}",
        chars[..4].iter().collect::<String>(),
        chars[4..8].iter().collect::<String>(),
        chars[8..].iter().collect::<String>()
    )
}

/// What is stored of a recovery code: the SHA-256 of its canonical form (upper case, no
/// separators), so `abcd efgh ijkl` as typed matches.
fn recovery_hash(code: &str) -> String {
    let canonical: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    secret::digest_hex(&canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_typed_any_way() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 14);
        assert_ne!(a, new_recovery_code());
        let typed = a.to_lowercase().replace('-', " ");
        assert_eq!(recovery_hash(&typed), recovery_hash(&a));
        assert_ne!(recovery_hash(&new_recovery_code()), recovery_hash(&a));
    }
}
