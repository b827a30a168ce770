//! Identity assertions for upstreams: short-lived JWTs (`X-Tollgate-Assertion`) that a
//! zero-trust upstream verifies against the JWKS, with its own URL as `aud`.
//!
//! An assertion says the same as the identity headers, but signed: `iss`, `sub`, `aud`,
//! `sid`, `scope`, `email`, `email_verified`, `iat`, `exp` (60 s), `jti`. It is explicitly typed
//! (`typ: tollgate-assertion+jwt`, RFC 8725 §3.11) and its `aud` is never the issuer, so
//! it can never pass as an access token. Signing costs tens of microseconds, so one
//! assertion per (credential, upstream) is reused while it has at least half its
//! lifetime left.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::{Error, Result};
use crate::keys::{Family, KeyRing};

pub const ASSERTION_TYP: &str = "tollgate-assertion+jwt";
pub const ASSERTION_TTL_SECS: i64 = 60;
/// A cached assertion is reused only while at least this much of it is left.
const MIN_REMAINING_SECS: i64 = ASSERTION_TTL_SECS / 2;
const CACHE_CAPACITY: usize = 100_000;

/// Whom an assertion speaks for.
pub struct AssertionSubject<'a> {
    /// Identifies the credential (access-token `jti`, API key id): the cache key.
    pub credential_id: &'a str,
    pub user_id: &'a str,
    pub email: &'a str,
    /// Whether the account's email address has been verified (false for a service).
    pub email_verified: bool,
    pub session_id: &'a str,
    pub scope: &'a str,
    /// The OAuth client the credential was issued to (empty for API keys).
    pub client_id: &'a str,
    /// A service's own token: `sub` is the client, not a user (`gty` says so).
    pub service: bool,
    /// The protected resource the credential is bound to (RFC 8707), if any.
    pub resource: Option<&'a str>,
    /// Who acts for the subject, when the credential was exchanged (RFC 8693).
    pub act: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    sid: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    email: &'a str,
    /// Absent for a service (no account).
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gty: Option<&'static str>,
    /// The resource the credential is bound to: `/authz/check` judges with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a serde_json::Value>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A verified assertion, as an upstream presents it back (`POST /authz/check`).
#[derive(Debug, Deserialize)]
pub struct VerifiedAssertion {
    pub sub: String,
    pub sid: String,
    pub scope: String,
    /// The OAuth client the credential was issued to (absent for API keys).
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub gty: Option<String>,
    #[serde(default)]
    pub exp: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub act: Option<serde_json::Value>,
}

/// One cached assertion of a credential.
struct Cached {
    audience: Arc<str>,
    /// The scopes it states: an API key's can change while its id stays (so can whether
    /// its account's address is verified).
    scope: Arc<str>,
    email_verified: bool,
    token: Arc<str>,
    exp: i64,
}

pub struct Assertions {
    keys: Arc<KeyRing>,
    family: Family,
    issuer: String,
    cache: RwLock<HashMap<Box<str>, Vec<Cached>>>,
}

impl Assertions {
    /// Assertions signed by `family`'s active key (`[tokens] access_token_alg`).
    pub fn new(keys: Arc<KeyRing>, issuer: &str, family: Family) -> Assertions {
        Assertions {
            keys,
            family,
            issuer: issuer.to_string(),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// An assertion of `s` for the upstream `audience`.
    pub fn for_upstream(&self, s: &AssertionSubject<'_>, audience: &str) -> Result<Arc<str>> {
        let now = clock::now();
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(s.credential_id)
            .and_then(|list| {
                list.iter().find(|c| {
                    &*c.audience == audience
                        && &*c.scope == s.scope
                        && c.email_verified == s.email_verified
                })
            })
            .filter(|c| c.exp - now >= MIN_REMAINING_SECS)
        {
            return Ok(hit.token.clone());
        }
        let exp = now + ASSERTION_TTL_SECS;
        let token: Arc<str> = Arc::from(self.sign(s, audience, now, exp)?);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, list| list.iter().any(|c| c.exp - now >= MIN_REMAINING_SECS));
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        let list = cache.entry(s.credential_id.into()).or_default();
        list.retain(|c| &*c.audience != audience);
        list.push(Cached {
            audience: Arc::from(audience),
            scope: Arc::from(s.scope),
            email_verified: s.email_verified,
            token: token.clone(),
            exp,
        });
        Ok(token)
    }

    /// Verifies an assertion issued by this Tollgate for one of `audiences`.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Result<VerifiedAssertion> {
        if audiences.is_empty() || token.len() > 8 * 1024 {
            return Err(Error::InvalidToken);
        }
        // Any family the ring signs with: the key's own algorithm is enforced per token,
        // and assertions made before `access_token_alg` changed still verify.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = Family::algorithms();
        validation.leeway = super::tokens::LEEWAY_SECS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let (_, claims) = self
            .keys
            .verify(token, |t| t == ASSERTION_TYP, &validation)?;
        Ok(claims)
    }

    fn sign(&self, s: &AssertionSubject<'_>, audience: &str, now: i64, exp: i64) -> Result<String> {
        let claims = Claims {
            iss: &self.issuer,
            sub: s.user_id,
            aud: audience,
            sid: s.session_id,
            scope: s.scope,
            email: s.email,
            email_verified: (!s.service).then_some(s.email_verified),
            client_id: s.client_id,
            gty: s.service.then_some(super::tokens::SERVICE_GRANT),
            resource: s.resource,
            act: s.act,
            iat: now,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.keys.sign_as(self.family, ASSERTION_TYP, &claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn assertions_verify_for_their_audience_only_and_are_reused() {
        let dir = std::env::temp_dir().join(format!("tollgate-assert-{}", uuid::Uuid::new_v4()));
        let keys = Arc::new(KeyRing::open(&dir, std::time::Duration::from_secs(900)).unwrap());
        let a = Assertions::new(keys.clone(), "https://issuer.test", Family::Ed25519);
        let s = AssertionSubject {
            credential_id: "jti-1",
            user_id: "u1",
            email: "u1@example.com",
            email_verified: true,
            session_id: "s1",
            scope: "docs:read",
            client_id: "tollgate",
            service: false,
            resource: None,
            act: None,
        };
        let t1 = a.for_upstream(&s, "http://up.test:9000").unwrap();
        assert_eq!(t1, a.for_upstream(&s, "http://up.test:9000").unwrap());
        let t2 = a.for_upstream(&s, "http://other.test").unwrap();
        assert_ne!(t1, t2);
        // An API key keeps its id when its scopes shrink: the cached assertion must not
        // go on stating the old ones.
        let narrowed = AssertionSubject { scope: "", ..s };
        let t3 = a.for_upstream(&narrowed, "http://up.test:9000").unwrap();
        assert_ne!(t1, t3);
        assert_eq!(
            jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&*t3)
                .unwrap()
                .claims["scope"],
            ""
        );

        let set = keys.current();
        let kid = jsonwebtoken::decode_header(&*t1).unwrap().kid.unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
            set.jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == kid.as_str())
                .unwrap()
                .clone(),
        )
        .unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["http://up.test:9000"]);
        v.set_issuer(&["https://issuer.test"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&*t1, &key, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["sid"], "s1");
        assert_eq!(claims["scope"], "docs:read");
        assert_eq!(claims["email_verified"], true);
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 60);
        v.set_audience(&["http://other.test"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&*t1, &key, &v).is_err());
        // Tollgate takes its own assertions back only for the audiences it is told.
        assert_eq!(a.verify(&t1, &["http://up.test:9000"]).unwrap().sub, "u1");
        assert!(a.verify(&t1, &["http://other.test"]).is_err());
        assert!(a.verify(&t1, &[]).is_err());
        let mut tampered = t1.to_string();
        tampered.insert(tampered.len() - 5, 'A');
        assert!(a.verify(&tampered, &["http://up.test:9000"]).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
