//! The account side: an external identity mapped to a Tollgate account (one already
//! linked, one created just in time, or a link confirmed with the account's password).

use super::*;

impl Federation {
    /// Maps a verified external identity to an account: the linked one, a new one, or a
    /// link to confirm. Role mappings are applied to the account it signs into.
    pub async fn resolve(
        &self,
        ext: &ExternalIdentity,
        j: &Journey,
        ctx: &Context,
    ) -> FedResult<Resolution> {
        let p = self.provider(&ext.provider)?;
        let mapped = roles::mapped_roles(p, &ext.claims);
        if let Some(linked) = self.store.federated_identity(&p.name, &ext.subject).await? {
            let user = self
                .store
                .user_by_id(&linked.user_id)
                .await?
                .ok_or(FederationError::BadJourney)?;
            return self
                .signed_in(p, ext, user, &linked.mapped_roles, &mapped, ctx)
                .await;
        }
        let Some(email) = ext.email.clone() else {
            return Err(FederationError::Refused(format!(
                "{} did not share an email address, which an account needs",
                p.label
            )));
        };
        if let Some(existing) = self.store.user_by_email(&email).await? {
            if !(p.link_existing && ext.email_verified) {
                return Err(FederationError::Refused(format!(
                    "an account for {email} already exists; sign in with its password (linking needs an address {} has verified)",
                    p.label
                )));
            }
            if existing.password_hash.is_none() {
                return Err(FederationError::Refused(format!(
                    "an account for {email} already exists but has no password to confirm a link with; ask an administrator"
                )));
            }
            let link = PendingLink {
                iss: self.issuer.clone(),
                aud: self.journey_audience(),
                exp: clock::now() + JOURNEY_TTL_SECS,
                provider: p.name.clone(),
                subject: ext.subject.clone(),
                user_id: existing.id.clone(),
                email,
                mapped_roles: mapped,
                flow: j.flow.clone(),
                rd: j.rd.clone(),
            };
            return Ok(Resolution::ConfirmLink(
                self.keys.sign(LINK_TYP, &link)?,
                link,
            ));
        }
        if !p.create_accounts {
            return Err(FederationError::Refused(format!(
                "there is no account for {email}, and {} sign-ins do not create one",
                p.label
            )));
        }
        // An account claims its address: a provider that has not verified the address
        // cannot hand it out (else its owner, arriving later, would recover an account
        // the provider's user still signs into: pre-hijacking).
        if !ext.email_verified {
            return Err(FederationError::Refused(format!(
                "{} has not verified the address {email}; verify it there, then sign in again",
                p.label
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = clock::now();
        let mut user_roles = vec![DEFAULT_ROLE.to_string()];
        user_roles.extend(
            mapped
                .iter()
                .filter(|r| r.as_str() != DEFAULT_ROLE)
                .cloned(),
        );
        user_roles.sort();
        let audit = ctx
            .entry("user.created", Outcome::Success, Some(&id))
            .with("email", email.as_str())
            .with("roles", user_roles.clone())
            .with("provider", p.name.as_str());
        let login = FederatedLogin {
            provider: &p.name,
            subject: &ext.subject,
            user_id: &id,
            email: Some(&email),
            mapped_roles: &mapped,
            grant: &[],
            revoke: &[],
            now,
        };
        let new = NewUser {
            id: &id,
            email: &email,
            password_hash: None,
            roles: &user_roles,
            email_verified: ext.email_verified,
            now,
        };
        match self.store.create_federated_user(&new, &login, &audit).await {
            Ok(()) => {}
            // Someone registered the address (or linked the subject) a moment ago.
            Err(StoreError::Conflict) => {
                return Err(FederationError::Refused(format!(
                    "an account for {email} was just created; sign in again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let user = self
            .store
            .user_by_id(&id)
            .await?
            .ok_or(FederationError::BadJourney)?;
        Ok(Resolution::SignedIn(user))
    }

    /// A linked account signs in: its role mappings are brought up to date.
    pub(super) async fn signed_in(
        &self,
        p: &ProviderConfig,
        ext: &ExternalIdentity,
        user: UserRecord,
        before: &[String],
        now_mapped: &[String],
        ctx: &Context,
    ) -> FedResult<Resolution> {
        if user.disabled {
            return Err(FederationError::Refused("this account is disabled".into()));
        }
        if self.require_verification && !user.email_verified {
            return Err(FederationError::Refused(
                "verify your email address first: follow the link we mailed you".into(),
            ));
        }
        let (grant, revoke) = roles::changes(&user.roles, before, now_mapped);
        let audit = ctx
            .entry("federation.roles_synced", Outcome::Success, Some(&user.id))
            .with("provider", p.name.as_str())
            .with("granted", grant.clone())
            .with("revoked", revoke.clone());
        self.store
            .record_federated_login(
                &FederatedLogin {
                    provider: &p.name,
                    subject: &ext.subject,
                    user_id: &user.id,
                    email: ext.email.as_deref(),
                    mapped_roles: now_mapped,
                    grant: &grant,
                    revoke: &revoke,
                    now: clock::now(),
                },
                &audit,
            )
            .await?;
        let user = if grant.is_empty() && revoke.is_empty() {
            user
        } else {
            self.store
                .user_by_id(&user.id)
                .await?
                .ok_or(FederationError::BadJourney)?
        };
        Ok(Resolution::SignedIn(user))
    }

    /// A pending link from its signed form.
    pub fn pending_link(&self, token: &str) -> FedResult<PendingLink> {
        self.open(LINK_TYP, token)
    }

    /// Links the provider's subject to `user`, who has just proved the password.
    pub async fn link(
        &self,
        link: &PendingLink,
        user: &UserRecord,
        ctx: &Context,
    ) -> FedResult<UserRecord> {
        if user.id != link.user_id {
            return Err(FederationError::BadJourney);
        }
        let p = self.provider(&link.provider)?;
        let (grant, _) = roles::changes(&user.roles, &[], &link.mapped_roles);
        let audit = ctx
            .entry("federation.linked", Outcome::Success, Some(&user.id))
            .with("provider", p.name.as_str())
            .with("granted", grant.clone());
        match self
            .store
            .link_federated_identity(
                &FederatedLogin {
                    provider: &p.name,
                    subject: &link.subject,
                    user_id: &user.id,
                    email: Some(&link.email),
                    mapped_roles: &link.mapped_roles,
                    grant: &grant,
                    revoke: &[],
                    now: clock::now(),
                },
                &audit,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(FederationError::Refused(
                    "this external account is already linked".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.store
            .user_by_id(&user.id)
            .await?
            .ok_or(FederationError::BadJourney)
    }
}
