//! What clients and resource servers ask about tokens: introspection (RFC 7662),
//! revocation (RFC 7009), userinfo (OIDC Core §5.3), and the checks of RP-initiated
//! logout (OpenID Connect RP-Initiated Logout 1.0).

use serde_json::{Value, json};

use super::error::OAuthError;
use super::id_token;
use super::{OidcProvider, scope};
use crate::audit::{Context, Outcome};
use crate::clock;
use crate::error::Error;
use crate::secret;
use crate::session::{AccessClaims, ClientInfo};
use crate::store::{ClientRecord, SessionRecord};

/// A refresh token is 43 base64url characters; an access token is a JWT (it has dots).
fn looks_like_jwt(token: &str) -> bool {
    token.contains('.')
}

/// Where RP-initiated logout ends up.
#[derive(Debug)]
pub struct LogoutPlan {
    /// The registered post-logout URI with `state`, when one was asked for.
    pub redirect: Option<String>,
    /// The sign-in session the `id_token_hint` names: when it is the browser's own, the
    /// user need not confirm.
    pub hinted_session: Option<String>,
    /// The client's display name, for the confirmation page.
    pub client_name: Option<String>,
}

impl OidcProvider {
    /// RFC 7662: whether `token` is active, and what it is. Only confidential clients
    /// may ask; a refresh token is only described to the client that holds it.
    pub async fn introspect(
        &self,
        client: &ClientRecord,
        token: &str,
    ) -> Result<Value, OAuthError> {
        if client.is_public() {
            return Err(OAuthError::invalid_client(
                "introspection needs a confidential client",
            ));
        }
        let inactive = json!({ "active": false });
        if looks_like_jwt(token) {
            // A protected resource may introspect the tokens bound to it.
            return Ok(match self.sessions.verify_any_audience(token) {
                Ok(c) => access_token_json(&c),
                Err(Error::Unavailable(e)) => return Err(Error::Unavailable(e).into()),
                Err(_) => inactive,
            });
        }
        match self.live_refresh_token(token).await? {
            Some(s) if s.client_id == client.id => Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": s.client_id,
                "sub": s.user_id,
                "scope": s.scope.unwrap_or_default(),
                "exp": s.idle_expires_at.min(s.expires_at),
                "iat": s.last_used_at,
                "iss": self.issuer,
                "sid": s.id,
            })),
            _ => Ok(inactive),
        }
    }

    /// The live session of an unspent refresh token.
    async fn live_refresh_token(&self, token: &str) -> Result<Option<SessionRecord>, OAuthError> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        Ok(self
            .store
            .session_for_refresh(&secret::digest_hex(token))
            .await?
            .filter(|(s, unspent)| *unspent && s.is_live(clock::now()))
            .map(|(s, _)| s))
    }

    /// RFC 7009: revokes a token the client holds. A user's token (access or refresh)
    /// ends its whole session; a service's access token is revoked on its own. Tokens
    /// that are unknown, expired or another client's are ignored (§2.2: the answer is
    /// the same).
    pub async fn revoke(
        &self,
        client: &ClientRecord,
        token: &str,
        info: &ClientInfo,
    ) -> Result<(), OAuthError> {
        let ctx = Context::client(&client.id, info.clone());
        if looks_like_jwt(token) {
            let Ok(c) = self.sessions.tokens().verify_uncached(token) else {
                return Ok(());
            };
            if c.client_id != client.id {
                return Ok(());
            }
            if c.is_service() {
                let now = clock::now();
                let audit = ctx
                    .entry("oauth.token_revoked", Outcome::Success, None)
                    .with("token_id", c.sid.as_str());
                if self.store.revoke_token(&c.sid, now, c.exp, &audit).await? {
                    self.sessions
                        .revocations()
                        .announce(std::slice::from_ref(&c.sid), now)
                        .await;
                }
            } else {
                self.sessions
                    .end(&c.sid, None, "revoked_by_client", &ctx)
                    .await?;
            }
            return Ok(());
        }
        if token.len() <= 256
            && let Some((s, _)) = self
                .store
                .session_for_refresh(&secret::digest_hex(token))
                .await?
            && s.client_id == client.id
        {
            self.sessions
                .end(&s.id, None, "revoked_by_client", &ctx)
                .await?;
        }
        Ok(())
    }

    /// OIDC Core §5.3: the user's claims for a token that was granted `openid`, from the
    /// account as it is now.
    pub async fn userinfo(&self, claims: &AccessClaims) -> Result<Value, OAuthError> {
        if claims.is_service() {
            return Err(OAuthError::invalid_token("a service's token has no user"));
        }
        if !scope::contains(&claims.scope, "openid") {
            return Err(OAuthError::insufficient_scope(
                "the token was not granted openid",
            ));
        }
        let user = self
            .store
            .user_by_id(&claims.sub)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| OAuthError::invalid_token("the account is gone or disabled"))?;
        let mut out = json!({ "sub": user.id });
        if scope::contains(&claims.scope, "email") {
            out["email"] = user.email.clone().into();
            out["email_verified"] = user.email_verified.into();
        }
        if scope::contains(&claims.scope, "profile") {
            out["preferred_username"] = user.email.clone().into();
        }
        if scope::contains(&claims.scope, "roles") {
            out["roles"] = user.roles.into();
        }
        Ok(out)
    }

    /// Checks an RP-initiated logout request: a post-logout URI must be registered,
    /// exactly, for the client the hint or `client_id` names. A hint that does not verify
    /// (signed by a key since dropped, say) counts as no hint: the user is asked to confirm,
    /// and is only sent back to a URI `client_id` vouches for.
    pub async fn plan_logout(
        &self,
        hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<LogoutPlan, OAuthError> {
        let hint = hint.and_then(
            |h| match id_token::verify_hint(&self.keys, &self.issuer, h) {
                Ok(hint) => Some(hint),
                Err(e) => {
                    tracing::info!(error = %e, "logout hint ignored");
                    None
                }
            },
        );
        let client_id = match (&hint, client_id) {
            (Some(h), Some(c)) if h.aud != c => {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the id_token_hint's audience",
                ));
            }
            (Some(h), _) => Some(h.aud.as_str()),
            (None, c) => c,
        };
        let client = match client_id {
            Some(id) => Some(
                self.clients
                    .live(id)
                    .await
                    .map_err(|_| OAuthError::invalid_request("unknown client"))?,
            ),
            None => None,
        };
        let redirect = match post_logout_redirect_uri {
            None => None,
            Some(uri) => {
                let Some(c) = &client else {
                    return Err(OAuthError::invalid_request(
                        "post_logout_redirect_uri needs id_token_hint or client_id",
                    ));
                };
                if !c.post_logout_redirect_uris.iter().any(|u| u == uri) {
                    return Err(OAuthError::invalid_request(
                        "post_logout_redirect_uri is not registered for this client",
                    ));
                }
                let mut target = uri.to_string();
                if let Some(state) = state {
                    let q: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("state", state)
                        .finish();
                    target.push(if target.contains('?') { '&' } else { '?' });
                    target.push_str(&q);
                }
                Some(target)
            }
        };
        Ok(LogoutPlan {
            redirect,
            hinted_session: hint.and_then(|h| h.sid),
            client_name: client.map(|c| c.name.clone()),
        })
    }
}

fn access_token_json(c: &AccessClaims) -> Value {
    let mut out = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": c.scope,
        "client_id": c.client_id,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "jti": c.jti,
    });
    if c.is_service() {
        out["gty"] = json!(c.gty);
    } else {
        out["sid"] = json!(c.sid);
        out["username"] = json!(c.email);
        out["auth_time"] = json!(c.auth_time);
    }
    if let Some(act) = &c.act {
        out["act"] = act.clone();
    }
    out
}
