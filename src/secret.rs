//! Generated secrets and their at-rest form.
//!
//! Every secret Tollgate hands out (refresh tokens, CSRF tokens, later API keys and client
//! secrets) is 256 bits from the operating system's CSPRNG, encoded as unpadded base64url so
//! it only uses `A-Z a-z 0-9 _ -`. Secrets are stored as their SHA-256: they carry full
//! entropy, so a slow hash would add cost without adding safety.

use aws_lc_rs::{digest, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A fresh 256-bit secret, base64url without padding (43 characters).
pub fn generate() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // aws-lc's RNG only fails if the OS entropy source is gone; nothing safe can go on then.
    rand::fill(&mut out).expect("system random number generator failed");
    out
}

/// The at-rest lookup key for a secret: hex SHA-256.
pub fn digest_hex(secret: &str) -> String {
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Base64url (no padding) of arbitrary bytes.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` for anything else.
pub fn from_b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Constant-time equality for secrets compared against attacker input.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_43_url_safe_chars_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }

    #[test]
    fn digest_is_stable_hex() {
        assert_eq!(digest_hex("abc").len(), 64);
        assert_eq!(digest_hex("abc"), digest_hex("abc"));
        assert_ne!(digest_hex("abc"), digest_hex("abd"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq("same", "same"));
        assert!(!constant_time_eq("same", "sama"));
        assert!(!constant_time_eq("same", "same!"));
    }
}
