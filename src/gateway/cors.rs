//! CORS at the gateway: which origins may call a route from another site, with or without
//! credentials, and the preflight answer.
//!
//! Origins come from `[cors] allowed_origins` (every route) plus a route's own
//! `cors_origins`. A listed origin is echoed with `Access-Control-Allow-Credentials: true`;
//! `"*"` lets any origin read responses but never with credentials (browsers then send no
//! cookies, and a bearer token must be added by script). Preflights are answered here and
//! never forwarded: they carry no credentials, so a `required` route would refuse them.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::routes::Route;

#[derive(Debug, Clone)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            max_age_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsVerdict {
    /// Listed by name: may read responses to credentialed requests.
    Credentialed,
    /// Allowed by `"*"`: may read responses, never with credentials.
    AnyOrigin,
    Denied,
}

impl CorsConfig {
    pub fn verdict(&self, route: Option<&Route>, origin: &str) -> CorsVerdict {
        let lists = self
            .allowed_origins
            .iter()
            .chain(route.into_iter().flat_map(|r| r.cors_origins.iter()));
        let mut any = false;
        for allowed in lists {
            if allowed == origin {
                return CorsVerdict::Credentialed;
            }
            any |= allowed == "*";
        }
        if any {
            CorsVerdict::AnyOrigin
        } else {
            CorsVerdict::Denied
        }
    }

    /// Whether this gateway manages CORS for the route at all.
    pub fn configured_for(&self, route: &Route) -> bool {
        !self.allowed_origins.is_empty() || !route.cors_origins.is_empty()
    }

    /// Headers of a successful preflight for `origin`.
    pub fn preflight_headers(
        &self,
        verdict: CorsVerdict,
        origin: &HeaderValue,
        route: &Route,
        requested_method: &Method,
        requested_headers: Option<&HeaderValue>,
    ) -> HeaderMap {
        let mut h = self.response_headers(verdict, origin);
        let methods = match &route.methods {
            Some(list) => list
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            None => requested_method.as_str().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = requested_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age_secs),
        );
        h.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        h
    }

    /// `Access-Control-Allow-Origin` (and `-Credentials`) for an allowed origin.
    pub fn response_headers(&self, verdict: CorsVerdict, origin: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        match verdict {
            CorsVerdict::Credentialed => {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            CorsVerdict::AnyOrigin => {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            CorsVerdict::Denied => {}
        }
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
}

/// Status of a refused preflight.
pub const REFUSED: StatusCode = StatusCode::FORBIDDEN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::check_origin_syntax;

    #[test]
    fn origin_syntax() {
        for ok in ["*", "https://app.example.com", "http://127.0.0.1:3000"] {
            assert!(check_origin_syntax(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example.com/",
            "app.example.com",
            "https://a.com/path",
            "ftp://a.com",
            "null",
        ] {
            assert!(check_origin_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listed_origins_get_credentials_wildcard_does_not() {
        let cfg = CorsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            ..CorsConfig::default()
        };
        assert_eq!(
            cfg.verdict(None, "https://app.example.com"),
            CorsVerdict::Credentialed
        );
        assert_eq!(
            cfg.verdict(None, "https://evil.example.com"),
            CorsVerdict::Denied
        );
        assert_eq!(
            cfg.verdict(None, "https://app.example.com.evil.com"),
            CorsVerdict::Denied
        );
        let open = CorsConfig {
            allowed_origins: vec!["*".into()],
            ..CorsConfig::default()
        };
        assert_eq!(
            open.verdict(None, "https://any.example"),
            CorsVerdict::AnyOrigin
        );
        let origin = HeaderValue::from_static("https://any.example");
        let h = open.response_headers(CorsVerdict::AnyOrigin, &origin);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }
}
