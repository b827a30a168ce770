//! Where a test server lives: a private directory and a throw-away SQLite file or
//! PostgreSQL database, removed on drop.

use std::net::TcpListener;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suite creates its databases in.
pub fn postgres_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private directory and database for one server (or CLI run), removed on drop.
pub struct Sandbox {
    pub dir: PathBuf,
    pub database_url: String,
    pub(crate) pg_database: Option<String>,
}

impl Sandbox {
    pub async fn new(backend: Backend) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/data/tollgate.db", dir.display()), None),
            Backend::Postgres => {
                let name = format!("tg_{}", uuid::Uuid::new_v4().simple());
                admin_sql(&format!("CREATE DATABASE {name}")).await;
                let base = postgres_admin_url();
                let server = base
                    .rsplit_once('/')
                    .map(|(s, _)| s)
                    .unwrap_or(&base)
                    .to_string();
                (format!("{server}/{name}"), Some(name))
            }
        };
        Sandbox {
            dir,
            database_url,
            pg_database,
        }
    }

    /// The database URL, with the SQLite file's folder created (the server does that itself).
    pub fn database_url_for_store(&self) -> String {
        std::fs::create_dir_all(self.dir.join("data")).unwrap();
        self.database_url.clone()
    }

    /// PostgreSQL only: makes SERIALIZABLE the database's default isolation, as a strict
    /// operator might; Tollgate must not depend on the server default.
    pub async fn make_serializable_the_default(&self) {
        let name = self.pg_database.as_ref().expect("PostgreSQL sandbox");
        admin_sql(&format!(
            "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
        ))
        .await;
    }

    /// A scalar from the server's database, read directly (for checking stored state).
    pub async fn query_string(&self, sql: &'static str) -> Option<String> {
        self.query_strings(sql).await.into_iter().next()
    }

    /// Every row's first column.
    pub async fn query_strings(&self, sql: &'static str) -> Vec<String> {
        with_test_pool!(self, |pool| {
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            rows.iter()
                .map(|r| sqlx::Row::try_get(r, 0).unwrap())
                .collect()
        })
    }

    pub async fn query_i64(&self, sql: &'static str) -> i64 {
        with_test_pool!(self, |pool| {
            let row = sqlx::query(sql).fetch_one(&pool).await.unwrap();
            sqlx::Row::try_get(&row, 0).unwrap()
        })
    }

    /// Runs a statement directly against the server's database (another process's write).
    pub async fn execute(&self, sql: &'static str) {
        with_test_pool!(self, |pool| {
            sqlx::query(sql).execute(&pool).await.unwrap();
        })
    }
}

/// Opens a short-lived pool on the sandbox's database and runs `$body` with it, once per
/// backend type.
macro_rules! with_test_pool {
    ($sandbox:expr, |$pool:ident| $body:expr) => {{
        if $sandbox.pg_database.is_some() {
            let $pool = sqlx::PgPool::connect(&$sandbox.database_url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::SqlitePool::connect(&$sandbox.database_url)
                .await
                .unwrap();
            let out = $body;
            $pool.close().await;
            out
        }
    }};
}
use with_test_pool;

async fn admin_sql(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL must be running for the test suite (see README)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_database.take() {
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(admin_sql(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            })
            .join();
        }
    }
}
