//! Access tokens: RFC 9068 JWTs signed with the ring's active key of the configured family
//! (`[tokens] access_token_alg`: Ed25519 by default), and their verification.
//!
//! Verification is the gateway's hot path. A full check (header, `kid`, signature,
//! `iss`, `aud`, `exp`/`nbf` with 1 s leeway) runs once per token; its result is cached by
//! the exact token string until the token expires. Every call, cached or not, re-checks
//! expiry and consults the revocation set, so a revoked session fails at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::revocation::RevocationSet;
use crate::clock;
use crate::error::{Error, Result};
use crate::keys::{Family, KeyRing};

/// At most this much clock skew is tolerated on `exp`/`nbf` (interface: ≤ 1 s).
pub const LEEWAY_SECS: u64 = 1;
/// Verified tokens remembered at most; past this the cache sheds expired entries, then all.
const CACHE_CAPACITY: usize = 100_000;
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 plus OIDC `auth_time`/`amr` and Tollgate's
/// `sid`, `roles`, `email`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub sid: String,
    pub client_id: String,
    pub scope: String,
    pub roles: Vec<String>,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// `2` when a second factor was used, else `1` (absent on services' own tokens).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub acr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    /// `client_credentials` for a service's own token (no user behind it; `sub` is the
    /// client id), absent for tokens issued to a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gty: Option<String>,
    /// Who acts for the subject (RFC 8693 §4.1): the client that exchanged a token, and
    /// the actors before it, nested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

/// The authentication context class of a sign-in whose methods were `amr`: `2` when a
/// second factor was used, else `1`.
pub fn acr_for<'a>(mut amr: impl Iterator<Item = &'a str>) -> &'static str {
    if amr.any(|m| matches!(m, "mfa" | "otp" | "hwk")) {
        "2"
    } else {
        "1"
    }
}

/// The `gty` of tokens a client obtained for itself.
pub const SERVICE_GRANT: &str = "client_credentials";

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    /// How the user authenticated: a second factor (`acr` 2) and how long ago
    /// (`auth_time`), for step-up decisions.
    pub fn authenticated(&self) -> crate::authz::policy::Authenticated {
        crate::authz::policy::Authenticated {
            second_factor: self.acr == "2",
            age_secs: Some(clock::now().saturating_sub(self.auth_time).max(0) as u64),
        }
    }

    /// A service's own token (client credentials), not a user's.
    pub fn is_service(&self) -> bool {
        self.gty.is_some()
    }

    /// The resource this token is bound to (RFC 8707); `None` for tokens for Tollgate
    /// itself, whose audience is the issuer.
    pub fn resource(&self) -> Option<&str> {
        (self.aud != self.iss).then_some(self.aud.as_str())
    }
}

/// Who a token is minted for.
pub struct TokenSubject<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub session_id: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub roles: &'a [String],
    pub auth_time: i64,
    pub amr: &'a [String],
    /// A client-credentials token: `user_id` is the client id.
    pub service: bool,
    /// The resource the token is for (RFC 8707); `None`: Tollgate itself (the issuer).
    pub audience: Option<&'a str>,
    /// The actor claim of an exchanged token (RFC 8693).
    pub act: Option<serde_json::Value>,
    /// The token expires then at the latest (an exchanged token outlives not its
    /// subject token).
    pub not_after: Option<i64>,
}

pub struct AccessTokens {
    keys: Arc<KeyRing>,
    revoked: Arc<RevocationSet>,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    family: Family,
    validation: Validation,
    cache: RwLock<HashMap<Box<str>, Verified>>,
}

/// A cache entry: the verifying key's id and the token's claims.
type Verified = (Arc<str>, Arc<AccessClaims>);

impl AccessTokens {
    pub fn new(
        keys: Arc<KeyRing>,
        revoked: Arc<RevocationSet>,
        issuer: &str,
        ttl: std::time::Duration,
        family: Family,
    ) -> AccessTokens {
        // Tokens of every family the ring signs with verify (each only with its key's
        // own algorithm), so changing `access_token_alg` signs no one out.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = Family::algorithms();
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        // The audience is Tollgate itself or a protected resource it serves; which one a
        // caller may present is checked after the signature (`verify`, `verify_any_audience`).
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        AccessTokens {
            keys,
            revoked,
            issuer: issuer.to_string(),
            audience: issuer.to_string(),
            ttl_secs: ttl.as_secs() as i64,
            family,
            validation,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// How long an access token lives.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a new access token; returns it with its claims.
    pub fn mint(&self, s: &TokenSubject<'_>) -> Result<(String, AccessClaims)> {
        let now = clock::now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: s.user_id.to_string(),
            aud: s
                .audience
                .map_or_else(|| self.audience.clone(), str::to_string),
            exp: s
                .not_after
                .map_or(now + self.ttl_secs, |t| t.min(now + self.ttl_secs)),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: s.session_id.to_string(),
            client_id: s.client_id.to_string(),
            scope: s.scopes.join(" "),
            roles: s.roles.to_vec(),
            auth_time: s.auth_time,
            amr: s.amr.to_vec(),
            acr: if s.service {
                String::new()
            } else {
                acr_for(s.amr.iter().map(String::as_str)).to_string()
            },
            email: s.email.to_string(),
            email_verified: s.email_verified,
            gty: s.service.then(|| SERVICE_GRANT.to_string()),
            act: s.act.clone(),
        };
        let token = self.keys.sign_as(self.family, ACCESS_TOKEN_TYP, &claims)?;
        Ok((token, claims))
    }

    /// Verifies a token for Tollgate itself (its audience is the issuer) and that its
    /// session is not revoked.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessClaims>> {
        let claims = self.verify_any_audience(token)?;
        if claims.aud != self.audience {
            return Err(Error::InvalidToken);
        }
        Ok(claims)
    }

    /// Verifies a token for any audience Tollgate issues for (itself or a protected
    /// resource); the caller checks the audience fits where it is presented.
    pub fn verify_any_audience(&self, token: &str) -> Result<Arc<AccessClaims>> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let claims = match cached {
            Some((kid, c)) => {
                if clock::now() >= c.exp + LEEWAY_SECS as i64 {
                    return Err(Error::TokenExpired);
                }
                // A key removed from the ring (emergency rotation) takes its tokens with it.
                if self.keys.current().get(&kid).is_none() {
                    return Err(Error::InvalidToken);
                }
                c
            }
            None => {
                let (kid, c) = self.verify_signed(token)?;
                let c = Arc::new(c);
                self.remember(token, kid, c.clone());
                c
            }
        };
        if self.revoked.is_revoked(&claims.sid)
            || (claims.client_id != super::FIRST_PARTY_CLIENT
                && self
                    .revoked
                    .client_token_revoked(&claims.client_id, claims.iat))
        {
            return Err(Error::SessionRevoked);
        }
        Ok(claims)
    }

    /// The full cryptographic and claim check, without cache or revocation.
    pub fn verify_uncached(&self, token: &str) -> Result<AccessClaims> {
        self.verify_signed(token).map(|(_, c)| c)
    }

    /// The full check; returns the verifying key's id with the claims.
    fn verify_signed(&self, token: &str) -> Result<(Arc<str>, AccessClaims)> {
        let (key, claims) = self
            .keys
            .verify(token, is_access_token_typ, &self.validation)?;
        Ok((Arc::from(key.kid.as_str()), claims))
    }

    fn remember(&self, token: &str, kid: Arc<str>, claims: Arc<AccessClaims>) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            let now = clock::now();
            cache.retain(|_, (_, c)| c.exp + (LEEWAY_SECS as i64) > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(token.into(), (kid, claims));
    }
}

/// `typ` values RFC 9068 allows for access tokens.
pub fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn subject(sid: &str) -> TokenSubject<'_> {
        TokenSubject {
            user_id: "u1",
            email: "u1@example.com",
            email_verified: false,
            session_id: sid,
            client_id: "tollgate",
            scopes: &[],
            roles: &[],
            auth_time: 0,
            amr: &[],
            service: false,
            audience: None,
            act: None,
            not_after: None,
        }
    }

    fn setup() -> (
        std::path::PathBuf,
        Arc<KeyRing>,
        Arc<RevocationSet>,
        AccessTokens,
    ) {
        let dir = std::env::temp_dir().join(format!("tollgate-tokens-{}", uuid::Uuid::new_v4()));
        let ttl = Duration::from_secs(900);
        let keys = Arc::new(KeyRing::open(&dir, ttl).unwrap());
        let revoked = Arc::new(RevocationSet::new(ttl));
        let tokens = AccessTokens::new(
            keys.clone(),
            revoked.clone(),
            "https://issuer.test",
            ttl,
            Family::Ed25519,
        );
        (dir, keys, revoked, tokens)
    }

    #[test]
    fn cached_tokens_still_fail_once_revoked() {
        let (dir, _, revoked, tokens) = setup();
        let (t, _) = tokens.mint(&subject("s1")).unwrap();
        assert_eq!(tokens.verify(&t).unwrap().sid, "s1");
        assert_eq!(tokens.verify(&t).unwrap().sid, "s1", "cache hit");
        revoked.revoke("s1", clock::now());
        assert!(matches!(tokens.verify(&t), Err(Error::SessionRevoked)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn cached_tokens_fail_when_their_key_leaves_the_ring() {
        let (dir, keys, _, tokens) = setup();
        let (t, _) = tokens.mint(&subject("s1")).unwrap();
        tokens.verify(&t).unwrap();
        // Emergency rotation: a new key, and the old key's file removed by hand.
        KeyRing::rotate(&dir).unwrap();
        let old = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .min()
            .unwrap();
        std::fs::remove_file(old).unwrap();
        keys.reload().unwrap();
        assert!(matches!(tokens.verify(&t), Err(Error::InvalidToken)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_token_bound_to_a_resource_is_not_a_token_for_tollgate() {
        let (dir, _, _, tokens) = setup();
        let (t, claims) = tokens
            .mint(&TokenSubject {
                audience: Some("https://issuer.test/mcp"),
                ..subject("s1")
            })
            .unwrap();
        assert_eq!(claims.resource(), Some("https://issuer.test/mcp"));
        assert!(matches!(tokens.verify(&t), Err(Error::InvalidToken)));
        assert_eq!(
            tokens.verify_any_audience(&t).unwrap().aud,
            "https://issuer.test/mcp"
        );
        let (plain, claims) = tokens.mint(&subject("s2")).unwrap();
        assert_eq!(claims.resource(), None);
        assert!(tokens.verify(&plain).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }
}
