//! Counters in Redis, shared by every node: a reservation is one Lua script that checks
//! every line and takes all of them or none.

use super::{Attempt, Line, Seeds, seed_of};
use crate::limits::redis::once_more_on_reconnect;

/// ARGV per key: limit, amount, ttl (ms), seed (-2: needed but not known).
const RESERVE: &str = r#"
local n = #KEYS
local current = {}
local fresh = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v then
    current[i] = tonumber(v)
  else
    local seed = tonumber(ARGV[(i - 1) * 4 + 4])
    if seed < 0 then return {-1, i} end
    current[i] = seed
    fresh[i] = true
  end
end
for i = 1, n do
  local b = (i - 1) * 4
  if current[i] + tonumber(ARGV[b + 2]) > tonumber(ARGV[b + 1]) then return {0, i} end
end
-- Integer arithmetic from here (INCRBY), whatever the size of the figures.
for i = 1, n do
  local b = (i - 1) * 4
  if fresh[i] then redis.call('SET', KEYS[i], ARGV[b + 4]) end
  redis.call('INCRBY', KEYS[i], ARGV[b + 2])
  redis.call('PEXPIRE', KEYS[i], ARGV[b + 3])
end
return {1, 0}
"#;

/// Adds each delta to its counter if the counter still exists (a vanished day or month
/// counter is rebuilt from the ledger, which has the settled figure).
const SETTLE: &str = r#"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 1
"#;

pub struct RedisCounters {
    conn: redis::aio::ConnectionManager,
    reserve: redis::Script,
    settle: redis::Script,
}

impl RedisCounters {
    pub fn new(url: &str) -> anyhow::Result<RedisCounters> {
        Ok(RedisCounters {
            conn: crate::limits::redis::connect(url, std::time::Duration::from_millis(500))?,
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
        })
    }

    pub async fn reserve(
        &self,
        lines: &[Line],
        seeds: Option<&Seeds>,
    ) -> redis::RedisResult<Attempt> {
        let mut inv = self.reserve.prepare_invoke();
        for line in lines {
            inv.key(&line.key)
                .arg(line.limit)
                .arg(line.amount)
                .arg(line.ttl_ms)
                .arg(seed_of(line, seeds).unwrap_or(-2));
        }
        let (status, index): (i64, usize) = once_more_on_reconnect(|| {
            let (inv, mut conn) = (&inv, self.conn.clone());
            async move { inv.invoke_async(&mut conn).await }
        })
        .await?;
        Ok(match status {
            1 => Attempt::Reserved,
            0 => Attempt::Refused(index.saturating_sub(1)),
            _ => Attempt::NeedSeeds,
        })
    }

    pub async fn settle(&self, deltas: &[(String, i64)]) -> redis::RedisResult<()> {
        let mut inv = self.settle.prepare_invoke();
        for (key, delta) in deltas {
            inv.key(key).arg(*delta);
        }
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    pub async fn peek(&self, keys: &[String]) -> redis::RedisResult<Vec<Option<i64>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        redis::cmd("MGET").arg(keys).query_async(&mut conn).await
    }
}
