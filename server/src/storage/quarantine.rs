//! Records set aside for the operator: stored documents that do not load, or that are
//! too large to send to a phone (stored before the hub's budgets existed).
//!
//! The hub skips such a record on its own while serving (see `yibiao_sync::hub`) and
//! writes it to the `quarantine` table ([`SqliteStorage::set_aside`]): the one list the
//! hub (after a restart too), `/ready`, the metric and `yibiao-server quarantine list`
//! read. [`QuarantineStorage::quarantined_records`] finds the ones no server met yet by
//! loading every stored document (`quarantine scan`: an operator command, never a
//! request); [`QuarantineStorage::drop_record`] deletes a record and its entry together.
//! The trait's primitives are per backend (SQLite here, PostgreSQL in
//! `postgres/admin.rs`); the judgement (does it load, does it fit the budget) is
//! written once, in its provided methods.

use automerge::ActorId;
use rusqlite::{OptionalExtension, params};
use yibiao_model::RecordId;
use yibiao_model::record::Record;
use yibiao_sync::HubStorage;
use yibiao_sync::hub::{SetAside, StorageError};

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
    /// Writes the stored record `id` to the quarantine list (its village from `docs`);
    /// one already listed keeps its first reason. `None` when `id` is not stored.
    pub(crate) fn set_aside(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        let conn = lock(&self.writer);
        let key = id.as_bytes().as_slice();
        conn.execute(
            "INSERT OR IGNORE INTO quarantine (record_id, village, reason, since_ms)
             SELECT id, village, ?2, ?3 FROM docs WHERE id = ?1",
            params![key, reason, now_ms],
        )
        .map_err(err)?;
        conn.query_row(
            "SELECT village, reason, since_ms FROM quarantine WHERE record_id = ?1",
            params![key],
            |r| {
                Ok(SetAside {
                    id,
                    village: r.get(0)?,
                    reason: r.get(1)?,
                    since_ms: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(err)
    }

    /// The quarantine list, by record id.
    pub(crate) fn set_aside_list(&self) -> Result<Vec<SetAside>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT record_id, village, reason, since_ms FROM quarantine ORDER BY record_id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter()
            .map(|(id, village, reason, since_ms)| {
                Ok(SetAside {
                    id: id_of(id)?,
                    village,
                    reason,
                    since_ms,
                })
            })
            .collect()
    }
}

/// What the operator's `quarantine` commands need of the database.
pub trait QuarantineStorage: HubStorage {
    /// The quarantine list with what the operator needs to judge each entry (entity,
    /// chunks, bytes), by record id.
    fn listed_records(&self) -> Result<Vec<QuarantinedRecord>, StorageError>;
    /// Every stored record's id, in id order.
    fn record_ids(&self) -> Result<Vec<RecordId>, StorageError>;
    /// A stored record's entity type and village; `None` when it is not stored.
    fn record_place(&self, id: RecordId) -> Result<Option<(String, Option<String>)>, StorageError>;
    /// Deletes every trace of a record: its chunks, summary, feed row, what devices hold
    /// of it, its burden rows, task index and quarantine entry. Phones that hold a copy
    /// keep it; their next edit of it pushes the whole document again. False when it was
    /// not stored.
    fn drop_record(&self, id: RecordId) -> Result<bool, StorageError>;
    /// Takes `id` off the quarantine list (the record stays as stored). False when it
    /// was not listed.
    fn unlist(&self, id: RecordId) -> Result<bool, StorageError>;

    /// Takes off the list every listed record that now loads and fits
    /// `max_record_bytes` (the budget was raised, or the record was repaired), so the
    /// hub serves it again; returns them. `serve` asks at start, `quarantine scan` too.
    fn release_fitting(&self, max_record_bytes: usize) -> Result<Vec<RecordId>, StorageError> {
        let mut released = Vec::new();
        for q in self.listed_records()? {
            if self.quarantined_record(q.id, max_record_bytes)?.is_none() && self.unlist(q.id)? {
                tracing::info!(record = %q.id, was = %q.reason, "quarantined record released: it loads and fits the budget now");
                released.push(q.id);
            }
        }
        Ok(released)
    }

    /// Every stored record that does not load, or whose whole document on the wire is
    /// larger than `max_record_bytes`, found by loading each (the list holds only those
    /// a server met).
    fn quarantined_records(
        &self,
        max_record_bytes: usize,
    ) -> Result<Vec<QuarantinedRecord>, StorageError> {
        let mut out = Vec::new();
        for id in self.record_ids()? {
            if let Some(q) = self.quarantined_record(id, max_record_bytes)? {
                out.push(q);
            }
        }
        Ok(out)
    }

    /// The record `id` if it is stored and cannot be served; `None` when it is fine or
    /// unknown.
    fn quarantined_record(
        &self,
        id: RecordId,
        max_record_bytes: usize,
    ) -> Result<Option<QuarantinedRecord>, StorageError> {
        let Some((entity, village)) = self.record_place(id)? else {
            return Ok(None);
        };
        let chunks = self.load(id)?.unwrap_or_default();
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
}

impl QuarantineStorage for SqliteStorage {
    fn listed_records(&self) -> Result<Vec<QuarantinedRecord>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare(
                "SELECT q.record_id, d.entity, q.village, q.reason,
                        (SELECT count(*) FROM chunks c WHERE c.record_id = q.record_id),
                        (SELECT coalesce(sum(length(c.bytes)), 0) FROM chunks c
                          WHERE c.record_id = q.record_id)
                 FROM quarantine q JOIN docs d ON d.id = q.record_id
                 ORDER BY q.record_id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter()
            .map(|(id, entity, village, reason, chunks, bytes)| {
                Ok(QuarantinedRecord {
                    id: id_of(id)?,
                    entity,
                    village,
                    chunks: usize::try_from(chunks).unwrap_or(0),
                    bytes: usize::try_from(bytes).unwrap_or(0),
                    reason,
                })
            })
            .collect()
    }

    fn record_ids(&self) -> Result<Vec<RecordId>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT id FROM docs ORDER BY id")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter().map(id_of).collect()
    }

    fn record_place(&self, id: RecordId) -> Result<Option<(String, Option<String>)>, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT entity, village FROM docs WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)
    }

    fn unlist(&self, id: RecordId) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                "DELETE FROM quarantine WHERE record_id = ?1",
                params![id.as_bytes().as_slice()],
            )
            .map_err(err)?;
        Ok(n > 0)
    }

    fn drop_record(&self, id: RecordId) -> Result<bool, StorageError> {
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
            "DELETE FROM quarantine WHERE record_id = ?1",
        ] {
            tx.execute(sql, params![key]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }
}
