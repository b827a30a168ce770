//! The README's first session, run as a new user would: its `sh` blocks marked
//! `<!-- first session -->`, verbatim, in one bash in a fresh empty directory, with the
//! built `tollgate` on the PATH (as `cargo install --path .` puts it). Only the port
//! differs (8080 may be taken while the suite runs): the server is told it through
//! `TOLLGATE_LISTEN`, and the README's URLs are rewritten to it.

use std::process::{Command, Stdio};

use serde_json::Value;

const MARK: &str = "<!-- first session -->";

/// The marked blocks of `readme`, in order.
fn session_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "{MARK} precedes a sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

#[test]
fn the_readme_first_session_works_verbatim() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = session_blocks(&readme);
    assert_eq!(blocks.len(), 2, "the session and the administration blocks");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = blocks
        .join("\n")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let dir = std::env::temp_dir().join(format!("tollgate-readme-{}", uuid::Uuid::new_v4()));
    let bin = dir.join("bin");
    let work = dir.join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tollgate"), bin.join("tollgate")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `set -e`: any failing command fails the session; the server (job %1) is stopped at
    // the end whatever happened.
    let wrapped = format!("set -euo pipefail\ntrap 'kill %1 2>/dev/null || true' EXIT\n{script}\n");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&wrapped)
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &dir)
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README's first session failed:\n{wrapped}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // What each step printed: the account, who it is, the users, the key (once), the
    // rotated key.
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .collect();
    let said = |pred: &dyn Fn(&Value) -> bool| lines.iter().any(pred);
    assert!(
        said(&|v| v["email"] == "ada@example.com" && v["session_id"].is_string()),
        "/auth/me answered for ada:\n{stdout}"
    );
    assert!(said(&|v| v["email"] == "ops@example.com"), "{stdout}");
    assert!(stdout.contains("tg_"), "the API key was printed:\n{stdout}");
    assert!(said(&|v| v["kid"].is_string()), "{stdout}");
    assert!(work.join("tollgate-data/tollgate.db").is_file());
    std::fs::remove_dir_all(dir).ok();
}
