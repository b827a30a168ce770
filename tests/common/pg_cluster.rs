//! A PostgreSQL cluster of the test's own, on a free port, that the test may stop and
//! start (the shared server on 5432 serves every other test). Made with Debian's
//! `pg_createcluster` (it runs `initdb` as the `postgres` user), trust authentication,
//! removed on drop.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;

pub struct PgCluster {
    version: String,
    name: String,
    pub port: u16,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgCluster {
    pub fn create() -> PgCluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server packages (/usr/lib/postgresql)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .expect("a PostgreSQL version");
        let port = free_port();
        let cluster = PgCluster {
            version,
            name: format!("tgfault{port}"),
            port,
        };
        run(Command::new("pg_createcluster")
            .args(["--port", &port.to_string(), "--start-conf", "manual"])
            .args([&cluster.version, &cluster.name])
            .args(["--", "--auth=trust"]));
        cluster.start();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str, extra: &[&str]) {
        run(Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                &self.name,
                action,
            ])
            .args(extra));
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.ctl("start", &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One number read from the cluster's database (for checking what was written).
    pub async fn query_i64(&self, sql: &'static str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.url()).await.unwrap();
        let n = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    /// Stops the server the quick way: open connections are cut.
    pub fn stop(&self) {
        self.ctl("stop", &["-m", "fast"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}
