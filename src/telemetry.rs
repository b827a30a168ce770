//! Logs (JSON lines on stderr, filtered by `TOLLGATE_LOG`) and the Prometheus recorder.
//!
//! Nothing secret is ever passed to a log call: handlers log ids and outcomes, never
//! bodies, headers, tokens or hashes.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; an invalid filter is a configuration error.
pub fn init_logging(filter: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("invalid log (TOLLGATE_LOG): {e}"))?;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
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
