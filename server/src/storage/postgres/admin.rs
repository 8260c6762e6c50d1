//! Devices' last sync, disabling and moving cadres, blob references, the last-changed
//! mark, the console's records table and findings on PostgreSQL: the same tables and
//! rules as SQLite's `device_seen.rs`, `cadre_admin.rs`, `blob_refs.rs`, `trail.rs`,
//! `table.rs` and `findings.rs`.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::ToSql;
use yibiao_model::RecordId;
use yibiao_model::finding::FINDING_ENTITY;
use yibiao_sync::hub::StorageError;

use super::super::blob_refs::references_in;
use super::super::{
    BlobRefStorage, BlobReference, CadreAdminStorage, DeviceSeenStorage, FindingRow,
    FindingStorage, LastChange, RecordFilter, RecordTableStorage, StoredRecord, TableFilter,
    TrailStorage,
};
use super::views::{Arg, COLUMNS, refs, stored, where_clause};
use super::{PostgresStorage, err, id_of, limit};

impl DeviceSeenStorage for PostgresStorage {
    fn touch_device(&self, key: &str, now_ms: i64) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "UPDATE devices SET last_seen_ms = $2
                 WHERE key = $1 AND (last_seen_ms IS NULL OR last_seen_ms < $2)",
                &[&key, &now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn devices_last_seen(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT key, last_seen_ms FROM devices WHERE last_seen_ms IS NOT NULL",
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// Revokes the cadre's live devices and ends their unused codes.
fn cut_off(tx: &mut Transaction<'_>, id: &str, now_ms: i64) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE devices SET revoked_ms = $2 WHERE cadre = $1 AND revoked_ms IS NULL",
        &[&id, &now_ms],
    )
    .map_err(err)?;
    tx.execute(
        "UPDATE enrol_codes SET expires_ms = $2
         WHERE cadre_id = $1 AND used_ms IS NULL AND expires_ms > $2",
        &[&id, &now_ms],
    )
    .map_err(err)?;
    Ok(())
}

impl CadreAdminStorage for PostgresStorage {
    fn disable_cadre(&self, id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(err)?;
        let n = tx
            .execute(
                "UPDATE cadres SET disabled_ms = COALESCE(disabled_ms, $2) WHERE id = $1",
                &[&id, &now_ms],
            )
            .map_err(err)?;
        if n > 0 {
            cut_off(&mut tx, id, now_ms)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    fn move_cadre(
        &self,
        id: &str,
        village: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(err)?;
        let n = tx
            .execute(
                "UPDATE cadres SET village = $2 WHERE id = $1",
                &[&id, &village],
            )
            .map_err(err)?;
        if n > 0 {
            cut_off(&mut tx, id, now_ms)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    fn disabled_cadres(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, disabled_ms FROM cadres WHERE disabled_ms IS NOT NULL",
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl BlobRefStorage for PostgresStorage {
    fn blob_references(&self, sha256: &str) -> Result<Vec<BlobReference>, StorageError> {
        // A text search narrows the scan; the JSON is then read to name the field.
        let rows = self
            .conn()?
            .query(
                "SELECT id, entity, village, values_json, conflicts_json, deleted FROM docs
                 WHERE strpos(values_json, $1) > 0 OR strpos(conflicts_json, $1) > 0",
                &[&sha256],
            )
            .map_err(err)?;
        let mut out = Vec::new();
        for r in rows {
            let (values, conflicts): (String, String) = (r.get(3), r.get(4));
            out.extend(references_in(
                id_of(r.get(0))?,
                r.get::<_, String>(1).as_str(),
                r.get(2),
                r.get(5),
                [&values, &conflicts],
                sha256,
            ));
        }
        Ok(out)
    }
}

impl TrailStorage for PostgresStorage {
    fn last_changes(
        &self,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, LastChange>, StorageError> {
        let ids: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        // The newest typed row of each record (ties: the device's key decides).
        let rows = self
            .conn()?
            .query(
                "SELECT DISTINCT ON (t.record_id) t.record_id, t.at_ms,
                        coalesce(c.name, d.name, t.device)
                 FROM typed t LEFT JOIN devices d ON d.key = t.device
                 LEFT JOIN cadres c ON c.id = d.cadre
                 WHERE t.record_id = ANY($1)
                 ORDER BY t.record_id, t.at_ms DESC, t.device",
                &[&ids],
            )
            .map_err(err)?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(
                id_of(r.get(0))?,
                LastChange {
                    at_ms: r.get(1),
                    by: r.get(2),
                },
            );
        }
        Ok(out)
    }
}

/// The table's own conditions on `docs d` (JSON read as `jsonb`).
fn table_clause(t: &TableFilter, args: &mut Vec<Arg>) -> String {
    let mut sql = String::new();
    if let Some(fields) = &t.conflicted_in {
        args.push(Box::new(fields.clone()));
        sql.push_str(&format!(
            " AND d.conflicts_json <> '{{}}' AND d.conflicts_json::jsonb ?| ${}",
            args.len()
        ));
    }
    if let Some((fields, complete)) = &t.complete {
        // A field is held when its key is present and not JSON null (SQLite's json_type
        // IS NOT NULL: a JSON null counts as held there too).
        args.push(Box::new(fields.clone()));
        let all = format!("d.values_json::jsonb ?& ${}", args.len());
        sql.push_str(&if *complete {
            format!(" AND ({all})")
        } else {
            format!(" AND NOT ({all})")
        });
    }
    sql
}

impl RecordTableStorage for PostgresStorage {
    fn records_table(
        &self,
        f: &RecordFilter,
        t: &TableFilter,
        offset: usize,
        n: Option<usize>,
    ) -> Result<(Vec<StoredRecord>, usize), StorageError> {
        let mut args: Vec<Arg> = Vec::new();
        let mut clause = where_clause(f, &mut args);
        clause.push_str(&table_clause(t, &mut args));
        let mut conn = self.conn()?;
        let total: i64 = conn
            .query_one(
                &format!("SELECT count(*) FROM docs d WHERE TRUE{clause}"),
                &refs(&args),
            )
            .map_err(err)?
            .get(0);
        let order = if t.desc { "DESC" } else { "ASC" };
        args.push(Box::new(n.map(limit)));
        args.push(Box::new(limit(offset)));
        let sql = format!(
            "SELECT {COLUMNS} FROM docs d WHERE TRUE{clause} ORDER BY d.id {order} LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        );
        let rows = conn.query(&sql, &refs(&args)).map_err(err)?;
        let page = rows
            .iter()
            .map(|r| stored(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((page, usize::try_from(total).unwrap_or(0)))
    }
}

impl FindingStorage for PostgresStorage {
    fn findings(&self) -> Result<Vec<FindingRow>, StorageError> {
        let entity: &(dyn ToSql + Sync) = &FINDING_ENTITY;
        let rows = self
            .conn()?
            .query(
                "SELECT id, village, values_json FROM docs WHERE entity = $1 ORDER BY id",
                &[entity],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(FindingRow {
                    id: id_of(r.get(0))?,
                    village: r.get(1),
                    json: r.get(2),
                })
            })
            .collect()
    }
}
