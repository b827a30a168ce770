//! Refresh-token successor sealing.
//!
//! When a refresh token is spent, its successor is stored encrypted (AES-256-GCM) under a
//! key derived (HKDF-SHA256) from the spent token itself. Only someone presenting the spent
//! token can recover the successor, which is what the grace window needs ("a racing tab
//! gets the same successor"), while the database holds nothing that could be used as a
//! token: the spent token exists there only as its hash.

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

const SALT: &[u8] = b"tollgate/refresh-successor/v1";

fn key_for(spent: &str) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(spent.as_bytes());
    let okm = prk
        .expand(&[b"aes-256-gcm"], &AES_256_GCM)
        .expect("HKDF output length is valid for AES-256");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Encrypts `successor` for whoever holds `spent`.
pub fn seal(spent: &str, successor: &str) -> String {
    crate::secret::seal(&key_for(spent), SALT, successor.as_bytes())
}

/// Recovers the successor; `None` if `sealed` was not made for `spent`.
pub fn open(spent: &str, sealed: &str) -> Option<String> {
    let plain = crate::secret::unseal(&key_for(spent), SALT, sealed)?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_spent_token_opens_its_successor() {
        let spent = crate::secret::generate();
        let next = crate::secret::generate();
        let sealed = seal(&spent, &next);
        assert!(!sealed.contains(&next));
        assert_eq!(open(&spent, &sealed).as_deref(), Some(next.as_str()));
        assert_eq!(open(&crate::secret::generate(), &sealed), None);
        assert_eq!(open(&spent, "garbage"), None);
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(&spent, std::str::from_utf8(&tampered).unwrap()), None);
    }
}
