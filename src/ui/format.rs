//! How the pages show values: times (`when` filter), sums of money, and a device named
//! from its user agent ("Firefox on Linux").

/// `{{ t | when }}`: a Unix time as `YYYY-MM-DD HH:MM UTC` (empty for none).
pub fn when(value: Option<i64>) -> String {
    let Some(t) = value else {
        return String::new();
    };
    let secs = t.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        crate::clock::day_string(t),
        secs / 3600,
        secs % 3600 / 60
    )
}

/// Dollars with cents, or with more places for sums under a cent (AI calls are cheap).
pub fn usd(value: f64) -> String {
    if value != 0.0 && value.abs() < 0.01 {
        format!("${value:.4}")
    } else {
        format!("${value:.2}")
    }
}

/// A person's name for the device a user agent describes: browser and system, or the
/// start of the user agent for anything else (a script, a CLI).
pub fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|u| !u.trim().is_empty()) else {
        return super::current_locale().text("unknown_device").into();
    };
    // Order matters: Edge and Chrome say "Safari", Edge says "Chrome".
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} · {s}"),
        (Some(b), None) => b.to_string(),
        _ => ua.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sums_and_devices_read_as_people_expect() {
        assert_eq!(
            when(Some(1_796_083_200 + 3_600 + 120)),
            "2026-12-01 01:02 UTC"
        );
        assert_eq!(when(None), "");
        assert_eq!(usd(1.5), "$1.50");
        assert_eq!(usd(0.000_12), "$0.0001");
        assert_eq!(
            device(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
            )),
            "Chrome · Linux"
        );
        assert_eq!(
            device(Some(
                "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120 Safari/537.36 Edg/120"
            )),
            "Edge · Windows"
        );
        assert_eq!(device(Some("curl/8.5.0")), "curl/8.5.0");
        assert_eq!(device(None), "Unknown device");
    }
}
