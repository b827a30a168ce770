//! The Python libraries the interoperability tests run (PyJWT, the OpenAI and Anthropic
//! SDKs), in a virtual environment at `tests/interop/.venv` made from the pinned
//! `tests/interop/requirements.txt`. `scripts/test` makes it; a test that finds it missing
//! or stale makes it once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// The virtual environment's interpreter, the pinned packages installed.
pub fn python() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = interop_dir();
            let venv = dir.join(".venv");
            let python = venv.join("bin/python");
            let wanted = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
            let stamp = venv.join("requirements.installed");
            if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
                return python;
            }
            let run = |cmd: &mut Command| {
                let status = cmd.status().expect("python3 (with venv) is needed");
                assert!(status.success(), "{cmd:?} failed");
            };
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(dir.join("requirements.txt")));
            std::fs::write(&stamp, wanted).unwrap();
            python
        })
        .clone()
}

/// Runs `script` (in `tests/interop`) with `env`; returns its stdout parsed as JSON, or
/// panics with everything it printed.
pub fn run_json(program: &Path, script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(program)
        .arg(script)
        .current_dir(interop_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} {script}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script}: {e}: {stdout}"))
}
