//! Account recovery and address changes by mail: verification, password reset, email
//! change.
//!
//! Tokens are 256-bit secrets, mailed once and stored as their SHA-256; each works once
//! and expires (verification 24 h, reset 30 min, email change 1 h). Requests that name an
//! address (`forgot`, verification resend) do their work in the background and answer
//! at once, the same way whether or not the address belongs to an account: neither the
//! answer nor its timing tells an outsider anything.

use std::sync::Arc;

use super::Identity;
use super::validate::normalize_email;
use crate::audit::{Context, Outcome};
use crate::clock;
use crate::error::{Error, Result};
use crate::mail::{Template, Vars};
use crate::secret;
use crate::store::{
    NewEmailToken, PURPOSE_EMAIL_CHANGE, PURPOSE_RESET, PURPOSE_VERIFY, StoreError, UserRecord,
};

pub const VERIFY_TTL_SECS: i64 = 24 * 3600;
pub const RESET_TTL_SECS: i64 = 30 * 60;
pub const EMAIL_CHANGE_TTL_SECS: i64 = 3600;
/// How long an invitation's code lasts: people read such mail later than a reset.
pub const INVITE_TTL_SECS: i64 = 7 * 24 * 3600;

fn invalid_token() -> Error {
    Error::invalid(
        "invalid_token",
        "the code is invalid, expired or already used",
    )
}

impl Identity {
    /// Mails a verification code to the account's address (after registration, or when
    /// asked again).
    pub async fn send_verification(&self, user: &UserRecord, ctx: &Context) -> Result<()> {
        let audit = ctx.entry("email.verification_sent", Outcome::Success, Some(&user.id));
        self.mail_token(
            user,
            &user.email,
            PURPOSE_VERIFY,
            VERIFY_TTL_SECS,
            Template::Verify,
            &audit,
        )
        .await
    }

    /// `POST /auth/email/verify/request`: re-sends verification for an unverified
    /// account, in the background; nothing is said about whether it exists.
    pub fn request_verification(self: &Arc<Self>, email: &str, ctx: Context) {
        let Ok(email) = normalize_email(email) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                match me.store.user_by_email(&email).await? {
                    Some(u) if !u.disabled && !u.email_verified => {
                        me.send_verification(&u, &ctx).await
                    }
                    _ => Ok(()),
                }
            };
            if let Err(e) = result.await {
                tracing::warn!(error = %e, "verification mail not sent");
            }
        });
    }

    /// A sign-up that answers the same whether or not the address already has an account
    /// (the hosted page must not tell which addresses exist): a new account gets its
    /// verification mail, a known address a note that someone tried, both mailed in the
    /// background. Password rules are checked first, for new and known addresses alike.
    pub async fn sign_up(
        self: &Arc<Self>,
        email: &str,
        password: &str,
        ctx: &Context,
    ) -> Result<()> {
        match self.register(email, password, ctx).await {
            Ok(user) => {
                let me = self.clone();
                let ctx = Context::user(&user.id, ctx.client.clone());
                tokio::spawn(async move {
                    if let Err(e) = me.send_verification(&user, &ctx).await {
                        tracing::warn!(error = %e, "verification mail not sent");
                    }
                });
                Ok(())
            }
            Err(Error::EmailTaken) => {
                let (me, email) = (self.clone(), normalize_email(email)?);
                tokio::spawn(async move {
                    let vars = Vars {
                        email: &email,
                        token: "",
                        minutes: 0,
                        change: "",
                    };
                    if let Err(e) = me.mailer.send(Template::AccountExists, &email, &vars).await {
                        tracing::warn!(error = %e, "sign-up notice not sent");
                    }
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /auth/email/verify`.
    pub async fn verify_email(&self, token: &str, ctx: &Context) -> Result<()> {
        let audit = ctx.entry("email.verified", Outcome::Success, None);
        self.store
            .verify_email_with_token(&token_hash(token)?, clock::now(), audit)
            .await?
            .map(|_| ())
            .ok_or_else(invalid_token)
    }

    /// `POST /auth/password/forgot`: mails a reset code to an existing, enabled account,
    /// in the background.
    pub fn request_password_reset(self: &Arc<Self>, email: &str, ctx: Context) {
        let Ok(email) = normalize_email(email) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                match me.store.user_by_email(&email).await? {
                    Some(u) if !u.disabled => {
                        let audit =
                            ctx.entry("password.reset_requested", Outcome::Success, Some(&u.id));
                        me.mail_token(
                            &u,
                            &u.email,
                            PURPOSE_RESET,
                            RESET_TTL_SECS,
                            Template::Reset,
                            &audit,
                        )
                        .await
                    }
                    _ => Ok(()),
                }
            };
            if let Err(e) = result.await {
                tracing::warn!(error = %e, "password reset mail not sent");
            }
        });
    }

    /// `POST /auth/password/reset`: sets the password and revokes every session.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        ctx: &Context,
    ) -> Result<()> {
        let hash = token_hash(token)?;
        let now = clock::now();
        let (_, email) = self
            .store
            .peek_email_token(&hash, PURPOSE_RESET, now)
            .await?
            .ok_or_else(invalid_token)?;
        self.policy.check(new_password, &email).await?;
        let new_hash = self.hasher.hash(new_password.to_string()).await?;
        let audit = ctx.entry("password.reset", Outcome::Success, None);
        let (_, revoked) = self
            .store
            .reset_password_with_token(&hash, &new_hash, now, audit)
            .await?
            .ok_or_else(invalid_token)?;
        self.revocations.announce(&revoked, now).await;
        Ok(())
    }

    /// An administrator sets `user`'s password (`Some`), or requires a reset (`None`): the
    /// password stops working and a reset code is mailed. Either way every session ends
    /// and pending codes are void.
    pub async fn set_password_by_admin(
        &self,
        user: &UserRecord,
        password: Option<&str>,
        ctx: &Context,
    ) -> Result<()> {
        let (hash, action, reason) = match password {
            Some(p) => {
                self.policy.check(p, &user.email).await?;
                let hash = self.hasher.hash(p.to_string()).await?;
                (Some(hash), "password.set", "password_set")
            }
            None => (None, "password.reset_required", "reset_required"),
        };
        let now = clock::now();
        let audit = ctx.entry(action, Outcome::Success, Some(&user.id));
        let revoked = self
            .store
            .set_password_revoking_sessions(&user.id, hash.as_deref(), None, reason, now, &audit)
            .await?;
        self.revocations.announce(&revoked, now).await;
        if password.is_none() {
            let audit = ctx.entry("password.reset_requested", Outcome::Success, Some(&user.id));
            self.mail_token(
                user,
                &user.email,
                PURPOSE_RESET,
                RESET_TTL_SECS,
                Template::Reset,
                &audit,
            )
            .await?;
        }
        Ok(())
    }

    /// Mails an invitation to an account created without a password: a code to choose
    /// one on the reset page, good for 7 days.
    pub async fn invite(&self, user: &UserRecord, ctx: &Context) -> Result<()> {
        let audit = ctx.entry("user.invited", Outcome::Success, Some(&user.id));
        self.mail_token(
            user,
            &user.email,
            PURPOSE_RESET,
            INVITE_TTL_SECS,
            Template::Invitation,
            &audit,
        )
        .await
    }

    /// `POST /auth/email/change`: after re-checking the password, mails a confirmation
    /// code to the new address. The change happens when the code comes back.
    pub async fn request_email_change(
        &self,
        user_id: &str,
        password: &str,
        new_email: &str,
        ctx: &Context,
    ) -> Result<()> {
        let new_email = normalize_email(new_email)?;
        let user = self.check_current_password(user_id, password).await?;
        if user.email == new_email {
            return Err(Error::invalid(
                "email_unchanged",
                "that is already the account's address",
            ));
        }
        // Said openly: the caller is signed in and has just proved the password.
        if self.store.user_by_email(&new_email).await?.is_some() {
            return Err(Error::EmailTaken);
        }
        let audit = ctx
            .entry("email.change_requested", Outcome::Success, Some(&user.id))
            .with("new_email", new_email.as_str());
        self.mail_token(
            &user,
            &new_email,
            PURPOSE_EMAIL_CHANGE,
            EMAIL_CHANGE_TTL_SECS,
            Template::EmailChange,
            &audit,
        )
        .await
    }

    /// `POST /auth/email/change/confirm`: moves the account to the new address and tells
    /// the old one.
    pub async fn confirm_email_change(&self, token: &str, ctx: &Context) -> Result<()> {
        let audit = ctx.entry("email.changed", Outcome::Success, None);
        let (_, old, new) = match self
            .store
            .change_email_with_token(&token_hash(token)?, clock::now(), audit)
            .await
        {
            Err(StoreError::Conflict) => return Err(Error::EmailTaken),
            other => other?.ok_or_else(invalid_token)?,
        };
        let vars = Vars {
            email: &new,
            token: "",
            minutes: 0,
            change: "",
        };
        if let Err(e) = self.mailer.send(Template::EmailChanged, &old, &vars).await {
            tracing::warn!(error = %e, "email-change notice not sent");
        }
        Ok(())
    }

    async fn mail_token(
        &self,
        user: &UserRecord,
        to: &str,
        purpose: &'static str,
        ttl_secs: i64,
        template: Template,
        audit: &crate::audit::Entry,
    ) -> Result<()> {
        let token = secret::generate();
        let now = clock::now();
        self.store
            .insert_email_token(
                &NewEmailToken {
                    token_hash: &secret::digest_hex(&token),
                    user_id: &user.id,
                    purpose,
                    email: to,
                    now,
                    expires_at: now + ttl_secs,
                },
                audit,
            )
            .await?;
        let vars = Vars {
            email: to,
            token: &token,
            minutes: (ttl_secs / 60) as u64,
            change: "",
        };
        self.mailer
            .send(template, to, &vars)
            .await
            .map_err(|e| Error::Internal(format!("mail: {e}")))
    }
}

/// The lookup key of a presented token; anything not shaped like one of ours is refused
/// before it reaches the database.
fn token_hash(token: &str) -> Result<String> {
    let token = token.trim();
    if token.len() != 43
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid_token());
    }
    Ok(secret::digest_hex(token))
}
