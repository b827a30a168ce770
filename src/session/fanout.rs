//! Revocation fan-out: telling every process that shares the database about a revoked
//! session within a second, so each keeps answering from its in-memory set.
//!
//! The channel is Redis pub/sub when `TOLLGATE_REDIS_URL` is set, else PostgreSQL
//! `LISTEN/NOTIFY` on PostgreSQL, else nothing (SQLite is one node; the CLI's
//! revocations reach the server through its database poll). Whoever revokes publishes
//! after the commit — servers and the CLI alike. Messages are best-effort by design: a
//! message lost while a listener reconnects is caught by the periodic reconciliation poll
//! (`session::revocations`), which re-reads every revocation still relevant.
//!
//! Payload: `<revoked_at> <session id> <session id> …`, at most [`IDS_PER_MESSAGE`] ids.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::postgres::{PgListener, PgPool};

use crate::store::Store;

pub const CHANNEL: &str = "tollgate_revocations";
/// Keeps a NOTIFY payload far below PostgreSQL's 8000-byte limit.
const IDS_PER_MESSAGE: usize = 100;
/// A revocation never waits longer than this on a slow channel.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub enum Fanout {
    /// No channel: the database poll is the only feed.
    None,
    Postgres(PgPool),
    Redis(Box<RedisChannel>),
}

pub struct RedisChannel {
    client: redis::Client,
    publisher: redis::aio::ConnectionManager,
}

impl Fanout {
    /// Chooses the channel for this configuration.
    pub async fn connect(store: &Store, redis_url: Option<&str>) -> anyhow::Result<Fanout> {
        if let Some(url) = redis_url {
            let client = redis::Client::open(url)
                .map_err(|e| anyhow::anyhow!("invalid TOLLGATE_REDIS_URL: {e}"))?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(PUBLISH_TIMEOUT))
                // A Redis that refuses connections at start-up should not hold the start
                // for the default six backed-off retries (~9 s): the database carries
                // revocations meanwhile.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            let publisher = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot connect to Redis at {} (redis_url / TOLLGATE_REDIS_URL): {e}",
                        crate::config::values::redact_url(url)
                    )
                })?;
            return Ok(Fanout::Redis(Box::new(RedisChannel { client, publisher })));
        }
        Ok(match store {
            Store::Postgres(pool) => Fanout::Postgres(pool.clone()),
            Store::Sqlite(_) => Fanout::None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fanout::None => "none",
            Fanout::Postgres(_) => "postgres",
            Fanout::Redis(_) => "redis",
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Fanout::None)
    }

    /// Announces revocations that are already committed. Failures are logged, not
    /// returned: the revocation itself stands, and the poll will spread it.
    pub async fn publish(&self, session_ids: &[String], revoked_at: i64) {
        for chunk in session_ids.chunks(IDS_PER_MESSAGE) {
            let payload = format!("{revoked_at} {}", chunk.join(" "));
            let sent = tokio::time::timeout(PUBLISH_TIMEOUT, self.send(&payload)).await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(channel = self.name(), error = %e, "revocation fan-out failed; the poll will catch up")
                }
                Err(_) => tracing::warn!(
                    channel = self.name(),
                    "revocation fan-out timed out; the poll will catch up"
                ),
            }
        }
    }

    async fn send(&self, payload: &str) -> anyhow::Result<()> {
        match self {
            Fanout::None => {}
            Fanout::Postgres(pool) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(pool)
                    .await?;
            }
            Fanout::Redis(redis) => {
                let mut conn = redis.publisher.clone();
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Hands every id the channel announces to `revoke` (id, revocation time) for as long
    /// as the process runs, reconnecting after failures.
    pub fn spawn_listener(self: &Arc<Self>, revoke: impl Fn(&str, i64) + Send + Sync + 'static) {
        let fanout = self.clone();
        tokio::spawn(async move {
            loop {
                let result = match &*fanout {
                    Fanout::None => return,
                    Fanout::Postgres(pool) => listen_postgres(pool, &revoke).await,
                    Fanout::Redis(redis) => listen_redis(&redis.client, &revoke).await,
                };
                if let Err(e) = result {
                    tracing::warn!(channel = fanout.name(), error = %e, "revocation listener lost its connection; reconnecting");
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }
}

async fn listen_postgres(
    pool: &PgPool,
    revoke: &(dyn Fn(&str, i64) + Send + Sync),
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Lost connections surface as errors: end this round and reconnect, instead of
    // letting the listener reconnect silently past missed messages.
    listener.ignore_pool_close_event(false);
    listener.listen(CHANNEL).await?;
    loop {
        let note = listener.recv().await?;
        apply(note.payload(), revoke);
    }
}

async fn listen_redis(
    client: &redis::Client,
    revoke: &(dyn Fn(&str, i64) + Send + Sync),
) -> anyhow::Result<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        match msg.get_payload::<String>() {
            Ok(payload) => apply(&payload, revoke),
            Err(e) => tracing::warn!(error = %e, "unreadable revocation message"),
        }
    }
    anyhow::bail!("Redis subscription ended")
}

/// Applies one message; malformed ones are ignored (anyone who can publish on the
/// channel can only ever cause revocations, never lift one).
fn apply(payload: &str, revoke: &(dyn Fn(&str, i64) + Send + Sync)) {
    let mut parts = payload.split_ascii_whitespace();
    let Some(at) = parts.next().and_then(|a| a.parse::<i64>().ok()) else {
        tracing::warn!("malformed revocation message ignored");
        return;
    };
    // Session ids and `client:`/`client-tokens:` plus a client id (at most 48).
    for id in parts.filter(|id| id.len() <= 64) {
        revoke(id, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_revoke_what_they_name_and_garbage_is_ignored() {
        let seen = std::sync::Mutex::new(Vec::new());
        let revoke = |id: &str, at: i64| seen.lock().unwrap().push((id.to_string(), at));
        apply("1700000000 a b", &revoke);
        apply("soon c", &revoke);
        apply("", &revoke);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("a".to_string(), 1_700_000_000),
                ("b".to_string(), 1_700_000_000)
            ]
        );
    }
}
