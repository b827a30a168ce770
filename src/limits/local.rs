//! In-process GCRA state: a TAT per key in sharded maps.
//!
//! Memory is bounded: a shard that reaches its capacity first drops the keys whose TAT
//! has passed (they carry no information: a new key starts the same way), and if every
//! key is still live, starts over empty — a flood of distinct keys (spoofed-looking IPv6
//! addresses, made-up accounts) can then reset limits, but never exhaust memory. That
//! event is logged.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::gcra::{self, Quota, RateDecision};

const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = 65_536;

pub struct LocalStore {
    shards: Vec<Mutex<HashMap<Box<str>, i64>>>,
    hasher: RandomState,
}

impl Default for LocalStore {
    fn default() -> Self {
        LocalStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl LocalStore {
    pub fn check(&self, key: &str, now_ms: i64, quota: &Quota) -> RateDecision {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let (decision, next) = gcra::check(map.get(key).copied(), now_ms, quota);
        if let Some(tat) = next {
            if map.len() >= SHARD_CAPACITY && !map.contains_key(key) {
                map.retain(|_, t| *t > now_ms);
                if map.len() >= SHARD_CAPACITY {
                    tracing::warn!("rate-limit table full of live keys; starting this shard over");
                    map.clear();
                }
            }
            map.insert(key.into(), tat);
        }
        decision
    }
}
