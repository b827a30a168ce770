//! `[[identity_provider]]`: external identity providers users may sign in through.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::apple::SignedClientSecret;
use crate::authz::valid_role_name;
use crate::oidc::clients::check_redirect_uri;

/// One `[[identity_provider]]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: String,
    /// `oidc` (default): discovery, ID tokens. `oauth2`: a plain OAuth 2.0 provider with
    /// a user endpoint (GitHub-style). Or a preset (`presets.rs`).
    pub kind: Option<String>,
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// `query` (default) or `form_post`: the provider posts its answer to the callback
    /// (Apple requires it once `name` or `email` is asked for).
    pub response_mode: Option<String>,
    /// Apple: the team that owns the key, the key's id, and the key itself (a `.p8`).
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub private_key_env: Option<String>,
    pub private_key_file: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// GitHub-style list of `{email, primary, verified}` for providers whose user
    /// endpoint does not say whether the address is verified.
    pub emails_url: Option<String>,
    pub subject_claim: Option<String>,
    pub email_claim: Option<String>,
    pub email_verified_claim: Option<String>,
    /// Create an account on first sign-in (default true).
    pub create_accounts: Option<bool>,
    /// Offer to link to an existing account with the same, verified, email (default true).
    pub link_existing: Option<bool>,
    /// The claim whose values `roles` maps to Tollgate roles (a string or a list).
    pub role_claim: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    Oidc {
        issuer: String,
    },
    OAuth2 {
        authorization_url: String,
        token_url: String,
        userinfo_url: String,
        emails_url: Option<String>,
    },
}

/// A client secret, redacted in `Debug`.
#[derive(Clone, PartialEq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub label: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    /// A client secret minted for each code exchange instead (Apple).
    pub signed_secret: Option<SignedClientSecret>,
    pub scopes: Vec<String>,
    /// The provider answers with a cross-site POST to the callback (`response_mode =
    /// "form_post"`), so the journey cookie must be `SameSite=None`.
    pub form_post: bool,
    pub subject_claim: String,
    pub email_claim: String,
    pub email_verified_claim: String,
    pub create_accounts: bool,
    pub link_existing: bool,
    pub role_claim: Option<String>,
    /// Claim value → role.
    pub roles: BTreeMap<String, String>,
}

/// A provider endpoint: https, or http on a loopback host (a provider on this machine).
fn check_endpoint(key: &str, name: &str, url: &str) -> Result<(), String> {
    check_redirect_uri(url, false)
        .map_err(|_| format!("identity_provider '{name}': {key} must be an https URL (http only on a loopback host), got '{url}'"))
}

/// Validates the specs; `secret` reads an environment variable.
pub fn resolve(
    specs: Vec<ProviderSpec>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderConfig>, String> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    for s in specs {
        let apple = s.kind.as_deref() == Some("apple");
        let s = super::presets::apply(s)?;
        let name = s.name.clone();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "identity_provider '{name}': name must be 1-32 characters of a-z 0-9 - _"
            ));
        }
        if name == "link" {
            return Err(
                "identity_provider 'link': the name is reserved (POST /auth/federated/link)".into(),
            );
        }
        if out.iter().any(|p| p.name == name) {
            return Err(format!("identity_provider '{name}' is defined twice"));
        }
        if s.client_id.is_empty() {
            return Err(format!("identity_provider '{name}': client_id is required"));
        }
        let client_secret = crate::config::values::secret_from(
            &format!("identity_provider '{name}'"),
            "client_secret",
            s.client_secret_env.as_deref(),
            s.client_secret_file.as_deref(),
            &env,
        )?;
        let signed_secret = signed_secret(&s, apple, &env)?;
        let form_post = match s.response_mode.as_deref() {
            None | Some("query") => false,
            Some("form_post") => true,
            Some(other) => {
                return Err(format!(
                    "identity_provider '{name}': response_mode must be \"query\" or \"form_post\", got '{other}'"
                ));
            }
        };
        let kind = match s.kind.as_deref().unwrap_or("oidc") {
            "oidc" => {
                let issuer = s
                    .issuer
                    .clone()
                    .ok_or_else(|| format!("identity_provider '{name}': issuer is required"))?;
                check_endpoint("issuer", &name, &issuer)?;
                for (key, v) in [
                    ("authorization_url", &s.authorization_url),
                    ("token_url", &s.token_url),
                    ("userinfo_url", &s.userinfo_url),
                    ("emails_url", &s.emails_url),
                ] {
                    if v.is_some() {
                        return Err(format!(
                            "identity_provider '{name}': {key} is for kind = \"oauth2\"; an OIDC provider's endpoints come from its discovery document"
                        ));
                    }
                }
                ProviderKind::Oidc {
                    issuer: issuer.trim_end_matches('/').to_string(),
                }
            }
            "oauth2" => {
                let need = |key: &str, v: &Option<String>| {
                    let v = v.clone().ok_or_else(|| {
                        format!(
                            "identity_provider '{name}': {key} is required for kind = \"oauth2\""
                        )
                    })?;
                    check_endpoint(key, &name, &v)?;
                    Ok::<String, String>(v)
                };
                let emails_url = match &s.emails_url {
                    Some(u) => {
                        check_endpoint("emails_url", &name, u)?;
                        Some(u.clone())
                    }
                    None => None,
                };
                ProviderKind::OAuth2 {
                    authorization_url: need("authorization_url", &s.authorization_url)?,
                    token_url: need("token_url", &s.token_url)?,
                    userinfo_url: need("userinfo_url", &s.userinfo_url)?,
                    emails_url,
                }
            }
            other => {
                return Err(format!(
                    "identity_provider '{name}': kind must be \"oidc\", \"oauth2\", \"google\", \"github\", \"microsoft\", \"gitlab\" or \"apple\", got '{other}'"
                ));
            }
        };
        let oidc = matches!(kind, ProviderKind::Oidc { .. });
        let scopes = s.scopes.clone().unwrap_or_else(|| {
            if oidc {
                vec!["openid".into(), "email".into(), "profile".into()]
            } else {
                Vec::new()
            }
        });
        if oidc && !scopes.iter().any(|x| x == "openid") {
            return Err(format!(
                "identity_provider '{name}': an OIDC provider's scopes must include openid"
            ));
        }
        for role in s.roles.values() {
            if !valid_role_name(role) {
                return Err(format!(
                    "identity_provider '{name}': invalid role name '{role}'"
                ));
            }
        }
        if !s.roles.is_empty() && s.role_claim.is_none() {
            return Err(format!(
                "identity_provider '{name}': roles needs role_claim (the claim whose values it maps)"
            ));
        }
        out.push(ProviderConfig {
            label: s.display_name.clone().unwrap_or_else(|| name.clone()),
            name,
            kind,
            client_id: s.client_id,
            client_secret: client_secret.map(ClientSecret),
            signed_secret,
            scopes,
            form_post,
            subject_claim: s
                .subject_claim
                .unwrap_or_else(|| if oidc { "sub" } else { "id" }.into()),
            email_claim: s.email_claim.unwrap_or_else(|| "email".into()),
            email_verified_claim: s
                .email_verified_claim
                .unwrap_or_else(|| "email_verified".into()),
            create_accounts: s.create_accounts.unwrap_or(true),
            link_existing: s.link_existing.unwrap_or(true),
            role_claim: s.role_claim,
            roles: s.roles,
        });
    }
    Ok(out)
}

/// Apple's key, which signs a client secret per exchange (`apple.rs`): every part of it
/// required for `kind = "apple"`, refused for any other kind.
fn signed_secret(
    s: &ProviderSpec,
    apple: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SignedClientSecret>, String> {
    let name = &s.name;
    let context = format!("identity_provider '{name}'");
    let pem = crate::config::values::secret_from(
        &context,
        "private_key",
        s.private_key_env.as_deref(),
        s.private_key_file.as_deref(),
        env,
    )?;
    if !apple {
        if s.team_id.is_some() || s.key_id.is_some() || pem.is_some() {
            return Err(format!(
                "{context}: team_id, key_id and private_key_* are for kind = \"apple\""
            ));
        }
        return Ok(None);
    }
    let (Some(team_id), Some(key_id), Some(pem)) = (&s.team_id, &s.key_id, pem) else {
        return Err(format!(
            "{context}: kind = \"apple\" needs team_id, key_id and private_key_file (or private_key_env): the Team ID, and the Key ID and .p8 file of a key with Sign in with Apple enabled"
        ));
    };
    if s.client_secret_env.is_some() || s.client_secret_file.is_some() {
        return Err(format!(
            "{context}: Apple's client secret is a JWT Tollgate signs with private_key_*; remove client_secret_*"
        ));
    }
    let signer = SignedClientSecret {
        team_id: team_id.clone(),
        key_id: key_id.clone(),
        key_pem: ClientSecret(pem),
        audience: s
            .issuer
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
    };
    // A key that cannot sign is found now, not at the first sign-in.
    signer
        .mint(&s.client_id)
        .map_err(|e| format!("{context}: {e}"))?;
    Ok(Some(signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> Vec<ProviderSpec> {
        #[derive(Deserialize)]
        struct F {
            identity_provider: Vec<ProviderSpec>,
        }
        toml::from_str::<F>(toml_text).unwrap().identity_provider
    }

    #[test]
    fn oidc_providers_need_an_issuer_and_get_standard_scopes() {
        let env = |k: &str| (k == "CORP_SECRET").then(|| "s3cret".to_string());
        let p = resolve(
            spec(
                r#"
                [[identity_provider]]
                name = "corp"
                issuer = "https://idp.example.com/"
                client_id = "tollgate"
                client_secret_env = "CORP_SECRET"
                role_claim = "groups"
                [identity_provider.roles]
                "ops" = "admin"
                "#,
            ),
            env,
        )
        .unwrap();
        assert_eq!(
            p[0].kind,
            ProviderKind::Oidc {
                issuer: "https://idp.example.com".into()
            }
        );
        assert_eq!(p[0].scopes, ["openid", "email", "profile"]);
        assert_eq!(p[0].client_secret, Some(ClientSecret("s3cret".into())));
        assert_eq!(p[0].roles["ops"], "admin");
        assert!(!format!("{:?}", p[0]).contains("s3cret"));
    }

    #[test]
    fn bad_providers_are_named() {
        let no_env = |_: &str| None;
        for (text, needle) in [
            (
                "name = \"Corp\"\nissuer = \"https://a\"\nclient_id = \"x\"",
                "name must be",
            ),
            ("name = \"c\"\nclient_id = \"x\"", "issuer is required"),
            (
                "name = \"c\"\nissuer = \"http://idp.example\"\nclient_id = \"x\"",
                "https",
            ),
            (
                "name = \"c\"\nissuer = \"https://a\"\nclient_id = \"x\"\nclient_secret_env = \"NOPE\"",
                "NOPE",
            ),
            (
                "name = \"c\"\nkind = \"oauth2\"\nclient_id = \"x\"",
                "authorization_url",
            ),
            (
                "name = \"c\"\nissuer = \"https://a\"\nclient_id = \"x\"\nscopes = [\"email\"]",
                "openid",
            ),
        ] {
            let err = resolve(spec(&format!("[[identity_provider]]\n{text}")), no_env).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
