//! Writing ledger rows with group commit: calls that finish together share one
//! transaction, and each still waits for its row to be committed (a response ends only
//! once its call is on record).

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError, UsageRow};

/// Most rows in one transaction.
const BATCH: usize = 256;
/// Longest a response waits for its row.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

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
                if store.insert_ai_usage(&rows).await.is_ok() {
                    for (_, done) in jobs.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                // One bad row must not cost the others theirs: write them one by one.
                for (row, done) in jobs.drain(..) {
                    let outcome = store
                        .insert_ai_usage(std::slice::from_ref(&row))
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
            wait.await
                .map_err(|_| "the ledger writer stopped".to_string())?
        };
        tokio::time::timeout(WAIT, queued)
            .await
            .map_err(|_| format!("the ledger did not commit within {WAIT:?}"))?
    }
}
