//! Accounts at external identity providers, linked to local accounts.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::users::insert_user;
use super::{BeginWrite, NewUser, Store, StoreResult, conflict_aware, on_pool};

/// A link between a provider's subject and a local account.
#[derive(Debug, Clone)]
pub struct FederatedIdentity {
    pub user_id: String,
    /// The roles the provider's claims granted at the last sign-in.
    pub mapped_roles: Vec<String>,
}

/// A sign-in through a provider, with the role changes its claims call for.
pub struct FederatedLogin<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    /// The roles the claims map to now.
    pub mapped_roles: &'a [String],
    pub grant: &'a [String],
    pub revoke: &'a [String],
    pub now: i64,
}

/// Inserts the link row inside the open write transaction `$tx`.
macro_rules! insert_link {
    ($tx:expr, $l:expr) => {{
        let l: &FederatedLogin<'_> = $l;
        sqlx::query(
            "INSERT INTO federated_identities (provider, subject, user_id, email, mapped_roles, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(l.provider)
        .bind(l.subject)
        .bind(l.user_id)
        .bind(l.email)
        .bind(l.mapped_roles.join(" "))
        .bind(l.now)
        .execute(&mut *$tx)
        .await
        .map_err(conflict_aware)?;
    }};
}

/// Applies a sign-in's role changes inside `$tx`; evaluates to whether any role changed.
macro_rules! grant_and_revoke {
    ($tx:expr, $l:expr) => {{
        let l: &FederatedLogin<'_> = $l;
        let mut changed = false;
        for role in l.grant {
            changed |= sqlx::query(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(l.user_id)
            .bind(role)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
                > 0;
        }
        for role in l.revoke {
            changed |= sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
                .bind(l.user_id)
                .bind(role)
                .execute(&mut *$tx)
                .await?
                .rows_affected()
                > 0;
        }
        changed
    }};
}

impl Store {
    pub async fn federated_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentity>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT user_id, mapped_roles FROM federated_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mapped: String = row.try_get("mapped_roles")?;
            Ok(Some(FederatedIdentity {
                user_id: row.try_get("user_id")?,
                mapped_roles: mapped
                    .split_ascii_whitespace()
                    .map(str::to_string)
                    .collect(),
            }))
        })
    }

    /// Creates an account for a provider's subject (just-in-time) with the link, in one
    /// transaction. `Conflict` when the email is taken or the subject already linked.
    pub async fn create_federated_user(
        &self,
        user: &NewUser<'_>,
        login: &FederatedLogin<'_>,
        audit: &Entry,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_user!(tx, user);
            insert_link!(tx, login);
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Links a provider's subject to an existing account. `Conflict` when the subject is
    /// linked already.
    pub async fn link_federated_identity(
        &self,
        login: &FederatedLogin<'_>,
        audit: &Entry,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_link!(tx, login);
            grant_and_revoke!(tx, login);
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a sign-in of a linked subject and applies its role changes; audited (by
    /// `audit`) only when roles changed.
    pub async fn record_federated_login(
        &self,
        login: &FederatedLogin<'_>,
        audit: &Entry,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE federated_identities SET last_login_at = $1, email = $2, mapped_roles = $3
                 WHERE provider = $4 AND subject = $5",
            )
            .bind(login.now)
            .bind(login.email)
            .bind(login.mapped_roles.join(" "))
            .bind(login.provider)
            .bind(login.subject)
            .execute(&mut *tx)
            .await?;
            if grant_and_revoke!(tx, login) {
                append_audit!(tx, audit);
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// A provider account linked to a local one, as its owner sees it.
#[derive(Debug, Clone)]
pub struct LinkedIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_login_at: i64,
}

impl Store {
    /// The provider accounts linked to `user_id`, by provider.
    pub async fn linked_identities(&self, user_id: &str) -> StoreResult<Vec<LinkedIdentity>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT provider, subject, email, created_at, last_login_at
                 FROM federated_identities WHERE user_id = $1 ORDER BY provider, subject",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(LinkedIdentity {
                        provider: r.try_get("provider")?,
                        subject: r.try_get("subject")?,
                        email: r.try_get("email")?,
                        created_at: r.try_get("created_at")?,
                        last_login_at: r.try_get("last_login_at")?,
                    })
                })
                .collect()
        })
    }

    /// Removes the link of `user_id` with a provider's subject; whether there was one.
    pub async fn unlink_federated_identity(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let gone = sqlx::query(
                "DELETE FROM federated_identities WHERE user_id = $1 AND provider = $2 AND subject = $3",
            )
            .bind(user_id)
            .bind(provider)
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if gone {
                append_audit!(tx, audit);
                tx.commit().await?;
            }
            Ok(gone)
        })
    }
}
