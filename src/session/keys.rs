//! The signing key ring: Ed25519 keys as PKCS#8 files in `<data dir>/keys/`.
//!
//! The newest key older than [`ACTIVATION_DELAY_MS`] signs (the only key, on first start);
//! a newer one is already published and accepted, so every node has it before it is used.
//! Older keys stay published until every token they could have signed has expired: a key
//! retires when its successor activates, and is dropped `access_ttl` plus a margin later. `tollgate keys rotate` just writes a new
//! file; running servers pick it up on their next [`KeyRing::reload`]. Nodes that share a
//! database mount the same key directory (see docs/deployment.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::error::{Error, Result};
use crate::secret::b64url;

/// How long past `access_ttl` a retired key stays: covers the reload interval, clock
/// leeway and tokens signed in flight.
const RETIRE_MARGIN_MS: i64 = 60_000;
/// How often servers re-read the key directory.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// A new key is published at once but signs only after this delay, by which time every
/// node sharing the directory has loaded it: no node ever meets a `kid` it cannot verify.
pub const ACTIVATION_DELAY_MS: i64 = 3 * RELOAD_INTERVAL.as_millis() as i64;

/// JWTs longer than this are refused before any parsing.
pub const MAX_JWT_BYTES: usize = 8 * 1024;

/// Checks signature and claims with `key`; an expired token is told apart from a bad one.
fn decode_claims<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &SigningKey,
    validation: &jsonwebtoken::Validation,
) -> Result<T> {
    match jsonwebtoken::decode::<T>(token, &key.decoding, validation) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err(Error::TokenExpired)
        }
        Err(_) => Err(Error::InvalidToken),
    }
}

pub struct SigningKey {
    pub kid: String,
    pub created_ms: i64,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Base64url of the raw 32-byte public key (the JWK `x`).
    pub x: String,
}

/// An immutable snapshot of the ring: swapped whole on reload.
pub struct KeySet {
    pub active: Arc<SigningKey>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    /// The JWKS document, rendered once per snapshot.
    pub jwks: serde_json::Value,
}

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.by_kid.get(kid)
    }
}

pub struct KeyRing {
    dir: PathBuf,
    access_ttl_ms: i64,
    current: RwLock<Arc<KeySet>>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{what} {}: {e}", path.display()))
}

impl KeyRing {
    /// Opens the ring, creating the directory and a first key when there is none.
    pub fn open(dir: &Path, access_ttl: std::time::Duration) -> Result<KeyRing> {
        create_private_dir(dir)?;
        if list_key_files(dir)?.is_empty() {
            write_new_key(dir)?;
        }
        let access_ttl_ms = access_ttl.as_millis() as i64;
        let set = load(dir, access_ttl_ms, now_ms())?;
        Ok(KeyRing {
            dir: dir.to_path_buf(),
            access_ttl_ms,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The ring's key for `token`, after the header checks every Tollgate JWT must pass
    /// before any cryptography: `alg` EdDSA (never what the token chooses), a `typ` that
    /// `typ_ok` accepts, no `crit`, and a `kid` in the ring.
    pub fn key_for(&self, token: &str, typ_ok: impl Fn(&str) -> bool) -> Result<Arc<SigningKey>> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)?;
        if header.alg != jsonwebtoken::Algorithm::EdDSA
            || !header.typ.as_deref().is_some_and(typ_ok)
            || header.crit.is_some()
        {
            return Err(Error::InvalidToken);
        }
        header
            .kid
            .as_deref()
            .and_then(|kid| self.current().get(kid).cloned())
            .ok_or(Error::InvalidToken)
    }

    /// Signs `claims` with the active key as a compact JWS of type `typ`. Every JWT
    /// Tollgate issues goes through here, each kind with its own `typ` (RFC 8725 §3.11),
    /// so one kind can never be taken for another.
    pub fn sign<T: serde::Serialize>(&self, typ: &str, claims: &T) -> Result<String> {
        let key = self.current().active.clone();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(typ.to_string());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| Error::Internal(format!("signing a {typ} failed: {e}")))
    }

    /// The header checks of [`KeyRing::key_for`], then the signature and `validation`'s
    /// claim checks; returns the verifying key with the claims.
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ_ok: impl Fn(&str) -> bool,
        validation: &jsonwebtoken::Validation,
    ) -> Result<(Arc<SigningKey>, T)> {
        if token.is_empty() || token.len() > MAX_JWT_BYTES {
            return Err(Error::InvalidToken);
        }
        let key = self.key_for(token, typ_ok)?;
        let claims = decode_claims(token, &key, validation)?;
        Ok((key, claims))
    }

    /// Writes a new signing key; returns its kid and the Unix second it starts signing.
    /// Servers publish it on their next reload.
    pub fn rotate(dir: &Path) -> Result<(String, i64)> {
        create_private_dir(dir)?;
        let path = write_new_key(dir)?;
        let key = read_key(&path)?.ok_or_else(|| Error::Internal("new key unreadable".into()))?;
        Ok((key.kid, (key.created_ms + ACTIVATION_DELAY_MS) / 1000))
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the directory; removes key files whose tokens have all expired.
    pub fn reload(&self) -> Result<()> {
        let set = load(&self.dir, self.access_ttl_ms, now_ms())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }
}

/// Every public key the directory vouches for, live or retired, by `kid`: what audit
/// checkpoints are verified against.
pub fn verification_keys(dir: &Path) -> Result<HashMap<String, DecodingKey>> {
    let mut out = HashMap::new();
    for (_, path) in list_key_files(dir)? {
        if let Some(k) = read_key(&path)? {
            out.insert(k.kid, k.decoding);
        }
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("cannot read key directory", dir, e))? {
        let path = entry
            .map_err(|e| io_err("cannot read key directory", dir, e))?
            .path();
        let Some(kid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("retired-")?.strip_suffix(".pub"))
            .map(str::to_string)
        else {
            continue;
        };
        let x = std::fs::read_to_string(&path).map_err(|e| io_err("cannot read key", &path, e))?;
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, x.trim());
        let computed =
            b64url(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()).as_ref());
        // The name must be the key's own thumbprint: a swapped file cannot pose as another kid.
        if computed == kid
            && let Ok(key) = DecodingKey::from_ed_components(x.trim())
        {
            out.insert(kid, key);
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create key directory", dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("cannot restrict key directory", dir, e))?;
    }
    Ok(())
}

/// `(created_ms, path)` of every key file, oldest first.
fn list_key_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("cannot read key directory", dir, e))? {
        let path = entry
            .map_err(|e| io_err("cannot read key directory", dir, e))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(ms) = name
            .strip_prefix("ed25519-")
            .and_then(|n| n.strip_suffix(".pk8"))
            .and_then(|n| n.parse().ok())
        {
            out.push((ms, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Generates a key (PKCS#8 v1: the form JWK export and jsonwebtoken accept) and writes it
/// with owner-only permissions, atomically (temp file + rename).
fn write_new_key(dir: &Path) -> Result<PathBuf> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| Error::Internal("Ed25519 key generation failed".into()))?;
    // Names must be unique and ordered even for two rotations in one millisecond.
    let newest = list_key_files(dir)?.last().map(|(ms, _)| *ms).unwrap_or(0);
    let created = now_ms().max(newest + 1);
    let path = dir.join(format!("ed25519-{created}.pk8"));
    let tmp = dir.join(format!(".ed25519-{created}.tmp"));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .map_err(|e| io_err("cannot write key", &tmp, e))?;
        f.write_all(pkcs8.as_ref())
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("cannot write key", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io_err("cannot install key", &path, e))?;
    Ok(path)
}

fn read_key(path: &Path) -> Result<Option<SigningKey>> {
    let Some(created_ms) = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
        n.strip_prefix("ed25519-")?
            .strip_suffix(".pk8")?
            .parse()
            .ok()
    }) else {
        return Ok(None);
    };
    let der = match std::fs::read(path) {
        Ok(d) => d,
        // Pruned by another process between listing and reading.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read key", path, e)),
    };
    let pair = Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| Error::Internal(format!("{} is not an Ed25519 PKCS#8 key", path.display())))?;
    let x = b64url(pair.public_key().as_ref());
    let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = b64url(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()).as_ref());
    let decoding = DecodingKey::from_ed_components(&x)
        .map_err(|e| Error::Internal(format!("public key: {e}")))?;
    Ok(Some(SigningKey {
        kid,
        created_ms,
        encoding: EncodingKey::from_ed_der(&der),
        decoding,
        x,
    }))
}

/// Loads the keys still within their lifetime and deletes the files of those past it.
fn load(dir: &Path, access_ttl_ms: i64, now: i64) -> Result<KeySet> {
    let files = list_key_files(dir)?;
    let mut keys = Vec::new();
    for (i, (_, path)) in files.iter().enumerate() {
        let retired_at = files.get(i + 1).map(|(ms, _)| *ms + ACTIVATION_DELAY_MS);
        if let Some(r) = retired_at
            && now > r + access_ttl_ms + RETIRE_MARGIN_MS
        {
            // Every token this key signed has expired. The public half stays: audit
            // checkpoints it signed must remain verifiable.
            if let Ok(Some(k)) = read_key(path) {
                let public = dir.join(format!("retired-{}.pub", k.kid));
                if !public.exists() {
                    let _ = std::fs::write(&public, &k.x);
                }
            }
            let _ = std::fs::remove_file(path);
            continue;
        }
        if let Some(k) = read_key(path)? {
            keys.push(Arc::new(k));
        }
    }
    let active = keys
        .iter()
        .rev()
        .find(|k| k.created_ms + ACTIVATION_DELAY_MS <= now)
        .or(keys.first())
        .cloned()
        .ok_or_else(|| Error::Internal(format!("no signing key in {}", dir.display())))?;
    let jwks = serde_json::json!({
        "keys": keys.iter().rev().map(|k| serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid, "use": "sig", "alg": "EdDSA",
        })).collect::<Vec<_>>()
    });
    let by_kid = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
    Ok(KeySet {
        active,
        by_kid,
        jwks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("tollgate-keys-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn open_creates_a_key_and_rotation_keeps_the_old_one_published() {
        let dir = temp_dir();
        let ring = KeyRing::open(&dir, Duration::from_secs(900)).unwrap();
        let first = ring.current().active.kid.clone();
        let (second, _) = KeyRing::rotate(&dir).unwrap();
        ring.reload().unwrap();
        let set = ring.current();
        assert_eq!(
            set.active.kid, first,
            "a new key is published before it signs"
        );
        assert!(set.get(&second).is_some());
        assert_eq!(set.jwks["keys"].as_array().unwrap().len(), 2);
        let later = load(&dir, 900_000, now_ms() + ACTIVATION_DELAY_MS + 1).unwrap();
        assert_eq!(later.active.kid, second);
        assert!(later.get(&first).is_some(), "retired key still verifies");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn retired_keys_are_dropped_after_their_tokens_expire() {
        let dir = temp_dir();
        let ring = KeyRing::open(&dir, Duration::from_secs(1)).unwrap();
        let first = ring.current().active.kid.clone();
        KeyRing::rotate(&dir).unwrap();
        let later = now_ms() + ACTIVATION_DELAY_MS + 1000 + RETIRE_MARGIN_MS + 10;
        let set = load(&dir, 1000, later).unwrap();
        assert!(set.get(&first).is_none());
        assert_eq!(list_key_files(&dir).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
