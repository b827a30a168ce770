//! Proof Key for Code Exchange (RFC 7636), `S256` only: `plain` gives no protection
//! against a code intercepted on its way back (RFC 9700 §2.1.1).

use aws_lc_rs::digest;

use crate::secret::{b64url, constant_time_eq};

/// Whether `challenge` is shaped like an S256 challenge: base64url of 32 bytes.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(is_b64url)
}

/// Whether `verifier` is a valid code verifier (43–128 unreserved characters) whose
/// SHA-256 is `challenge`.
pub fn verify(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && constant_time_eq(&s256(verifier), challenge)
}

/// `BASE64URL(SHA256(verifier))`.
pub fn s256(verifier: &str) -> String {
    b64url(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(valid_challenge(challenge));
        assert!(verify(challenge, verifier));
    }

    #[test]
    fn wrong_short_or_odd_verifiers_fail() {
        let challenge = s256(&"a".repeat(43));
        assert!(verify(&challenge, &"a".repeat(43)));
        assert!(!verify(&challenge, &"b".repeat(43)));
        assert!(!verify(&s256("short"), "short"));
        let odd = format!("{}!", "a".repeat(42));
        assert!(!verify(&s256(&odd), &odd));
        assert!(!valid_challenge("plain-challenge"));
        assert!(!valid_challenge(&"a".repeat(44)));
    }
}
