//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6): exchanging a code (once;
//! a replayed code revokes what its first exchange issued), refreshing (rotation and
//! reuse detection as for Tollgate's own sessions, bound to the client), and client
//! credentials (a service's own token: no user, no session, no refresh token).

use std::collections::HashMap;

use serde::Serialize;

use super::authorize::same_resource;
use super::clients::{
    AUTHORIZATION_CODE, CLIENT_CREDENTIALS, DEVICE_CODE, REFRESH_TOKEN, TOKEN_EXCHANGE,
};
use super::error::OAuthError;
use super::id_token::{self, IdToken};
use super::{OidcProvider, pkce, scope};
use crate::audit::{Context, Outcome};
use crate::clock;
use crate::error::Error;
use crate::secret;
use crate::session::{ClientInfo, Issued, SessionTerms, TokenSubject};
use crate::store::{ClientRecord, Redeemed};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// Token exchange (RFC 8693 §2.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

pub(super) type Params = HashMap<String, String>;
type Granted = Result<TokenResponse, OAuthError>;

/// A non-empty parameter of a token request.
pub(super) fn param<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    p.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

impl OidcProvider {
    /// Runs the grant `params` ask for, for an authenticated client.
    pub async fn token(
        &self,
        client: &ClientRecord,
        params: &Params,
        info: &ClientInfo,
    ) -> Granted {
        let grant = param(params, "grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
        let result = match grant {
            AUTHORIZATION_CODE | REFRESH_TOKEN | CLIENT_CREDENTIALS | TOKEN_EXCHANGE
            | DEVICE_CODE
                if !client.allows_grant(grant) =>
            {
                Err(OAuthError::unauthorized_client(format!(
                    "this client may not use the {grant} grant"
                )))
            }
            AUTHORIZATION_CODE => self.exchange_code(client, params, info).await,
            REFRESH_TOKEN => self.refresh(client, params, info).await,
            CLIENT_CREDENTIALS => self.client_credentials(client, params),
            TOKEN_EXCHANGE => self.exchange_token(client, params, info).await,
            DEVICE_CODE => self.device_token(client, params, info).await,
            _ => Err(OAuthError::unsupported_grant_type(format!(
                "supported grants: authorization_code, refresh_token, client_credentials, {TOKEN_EXCHANGE}, {DEVICE_CODE}"
            ))),
        };
        if result.is_ok()
            && client.registered
            && let Err(e) = self.store.mark_client_used(&client.id, clock::now()).await
        {
            tracing::warn!(error = %e, client_id = %client.id, "could not record a registered client's use");
        }
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.code,
        };
        let grant_label: &'static str = match grant {
            AUTHORIZATION_CODE => AUTHORIZATION_CODE,
            REFRESH_TOKEN => REFRESH_TOKEN,
            CLIENT_CREDENTIALS => CLIENT_CREDENTIALS,
            TOKEN_EXCHANGE => "token_exchange",
            DEVICE_CODE => "device_code",
            _ => "other",
        };
        metrics::counter!("tollgate_oauth_tokens_total", "grant" => grant_label, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn exchange_code(
        &self,
        client: &ClientRecord,
        params: &Params,
        info: &ClientInfo,
    ) -> Granted {
        let code =
            param(params, "code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let code_hash = secret::digest_hex(code);
        let invalid = || {
            OAuthError::invalid_grant(
                "the code is unknown, expired or was issued to another client",
            )
        };
        let Some(rec) = self.store.code_by_hash(&code_hash).await? else {
            return Err(invalid());
        };
        if rec.client_id != client.id {
            return Err(invalid());
        }
        let ctx = Context::client(&client.id, info.clone());
        if rec.used_at.is_some() {
            return Err(self
                .replayed(rec.session_id.as_deref(), &rec.user_id, &ctx)
                .await);
        }
        if rec.expires_at <= clock::now() {
            return Err(invalid());
        }
        if param(params, "redirect_uri") != Some(rec.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri must be the one of the authorization request",
            ));
        }
        match (&rec.code_challenge, param(params, "code_verifier")) {
            (Some(challenge), Some(verifier)) if pkce::verify(challenge, verifier) => {}
            (Some(_), _) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier is missing or does not match",
                ));
            }
            // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a
            // downgrade attempt.
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent, but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        // RFC 8707 §2.2: the token request may name the resource again, never another.
        if let Some(r) = param(params, "resource")
            && !same_resource(r, rec.resource.as_deref())
        {
            return Err(OAuthError::invalid_target(
                "resource must be the one of the authorization request",
            ));
        }
        // What the client may still have: its scopes may have been narrowed since.
        let granted: Vec<String> = rec
            .scope
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let granted = scope::still_allowed(&granted, &client.scopes).join(" ");
        let draft = self.sessions.draft(client.allows_grant(REFRESH_TOKEN));
        let terms = SessionTerms {
            client_id: &client.id,
            scope: Some(&granted),
            parent_id: Some(&rec.browser_session),
            auth_time: rec.auth_time,
            amr: &rec.amr,
            resource: rec.resource.as_deref(),
        };
        let new = draft.session(&rec.user_id, &terms, info);
        let audit = ctx
            .entry("oauth.code_exchanged", Outcome::Success, Some(&rec.user_id))
            .with("session_id", new.id)
            .with("scope", granted.as_str());
        match self.store.redeem_code(&code_hash, &new, &audit).await? {
            Redeemed::Issued => {}
            Redeemed::Replayed { session_id } => {
                return Err(self
                    .replayed(session_id.as_deref(), &rec.user_id, &ctx)
                    .await);
            }
            Redeemed::Invalid => return Err(invalid()),
        }
        let user = self
            .store
            .user_by_id(&rec.user_id)
            .await?
            .ok_or_else(invalid)?;
        let issued = self
            .sessions
            .issue(user, &new.record(), draft.refresh, None)?;
        self.respond(client, issued, rec.nonce.as_deref())
    }

    /// A code came back after its exchange: whatever that exchange issued is revoked
    /// (RFC 6749 §4.1.2, RFC 9700 §4.5).
    async fn replayed(&self, session_id: Option<&str>, user_id: &str, ctx: &Context) -> OAuthError {
        tracing::warn!(event = "code_replayed", client = %ctx.actor, "authorization code presented twice; revoking what it issued");
        if let Some(sid) = session_id
            && let Err(e) = self.sessions.end(sid, None, "code_replayed", ctx).await
        {
            tracing::error!(error = %e, "could not revoke the session of a replayed code");
        }
        let entry = ctx
            .entry("oauth.code_replayed", Outcome::Denied, Some(user_id))
            .with("session_id", session_id);
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::warn!(error = %e, "replayed code not audited");
        }
        OAuthError::invalid_grant("the code was already used; the tokens issued for it are revoked")
    }

    async fn refresh(&self, client: &ClientRecord, params: &Params, info: &ClientInfo) -> Granted {
        let token = param(params, "refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let refused = || {
            OAuthError::invalid_grant(
                "the refresh token is invalid, expired, revoked or was issued to another client",
            )
        };
        let asked_resource = param(params, "resource");
        let session = match (param(params, "scope"), asked_resource) {
            (None, None) => None,
            _ => match self
                .store
                .session_for_refresh(&secret::digest_hex(token))
                .await?
            {
                Some((s, _)) if s.client_id == client.id => Some(s),
                _ => return Err(refused()),
            },
        };
        // A refresh keeps the binding of the session (RFC 8707 §2.2): it may name the
        // same resource, never another.
        if let (Some(r), Some(s)) = (asked_resource, &session)
            && !same_resource(r, s.resource.as_deref())
        {
            return Err(OAuthError::invalid_target(
                "resource must be the one the tokens were granted for",
            ));
        }
        let narrowed = match param(params, "scope") {
            None => None,
            Some(raw) => {
                let requested = scope::parse(Some(raw))?;
                let granted = session.and_then(|s| s.scope).unwrap_or_default();
                let granted: Vec<String> = granted
                    .split_ascii_whitespace()
                    .map(str::to_string)
                    .collect();
                if !scope::is_subset(&requested, &granted) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh can only narrow the scopes originally granted",
                    ));
                }
                Some(requested)
            }
        };
        let issued = self
            .sessions
            .refresh_as(token, &client.id, narrowed.as_deref(), info)
            .await
            .map_err(|e| match e {
                Error::Unavailable(_) | Error::Internal(_) => OAuthError::from(e),
                Error::RefreshTokenReused => OAuthError::invalid_grant(
                    "the refresh token was already used; the session has been revoked",
                ),
                _ => refused(),
            })?;
        self.respond(client, issued, None)
    }

    fn client_credentials(&self, client: &ClientRecord, params: &Params) -> Granted {
        let requested = scope::parse(param(params, "scope"))?;
        let scopes = if requested.is_empty() {
            client.scopes.clone()
        } else if scope::is_subset(&requested, &client.scopes) {
            requested
        } else {
            return Err(OAuthError::invalid_scope(
                "the client may not request these scopes",
            ));
        };
        let resource = self.resource_param(params)?;
        let session_id = format!("cc-{}", uuid::Uuid::new_v4());
        let (access_token, claims) = self.sessions.tokens().mint(&TokenSubject {
            user_id: &client.id,
            email: "",
            email_verified: false,
            session_id: &session_id,
            client_id: &client.id,
            scopes: &scopes,
            roles: &[],
            auth_time: clock::now(),
            amr: &[],
            service: true,
            audience: resource.as_deref(),
            act: None,
            not_after: None,
        })?;
        // Issued for itself, with no session: the structured log is the record.
        tracing::info!(event = "client_token_issued", client_id = %client.id, jti = %claims.jti, scope = %claims.scope);
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: claims.exp - claims.iat,
            refresh_token: None,
            id_token: None,
            scope: claims.scope,
            issued_token_type: None,
        })
    }

    /// The `resource` of a token request (RFC 8707), checked to be one of ours.
    pub(super) fn resource_param(&self, params: &Params) -> Result<Option<String>, OAuthError> {
        param(params, "resource")
            .map(|r| super::authorize::resource_indicator(r, &|r| self.is_resource(r)))
            .transpose()
    }

    /// The token response for a user's session: the refresh token only if the client
    /// may refresh, the ID token only if `openid` was granted.
    pub(super) fn respond(
        &self,
        client: &ClientRecord,
        issued: Issued,
        nonce: Option<&str>,
    ) -> Granted {
        let claims = &issued.access_claims;
        let id_token = if scope::contains(&claims.scope, "openid") {
            let s = &issued.session;
            Some(id_token::mint(
                &self.keys,
                &IdToken {
                    alg: &client.id_token_alg,
                    issuer: &self.issuer,
                    user: &issued.user,
                    client_id: &client.id,
                    sid: s.parent_id.as_deref().unwrap_or(&s.id),
                    auth_time: s.auth_time,
                    amr: &s.amr,
                    nonce,
                    access_token: &issued.access_token,
                    scope: &claims.scope,
                    now: claims.iat,
                    ttl_secs: claims.exp - claims.iat,
                },
            )?)
        } else {
            None
        };
        Ok(TokenResponse {
            expires_in: claims.exp - claims.iat,
            scope: claims.scope.clone(),
            token_type: "Bearer",
            id_token,
            refresh_token: issued.refresh_token,
            access_token: issued.access_token,
            issued_token_type: None,
        })
    }
}
