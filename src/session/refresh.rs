//! Refresh-token successor sealing.
//!
//! When a refresh token is spent, its successor is stored encrypted (AES-256-GCM) under a
//! key derived (HKDF-SHA256) from the spent token itself. Only someone presenting the spent
//! token can recover the successor, which is what the grace window needs ("a racing tab
//! gets the same successor"), while the database holds nothing that could be used as a
//! token: the spent token exists there only as its hash.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

use crate::secret::{b64url, from_b64url, random_bytes};

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
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let mut data = successor.as_bytes().to_vec();
    key_for(spent)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(SALT),
            &mut data,
        )
        .expect("AES-GCM sealing of a short message cannot fail");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    b64url(&out)
}

/// Recovers the successor; `None` if `sealed` was not made for `spent`.
pub fn open(spent: &str, sealed: &str) -> Option<String> {
    let raw = from_b64url(sealed)?;
    if raw.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let mut buf = ct.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key_for(spent)
        .open_in_place(nonce, Aad::from(SALT), &mut buf)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
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
