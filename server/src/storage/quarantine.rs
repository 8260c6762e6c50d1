//! Records set aside for the operator: stored documents that do not load, or that are
//! too large to send to a phone (stored before the hub's budgets existed).
//!
//! The hub skips such a record on its own while serving (see `yibiao_sync::hub`); these
//! are the operator's tools to find, inspect and drop them (`yibiao-server quarantine`).
//! Listing loads every stored document, so it is an operator command, never a request.

use automerge::ActorId;
use rusqlite::{OptionalExtension, params};
use yibiao_model::RecordId;
use yibiao_model::record::Record;
use yibiao_sync::hub::StorageError;

use super::SqliteStorage;
use super::sqlite::{err, id_of, lock};

/// A stored record the hub cannot serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantinedRecord {
    /// The record.
    pub id: RecordId,
    /// Its entity type.
    pub entity: String,
    /// Its village; `None` for township-level documents.
    pub village: Option<String>,
    /// Stored chunks.
    pub chunks: usize,
    /// Stored bytes (all chunks).
    pub bytes: usize,
    /// Why it is set aside.
    pub reason: String,
}

impl SqliteStorage {
    /// Every stored record that does not load, or whose whole document on the wire is
    /// larger than `max_record_bytes`.
    pub fn quarantined_records(
        &self,
        max_record_bytes: usize,
    ) -> Result<Vec<QuarantinedRecord>, StorageError> {
        let ids: Vec<RecordId> = {
            let conn = lock(&self.reader);
            let mut stmt = conn
                .prepare("SELECT id FROM docs ORDER BY id")
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            rows.into_iter().map(id_of).collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(q) = self.quarantined_record(id, max_record_bytes)? {
                out.push(q);
            }
        }
        Ok(out)
    }

    /// The record `id` if it is stored and cannot be served; `None` when it is fine or
    /// unknown.
    pub fn quarantined_record(
        &self,
        id: RecordId,
        max_record_bytes: usize,
    ) -> Result<Option<QuarantinedRecord>, StorageError> {
        let row: Option<(String, Option<String>)> = lock(&self.reader)
            .query_row(
                "SELECT entity, village FROM docs WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let Some((entity, village)) = row else {
            return Ok(None);
        };
        let chunks = yibiao_sync::HubStorage::load(self, id)?.unwrap_or_default();
        let reason = match Record::load(id, ActorId::random(), &chunks) {
            Err(e) => format!("does not load: {e}"),
            Ok(record) => {
                let wire = record.save_for_wire().len();
                if wire <= max_record_bytes {
                    return Ok(None);
                }
                format!(
                    "{} KiB to send, over the {} KiB record budget",
                    wire / 1024,
                    max_record_bytes / 1024
                )
            }
        };
        Ok(Some(QuarantinedRecord {
            id,
            entity,
            village,
            chunks: chunks.len(),
            bytes: chunks.iter().map(Vec::len).sum(),
            reason,
        }))
    }

    /// Deletes every trace of a record: its chunks, summary, feed row, what devices hold
    /// of it, its burden rows and task index. Phones that hold a copy keep it; their
    /// next edit of it pushes the whole document again. False when it was not stored.
    pub fn drop_record(&self, id: RecordId) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let key = id.as_bytes().as_slice();
        let n = tx
            .execute("DELETE FROM docs WHERE id = ?1", params![key])
            .map_err(err)?;
        for sql in [
            "DELETE FROM chunks WHERE record_id = ?1",
            "DELETE FROM feed WHERE record_id = ?1",
            "DELETE FROM device_heads WHERE record_id = ?1",
            "DELETE FROM device_sent WHERE record_id = ?1",
            "DELETE FROM typed WHERE record_id = ?1",
            "DELETE FROM task_docs WHERE record_id = ?1",
        ] {
            tx.execute(sql, params![key]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }
}
