//! A Redis of the test's own, on a free port, that the test may kill and start again
//! (the shared one on 6379 serves every other test).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Where it keeps its append-only file, when it keeps one.
    persistent: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            persistent: None,
        };
        r.restart();
        r
    }

    /// One that writes every command to an append-only file (fsynced each time) and
    /// reads it back when restarted, as a production Redis with `appendonly yes` does:
    /// after a crash it comes back with its data.
    pub fn start_persistent() -> RedisServer {
        let dir = std::env::temp_dir().join(format!("tollgate-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            persistent: Some(dir),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()]);
        match &self.persistent {
            None => cmd.args(["--save", "", "--appendonly", "no"]),
            Some(dir) => cmd
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(dir),
        };
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed for the fault tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: connections die without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.persistent {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
