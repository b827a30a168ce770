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
use crate::gateway::cors::{CorsConfig, check_origin_syntax};
use crate::gateway::proxy::ProxyConfig;
use crate::gateway::routes::{RouteSpec, RouteTable};
use crate::identity::password::PasswordConfig;
use crate::limits::rules::RuleSpec;
use crate::limits::signin::SignInPolicy;
use crate::limits::{Cidr, LimitsConfig, RedisFailure};
use crate::mail::{MailConfig, SmtpConfig, SmtpTls};
use crate::oidc::OidcConfig;
use crate::oidc::federation::{ProviderConfig, ProviderSpec};
use crate::session::SessionConfig;
use crate::ui::UiConfig;

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
    pub log: String,
    pub limits_enabled: bool,
    pub limits: LimitsConfig,
    pub mail: MailConfig,
    pub audit: AuditConfig,
    pub roles: RoleMap,
    pub password: PasswordConfig,
    pub session: SessionConfig,
    pub http: HttpConfig,
    pub routes: RouteTable,
    pub cors: CorsConfig,
    pub gateway: GatewayConfig,
    pub oidc: OidcConfig,
    pub identity_providers: Vec<ProviderConfig>,
    pub ai: crate::ai::config::AiConfig,
    pub metrics: MetricsConfig,
    pub ui: UiConfig,
    pub accounts: AccountsConfig,
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

/// Upstream timeouts and the sign-in redirect (`[gateway]`).
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub proxy: ProxyConfig,
    /// Where refused browser navigations are sent; absolute.
    pub login_url: Option<String>,
    /// Origins a sign-in return URL may point to, besides the public URL's.
    pub return_origins: Vec<String>,
}

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How often a server signs a checkpoint of the chain's head (when it moved).
    pub checkpoint_interval: Duration,
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
            .field("identity_providers", &self.identity_providers)
            .field("ai", &self.ai)
            .field("metrics", &self.metrics)
            .field("ui", &self.ui)
            .field("accounts", &self.accounts)
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

    /// Loads the file (if any) and applies the environment on top.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let file = match path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, env)
    }

    /// Resolution proper, with the environment injected so it can be tested.
    pub fn resolve(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let pick = |var: &str, from_file: Option<String>| env(var).or(from_file);

        let listen_raw = pick("TOLLGATE_LISTEN", file.listen).unwrap_or("127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            invalid(
                "listen (TOLLGATE_LISTEN)",
                "an address like 127.0.0.1:8080",
                &listen_raw,
            )
        })?;

        let public_url = match pick("TOLLGATE_PUBLIC_URL", file.public_url) {
            Some(u) => parse_public_url(&u)?,
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

        let section_duration =
            |key: &str, v: Option<DurationValue>, default: &str, allow_zero: bool| {
                let raw = v.map(|v| v.to_string()).unwrap_or(default.into());
                parse_duration(&raw)
                    .filter(|d| allow_zero || !d.is_zero())
                    .ok_or_else(|| invalid(key, "a duration like 10s, 15m or 7d", &raw))
            };
        let session = SessionConfig {
            idle_ttl: section_duration("session.idle_ttl", file.session.idle_ttl, "7d", false)?,
            refresh_grace: section_duration(
                "session.refresh_grace",
                file.session.refresh_grace,
                "10s",
                true,
            )?,
            refresh_cookie_path: file
                .session
                .refresh_cookie_path
                .unwrap_or_else(|| "/".into()),
        };
        if !["/", "/auth", "/auth/", "/auth/refresh"]
            .contains(&session.refresh_cookie_path.as_str())
        {
            return Err(invalid(
                "session.refresh_cookie_path",
                "\"/\", \"/auth/\" or \"/auth/refresh\" (it must cover /auth/refresh)",
                &session.refresh_cookie_path,
            ));
        }

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let p = file.password;
        let password = PasswordConfig {
            memory_kib: p.memory_kib.unwrap_or(19_456),
            iterations: p.iterations.unwrap_or(2),
            parallelism: p.parallelism.unwrap_or(1),
            max_concurrent: p.max_concurrent.unwrap_or(cores),
            refuse_common: p.refuse_common.unwrap_or(true),
            breach_api: p.breach_api,
            breach_timeout: section_duration(
                "password.breach_timeout",
                p.breach_timeout,
                "2",
                false,
            )?,
        };
        if let Some(api) = &password.breach_api
            && !(api.starts_with("https://") || api.starts_with("http://"))
        {
            return Err(invalid("password.breach_api", "an http(s) URL", api));
        }
        if password.memory_kib < 8 * password.parallelism.max(1)
            || password.memory_kib > 4 * 1024 * 1024
        {
            return Err(invalid(
                "password.memory_kib",
                "8×parallelism to 4194304 KiB",
                password.memory_kib,
            ));
        }
        if password.iterations == 0 || password.parallelism == 0 || password.max_concurrent == 0 {
            return Err(ConfigError(
                "invalid password section: iterations, parallelism and max_concurrent must be at least 1".into(),
            ));
        }

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

        let routes = RouteTable::build(file.route).map_err(ConfigError)?;
        if let Some(aud) = routes
            .audiences()
            .find(|a| a.trim_end_matches('/') == public_url)
        {
            return Err(ConfigError(format!(
                "route audience '{aud}' is Tollgate's own URL: assertions must name the service they are for"
            )));
        }
        let cors = CorsConfig {
            allowed_origins: file.cors.allowed_origins.unwrap_or_default(),
            max_age_secs: section_duration("cors.max_age", file.cors.max_age, "10m", true)?
                .as_secs(),
        };
        for origin in &cors.allowed_origins {
            check_origin_syntax(origin)
                .map_err(|e| ConfigError(format!("cors.allowed_origins: {e}")))?;
        }
        let g = file.gateway;
        let proxy_default = ProxyConfig::default();
        let timeout = |key: &str, v: Option<DurationValue>, default: std::time::Duration| {
            section_duration(key, v, &format!("{}", default.as_secs()), false)
        };
        let gateway = GatewayConfig {
            proxy: ProxyConfig {
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
                .map(|u| absolute_login_url(&u, &public_url))
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

        let limits_enabled = file.limits.enabled.unwrap_or(true);
        let limits = resolve_limits(file.limits, limits_enabled, &section_duration)?;
        let mail = resolve_mail(file.mail, file.smtp, &public_url, &section_duration)?;
        let ui = resolve_ui(file.ui)?;
        let accounts = AccountsConfig {
            open_registration: file.accounts.open_registration.unwrap_or(true),
        };
        let audit = AuditConfig {
            checkpoint_interval: section_duration(
                "audit.checkpoint_interval",
                file.audit.checkpoint_interval,
                "1m",
                false,
            )?,
        };

        let o = file.oidc;
        let oidc = OidcConfig {
            code_ttl: section_duration("oidc.code_ttl", o.code_ttl, "60s", false)?,
            flow_ttl: section_duration("oidc.flow_ttl", o.flow_ttl, "30m", false)?,
            require_pkce: o.require_pkce.unwrap_or(false),
        };
        if oidc.code_ttl > Duration::from_secs(600) {
            return Err(invalid(
                "oidc.code_ttl",
                "at most 10m (RFC 6749 §4.1.2)",
                "longer",
            ));
        }

        let identity_providers =
            crate::oidc::federation::config::resolve(file.identity_provider, &env)
                .map_err(ConfigError)?;

        let ai = crate::ai::config::resolve(file.ai, &env).map_err(ConfigError)?;

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
                &env,
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
            log,
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
            identity_providers,
            ai,
            metrics,
            ui,
            accounts,
        })
    }
}

fn resolve_ui(u: UiSection) -> Result<UiConfig, ConfigError> {
    let accent_colour = u.accent_colour.unwrap_or_else(|| "#0b57d0".into());
    let hex = accent_colour.strip_prefix('#').unwrap_or("");
    if !(hex.len() == 3 || hex.len() == 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "ui.accent_colour",
            "#rgb or #rrggbb",
            &accent_colour,
        ));
    }
    if let Some(logo) = &u.logo_url {
        let ok = if logo.starts_with('/') {
            !logo.starts_with("//") && !logo.contains(['"', '<', '>', ' ', '\\'])
        } else {
            // The same rule as a client's redirect URI: https, or http on a loopback host.
            crate::oidc::clients::check_redirect_uri(logo, false).is_ok()
                && !logo.contains(['"', '<', '>', ' ', '\\'])
        };
        if !ok {
            return Err(invalid(
                "ui.logo_url",
                "an https:// URL (http only on a loopback host) or a path on this origin",
                logo,
            ));
        }
    }
    let product_name = u.product_name.unwrap_or_else(|| "Tollgate".into());
    if product_name.trim().is_empty() || product_name.chars().count() > 64 {
        return Err(invalid(
            "ui.product_name",
            "1 to 64 characters",
            &product_name,
        ));
    }
    Ok(UiConfig {
        product_name,
        logo_url: u.logo_url,
        accent_colour,
    })
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
    "identity_provider",
    "ai",
    "metrics",
    "ui",
    "accounts",
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
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    roles: BTreeMap<String, RoleSection>,
    #[serde(default)]
    password: PasswordSection,
    #[serde(default)]
    session: SessionSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    route: Vec<RouteSpec>,
    #[serde(default)]
    cors: CorsSection,
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    mail: MailSection,
    #[serde(default)]
    smtp: Option<SmtpSection>,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    oidc: OidcSection,
    #[serde(default)]
    identity_provider: Vec<ProviderSpec>,
    #[serde(default)]
    ai: crate::ai::config::AiSpec,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    ui: UiSection,
    #[serde(default)]
    accounts: AccountsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiSection {
    product_name: Option<String>,
    logo_url: Option<String>,
    accent_colour: Option<String>,
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
    /// Parses TOML text (for tests and tools that build a config in memory).
    pub fn from_toml(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(one_line(&e.to_string())))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    enabled: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    on_redis_failure: Option<RedisFailure>,
    default_rules: Option<bool>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    sign_in: SignInSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInSection {
    max_failures: Option<u32>,
    ip_max_failures: Option<u32>,
    account_max_failures: Option<u32>,
    lockout: Option<DurationValue>,
    max_lockout: Option<DurationValue>,
    account_lockout: Option<DurationValue>,
    reset_after: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailSection {
    from: Option<String>,
    require_verification: Option<bool>,
    templates_dir: Option<String>,
    verify_url: Option<String>,
    reset_url: Option<String>,
    email_change_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSection {
    host: String,
    port: Option<u16>,
    tls: Option<SmtpTls>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcSection {
    code_ttl: Option<DurationValue>,
    flow_ttl: Option<DurationValue>,
    require_pkce: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    checkpoint_interval: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSection {
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordSection {
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
    max_concurrent: Option<usize>,
    refuse_common: Option<bool>,
    breach_api: Option<String>,
    breach_timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSection {
    idle_ttl: Option<DurationValue>,
    refresh_grace: Option<DurationValue>,
    refresh_cookie_path: Option<String>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsSection {
    allowed_origins: Option<Vec<String>>,
    max_age: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    connect_timeout: Option<DurationValue>,
    timeout: Option<DurationValue>,
    idle_timeout: Option<DurationValue>,
    login_url: Option<String>,
    return_origins: Option<Vec<String>>,
}

type SectionDuration<'a> =
    &'a dyn Fn(&str, Option<DurationValue>, &str, bool) -> Result<Duration, ConfigError>;

fn resolve_limits(
    l: LimitsSection,
    enabled: bool,
    duration: SectionDuration<'_>,
) -> Result<LimitsConfig, ConfigError> {
    let mut trusted_proxies = Vec::new();
    for raw in l.trusted_proxies.unwrap_or_default() {
        trusted_proxies.push(Cidr::parse(&raw).ok_or_else(|| {
            invalid(
                "limits.trusted_proxies",
                "addresses or ranges like 10.0.0.0/8",
                &raw,
            )
        })?);
    }
    let rules = crate::limits::rules::merge(l.default_rules.unwrap_or(true), l.rule)
        .map_err(ConfigError)?;
    let d = SignInPolicy::default();
    let s = l.sign_in;
    let sign_in = SignInPolicy {
        max_failures: s.max_failures.unwrap_or(d.max_failures),
        ip_max_failures: s.ip_max_failures.unwrap_or(d.ip_max_failures),
        account_max_failures: s.account_max_failures.unwrap_or(d.account_max_failures),
        lockout: duration("limits.sign_in.lockout", s.lockout, "1m", false)?,
        max_lockout: duration("limits.sign_in.max_lockout", s.max_lockout, "15m", false)?,
        account_lockout: duration(
            "limits.sign_in.account_lockout",
            s.account_lockout,
            "15m",
            false,
        )?,
        reset_after: duration("limits.sign_in.reset_after", s.reset_after, "1h", false)?,
    };
    if sign_in.max_failures == 0 || sign_in.ip_max_failures == 0 {
        return Err(ConfigError(
            "limits.sign_in: failure thresholds must be at least 1".into(),
        ));
    }
    if sign_in.account_max_failures <= sign_in.max_failures {
        return Err(ConfigError(format!(
            "limits.sign_in.account_max_failures ({}) must exceed max_failures ({}): otherwise one address alone could lock an account for everyone",
            sign_in.account_max_failures, sign_in.max_failures
        )));
    }
    Ok(LimitsConfig {
        enabled,
        trusted_proxies,
        on_redis_failure: l.on_redis_failure.unwrap_or(RedisFailure::Local),
        redis_timeout: Duration::from_millis(250),
        rules,
        sign_in,
    })
}

fn resolve_mail(
    m: MailSection,
    smtp: Option<SmtpSection>,
    public_url: &str,
    duration: SectionDuration<'_>,
) -> Result<MailConfig, ConfigError> {
    let from = m.from.unwrap_or("Tollgate <no-reply@localhost>".into());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "mail.from",
            "a mailbox like 'Name <addr@example.com>'",
            &from,
        ));
    }
    for (key, v) in [
        ("mail.verify_url", &m.verify_url),
        ("mail.reset_url", &m.reset_url),
        ("mail.email_change_url", &m.email_change_url),
    ] {
        if let Some(u) = v
            && (!u.contains("{token}") || url::Url::parse(&u.replace("{token}", "t")).is_err())
        {
            return Err(invalid(key, "an absolute URL containing {token}", u));
        }
    }
    let smtp = match smtp {
        None => None,
        Some(s) => {
            let password = secret_from(
                "smtp",
                "password",
                s.password_env.as_deref(),
                s.password_file.as_deref(),
                &|k: &str| std::env::var(k).ok(),
            )
            .map_err(ConfigError)?;
            if s.host.is_empty() {
                return Err(invalid("smtp.host", "a host name", ""));
            }
            let tls = s.tls.unwrap_or(SmtpTls::Starttls);
            Some(SmtpConfig {
                port: s.port.unwrap_or(match tls {
                    SmtpTls::Tls => 465,
                    SmtpTls::Starttls => 587,
                    SmtpTls::None => 25,
                }),
                host: s.host,
                tls,
                username: s.username,
                password: password.map(crate::mail::SmtpPassword),
                timeout: duration("smtp.timeout", s.timeout, "10s", false)?,
            })
        }
    };
    Ok(MailConfig {
        from,
        require_verification: m.require_verification.unwrap_or(false),
        templates_dir: m.templates_dir.map(PathBuf::from),
        // The hosted pages, unless the app has its own.
        verify_url: m
            .verify_url
            .unwrap_or_else(|| format!("{public_url}/ui/verify?token={{token}}")),
        reset_url: m
            .reset_url
            .unwrap_or_else(|| format!("{public_url}/ui/reset?token={{token}}")),
        email_change_url: m
            .email_change_url
            .unwrap_or_else(|| format!("{public_url}/ui/confirm-email?token={{token}}")),
        pages_url: format!("{public_url}/ui"),
        smtp,
    })
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
