//! Counters in this process: one lock around check-all-then-take-all.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Attempt, Line, Seeds, judge, seed_of};

/// Past this many counters, expired ones are dropped on the next reservation.
const PRUNE_AT: usize = 100_000;

#[derive(Default)]
pub struct LocalCounters {
    /// key → (value, expires at, ms)
    counters: Mutex<HashMap<String, (i64, i64)>>,
}

impl LocalCounters {
    pub fn reserve(&self, lines: &[Line], seeds: Option<&Seeds>) -> Attempt {
        let now = crate::clock::now_ms();
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let current: Vec<Option<i64>> = lines
            .iter()
            .map(
                |line| match map.get(&line.key).filter(|(_, exp)| *exp > now) {
                    Some((v, _)) => Some(*v),
                    None => seed_of(line, seeds),
                },
            )
            .collect();
        let attempt = judge(lines, &current);
        if attempt != Attempt::Reserved {
            return attempt;
        }
        if map.len() > PRUNE_AT {
            map.retain(|_, (_, exp)| *exp > now);
        }
        for (line, v) in lines.iter().zip(current) {
            let v = v.unwrap_or_default();
            map.insert(line.key.clone(), (v + line.amount, now + line.ttl_ms));
        }
        Attempt::Reserved
    }

    pub fn forget(&self, lines: &[Line]) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return;
        }
        for line in lines {
            map.remove(&line.key);
        }
    }

    pub fn settle(&self, deltas: &[(String, i64)]) {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for (key, delta) in deltas {
            if let Some((v, _)) = map.get_mut(key) {
                *v += delta;
            }
        }
    }

    pub fn peek(&self, keys: &[String]) -> Vec<Option<i64>> {
        let now = crate::clock::now_ms();
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|k| map.get(k).filter(|(_, exp)| *exp > now).map(|(v, _)| *v))
            .collect()
    }
}
