//! The in-memory set of revoked sessions that every token verification consults.
//!
//! An access token outlives nothing: once its session is revoked, the set refuses it at
//! once, with no database round trip. An entry only needs to live as long as a token issued
//! just before the revocation could (`access_ttl` plus leeway), so the set stays small.
//! It is fed by this node's own revocations, by a poll of the database (revocations made
//! by the CLI or other nodes), and by the fan-out channel (`session::fanout`): this
//! process's own revocations go out through [`RevocationSet::announce`].
//!
//! Besides sessions, the set holds deleted OAuth clients (announced as `client:<id>`):
//! every token a deleted client holds fails at once, whatever its session.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::fanout::Fanout;

/// How a deleted client is named on the fan-out channel and in the database poll.
pub const CLIENT_PREFIX: &str = "client:";

pub struct RevocationSet {
    /// session id → Unix second after which the entry can be forgotten.
    entries: RwLock<HashMap<String, i64>>,
    /// Deleted OAuth clients, the same way.
    clients: RwLock<HashMap<String, i64>>,
    retention_secs: i64,
    fanout: OnceLock<Arc<Fanout>>,
}

impl RevocationSet {
    pub fn new(access_ttl: std::time::Duration) -> RevocationSet {
        RevocationSet {
            entries: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            retention_secs: access_ttl.as_secs() as i64 + 5,
            fanout: OnceLock::new(),
        }
    }

    /// How far back a loader must look to rebuild the set.
    pub fn retention_secs(&self) -> i64 {
        self.retention_secs
    }

    /// Records a revoked session, or a deleted client when `id` is `client:<id>`.
    pub fn revoke(&self, id: &str, revoked_at: i64) {
        let (map, id) = match id.strip_prefix(CLIENT_PREFIX) {
            Some(client) => (&self.clients, client),
            None => (&self.entries, id),
        };
        let mut map = map.write().unwrap_or_else(|p| p.into_inner());
        // Counted from when this node learns of it too: a revocation stamped by a slower
        // clock, or committed late, must still outlive every token of the session.
        let forget_after = revoked_at.max(crate::clock::now()) + self.retention_secs;
        let entry = map.entry(id.to_string()).or_insert(forget_after);
        *entry = (*entry).max(forget_after);
        // Amortised pruning: only when the map has grown, never on the read path.
        if map.len() >= 1024 && map.len().is_power_of_two() {
            let now = crate::clock::now();
            map.retain(|_, until| *until >= now);
        }
    }

    /// Connects the set to the channel that tells other processes (set once, at start).
    pub fn set_fanout(&self, fanout: Arc<Fanout>) {
        let _ = self.fanout.set(fanout);
    }

    /// Records revocations this process has just committed and tells the others.
    pub async fn announce(&self, session_ids: &[String], revoked_at: i64) {
        self.revoke_all(session_ids, revoked_at);
        if let Some(fanout) = self.fanout.get() {
            fanout.publish(session_ids, revoked_at).await;
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

    /// Whether the OAuth client `client_id` was deleted (its tokens are void).
    pub fn is_client_revoked(&self, client_id: &str) -> bool {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        !clients.is_empty() && clients.contains_key(client_id)
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
        assert!(!set.is_revoked("reports") && !set.is_revoked("client:reports"));
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
