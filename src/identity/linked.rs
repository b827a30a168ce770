//! Provider accounts linked to a local one, as their owner manages them: list, unlink.
//! (Linking happens during a federated sign-in, `oidc::federation`.)

use super::Identity;
use crate::audit::{Context, Outcome};
use crate::error::{Error, Result};
use crate::store::{LinkedIdentity, UserRecord};

impl Identity {
    pub async fn linked(&self, user_id: &str) -> Result<Vec<LinkedIdentity>> {
        Ok(self.store.linked_identities(user_id).await?)
    }

    /// Removes a link, unless it is the account's last way in (no password, no passkey,
    /// no other link): the owner would lock themselves out.
    pub async fn unlink(
        &self,
        user: &UserRecord,
        provider: &str,
        subject: &str,
        ctx: &Context,
    ) -> Result<()> {
        let links = self.store.linked_identities(&user.id).await?;
        if !links
            .iter()
            .any(|l| l.provider == provider && l.subject == subject)
        {
            return Err(Error::NotFound("linked identity"));
        }
        let other_way_in = user.password_hash.is_some()
            || links.len() > 1
            || !self.store.passkeys_of(&user.id).await?.is_empty();
        if !other_way_in {
            return Err(Error::invalid(
                "last_sign_in_method",
                "this is the account's only way to sign in: set a password first",
            ));
        }
        let audit = ctx
            .entry("federation.unlinked", Outcome::Success, Some(&user.id))
            .with("provider", provider);
        if !self
            .store
            .unlink_federated_identity(&user.id, provider, subject, &audit)
            .await?
        {
            return Err(Error::NotFound("linked identity"));
        }
        Ok(())
    }
}
