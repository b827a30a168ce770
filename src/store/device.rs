//! Device authorizations (RFC 8628): started by a device, approved or denied by a person
//! on the `/ui/device` page, redeemed by the device's polling. Each step is one
//! conditional write, so a code is approved once, redeemed once, and a poll that comes
//! too soon is counted against the device.

use sqlx::Row;

use super::Entry;
use super::audit::append_audit;
use super::sessions::insert_session;
use super::{BeginWrite, NewSession, Store, StoreResult, on_pool};

pub struct NewDeviceAuthorization<'a> {
    pub device_code_hash: &'a str,
    pub user_code_hash: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub resource: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
    pub interval_secs: i64,
}

/// A device authorization as stored.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub client_id: String,
    pub scope: String,
    pub resource: Option<String>,
    pub expires_at: i64,
    pub interval_secs: i64,
    /// `pending`, `approved`, `denied` or `used`.
    pub status: String,
    pub user_id: Option<String>,
    pub browser_session: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Option<String>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Polled {
    Unknown,
    /// Sooner than the interval: the interval has grown by 5 s (RFC 8628 §3.5).
    TooSoon,
    Found(DeviceRecord),
}

/// The person's answer on the page.
pub struct DeviceDecision<'a> {
    pub approve: bool,
    pub user_id: &'a str,
    pub browser_session: &'a str,
    pub auth_time: i64,
    pub amr: &'a str,
    pub now: i64,
}

const COLUMNS: &str = "client_id, scope, resource, expires_at, interval_secs, status, user_id, \
     browser_session, auth_time, amr, last_polled_at";

macro_rules! device_from_row {
    ($row:expr) => {
        DeviceRecord {
            client_id: $row.try_get("client_id")?,
            scope: $row.try_get("scope")?,
            resource: $row.try_get("resource")?,
            expires_at: $row.try_get("expires_at")?,
            interval_secs: $row.try_get("interval_secs")?,
            status: $row.try_get("status")?,
            user_id: $row.try_get("user_id")?,
            browser_session: $row.try_get("browser_session")?,
            auth_time: $row.try_get("auth_time")?,
            amr: $row.try_get("amr")?,
        }
    };
}

impl Store {
    /// Stores a new device authorization; `false` when the user code is taken (the
    /// caller draws another).
    pub async fn insert_device_authorization(
        &self,
        d: &NewDeviceAuthorization<'_>,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // An expired authorization gives its user code back.
            sqlx::query(
                "DELETE FROM device_authorizations WHERE user_code_hash = $1 AND expires_at <= $2",
            )
            .bind(d.user_code_hash)
            .bind(d.now)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope,
                     resource, created_at, expires_at, interval_secs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING",
            )
            .bind(d.device_code_hash)
            .bind(d.user_code_hash)
            .bind(d.client_id)
            .bind(d.scope)
            .bind(d.resource)
            .bind(d.now)
            .bind(d.expires_at)
            .bind(d.interval_secs)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// The pending, unexpired authorization a user code names.
    pub async fn pending_device(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<DeviceRecord>> {
        on_pool!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM device_authorizations
                 WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2"
            ));
            let row = sqlx::query(sql)
                .bind(user_code_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(device_from_row!(row))),
                None => Ok(None),
            }
        })
    }

    /// Approves or denies a pending, unexpired authorization; `false` when it no longer
    /// is one (answered already, expired, unknown).
    pub async fn decide_device(
        &self,
        user_code_hash: &str,
        d: &DeviceDecision<'_>,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let decided = sqlx::query(
                "UPDATE device_authorizations
                 SET status = $1, user_id = $2, browser_session = $3, auth_time = $4, amr = $5
                 WHERE user_code_hash = $6 AND status = 'pending' AND expires_at > $7",
            )
            .bind(if d.approve { "approved" } else { "denied" })
            .bind(d.user_id)
            .bind(d.browser_session)
            .bind(d.auth_time)
            .bind(d.amr)
            .bind(user_code_hash)
            .bind(d.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !decided {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A poll by the device: records it and, when it comes sooner than the interval
    /// since the last one, slows the device down instead of answering.
    pub async fn poll_device(&self, device_code_hash: &str, now: i64) -> StoreResult<Polled> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM device_authorizations WHERE device_code_hash = $1"
            ));
            let Some(row) = sqlx::query(sql)
                .bind(device_code_hash)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(Polled::Unknown);
            };
            let record = device_from_row!(row);
            let last: Option<i64> = row.try_get("last_polled_at")?;
            let too_soon = last.is_some_and(|t| now - t < record.interval_secs);
            sqlx::query(
                "UPDATE device_authorizations
                 SET last_polled_at = $1, interval_secs = interval_secs + $2
                 WHERE device_code_hash = $3",
            )
            .bind(now)
            .bind(if too_soon { 5_i64 } else { 0 })
            .bind(device_code_hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(if too_soon {
                Polled::TooSoon
            } else {
                Polled::Found(record)
            })
        })
    }

    /// Spends an approved authorization and creates its session, atomically; `false`
    /// when another poll spent it first, or the user or sign-in session is gone.
    pub async fn redeem_device(
        &self,
        device_code_hash: &str,
        session: &NewSession<'_>,
        audit: &Entry,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let won = sqlx::query(
                "UPDATE device_authorizations SET status = 'used', session_id = $1
                 WHERE device_code_hash = $2 AND status = 'approved' AND expires_at > $3",
            )
            .bind(session.id)
            .bind(device_code_hash)
            .bind(session.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won || !insert_session!(tx, session) {
                return Ok(false);
            }
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Forgets device authorizations an hour past their expiry.
    pub async fn prune_devices(&self, now: i64) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM device_authorizations WHERE expires_at < $1")
                .bind(now - 3600)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
