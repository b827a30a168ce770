//! The signing key ring: key files in `<data dir>/keys/`, in two families.
//!
//! - **Ed25519** (`ed25519-<created ms>.pk8`) signs everything Tollgate issues and reads
//!   back itself (access tokens, assertions, flow tokens, audit checkpoints) and, when a
//!   client asks for it, ID tokens.
//! - **RSA-2048** (`rsa-<created ms>.pk8`) signs ID tokens `RS256`, the algorithm every
//!   OpenID Connect library understands (OIDC Discovery requires providers to offer it).
//! - **P-256** (`p256-<created ms>.pk8`) signs `ES256`.
//!
//! Access tokens and identity assertions are read by resource servers, some of whose JOSE
//! libraries have no Ed25519 (Java's, Apache's): `[tokens] access_token_alg` picks the
//! family that signs them (`EdDSA`, `ES256` or `RS256`); every family is always published,
//! so changing the setting needs no new key and outstanding tokens still verify.
//! In each family the newest key older than [`ACTIVATION_DELAY_MS`] signs (the only key,
//! on first start); a newer one is already published and accepted, so every node has it
//! before it is used. Older keys stay published until every token they could have signed
//! has expired: a key retires when its successor activates, and is dropped `access_ttl`
//! plus a margin later. `tollgate keys rotate` writes a new key of each family; running
//! servers pick them up on their next [`KeyRing::reload`]. Nodes that share a database
//! mount the same key directory (see docs/deployment.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::json;

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

/// A kind of key, with the one algorithm it signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ed25519,
    Rsa,
    P256,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Ed25519, Family::Rsa, Family::P256];

    pub fn alg(self) -> Algorithm {
        match self {
            Family::Ed25519 => Algorithm::EdDSA,
            Family::Rsa => Algorithm::RS256,
            Family::P256 => Algorithm::ES256,
        }
    }

    /// The JOSE name of [`Family::alg`].
    pub fn alg_name(self) -> &'static str {
        match self {
            Family::Ed25519 => "EdDSA",
            Family::Rsa => "RS256",
            Family::P256 => "ES256",
        }
    }

    /// Every algorithm the ring signs with: what a verifier accepts when each key may
    /// only be used with its own ([`KeyRing::verify`] narrows to the key's).
    pub fn algorithms() -> Vec<Algorithm> {
        Family::ALL.iter().map(|f| f.alg()).collect()
    }

    /// The family that signs `alg` (a JOSE name), if Tollgate signs with it.
    pub fn of_alg_name(alg: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.alg_name() == alg)
    }

    fn prefix(self) -> &'static str {
        match self {
            Family::Ed25519 => "ed25519-",
            Family::Rsa => "rsa-",
            Family::P256 => "p256-",
        }
    }
}

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
    pub family: Family,
    pub created_ms: i64,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public key as a JWK (RFC 7517/8037), with `kid`, `use` and `alg`.
    pub jwk: serde_json::Value,
}

/// An immutable snapshot of the ring: swapped whole on reload.
pub struct KeySet {
    /// The Ed25519 key that signs now.
    pub active: Arc<SigningKey>,
    /// The RSA key that signs `RS256` now.
    pub active_rsa: Arc<SigningKey>,
    /// The P-256 key that signs `ES256` now.
    pub active_p256: Arc<SigningKey>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    /// The JWKS document, rendered once per snapshot.
    pub jwks: serde_json::Value,
}

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.by_kid.get(kid)
    }

    fn active_of(&self, family: Family) -> &Arc<SigningKey> {
        match family {
            Family::Ed25519 => &self.active,
            Family::Rsa => &self.active_rsa,
            Family::P256 => &self.active_p256,
        }
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
    /// Opens the ring, creating the directory and a first key of each family when there
    /// is none (a ring from before RSA keys gets its first one here).
    pub fn open(dir: &Path, access_ttl: std::time::Duration) -> Result<KeyRing> {
        create_private_dir(dir)?;
        for family in Family::ALL {
            if list_key_files(dir, family)?.is_empty() {
                write_new_key(dir, family)?;
            }
        }
        let access_ttl_ms = access_ttl.as_millis() as i64;
        let set = load(dir, access_ttl_ms, crate::clock::now_ms())?;
        Ok(KeyRing {
            dir: dir.to_path_buf(),
            access_ttl_ms,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The ring's key for `token`, after the header checks every JWT must pass before any
    /// cryptography: a `kid` in the ring, `alg` the one that key signs with (never what the
    /// token chooses), a `typ` that `typ_ok` accepts, no `crit`.
    pub fn key_for(&self, token: &str, typ_ok: impl Fn(&str) -> bool) -> Result<Arc<SigningKey>> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.current().get(kid).cloned())
            .ok_or(Error::InvalidToken)?;
        if header.alg != key.family.alg()
            || !header.typ.as_deref().is_some_and(typ_ok)
            || header.crit.is_some()
        {
            return Err(Error::InvalidToken);
        }
        Ok(key)
    }

    /// Signs `claims` with the active Ed25519 key as a compact JWS of type `typ`. Every
    /// JWT Tollgate issues goes through here (or [`KeyRing::sign_as`]), each kind with its
    /// own `typ` (RFC 8725 §3.11), so one kind can never be taken for another.
    pub fn sign<T: serde::Serialize>(&self, typ: &str, claims: &T) -> Result<String> {
        self.sign_as(Family::Ed25519, typ, claims)
    }

    /// [`KeyRing::sign`] with the active key of `family`.
    pub fn sign_as<T: serde::Serialize>(
        &self,
        family: Family,
        typ: &str,
        claims: &T,
    ) -> Result<String> {
        let key = self.current().active_of(family).clone();
        let mut header = jsonwebtoken::Header::new(family.alg());
        header.typ = Some(typ.to_string());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| Error::Internal(format!("signing a {typ} failed: {e}")))
    }

    /// The header checks of [`KeyRing::key_for`], then the signature and `validation`'s
    /// checks (whose `algorithms` say which families the caller accepts); returns the
    /// verifying key with the claims.
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
        if !validation.algorithms.contains(&key.family.alg()) {
            return Err(Error::InvalidToken);
        }
        // jsonwebtoken wants the algorithms of one family: the key's, which is allowed.
        let claims = if validation.algorithms.len() == 1 {
            decode_claims(token, &key, validation)?
        } else {
            let mut narrowed = validation.clone();
            narrowed.algorithms = vec![key.family.alg()];
            decode_claims(token, &key, &narrowed)?
        };
        Ok((key, claims))
    }

    /// Writes a new key of each family; returns the Ed25519 key's kid and the Unix second
    /// it starts signing. Servers publish them on their next reload.
    pub fn rotate(dir: &Path) -> Result<(String, i64)> {
        create_private_dir(dir)?;
        let path = write_new_key(dir, Family::Ed25519)?;
        write_new_key(dir, Family::Rsa)?;
        write_new_key(dir, Family::P256)?;
        let key = read_key(&path, Family::Ed25519)?
            .ok_or_else(|| Error::Internal("new key unreadable".into()))?;
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
        let set = load(&self.dir, self.access_ttl_ms, crate::clock::now_ms())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }
}

/// Every Ed25519 public key the directory vouches for, live or retired, by `kid`: what
/// audit checkpoints are verified against.
pub fn verification_keys(dir: &Path) -> Result<HashMap<String, DecodingKey>> {
    let mut out = HashMap::new();
    for (_, path) in list_key_files(dir, Family::Ed25519)? {
        if let Some(k) = read_key(&path, Family::Ed25519)? {
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
        // The name must be the key's own thumbprint: a swapped file cannot pose as another kid.
        if thumbprint(&okp_members(x.trim())) == kid
            && let Ok(key) = DecodingKey::from_ed_components(x.trim())
        {
            out.insert(kid, key);
        }
    }
    Ok(out)
}

/// The RFC 7638 thumbprint input of an Ed25519 key: its required members, sorted.
fn okp_members(x: &str) -> String {
    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#)
}

/// The RFC 7638 thumbprint input of a P-256 key.
fn ec_members(x: &str, y: &str) -> String {
    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
}

/// The RFC 7638 thumbprint input of an RSA key.
fn rsa_members(n: &str, e: &str) -> String {
    format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)
}

/// The key's `kid`: base64url of the SHA-256 of its thumbprint input (RFC 7638).
fn thumbprint(members: &str) -> String {
    b64url(digest::digest(&digest::SHA256, members.as_bytes()).as_ref())
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

/// `(created_ms, path)` of every key file of `family`, oldest first.
fn list_key_files(dir: &Path, family: Family) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("cannot read key directory", dir, e))? {
        let path = entry
            .map_err(|e| io_err("cannot read key directory", dir, e))?
            .path();
        if let Some(ms) = created_ms_of(&path, family) {
            out.push((ms, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The creation time in a key file's name, if it is a key file of `family`.
fn created_ms_of(path: &Path, family: Family) -> Option<i64> {
    path.file_name()?
        .to_str()?
        .strip_prefix(family.prefix())?
        .strip_suffix(".pk8")?
        .parse()
        .ok()
}

/// Generates a key (PKCS#8 v1: the form JWK export and jsonwebtoken accept) and writes it
/// with owner-only permissions, atomically (temp file + rename).
fn write_new_key(dir: &Path, family: Family) -> Result<PathBuf> {
    let failed = || Error::Internal(format!("{family:?} key generation failed"));
    let pkcs8: Vec<u8> = match family {
        Family::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| failed())?
            .as_ref()
            .to_vec(),
        Family::P256 => EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| failed())?
        .as_ref()
        .to_vec(),
        Family::Rsa => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| failed())?
            .as_der()
            .map_err(|_| failed())?
            .as_ref()
            .to_vec(),
    };
    // Names must be unique and ordered even for two rotations in one millisecond.
    let newest = list_key_files(dir, family)?
        .last()
        .map(|(ms, _)| *ms)
        .unwrap_or(0);
    let created = crate::clock::now_ms().max(newest + 1);
    let prefix = family.prefix();
    let path = dir.join(format!("{prefix}{created}.pk8"));
    let tmp = dir.join(format!(".{prefix}{created}.tmp"));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .map_err(|e| io_err("cannot write key", &tmp, e))?;
        f.write_all(&pkcs8)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("cannot write key", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io_err("cannot install key", &path, e))?;
    Ok(path)
}

fn read_key(path: &Path, family: Family) -> Result<Option<SigningKey>> {
    let Some(created_ms) = created_ms_of(path, family) else {
        return Ok(None);
    };
    let der = match std::fs::read(path) {
        Ok(d) => d,
        // Pruned by another process between listing and reading.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read key", path, e)),
    };
    let not_a_key =
        || Error::Internal(format!("{} is not a {family:?} PKCS#8 key", path.display()));
    let (kid, encoding, decoding, members) = match family {
        Family::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| not_a_key())?;
            let x = b64url(pair.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x)
                .map_err(|e| Error::Internal(format!("public key: {e}")))?;
            let kid = thumbprint(&okp_members(&x));
            let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
            (kid, EncodingKey::from_ed_der(&der), decoding, jwk)
        }
        Family::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).map_err(|_| not_a_key())?;
            let public = pair.public_key();
            let n = b64url(public.modulus().big_endian_without_leading_zero());
            let e = b64url(public.exponent().big_endian_without_leading_zero());
            let decoding = DecodingKey::from_rsa_components(&n, &e)
                .map_err(|e| Error::Internal(format!("public key: {e}")))?;
            // jsonwebtoken reads RSA private keys from PEM (PKCS#8 is unwrapped there).
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(&der)
            );
            let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| not_a_key())?;
            let kid = thumbprint(&rsa_members(&n, &e));
            let jwk = json!({ "kty": "RSA", "n": n, "e": e });
            (kid, encoding, decoding, jwk)
        }
        Family::P256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|_| not_a_key())?;
            // An uncompressed point: 0x04, then x and y of 32 bytes each.
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(not_a_key());
            }
            let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
            let decoding = DecodingKey::from_ec_components(&x, &y)
                .map_err(|e| Error::Internal(format!("public key: {e}")))?;
            let kid = thumbprint(&ec_members(&x, &y));
            let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
            (kid, EncodingKey::from_ec_der(&der), decoding, jwk)
        }
    };
    let mut jwk = members;
    jwk["kid"] = kid.clone().into();
    jwk["use"] = "sig".into();
    jwk["alg"] = family.alg_name().into();
    Ok(Some(SigningKey {
        kid,
        family,
        created_ms,
        encoding,
        decoding,
        jwk,
    }))
}

/// Loads the keys still within their lifetime and deletes the files of those past it.
fn load(dir: &Path, access_ttl_ms: i64, now: i64) -> Result<KeySet> {
    let mut all: Vec<Arc<SigningKey>> = Vec::new();
    let mut active = Vec::new();
    for family in Family::ALL {
        let files = list_key_files(dir, family)?;
        let mut keys = Vec::new();
        for (i, (_, path)) in files.iter().enumerate() {
            let retired_at = files.get(i + 1).map(|(ms, _)| *ms + ACTIVATION_DELAY_MS);
            if let Some(r) = retired_at
                && now > r + access_ttl_ms + RETIRE_MARGIN_MS
            {
                // Every token this key signed has expired. An Ed25519 key's public half
                // stays: audit checkpoints it signed must remain verifiable.
                if family == Family::Ed25519
                    && let Ok(Some(k)) = read_key(path, family)
                    && let Some(x) = k.jwk["x"].as_str()
                {
                    let public = dir.join(format!("retired-{}.pub", k.kid));
                    if !public.exists() {
                        let _ = std::fs::write(&public, x);
                    }
                }
                let _ = std::fs::remove_file(path);
                continue;
            }
            if let Some(k) = read_key(path, family)? {
                keys.push(Arc::new(k));
            }
        }
        let signing = keys
            .iter()
            .rev()
            .find(|k| k.created_ms + ACTIVATION_DELAY_MS <= now)
            .or(keys.first())
            .cloned()
            .ok_or_else(|| {
                Error::Internal(format!("no {family:?} signing key in {}", dir.display()))
            })?;
        active.push(signing);
        // Newest first within a family; Ed25519 (the default) first.
        all.extend(keys.into_iter().rev());
    }
    let jwks = json!({
        "keys": all.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()
    });
    let active_p256 = active.pop().expect("one per family");
    let active_rsa = active.pop().expect("one per family");
    let active = active.pop().expect("one per family");
    let by_kid = all.into_iter().map(|k| (k.kid.clone(), k)).collect();
    Ok(KeySet {
        active,
        active_rsa,
        active_p256,
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
        // Two generations of three families.
        assert_eq!(set.jwks["keys"].as_array().unwrap().len(), 6);
        let later = load(
            &dir,
            900_000,
            crate::clock::now_ms() + ACTIVATION_DELAY_MS + 1,
        )
        .unwrap();
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
        let later = crate::clock::now_ms() + ACTIVATION_DELAY_MS + 1000 + RETIRE_MARGIN_MS + 10;
        let set = load(&dir, 1000, later).unwrap();
        assert!(set.get(&first).is_none());
        assert_eq!(list_key_files(&dir, Family::Ed25519).unwrap().len(), 1);
        assert_eq!(list_key_files(&dir, Family::Rsa).unwrap().len(), 1);
        assert_eq!(list_key_files(&dir, Family::P256).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    /// The ring's published key of type `kty`.
    fn published(ring: &KeyRing, kty: &str) -> serde_json::Value {
        ring.current().jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == kty)
            .unwrap()
            .clone()
    }

    /// Signs test claims with `family`, checks the header names `jwk`, and has an
    /// independent verifier (jsonwebtoken with the published JWK alone) accept them.
    fn signed_and_verified_by_jwk(
        ring: &KeyRing,
        family: Family,
        jwk: serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        let token = ring.sign_as(family, "JWT", claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, family.alg());
        assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(family.alg());
        v.set_audience(&["a"]);
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &v,
        )
        .unwrap();
        token
    }

    /// `token` with its header's `alg` replaced (signature unchanged).
    fn with_header_alg(token: &str, alg: &str) -> String {
        let (head, rest) = token.split_once('.').unwrap();
        let mut header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(head)
                .unwrap(),
        )
        .unwrap();
        header["alg"] = alg.into();
        format!("{}.{rest}", b64url(header.to_string().as_bytes()))
    }

    #[test]
    fn rsa_keys_sign_rs256_and_are_published_as_rsa_jwks() {
        let dir = temp_dir();
        let ring = KeyRing::open(&dir, Duration::from_secs(900)).unwrap();
        let rsa = published(&ring, "RSA");
        assert_eq!(
            (rsa["alg"].as_str(), rsa["use"].as_str()),
            (Some("RS256"), Some("sig"))
        );
        assert_eq!(rsa["e"], "AQAB");
        assert!(rsa["n"].as_str().unwrap().len() >= 342, "2048 bits");
        let claims = json!({ "sub": "u1", "iss": "i", "aud": "a", "exp": 4_000_000_000i64 });
        let token = signed_and_verified_by_jwk(&ring, Family::Rsa, rsa.clone(), &claims);
        // The ring refuses an RSA-signed token where only EdDSA is accepted, and a token
        // whose header claims another algorithm than its key's.
        let edonly = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        assert!(
            ring.verify::<serde_json::Value>(&token, |_| true, &edonly)
                .is_err()
        );
        let mut forged = jsonwebtoken::Header::new(Algorithm::HS256);
        forged.kid = rsa["kid"].as_str().map(str::to_string);
        forged.typ = Some("JWT".into());
        let hs = jsonwebtoken::encode(&forged, &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert!(ring.key_for(&hs, |_| true).is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn p256_keys_sign_es256_and_are_published_as_ec_jwks() {
        let dir = temp_dir();
        let ring = KeyRing::open(&dir, Duration::from_secs(900)).unwrap();
        let ec = published(&ring, "EC");
        assert_eq!(
            (ec["alg"].as_str(), ec["crv"].as_str()),
            (Some("ES256"), Some("P-256"))
        );
        let claims = json!({ "sub": "u1", "aud": "a", "exp": 4_000_000_000i64 });
        let token = signed_and_verified_by_jwk(&ring, Family::P256, ec, &claims);
        // With every family accepted, the key still decides: an ES256 token whose header
        // names another algorithm is refused before any cryptography.
        let mut all = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        all.algorithms = Family::algorithms();
        all.set_audience(&["a"]);
        ring.verify::<serde_json::Value>(&token, |_| true, &all)
            .unwrap();
        for alg in ["EdDSA", "RS256", "HS256", "none"] {
            let swapped = with_header_alg(&token, alg);
            assert!(ring.key_for(&swapped, |_| true).is_err(), "{alg}");
            assert!(
                ring.verify::<serde_json::Value>(&swapped, |_| true, &all)
                    .is_err(),
                "{alg}"
            );
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
