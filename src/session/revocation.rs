//! The in-memory set of revoked sessions that every token verification consults.
//!
//! An access token outlives nothing: once its session is revoked, the set refuses it at
//! once, with no database round trip. An entry only needs to live as long as a token issued
//! just before the revocation could (`access_ttl` plus leeway), so the set stays small.
//! It is fed by this node's own revocations, by a poll of the database (revocations made
//! by the CLI or other nodes), and by the fan-out channel (`session::fanout`), all wired
//! by the `session::revocations` façade, through which this process's own revocations go out.
//!
//! Besides sessions, the set holds OAuth clients: a deleted one (announced as
//! `client:<id>`) loses every token at once, whatever its session; one whose scopes were
//! narrowed (`client-tokens:<id>`, at the time of the change) loses the tokens issued up to
//! then, services' own included, which have no session to revoke.

use std::collections::HashMap;
use std::sync::RwLock;

pub use crate::store::{CLIENT_PREFIX, CLIENT_TOKENS_PREFIX};

/// A client's revocation: tokens issued at or before `cutoff` fail (every token, for a
/// deleted client).
#[derive(Debug, Clone, Copy)]
struct ClientCutoff {
    cutoff: i64,
    forget_after: i64,
}

pub struct RevocationSet {
    /// session id → Unix second after which the entry can be forgotten.
    entries: RwLock<HashMap<String, i64>>,
    /// OAuth clients whose tokens (up to a time) are void.
    clients: RwLock<HashMap<String, ClientCutoff>>,
    retention_secs: i64,
}

impl RevocationSet {
    pub fn new(access_ttl: std::time::Duration) -> RevocationSet {
        RevocationSet {
            entries: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            retention_secs: access_ttl.as_secs() as i64 + 5,
        }
    }

    /// How far back a loader must look to rebuild the set.
    pub fn retention_secs(&self) -> i64 {
        self.retention_secs
    }

    /// Records a revoked session, a deleted client (`client:<id>`), or a client whose
    /// tokens issued up to `revoked_at` are void (`client-tokens:<id>`).
    pub fn revoke(&self, id: &str, revoked_at: i64) {
        // Counted from when this node learns of it too: a revocation stamped by a slower
        // clock, or committed late, must still outlive every token of the session.
        let forget_after = revoked_at.max(crate::clock::now()) + self.retention_secs;
        let client = match (
            id.strip_prefix(CLIENT_PREFIX),
            id.strip_prefix(CLIENT_TOKENS_PREFIX),
        ) {
            (Some(deleted), _) => Some((deleted, i64::MAX)),
            (_, Some(narrowed)) => Some((narrowed, revoked_at)),
            _ => None,
        };
        if let Some((client, cutoff)) = client {
            let mut map = self.clients.write().unwrap_or_else(|p| p.into_inner());
            let entry = map.entry(client.to_string()).or_insert(ClientCutoff {
                cutoff,
                forget_after,
            });
            entry.cutoff = entry.cutoff.max(cutoff);
            entry.forget_after = entry.forget_after.max(forget_after);
            if map.len() >= 1024 && map.len().is_power_of_two() {
                let now = crate::clock::now();
                map.retain(|_, c| c.forget_after >= now);
            }
            return;
        }
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(id.to_string()).or_insert(forget_after);
        *entry = (*entry).max(forget_after);
        // Amortised pruning: only when the map has grown, never on the read path.
        if map.len() >= 1024 && map.len().is_power_of_two() {
            let now = crate::clock::now();
            map.retain(|_, until| *until >= now);
        }
    }

    pub fn revoke_all(&self, session_ids: &[String], revoked_at: i64) {
        for id in session_ids {
            self.revoke(id, revoked_at);
        }
    }

    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(session_id)
    }

    /// Whether the OAuth client `client_id` was deleted.
    pub fn is_client_revoked(&self, client_id: &str) -> bool {
        self.client_token_revoked(client_id, i64::MAX)
    }

    /// Whether a token `client_id` got at `issued_at` is void: the client was deleted, or
    /// narrowed after that.
    pub fn client_token_revoked(&self, client_id: &str, issued_at: i64) -> bool {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        !clients.is_empty()
            && clients
                .get(client_id)
                .is_some_and(|c| c.cutoff == i64::MAX || issued_at <= c.cutoff)
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn revoked_sessions_are_reported() {
        let set = RevocationSet::new(Duration::from_secs(60));
        assert!(!set.is_revoked("a"));
        set.revoke("a", crate::clock::now());
        assert!(set.is_revoked("a"));
        assert!(!set.is_revoked("b"));
    }

    #[test]
    fn deleted_clients_are_kept_apart_from_sessions() {
        let set = RevocationSet::new(Duration::from_secs(60));
        set.revoke("client:reports", crate::clock::now());
        assert!(set.is_client_revoked("reports"));
        assert!(set.client_token_revoked("reports", i64::MAX - 1));
        assert!(!set.is_revoked("reports") && !set.is_revoked("client:reports"));
        assert!(!set.is_client_revoked("billing"));
        // Narrowed: tokens up to the change fail, later ones pass, the client lives on.
        set.revoke("client-tokens:billing", 1000);
        assert!(set.client_token_revoked("billing", 1000));
        assert!(!set.client_token_revoked("billing", 1001));
        assert!(!set.is_client_revoked("billing"));
    }

    #[test]
    fn stale_entries_are_pruned_as_the_set_grows() {
        let set = RevocationSet::new(Duration::from_secs(1));
        set.entries.write().unwrap().insert("old".into(), 0);
        for i in 0..2048 {
            set.revoke(&format!("s{i}"), crate::clock::now());
        }
        assert!(!set.is_revoked("old"));
        assert!(set.is_revoked("s5"));
    }

    #[test]
    fn an_old_revocation_learned_late_is_kept_for_a_full_retention() {
        let set = RevocationSet::new(Duration::from_secs(60));
        set.revoke("late", crate::clock::now() - 3600);
        let until = set.entries.read().unwrap()["late"];
        assert!(until >= crate::clock::now() + 60);
    }
}
