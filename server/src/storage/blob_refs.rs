//! Which records reference a blob (ADR 0013): the question a download's scope check and
//! the blob garbage pass ask. Answered from the department read model (`docs`'
//! `values_json` and `conflicts_json`), so a photo kept only as one side of a conflict
//! still counts. No table of its own: the read model already holds every reference.

use rusqlite::params;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::SqliteStorage;
use super::sqlite::{err, id_of, lock};

/// A field of a stored record that holds (or holds as one side of a conflict) a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobReference {
    /// The record.
    pub record: RecordId,
    /// Its entity type.
    pub entity: String,
    /// Its village; `None` for township level.
    pub village: Option<String>,
    /// The field holding the reference.
    pub field: String,
    /// The record is tombstoned.
    pub deleted: bool,
}

/// The references to blobs in stored records.
pub trait BlobRefStorage: Send + Sync {
    /// Every field of every stored record (tombstoned ones included) whose value or
    /// conflicting value is an attachment with this `sha256`.
    fn blob_references(&self, sha256: &str) -> Result<Vec<BlobReference>, StorageError>;
}

/// True when `json` holds an object with `"sha256": hash` at any depth.
pub(super) fn mentions(json: &serde_json::Value, hash: &str) -> bool {
    match json {
        serde_json::Value::Object(map) => {
            map.get("sha256").and_then(|v| v.as_str()) == Some(hash)
                || map.values().any(|v| mentions(v, hash))
        }
        serde_json::Value::Array(items) => items.iter().any(|v| mentions(v, hash)),
        _ => false,
    }
}

impl BlobRefStorage for SqliteStorage {
    fn blob_references(&self, sha256: &str) -> Result<Vec<BlobReference>, StorageError> {
        let conn = lock(&self.reader);
        // A text search narrows the scan; the JSON is then read to name the field.
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, entity, village, values_json, conflicts_json, deleted FROM docs
                 WHERE instr(values_json, ?1) > 0 OR instr(conflicts_json, ?1) > 0",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![sha256], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, entity, village, values, conflicts, deleted) = row.map_err(err)?;
            let record = id_of(id)?;
            let mut fields = std::collections::BTreeSet::new();
            for text in [values, conflicts] {
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) {
                    fields.extend(
                        map.iter()
                            .filter(|(_, v)| mentions(v, sha256))
                            .map(|(k, _)| k.clone()),
                    );
                }
            }
            out.extend(fields.into_iter().map(|field| BlobReference {
                record,
                entity: entity.clone(),
                village: village.clone(),
                field,
                deleted,
            }));
        }
        Ok(out)
    }
}
