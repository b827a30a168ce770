//! Accounts and credentials: registration, password sign-in, password change and the
//! administrative operations behind `tollgate user …` and `tollgate role …`.
//!
//! No HTTP here: handlers and the CLI call these functions. Revoking sessions on password
//! change or disable goes through the store (durable) and [`Revocations`] (instant on
//! this node).

pub mod factors;
mod linked;
pub mod passkeys;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod signin;
pub mod totp;
pub mod validate;

use std::sync::Arc;

use crate::audit::{Context, Outcome};
use crate::authz::{self, DEFAULT_ROLE};
use crate::clock;
use crate::error::{Error, Result};
use crate::mail::Mailer;
use crate::session::Revocations;
use crate::store::{NewUser, Store, StoreError, UserRecord};
use password::{PasswordHasher, Verified};
use policy::PasswordPolicy;
use validate::normalize_email;

/// An account as the admin API and the CLI show it (never its password hash).
pub fn user_json(u: &UserRecord) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "email": u.email,
        "roles": u.roles,
        "disabled": u.disabled,
        "email_verified": u.email_verified,
        "created_at": u.created_at,
    })
}

pub struct Identity {
    store: Store,
    hasher: Arc<PasswordHasher>,
    revocations: Arc<Revocations>,
    policy: PasswordPolicy,
    mailer: Arc<Mailer>,
}

impl Identity {
    pub fn new(
        store: Store,
        hasher: Arc<PasswordHasher>,
        revocations: Arc<Revocations>,
        policy: PasswordPolicy,
        mailer: Arc<Mailer>,
    ) -> Identity {
        Identity {
            store,
            hasher,
            revocations,
            policy,
            mailer,
        }
    }

    /// Self-service sign-up: role `user`, password required.
    pub async fn register(&self, email: &str, password: &str, ctx: &Context) -> Result<UserRecord> {
        self.create_user(email, Some(password), &[], ctx).await
    }

    /// Creates an account with role `user` plus `extra_roles`. Without a password the
    /// account exists but cannot sign in with one.
    pub async fn create_user(
        &self,
        email: &str,
        password: Option<&str>,
        extra_roles: &[String],
        ctx: &Context,
    ) -> Result<UserRecord> {
        let email = normalize_email(email)?;
        if let Some(p) = password {
            self.policy.check(p, &email).await?;
        }
        let mut roles = vec![DEFAULT_ROLE.to_string()];
        for role in extra_roles {
            if !authz::valid_role_name(role) {
                return Err(Error::invalid(
                    "invalid_role",
                    format!("invalid role name '{role}'"),
                ));
            }
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles.sort();
        let hash = match password {
            Some(p) => Some(self.hasher.hash(p.to_string()).await?),
            None => None,
        };
        let id = uuid::Uuid::now_v7().to_string();
        let now = clock::now();
        let new = NewUser {
            id: &id,
            email: &email,
            password_hash: hash.as_deref(),
            roles: &roles,
            email_verified: false,
            now,
        };
        let audit = ctx
            .entry("user.created", Outcome::Success, Some(&id))
            .with("email", email.as_str())
            .with("roles", roles.clone());
        match self.store.insert_user(&new, &audit).await {
            Err(StoreError::Conflict) => return Err(Error::EmailTaken),
            other => other?,
        }
        Ok(UserRecord {
            id,
            email,
            password_hash: hash,
            disabled: false,
            email_verified: false,
            created_at: now,
            roles,
        })
    }

    /// Checks an email and password. Unknown email, malformed email and wrong password all
    /// cost one argon2 verification and all end in [`Error::InvalidCredentials`]; a
    /// disabled account is only reported to someone who knows its password.
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<UserRecord> {
        let user = match normalize_email(email) {
            Ok(e) => self.store.user_by_email(&e).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verdict = self
            .hasher
            .verify(password.to_string(), stored.clone())
            .await?;
        let Some(user) = user.filter(|_| verdict != Verified::No) else {
            return Err(Error::InvalidCredentials);
        };
        if user.disabled {
            return Err(Error::AccountDisabled);
        }
        if verdict == Verified::YesRehash
            && let Some(old) = stored
        {
            // Best effort: a failed rehash must not fail a correct sign-in.
            match self.hasher.hash(password.to_string()).await {
                Ok(new) => {
                    if let Err(e) = self
                        .store
                        .replace_password_hash(&user.id, &old, &new, clock::now())
                        .await
                    {
                        tracing::warn!(error = %e, "password rehash not stored");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "password rehash failed"),
            }
        }
        Ok(user)
    }

    /// Changes the password after checking the current one; every other session of the
    /// user is revoked in the same transaction.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep_session: &str,
        ctx: &Context,
    ) -> Result<()> {
        let user = self.check_current_password(user_id, current).await?;
        self.policy.check(new, &user.email).await?;
        let hash = self.hasher.hash(new.to_string()).await?;
        let now = clock::now();
        let revoked = self
            .store
            .set_password_revoking_sessions(
                user_id,
                Some(&hash),
                Some(keep_session),
                "password_changed",
                now,
                &ctx.entry("password.changed", Outcome::Success, Some(user_id)),
            )
            .await?;
        self.revocations.announce(&revoked, now).await;
        Ok(())
    }

    /// Erases an account (GDPR Art. 17): everything but the pseudonymous id that usage
    /// rows and audit entries keep; its sessions end on every node at once.
    pub async fn erase(&self, user: &UserRecord, ctx: &Context) -> Result<()> {
        let audit = ctx.entry("user.erased", Outcome::Success, Some(&user.id));
        let live = self
            .store
            .erase_user(&user.id, &user.email, &audit)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let now = clock::now();
        self.revocations.announce(&live, now).await;
        Ok(())
    }

    /// Disables (revoking every session) or re-enables an account.
    pub async fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        ctx: &Context,
    ) -> Result<UserRecord> {
        let now = clock::now();
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        let revoked = self
            .store
            .set_disabled(
                user_id,
                disabled,
                now,
                &ctx.entry(action, Outcome::Success, Some(user_id)),
            )
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.revocations.announce(&revoked, now).await;
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// Grants or revokes a role. A grant shows in tokens minted from then on; a revocation
    /// ends the user's sessions on every node at once (their tokens carry the role's
    /// scopes), as a disable does.
    pub async fn set_role(
        &self,
        user_id: &str,
        role: &str,
        granted: bool,
        ctx: &Context,
    ) -> Result<UserRecord> {
        if !authz::valid_role_name(role) {
            return Err(Error::invalid(
                "invalid_role",
                format!("invalid role name '{role}'"),
            ));
        }
        let action = if granted {
            "role.granted"
        } else {
            "role.revoked"
        };
        let audit = ctx
            .entry(action, Outcome::Success, Some(user_id))
            .with("role", role);
        if self.store.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let now = clock::now();
        let (_, revoked) = self
            .store
            .set_role(user_id, role, granted, now, &audit)
            .await?;
        self.revocations.announce(&revoked, now).await;
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// The signed-in user's account, after re-checking their password.
    async fn check_current_password(&self, user_id: &str, password: &str) -> Result<UserRecord> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if self
            .hasher
            .verify(password.to_string(), user.password_hash.clone())
            .await?
            == Verified::No
        {
            return Err(Error::InvalidCredentials);
        }
        Ok(user)
    }

    /// The account with this id.
    pub async fn by_id(&self, user_id: &str) -> Result<UserRecord> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// The account with this email, if any.
    pub async fn find(&self, email: &str) -> Result<UserRecord> {
        let email = normalize_email(email)?;
        self.store
            .user_by_email(&email)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.store.list_users().await?)
    }
}
