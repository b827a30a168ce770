//! Signed checkpoints: the chain's head, signed now and then with the service key.
//!
//! A chain alone proves order and integrity only against someone who cannot recompute
//! it; anyone with write access to the database can. A checkpoint is a compact JWS
//! (EdDSA, `typ` [`TYP`]) over `{seq, hash}`, signed with the ring's active key, whose
//! private half never enters the database. `audit verify` checks each checkpoint's
//! signature against the key directory (live keys and the public halves of retired ones)
//! and that the entry at `seq` still has that hash.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::KeyRing;

pub const TYP: &str = "tollgate-audit-checkpoint+jwt";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    iat: i64,
    seq: i64,
    hash: String,
}

/// Signs `(seq, hash)` with the ring's active key.
pub fn sign(keys: &KeyRing, issuer: &str, seq: i64, hash: &str, now: i64) -> Result<String> {
    let claims = Claims {
        iss: issuer.to_string(),
        iat: now,
        seq,
        hash: hash.to_string(),
    };
    keys.sign(TYP, &claims)
}

/// Checks a checkpoint's signature with one of `keys` (by `kid`) and returns the
/// `(seq, hash)` it vouches for; `Err` says why it cannot be trusted.
pub fn open(
    token: &str,
    keys: &HashMap<String, DecodingKey>,
) -> std::result::Result<(i64, String), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWS".to_string())?;
    if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(TYP) || header.crit.is_some()
    {
        return Err("wrong algorithm or type".into());
    }
    let kid = header.kid.unwrap_or_default();
    let key = keys
        .get(&kid)
        .ok_or_else(|| format!("signed by key '{kid}', which is not in the key directory"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|_| "the signature does not verify".to_string())?;
    Ok((data.claims.seq, data.claims.hash))
}

/// Signs a checkpoint of the chain's head if it moved since the last one; returns the
/// position signed.
pub async fn write(
    store: &crate::store::Store,
    keys: &KeyRing,
    issuer: &str,
) -> Result<Option<i64>> {
    let (seq, hash) = store.audit_head().await?;
    if seq == 0 || store.last_audit_checkpoint().await? >= seq {
        return Ok(None);
    }
    let now_ms = crate::clock::now_ms();
    let token = sign(keys, issuer, seq, &hash, now_ms / 1000)?;
    store
        .insert_audit_checkpoint(seq, &hash, now_ms, &token)
        .await?;
    Ok(Some(seq))
}
