//! Start-up in one place: open the store, apply migrations, open the key ring, load the
//! revocation set, wire the services, and (for `serve`) run the HTTP server with its
//! background tasks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::ai::Ai;
use crate::clock;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::gateway::redirect::LoginRedirect;
use crate::identity::Identity;
use crate::identity::factors::SecondFactors;
use crate::identity::passkeys::Passkeys;
use crate::identity::password::PasswordHasher;
use crate::identity::policy::PasswordPolicy;
use crate::identity::signin::PasswordSignIn;
use crate::keys::KeyRing;
use crate::limits::Limiter;
use crate::limits::signin::SignInGuard;
use crate::mail::Mailer;
use crate::oidc::OidcProvider;
use crate::oidc::clients::Clients;
use crate::oidc::federation::Federation;
use crate::outbound::Outbound;
use crate::session::api_keys::ApiKeys;
use crate::session::assertion::Assertions;
use crate::session::cookies::CookieNames;
use crate::session::{AccessTokens, Revocations, Sessions};
use crate::store::Store;
use crate::ui::Pages;

/// Everything a request handler can reach.
pub struct App {
    pub config: Config,
    pub store: Store,
    /// The signing keys (tokens, ID tokens, assertions, audit checkpoints), reloaded
    /// when rotated.
    pub keys: Arc<KeyRing>,
    pub identity: Arc<Identity>,
    pub limits: Arc<Limiter>,
    pub sign_in: PasswordSignIn,
    /// Second factors: enrolment, codes, the challenge between a sign-in's two steps.
    pub factors: Arc<SecondFactors>,
    /// Passkeys: registration, sign-in, step-up.
    pub passkeys: Passkeys,
    pub mailer: Arc<Mailer>,
    pub sessions: Arc<Sessions>,
    /// Revoked sessions and clients: recorded, spread to other processes, and read by
    /// every token check.
    pub revocations: Arc<Revocations>,
    pub cookies: CookieNames,
    pub metrics: PrometheusHandle,
    pub gateway: Gateway,
    pub api_keys: ApiKeys,
    pub assertions: Arc<Assertions>,
    pub oidc: OidcProvider,
    pub federation: Federation,
    pub pages: Pages,
    pub ai: Arc<Ai>,
}

pub type AppState = Arc<App>;

/// How often the key directory is re-read for rotated keys.
const KEY_RELOAD: Duration = crate::keys::RELOAD_INTERVAL;

/// Opens the database (creating the SQLite file and data dir when needed) and migrates.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    if let Some(path) = sqlite_file(config)
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {} (database_url / TOLLGATE_DATABASE_URL)",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok(store)
}

/// Fails unless `config` points at an install that `serve` or `migrate` made: its key
/// directory, and for SQLite its database file. The message names where it looked.
pub fn require_install(config: &Config, config_file: Option<&Path>) -> anyhow::Result<()> {
    let keys = keys_dir(config);
    let missing = if !keys.is_dir() {
        Some(keys)
    } else {
        sqlite_file(config).filter(|f| !f.is_file())
    };
    let Some(missing) = missing else {
        return Ok(());
    };
    let config_file = match config_file {
        Some(p) => p.display().to_string(),
        None => "none (--config or TOLLGATE_CONFIG)".into(),
    };
    anyhow::bail!(
        "no Tollgate install here: {} does not exist (data dir {}, config file {config_file}); \
         point --data-dir or --config at the install, or create one with `tollgate serve` or `tollgate migrate`",
        missing.display(),
        config.data_dir.display(),
    )
}

/// The SQLite database file, when the database is one.
fn sqlite_file(config: &Config) -> Option<std::path::PathBuf> {
    config
        .database_url
        .strip_prefix("sqlite://")
        .map(|p| Path::new(p.split('?').next().unwrap_or(p)).to_path_buf())
}

/// Says so at start when another serving process already uses this SQLite file: SQLite
/// is for one node, so revocations, rate limits and AI quotas would not be shared (each
/// process keeps its own). The claim is a lock on `<file>.serve.lock`, held for the
/// process's life and released by the kernel even after `kill -9`. CLI commands never
/// claim it: they may run beside the server.
fn claim_sqlite_file(config: &Config) {
    static CLAIM: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let Some(db) = sqlite_file(config) else {
        return;
    };
    let mut lock_path = db.into_os_string();
    lock_path.push(".serve.lock");
    let claimed = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::other));
    match claimed {
        Ok(file) => {
            let _ = CLAIM.set(file);
        }
        Err(e) => tracing::warn!(
            lock = %Path::new(&lock_path).display(),
            error = %e,
            "another Tollgate server uses this SQLite file: SQLite is for one node, so sessions revoked, rate limits and AI quotas are not shared between the two; use PostgreSQL for several nodes"
        ),
    }
}

pub fn keys_dir(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("keys")
}

/// Builds the application state.
pub async fn build(config: Config) -> anyhow::Result<AppState> {
    let store = open_store(&config).await?;
    let keys = Arc::new(KeyRing::open(&keys_dir(&config), config.access_ttl)?);
    let revocations =
        Arc::new(Revocations::open(&store, config.access_ttl, config.redis_url.as_deref()).await?);
    let password_cfg = config.password.clone();
    let hasher =
        Arc::new(tokio::task::spawn_blocking(move || PasswordHasher::new(&password_cfg)).await??);
    let assertions = Arc::new(Assertions::new(
        keys.clone(),
        &config.public_url,
        config.access_token_alg,
    ));
    let tokens = Arc::new(AccessTokens::new(
        keys.clone(),
        revocations.set().clone(),
        &config.public_url,
        config.access_ttl,
        config.access_token_alg,
    ));
    let sessions = Arc::new(Sessions::new(
        store.clone(),
        tokens.clone(),
        revocations.clone(),
        config.roles.clone(),
        config.session.clone(),
        config.refresh_ttl,
    ));
    // One pool for every outbound call; each use brings its own timeouts.
    let outbound = Outbound::new(config.gateway.proxy.clone()).map_err(anyhow::Error::msg)?;
    let mut clients = Clients::new(store.clone(), revocations.clone());
    if config.oauth.client_id_metadata {
        let documents = crate::oidc::metadata_document::Documents::new(
            config.oauth.documents.clone(),
            config.routes.resource_scopes(),
        )
        .map_err(anyhow::Error::msg)?;
        clients = clients.with_documents(Arc::new(documents));
    }
    let oidc = OidcProvider::new(
        store.clone(),
        sessions.clone(),
        clients,
        config.oidc.clone(),
        crate::oidc::AgentSupport {
            resources: config.routes.resource_ids(),
            oauth: config.oauth.clone(),
            assertions: assertions.clone(),
            assertion_audiences: config.routes.audiences().map(str::to_string).collect(),
        },
    );
    let federation = Federation::new(
        config.identity_providers.clone(),
        outbound.clone(),
        tokens.keys().clone(),
        &config.public_url,
        store.clone(),
        config.mail.require_verification,
    );
    let policy = PasswordPolicy::new(
        config.password.refuse_common,
        config.password.breach_api.clone(),
        config.password.breach_timeout,
        outbound.clone(),
    );
    let mailer = Arc::new(Mailer::new(config.mail.clone(), &config.data_dir)?);
    let identity = Arc::new(Identity::new(
        store.clone(),
        hasher,
        revocations.clone(),
        policy,
        mailer.clone(),
    ));
    let limits = Arc::new(Limiter::new(
        config.limits.clone(),
        config.redis_url.as_deref(),
        store.shared_counters(),
    )?);
    let sealer = crate::secret::Sealer::open(&keys_dir(&config)).with_context(|| {
        format!(
            "cannot open the sealing key in {}",
            keys_dir(&config).display()
        )
    })?;
    let factors = Arc::new(SecondFactors::new(
        store.clone(),
        revocations.clone(),
        sealer,
        config.public_host(),
        mailer.clone(),
    ));
    let sign_in = PasswordSignIn::new(
        identity.clone(),
        factors.clone(),
        limits.clone(),
        SignInGuard::new(
            store.clone(),
            config.limits.sign_in.clone(),
            config.limits.enabled,
        ),
        store.clone(),
        config.mail.require_verification,
    );
    let api_keys = ApiKeys::new(store.clone(), config.roles.clone());
    let gateway = Gateway {
        routes: config.routes.clone(),
        cors: config.cors.clone(),
        outbound: outbound.clone(),
        login: LoginRedirect {
            login_url: config.gateway.login_url.clone(),
            return_origins: config.gateway.return_origins.clone(),
            own_origin: config.public_origin(),
            step_up_url: format!("{}/ui/mfa", config.public_url),
        },
        public_host: config.public_host(),
    };
    let ai = Arc::new(Ai::new(
        config.ai.clone(),
        store.clone(),
        &outbound,
        config.redis_url.as_deref(),
        &config.data_dir,
    )?);
    let pages = Pages::new(&config.ui);
    let passkeys = Passkeys::new(
        &config.public_url,
        store.clone(),
        factors.clone(),
        config.mail.require_verification,
    );
    Ok(Arc::new(App {
        cookies: CookieNames::new(config.secure_cookies(), &config.session.refresh_cookie_path),
        metrics: crate::telemetry::metrics_handle(),
        config,
        store,
        keys,
        identity,
        limits,
        sign_in,
        passkeys,
        factors,
        mailer,
        sessions,
        revocations,
        gateway,
        api_keys,
        assertions,
        oidc,
        federation,
        pages,
        ai,
    }))
}

/// Starts the background work of a serving process: the database's health probe, the
/// revocation listener and poll, key reload, API-key use, audit checkpoints, OAuth and
/// shared-counter pruning, metrics upkeep, refusal
/// summaries.
pub fn spawn_background(app: &AppState) {
    claim_sqlite_file(&app.config);
    app.store.watch_health();
    app.revocations.spawn_feeds(app.store.clone());
    spawn_key_reload(app.clone());
    spawn_api_key_usage_flush(app.clone());
    spawn_audit_checkpoints(app.clone());
    spawn_oauth_pruning(app.clone());
    spawn_counter_pruning(app.clone());
    spawn_metrics_upkeep(app.clone());
    spawn_refusal_summaries(app.clone());
}

/// What a serving process writes before it exits: API-key use, refusal counts, an audit
/// checkpoint; then the database closes.
pub async fn finish(app: &App) {
    if let Err(e) = app.api_keys.flush_last_used().await {
        tracing::warn!(error = %e, "could not record API key use");
    }
    write_refusal_summaries(app, true).await;
    checkpoint_audit(app).await;
    app.store.close().await;
}

/// Drains the metrics recorder's histogram samples into their summaries, which otherwise
/// only happens on a scrape: without it memory grows with every request until someone
/// reads `/metrics`.
fn spawn_metrics_upkeep(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::telemetry::UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            app.metrics.run_upkeep();
        }
    });
}

/// Writes the counts of AI refusals that were not audited one by one, each minute.
fn spawn_refusal_summaries(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            write_refusal_summaries(&app, false).await;
        }
    });
}

async fn write_refusal_summaries(app: &App, everything: bool) {
    let now_ms = clock::now() * 1000;
    for entry in app.ai.refusals.due(now_ms, everything) {
        if let Err(e) = app.store.append_audit(&entry).await {
            tracing::warn!(error = %e, "could not audit a count of AI refusals");
        }
    }
}

/// Signs the audit chain's head now and then (and at shutdown), when it moved.
fn spawn_audit_checkpoints(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(app.config.audit.checkpoint_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            checkpoint_audit(&app).await;
        }
    });
}

async fn checkpoint_audit(app: &App) {
    let keys = &app.keys;
    if let Err(e) = crate::audit::checkpoint::write(&app.store, keys, &app.config.public_url).await
    {
        tracing::warn!(error = %e, "audit checkpoint not written");
    }
}

/// How often spent authorization codes and expired token revocations are deleted.
const OAUTH_PRUNE: Duration = Duration::from_secs(600);

/// How often spent rate-limit and quota counters are deleted from the database.
const COUNTER_PRUNE: Duration = Duration::from_secs(60);

/// Deletes spent shared counters (PostgreSQL only; every node does it, which is harmless).
fn spawn_counter_pruning(app: AppState) {
    let Some(counters) = app.store.shared_counters() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COUNTER_PRUNE);
        loop {
            tick.tick().await;
            match counters.prune().await {
                Ok(()) => {}
                Err(e) if crate::store::health::is_outage(&e) => {}
                Err(e) => tracing::warn!(error = %e, "could not prune the shared counters"),
            }
        }
    });
}

fn spawn_oauth_pruning(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(OAUTH_PRUNE);
        loop {
            tick.tick().await;
            if let Err(e) = app.store.prune_oauth(clock::now()).await {
                tracing::warn!(error = %e, "could not prune authorization codes");
            }
            if let Err(e) = app.store.prune_devices(clock::now()).await {
                tracing::warn!(error = %e, "could not prune device authorizations");
            }
            let ttl = app.config.oauth.registered_client_ttl.as_secs() as i64;
            if let Err(e) = app.oidc.expire_unused_clients(ttl).await {
                tracing::warn!(error = %e, "could not expire unused registered clients");
            }
        }
    });
}

/// How often API-key last-use times collected in memory are written.
const API_KEY_USAGE_FLUSH: Duration = Duration::from_secs(30);

fn spawn_api_key_usage_flush(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(API_KEY_USAGE_FLUSH);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = app.api_keys.flush_last_used().await {
                tracing::warn!(error = %e, "could not record API key use");
            }
        }
    });
}

fn spawn_key_reload(app: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD);
        tick.tick().await;
        loop {
            tick.tick().await;
            let keys = app.keys.clone();
            match tokio::task::spawn_blocking(move || keys.reload()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "key reload failed"),
                Err(e) => tracing::warn!(error = %e, "key reload task failed"),
            }
        }
    });
}
