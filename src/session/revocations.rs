//! Revocations: the one place that records a revocation and spreads it.
//!
//! Writers (sign-out, password change, disabling, client changes, refresh-token theft)
//! call [`Revocations::announce`] after their commit: the entry goes into this process's
//! [`RevocationSet`] at once and out on the fan-out channel to every other process. The
//! set is what token verification reads ([`Revocations::set`]); it is fed from three
//! sides, all started here: this process's announcements, the channel's listener, and a
//! poll of the database that catches what the channel missed (or, on SQLite, carries
//! the CLI's revocations alone).

use std::sync::Arc;
use std::time::Duration;

use super::fanout::Fanout;
use super::revocation::RevocationSet;
use crate::clock;
use crate::store::Store;

/// How often revocations made elsewhere (CLI, other nodes) are picked up from the database
/// when nothing pushes them (SQLite)...
const POLL: Duration = Duration::from_secs(1);
/// ...and how often the set is reconciled with the database when a fan-out channel
/// pushes them (it catches messages lost while a listener reconnected).
const RECONCILE: Duration = Duration::from_secs(5);

pub struct Revocations {
    set: Arc<RevocationSet>,
    channel: Arc<Fanout>,
}

impl Revocations {
    /// Connects the fan-out channels (PostgreSQL's, and Redis when configured) and loads
    /// every revocation still relevant.
    pub async fn open(
        store: &Store,
        access_ttl: Duration,
        redis_url: Option<&str>,
    ) -> anyhow::Result<Revocations> {
        let channel = Fanout::connect(store, redis_url).await?;
        let revocations = Revocations {
            set: Arc::new(RevocationSet::new(access_ttl)),
            channel: Arc::new(channel),
        };
        load(&revocations.set, store).await?;
        Ok(revocations)
    }

    /// What token verification consults.
    pub fn set(&self) -> &Arc<RevocationSet> {
        &self.set
    }

    /// The fan-out channels' name (`redis+postgres`, `redis`, `postgres` or `none`), for
    /// the start-up line.
    pub fn channel(&self) -> &'static str {
        self.channel.name()
    }

    /// Records revocations this process has just committed and tells the others.
    pub async fn announce(&self, ids: &[String], revoked_at: i64) {
        self.set.revoke_all(ids, revoked_at);
        self.channel.publish(ids, revoked_at).await;
    }

    /// Starts the channel's listener and the database poll, for a serving process.
    pub fn spawn_feeds(&self, store: Store) {
        let set = self.set.clone();
        self.channel
            .spawn_listener(move |id, at| set.revoke(id, at));
        let period = if self.channel.is_none() {
            POLL
        } else {
            RECONCILE
        };
        let set = self.set.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if let Err(e) = load(&set, &store).await {
                    tracing::warn!(error = %e, "revocation poll failed");
                }
            }
        });
    }
}

/// Re-reads the whole retention window, every time: `revoked_at` is stamped by the
/// revoking process before its commit, so a row can appear "in the past" (clock skew, a
/// slow commit); an incremental cursor would miss it for good.
async fn load(set: &RevocationSet, store: &Store) -> crate::store::StoreResult<()> {
    for (id, at) in store
        .revoked_since(clock::now() - set.retention_secs())
        .await?
    {
        set.revoke(&id, at);
    }
    Ok(())
}
