//! Generated secrets and their at-rest form.
//!
//! Every secret Tollgate hands out (refresh tokens, CSRF tokens, later API keys and client
//! secrets) is 256 bits from the operating system's CSPRNG, encoded as unpadded base64url so
//! it only uses `A-Z a-z 0-9 _ -`. Secrets are stored as their SHA-256: they carry full
//! entropy, so a slow hash would add cost without adding safety.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
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

/// AES-256-GCM of `plain` under `key`, bound to `aad`: base64url of nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> String {
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad),
        &mut data,
    )
    .expect("AES-GCM sealing of a short message cannot fail");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    b64url(&out)
}

/// What [`seal`] sealed with the same key and `aad`; `None` for anything else.
pub fn unseal(key: &LessSafeKey, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let raw = from_b64url(sealed)?;
    if raw.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let mut buf = ct.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// Seals secrets Tollgate must read back (TOTP secrets) under a key kept in the key
/// directory (`seal.key`, 256 random bits made once; every node sharing the directory
/// reads the same), each bound to its owner so a sealed value cannot be moved to another
/// account.
pub struct Sealer(LessSafeKey);

impl Sealer {
    const FILE: &'static str = "seal.key";

    /// Reads the key from `dir`, making it first if there is none (the first of racing
    /// processes wins; the others read its key).
    pub fn open(dir: &std::path::Path) -> std::io::Result<Sealer> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            let tmp = dir.join(format!(".seal.{}.tmp", uuid::Uuid::new_v4()));
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp)?;
                f.write_all(&random_bytes::<32>())?;
                f.sync_all()?;
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let bytes = std::fs::read(&path)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a 256-bit key", path.display()),
            )
        })?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    pub fn seal(&self, owner: &str, plain: &[u8]) -> String {
        seal(&self.0, owner.as_bytes(), plain)
    }

    pub fn unseal(&self, owner: &str, sealed: &str) -> Option<Vec<u8>> {
        unseal(&self.0, owner.as_bytes(), sealed)
    }
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

    #[test]
    fn sealed_values_open_only_for_their_owner_and_key() {
        let dir = std::env::temp_dir().join(format!("tollgate-seal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Sealer::open(&dir).unwrap();
        let sealed = a.seal("u1", b"totp secret");
        assert!(!sealed.contains("totp"));
        // The same directory, another process: the same key.
        let b = Sealer::open(&dir).unwrap();
        assert_eq!(
            b.unseal("u1", &sealed).as_deref(),
            Some(&b"totp secret"[..])
        );
        assert_eq!(b.unseal("u2", &sealed), None);
        let other = std::env::temp_dir().join(format!("tollgate-seal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(Sealer::open(&other).unwrap().unseal("u1", &sealed), None);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(other);
    }
}
