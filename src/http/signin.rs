//! Password sign-in, one implementation for every door: the JSON `/auth/login`, the
//! hosted form `/ui/login` and account linking. In order: the per-account rate limit,
//! the lockout (no password check while locked), the password (one argon2 verification
//! whether or not the account exists), the verification requirement (told only to
//! someone who knows the password), then the failure counters and the audit log.

use super::limits::{account_key, check_keyed, client_key};
use super::problem::Problem;
use crate::app::AppState;
use crate::audit::{Context, Entry, Outcome};
use crate::error::Error;
use crate::identity::validate::normalize_email;
use crate::limits::Per;
use crate::session::ClientInfo;
use crate::store::UserRecord;

/// Checks `email` and `password` posted to `path` (which names the rate-limit rules
/// that apply). The user, or the refusal to answer with.
pub async fn check_password(
    app: &AppState,
    path: &str,
    email: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<UserRecord, Problem> {
    // Counters are kept per address as typed (normalised when it can be): unknown and
    // known accounts are throttled alike.
    let account = normalize_email(email)
        .unwrap_or_else(|_| email.trim().to_lowercase().chars().take(254).collect());
    check_keyed(
        app,
        Per::Account,
        "POST",
        path,
        &account_key(&account, client),
    )
    .await?;
    let ip = client_key(client);
    // What was typed is recorded only when it is an address: people type passwords into
    // the email field, and the log cannot be purged.
    let typed = normalize_email(email).unwrap_or_else(|_| "(not an email)".into());
    let ctx = Context::anonymous(client.clone());
    let failure = |reason: &'static str| {
        ctx.entry("auth.login", Outcome::Failure, None)
            .with("email", typed.as_str())
            .with("reason", reason)
    };
    if let Some(secs) = app.sign_in.locked_for(&account, &ip).await? {
        let entry = Entry {
            outcome: Outcome::Denied,
            ..failure("locked")
        };
        app.store.append_audit(&entry).await.map_err(Error::from)?;
        metrics::counter!("tollgate_logins_total", "outcome" => "locked").increment(1);
        return Err(Error::Locked {
            retry_after_secs: secs,
        }
        .into());
    }
    let outcome = match app.identity.authenticate(email, password).await {
        Ok(u) if app.config.mail.require_verification && !u.email_verified => {
            Err((Error::EmailNotVerified, Some(u.id)))
        }
        Ok(u) => Ok(u),
        Err(e) => Err((e, None)),
    };
    match outcome {
        Ok(user) => {
            app.sign_in.succeeded(&account, &ip).await?;
            metrics::counter!("tollgate_logins_total", "outcome" => "success").increment(1);
            Ok(user)
        }
        Err((e, user_id)) => {
            metrics::counter!("tollgate_logins_total", "outcome" => e.code()).increment(1);
            tracing::info!(event = "login_failed", reason = e.code());
            let entry = Entry {
                subject: user_id,
                ..failure(e.code())
            };
            match e {
                Error::InvalidCredentials => {
                    app.sign_in.failed(&account, &ip, &entry).await?;
                }
                Error::Unavailable(_) => {}
                _ => app.store.append_audit(&entry).await.map_err(Error::from)?,
            }
            Err(e.into())
        }
    }
}
