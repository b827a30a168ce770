//! Token exchange (RFC 8693): a client holding a user's token (an agent, or a service
//! the user's request reached) obtains a narrower token for another audience, acting for
//! the user. `[[oauth.token_exchange]]` says which clients may exchange, for which
//! audiences, and for at most which scopes; nothing is allowed by default.
//!
//! The new token names the user as `sub` and the actor in `act` (the exchanging client,
//! or the subject of an `actor_token`), nested over any `act` the subject token had
//! (§4.1). It belongs to the subject token's session, so it ends with it, and it expires
//! no later than the subject token. No refresh token is issued.

use std::sync::Arc;

use serde_json::json;

use super::OidcProvider;
use super::error::OAuthError;
use super::grants::{Params, TokenResponse, param};
use super::scope;
use crate::audit::{Context, Outcome};
use crate::authz::FIRST_PARTY_CLIENT;
use crate::session::{AccessClaims, ClientInfo, TokenSubject};
use crate::store::ClientRecord;

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token of ours, given as `subject_token` or `actor_token` with its type.
fn token_of<'a>(p: &'a Params, name: &str) -> Result<Option<&'a str>, OAuthError> {
    let Some(token) = param(p, &format!("{name}_token")) else {
        return Ok(None);
    };
    match param(p, &format!("{name}_token_type")) {
        Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => Ok(Some(token)),
        Some(_) => Err(OAuthError::invalid_request(format!(
            "{name}_token_type must be {ACCESS_TOKEN_TYPE}"
        ))),
        None => Err(OAuthError::invalid_request(format!(
            "{name}_token_type is missing"
        ))),
    }
}

impl OidcProvider {
    pub(super) async fn exchange_token(
        &self,
        client: &ClientRecord,
        params: &Params,
        info: &ClientInfo,
    ) -> Result<TokenResponse, OAuthError> {
        let rules: Vec<_> = self
            .oauth
            .token_exchange
            .iter()
            .filter(|r| r.client == client.id)
            .collect();
        if rules.is_empty() {
            return Err(OAuthError::unauthorized_client(
                "no [[oauth.token_exchange]] rule lets this client exchange tokens",
            ));
        }
        let subject_token = token_of(params, "subject")?
            .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
        if let Some(t) = param(params, "requested_token_type")
            && t != ACCESS_TOKEN_TYPE
        {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE}"
            )));
        }
        let refused = |what: &str| {
            OAuthError::invalid_grant(format!("the {what} is invalid, expired or revoked"))
        };
        let subject = self
            .subject_of(subject_token)
            .ok_or_else(|| refused("subject_token"))?;
        let actor = match token_of(params, "actor")? {
            Some(t) => Some(self.subject_of(t).ok_or_else(|| refused("actor_token"))?),
            None => None,
        };
        // The audience: `resource` or `audience` (both name resources here), else the
        // rule's only one.
        let asked = match (param(params, "resource"), param(params, "audience")) {
            (Some(a), Some(b)) if a.trim_end_matches('/') != b.trim_end_matches('/') => {
                return Err(OAuthError::invalid_target(
                    "resource and audience name different targets",
                ));
            }
            (Some(a), _) | (None, Some(a)) => Some(a.trim_end_matches('/').to_string()),
            (None, None) => None,
        };
        let rule = match &asked {
            Some(a) => rules.iter().find(|r| r.audiences.iter().any(|x| x == a)),
            None => rules
                .iter()
                .find(|r| r.audiences.len() == 1)
                .filter(|_| rules.len() == 1),
        }
        .ok_or_else(|| {
            OAuthError::invalid_target(if asked.is_some() {
                "this client may not exchange tokens for that audience"
            } else {
                "name the audience (resource or audience)"
            })
        })?;
        let audience = asked.unwrap_or_else(|| rule.audiences[0].clone());
        // At most what the subject holds and the rule allows.
        let allowed: Vec<String> = subject
            .scopes()
            .filter(|s| rule.scopes.iter().any(|r| r == s))
            .map(str::to_string)
            .collect();
        let scopes = match param(params, "scope") {
            None => allowed,
            Some(raw) => {
                let requested = scope::parse(Some(raw))?;
                if !scope::is_subset(&requested, &allowed) {
                    return Err(OAuthError::invalid_scope(
                        "the exchanged token can only carry scopes the subject token holds and the exchange rule allows",
                    ));
                }
                requested
            }
        };
        if act_depth(subject.act.as_ref()) >= MAX_ACT_DEPTH {
            return Err(OAuthError::invalid_grant(format!(
                "the subject token was exchanged {MAX_ACT_DEPTH} times already"
            )));
        }
        let act = actor_claim(client, actor.as_deref(), &subject);
        let for_tollgate = audience == self.issuer;
        let (access_token, claims) = self.sessions.tokens().mint(&TokenSubject {
            user_id: &subject.sub,
            email: if scopes.iter().any(|s| s == "email") {
                &subject.email
            } else {
                ""
            },
            email_verified: subject.email_verified && scopes.iter().any(|s| s == "email"),
            session_id: &subject.sid,
            client_id: &client.id,
            scopes: &scopes,
            roles: if scopes.iter().any(|s| s == "roles") {
                &subject.roles
            } else {
                &[]
            },
            auth_time: subject.auth_time,
            amr: &subject.amr,
            service: subject.is_service(),
            audience: (!for_tollgate).then_some(audience.as_str()),
            act: Some(act.clone()),
            not_after: Some(subject.exp),
        })?;
        let entry = Context::client(&client.id, info.clone())
            .entry(
                "oauth.token_exchanged",
                Outcome::Success,
                Some(&subject.sub),
            )
            .with("audience", audience.as_str())
            .with("scope", claims.scope.as_str())
            .with("subject_client", subject.client_id.as_str())
            .with("act", act);
        self.store.append_audit(&entry).await?;
        Ok(TokenResponse {
            expires_in: claims.exp - claims.iat,
            scope: claims.scope,
            token_type: "Bearer",
            access_token,
            refresh_token: None,
            id_token: None,
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
        })
    }
}

impl OidcProvider {
    /// The subject a token stands for: an access token of ours (any audience), or the
    /// signed assertion an upstream received from the gateway (`X-Tollgate-Assertion`),
    /// so an upstream that never sees the user's token can still act for them.
    fn subject_of(&self, token: &str) -> Option<Arc<AccessClaims>> {
        if let Ok(c) = self.sessions.verify_any_audience(token) {
            return Some(c);
        }
        let audiences: Vec<&str> = self
            .assertion_audiences
            .iter()
            .map(String::as_str)
            .collect();
        let a = self.assertions.verify(token, &audiences).ok()?;
        // An API key's revocation is not in the session set: an assertion made from one
        // could outlive the key by its minute, so it is not a subject.
        if a.sid.starts_with("apikey:") || self.sessions.is_revoked(&a.sid) {
            return None;
        }
        Some(Arc::new(AccessClaims {
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            sub: a.sub,
            exp: a.exp,
            iat: 0,
            jti: a.jti,
            sid: a.sid,
            client_id: if a.client_id.is_empty() {
                FIRST_PARTY_CLIENT.to_string()
            } else {
                a.client_id
            },
            scope: a.scope,
            roles: Vec::new(),
            // Unknown here: never recent, never a second factor.
            auth_time: 0,
            amr: Vec::new(),
            acr: String::new(),
            email: a.email,
            email_verified: a.email_verified.unwrap_or(false),
            gty: a.gty,
            act: a.act,
        }))
    }
}

/// How many actors a chain of exchanges may name: each exchange nests the one before, and
/// a token must stay small enough for a header.
const MAX_ACT_DEPTH: usize = 4;

fn act_depth(act: Option<&serde_json::Value>) -> usize {
    let mut depth = 0;
    let mut at = act;
    while let Some(a) = at {
        depth += 1;
        at = a.get("act");
    }
    depth
}

/// `act` (RFC 8693 §4.1): the actor, over whoever acted in the subject token before.
fn actor_claim(
    client: &ClientRecord,
    actor: Option<&AccessClaims>,
    subject: &AccessClaims,
) -> serde_json::Value {
    let mut act = match actor {
        Some(a) if a.client_id != FIRST_PARTY_CLIENT || a.is_service() => {
            json!({ "sub": a.sub, "client_id": a.client_id })
        }
        Some(a) => json!({ "sub": a.sub }),
        None => json!({ "sub": client.id, "client_id": client.id }),
    };
    if let Some(before) = &subject.act {
        act["act"] = before.clone();
    }
    act
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_nest_and_their_chains_are_counted() {
        let client = ClientRecord {
            id: "svc".into(),
            ..ClientRecord::default()
        };
        let mut subject: AccessClaims = serde_json::from_value(json!({
            "iss": "i", "sub": "u1", "aud": "i", "exp": 0, "iat": 0, "jti": "", "sid": "s",
            "client_id": "tollgate", "scope": "", "roles": [], "auth_time": 0
        }))
        .unwrap();
        let first = actor_claim(&client, None, &subject);
        assert_eq!(first, json!({ "sub": "svc", "client_id": "svc" }));
        subject.act = Some(first.clone());
        let second = actor_claim(&client, None, &subject);
        assert_eq!(second["act"], first);
        assert_eq!(act_depth(Some(&second)), 2);
        assert_eq!(act_depth(None), 0);
    }
}
