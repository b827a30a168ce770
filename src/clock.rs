//! Wall-clock time as Unix seconds: the single unit for every timestamp Tollgate stores,
//! signs or compares, so SQLite and PostgreSQL rows and JWT claims agree without conversion.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
