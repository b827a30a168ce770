//! The provider side of a journey: discovery, the authorization request (PKCE, state,
//! nonce), the code exchange, ID-token verification or the user endpoint, and the
//! external identity they yield.

use super::*;

impl Federation {
    pub(super) fn provider_error(
        p: &ProviderConfig,
        detail: impl std::fmt::Display,
    ) -> FederationError {
        let detail = detail.to_string();
        tracing::warn!(provider = %p.name, error = %detail, "federated sign-in failed at the provider");
        FederationError::Provider {
            provider: p.label.clone(),
            detail,
        }
    }

    /// A failed code exchange: the provider refusing the code (spent, expired, not
    /// ours) is the browser's problem (400); anything else is the provider's (502).
    pub(super) fn exchange_error<RE, T>(
        p: &ProviderConfig,
        e: openidconnect::RequestTokenError<RE, T>,
    ) -> FederationError
    where
        RE: std::error::Error + 'static,
        T: openidconnect::ErrorResponse + 'static,
    {
        match e {
            // The provider refusing us (a revoked key, a wrong secret) is the operator's
            // problem, not the browser's.
            // (Both crates' error responses display as "<error code>: <description>".)
            openidconnect::RequestTokenError::ServerResponse(r)
                if ["invalid_client", "unauthorized_client"]
                    .iter()
                    .any(|c| r.to_string().starts_with(c)) =>
            {
                tracing::error!(provider = %p.name, error = %r, "the provider refused Tollgate's client credentials; check the client secret or key");
                FederationError::Provider {
                    provider: p.label.clone(),
                    detail: "the provider refused this server's credentials".into(),
                }
            }
            openidconnect::RequestTokenError::ServerResponse(r) => {
                tracing::info!(provider = %p.name, error = %r, "the provider refused the code");
                FederationError::CodeRefused {
                    provider: p.label.clone(),
                    detail: r.to_string(),
                }
            }
            other => {
                // The causes say what was wrong ("Failed to parse server response" alone
                // does not).
                let mut detail = format!("code exchange failed: {other}");
                let mut cause = std::error::Error::source(&other);
                while let Some(c) = cause {
                    detail.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                Self::provider_error(p, detail)
            }
        }
    }

    /// The provider's discovery document, cached; `fresh` refetches (rotated keys).
    pub(super) async fn metadata(
        &self,
        p: &ProviderConfig,
        issuer: &str,
        fresh: bool,
    ) -> FedResult<Arc<CoreProviderMetadata>> {
        let now = clock::now();
        if !fresh
            && let Some((m, at)) = self
                .metadata
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p.name)
            && now - at < METADATA_TTL_SECS
        {
            return Ok(m.clone());
        }
        let url = IssuerUrl::new(issuer.to_string()).map_err(|e| Self::provider_error(p, e))?;
        let m = Arc::new(
            CoreProviderMetadata::discover_async(url, &self.outbound)
                .await
                .map_err(|e| Self::provider_error(p, format!("discovery failed: {e}")))?,
        );
        self.metadata
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.name.clone(), (m.clone(), now));
        Ok(m)
    }

    pub(super) fn oidc_client(
        &self,
        p: &ProviderConfig,
        m: &CoreProviderMetadata,
    ) -> FedResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let client = CoreClient::from_provider_metadata(
            m.clone(),
            ClientId::new(p.client_id.clone()),
            Self::client_secret(p)?.map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri(&p.name)).map_err(|e| Self::provider_error(p, e))?,
        );
        // HTTP Basic unless the provider says it takes the secret only in the body
        // (Apple publishes `client_secret_post` alone).
        let methods = m.token_endpoint_auth_methods_supported();
        let body_only = methods.is_some_and(|ms| {
            ms.contains(&CoreClientAuthMethod::ClientSecretPost)
                && !ms.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        Ok(if body_only {
            client.set_auth_type(openidconnect::AuthType::RequestBody)
        } else {
            client
        })
    }

    /// The client secret for one token request: the configured one, or one minted from
    /// the provider's key (Apple).
    fn client_secret(p: &ProviderConfig) -> FedResult<Option<String>> {
        match &p.signed_secret {
            Some(signer) => signer
                .mint(&p.client_id)
                .map(Some)
                .map_err(|e| Self::provider_error(p, e)),
            None => Ok(p.client_secret.as_ref().map(|s| s.0.clone())),
        }
    }

    pub(super) fn oauth2_client(
        &self,
        p: &ProviderConfig,
        authorization_url: &str,
        token_url: &str,
    ) -> FedResult<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
    > {
        let mut client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(p.client_id.clone()))
                .set_auth_uri(
                    AuthUrl::new(authorization_url.to_string())
                        .map_err(|e| Self::provider_error(p, e))?,
                )
                .set_token_uri(
                    TokenUrl::new(token_url.to_string()).map_err(|e| Self::provider_error(p, e))?,
                )
                .set_redirect_uri(
                    RedirectUrl::new(self.redirect_uri(&p.name))
                        .map_err(|e| Self::provider_error(p, e))?,
                );
        if let Some(s) = Self::client_secret(p)? {
            client = client.set_client_secret(oauth2::ClientSecret::new(s));
        }
        Ok(client)
    }

    /// Starts a sign-in at provider `name`: the URL to send the browser to, and the signed
    /// journey for its cookie. `flow` (a pending authorization) or `rd` (a vetted return
    /// URL) says where to go afterwards.
    pub async fn start(
        &self,
        name: &str,
        flow: Option<String>,
        rd: Option<String>,
    ) -> FedResult<(String, String)> {
        let p = self.provider(name)?;
        let state = secret::generate();
        let verifier = secret::generate();
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        let scopes = p
            .scopes
            .iter()
            .filter(|s| *s != "openid")
            .map(|s| Scope::new(s.clone()));
        let (url, nonce) = match &p.kind {
            ProviderKind::Oidc { issuer } => {
                let m = self.metadata(p, issuer, false).await?;
                let client = self.oidc_client(p, &m)?;
                let nonce = secret::generate();
                let (state_for, nonce_for) = (state.clone(), nonce.clone());
                let mut request = client
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        move || CsrfToken::new(state_for),
                        move || Nonce::new(nonce_for),
                    )
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge);
                if p.form_post {
                    request = request.add_extra_param("response_mode", "form_post");
                }
                let (url, _, _) = request.url();
                (url, Some(nonce))
            }
            ProviderKind::OAuth2 {
                authorization_url,
                token_url,
                ..
            } => {
                let client = self.oauth2_client(p, authorization_url, token_url)?;
                let state_for = state.clone();
                let mut request = client
                    .authorize_url(move || oauth2::CsrfToken::new(state_for))
                    .add_scopes(p.scopes.iter().map(|s| oauth2::Scope::new(s.clone())))
                    .set_pkce_challenge(challenge);
                if p.form_post {
                    request = request.add_extra_param("response_mode", "form_post");
                }
                let (url, _) = request.url();
                (url, None)
            }
        };
        let journey = Journey {
            iss: self.issuer.clone(),
            aud: self.journey_audience(),
            exp: clock::now() + JOURNEY_TTL_SECS,
            provider: p.name.clone(),
            state,
            nonce,
            verifier,
            flow,
            rd,
        };
        Ok((url.to_string(), self.keys.sign(JOURNEY_TYP, &journey)?))
    }

    /// Exchanges the code the provider sent back and verifies who it says the user is.
    /// `iss` is the authorization response's issuer (RFC 9207), when the provider sent it.
    pub async fn finish(
        &self,
        j: &Journey,
        code: &str,
        iss: Option<&str>,
    ) -> FedResult<ExternalIdentity> {
        let p = self.provider(&j.provider)?;
        match &p.kind {
            ProviderKind::Oidc { issuer } => {
                // The browser carried this parameter: a mismatch is a bad (or mixed-up)
                // answer, not the provider failing.
                if iss.is_some_and(|i| i.trim_end_matches('/') != issuer) {
                    return Err(FederationError::CodeRefused {
                        provider: p.label.clone(),
                        detail: "the answer names another issuer".into(),
                    });
                }
                self.finish_oidc(p, issuer, j, code).await
            }
            ProviderKind::OAuth2 {
                authorization_url,
                token_url,
                userinfo_url,
                emails_url,
            } => {
                let client = self.oauth2_client(p, authorization_url, token_url)?;
                let token = client
                    .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
                    .set_pkce_verifier(oauth2::PkceCodeVerifier::new(j.verifier.clone()))
                    .request_async(&self.outbound)
                    .await
                    .map_err(|e| Self::exchange_error(p, e))?;
                let access = token.access_token().secret();
                let claims = self.get_json(p, userinfo_url, access).await?;
                let mut id = self.identity_from_claims(p, claims)?;
                if let Some(url) = emails_url
                    && (id.email.is_none() || !id.email_verified)
                {
                    let emails = self.get_json(p, url, access).await?;
                    if let Some((email, verified)) = primary_email(&emails) {
                        id.email = Some(email);
                        id.email_verified = verified;
                    }
                }
                Ok(id)
            }
        }
    }

    pub(super) async fn finish_oidc(
        &self,
        p: &ProviderConfig,
        issuer: &str,
        j: &Journey,
        code: &str,
    ) -> FedResult<ExternalIdentity> {
        let m = self.metadata(p, issuer, false).await?;
        let client = self.oidc_client(p, &m)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Self::provider_error(p, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(j.verifier.clone()))
            .request_async(&self.outbound)
            .await
            .map_err(|e| Self::exchange_error(p, e))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| Self::provider_error(p, "no ID token in the token response"))?;
        let nonce = Nonce::new(j.nonce.clone().unwrap_or_default());
        // A code is exchanged once, so a token signed with a key the cached document
        // lacks (the provider rotated) is verified again with a fresh one.
        let first_try = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .err()
            .map(|e| e.to_string());
        let (m, client) = match first_try {
            None => (m, client),
            Some(e) => {
                tracing::info!(provider = %p.name, error = %e, "ID token did not verify; refetching the provider's keys");
                let m = self.metadata(p, issuer, true).await?;
                let client = self.oidc_client(p, &m)?;
                (m, client)
            }
        };
        // Only the provider's asymmetric algorithms: an HMAC "signature" keyed with our
        // own client secret proves nothing about the provider (RFC 8725 §3.1).
        let algs: Vec<CoreJwsSigningAlgorithm> = m
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| {
                !matches!(
                    a,
                    CoreJwsSigningAlgorithm::HmacSha256
                        | CoreJwsSigningAlgorithm::HmacSha384
                        | CoreJwsSigningAlgorithm::HmacSha512
                        | CoreJwsSigningAlgorithm::None
                )
            })
            .cloned()
            .collect();
        let verifier = client.id_token_verifier().set_allowed_algs(algs);
        let verified = id_token.claims(&verifier, &nonce).map_err(|e| match e {
            // A code from another journey (injected into this one): the browser's doing.
            openidconnect::ClaimsVerificationError::InvalidNonce(_) => {
                FederationError::CodeRefused {
                    provider: p.label.clone(),
                    detail: "the answer belongs to another sign-in".into(),
                }
            }
            e => Self::provider_error(p, format!("ID token rejected: {e}")),
        })?;
        if let Some(expected) = verified.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| Self::provider_error(p, e))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| Self::provider_error(p, e))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| Self::provider_error(p, e))?;
            if actual != *expected {
                return Err(Self::provider_error(
                    p,
                    "at_hash does not match the access token",
                ));
            }
        }
        let mut claims = jwt_payload(&id_token.to_string()).unwrap_or(Value::Null);
        // Claims the ID token leaves out (email, groups) may be at the userinfo endpoint.
        let wanted_missing = verified.email().is_none()
            || p.role_claim
                .as_ref()
                .is_some_and(|c| roles::claim_values(&claims, c).is_empty());
        if wanted_missing && let Some(url) = m.userinfo_endpoint() {
            let info = self
                .get_json(p, url.as_str(), token.access_token().secret())
                .await?;
            if info.get("sub").and_then(Value::as_str) == Some(verified.subject().as_str())
                && let (Value::Object(base), Value::Object(extra)) = (&mut claims, info)
            {
                for (k, v) in extra {
                    base.entry(k).or_insert(v);
                }
            }
        }
        self.identity_from_claims(p, claims)
    }

    pub(super) async fn get_json(
        &self,
        p: &ProviderConfig,
        url: &str,
        access_token: &str,
    ) -> FedResult<Value> {
        let req = http::Request::get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "tollgate")
            .body(Vec::new())
            .map_err(|e| Self::provider_error(p, e))?;
        let res = self
            .outbound
            .send(req)
            .await
            .map_err(|e| Self::provider_error(p, e))?;
        if !res.status().is_success() {
            return Err(Self::provider_error(
                p,
                format!("{url} answered {}", res.status()),
            ));
        }
        serde_json::from_slice(res.body())
            .map_err(|e| Self::provider_error(p, format!("{url}: {e}")))
    }

    pub(super) fn identity_from_claims(
        &self,
        p: &ProviderConfig,
        claims: Value,
    ) -> FedResult<ExternalIdentity> {
        let subject = match claims.get(&p.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Self::provider_error(
                    p,
                    format!("no '{}' claim", p.subject_claim),
                ));
            }
        };
        if subject.len() > 255 || subject.chars().any(char::is_control) {
            return Err(Self::provider_error(
                p,
                "the subject is too long or not printable",
            ));
        }
        let email = claims
            .get(&p.email_claim)
            .and_then(Value::as_str)
            .and_then(|e| normalize_email(e).ok());
        let email_verified = match claims.get(&p.email_verified_claim) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        Ok(ExternalIdentity {
            provider: p.name.clone(),
            subject,
            email,
            email_verified,
            claims,
        })
    }
}

/// The claims of a JWT whose signature was already verified.
fn jwt_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&secret::from_b64url(payload)?).ok()
}

/// The primary address of a GitHub-style email list, with whether it is verified.
fn primary_email(list: &Value) -> Option<(String, bool)> {
    let items = list.as_array()?;
    let pick = items
        .iter()
        .find(|e| e["primary"] == Value::Bool(true))
        .or_else(|| items.iter().find(|e| e["verified"] == Value::Bool(true)))?;
    let email = normalize_email(pick["email"].as_str()?).ok()?;
    Some((email, pick["verified"] == Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_primary_verified_address_is_chosen() {
        let list = json!([
            { "email": "old@example.com", "primary": false, "verified": true },
            { "email": "Me@Example.com", "primary": true, "verified": true },
        ]);
        assert_eq!(primary_email(&list), Some(("me@example.com".into(), true)));
        assert_eq!(primary_email(&json!({})), None);
        // Look-alikes: one spelling, or no address at all.
        let fullwidth =
            json!([{ "email": "ｍｅ＠example.com", "primary": true, "verified": true }]);
        assert_eq!(
            primary_email(&fullwidth),
            Some(("me@example.com".into(), true))
        );
        let mixed =
            json!([{ "email": "\u{0430}dmin@example.com", "primary": true, "verified": true }]);
        assert_eq!(primary_email(&mixed), None);
        let unverified = json!([{ "email": "a@example.com", "primary": true, "verified": false }]);
        assert_eq!(
            primary_email(&unverified),
            Some(("a@example.com".into(), false))
        );
    }
}
