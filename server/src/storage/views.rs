//! Department reads on SQLite: merged records and the change feed, straight from the
//! `docs` summaries (no document is decoded on the read path), by keyset pages.

use rusqlite::types::Value as Sql;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, id_of, lock};
use super::{RecordFilter, StoredRecord};

pub(super) fn where_clause(filter: &RecordFilter, args: &mut Vec<Sql>) -> String {
    let f = &filter.view;
    let mut sql = String::new();
    if f.entities.is_empty() {
        sql.push_str(" AND 0");
    } else {
        sql.push_str(&format!(
            " AND d.entity IN ({})",
            vec!["?"; f.entities.len()].join(",")
        ));
        args.extend(f.entities.iter().cloned().map(Sql::Text));
    }
    if let Some(villages) = &f.villages {
        if villages.is_empty() {
            sql.push_str(" AND 0");
        } else {
            sql.push_str(&format!(
                " AND d.village IN ({})",
                vec!["?"; villages.len()].join(",")
            ));
            args.extend(villages.iter().cloned().map(Sql::Text));
        }
    }
    if let Some(e) = &f.entity {
        sql.push_str(" AND d.entity = ?");
        args.push(Sql::Text(e.clone()));
    }
    if let Some(v) = &f.village {
        sql.push_str(" AND d.village = ?");
        args.push(Sql::Text(v.clone()));
    }
    if !filter.include_deleted {
        sql.push_str(" AND d.deleted = 0");
    }
    sql
}

/// Columns of a stored record, as read: id, entity, village, deleted, values, conflicts.
type Columns = (Vec<u8>, String, Option<String>, bool, String, String);

pub(super) fn row(r: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<Columns> {
    Ok((
        r.get(offset)?,
        r.get(offset + 1)?,
        r.get(offset + 2)?,
        r.get(offset + 3)?,
        r.get(offset + 4)?,
        r.get(offset + 5)?,
    ))
}

pub(super) fn stored(t: Columns) -> Result<StoredRecord, StorageError> {
    Ok(StoredRecord {
        id: id_of(t.0)?,
        entity: t.1,
        village: t.2,
        deleted: t.3,
        values_json: t.4,
        conflicts_json: t.5,
    })
}

impl SqliteStorage {
    /// Up to `limit` records after `after` (by id) that match `f`.
    pub fn records_page(
        &self,
        f: &RecordFilter,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut args = Vec::new();
        let mut sql = String::from(
            "SELECT d.id, d.entity, d.village, d.deleted, d.values_json, d.conflicts_json FROM docs d WHERE 1=1",
        );
        sql.push_str(&where_clause(f, &mut args));
        if let Some(a) = after {
            sql.push_str(" AND d.id > ?");
            args.push(Sql::Blob(a.as_bytes().to_vec()));
        }
        sql.push_str(" ORDER BY d.id LIMIT ?");
        args.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| row(r, 0))
            .map_err(err)?;
        rows.map(|r| stored(r.map_err(err)?)).collect()
    }

    /// Up to `limit` feed entries after `cursor` that match `f`, oldest first.
    pub fn feed_page(
        &self,
        f: &RecordFilter,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StorageError> {
        let mut args = vec![Sql::Integer(i64::try_from(cursor).unwrap_or(i64::MAX))];
        let mut sql = String::from(
            "SELECT f.seq, d.id, d.entity, d.village, d.deleted, d.values_json, d.conflicts_json
             FROM feed f JOIN docs d ON d.id = f.record_id WHERE f.seq > ?",
        );
        let all = RecordFilter {
            include_deleted: true,
            ..f.clone()
        };
        sql.push_str(&where_clause(&all, &mut args));
        sql.push_str(" ORDER BY f.seq LIMIT ?");
        args.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, row(r, 1)?))
            })
            .map_err(err)?;
        rows.map(|r| {
            let (seq, t) = r.map_err(err)?;
            Ok((seq as u64, stored(t)?))
        })
        .collect()
    }

    /// Every stored document's summary after `after`, by id, tombstones included.
    pub fn all_records_page(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let after = after.map_or_else(Vec::new, |a| a.as_bytes().to_vec());
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT d.id, d.entity, d.village, d.deleted, d.values_json, d.conflicts_json
                 FROM docs d WHERE d.id > ?1 ORDER BY d.id LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(
                rusqlite::params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| row(r, 0),
            )
            .map_err(err)?;
        rows.map(|r| stored(r.map_err(err)?)).collect()
    }

    /// Rewrites the summaries of `rows` (id, values JSON, conflicts JSON) in one
    /// transaction: the read model after a schema change.
    pub fn set_summaries(&self, rows: &[(RecordId, String, String)]) -> Result<(), StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE docs SET values_json = ?2, conflicts_json = ?3 WHERE id = ?1",
                )
                .map_err(err)?;
            for (id, values, conflicts) in rows {
                stmt.execute(rusqlite::params![id.as_bytes().to_vec(), values, conflicts])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}
