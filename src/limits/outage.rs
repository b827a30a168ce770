//! The state of a shared counter store (Redis, the database) as one caller sees it: after
//! a failure it is left alone for a second, so an outage costs each check nothing
//! instead of a timeout, and the failure is logged at most once a minute per store and
//! caller, not once a request.

use std::sync::atomic::{AtomicI64, Ordering};

/// How long a store is left alone after a failed check.
const BACKOFF_MS: i64 = 1_000;
/// At most one warning per this many ms.
const WARN_EVERY_MS: i64 = 60_000;

#[derive(Default)]
pub struct Outage {
    down_until: AtomicI64,
    last_warning: AtomicI64,
}

impl Outage {
    /// Whether the store failed within the last second (and should not be asked now).
    pub fn skip(&self) -> bool {
        crate::clock::now_ms() < self.down_until.load(Ordering::Relaxed)
    }

    /// Records a failure: backs off, and warns unless a warning went out this minute.
    /// `what` names the store and its use, e.g. "Redis unavailable for rate limits".
    pub fn failed(&self, what: &'static str, error: &dyn std::fmt::Display, fallback: &str) {
        let now = crate::clock::now_ms();
        self.down_until.store(now + BACKOFF_MS, Ordering::Relaxed);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now - last > WARN_EVERY_MS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %error, fallback, "{what}");
        }
    }
}
