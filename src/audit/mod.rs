//! The audit log: every security event, append-only and hash-chained.
//!
//! An [`Entry`] says who did what to whom, from where, and how it ended. Entries that
//! record a change are written by the store in the same transaction as the change
//! (`store::audit`), so a rolled-back change leaves no entry and a committed one always
//! has one. Each entry's hash covers its fields and the previous entry's hash
//! ([`chain`]); [`checkpoint`] signs the head of the chain with the service key now and
//! then, so a rewrite of the whole chain by someone with database access shows too.
//! [`verify`] walks the chain and names the first entry that does not fit.

pub mod chain;
pub mod checkpoint;
pub mod throttle;
pub mod verify;

use serde_json::Value;

use crate::session::ClientInfo;

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Refused before it was tried (locked out, rate limited, not allowed).
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Who is acting and from where: `user:<id>`, `admin:<id>`, `client:<id>`, `cli`,
/// `system` or `anonymous`, plus the client's address and user agent when there is a request.
#[derive(Debug, Clone)]
pub struct Context {
    pub actor: String,
    pub client: ClientInfo,
}

impl Context {
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
            at_ms: now_ms(),
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

/// One audit event before it is chained.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at_ms: i64,
    /// A stable dotted name (`auth.login`, `session.revoked`, …); docs/security.md lists them.
    pub action: &'static str,
    pub outcome: Outcome,
    pub actor: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Event-specific facts (a reason, a role, a session id); never a secret.
    pub detail: Value,
}

impl Entry {
    /// The same entry about `subject` (known only inside the store's transaction).
    pub fn about(self, subject: impl Into<String>) -> Entry {
        Entry {
            subject: Some(subject.into()),
            ..self
        }
    }

    /// Adds one detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Entry {
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_string(), value.into());
        }
        self
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
