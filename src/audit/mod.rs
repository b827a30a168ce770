//! The audit log: every security event, append-only and hash-chained.
//!
//! An [`Entry`] says who did what to whom, from where, and how it ended. Entries that
//! record a change are written by the store in the same transaction as the change
//! (`store::audit`), so a rolled-back change leaves no entry and a committed one always
//! has one. Each entry's hash covers its fields and the previous entry's hash
//! ((`store::chain`)); [`checkpoint`] signs the head of the chain with the service key now and
//! then, so a rewrite of the whole chain by someone with database access shows too.
//! [`verify`] walks the chain and names the first entry that does not fit.

pub mod checkpoint;
pub mod throttle;
pub mod verify;

use std::time::Duration;

use serde_json::Value;

pub use crate::store::{Entry, Outcome};

use crate::config::values::{ConfigError, DurationValue, SectionDuration};

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How often a server signs a checkpoint of the chain's head (when it moved).
    pub checkpoint_interval: Duration,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    pub checkpoint_interval: Option<DurationValue>,
}

/// `[audit]`, resolved: a checkpoint a minute.
pub fn resolve_config(
    a: AuditSection,
    duration: SectionDuration<'_>,
) -> Result<AuditConfig, ConfigError> {
    let audit = AuditConfig {
        checkpoint_interval: duration(
            "audit.checkpoint_interval",
            a.checkpoint_interval,
            "1m",
            false,
        )?,
    };
    Ok(audit)
}

/// Where a request came from: recorded with audit entries, and kept with a session for
/// the user's session list.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Who is acting and from where: `user:<id>`, `admin:<id>`, `client:<id>`, `cli`,
/// `system` or `anonymous`, plus the client's address and user agent when there is a request.
#[derive(Debug, Clone)]
pub struct Context {
    pub actor: String,
    pub client: ClientInfo,
}

impl Context {
    /// The account acting, for a user or an administrator (`None` for the CLI, a client,
    /// Tollgate itself or an anonymous caller).
    pub fn actor_id(&self) -> Option<&str> {
        self.actor
            .strip_prefix("user:")
            .or_else(|| self.actor.strip_prefix("admin:"))
    }

    /// An operator at the command line.
    pub fn cli() -> Context {
        Context {
            actor: "cli".into(),
            client: ClientInfo::default(),
        }
    }

    /// Tollgate itself (background work).
    pub fn system() -> Context {
        Context {
            actor: "system".into(),
            client: ClientInfo::default(),
        }
    }

    /// A request from someone not (yet) signed in.
    pub fn anonymous(client: ClientInfo) -> Context {
        Context {
            actor: "anonymous".into(),
            client,
        }
    }

    /// A request from a signed-in user acting on their own account.
    pub fn user(user_id: &str, client: ClientInfo) -> Context {
        Context {
            actor: format!("user:{user_id}"),
            client,
        }
    }

    /// An OAuth client acting for itself (token, introspection and revocation requests).
    pub fn client(client_id: &str, client: ClientInfo) -> Context {
        Context {
            actor: format!("client:{client_id}"),
            client,
        }
    }

    /// A request through the admin API.
    pub fn admin(user_id: &str, client: ClientInfo) -> Context {
        Context {
            actor: format!("admin:{user_id}"),
            client,
        }
    }

    /// The entry for `action` on `subject` (a user id, usually) in this context.
    pub fn entry(&self, action: &'static str, outcome: Outcome, subject: Option<&str>) -> Entry {
        Entry {
            at_ms: crate::clock::now_ms(),
            action,
            outcome,
            actor: self.actor.clone(),
            subject: subject.map(str::to_string),
            ip: self.client.ip.clone(),
            user_agent: self.client.user_agent.clone(),
            detail: Value::Object(Default::default()),
        }
    }
}

/// The log in order, a page at a time, so a walk over a log of any size (verification,
/// export) runs in constant memory.
#[derive(Default)]
pub struct Pages {
    after: i64,
}

impl Pages {
    /// The next page, `None` after the last entry.
    pub async fn next(
        &mut self,
        store: &crate::store::Store,
    ) -> crate::store::StoreResult<Option<Vec<crate::store::AuditRecord>>> {
        let page = store.audit_page(self.after, 1000).await?;
        Ok(page.last().map(|last| last.seq).map(|seq| {
            self.after = seq;
            page
        }))
    }
}
