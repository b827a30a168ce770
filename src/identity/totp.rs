//! TOTP (RFC 6238) as every authenticator app reads it: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of drift either way. The arithmetic is the `totp-rs` crate's; what is
//! decided here is which step a code may still be accepted for: only one later than the
//! last step accepted for the account, so a code (or an earlier one seen over a shoulder)
//! works once.

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Digits of a code.
const DIGITS: u8 = 6;
/// Seconds of a step.
const STEP: u64 = 30;
/// Steps of drift accepted either way (RFC 6238 §5.2 recommends one).
const SKEW: u16 = 1;

/// A new random secret: 160 bits, as RFC 4226 §4 recommends.
pub fn new_secret() -> Vec<u8> {
    Secret::generate().as_bytes().to_vec()
}

/// The secret in base32, as people type it into an app that cannot scan.
pub fn base32(secret: &[u8]) -> String {
    Secret::new(secret.to_vec().into_boxed_slice()).to_base32()
}

fn totp(secret: &[u8], digits: u8, issuer: &str, account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(SKEW)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec().into_boxed_slice())
        // The otpauth label may not hold a colon.
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .ok()
}

/// The `otpauth://totp/…` URI an app scans (`issuer` is what the app shows it as).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Option<String> {
    totp(secret, DIGITS, issuer, account)?.to_url().ok()
}

/// The step `code` matches at Unix time `now` (within the drift), if that step is later
/// than `last_step`, the last one accepted for this secret: the step to record.
pub fn accept(secret: &[u8], code: &str, now: u64, last_step: Option<i64>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = totp(secret, DIGITS, "x", "x")?.check(&code, now)?;
    let step = i64::try_from(step).ok()?;
    (last_step.is_none_or(|last| step > last)).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_test_vectors() {
        // Appendix B, SHA-1 (the RFC's vectors have 8 digits).
        let t = totp(RFC_SECRET, 8, "x", "x").unwrap();
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(t.generate(time).to_string(), code, "T={time}");
        }
    }

    fn code_at(secret: &[u8], time: u64) -> String {
        totp(secret, DIGITS, "x", "x")
            .unwrap()
            .generate(time)
            .to_string()
    }

    #[test]
    fn a_code_works_once_within_one_step_of_drift() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let step = (now / STEP) as i64;
        let code = code_at(&secret, now);
        assert_eq!(accept(&secret, &code, now, None), Some(step));
        // Replayed, or an older code after a newer one: refused.
        assert_eq!(accept(&secret, &code, now, Some(step)), None);
        let before = code_at(&secret, now - STEP);
        assert_eq!(accept(&secret, &before, now, Some(step)), None);
        // One step of drift either way, not two.
        assert!(accept(&secret, &before, now, None).is_some());
        let after = code_at(&secret, now + STEP);
        assert!(accept(&secret, &after, now, Some(step)).is_some());
        let far = code_at(&secret, now + 2 * STEP);
        assert_eq!(accept(&secret, &far, now, None), None);
        // Spaces as apps show them are fine; anything else is not a code.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(accept(&secret, &spaced, now, None), Some(step));
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
            assert_eq!(accept(&secret, bad, now, None), None, "{bad}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let secret = new_secret();
        let uri = otpauth_uri(&secret, "gate.example:8443", "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", base32(&secret))),
            "{uri}"
        );
        assert!(uri.contains("issuer=gate.example%208443"), "{uri}");
        assert!(
            uri.contains("ada%40example.com") || uri.contains("ada@example.com"),
            "{uri}"
        );
        assert_eq!(new_secret().len(), 20);
    }
}
