//! Logs (JSON lines, or human-readable lines with `TOLLGATE_LOG_FORMAT=pretty`, on
//! stderr, filtered by `TOLLGATE_LOG`; one access line per request, target
//! `tollgate::access`) and the Prometheus recorder.
//!
//! Nothing secret is ever passed to a log call: handlers log ids and outcomes, never
//! bodies, headers, tokens or hashes.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default: what log shippers read).
    Json,
    /// One human-readable line per event, for a terminal.
    Pretty,
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `TOLLGATE_LOG` filter more strictly than `tracing` does: each
/// comma-separated directive is a level, or `target=level` with a module path as target.
/// `tracing` reads a bare word as a target to log at every level, so a mistyped level
/// (`infoo`) would silently drop every line.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let expected = |d: &str| {
        format!(
            "comma-separated directives, each a level ({}) or target=level; '{d}' is neither",
            LEVELS.join(", ")
        )
    };
    let directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(expected(filter));
    }
    // Targets are module paths: span filters (`target[span{field}]=level`) without a
    // default level would silence everything else.
    let module_path = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-')
    };
    for directive in directives {
        let level = match directive.split_once('=') {
            Some((target, level)) if module_path(target.trim()) => level,
            Some(_) => return Err(expected(directive)),
            None => directive,
        };
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(expected(directive));
        }
    }
    EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    Ok(())
}

/// Installs the log subscriber. The configuration has already put `filter` through
/// [`check_filter`]; tracing's own parse can still refuse it.
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("invalid log (TOLLGATE_LOG): {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .try_init()
        }
    };
    Ok(())
}

/// Names the account a request acts for on the request's span, so the access log line
/// (and every other line of that request) carries it. A no-op outside a request.
pub fn record_user(user_id: &str) {
    tracing::Span::current().record("user", user_id);
}

/// How often the recorder's upkeep runs: histogram samples (24 bytes each, one or two a
/// request) accumulate until it does, or until someone scrapes. Once a second keeps the
/// backlog to a second's worth of traffic.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A request method as a metric label: the standard ones, `other` for the rest (any
/// token is a valid method, and each would otherwise mint a series).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// A status code as a metric label: registered codes as themselves, `other` for the rest
/// (an upstream may answer with any three digits).
pub fn status_label(status: http::StatusCode) -> std::borrow::Cow<'static, str> {
    if status.canonical_reason().is_some() {
        status.as_u16().to_string().into()
    } else {
        "other".into()
    }
}

/// The process-wide metrics recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_with_a_mistyped_level_are_refused() {
        for good in [
            "info",
            "warn,tollgate=debug",
            "info,tollgate::access=off",
            "INFO",
        ] {
            assert!(check_filter(good).is_ok(), "{good}");
        }
        for bad in [
            "infoo",
            "info,tolgate",
            "tollgate=verbose",
            "=info",
            ",",
            "",
            "tollgate[x{y}]=info",
            "[{a=1}]=trace",
            "a=b=c",
        ] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_come_from_known_sets() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"PURGE").unwrap()),
            "other"
        );
        assert_eq!(
            method_label(&http::Method::from_bytes(b"X1234").unwrap()),
            "other"
        );
        assert_eq!(status_label(http::StatusCode::NOT_FOUND), "404");
        assert_eq!(
            status_label(http::StatusCode::from_u16(599).unwrap()),
            "other"
        );
    }
}
