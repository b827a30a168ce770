//! Passkeys (WebAuthn Level 3) through `webauthn-rs`: registration for a signed-in user,
//! sign-in without a password (discoverable credentials), and use as a second factor or
//! a step-up. A passkey always asks the authenticator to verify the person (PIN,
//! biometrics), so one passkey is two factors: `amr` says `hwk` (a device-bound key) or
//! `swk` (a synced one, backup-eligible) with `mfa`.
//!
//! A ceremony's state is kept in the database under its challenge, which the browser's
//! signed client data repeats: the answer finds its state without another handle, any
//! node can finish what another started, and a challenge is taken once. The RP ID is the
//! public URL's host; WebAuthn has no RP IDs for IP addresses, so passkeys are off (and
//! say so) when the public URL names one.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::factors::{RECENT_SIGN_IN_SECS, SecondFactors};
use super::signin::SignedIn;
use crate::audit::{Context, Outcome};
use crate::authz::policy::Authenticated;
use crate::error::{Error, Result};
use crate::store::{PasskeyRecord, Store, UserRecord};

/// How long a ceremony waits for the browser (the options' timeout is 5 minutes).
const CEREMONY_TTL_SECS: i64 = 300;
/// A passkey's name, at most (characters).
const NAME_MAX: usize = 64;
/// Passkeys one account may hold.
const PER_ACCOUNT: usize = 20;

const REGISTER: &str = "register";
const AUTHENTICATE: &str = "authenticate";

/// A passkey that signed someone in.
pub struct PasskeySignIn {
    pub user_id: String,
    /// `hwk` or `swk` (RFC 8176).
    pub amr: &'static str,
}

pub struct Passkeys {
    /// `None` when the public URL's host cannot be an RP ID.
    webauthn: Option<Webauthn>,
    store: Store,
    factors: Arc<SecondFactors>,
    /// `mail.require_verification`: unverified accounts do not sign in (as with passwords).
    require_verification: bool,
}

impl Passkeys {
    pub fn new(
        public_url: &str,
        store: Store,
        factors: Arc<SecondFactors>,
        require_verification: bool,
    ) -> Passkeys {
        let webauthn = Url::parse(public_url).ok().and_then(|origin| {
            let rp_id = origin.domain()?.to_string();
            WebauthnBuilder::new(&rp_id, &origin)
                .ok()?
                .rp_name("Tollgate")
                .build()
                .ok()
        });
        if webauthn.is_none() {
            tracing::info!(
                public_url,
                "passkeys are off: the public URL's host is not a domain name (WebAuthn needs one)"
            );
        }
        Passkeys {
            webauthn,
            store,
            factors,
            require_verification,
        }
    }

    /// Signs in with a passkey: alone (it is two factors), or as the second step of a
    /// password sign-in (`second_step`: its `mfa_token`; the passkey must be the same
    /// account's). The account must be enabled (and verified, where that is required).
    pub async fn sign_in(&self, credential: Value, second_step: Option<&str>) -> Result<SignedIn> {
        let challenge = match second_step {
            Some(token) => Some(self.factors.attempt(token).await?),
            None => None,
        };
        let expected = challenge.as_ref().map(|c| c.user_id.as_str());
        let proved = self.authenticate(credential, expected).await?;
        let user = self
            .store
            .user_by_id(&proved.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::AccountDisabled)?;
        if self.require_verification && !user.email_verified {
            return Err(Error::EmailNotVerified);
        }
        if let Some(token) = second_step {
            self.factors.finish(token).await?;
        }
        let mut amr: Vec<String> = challenge
            .map(|c| c.amr.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        amr.push(proved.amr.to_string());
        amr.push("mfa".to_string());
        Ok(SignedIn { user, amr })
    }

    /// Whether passkeys can be used here (the public URL names a host).
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn> {
        self.webauthn.as_ref().ok_or_else(|| {
            Error::invalid(
                "passkeys_unavailable",
                "passkeys need a public URL with a host name (WebAuthn has no RP IDs for IP addresses)",
            )
        })
    }

    /// Options to create a passkey for `user`, who signed in (`auth_time`) within the
    /// last 10 minutes: `PublicKeyCredentialCreationOptions` in its JSON form.
    pub async fn register_options(&self, user: &UserRecord, auth_time: i64) -> Result<Value> {
        let webauthn = self.webauthn()?;
        if crate::clock::now() - auth_time > RECENT_SIGN_IN_SECS {
            return Err(Error::invalid(
                "reauthentication_required",
                "sign in again (within the last 10 minutes) to add a passkey",
            ));
        }
        let existing = self.store.passkeys_of(&user.id).await?;
        if existing.len() >= PER_ACCOUNT {
            return Err(Error::invalid(
                "too_many_passkeys",
                format!("an account holds at most {PER_ACCOUNT} passkeys"),
            ));
        }
        let exclude = existing
            .iter()
            .filter_map(|p| decode(&p.passkey).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let user_uuid = Uuid::parse_str(&user.id).map_err(|_| Error::Internal("user id".into()))?;
        let (ccr, state) = webauthn
            .start_passkey_registration(user_uuid, &user.email, &user.email, Some(exclude))
            .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
        let mut options = serde_json::to_value(&ccr.public_key)
            .map_err(|e| Error::Internal(format!("webauthn options: {e}")))?;
        // Discoverable, so the passkey signs in without an address typed first (the
        // library asks for a server-side credential; registration checks nothing of it).
        options["authenticatorSelection"]["residentKey"] = "required".into();
        options["authenticatorSelection"]["requireResidentKey"] = true.into();
        self.keep(&ccr.public_key.challenge, REGISTER, Some(&user.id), &state)
            .await?;
        Ok(options)
    }

    /// Registers the passkey a browser created (`credential`: `PublicKeyCredential.toJSON()`)
    /// for `user`, named `name`. The owner is mailed.
    pub async fn register(
        &self,
        user: &UserRecord,
        credential: Value,
        name: Option<&str>,
        ctx: &Context,
    ) -> Result<PasskeyRecord> {
        let webauthn = self.webauthn()?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| invalid_credential(&e.to_string()))?;
        let challenge = challenge_of(&credential.response.client_data_json)?;
        let (owner, state): (_, PasskeyRegistration) = self.take(&challenge, REGISTER).await?;
        if owner.as_deref() != Some(user.id.as_str()) {
            return Err(invalid_credential(
                "the passkey was started by another account",
            ));
        }
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| invalid_credential(&e.to_string()))?;
        let name = clean_name(name)?;
        let now = crate::clock::now();
        let record = PasskeyRecord {
            id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice()),
            user_id: user.id.clone(),
            name,
            passkey: serde_json::to_string(&passkey)
                .map_err(|e| Error::Internal(format!("passkey: {e}")))?,
            created_at: now,
            last_used_at: None,
        };
        let audit = ctx
            .entry("mfa.passkey_added", Outcome::Success, Some(&user.id))
            .with("passkey_id", record.id.as_str())
            .with("name", record.name.as_str());
        if !self.store.insert_passkey(&record, &audit).await? {
            return Err(invalid_credential("this passkey is already registered"));
        }
        self.factors
            .notify(
                user,
                &format!(
                    "a passkey named \"{}\" was added to your account",
                    record.name
                ),
            )
            .await;
        Ok(record)
    }

    /// Options to sign in with a passkey (`PublicKeyCredentialRequestOptions` in its JSON
    /// form). Always for discoverable credentials, naming none: the options never tell
    /// whether an address has passkeys. `for_user` binds the answer to that account (a
    /// step-up of a signed-in session).
    pub async fn authenticate_options(&self, for_user: Option<&str>) -> Result<Value> {
        let webauthn = self.webauthn()?;
        let (rcr, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
        let options = serde_json::to_value(&rcr.public_key)
            .map_err(|e| Error::Internal(format!("webauthn options: {e}")))?;
        self.keep(&rcr.public_key.challenge, AUTHENTICATE, for_user, &state)
            .await?;
        Ok(options)
    }

    /// Checks a passkey's answer (`credential`: `PublicKeyCredential.toJSON()`): whose it
    /// is and how it counts. `expected_user`: it must be this account's (a second step or
    /// a step-up). Every failure looks the same to the caller.
    pub async fn authenticate(
        &self,
        credential: Value,
        expected_user: Option<&str>,
    ) -> Result<PasskeySignIn> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| Error::InvalidCredentials)?;
        let challenge = challenge_of(&credential.response.client_data_json)
            .map_err(|_| Error::InvalidCredentials)?;
        let (bound_to, state): (_, DiscoverableAuthentication) = self
            .take(&challenge, AUTHENTICATE)
            .await
            .map_err(|_| Error::InvalidCredentials)?;
        let (user_uuid, cred_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| Error::InvalidCredentials)?;
        let id = URL_SAFE_NO_PAD.encode(cred_id);
        let record = self
            .store
            .passkey(&id)
            .await?
            .filter(|r| r.user_id == user_uuid.to_string())
            .ok_or(Error::InvalidCredentials)?;
        for must_be in [bound_to.as_deref(), expected_user].into_iter().flatten() {
            if record.user_id != must_be {
                return Err(Error::InvalidCredentials);
            }
        }
        let mut passkey = decode(&record.passkey)?;
        let result = webauthn
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .map_err(|e| {
                tracing::info!(passkey_id = %id, error = %e, "passkey sign-in refused");
                Error::InvalidCredentials
            })?;
        // The counter and backup state move on; a clone replaying an old counter was
        // refused above.
        let changed = passkey.update_credential(&result) == Some(true);
        let updated = if changed {
            Some(
                serde_json::to_string(&passkey)
                    .map_err(|e| Error::Internal(format!("passkey: {e}")))?,
            )
        } else {
            None
        };
        self.store
            .passkey_used(&id, updated.as_deref(), crate::clock::now())
            .await?;
        Ok(PasskeySignIn {
            user_id: record.user_id,
            amr: if result.backup_eligible() {
                "swk"
            } else {
                "hwk"
            },
        })
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<PasskeyRecord>> {
        Ok(self.store.passkeys_of(user_id).await?)
    }

    pub async fn rename(&self, user_id: &str, id: &str, name: &str, ctx: &Context) -> Result<()> {
        let name = clean_name(Some(name))?;
        let audit = ctx
            .entry("mfa.passkey_renamed", Outcome::Success, Some(user_id))
            .with("passkey_id", id)
            .with("name", name.as_str());
        if !self
            .store
            .rename_passkey(user_id, id, &name, &audit)
            .await?
        {
            return Err(Error::NotFound("passkey"));
        }
        Ok(())
    }

    /// Removes one of `user`'s passkeys, for a session with a recent second factor. The
    /// owner is mailed.
    pub async fn remove(
        &self,
        user: &UserRecord,
        id: &str,
        authenticated: Authenticated,
        ctx: &Context,
    ) -> Result<()> {
        SecondFactors::require_recent(authenticated)?;
        let audit = ctx
            .entry("mfa.passkey_removed", Outcome::Success, Some(&user.id))
            .with("passkey_id", id);
        if !self.store.remove_passkey(&user.id, id, &audit).await? {
            return Err(Error::NotFound("passkey"));
        }
        self.factors
            .notify(user, "a passkey was removed from your account")
            .await;
        Ok(())
    }

    async fn keep(
        &self,
        challenge: &[u8],
        kind: &str,
        user_id: Option<&str>,
        state: &impl serde::Serialize,
    ) -> Result<()> {
        let state =
            serde_json::to_string(state).map_err(|e| Error::Internal(format!("state: {e}")))?;
        let now = crate::clock::now();
        self.store
            .insert_ceremony(
                &URL_SAFE_NO_PAD.encode(challenge),
                kind,
                user_id,
                &state,
                now,
                now + CEREMONY_TTL_SECS,
            )
            .await?;
        Ok(())
    }

    async fn take<T: serde::de::DeserializeOwned>(
        &self,
        challenge: &str,
        kind: &str,
    ) -> Result<(Option<String>, T)> {
        let (user_id, state) = self
            .store
            .take_ceremony(challenge, kind, crate::clock::now())
            .await?
            .ok_or_else(|| {
                invalid_credential("the passkey request expired or was used; start again")
            })?;
        let state = serde_json::from_str(&state)
            .map_err(|e| Error::Internal(format!("webauthn state: {e}")))?;
        Ok((user_id, state))
    }
}

fn decode(stored: &str) -> Result<Passkey> {
    serde_json::from_str(stored).map_err(|e| Error::Internal(format!("stored passkey: {e}")))
}

/// The challenge the browser signed, from its client data (checked again, with
/// everything else, by the library).
fn challenge_of(client_data_json: &[u8]) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json)
        .map_err(|_| invalid_credential("clientDataJSON is not valid"))?;
    if data.challenge.is_empty() || data.challenge.len() > 128 {
        return Err(invalid_credential("clientDataJSON names no challenge"));
    }
    Ok(data.challenge.trim_end_matches('=').to_string())
}

fn clean_name(name: Option<&str>) -> Result<String> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Passkey");
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_name",
            format!("a passkey's name is 1 to {NAME_MAX} characters, without control characters"),
        ));
    }
    Ok(name.to_string())
}

fn invalid_credential(why: &str) -> Error {
    Error::invalid(
        "invalid_passkey",
        format!("the passkey could not be registered: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(clean_name(None).unwrap(), "Passkey");
        assert_eq!(clean_name(Some("  Laptop ")).unwrap(), "Laptop");
        assert!(clean_name(Some(&"x".repeat(65))).is_err());
        assert!(clean_name(Some("a\u{7}b")).is_err());
    }

    #[test]
    fn the_challenge_comes_from_the_client_data() {
        let data = br#"{"type":"webauthn.get","challenge":"abc_-1","origin":"https://x"}"#;
        assert_eq!(challenge_of(data).unwrap(), "abc_-1");
        assert!(challenge_of(b"{}").is_err());
        assert!(challenge_of(b"not json").is_err());
    }
}
