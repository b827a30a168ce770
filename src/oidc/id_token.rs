//! ID tokens (OIDC Core §2): signed with the ring's key like every Tollgate JWT, typed
//! plain `JWT` (what relying parties expect), with `aud` the client, so an ID token never
//! passes as an access token (which must be `at+jwt` for the issuer) and vice versa.

use aws_lc_rs::digest;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::scope;
use crate::error::Result;
use crate::keys::{Family, KeyRing};
use crate::secret::b64url;
use crate::store::UserRecord;

pub const ID_TOKEN_TYP: &str = "JWT";

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    acr: &'static str,
    amr: Vec<&'a str>,
    sid: &'a str,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
}

/// What an ID token says.
pub struct IdToken<'a> {
    /// `RS256` or `EdDSA`, as the client registered.
    pub alg: &'a str,
    pub issuer: &'a str,
    pub user: &'a UserRecord,
    pub client_id: &'a str,
    /// The sign-in session (what RP-initiated logout names in `id_token_hint`).
    pub sid: &'a str,
    pub auth_time: i64,
    /// Space-separated.
    pub amr: &'a str,
    pub nonce: Option<&'a str>,
    /// The access token issued with it (for `at_hash`).
    pub access_token: &'a str,
    /// The granted scopes, space-separated: `email` and `profile` add their claims.
    pub scope: &'a str,
    pub now: i64,
    pub ttl_secs: i64,
}

/// The authentication context class: `2` when a second factor was used, else `1`.
pub fn acr_for(amr: &str) -> &'static str {
    crate::session::tokens::acr_for(amr.split_ascii_whitespace())
}

pub fn mint(keys: &KeyRing, t: &IdToken<'_>) -> Result<String> {
    let family = if t.alg == "EdDSA" {
        Family::Ed25519
    } else {
        Family::Rsa
    };
    let email = scope::contains(t.scope, "email");
    let claims = Claims {
        iss: t.issuer,
        sub: &t.user.id,
        aud: t.client_id,
        azp: t.client_id,
        exp: t.now + t.ttl_secs,
        iat: t.now,
        auth_time: t.auth_time,
        nonce: t.nonce,
        acr: acr_for(t.amr),
        amr: t.amr.split_ascii_whitespace().collect(),
        sid: t.sid,
        at_hash: at_hash(family, t.access_token),
        email: email.then_some(t.user.email.as_str()),
        email_verified: email.then_some(t.user.email_verified),
        preferred_username: scope::contains(t.scope, "profile").then_some(t.user.email.as_str()),
        roles: scope::contains(t.scope, "roles").then_some(t.user.roles.as_slice()),
    };
    keys.sign_as(family, ID_TOKEN_TYP, &claims)
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the access token's hash, with the
/// hash of the ID token's algorithm: SHA-256 for RS256, SHA-512 for EdDSA (Ed25519).
pub fn at_hash(family: Family, access_token: &str) -> String {
    let hash = match family {
        Family::Rsa | Family::P256 => &digest::SHA256,
        Family::Ed25519 => &digest::SHA512,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    b64url(&d.as_ref()[..d.as_ref().len() / 2])
}

/// The claims of an `id_token_hint` that logout relies on.
#[derive(Debug, Deserialize)]
pub struct Hint {
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

/// Verifies an ID token this issuer signed, expired or not (OIDC RP-Initiated Logout
/// §2: a hint may be presented after its expiry).
pub fn verify_hint(
    keys: &KeyRing,
    issuer: &str,
    token: &str,
) -> std::result::Result<Hint, OAuthError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.algorithms = vec![Algorithm::EdDSA, Algorithm::RS256];
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    keys.verify(token, |t| t == ID_TOKEN_TYP, &validation)
        .map(|(_, hint)| hint)
        .map_err(|_| OAuthError::invalid_request("id_token_hint is not an ID token issued here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_reflects_a_second_factor() {
        assert_eq!(acr_for("pwd"), "1");
        assert_eq!(acr_for("pwd otp"), "2");
        assert_eq!(acr_for(""), "1");
    }

    #[test]
    fn id_tokens_verify_as_hints_and_carry_their_claims() {
        let dir = std::env::temp_dir().join(format!("tollgate-idt-{}", uuid::Uuid::new_v4()));
        let keys = KeyRing::open(&dir, std::time::Duration::from_secs(900)).unwrap();
        let user = UserRecord {
            id: "u1".into(),
            email: "u1@example.com".into(),
            password_hash: None,
            disabled: false,
            email_verified: true,
            created_at: 0,
            roles: vec![],
        };
        let token = mint(
            &keys,
            &IdToken {
                alg: "RS256",
                issuer: "https://id.example",
                user: &user,
                client_id: "app",
                sid: "s1",
                auth_time: 5,
                amr: "pwd",
                nonce: Some("n"),
                access_token: "at",
                scope: "openid email",
                now: 10,
                ttl_secs: 60,
            },
        )
        .unwrap();
        let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&token)
            .unwrap()
            .claims;
        assert_eq!(claims["nonce"], "n");
        assert_eq!(claims["email"], "u1@example.com");
        assert!(claims.get("preferred_username").is_none());
        assert_eq!(claims["at_hash"], at_hash(Family::Rsa, "at"));
        // RFC test vector style check: SHA-256's left half is 16 bytes (22 characters).
        assert_eq!(at_hash(Family::Rsa, "at").len(), 22);
        assert_eq!(at_hash(Family::Ed25519, "at").len(), 43);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::RS256
        );
        // Long expired, still a valid hint; not from here, not one.
        let hint = verify_hint(&keys, "https://id.example", &token).unwrap();
        assert_eq!(hint.aud, "app");
        assert_eq!(hint.sid.as_deref(), Some("s1"));
        assert!(verify_hint(&keys, "https://other.example", &token).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
