//! Webhook endpoints, their delivery log and the delivery lease on PostgreSQL: the same
//! tables and rules as SQLite's `webhooks.rs` (ADR 0011). Several processes share the
//! database: the lease is one conditional `UPDATE` (row-locked), and queueing re-checks
//! the lease and the absence of a pending delivery in the transaction that writes.

use postgres::Row;
use yibiao_sync::hub::StorageError;

use super::super::{DeliveryRow, NewDelivery, WebhookRow, WebhookStorage};
use super::{PostgresStorage, err, limit};

const WEBHOOK_COLUMNS: &str = "id, department, url, secret, created_ms, cursor";
const DELIVERY_COLUMNS: &str = "id, webhook, first_position, last_position, records, status, attempts, last_error, created_ms, delivered_ms, body";

fn webhook_row(r: &Row) -> WebhookRow {
    WebhookRow {
        id: r.get(0),
        department: r.get(1),
        url: r.get(2),
        secret: r.get(3),
        created_ms: r.get(4),
        cursor: r.get::<_, i64>(5) as u64,
    }
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get(0),
        webhook: r.get(1),
        first_position: r.get::<_, i64>(2) as u64,
        last_position: r.get::<_, i64>(3) as u64,
        records: r.get::<_, i64>(4) as u32,
        status: r.get(5),
        attempts: r.get::<_, i64>(6) as u32,
        last_error: r.get(7),
        created_ms: r.get(8),
        delivered_ms: r.get(9),
        body: r.get(10),
    }
}

impl WebhookStorage for PostgresStorage {
    fn add_webhook(&self, row: &WebhookRow) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                &format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &row.id,
                    &row.department,
                    &row.url,
                    &row.secret,
                    &row.created_ms,
                    &(row.cursor as i64),
                ],
            )
            .map_err(err)?;
        Ok(())
    }

    fn webhooks(&self) -> Result<Vec<WebhookRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_ms, id"),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(webhook_row).collect())
    }

    fn remove_webhook(&self, id: &str) -> Result<bool, StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM webhook_deliveries WHERE webhook = $1", &[&id])
            .map_err(err)?;
        let n = tx
            .execute("DELETE FROM webhooks WHERE id = $1", &[&id])
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
        // One statement: the row lock orders concurrent claims, and the second one
        // re-reads the row the first wrote.
        let n = self
            .conn()?
            .execute(
                "UPDATE webhooks SET lease_holder = $2, lease_until_ms = $4
                 WHERE id = $1 AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until_ms <= $3)",
                &[&id, &holder, &now_ms, &until_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn release_webhooks(&self, holder: &str) -> Result<usize, StorageError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE webhooks SET lease_holder = NULL, lease_until_ms = 0 WHERE lease_holder = $1",
                &[&holder],
            )
            .map_err(err)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn pending_delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StorageError> {
        let row = self
            .conn()?
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = $1 AND status = 'pending' ORDER BY id LIMIT 1"),
                &[&id],
            )
            .map_err(err)?;
        Ok(row.as_ref().map(delivery_row))
    }

    fn queue_delivery(
        &self,
        id: &str,
        holder: &str,
        batch: &NewDelivery,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(err)?;
        // Lock the endpoint's row first: a second queuer waits here, then sees the
        // pending delivery the first one inserted.
        let held = tx
            .query_opt(
                "SELECT 1 FROM webhooks WHERE id = $1 AND lease_holder = $2 AND lease_until_ms > $3
                 AND cursor < $4 FOR UPDATE",
                &[&id, &holder, &now_ms, &(batch.last_position as i64)],
            )
            .map_err(err)?;
        if held.is_none() {
            return Ok(false);
        }
        let pending = tx
            .query_opt(
                "SELECT 1 FROM webhook_deliveries WHERE webhook = $1 AND status = 'pending' LIMIT 1",
                &[&id],
            )
            .map_err(err)?;
        if pending.is_some() {
            return Ok(false);
        }
        tx.execute(
            "UPDATE webhooks SET cursor = $2 WHERE id = $1",
            &[&id, &(batch.last_position as i64)],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO webhook_deliveries (webhook, first_position, last_position, records, body, status, created_ms)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
            &[
                &id,
                &(batch.first_position as i64),
                &(batch.last_position as i64),
                &i64::from(batch.records),
                &batch.body,
                &now_ms,
            ],
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
        let mut conn = self.conn()?;
        match outcome {
            Ok(()) => conn.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                 last_attempt_ms = $2, delivered_ms = $2 WHERE id = $1",
                &[&delivery, &now_ms],
            ),
            Err(e) => conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2,
                 last_attempt_ms = $3 WHERE id = $1",
                &[&delivery, &e, &now_ms],
            ),
        }
        .map_err(err)?;
        Ok(())
    }

    fn deliveries(&self, id: &str, n: usize) -> Result<Vec<DeliveryRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&id, &limit(n)],
            )
            .map_err(err)?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn redeliver(&self, id: &str, delivery: i64) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', delivered_ms = NULL
                 WHERE id = $2 AND webhook = $1",
                &[&id, &delivery],
            )
            .map_err(err)?;
        Ok(n == 1)
    }
}
