//! The ledger's spill file: usage rows the database cannot take yet, appended as JSON
//! lines and fsynced under the data dir (`ai-ledger-spill.jsonl`), so a node that dies
//! during a database outage still writes them: the ledger replays the file at start and
//! empties it once everything in it is committed (rows are idempotent by call id, so a
//! row committed just before a crash is not counted twice).
//!
//! Nodes may share a data dir (a shared volume for the keys): each process locks the file
//! it spills to (`flock`) for its lifetime, and a second process takes the next free
//! slot, `ai-ledger-spill.1.jsonl` and so on, so no node ever empties rows another node
//! has not written yet. A node that died leaves its slot unlocked with its rows in it;
//! the next process to start claims the lowest free slot, so a restarted node writes
//! them.
//!
//! The file is bounded ([`MAX_BYTES`]). Before it fills, [`Spill::accepting`] turns false
//! and the AI proxy refuses new calls (503 `ledger_unavailable`): a call the provider
//! answered but the ledger could not keep would be a bill nobody sees. The margin leaves
//! room for the rows of calls already under way.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::UsageRow;

pub const FILE_NAME: &str = "ai-ledger-spill.jsonl";
/// How many processes may spill under one data dir.
const SLOTS: usize = 64;

/// The file name of slot `i` (slot 0 is [`FILE_NAME`]).
pub fn slot_name(i: usize) -> String {
    match i {
        0 => FILE_NAME.to_string(),
        i => format!("ai-ledger-spill.{i}.jsonl"),
    }
}
/// The most the file may hold (about 200,000 rows).
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// New calls are refused past `MAX_BYTES - MARGIN`, leaving room for calls under way.
const MARGIN: u64 = 4 * 1024 * 1024;

pub struct Spill {
    path: PathBuf,
    file: Mutex<File>,
    bytes: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the ledger spill file is full ({MAX_BYTES} bytes)")]
    Full,
    #[error("ledger spill file {0}: {1}")]
    Io(String, std::io::Error),
}

/// Opens (or creates) one spill file, owner-only, refusing anything but a regular file.
fn open_file(path: &Path) -> Result<File, SpillError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| SpillError::Io(path.display().to_string(), e);
    // Appended to and later emptied: a symlink planted here would aim both at another
    // file.
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.file_type().is_file()
    {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        // Who called what, for how much: for the service's eyes only.
        .mode(0o600)
        .open(path)
        .map_err(io)
}

impl Spill {
    /// Opens (or creates) and locks the first slot in `dir` no other process holds.
    pub fn open(dir: &Path) -> Result<Spill, SpillError> {
        for slot in 0..SLOTS {
            let path = dir.join(slot_name(slot));
            let file = open_file(&path)?;
            match file.try_lock() {
                Ok(()) => {
                    let bytes = file
                        .metadata()
                        .map_err(|e| SpillError::Io(path.display().to_string(), e))?
                        .len();
                    return Ok(Spill {
                        path,
                        file: Mutex::new(file),
                        bytes: AtomicU64::new(bytes),
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(SpillError::Io(path.display().to_string(), e));
                }
            }
        }
        Err(SpillError::Io(
            dir.display().to_string(),
            std::io::Error::other(format!(
                "all {SLOTS} ledger spill files are held by other processes"
            )),
        ))
    }

    /// The file this process spills to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether new calls may start (their rows would still fit).
    pub fn accepting(&self) -> bool {
        self.bytes.load(Ordering::Acquire) < MAX_BYTES - MARGIN
    }

    /// Every row in the file, in order. A last line cut short by a crash mid-write is
    /// skipped (its call's response had not been acknowledged as recorded).
    pub fn read_all(&self) -> Result<Vec<UsageRow>, SpillError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let mut rows = Vec::new();
        // Bytes, not text: a damaged line (even one that is not UTF-8) is skipped, not
        // a reason to stop the start.
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| self.io(e))?;
            match serde_json::from_slice::<UsageRow>(&line) {
                Ok(row) => rows.push(row),
                Err(e) if !line.trim_ascii().is_empty() => {
                    tracing::warn!(error = %e, file = %self.path.display(), "unreadable line in the ledger spill file skipped");
                }
                Err(_) => {}
            }
        }
        Ok(rows)
    }

    /// Appends `rows` and waits until they are on disk.
    pub fn append(&self, rows: &[UsageRow]) -> Result<(), SpillError> {
        let mut text = String::new();
        for row in rows {
            text.push_str(&serde_json::to_string(row).expect("rows serialise"));
            text.push('\n');
        }
        let size = text.len() as u64;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if self.bytes.load(Ordering::Acquire) + size > MAX_BYTES {
            return Err(SpillError::Full);
        }
        file.write_all(text.as_bytes()).map_err(|e| self.io(e))?;
        file.sync_data().map_err(|e| self.io(e))?;
        self.bytes.fetch_add(size, Ordering::AcqRel);
        Ok(())
    }

    /// Empties the file: everything in it is committed.
    pub fn clear(&self) -> Result<(), SpillError> {
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.set_len(0).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        self.bytes.store(0, Ordering::Release);
        Ok(())
    }

    fn io(&self, e: std::io::Error) -> SpillError {
        SpillError::Io(self.path.display().to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn row(id: &str) -> UsageRow {
        UsageRow {
            id: id.into(),
            principal: "u".into(),
            api_key_id: None,
            client_id: None,
            provider: "openai".into(),
            model: "m".into(),
            endpoint: "chat/completions".into(),
            input_tokens: 1,
            output_tokens: 2,
            cost_pico: 3,
            latency_ms: 4,
            status: 200,
            outcome: "completed".into(),
            streamed: false,
            created_at: 5,
            day: "2026-12-03".into(),
        }
    }

    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tollgate-spill-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rows_survive_reopening_and_a_torn_last_line_is_skipped() {
        let dir = scratch_dir();
        let spill = Spill::open(&dir).unwrap();
        spill.append(&[row("a"), row("b")]).unwrap();
        spill.append(&[row("c")]).unwrap();
        drop(spill);
        // A crash in the middle of a write.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap()
            .write_all(b"\xff\xfe not UTF-8\n{\"id\":\"d\",\"princ")
            .unwrap();
        let spill = Spill::open(&dir).unwrap();
        let ids: Vec<String> = spill
            .read_all()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(spill.accepting());
        spill.clear().unwrap();
        assert!(spill.read_all().unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).ok();
    }

    /// Two processes under one data dir (two opens lock like two processes): the second
    /// spills to its own slot, emptying it leaves the first's rows alone, and once the
    /// first is gone its slot (and its rows) go to the next to open.
    #[test]
    fn nodes_sharing_a_data_dir_spill_to_their_own_files() {
        let dir = scratch_dir();
        let first = Spill::open(&dir).unwrap();
        let second = Spill::open(&dir).unwrap();
        assert_eq!(first.path(), dir.join(FILE_NAME));
        assert_eq!(second.path(), dir.join("ai-ledger-spill.1.jsonl"));
        first.append(&[row("a")]).unwrap();
        second.append(&[row("b")]).unwrap();
        second.clear().unwrap();
        drop(first);
        let third = Spill::open(&dir).unwrap();
        assert_eq!(third.path(), dir.join(FILE_NAME));
        let ids: Vec<String> = third
            .read_all()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_symlink_in_its_place_is_refused() {
        let dir = scratch_dir();
        std::fs::write(dir.join("victim"), "keep me").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join(FILE_NAME)).unwrap();
        assert!(Spill::open(&dir).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.join("victim")).unwrap(),
            "keep me"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_nearly_full_file_stops_new_calls_before_it_refuses_rows() {
        let dir = scratch_dir();
        let spill = Spill::open(&dir).unwrap();
        spill.bytes.store(MAX_BYTES - MARGIN, Ordering::Release);
        assert!(!spill.accepting());
        // Calls already under way still get their rows kept...
        spill.append(&[row("late")]).unwrap();
        // ...until the file is truly full.
        spill.bytes.store(MAX_BYTES, Ordering::Release);
        assert!(matches!(spill.append(&[row("x")]), Err(SpillError::Full)));
        std::fs::remove_dir_all(dir).ok();
    }
}
