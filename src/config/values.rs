//! The pieces every configuration section parses with: the operator-facing error, durations
//! (`90`, `15m`, `1h`), secrets named by an environment variable or a file, and URL
//! redaction. A leaf: each domain resolves its own section with these, and `config`
//! composes the sections.

use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub fn invalid(key: &str, expected: &str, got: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid {key}: expected {expected}, got '{got}'"))
}

/// A duration as TOML allows it: a bare number of seconds or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(i64),
    Text(String),
}

impl std::fmt::Display for DurationValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationValue::Seconds(n) => write!(f, "{n}"),
            DurationValue::Text(s) => f.write_str(s),
        }
    }
}

/// `90`, `90s`, `15m`, `1h`, `30d` → a duration; `None` for anything else.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
        .filter(|secs| *secs <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
}

/// A secret named by `<key>_env` (an environment variable) or `<key>_file` (a file whose
/// content, less a trailing newline, is the secret); at most one of the two.
pub fn secret_from(
    context: &str,
    key: &str,
    env_var: Option<&str>,
    file: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match (env_var, file) {
        (Some(_), Some(_)) => Err(format!("{context}: set {key}_env or {key}_file, not both")),
        (Some(var), None) => env(var)
            .filter(|v| !v.is_empty())
            .map(Some)
            .ok_or_else(|| format!("{context}: environment variable {var} is not set")),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|v| Some(v.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| format!("{context}: {key}_file {path}: {e}")),
        (None, None) => Ok(None),
    }
}

pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A URL with any password replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) => "<unparsable url>".to_string(),
    }
}

/// How a section reads a duration: key (for the error), value, default, whether zero is
/// allowed.
pub type SectionDuration<'a> =
    &'a dyn Fn(&str, Option<DurationValue>, &str, bool) -> Result<Duration, ConfigError>;
