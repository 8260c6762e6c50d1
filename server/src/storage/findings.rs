//! What the server reads of findings without decoding documents: the summary the hub
//! stores with every finding document (`yibiao_model::finding::finding_json`). Findings
//! are written through the hub like any document; this trait only reads.

use rusqlite::params;
use yibiao_model::RecordId;
use yibiao_model::finding::FINDING_ENTITY;
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, id_of, lock};

/// One stored finding: id, the village it is about, its summary JSON
/// (`{"spec", "steps", "receipts", "created_ms"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    /// The finding's id.
    pub id: RecordId,
    /// The village it is about.
    pub village: Option<String>,
    /// The stored summary.
    pub json: String,
}

/// Reads of findings.
pub trait FindingStorage {
    /// Every finding, by id. A township holds hundreds per period, not millions: the
    /// report and the lists fold them in memory.
    fn findings(&self) -> Result<Vec<FindingRow>, StorageError>;
}

impl FindingStorage for SqliteStorage {
    fn findings(&self) -> Result<Vec<FindingRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, village, values_json FROM docs WHERE entity = ?1 ORDER BY id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![FINDING_ENTITY], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(err)?;
        rows.map(|row| {
            let (id, village, json) = row.map_err(err)?;
            Ok(FindingRow {
                id: id_of(id)?,
                village,
                json,
            })
        })
        .collect()
    }
}
