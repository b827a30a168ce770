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

/// Milliseconds since the Unix epoch: rate-limit arithmetic, audit entries, file names.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The UTC calendar date `(year, month, day)` of a Unix time (Howard Hinnant's
/// `civil_from_days`), for day and month windows without a date library.
pub fn civil_date(unix_secs: i64) -> (i64, u32, u32) {
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The Unix time of midnight UTC on a calendar date (`days_from_civil`).
pub fn unix_of_date(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400
}

/// `YYYY-MM-DD` of a Unix time, UTC.
pub fn day_string(unix_secs: i64) -> String {
    let (y, m, d) = civil_date(unix_secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Midnight UTC of a `YYYY-MM-DD` day, for a real date only (`2026-02-30` is none).
pub fn parse_day(day: &str) -> Option<i64> {
    let b = day.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return None;
    }
    let y: i64 = day[..4].parse().ok()?;
    let m: u32 = day[5..7].parse().ok()?;
    let d: u32 = day[8..10].parse().ok()?;
    let t = unix_of_date(y, m, d);
    (civil_date(t) == (y, m, d)).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_strictly() {
        assert_eq!(parse_day("1970-01-02"), Some(86_400));
        assert_eq!(parse_day("2024-02-29"), Some(unix_of_date(2024, 2, 29)));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-012",
            "+026-01-01",
            "2026-01-1x",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn calendar_dates_round_trip() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(1_796_083_200), (2026, 12, 1));
        assert_eq!(civil_date(1_796_083_199), (2026, 11, 30));
        assert_eq!(day_string(951_782_400), "2000-02-29");
        for t in [0, 951_782_400, 1_796_083_200, 4_102_444_800] {
            let (y, m, d) = civil_date(t);
            assert_eq!(unix_of_date(y, m, d), t);
        }
    }
}
