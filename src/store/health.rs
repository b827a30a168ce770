//! Whether the database answers, so that requests fail fast while it does not.
//!
//! Without this, every request that needs the database during an outage waits the pool's
//! whole acquire timeout (10 s) before its 503. A probe on a connection of its own (not
//! the pool's, which a burst of requests may exhaust) asks PostgreSQL `SELECT 1` every
//! second; connections that break under requests count as well. A request caught by the
//! outage waits at most the pool's acquire timeout (2 s). While the database is down, store calls refuse at once with
//! [`StoreError::Unavailable`] (503 `unavailable`, `Retry-After: 1`) and the probe asks
//! every half second, so service resumes by itself within a second of the database's
//! return. The loss and the return are logged once each. There is one database per
//! process, so the state is process-wide. SQLite (a file, no server) is never probed and
//! never marked down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::{StoreError, StoreResult};

static DOWN: AtomicBool = AtomicBool::new(false);
/// Only a probed database is ever marked down: nothing else would mark it up again.
static PROBED: AtomicBool = AtomicBool::new(false);

const PROBE_WHILE_UP: Duration = Duration::from_secs(1);
const PROBE_WHILE_DOWN: Duration = Duration::from_millis(500);
/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database is known to be unreachable right now.
pub fn is_down() -> bool {
    DOWN.load(Ordering::Acquire)
}

/// Refuses at once while the database is down (every store call on PostgreSQL asks).
pub(crate) fn check() -> StoreResult<()> {
    if is_down() {
        Err(StoreError::Unavailable)
    } else {
        Ok(())
    }
}

/// Whether `e` means the database could not be reached (as opposed to refusing the
/// statement): worth waiting for and trying again.
pub fn is_outage(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable | StoreError::Unreachable(_) => true,
        StoreError::Database(e) => lost_connection(e),
        _ => false,
    }
}

fn lost_connection(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

/// Called with every database error: a connection that broke marks the database down
/// (a pool timeout does not: it may be overload, and the probe tells the two apart).
pub(crate) fn observe(e: &sqlx::Error) {
    if PROBED.load(Ordering::Acquire)
        && matches!(
            e,
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
        )
    {
        mark_down(e);
    }
}

fn mark_down(why: &dyn std::fmt::Display) {
    if !DOWN.swap(true, Ordering::AcqRel) {
        tracing::warn!(error = %why, "database unreachable; requests that need it answer 503 until it is back");
    }
}

fn mark_up() {
    if DOWN.swap(false, Ordering::AcqRel) {
        tracing::info!("database reachable again");
    }
}

/// Starts the probe for a PostgreSQL database (for as long as the process runs).
pub fn spawn_probe(options: PgConnectOptions) {
    PROBED.store(true, Ordering::Release);
    tokio::spawn(async move {
        let mut conn: Option<PgConnection> = None;
        loop {
            match tokio::time::timeout(PROBE_TIMEOUT, probe(&options, &mut conn)).await {
                Ok(Ok(())) => mark_up(),
                Ok(Err(e)) => {
                    conn = None;
                    mark_down(&e);
                }
                Err(_) => {
                    conn = None;
                    mark_down(&"no answer to the health probe within 2 s");
                }
            }
            tokio::time::sleep(if is_down() {
                PROBE_WHILE_DOWN
            } else {
                PROBE_WHILE_UP
            })
            .await;
        }
    });
}

async fn probe(options: &PgConnectOptions, conn: &mut Option<PgConnection>) -> sqlx::Result<()> {
    if conn.is_none() {
        *conn = Some(PgConnection::connect_with(options).await?);
    }
    let c = conn.as_mut().expect("connected above");
    sqlx::query("SELECT 1").execute(&mut *c).await?;
    Ok(())
}
