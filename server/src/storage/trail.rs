//! Who changed a record last, and when, for the exports' "last changed" columns.
//!
//! Read from the `typed` table (one row per field value typed on a phone, written in the
//! same transaction as the change), joined to the device that pushed it and its cadre: no
//! document is decoded. A server-side change (a task, a resolution from the console) types
//! nothing on a phone and so does not move the mark.

use std::collections::HashMap;

use rusqlite::params_from_iter;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::SqliteStorage;
use super::sqlite::{err, id_of, lock};

/// The last value typed into a record on a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastChange {
    /// When, ms since the epoch (the phone's change time).
    pub at_ms: i64,
    /// The cadre's name (else the device's name, else its key).
    pub by: String,
}

/// The last-changed mark of stored records.
pub trait TrailStorage {
    /// The last value typed into each of `ids` (records never typed into are absent).
    fn last_changes(&self, ids: &[RecordId])
    -> Result<HashMap<RecordId, LastChange>, StorageError>;
}

/// Ids per query (SQLite's default limit of bound parameters is far above).
const BATCH: usize = 500;

impl TrailStorage for SqliteStorage {
    fn last_changes(
        &self,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, LastChange>, StorageError> {
        let conn = lock(&self.reader);
        let mut out = HashMap::with_capacity(ids.len());
        for part in ids.chunks(BATCH) {
            let marks = vec!["?"; part.len()].join(",");
            // SQLite's bare columns beside max() come from the row holding the maximum.
            let sql = format!(
                "SELECT t.record_id, max(t.at_ms), coalesce(c.name, d.name, t.device)
                 FROM typed t LEFT JOIN devices d ON d.key = t.device
                 LEFT JOIN cadres c ON c.id = d.cadre
                 WHERE t.record_id IN ({marks}) GROUP BY t.record_id"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
            let rows = stmt
                .query_map(
                    params_from_iter(part.iter().map(|id| id.as_bytes().to_vec())),
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(err)?;
            for row in rows {
                let (id, at_ms, by) = row.map_err(err)?;
                out.insert(id_of(id)?, LastChange { at_ms, by });
            }
        }
        Ok(out)
    }
}
