//! Writing ledger rows with group commit: calls that finish together share one
//! transaction, and each still waits for its row to be committed (a response ends only
//! once its call is on record).

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError, UsageRow};

/// Most rows in one transaction.
const BATCH: usize = 256;

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
                let outcome = store
                    .insert_ai_usage(&rows)
                    .await
                    .map_err(|e: StoreError| e.to_string());
                for (_, done) in jobs.drain(..) {
                    let _ = done.send(outcome.clone());
                }
            }
        });
        Ledger { tx }
    }

    /// Records one row; returns once it is committed (or failed).
    pub async fn write(&self, row: UsageRow) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((row, done))
            .await
            .map_err(|_| "the ledger writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the ledger writer stopped".to_string())?
    }
}
