//! Sign in with Apple's client secret: not a fixed string but a JWT the client signs
//! (ES256) with a private key from the Apple developer account (the `.p8` file), naming
//! the team (`iss`), the Services ID (`sub`), Apple (`aud`) and the key (`kid`). Tollgate
//! mints a short-lived one for each code exchange, so no secret expires in the config.

use serde::Serialize;

use super::config::ClientSecret;
use crate::clock;

/// How long a minted client secret is valid (Apple allows up to six months; one code
/// exchange needs seconds).
const SECRET_TTL_SECS: i64 = 300;

/// What signs an Apple client secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedClientSecret {
    pub team_id: String,
    pub key_id: String,
    /// The PKCS#8 PEM of the P-256 private key (redacted in `Debug`).
    pub key_pem: ClientSecret,
    /// The token endpoint's audience: the provider's issuer (`https://appleid.apple.com`).
    pub audience: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

impl SignedClientSecret {
    /// A fresh client secret for `client_id` (the Services ID).
    pub fn mint(&self, client_id: &str) -> Result<String, String> {
        let key = jsonwebtoken::EncodingKey::from_ec_pem(self.key_pem.0.as_bytes())
            .map_err(|e| format!("the private key is not a PEM EC key: {e}"))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let now = clock::now();
        let claims = Claims {
            iss: &self.team_id,
            sub: client_id,
            aud: &self.audience,
            iat: now,
            exp: now + SECRET_TTL_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| format!("the private key cannot sign ES256 (a P-256 key is needed): {e}"))
    }
}

/// A `.p8` file as Apple hands it out, and its public key.
#[cfg(test)]
pub(super) fn test_key() -> (String, jsonwebtoken::DecodingKey) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let public =
        jsonwebtoken::DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..]))
            .unwrap();
    (pem, public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_an_es256_jwt_naming_team_client_and_key() {
        let (pem, public) = test_key();
        let s = SignedClientSecret {
            team_id: "TEAM123456".into(),
            key_id: "KEY1234567".into(),
            key_pem: ClientSecret(pem),
            audience: "https://appleid.apple.com".into(),
        };
        let jwt = s.mint("com.example.web").unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["https://appleid.apple.com"]);
        v.set_issuer(&["TEAM123456"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &public, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "com.example.web");
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300);
        assert!(!format!("{s:?}").contains("PRIVATE"));

        let bad = SignedClientSecret {
            key_pem: ClientSecret("not a key".into()),
            ..s
        };
        assert!(bad.mint("x").unwrap_err().contains("PEM"));
    }
}
