//! Persistence: the only module that speaks SQL.
//!
//! [`Store`] is an enum over a SQLite and a PostgreSQL pool. Each query is written once and
//! expanded for both backends by [`on_pool!`]; the SQL itself is portable (`$n`
//! placeholders, `RETURNING`, Unix-second integers), and only the schema files differ
//! (`migrations/<backend>/`), embedded in the binary. Every change runs in one transaction
//! opened by [`BeginWrite::begin_write`]. SQLite takes one writer at a time: its write
//! transactions start with `BEGIN IMMEDIATE` (no failed lock upgrades) and, within the
//! process, queue first-come first-served on a gate per database file ([`SqliteWrite`]),
//! instead of polling SQLite's lock with its busy handler's growing sleeps, which gave
//! concurrent writers a tail of hundreds of milliseconds while others got through.

mod ai_usage;
mod api_keys;
mod audit;
pub mod chain;
mod clients;
pub mod counters;
mod device;
mod email_tokens;
mod factors;
mod federation;
pub mod health;
mod oauth;
mod passkeys;
mod sessions;
mod signin;
mod user_list;
mod users;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use sqlx::{SqlSafeStr, Transaction};

pub use ai_usage::{UsageFilter, UsageGroup, UsageReportRow, UsageRow};
pub use api_keys::{ApiKeyRecord, NewApiKey};
pub use audit::{AuditFilter, AuditRecord, Entry, Outcome};
pub use clients::{CLIENT_PREFIX, CLIENT_TOKENS_PREFIX, ClientRecord};
pub use device::{DeviceDecision, DeviceRecord, NewDeviceAuthorization, Polled};
pub use email_tokens::{NewEmailToken, PURPOSE_EMAIL_CHANGE, PURPOSE_RESET, PURPOSE_VERIFY};
pub use factors::MfaChallenge;
pub use federation::{FederatedLogin, LinkedIdentity};
pub use oauth::{ConsentRecord, NewCode, Redeemed};
pub use passkeys::PasskeyRecord;
pub use sessions::{NewSession, RefreshSpend, SessionRecord};
pub use signin::{FailureKeys, LockPolicy};
pub use user_list::{UserQuery, UserState};
pub use users::{NewUser, UserRecord};

/// Storage failures. `Conflict` is the one callers act on; the rest mean "try later".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write (e.g. an email already registered).
    #[error("conflicting row already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The database is known to be down (`health`): refused without trying.
    #[error("the database is unreachable")]
    Unavailable,
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database server could not be reached at start.
    #[error("{0}")]
    Unreachable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        health::observe(&e);
        StoreError::Database(e)
    }
}

/// Longest a request waits for a PostgreSQL connection.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first connection to PostgreSQL may take at start.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub type StoreResult<T> = Result<T, StoreError>;

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn conflict_aware(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => e.into(),
    }
}

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per backend with `$pool` bound to the concrete pool.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => {
                $crate::store::health::check()?;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// Opens a write transaction the way each backend needs.
pub(crate) trait BeginWrite {
    type Tx;
    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error>;
}

/// A SQLite write transaction, holding this process's write gate for its database file
/// until it commits or is dropped. It derefs to the connection, as a `Transaction` does,
/// so queries run on `&mut *tx` alike on both backends.
pub(crate) struct SqliteWrite {
    tx: Transaction<'static, sqlx::Sqlite>,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl SqliteWrite {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for SqliteWrite {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for SqliteWrite {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// The write gate of a SQLite file: one per file and process (a tokio mutex queues its
/// waiters in order). Keyed by the file, so every pool on it shares one.
fn sqlite_gate(pool: &SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(file)
        .or_default()
        .clone()
}

impl BeginWrite for SqlitePool {
    type Tx = SqliteWrite;
    async fn begin_write(&self) -> Result<SqliteWrite, sqlx::Error> {
        // The gate before the connection: a writer waiting its turn holds no connection
        // that readers could use.
        let gate = sqlite_gate(self).lock_owned().await;
        let tx = self.begin_with("BEGIN IMMEDIATE").await?;
        Ok(SqliteWrite { tx, _gate: gate })
    }
}

impl BeginWrite for PgPool {
    type Tx = Transaction<'static, sqlx::Postgres>;
    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error> {
        // The refresh arbitration relies on READ COMMITTED re-evaluation; don't inherit a
        // stricter server default that would turn racing tabs into serialization errors.
        self.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
    }
}

impl Store {
    /// Connects to `sqlite://…` (creating the file) or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Store::Sqlite(pool))
        } else {
            // One plain connection first: a pool would retry until its acquire timeout
            // and report only "pool timed out", where this says why (refused, unknown
            // host, authentication) within seconds.
            let opts = PgConnectOptions::from_str(url)?;
            match tokio::time::timeout(CONNECT_PROBE_TIMEOUT, opts.connect()).await {
                Ok(Ok(probe)) => {
                    let _ = probe.close().await;
                }
                Ok(Err(e)) => return Err(StoreError::Unreachable(e.to_string())),
                Err(_) => {
                    return Err(StoreError::Unreachable(format!(
                        "no answer within {} s",
                        CONNECT_PROBE_TIMEOUT.as_secs()
                    )));
                }
            }
            // The probe showed the server answers: the pool connects as it is used.
            // A request waits at most 2 s for a connection: while PostgreSQL refuses
            // connections the pool keeps retrying until this timeout, so it bounds how
            // long a request caught by an outage waits for its 503 (`health` answers the
            // rest at once); a pool exhausted that long is overload, shed with a 503 too.
            // Every connection runs READ COMMITTED whatever the server's default: the
            // single-statement upserts of the shared counters, like the refresh
            // arbitration, rely on its re-evaluation of a row that changed under them, and
            // would fail with serialization errors under a stricter default.
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(
                            conn,
                            "SET default_transaction_isolation TO 'read committed'",
                        )
                        .await
                        .map(|_| ())
                    })
                })
                .connect_lazy_with(opts);
            Ok(Store::Postgres(pool))
        }
    }

    /// Starts probing the database server (`health`), so requests fail fast while it is
    /// down; a serving process calls it once. SQLite has no server to lose.
    pub fn watch_health(&self) {
        if let Store::Postgres(pool) = self {
            health::spawn_probe((*pool.connect_options()).clone());
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations; applied ones are skipped, so running twice is a no-op.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migration = |version: i64, name: &'static str, sql: &'static str| {
            Migration::new(
                version,
                name.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        };
        match self {
            Store::Sqlite(pool) => {
                Migrator::with_migrations(vec![
                    migration(1, "init", include_str!("migrations/sqlite/0001_init.sql")),
                    migration(
                        2,
                        "api_keys",
                        include_str!("migrations/sqlite/0002_api_keys.sql"),
                    ),
                    migration(
                        3,
                        "audit_recovery",
                        include_str!("migrations/sqlite/0003_audit_recovery.sql"),
                    ),
                    migration(4, "oidc", include_str!("migrations/sqlite/0004_oidc.sql")),
                    migration(
                        5,
                        "ai_usage",
                        include_str!("migrations/sqlite/0005_ai_usage.sql"),
                    ),
                    migration(
                        6,
                        "second_factors",
                        include_str!("migrations/sqlite/0006_second_factors.sql"),
                    ),
                    migration(
                        7,
                        "passkeys",
                        include_str!("migrations/sqlite/0007_passkeys.sql"),
                    ),
                    migration(
                        8,
                        "console",
                        include_str!("migrations/sqlite/0008_console.sql"),
                    ),
                    migration(
                        10,
                        "agents",
                        include_str!("migrations/sqlite/0010_agents.sql"),
                    ),
                ])
                .run(pool)
                .await?
            }
            Store::Postgres(pool) => {
                Migrator::with_migrations(vec![
                    migration(1, "init", include_str!("migrations/postgres/0001_init.sql")),
                    migration(
                        2,
                        "api_keys",
                        include_str!("migrations/postgres/0002_api_keys.sql"),
                    ),
                    migration(
                        3,
                        "audit_recovery",
                        include_str!("migrations/postgres/0003_audit_recovery.sql"),
                    ),
                    migration(4, "oidc", include_str!("migrations/postgres/0004_oidc.sql")),
                    migration(
                        5,
                        "ai_usage",
                        include_str!("migrations/postgres/0005_ai_usage.sql"),
                    ),
                    migration(
                        6,
                        "second_factors",
                        include_str!("migrations/postgres/0006_second_factors.sql"),
                    ),
                    migration(
                        7,
                        "passkeys",
                        include_str!("migrations/postgres/0007_passkeys.sql"),
                    ),
                    migration(
                        8,
                        "console",
                        include_str!("migrations/postgres/0008_console.sql"),
                    ),
                    migration(
                        9,
                        "shared_counters",
                        include_str!("migrations/postgres/0009_shared_counters.sql"),
                    ),
                    migration(
                        10,
                        "agents",
                        include_str!("migrations/postgres/0010_agents.sql"),
                    ),
                ])
                .run(pool)
                .await?
            }
        }
        Ok(())
    }

    /// A trivial round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        // Not `on_pool!`: closing needs no answering database.
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}
