//! `kind = "google" | "github" | "microsoft" | "gitlab" | "apple"` in `[[identity_provider]]`: the
//! endpoints, scopes and claim mapping of the providers people use, so an entry needs
//! only `name`, `client_id` and the secret. Anything the entry sets itself wins (a
//! self-managed GitLab sets `issuer`). Each becomes an ordinary `oidc` or `oauth2` entry.

use super::config::ProviderSpec;

/// `spec` with its preset's values filled in where it sets none; entries of kind `oidc`,
/// `oauth2` or none pass unchanged. A preset that cannot work as written is an error.
pub fn apply(mut s: ProviderSpec) -> Result<ProviderSpec, String> {
    let name = s.name.clone();
    let fill = |slot: &mut Option<String>, value: &str| {
        slot.get_or_insert_with(|| value.to_string());
    };
    match s.kind.as_deref() {
        Some("google") => {
            // Google's ID tokens carry `email` and `email_verified`.
            fill(&mut s.issuer, "https://accounts.google.com");
            fill(&mut s.display_name, "Google");
            s.kind = Some("oidc".into());
        }
        Some("gitlab") => {
            // gitlab.com; a self-managed instance sets `issuer` to its own URL.
            fill(&mut s.issuer, "https://gitlab.com");
            fill(&mut s.display_name, "GitLab");
            s.kind = Some("oidc".into());
        }
        Some("microsoft") => {
            // Entra ID's multi-tenant endpoints (`common`, `organizations`) publish an
            // issuer template that no ID token matches: the entry names its tenant.
            let issuer = s.issuer.clone().ok_or_else(|| {
                format!(
                    "identity_provider '{name}': kind = \"microsoft\" needs issuer = \"https://login.microsoftonline.com/<tenant id>/v2.0\" (the Directory (tenant) ID of the app registration; 9188040d-6c67-4c5b-b112-36a304b66dad for personal Microsoft accounts)"
                )
            })?;
            if !issuer.starts_with("https://login.microsoftonline.com/") {
                return Err(format!(
                    "identity_provider '{name}': a microsoft issuer is https://login.microsoftonline.com/<tenant id>/v2.0, got '{issuer}'"
                ));
            }
            fill(&mut s.display_name, "Microsoft");
            // Entra ID sends no `email_verified`; `xms_edov` (an optional claim to add
            // in the app registration's token configuration) says the address's domain
            // is verified by the tenant that owns it.
            fill(&mut s.email_verified_claim, "xms_edov");
            s.kind = Some("oidc".into());
        }
        Some("apple") => {
            // Apple names and addresses come only with `response_mode=form_post` (a
            // cross-site POST to the callback); the secret is minted from the entry's key
            // (`team_id`, `key_id`, `private_key_*`). ID tokens carry `email` and
            // `email_verified` (the string "true"); relay addresses count as verified.
            fill(&mut s.issuer, "https://appleid.apple.com");
            fill(&mut s.display_name, "Apple");
            fill(&mut s.response_mode, "form_post");
            s.scopes
                .get_or_insert_with(|| vec!["openid".into(), "email".into(), "name".into()]);
            s.kind = Some("oidc".into());
        }
        Some("github") => {
            fill(
                &mut s.authorization_url,
                "https://github.com/login/oauth/authorize",
            );
            fill(
                &mut s.token_url,
                "https://github.com/login/oauth/access_token",
            );
            fill(&mut s.userinfo_url, "https://api.github.com/user");
            // The user endpoint's `email` is the public one, unverified: the verified
            // primary address comes from the emails list (scope user:email).
            fill(&mut s.emails_url, "https://api.github.com/user/emails");
            fill(&mut s.display_name, "GitHub");
            s.scopes
                .get_or_insert_with(|| vec!["read:user".into(), "user:email".into()]);
            fill(&mut s.subject_claim, "id");
            s.kind = Some("oauth2".into());
        }
        _ => {}
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::config::{ProviderKind, resolve};
    use super::*;

    fn spec(kind: &str) -> ProviderSpec {
        ProviderSpec {
            name: kind.into(),
            kind: Some(kind.into()),
            client_id: "id".into(),
            ..ProviderSpec::default()
        }
    }

    #[test]
    fn presets_fill_in_what_the_entry_leaves_out() {
        let no_env = |_: &str| None;
        let p = resolve(vec![spec("google"), spec("gitlab"), spec("github")], no_env).unwrap();
        assert_eq!(
            p[0].kind,
            ProviderKind::Oidc {
                issuer: "https://accounts.google.com".into()
            }
        );
        assert_eq!(p[0].label, "Google");
        assert_eq!(p[0].scopes, ["openid", "email", "profile"]);
        assert_eq!(
            p[1].kind,
            ProviderKind::Oidc {
                issuer: "https://gitlab.com".into()
            }
        );
        let ProviderKind::OAuth2 {
            emails_url,
            userinfo_url,
            ..
        } = &p[2].kind
        else {
            panic!("{:?}", p[2].kind)
        };
        assert_eq!(userinfo_url, "https://api.github.com/user");
        assert_eq!(
            emails_url.as_deref(),
            Some("https://api.github.com/user/emails")
        );
        assert_eq!(p[2].subject_claim, "id");
        assert_eq!(p[2].scopes, ["read:user", "user:email"]);

        // The entry's own values win: a self-managed GitLab, another label.
        let mut own = spec("gitlab");
        own.issuer = Some("https://git.example.com".into());
        own.display_name = Some("Our GitLab".into());
        let p = resolve(vec![own], no_env).unwrap();
        assert_eq!(
            p[0].kind,
            ProviderKind::Oidc {
                issuer: "https://git.example.com".into()
            }
        );
        assert_eq!(p[0].label, "Our GitLab");
    }

    #[test]
    fn microsoft_needs_its_tenant() {
        let no_env = |_: &str| None;
        let err = resolve(vec![spec("microsoft")], no_env).unwrap_err();
        assert!(err.contains("tenant"), "{err}");
        let mut m = spec("microsoft");
        m.issuer = Some(
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0".into(),
        );
        let p = resolve(vec![m], no_env).unwrap();
        assert_eq!(p[0].email_verified_claim, "xms_edov");
        assert_eq!(p[0].label, "Microsoft");
        let mut wrong = spec("microsoft");
        wrong.issuer = Some("https://evil.example.com/v2.0".into());
        assert!(resolve(vec![wrong], no_env).is_err());
    }

    #[test]
    fn apple_signs_its_secret_with_the_team_key_and_answers_by_post() {
        let (pem, _) = super::super::apple::test_key();
        let env = |k: &str| (k == "APPLE_KEY").then(|| pem.clone());
        let mut a = spec("apple");
        a.team_id = Some("TEAM123456".into());
        a.key_id = Some("KEY1234567".into());
        a.private_key_env = Some("APPLE_KEY".into());
        let p = resolve(vec![a.clone()], env).unwrap();
        assert_eq!(
            p[0].kind,
            ProviderKind::Oidc {
                issuer: "https://appleid.apple.com".into()
            }
        );
        assert!(p[0].form_post);
        assert_eq!(p[0].scopes, ["openid", "email", "name"]);
        let signer = p[0].signed_secret.as_ref().unwrap();
        assert_eq!(signer.audience, "https://appleid.apple.com");
        assert_eq!(p[0].client_secret, None);

        // Every part of the key is needed; a fixed secret makes no sense here.
        let mut no_key = a.clone();
        no_key.private_key_env = None;
        assert!(
            resolve(vec![no_key], env)
                .unwrap_err()
                .contains("team_id, key_id and private_key_file")
        );
        let mut with_secret = a.clone();
        with_secret.client_secret_env = Some("APPLE_KEY".into());
        assert!(
            resolve(vec![with_secret], env)
                .unwrap_err()
                .contains("remove client_secret")
        );
        let garbage = |k: &str| (k == "APPLE_KEY").then(|| "not a key".to_string());
        assert!(resolve(vec![a], garbage).unwrap_err().contains("PEM"));
        // The key belongs to Apple entries only.
        let mut google = spec("google");
        google.team_id = Some("T".into());
        assert!(
            resolve(vec![google], env)
                .unwrap_err()
                .contains("kind = \"apple\"")
        );
    }
}
