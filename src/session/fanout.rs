//! Revocation fan-out: telling every process that shares the database about a revoked
//! session within a second, so each keeps answering from its in-memory set.
//!
//! The channels: PostgreSQL `LISTEN/NOTIFY` whenever the database is PostgreSQL, and Redis
//! pub/sub as well when `TOLLGATE_REDIS_URL` is set; on SQLite without Redis, none (one
//! node; the CLI's revocations reach the server through its database poll). Whoever
//! revokes publishes on every channel after the commit — servers and the CLI alike — and
//! every node listens on every channel, so a dead Redis costs nothing while PostgreSQL
//! answers (a revocation applied twice is applied once). A lost channel is reconnected
//! with backoff; its loss and its recovery are logged once each. Messages stay
//! best-effort: one lost while every channel is down is caught by the periodic
//! reconciliation poll (`session::revocations`), which re-reads every revocation still
//! relevant.
//!
//! Payload: `<revoked_at> <session id> <session id> …`, at most [`IDS_PER_MESSAGE`] ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::postgres::{PgListener, PgPool};

use crate::store::Store;

pub const CHANNEL: &str = "tollgate_revocations";
/// Keeps a NOTIFY payload far below PostgreSQL's 8000-byte limit.
const IDS_PER_MESSAGE: usize = 100;
/// A revocation never waits longer than this on a slow channel.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// A listener that lost its connection tries again after this, doubling up to
/// [`RECONNECT_MAX`]: a channel that returns is used again within seconds.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What a listener hands each announced id to (id, revocation time).
type Revoke = dyn Fn(&str, i64) + Send + Sync;

pub struct Fanout {
    postgres: Option<PostgresChannel>,
    redis: Option<RedisChannel>,
}

struct PostgresChannel {
    pool: PgPool,
    health: Health,
}

struct RedisChannel {
    client: redis::Client,
    /// Made on first use (Redis may be down at start) and kept: it reconnects by itself
    /// after a failure.
    publisher: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    health: Health,
}

/// Whether a channel is up, so that losing it and getting it back are each logged once
/// rather than on every failed message or reconnection attempt.
struct Health {
    channel: &'static str,
    down: AtomicBool,
}

impl Health {
    fn new(channel: &'static str) -> Health {
        Health {
            channel,
            down: AtomicBool::new(false),
        }
    }

    fn lost(&self, error: &dyn std::fmt::Display) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(channel = self.channel, error = %error, "revocation channel lost; other channels and the database poll carry revocations until it returns");
        }
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(channel = self.channel, "revocation channel connected again");
        }
    }
}

impl Fanout {
    /// The channels for this configuration. Only an unusable Redis URL is an error; a
    /// Redis that does not answer now is tried again as messages come and go.
    pub async fn connect(store: &Store, redis_url: Option<&str>) -> anyhow::Result<Fanout> {
        let postgres = match store {
            Store::Postgres(pool) => Some(PostgresChannel {
                pool: pool.clone(),
                health: Health::new("postgres"),
            }),
            Store::Sqlite(_) => None,
        };
        let redis = match redis_url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url)
                    .map_err(|e| anyhow::anyhow!("invalid TOLLGATE_REDIS_URL: {e}"))?;
                let channel = RedisChannel {
                    client,
                    publisher: tokio::sync::Mutex::new(None),
                    health: Health::new("redis"),
                };
                if let Err(e) = channel.publisher().await {
                    channel.health.down.store(true, Ordering::Release);
                    tracing::warn!(error = %e, redis = %crate::config::values::redact_url(url), "Redis unavailable for revocation fan-out; the database carries revocations until it answers");
                }
                Some(channel)
            }
        };
        Ok(Fanout { postgres, redis })
    }

    pub fn name(&self) -> &'static str {
        match (&self.redis, &self.postgres) {
            (Some(_), Some(_)) => "redis+postgres",
            (Some(_), None) => "redis",
            (None, Some(_)) => "postgres",
            (None, None) => "none",
        }
    }

    pub fn is_none(&self) -> bool {
        self.redis.is_none() && self.postgres.is_none()
    }

    /// Announces revocations that are already committed, on every channel at once.
    /// Failures are logged (once per outage), not returned: the revocation itself stands,
    /// and the poll will spread it.
    pub async fn publish(&self, session_ids: &[String], revoked_at: i64) {
        for chunk in session_ids.chunks(IDS_PER_MESSAGE) {
            let payload = format!("{revoked_at} {}", chunk.join(" "));
            let postgres = async {
                if let Some(pg) = &self.postgres {
                    let sent = tokio::time::timeout(
                        PUBLISH_TIMEOUT,
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(CHANNEL)
                            .bind(&payload)
                            .execute(&pg.pool),
                    )
                    .await;
                    match sent {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => pg.health.lost(&e),
                        Err(_) => pg.health.lost(&"NOTIFY timed out"),
                    }
                }
            };
            let redis = async {
                if let Some(r) = &self.redis {
                    match tokio::time::timeout(PUBLISH_TIMEOUT, r.publish(&payload)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => r.health.lost(&e),
                        Err(_) => r.health.lost(&"PUBLISH timed out"),
                    }
                }
            };
            tokio::join!(postgres, redis);
        }
    }

    /// Hands every id any channel announces to `revoke` (id, revocation time) for as
    /// long as the process runs, reconnecting each channel after failures.
    pub fn spawn_listener(self: &Arc<Self>, revoke: impl Fn(&str, i64) + Send + Sync + 'static) {
        let revoke: Arc<Revoke> = Arc::new(revoke);
        if self.postgres.is_some() {
            let (fanout, revoke) = (self.clone(), revoke.clone());
            tokio::spawn(async move {
                let pg = fanout.postgres.as_ref().expect("checked above");
                keep_listening(&pg.health, || {
                    listen_postgres(&pg.pool, &pg.health, &*revoke)
                })
                .await
            });
        }
        if self.redis.is_some() {
            let fanout = self.clone();
            tokio::spawn(async move {
                let r = fanout.redis.as_ref().expect("checked above");
                keep_listening(&r.health, || listen_redis(&r.client, &r.health, &*revoke)).await
            });
        }
    }
}

impl RedisChannel {
    /// The publishing connection, made now if it was not.
    async fn publisher(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let mut slot = self.publisher.lock().await;
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            // A Redis that refuses connections should not hold a revocation for the
            // default six backed-off retries (~9 s): the other channels carry it.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn =
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// PUBLISH, once more if the first attempt fails: the connection manager reconnects
    /// after a failure, and without the second attempt the first message after Redis
    /// returns would be lost on the dead connection.
    async fn publish(&self, payload: &str) -> redis::RedisResult<()> {
        let mut last = None;
        for _ in 0..2 {
            let attempt = async {
                let mut conn = self.publisher().await?;
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await
            };
            match attempt.await {
                Ok(_) => {
                    self.health.up();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("two attempts"))
    }
}

/// Why a listening round ended, and whether it had got as far as listening.
struct RoundEnded {
    listened: bool,
    error: anyhow::Error,
}

/// Runs `listen` again and again: each round ends when its connection is lost. The wait
/// before the next round grows while the channel stays down and starts over once a round
/// got to listen.
async fn keep_listening<F, Fut>(health: &Health, mut listen: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RoundEnded>,
{
    let mut delay = RECONNECT_FIRST;
    loop {
        let ended = listen().await;
        health.lost(&ended.error);
        if ended.listened {
            delay = RECONNECT_FIRST;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

async fn listen_postgres(pool: &PgPool, health: &Health, revoke: &Revoke) -> RoundEnded {
    let not_yet = |e: sqlx::Error| RoundEnded {
        listened: false,
        error: e.into(),
    };
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return not_yet(e),
    };
    // Lost connections surface as errors: end this round and reconnect, instead of
    // letting the listener reconnect silently past missed messages.
    listener.ignore_pool_close_event(false);
    if let Err(e) = listener.listen(CHANNEL).await {
        return not_yet(e);
    }
    health.up();
    loop {
        match listener.recv().await {
            Ok(note) => apply(note.payload(), revoke),
            Err(e) => {
                return RoundEnded {
                    listened: true,
                    error: e.into(),
                };
            }
        }
    }
}

async fn listen_redis(client: &redis::Client, health: &Health, revoke: &Revoke) -> RoundEnded {
    let not_yet = |e: redis::RedisError| RoundEnded {
        listened: false,
        error: e.into(),
    };
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return not_yet(e),
    };
    if let Err(e) = pubsub.subscribe(CHANNEL).await {
        return not_yet(e);
    }
    health.up();
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        match msg.get_payload::<String>() {
            Ok(payload) => apply(&payload, revoke),
            Err(e) => tracing::warn!(error = %e, "unreadable revocation message"),
        }
    }
    RoundEnded {
        listened: true,
        error: anyhow::anyhow!("the Redis subscription ended"),
    }
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
