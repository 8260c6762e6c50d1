//! Which records and findings reference a blob (ADR 0013): the question a download's
//! scope check and the blob garbage pass ask. Answered from the department read model (`docs`'
//! `values_json` and `conflicts_json`), so a photo kept only as one side of a conflict
//! still counts. No table of its own: the read model already holds every reference.

use rusqlite::params;
use yibiao_model::RecordId;
use yibiao_model::finding::FINDING_ENTITY;
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
    /// For a finding (entity `_finding`): the departments it was ever handed to, who
    /// may read its photos and evidence with the township and the discipline office.
    /// Empty for a record.
    pub handed_to: Vec<String>,
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

/// True when `json` is `hash` as a finding writes a photo reference: the bare hex, or
/// `sha256:` and the hex.
fn is_ref(json: &serde_json::Value, hash: &str) -> bool {
    json.as_str()
        .is_some_and(|s| s == hash || s.strip_prefix("sha256:") == Some(hash))
}

/// The references one stored row holds to blob `hash`, from its summaries: a record's
/// fields whose value (or a conflicting value) is an attachment with that hash; a
/// finding's `photos` (what was found) and `evidence` (a resolution's), plain references
/// in its summary `{"spec", "steps"}`, with the departments it was handed to.
pub(super) fn references_in(
    record: RecordId,
    entity: &str,
    village: Option<String>,
    deleted: bool,
    summaries: [&str; 2],
    hash: &str,
) -> Vec<BlobReference> {
    let mut fields = std::collections::BTreeSet::new();
    let mut handed_to = Vec::new();
    if entity == FINDING_ENTITY {
        let json: serde_json::Value = serde_json::from_str(summaries[0]).unwrap_or_default();
        if json["spec"]["photos"]
            .as_array()
            .is_some_and(|p| p.iter().any(|v| is_ref(v, hash)))
        {
            fields.insert("photos".to_owned());
        }
        for step in json["steps"].as_array().into_iter().flatten() {
            let kind = &step["kind"];
            if kind["resolve"]["evidence"]
                .as_array()
                .is_some_and(|e| e.iter().any(|v| is_ref(v, hash)))
            {
                fields.insert("evidence".to_owned());
            }
            if let Some(d) = kind["hand_over"]["unit"]["department"].as_str()
                && !handed_to.iter().any(|h| h == d)
            {
                handed_to.push(d.to_owned());
            }
        }
    } else {
        for text in summaries {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) {
                fields.extend(
                    map.iter()
                        .filter(|(_, v)| mentions(v, hash))
                        .map(|(k, _)| k.clone()),
                );
            }
        }
    }
    fields
        .into_iter()
        .map(|field| BlobReference {
            record,
            entity: entity.to_owned(),
            village: village.clone(),
            field,
            deleted,
            handed_to: handed_to.clone(),
        })
        .collect()
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
            out.extend(references_in(
                id_of(id)?,
                &entity,
                village,
                deleted,
                [&values, &conflicts],
                sha256,
            ));
        }
        Ok(out)
    }
}
