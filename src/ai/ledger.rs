//! Writing ledger rows with group commit: calls that finish together share one
//! transaction, and each waits until its row is on record (a response ends only once its
//! call is recorded).
//!
//! On record means committed, or, while the database cannot take rows, appended to the
//! spill file and fsynced (`spill.rs`). Spilled rows form a backlog that is sent again, in
//! order, every [`RETRY`] until it commits; rows arriving meanwhile join the backlog
//! behind it, so the ledger keeps the order calls ended in. The backlog is committed
//! idempotently (by call id) and the file emptied after; a node that dies with a backlog
//! replays its file at the next start.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::spill::{Spill, SpillError};
use crate::store::{Store, UsageRow, health};

/// Most rows in one transaction.
const BATCH: usize = 256;
/// Longest a response waits for its row.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the backlog is tried again while the database cannot take it.
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

type Job = (UsageRow, oneshot::Sender<Result<(), String>>);

pub struct Ledger {
    tx: mpsc::Sender<Job>,
    spill: Arc<Spill>,
}

impl Ledger {
    /// Opens the spill file in `dir` (its rows become the backlog) and starts the writer
    /// task (it ends when the `Ledger` is dropped and the backlog is written).
    pub fn new(store: Store, dir: &Path) -> Result<Ledger, SpillError> {
        let spill = Arc::new(Spill::open(dir)?);
        let backlog: VecDeque<UsageRow> = spill.read_all()?.into();
        if !backlog.is_empty() {
            tracing::warn!(
                rows = backlog.len(),
                file = %spill.path().display(),
                "AI usage ledger rows spilled by an earlier run are being written"
            );
            metrics::counter!("tollgate_ai_ledger_replayed_rows_total")
                .increment(backlog.len() as u64);
        }
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(
            Writer {
                store,
                spill: spill.clone(),
                backlog,
            }
            .run(rx),
        );
        Ok(Ledger { tx, spill })
    }

    /// Whether a new call may start: its row will have room in the spill file.
    pub fn accepting(&self) -> bool {
        self.spill.accepting()
    }

    /// Records one row; returns once it is committed or spilled, failed, or took longer
    /// than [`WAIT`].
    pub async fn write(&self, row: UsageRow) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let queued = async {
            self.tx
                .send((row, done))
                .await
                .map_err(|_| "the ledger writer stopped".to_string())?;
            wait.await
                .map_err(|_| "the ledger writer stopped".to_string())?
        };
        tokio::time::timeout(WAIT, queued)
            .await
            .map_err(|_| format!("the ledger did not record the row within {WAIT:?}"))?
    }
}

struct Writer {
    store: Store,
    spill: Arc<Spill>,
    /// Spilled rows not yet committed, oldest first.
    backlog: VecDeque<UsageRow>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
        loop {
            let open = if self.backlog.is_empty() {
                rx.recv_many(&mut jobs, BATCH).await > 0
            } else {
                match tokio::time::timeout(RETRY, rx.recv_many(&mut jobs, BATCH)).await {
                    Ok(n) => n > 0,
                    Err(_) => true,
                }
            };
            if !jobs.is_empty() {
                self.take(std::mem::take(&mut jobs)).await;
            }
            if !self.backlog.is_empty() {
                self.drain_backlog().await;
            }
            metrics::gauge!("tollgate_ai_ledger_backlog_rows").set(self.backlog.len() as f64);
            if !open {
                if self.backlog.is_empty() {
                    return;
                }
                // Shutting down with a backlog the database cannot take yet: wait
                // between tries instead of spinning on the closed channel.
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// New rows: committed at once when nothing waits ahead of them and the database
    /// answers; otherwise spilled behind the backlog.
    async fn take(&mut self, mut jobs: Vec<Job>) {
        let rows: Vec<UsageRow> = jobs.iter().map(|(r, _)| r.clone()).collect();
        if self.backlog.is_empty() && !health::is_down() {
            match self.store.insert_ai_usage(&rows).await {
                Ok(()) => {
                    for (_, done) in jobs {
                        let _ = done.send(Ok(()));
                    }
                    return;
                }
                Err(e) if !health::is_outage(&e) => {
                    // One bad row must not cost the others theirs: one by one, and
                    // those the database cannot take now join the backlog.
                    let mut left = Vec::new();
                    for (row, done) in jobs {
                        match self.store.insert_ai_usage(std::slice::from_ref(&row)).await {
                            Ok(()) => {
                                let _ = done.send(Ok(()));
                            }
                            Err(e) if health::is_outage(&e) => left.push((row, done)),
                            Err(e) => {
                                let _ = done.send(Err(e.to_string()));
                            }
                        }
                    }
                    jobs = left;
                    if jobs.is_empty() {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        let rows: Vec<UsageRow> = jobs.iter().map(|(r, _)| r.clone()).collect();
        let spill = self.spill.clone();
        let spilled = {
            let rows = rows.clone();
            tokio::task::spawn_blocking(move || spill.append(&rows))
                .await
                .unwrap_or_else(|e| Err(SpillError::Io("writer".into(), std::io::Error::other(e))))
        };
        match spilled {
            Ok(()) => {
                if self.backlog.is_empty() {
                    tracing::warn!(
                        rows = rows.len(),
                        "the database cannot take AI usage rows; they are kept in the spill file until it can"
                    );
                }
                metrics::counter!("tollgate_ai_ledger_spilled_rows_total")
                    .increment(rows.len() as u64);
                self.backlog.extend(rows);
                for (_, done) in jobs {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = rows.len(), "AI usage rows could not be kept");
                for (_, done) in jobs {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }

    /// Sends the backlog, oldest first, until it is committed or the database stops
    /// answering; once all of it is committed, the spill file is emptied.
    async fn drain_backlog(&mut self) {
        if health::is_down() {
            return;
        }
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(BATCH);
            let batch: Vec<UsageRow> = self.backlog.iter().take(n).cloned().collect();
            match self.store.insert_ai_usage(&batch).await {
                Ok(()) => {}
                Err(e) if health::is_outage(&e) => return,
                Err(e) => {
                    // A row the database refuses for itself is logged and dropped, or
                    // it would hold every row behind it for ever.
                    for row in &batch {
                        if let Err(e) = self.store.insert_ai_usage(std::slice::from_ref(row)).await
                        {
                            if health::is_outage(&e) {
                                return;
                            }
                            tracing::error!(error = %e, id = %row.id, "a spilled AI usage row was refused; dropped");
                        }
                    }
                    tracing::warn!(error = %e, "a spilled batch was written row by row");
                }
            }
            self.backlog.drain(..n);
        }
        if let Err(e) = self.spill.clear() {
            tracing::error!(error = %e, "could not empty the ledger spill file (its rows are committed and will be skipped when replayed)");
        } else {
            tracing::info!("AI usage rows kept during the outage are written");
        }
    }
}
