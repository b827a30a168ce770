//! Configuration: one TOML file (`--config` / `TOLLGATE_CONFIG`) with `TOLLGATE_*`
//! environment variables on top, resolved once at start-up into a typed [`Config`].
//!
//! Every value is checked here, so a bad one stops start-up with a message that names the
//! key and what was expected, instead of surfacing later as a confusing runtime error.
//! `docs/configuration.md` lists every key and its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod values;

pub use values::{ConfigError, parse_duration, redact_url};
use values::{DurationValue, invalid, one_line, secret_from};

use crate::authz::RoleMap;
use crate::gateway::cors::CorsConfig;
use crate::gateway::routes::{RouteSpec, RouteTable};
use crate::identity::password::PasswordConfig;
use crate::limits::LimitsConfig;
use crate::mail::MailConfig;
use crate::oidc::OidcConfig;
use crate::oidc::federation::{ProviderConfig, ProviderSpec};
use crate::session::SessionConfig;
pub use crate::telemetry::LogFormat;
use crate::ui::UiConfig;

/// What a configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `serve`: every secret the configuration names must be there.
    Serve,
    /// `migrate` and the administrative commands: the secrets of the services they never call (AI
    /// providers, identity providers, metrics) may be missing. Mail's may not: commands
    /// send invitations.
    Administer,
}

/// What stands for a secret an administrative command does not use.
const UNUSED_SECRET: &str = "(unused by this command)";

/// The resolved configuration every subcommand runs with. `Debug` redacts the
/// credentials that database and Redis URLs may carry.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Issuer and base of every absolute URL; no trailing slash.
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// The key family that signs access tokens and identity assertions.
    pub access_token_alg: crate::keys::Family,
    pub log: String,
    pub log_format: LogFormat,
    pub limits_enabled: bool,
    pub limits: LimitsConfig,
    pub mail: MailConfig,
    pub audit: crate::audit::AuditConfig,
    pub roles: RoleMap,
    pub password: PasswordConfig,
    pub session: SessionConfig,
    pub http: HttpConfig,
    pub routes: RouteTable,
    pub cors: CorsConfig,
    pub gateway: crate::gateway::config::GatewayConfig,
    pub oidc: OidcConfig,
    pub oauth: crate::oidc::agents::OAuthConfig,
    pub identity_providers: Vec<ProviderConfig>,
    pub ai: crate::ai::config::AiConfig,
    pub metrics: MetricsConfig,
    pub ui: UiConfig,
    pub accounts: AccountsConfig,
    pub admin: AdminConfig,
}

/// What administrators must have done to act (`[admin]`).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Admins without a second factor are refused everywhere in the admin API (403
    /// `mfa_enrolment_required`) until they set one up.
    pub require_mfa: bool,
    /// How recent an admin's second factor must be for a write (when the admin has one).
    pub mfa_max_age: Duration,
}

/// Who may create accounts (`[accounts]`).
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Anyone may sign up (`POST /auth/register`, `/ui/signup`); otherwise only
    /// administrators create accounts.
    pub open_registration: bool,
}

/// Who may read `/metrics` (`[metrics]`).
#[derive(Clone, Default)]
pub struct MetricsConfig {
    /// Serve `/metrics` only on this address (and not on the main listener).
    pub listen: Option<SocketAddr>,
    /// A bearer token scrapers must send.
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    /// Request line plus headers, at most; more is 431.
    pub max_header_bytes: usize,
    /// Origins besides the public URL's that may call login/register from a browser.
    pub trusted_origins: Vec<String>,
    /// How long a request's header section may take to arrive (also bounds an idle
    /// HTTP/1.1 connection; see `http::server`).
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// The whole request body of Tollgate's own endpoints and AI calls must arrive within
    /// this (the gateway's streamed bodies are timed by `[gateway] idle_timeout`).
    pub body_timeout: Duration,
    /// Requests in progress from one address at most (HTTP/2 multiplexes many per
    /// connection); trusted proxies are exempt.
    pub max_requests_per_ip: usize,
    /// Open connections, at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// Open connections from one address (IPv6: one /64), at most; trusted proxies are
    /// exempt.
    pub max_connections_per_ip: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("log", &self.log)
            .field("limits_enabled", &self.limits_enabled)
            .field("limits", &self.limits)
            .field("mail", &self.mail)
            .field("audit", &self.audit)
            .field("roles", &self.roles)
            .field("password", &self.password)
            .field("session", &self.session)
            .field("http", &self.http)
            .field("routes", &self.routes)
            .field("cors", &self.cors)
            .field("gateway", &self.gateway)
            .field("oidc", &self.oidc)
            .field("oauth", &self.oauth)
            .field("identity_providers", &self.identity_providers)
            .field("ai", &self.ai)
            .field("metrics", &self.metrics)
            .field("ui", &self.ui)
            .field("accounts", &self.accounts)
            .field("admin", &self.admin)
            .finish()
    }
}

impl Config {
    /// The public URL's scheme is https: cookies get `Secure` and the `__Host-` prefix.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// `scheme://host[:port]` of the public URL, as browsers send it in `Origin`.
    pub fn public_origin(&self) -> String {
        url::Url::parse(&self.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// `host[:port]` of the public URL, as `Host` names it.
    pub fn public_host(&self) -> String {
        url::Url::parse(&self.public_url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .unwrap_or_default()
    }

    /// Loads the file (if any) and applies the environment on top; `data_dir` (the
    /// `--data-dir` flag) wins over both.
    pub fn load(
        path: Option<&Path>,
        data_dir: Option<&Path>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        let env = |k: &str| {
            if k == "TOLLGATE_DATA_DIR"
                && let Some(d) = data_dir
            {
                return Some(d.display().to_string());
            }
            std::env::var(k).ok().filter(|v| !v.is_empty())
        };
        let file = match path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        Self::resolve_for(file, env, purpose)
    }

    /// Resolution for serving, with the environment injected.
    #[cfg(test)]
    pub fn resolve(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::resolve_for(file, env, Purpose::Serve)
    }

    /// Resolution proper.
    pub fn resolve_for(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        // Administrative commands never call an AI provider, an identity provider or the
        // metrics listener: their secrets may be absent from the environment.
        let service_env = |k: &str| {
            env(k).or_else(|| (purpose == Purpose::Administer).then(|| UNUSED_SECRET.to_string()))
        };
        let pick = |var: &str, from_file: Option<String>| env(var).or(from_file);

        let listen_raw = pick("TOLLGATE_LISTEN", file.listen).unwrap_or("127.0.0.1:8080".into());
        let listen = listen_address(&listen_raw)?;

        // By default the public URL is what was typed: `localhost:8080` gives pages on
        // `http://localhost:8080`, whose Origin then matches.
        let public_url = match pick("TOLLGATE_PUBLIC_URL", file.public_url) {
            Some(u) => parse_public_url(&u)?,
            None if listen_raw.parse::<SocketAddr>().is_err() => {
                parse_public_url(&format!("http://{listen_raw}"))?
            }
            None => format!("http://{listen}"),
        };

        let data_dir = PathBuf::from(
            pick("TOLLGATE_DATA_DIR", file.data_dir).unwrap_or("./tollgate-data".into()),
        );
        let database_url = pick("TOLLGATE_DATABASE_URL", file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/tollgate.db", data_dir.display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url (TOLLGATE_DATABASE_URL)",
                "sqlite://… or postgres://…",
                &database_url,
            ));
        }
        let redis_url = pick("TOLLGATE_REDIS_URL", file.redis_url);
        if let Some(r) = &redis_url
            && !(r.starts_with("redis://") || r.starts_with("rediss://"))
        {
            return Err(invalid(
                "redis_url (TOLLGATE_REDIS_URL)",
                "redis://… or rediss://…",
                r,
            ));
        }

        let duration = |key: &str, var: &str, v: Option<DurationValue>, default: &str| {
            let raw = env(var)
                .or_else(|| v.map(|v| v.to_string()))
                .unwrap_or(default.into());
            parse_duration(&raw)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid(
                        &format!("{key} ({var})"),
                        "a positive duration like 90, 90s, 15m, 1h or 30d",
                        &raw,
                    )
                })
        };
        let access_ttl = duration("access_ttl", "TOLLGATE_ACCESS_TTL", file.access_ttl, "15m")?;
        let refresh_ttl = duration(
            "refresh_ttl",
            "TOLLGATE_REFRESH_TTL",
            file.refresh_ttl,
            "30d",
        )?;
        let log = pick("TOLLGATE_LOG", file.log).unwrap_or("info".into());
        crate::telemetry::check_filter(&log)
            .map_err(|why| invalid("log (TOLLGATE_LOG)", &why, &log))?;
        let log_format = match pick("TOLLGATE_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(invalid(
                    "log_format (TOLLGATE_LOG_FORMAT)",
                    "json or pretty",
                    other,
                ));
            }
        };
        let alg = pick("TOLLGATE_ACCESS_TOKEN_ALG", file.tokens.access_token_alg)
            .unwrap_or("EdDSA".into());
        let access_token_alg = crate::keys::Family::of_alg_name(&alg).ok_or_else(|| {
            invalid(
                "tokens.access_token_alg (TOLLGATE_ACCESS_TOKEN_ALG)",
                "EdDSA, ES256 or RS256",
                &alg,
            )
        })?;

        let section_duration =
            |key: &str, v: Option<DurationValue>, default: &str, allow_zero: bool| {
                let raw = v.map(|v| v.to_string()).unwrap_or(default.into());
                parse_duration(&raw)
                    .filter(|d| allow_zero || !d.is_zero())
                    .ok_or_else(|| invalid(key, "a duration like 10s, 15m or 7d", &raw))
            };
        let session = crate::session::resolve_config(file.session, &section_duration)?;

        let password = crate::identity::password::resolve(file.password, &section_duration)?;

        let h = file.http;
        let http = HttpConfig {
            max_body_bytes: h.max_body_bytes.unwrap_or(64 * 1024),
            max_header_bytes: h.max_header_bytes.unwrap_or(32 * 1024),
            trusted_origins: h.trusted_origins.unwrap_or_default(),
            header_timeout: section_duration(
                "http.header_timeout",
                h.header_timeout,
                "10s",
                false,
            )?,
            idle_timeout: section_duration("http.idle_timeout", h.idle_timeout, "60s", false)?,
            body_timeout: section_duration("http.body_timeout", h.body_timeout, "30s", false)?,
            max_requests_per_ip: h.max_requests_per_ip.unwrap_or(512),
            max_connections: h.max_connections.unwrap_or(4096),
            max_connections_per_ip: h.max_connections_per_ip.unwrap_or(256),
        };
        if http.max_connections == 0
            || http.max_connections_per_ip == 0
            || http.max_requests_per_ip == 0
        {
            return Err(ConfigError(
                "invalid http section: max_connections, max_connections_per_ip and max_requests_per_ip must be at least 1".into(),
            ));
        }
        if http.max_header_bytes < 4096 {
            return Err(invalid(
                "http.max_header_bytes",
                "at least 4096",
                http.max_header_bytes,
            ));
        }
        if http.max_body_bytes < 1024 {
            return Err(invalid(
                "http.max_body_bytes",
                "at least 1024",
                http.max_body_bytes,
            ));
        }

        let roles = RoleMap::from_config(file.roles.into_iter().map(|(k, v)| (k, v.scopes)))
            .map_err(ConfigError)?;

        let routes = RouteTable::build(file.route, &public_url).map_err(ConfigError)?;
        if let Some(aud) = routes
            .audiences()
            .find(|a| a.trim_end_matches('/') == public_url)
        {
            return Err(ConfigError(format!(
                "route audience '{aud}' is Tollgate's own URL: assertions must name the service they are for"
            )));
        }
        let (gateway, cors) = crate::gateway::config::resolve(
            file.gateway,
            file.cors,
            &public_url,
            &section_duration,
        )?;

        let limits_enabled = file.limits.enabled.unwrap_or(true);
        let limits =
            crate::limits::config::resolve(file.limits, limits_enabled, &section_duration)?;
        let mail =
            crate::mail::config::resolve(file.mail, file.smtp, &public_url, &section_duration)?;
        let ui = crate::ui::resolve_config(file.ui)?;
        let accounts = AccountsConfig {
            open_registration: file.accounts.open_registration.unwrap_or(true),
        };
        let admin = AdminConfig {
            require_mfa: file.admin.require_mfa.unwrap_or(false),
            mfa_max_age: section_duration(
                "admin.mfa_max_age",
                file.admin.mfa_max_age,
                "1h",
                false,
            )?,
        };
        let audit = crate::audit::resolve_config(file.audit, &section_duration)?;
        let oidc = crate::oidc::resolve_config(file.oidc, &section_duration)?;
        let resource_ids = routes.resource_ids();
        let oauth = crate::oidc::agents::resolve(
            file.oauth,
            env("TOLLGATE_OAUTH_REGISTRATION_TOKEN"),
            &|a| a == public_url.as_str() || resource_ids.iter().any(|r| r == a),
            &section_duration,
        )?;

        let identity_providers =
            crate::oidc::federation::config::resolve(file.identity_provider, service_env)
                .map_err(ConfigError)?;
        // A provider answering by cross-site POST needs a `SameSite=None; Secure` journey
        // cookie, which browsers keep only over https or on a loopback host.
        if let Some(p) = identity_providers.iter().find(|p| p.form_post)
            && crate::oidc::clients::check_redirect_uri(&public_url, false).is_err()
        {
            return Err(ConfigError(format!(
                "identity_provider '{}' answers by cross-site POST (response_mode = \"form_post\"), which needs an https public_url (or a loopback host), got '{public_url}'",
                p.name
            )));
        }

        let ai = crate::ai::config::resolve(file.ai, &service_env).map_err(ConfigError)?;

        let m = file.metrics;
        let metrics = MetricsConfig {
            listen: m
                .listen
                .map(|l| {
                    l.parse::<SocketAddr>().map_err(|_| {
                        invalid("metrics.listen", "an address like 127.0.0.1:9100", &l)
                    })
                })
                .transpose()?,
            token: secret_from(
                "metrics",
                "token",
                m.token_env.as_deref(),
                m.token_file.as_deref(),
                &service_env,
            )
            .map_err(ConfigError)?,
        };
        if metrics.listen == Some(listen) {
            return Err(ConfigError(
                "metrics.listen must differ from listen (it is a second listener)".into(),
            ));
        }

        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            redis_url,
            access_ttl,
            refresh_ttl,
            access_token_alg,
            log,
            log_format,
            limits_enabled,
            limits,
            mail,
            audit,
            roles,
            password,
            session,
            http,
            routes,
            cors,
            gateway,
            oidc,
            oauth,
            identity_providers,
            ai,
            metrics,
            ui,
            accounts,
            admin,
        })
    }
}

/// `listen` as an address, or a host name and port resolved once at start (the first
/// address the resolver gives: `localhost` is usually 127.0.0.1).
fn listen_address(raw: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        invalid(
            "listen (TOLLGATE_LISTEN)",
            "an address like 127.0.0.1:8080 or a host name and port like localhost:8080",
            raw,
        )
    };
    let (host, port) = raw.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    use std::net::ToSocketAddrs;
    let mut addrs = raw.to_socket_addrs().map_err(|e| {
        ConfigError(format!(
            "invalid listen (TOLLGATE_LISTEN): cannot resolve '{host}': {e}"
        ))
    })?;
    // IPv4 first: `localhost` may list ::1 first on hosts without IPv6 loopback.
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(bad)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "config file {}: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })?;
    for key in table.keys() {
        if !KNOWN_TOP_LEVEL.contains(&key.as_str()) {
            return Err(ConfigError(format!(
                "config file {}: unknown key '{key}'",
                path.display()
            )));
        }
    }
    FileConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
        ConfigError(format!(
            "config file {}: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })
}

const KNOWN_TOP_LEVEL: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "database_url",
    "redis_url",
    "access_ttl",
    "refresh_ttl",
    "log",
    "log_format",
    "limits",
    "roles",
    "password",
    "session",
    "http",
    "route",
    "cors",
    "gateway",
    "smtp",
    "mail",
    "audit",
    "oidc",
    "oauth",
    "identity_provider",
    "ai",
    "metrics",
    "ui",
    "accounts",
    "admin",
    "tokens",
];

/// The file as written. Unknown keys inside known sections are errors (typos must not
/// silently fall back to defaults).
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    access_ttl: Option<DurationValue>,
    refresh_ttl: Option<DurationValue>,
    log: Option<String>,
    log_format: Option<String>,
    #[serde(default)]
    limits: crate::limits::config::LimitsSection,
    #[serde(default)]
    roles: BTreeMap<String, RoleSection>,
    #[serde(default)]
    password: crate::identity::password::PasswordSection,
    #[serde(default)]
    session: crate::session::SessionSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    route: Vec<RouteSpec>,
    #[serde(default)]
    cors: crate::gateway::config::CorsSection,
    #[serde(default)]
    gateway: crate::gateway::config::GatewaySection,
    #[serde(default)]
    mail: crate::mail::config::MailSection,
    #[serde(default)]
    smtp: Option<crate::mail::config::SmtpSection>,
    #[serde(default)]
    audit: crate::audit::AuditSection,
    #[serde(default)]
    oidc: crate::oidc::OidcSection,
    #[serde(default)]
    oauth: crate::oidc::agents::OAuthSection,
    #[serde(default)]
    identity_provider: Vec<ProviderSpec>,
    #[serde(default)]
    ai: crate::ai::config::AiSpec,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    ui: crate::ui::UiSection,
    #[serde(default)]
    accounts: AccountsSection,
    #[serde(default)]
    admin: AdminSection,
    #[serde(default)]
    tokens: TokensSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensSection {
    access_token_alg: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    require_mfa: Option<bool>,
    mfa_max_age: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsSection {
    open_registration: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
}

impl FileConfig {
    /// Parses TOML text (for tests that build a config in memory).
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(one_line(&e.to_string())))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSection {
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    trusted_origins: Option<Vec<String>>,
    header_timeout: Option<DurationValue>,
    idle_timeout: Option<DurationValue>,
    body_timeout: Option<DurationValue>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_requests_per_ip: Option<usize>,
}

fn parse_public_url(raw: &str) -> Result<String, ConfigError> {
    let expected = "an absolute http:// or https:// URL without query or fragment";
    let url = url::Url::parse(raw)
        .map_err(|_| invalid("public_url (TOLLGATE_PUBLIC_URL)", expected, raw))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid("public_url (TOLLGATE_PUBLIC_URL)", expected, raw));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn listen_takes_host_names_and_the_public_url_keeps_the_name() {
        let env = |k: &str| (k == "TOLLGATE_LISTEN").then(|| "localhost:9".to_string());
        let c = Config::resolve(FileConfig::default(), env).unwrap();
        assert!(
            c.listen.ip().is_loopback() && c.listen.port() == 9,
            "{}",
            c.listen
        );
        assert_eq!(c.public_url, "http://localhost:9");
        for bad in [
            "localhost",
            "localhost:http",
            ":9",
            "no-such-host.invalid:9",
        ] {
            let env = |k: &str| (k == "TOLLGATE_LISTEN").then(|| bad.to_string());
            let e = Config::resolve(FileConfig::default(), env).err().unwrap();
            assert!(e.0.contains("TOLLGATE_LISTEN"), "{bad}: {}", e.0);
        }
    }

    #[test]
    fn log_settings_are_checked() {
        let with =
            |k: &'static str, v: &'static str| move |key: &str| (key == k).then(|| v.to_string());
        let e = Config::resolve(FileConfig::default(), with("TOLLGATE_LOG", "infoo"))
            .err()
            .unwrap();
        assert!(
            e.0.contains("TOLLGATE_LOG") && e.0.contains("infoo"),
            "{}",
            e.0
        );
        let c =
            Config::resolve(FileConfig::default(), with("TOLLGATE_LOG_FORMAT", "pretty")).unwrap();
        assert_eq!(c.log_format, LogFormat::Pretty);
        let e = Config::resolve(FileConfig::default(), with("TOLLGATE_LOG_FORMAT", "xml"))
            .err()
            .unwrap();
        assert!(e.0.contains("json or pretty"), "{}", e.0);
    }

    #[test]
    fn administrative_commands_do_without_unused_secrets() {
        let file = FileConfig::from_toml(
            "[ai.provider.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"NOT_SET_ANYWHERE\"\n",
        )
        .unwrap();
        let e = Config::resolve_for(file, no_env, Purpose::Serve)
            .err()
            .unwrap();
        assert!(e.0.contains("NOT_SET_ANYWHERE"), "{}", e.0);
        let file = FileConfig::from_toml(
            "[ai.provider.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"NOT_SET_ANYWHERE\"\n",
        )
        .unwrap();
        assert!(Config::resolve_for(file, no_env, Purpose::Administer).is_ok());
    }

    #[test]
    fn a_provider_answering_by_post_needs_a_secure_public_url() {
        let provider = "[[identity_provider]]\nname = \"sso\"\nissuer = \"https://sso.example.net\"\nclient_id = \"x\"\nresponse_mode = \"form_post\"\n";
        let with_url = |url: &str| {
            let file =
                FileConfig::from_toml(&format!("public_url = \"{url}\"\n{provider}")).unwrap();
            Config::resolve(file, no_env)
        };
        let e = with_url("http://tollgate.example.com").err().unwrap();
        assert!(
            e.0.contains("form_post") && e.0.contains("https"),
            "{}",
            e.0
        );
        assert!(with_url("https://tollgate.example.com").is_ok());
        assert!(with_url("http://127.0.0.1:8080").is_ok());
    }

    #[test]
    fn durations_accept_the_documented_forms() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        for bad in [
            "",
            "m",
            "1.5h",
            "-1",
            "10 minutes",
            "99999999999999999999d",
            "5w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn zero_configuration_gives_the_documented_defaults() {
        let c = Config::resolve(FileConfig::default(), no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./tollgate-data/tollgate.db");
        assert_eq!(c.access_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert!(c.limits_enabled);
        assert_eq!(c.password.memory_kib, 19_456);
        assert_eq!(c.password.iterations, 2);
        assert!(!c.secure_cookies());
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = FileConfig::from_toml("access_ttl = \"1h\"\nlisten = \"127.0.0.1:9\"").unwrap();
        let env = |k: &str| (k == "TOLLGATE_ACCESS_TTL").then(|| "90".to_string());
        let c = Config::resolve(file, env).unwrap();
        assert_eq!(c.access_ttl, Duration::from_secs(90));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn bad_values_name_the_key() {
        let env = |k: &str| (k == "TOLLGATE_ACCESS_TTL").then(|| "soon".to_string());
        let err = Config::resolve(FileConfig::default(), env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TOLLGATE_ACCESS_TTL") && err.contains("soon"),
            "{err}"
        );
        let env = |k: &str| (k == "TOLLGATE_PUBLIC_URL").then(|| "ftp://x".to_string());
        assert!(
            Config::resolve(FileConfig::default(), env)
                .unwrap_err()
                .to_string()
                .contains("public_url")
        );
        let file = FileConfig::from_toml("[password]\niterations = 0").unwrap();
        assert!(Config::resolve(file, no_env).is_err());
    }

    #[test]
    fn debug_output_hides_url_passwords() {
        let env = |k: &str| {
            (k == "TOLLGATE_DATABASE_URL").then(|| "postgres://app:hunter2@db/tollgate".to_string())
        };
        let c = Config::resolve(FileConfig::default(), env).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("app:***@db"),
            "{shown}"
        );
    }

    #[test]
    fn https_public_url_means_secure_cookies() {
        let env =
            |k: &str| (k == "TOLLGATE_PUBLIC_URL").then(|| "https://auth.example.com/".to_string());
        let c = Config::resolve(FileConfig::default(), env).unwrap();
        assert_eq!(c.public_url, "https://auth.example.com");
        assert_eq!(c.public_origin(), "https://auth.example.com");
        assert!(c.secure_cookies());
    }
}
