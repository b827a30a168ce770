//! Second factors: TOTP enrolment and use, recovery codes, and the challenge that a
//! sign-in with a second factor waits on between its two steps.
//!
//! A code is checked against the account's TOTP (a step later than the last accepted,
//! advanced atomically in the store, so a code works once even across nodes) or, failing
//! that, against its unused recovery codes (spent once, audited). Wrong codes count like
//! wrong passwords: the caller runs them through the sign-in guard.

use std::sync::Arc;

use crate::audit::{Context, Outcome};
use crate::error::{Error, Result};
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
}

impl SecondFactors {
    pub fn new(
        store: Store,
        revocations: Arc<Revocations>,
        sealer: Sealer,
        issuer: String,
    ) -> SecondFactors {
        SecondFactors {
            store,
            revocations,
            sealer,
            issuer,
        }
    }

    /// Whether the account must give a second factor to sign in.
    pub async fn required(&self, user_id: &str) -> Result<bool> {
        Ok(self
            .store
            .totp_of(user_id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// The methods a challenge can be answered with.
    pub fn methods(&self) -> Vec<&'static str> {
        vec!["totp", "recovery_code"]
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
        let uri = totp::otpauth_uri(&raw, &self.issuer, &user.email)
            .ok_or_else(|| Error::Internal("cannot build the otpauth URI".into()))?;
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
        Ok(TotpEnrolment {
            secret: totp::base32(&raw),
            otpauth_uri: uri,
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
        Ok(codes)
    }

    /// Checks a second-factor `code` for `user_id`: TOTP, else a recovery code.
    pub async fn check(&self, user_id: &str, code: &str, ctx: &Context) -> Result<Factor> {
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
