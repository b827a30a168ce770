//! Flow tokens: a pending authorization request carried through the hosted sign-in and
//! consent pages, signed (typ `tollgate-authz-request+jwt`) so no page can alter what the
//! client asked for, and so no node needs to remember it.

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::authorize::Pending;
use super::error::OAuthError;
use crate::error::{Error, Result};
use crate::keys::KeyRing;

pub const FLOW_TYP: &str = "tollgate-authz-request+jwt";

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    pending: Pending,
}

/// The audience of flow tokens: they are only ever read back by this issuer's pages.
fn audience(issuer: &str) -> String {
    format!("{issuer}/ui")
}

pub fn seal(keys: &KeyRing, issuer: &str, p: &Pending, ttl_secs: i64) -> Result<String> {
    keys.sign(
        FLOW_TYP,
        &Claims {
            iss: issuer.to_string(),
            aud: audience(issuer),
            iat: p.requested_at,
            exp: p.requested_at + ttl_secs,
            pending: p.clone(),
        },
    )
}

pub fn open(keys: &KeyRing, issuer: &str, token: &str) -> std::result::Result<Pending, OAuthError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 1;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience(issuer)]);
    validation.set_required_spec_claims(&["iss", "aud", "exp"]);
    match keys.verify::<Claims>(token, |t| t == FLOW_TYP, &validation) {
        Ok((_, c)) => Ok(c.pending),
        Err(Error::TokenExpired) => Err(OAuthError::invalid_request(
            "this sign-in request has expired; start again from the application",
        )),
        Err(_) => Err(OAuthError::invalid_request(
            "this sign-in request is not valid; start again from the application",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize::ResponseMode;

    #[test]
    fn flows_round_trip_and_resist_tampering_and_age() {
        let dir = std::env::temp_dir().join(format!("tollgate-flow-{}", uuid::Uuid::new_v4()));
        let keys = KeyRing::open(&dir, std::time::Duration::from_secs(900)).unwrap();
        let now = crate::clock::now();
        let p = Pending {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: vec!["openid".into()],
            state: Some("xyz".into()),
            nonce: None,
            code_challenge: None,
            response_mode: ResponseMode::FormPost,
            prompt: vec![],
            max_age: None,
            requested_at: now,
            signed_in_as: None,
            second_factor: true,
            resource: None,
        };
        let token = seal(&keys, "https://id.example", &p, 600).unwrap();
        assert_eq!(open(&keys, "https://id.example", &token).unwrap(), p);
        assert!(open(&keys, "https://other.example", &token).is_err());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 4, 'x');
        assert!(open(&keys, "https://id.example", &tampered).is_err());
        let old = Pending {
            requested_at: now - 1000,
            ..p
        };
        let expired = seal(&keys, "https://id.example", &old, 600).unwrap();
        assert!(
            open(&keys, "https://id.example", &expired)
                .unwrap_err()
                .description
                .contains("expired")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
