//! GCRA (the generic cell rate algorithm): one timestamp per key, no timers.
//!
//! A quota of `limit` requests per `window` with a burst of `burst` becomes an emission
//! interval `T = window / limit` and a capacity `T × burst`. The key's state is its
//! theoretical arrival time (TAT). A request is allowed when pushing the TAT one interval
//! further keeps it within the capacity of now; the TAT only moves when a request is
//! allowed. The Redis script (`redis.rs`) is this same function in Lua, so local and
//! shared limits behave identically.

/// A configured allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window_ms: u64,
    pub burst: u32,
}

impl Quota {
    /// Milliseconds between requests at the sustained rate (at least 1).
    pub fn interval_ms(&self) -> i64 {
        (self.window_ms / u64::from(self.limit.max(1))).max(1) as i64
    }

    /// How far ahead of now the TAT may run.
    pub fn capacity_ms(&self) -> i64 {
        self.interval_ms() * i64::from(self.burst.max(1))
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// When refused: how long until one request would be allowed.
    pub retry_after_ms: i64,
    /// How long until the full burst is available again.
    pub reset_ms: i64,
}

/// Decides one request at `now_ms` for a key whose TAT is `tat` (`None`: never seen);
/// returns the decision and the TAT to store (unchanged when refused).
pub fn check(tat: Option<i64>, now_ms: i64, q: &Quota) -> (RateDecision, Option<i64>) {
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    let next = tat + q.interval_ms();
    if next - now_ms > q.capacity_ms() {
        return (refused(tat, now_ms, q), None);
    }
    (allowed(next, now_ms, q), Some(next))
}

/// The decision for a step taken atomically elsewhere (the database): `taken` is the TAT
/// the step stored (`None`: it did not fit), `before` the TAT it found.
pub fn decided(now_ms: i64, taken: Option<i64>, before: Option<i64>, q: &Quota) -> RateDecision {
    match taken {
        Some(next) => allowed(next, now_ms, q),
        None => refused(before.unwrap_or(now_ms).max(now_ms), now_ms, q),
    }
}

fn allowed(next: i64, now_ms: i64, q: &Quota) -> RateDecision {
    let ahead = next - now_ms;
    RateDecision {
        allowed: true,
        remaining: ((q.capacity_ms() - ahead).max(0) / q.interval_ms()) as u32,
        retry_after_ms: 0,
        reset_ms: ahead,
    }
}

fn refused(tat: i64, now_ms: i64, q: &Quota) -> RateDecision {
    RateDecision {
        allowed: false,
        remaining: 0,
        // At least a millisecond: a refusal racing a step that freed room can see a
        // TAT that would have fitted.
        retry_after_ms: (tat + q.interval_ms() - now_ms - q.capacity_ms()).max(1),
        reset_ms: tat - now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        limit: 10,
        window_ms: 60_000,
        burst: 3,
    };

    fn run(n: usize, now: i64, mut tat: Option<i64>) -> (Vec<bool>, Option<i64>) {
        let mut out = Vec::new();
        for _ in 0..n {
            let (d, new) = check(tat, now, &Q);
            out.push(d.allowed);
            if new.is_some() {
                tat = new;
            }
        }
        (out, tat)
    }

    #[test]
    fn a_burst_is_allowed_then_refused() {
        let (allowed, tat) = run(5, 1_000, None);
        assert_eq!(allowed, [true, true, true, false, false]);
        // One interval (6 s) later exactly one more fits.
        let (allowed, _) = run(2, 1_000 + 6_000, tat);
        assert_eq!(allowed, [true, false]);
    }

    #[test]
    fn refusals_say_when_to_retry_and_remaining_counts_down() {
        let (d1, t) = check(None, 0, &Q);
        assert_eq!((d1.remaining, d1.reset_ms), (2, 6_000));
        let (d2, t) = check(t, 0, &Q);
        assert_eq!(d2.remaining, 1);
        let (d3, t) = check(t, 0, &Q);
        assert_eq!(d3.remaining, 0);
        let (d4, unchanged) = check(t, 0, &Q);
        assert!(!d4.allowed && unchanged.is_none());
        assert_eq!(d4.retry_after_ms, 6_000);
        assert_eq!(d4.reset_ms, 18_000);
    }

    #[test]
    fn a_step_taken_elsewhere_reads_as_the_same_decision() {
        let (d, next) = check(Some(4_000), 1_000, &Q);
        assert_eq!(decided(1_000, next, Some(4_000), &Q), d);
        let (d, next) = check(Some(14_000), 1_000, &Q);
        assert!(next.is_none());
        assert_eq!(decided(1_000, None, Some(14_000), &Q), d);
    }

    #[test]
    fn an_idle_key_recovers_its_whole_burst() {
        let (_, tat) = run(3, 0, None);
        let (allowed, _) = run(4, 60_000, tat);
        assert_eq!(allowed, [true, true, true, false]);
    }
}
