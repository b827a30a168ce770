//! `[gateway]` and `[cors]` as written, and their resolution.

use serde::Deserialize;

use super::check_origin_syntax;
use super::cors::CorsConfig;
use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid};
use crate::outbound::Timeouts;

/// Upstream timeouts and the sign-in redirect (`[gateway]`).
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub proxy: Timeouts,
    /// Where refused browser navigations are sent; absolute.
    pub login_url: Option<String>,
    /// Origins a sign-in return URL may point to, besides the public URL's.
    pub return_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    pub connect_timeout: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub idle_timeout: Option<DurationValue>,
    pub login_url: Option<String>,
    pub return_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    pub allowed_origins: Option<Vec<String>>,
    pub max_age: Option<DurationValue>,
}

/// `[gateway]` and `[cors]`, resolved: the proxy's timeouts, an absolute sign-in URL,
/// explicit return and CORS origins.
pub fn resolve(
    g: GatewaySection,
    c: CorsSection,
    public_url: &str,
    duration: SectionDuration<'_>,
) -> Result<(GatewayConfig, CorsConfig), ConfigError> {
    let cors = CorsConfig {
        allowed_origins: c.allowed_origins.unwrap_or_default(),
        max_age_secs: duration("cors.max_age", c.max_age, "10m", true)?.as_secs(),
    };
    for origin in &cors.allowed_origins {
        check_origin_syntax(origin)
            .map_err(|e| ConfigError(format!("cors.allowed_origins: {e}")))?;
    }
    let proxy_default = Timeouts::default();
    let timeout = |key: &str, v: Option<DurationValue>, default: std::time::Duration| {
        duration(key, v, &format!("{}", default.as_secs()), false)
    };
    let gateway = GatewayConfig {
        proxy: Timeouts {
            connect_timeout: timeout(
                "gateway.connect_timeout",
                g.connect_timeout,
                proxy_default.connect_timeout,
            )?,
            response_timeout: timeout(
                "gateway.timeout",
                g.timeout,
                proxy_default.response_timeout,
            )?,
            idle_timeout: timeout(
                "gateway.idle_timeout",
                g.idle_timeout,
                proxy_default.idle_timeout,
            )?,
        },
        login_url: g
            .login_url
            .map(|u| absolute_login_url(&u, public_url))
            .transpose()?,
        return_origins: g.return_origins.unwrap_or_default(),
    };
    for origin in &gateway.return_origins {
        if origin == "*" {
            return Err(invalid(
                "gateway.return_origins",
                "explicit origins (no wildcard)",
                origin,
            ));
        }
        check_origin_syntax(origin)
            .map_err(|e| ConfigError(format!("gateway.return_origins: {e}")))?;
    }
    Ok((gateway, cors))
}

/// `login_url` as an absolute URL: a path is taken relative to the public URL.
fn absolute_login_url(raw: &str, public_url: &str) -> Result<String, ConfigError> {
    let expected = "an absolute http(s) URL or a path starting with '/'";
    let joined = if raw.starts_with('/') && !raw.starts_with("//") {
        format!("{public_url}{raw}")
    } else {
        raw.to_string()
    };
    match url::Url::parse(&joined) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(joined),
        _ => Err(invalid("gateway.login_url", expected, raw)),
    }
}
