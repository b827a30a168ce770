//! Audit entries a caller can cause at will (an AI refusal costs the caller nothing) are
//! written at most twice per key and minute, so a flood cannot grow the hash chain faster
//! than the set of keys: the first as it happens, the rest counted and written as one
//! summary (`suppressed` = how many, `minute` = which) once the minute is over, by the
//! next entry of the same key or by the periodic [`Throttle::due`] sweep.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Entry;

/// Keys tracked at most; past this, the sweep runs early.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    slots: Mutex<HashMap<String, Slot>>,
}

struct Slot {
    minute: i64,
    suppressed: u64,
    /// The last suppressed entry, the template of the summary.
    last: Option<Entry>,
}

impl Slot {
    fn summary(self) -> Option<Entry> {
        let last = self.last?;
        Some(
            last.with("suppressed", self.suppressed)
                .with("minute", self.minute * 60),
        )
    }
}

impl Throttle {
    /// The entries to write now for `entry` under `key` (a user and a reason, say): the
    /// entry itself when it is the key's first this minute, and the summary of an earlier
    /// minute that had more; nothing when it is counted instead.
    pub fn admit(&self, key: String, entry: Entry) -> Vec<Entry> {
        let minute = entry.at_ms.div_euclid(60_000);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        if slots.len() >= MAX_KEYS {
            out.extend(sweep(&mut slots, minute));
        }
        match slots.get_mut(&key) {
            Some(slot) if slot.minute == minute => {
                slot.suppressed += 1;
                slot.last = Some(entry);
            }
            _ => {
                let earlier = slots.insert(
                    key,
                    Slot {
                        minute,
                        suppressed: 0,
                        last: None,
                    },
                );
                out.extend(earlier.and_then(Slot::summary));
                out.push(entry);
            }
        }
        out
    }

    /// Summaries of the minutes before `now_ms`'s (all of them with `everything`, at
    /// shutdown); keys with nothing left to say are forgotten.
    pub fn due(&self, now_ms: i64, everything: bool) -> Vec<Entry> {
        let minute = if everything {
            i64::MAX
        } else {
            now_ms.div_euclid(60_000)
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        sweep(&mut slots, minute)
    }
}

fn sweep(slots: &mut HashMap<String, Slot>, minute: i64) -> Vec<Entry> {
    let ended: Vec<String> = slots
        .iter()
        .filter(|(_, s)| s.minute < minute)
        .map(|(k, _)| k.clone())
        .collect();
    ended
        .into_iter()
        .filter_map(|k| slots.remove(&k).and_then(Slot::summary))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Context, Outcome};

    fn refusal(at_ms: i64) -> Entry {
        let mut e = Context::system().entry("ai.refused", Outcome::Denied, Some("u1"));
        e.at_ms = at_ms;
        e.with("reason", "quota_exceeded")
    }

    #[test]
    fn a_flood_is_two_entries_per_key_and_minute() {
        let t = Throttle::default();
        let base = 1_000 * 60_000;
        assert_eq!(t.admit("u1 quota".into(), refusal(base)).len(), 1);
        for i in 1..1000 {
            assert!(t.admit("u1 quota".into(), refusal(base + i)).is_empty());
        }
        // Another key is not affected.
        assert_eq!(t.admit("u2 quota".into(), refusal(base + 5)).len(), 1);
        assert!(
            t.due(base + 59_000, false).is_empty(),
            "the minute is not over"
        );
        let due = t.due(base + 60_000, false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].detail["suppressed"], 999);
        assert_eq!(due[0].detail["reason"], "quota_exceeded");
        assert_eq!(due[0].detail["minute"], base / 1000);
        assert!(t.due(base + 120_000, false).is_empty());
        // Next minute: first written again; an earlier minute's count comes with it when
        // the sweep has not run.
        let next = base + 60_000;
        t.admit("u3".into(), refusal(next));
        t.admit("u3".into(), refusal(next + 1));
        let written = t.admit("u3".into(), refusal(next + 60_000));
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].detail["suppressed"], 1);
        assert_eq!(t.due(0, true).len(), 0);
    }
}
