//! Shared GCRA state in Redis: one Lua script per check, so the read-decide-write of a
//! TAT is atomic across every Tollgate process. The script uses Redis's own clock
//! (`TIME`), so nodes with skewed clocks still share one timeline, and expires each key
//! when its TAT has passed.

use std::time::Duration;

use super::gcra::{Quota, RateDecision};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > capacity then
  return {0, 0, ahead - capacity, tat - now}
end
redis.call('SET', KEYS[1], tat + interval, 'PX', ahead)
return {1, math.floor((capacity - ahead) / interval), 0, ahead}
"#;

/// A lazily connecting, self-reconnecting Redis connection whose commands fail after
/// `timeout` (shared by rate limits and AI quotas).
pub(crate) fn connect(
    url: &str,
    timeout: Duration,
) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client =
        redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid TOLLGATE_REDIS_URL: {e}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| anyhow::anyhow!("cannot set up Redis: {e}"))
}

/// Runs `op`, and once more if it failed on a connection that had died or could not be
/// made: the connection manager reconnects when a command fails that way, so the second
/// try reaches a Redis that is back, instead of the caller counting the old connection's
/// death as an outage for another second. A timeout is not retried (it already cost its
/// wait).
pub(crate) async fn once_more_on_reconnect<T, F, Fut>(op: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match op().await {
        Err(e) if e.is_connection_dropped() || e.is_connection_refusal() => op().await,
        done => done,
    }
}

pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start-up is retried on each check.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<RedisStore> {
        Ok(RedisStore {
            conn: connect(url, timeout)?,
            script: redis::Script::new(SCRIPT),
        })
    }

    pub async fn check(&self, key: &str, quota: &Quota) -> redis::RedisResult<RateDecision> {
        let (allowed, remaining, retry_after_ms, reset_ms): (i64, i64, i64, i64) =
            once_more_on_reconnect(|| {
                let mut conn = self.conn.clone();
                async move {
                    self.script
                        .key(key)
                        .arg(quota.interval_ms())
                        .arg(quota.capacity_ms())
                        .invoke_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u32,
            retry_after_ms,
            reset_ms,
        })
    }
}
