//! Writing ledger rows with group commit: calls that finish together share one
//! transaction, and each still waits for its row to be committed (a response ends only
//! once its call is on record). While the database cannot be reached, the batch is kept
//! and sent again, in order, until it commits (rows are idempotent by call id), so a
//! database outage delays rows instead of dropping them. What waits meanwhile lives in
//! this process's memory (the channel and one batch).

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError, UsageRow, health};

/// Most rows in one transaction.
const BATCH: usize = 256;
/// Longest a response waits for its row.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a batch is tried again while the database is unreachable.
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

type Job = (UsageRow, oneshot::Sender<Result<(), String>>);

pub struct Ledger {
    tx: mpsc::Sender<Job>,
}

impl Ledger {
    /// Starts the writer task (it ends when the `Ledger` is dropped).
    pub fn new(store: Store) -> Ledger {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut jobs, BATCH).await > 0 {
                let rows: Vec<UsageRow> = jobs.iter().map(|(r, _)| r.clone()).collect();
                if insert(&store, &rows).await.is_ok() {
                    for (_, done) in jobs.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                // One bad row must not cost the others theirs: write them one by one.
                for (row, done) in jobs.drain(..) {
                    let outcome = insert(&store, std::slice::from_ref(&row))
                        .await
                        .map_err(|e: StoreError| e.to_string());
                    let _ = done.send(outcome);
                }
            }
        });
        Ledger { tx }
    }

    /// Records one row; returns once it is committed, failed, or took longer than
    /// [`WAIT`] (the row is still written when the database comes back; the response
    /// does not wait for it).
    pub async fn write(&self, row: UsageRow) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let queued = async {
            self.tx
                .send((row, done))
                .await
                .map_err(|_| "the ledger writer stopped".to_string())?;
            // A database known to be down would hold the response for the whole wait:
            // the row is queued and will be written when it is back.
            if health::is_down() {
                return Err(
                    "the database is down; the row is kept and written when it is back".to_string(),
                );
            }
            wait.await
                .map_err(|_| "the ledger writer stopped".to_string())?
        };
        tokio::time::timeout(WAIT, queued)
            .await
            .map_err(|_| format!("the ledger did not commit within {WAIT:?}"))?
    }
}

/// Inserts `rows`, waiting out a database that cannot be reached: only an error of the
/// statement itself (a bad row) comes back.
async fn insert(store: &Store, rows: &[UsageRow]) -> Result<(), StoreError> {
    let mut waiting = false;
    loop {
        match store.insert_ai_usage(rows).await {
            Err(e) if health::is_outage(&e) => {
                if !waiting {
                    tracing::warn!(rows = rows.len(), error = %e, "AI usage ledger rows wait for the database");
                    waiting = true;
                }
                tokio::time::sleep(RETRY).await;
            }
            done => {
                if waiting && done.is_ok() {
                    tracing::info!(
                        rows = rows.len(),
                        "AI usage ledger rows written after the wait"
                    );
                }
                return done;
            }
        }
    }
}
