//! Webhook endpoints, their delivery log and the lease that makes one process their
//! deliverer: [`WebhookStorage`], implemented on SQLite here (one migration step,
//! [`MIGRATION`]); a PostgreSQL backend implements the same trait and passes the same
//! conformance suite (`server/tests/webhooks.rs`). Design: docs/adr/0011-webhooks.md.
//!
//! An endpoint's `cursor` is the last feed position queued for it. A batch is queued
//! (a `pending` delivery holding its exact body, the cursor moved to its last position) in
//! one transaction, and only by the lease holder; it stays `pending` until a 2xx, so the
//! next batch is built only after it: deliveries are in feed order, each at least once,
//! with the same body and idempotency key (its last position) on every attempt.

use rusqlite::{OptionalExtension, params};
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};

/// The migration step of the webhook tables (self-contained: it may be renumbered).
pub(crate) const MIGRATION: &str = r#"
    -- Departments' systems that get their view's changes pushed. `cursor`: the last
    -- feed position queued. The lease: which process delivers, until when.
    CREATE TABLE webhooks (
        id             TEXT PRIMARY KEY,
        department     TEXT NOT NULL,
        url            TEXT NOT NULL,
        secret         TEXT NOT NULL,
        created_ms     INTEGER NOT NULL,
        cursor         INTEGER NOT NULL DEFAULT 0,
        lease_holder   TEXT,
        lease_until_ms INTEGER NOT NULL DEFAULT 0
    );
    -- Every batch queued for an endpoint, with its body as sent (redelivery sends the same
    -- bytes). status: pending until a 2xx, then delivered.
    CREATE TABLE webhook_deliveries (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook        TEXT NOT NULL,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL,
        records        INTEGER NOT NULL,
        body           TEXT NOT NULL,
        status         TEXT NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        created_ms     INTEGER NOT NULL,
        last_attempt_ms INTEGER,
        delivered_ms   INTEGER
    );
    CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, status, id);
"#;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Its id (`wh_...`).
    pub id: String,
    /// The department whose view it gets.
    pub department: String,
    /// Where batches are POSTed.
    pub url: String,
    /// The HMAC key (shown once at registration).
    pub secret: String,
    /// Registration time, ms since the epoch.
    pub created_ms: i64,
    /// The last feed position queued for it.
    pub cursor: u64,
}

/// One batch of changes for an endpoint and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    /// Its number (for `redeliver`).
    pub id: i64,
    /// The endpoint.
    pub webhook: String,
    /// Feed position of its first change.
    pub first_position: u64,
    /// Feed position of its last change: the idempotency key.
    pub last_position: u64,
    /// Changes in it.
    pub records: u32,
    /// `pending` (not yet acknowledged with a 2xx) or `delivered`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// What the last failed attempt met.
    pub last_error: Option<String>,
    /// When it was queued, ms since the epoch.
    pub created_ms: i64,
    /// When it was acknowledged.
    pub delivered_ms: Option<i64>,
    /// The body as sent.
    #[serde(skip)]
    pub body: String,
}

/// A batch to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Feed position of its first change.
    pub first_position: u64,
    /// Feed position of its last change; the endpoint's cursor moves here.
    pub last_position: u64,
    /// Changes in it.
    pub records: u32,
    /// The JSON body.
    pub body: String,
}

/// Storage of webhook endpoints, deliveries and delivery leases.
pub trait WebhookStorage: Send + Sync {
    /// Registers an endpoint (cursor 0: it gets the department's whole feed).
    fn add_webhook(&self, row: &WebhookRow) -> Result<(), StorageError>;
    /// Every endpoint, oldest first.
    fn webhooks(&self) -> Result<Vec<WebhookRow>, StorageError>;
    /// Removes an endpoint and its delivery log; false if there was none.
    fn remove_webhook(&self, id: &str) -> Result<bool, StorageError>;
    /// Takes or renews the delivery lease of endpoint `id` for `holder` until `until_ms`,
    /// when it is free, expired at `now_ms`, or `holder`'s already; false when another
    /// holder's lease is live (or there is no such endpoint).
    fn claim_webhook(
        &self,
        id: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Gives up every lease `holder` holds (a process stopping), so another process
    /// takes its endpoints at once instead of after the lease expires; the count freed.
    fn release_webhooks(&self, holder: &str) -> Result<usize, StorageError>;
    /// The oldest pending delivery of endpoint `id`.
    fn pending_delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StorageError>;
    /// Queues a batch and moves the endpoint's cursor to its last position, in one
    /// transaction, if `holder` still holds the lease at `now_ms` and no delivery is
    /// pending; false otherwise (nothing written).
    fn queue_delivery(
        &self,
        id: &str,
        holder: &str,
        batch: &NewDelivery,
        now_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Records one attempt: `Ok` (a 2xx: delivered) or the error met (still pending).
    fn record_attempt(
        &self,
        delivery: i64,
        outcome: Result<(), &str>,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    /// The newest `limit` deliveries of endpoint `id`, newest first.
    fn deliveries(&self, id: &str, limit: usize) -> Result<Vec<DeliveryRow>, StorageError>;
    /// Sends a delivered batch again (same body and key): back to pending; false if
    /// endpoint `id` has no such delivery.
    fn redeliver(&self, id: &str, delivery: i64) -> Result<bool, StorageError>;
}

const WEBHOOK_COLUMNS: &str = "id, department, url, secret, created_ms, cursor";
const DELIVERY_COLUMNS: &str = "id, webhook, first_position, last_position, records, status, attempts, last_error, created_ms, delivered_ms, body";

fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.get(0)?,
        department: r.get(1)?,
        url: r.get(2)?,
        secret: r.get(3)?,
        created_ms: r.get(4)?,
        cursor: r.get::<_, i64>(5)? as u64,
    })
}

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        webhook: r.get(1)?,
        first_position: r.get::<_, i64>(2)? as u64,
        last_position: r.get::<_, i64>(3)? as u64,
        records: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        created_ms: r.get(8)?,
        delivered_ms: r.get(9)?,
        body: r.get(10)?,
    })
}

impl WebhookStorage for SqliteStorage {
    fn add_webhook(&self, row: &WebhookRow) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                &format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    row.id,
                    row.department,
                    row.url,
                    row.secret,
                    row.created_ms,
                    row.cursor as i64
                ],
            )
            .map_err(err)?;
        Ok(())
    }

    fn webhooks(&self) -> Result<Vec<WebhookRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_ms, id"
            ))
            .map_err(err)?;
        stmt.query_map([], webhook_row)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn remove_webhook(&self, id: &str) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM webhook_deliveries WHERE webhook = ?1", [id])
            .map_err(err)?;
        let n = tx
            .execute("DELETE FROM webhooks WHERE id = ?1", [id])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n == 1)
    }

    fn claim_webhook(
        &self,
        id: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StorageError> {
        // One statement: the check and the claim cannot interleave with another claim.
        let n = lock(&self.writer)
            .execute(
                "UPDATE webhooks SET lease_holder = ?2, lease_until_ms = ?4
                 WHERE id = ?1 AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_until_ms <= ?3)",
                params![id, holder, now_ms, until_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn release_webhooks(&self, holder: &str) -> Result<usize, StorageError> {
        lock(&self.writer)
            .execute(
                "UPDATE webhooks SET lease_holder = NULL, lease_until_ms = 0 WHERE lease_holder = ?1",
                [holder],
            )
            .map_err(err)
    }

    fn pending_delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ?1 AND status = 'pending' ORDER BY id LIMIT 1"),
                [id],
                delivery_row,
            )
            .optional()
            .map_err(err)
    }

    fn queue_delivery(
        &self,
        id: &str,
        holder: &str,
        batch: &NewDelivery,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let moved = tx
            .execute(
                "UPDATE webhooks SET cursor = ?3
                 WHERE id = ?1 AND lease_holder = ?2 AND lease_until_ms > ?4 AND cursor < ?3
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook = ?1 AND status = 'pending')",
                params![id, holder, batch.last_position as i64, now_ms],
            )
            .map_err(err)?;
        if moved != 1 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO webhook_deliveries (webhook, first_position, last_position, records, body, status, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
            params![id, batch.first_position as i64, batch.last_position as i64, batch.records, batch.body, now_ms],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    fn record_attempt(
        &self,
        delivery: i64,
        outcome: Result<(), &str>,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let conn = lock(&self.writer);
        match outcome {
            Ok(()) => conn.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                 last_attempt_ms = ?2, delivered_ms = ?2 WHERE id = ?1",
                params![delivery, now_ms],
            ),
            Err(e) => conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?2,
                 last_attempt_ms = ?3 WHERE id = ?1",
                params![delivery, e, now_ms],
            ),
        }
        .map_err(err)?;
        Ok(())
    }

    fn deliveries(&self, id: &str, limit: usize) -> Result<Vec<DeliveryRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(err)?;
        stmt.query_map(params![id, limit as i64], delivery_row)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn redeliver(&self, id: &str, delivery: i64) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', delivered_ms = NULL
                 WHERE id = ?2 AND webhook = ?1",
                params![id, delivery],
            )
            .map_err(err)?;
        Ok(n == 1)
    }
}
