//! Task documents and the burden counts on SQLite. Task documents live in `docs` like
//! any record; `task_docs` only indexes them by task and issuer, and is written in the
//! same transaction as the document (see `commit`).

use rusqlite::params;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, id_of, lock};
use super::{StoredRecord, TaskDocRow, TypedCount};

impl SqliteStorage {
    /// Task documents, optionally of one task and/or one issuer, by task then village.
    pub fn task_docs(
        &self,
        task: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Vec<TaskDocRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT t.record_id, t.task_id, t.issuer, t.village, d.values_json
                 FROM task_docs t JOIN docs d ON d.id = t.record_id
                 WHERE (?1 IS NULL OR t.task_id = ?1) AND (?2 IS NULL OR t.issuer = ?2)
                 ORDER BY t.task_id, t.village",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![task, issuer], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(err)?;
        rows.map(|r| {
            let (id, task, issuer, village, json) = r.map_err(err)?;
            Ok(TaskDocRow {
                id: id_of(id)?,
                task,
                issuer,
                village,
                json,
            })
        })
        .collect()
    }

    /// Current values of the live (not deleted) records of `entity` in `village`
    /// (`None`: township-level records).
    pub fn live_values(
        &self,
        entity: &str,
        village: Option<&str>,
    ) -> Result<Vec<(RecordId, String)>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, values_json FROM docs
                 WHERE entity = ?1 AND village IS ?2 AND deleted = 0 ORDER BY id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![entity, village], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?;
        rows.map(|r| {
            let (id, json) = r.map_err(err)?;
            Ok((id_of(id)?, json))
        })
        .collect()
    }

    /// The stored summaries of `ids` that exist, in the order asked.
    pub fn stored_records(&self, ids: &[RecordId]) -> Result<Vec<StoredRecord>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT entity, village, deleted, values_json, conflicts_json FROM docs WHERE id = ?1",
            )
            .map_err(err)?;
        let mut out = Vec::new();
        for id in ids {
            let mut rows = stmt.query([id.as_bytes().as_slice()]).map_err(err)?;
            if let Some(r) = rows.next().map_err(err)? {
                out.push(StoredRecord {
                    id: *id,
                    entity: r.get(0).map_err(err)?,
                    village: r.get(1).map_err(err)?,
                    deleted: r.get(2).map_err(err)?,
                    values_json: r.get(3).map_err(err)?,
                    conflicts_json: r.get(4).map_err(err)?,
                });
            }
        }
        Ok(out)
    }

    /// Values typed in `[from_ms, to_ms)`, grouped by entity, village and field.
    pub fn typed_counts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TypedCount>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT entity, village, field, COUNT(*), COUNT(DISTINCT record_id) FROM typed
                 WHERE at_ms >= ?1 AND at_ms < ?2
                 GROUP BY entity, village, field ORDER BY entity, village, field",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![from_ms, to_ms], |r| {
                Ok(TypedCount {
                    entity: r.get(0)?,
                    village: r.get(1)?,
                    field: r.get(2)?,
                    typed: r.get::<_, i64>(3)? as u64,
                    records: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}
