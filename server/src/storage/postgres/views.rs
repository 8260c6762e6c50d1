//! The department read model and tasks on PostgreSQL: the same queries as SQLite's
//! `views.rs` and `tasks.rs`, with lists bound as arrays (`= ANY($n)`).

use postgres::Row;
use postgres::types::ToSql;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::super::{RecordFilter, StoredRecord, TaskDocRow, TaskStorage, TypedCount, ViewStorage};
use super::{PostgresStorage, err, id_of, limit};

pub(super) type Arg = Box<dyn ToSql + Sync>;

/// The view's conditions on `docs d`, binding from `$args.len() + 1` on.
pub(super) fn where_clause(filter: &RecordFilter, args: &mut Vec<Arg>) -> String {
    let f = &filter.view;
    let mut sql = String::new();
    let mut bind = |sql: &mut String, cond: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&cond.replace("$?", &format!("${}", args.len())));
    };
    bind(
        &mut sql,
        " AND d.entity = ANY($?)",
        Box::new(f.entities.clone()),
    );
    if let Some(villages) = &f.villages {
        bind(
            &mut sql,
            " AND d.village = ANY($?)",
            Box::new(villages.clone()),
        );
    }
    if let Some(e) = &f.entity {
        bind(&mut sql, " AND d.entity = $?", Box::new(e.clone()));
    }
    if let Some(v) = &f.village {
        bind(&mut sql, " AND d.village = $?", Box::new(v.clone()));
    }
    if !filter.include_deleted {
        sql.push_str(" AND NOT d.deleted");
    }
    sql
}

pub(super) const COLUMNS: &str =
    "d.id, d.entity, d.village, d.deleted, d.values_json, d.conflicts_json";

pub(super) fn stored(r: &Row, at: usize) -> Result<StoredRecord, StorageError> {
    Ok(StoredRecord {
        id: id_of(r.get(at))?,
        entity: r.get(at + 1),
        village: r.get(at + 2),
        deleted: r.get(at + 3),
        values_json: r.get(at + 4),
        conflicts_json: r.get(at + 5),
    })
}

pub(super) fn refs(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl ViewStorage for PostgresStorage {
    fn records_page(
        &self,
        f: &RecordFilter,
        after: Option<RecordId>,
        n: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let mut args: Vec<Arg> = Vec::new();
        let mut sql = format!("SELECT {COLUMNS} FROM docs d WHERE TRUE");
        sql.push_str(&where_clause(f, &mut args));
        if let Some(a) = after {
            args.push(Box::new(a.as_bytes().to_vec()));
            sql.push_str(&format!(" AND d.id > ${}", args.len()));
        }
        args.push(Box::new(limit(n)));
        sql.push_str(&format!(" ORDER BY d.id LIMIT ${}", args.len()));
        let rows = self.conn()?.query(&sql, &refs(&args)).map_err(err)?;
        rows.iter().map(|r| stored(r, 0)).collect()
    }

    fn feed_page(
        &self,
        f: &RecordFilter,
        cursor: u64,
        n: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StorageError> {
        let mut args: Vec<Arg> = vec![Box::new(i64::try_from(cursor).unwrap_or(i64::MAX))];
        let mut sql = format!(
            "SELECT f.seq, {COLUMNS} FROM feed f JOIN docs d ON d.id = f.record_id WHERE f.seq > $1"
        );
        let all = RecordFilter {
            include_deleted: true,
            ..f.clone()
        };
        sql.push_str(&where_clause(&all, &mut args));
        args.push(Box::new(limit(n)));
        sql.push_str(&format!(" ORDER BY f.seq LIMIT ${}", args.len()));
        let rows = self.conn()?.query(&sql, &refs(&args)).map_err(err)?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i64>(0) as u64, stored(r, 1)?)))
            .collect()
    }

    fn live_values(
        &self,
        entity: &str,
        village: Option<&str>,
    ) -> Result<Vec<(RecordId, String)>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, values_json FROM docs
                 WHERE entity = $1 AND village IS NOT DISTINCT FROM $2 AND NOT deleted ORDER BY id",
                &[&entity, &village],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| Ok((id_of(r.get(0))?, r.get(1))))
            .collect()
    }

    fn stored_records(&self, ids: &[RecordId]) -> Result<Vec<StoredRecord>, StorageError> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {COLUMNS} FROM docs d WHERE d.id = ANY($1)"),
                &[&keys],
            )
            .map_err(err)?;
        let mut found = rows
            .iter()
            .map(|r| stored(r, 0).map(|s| (s.id, s)))
            .collect::<Result<std::collections::HashMap<_, _>, _>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    fn all_records_page(
        &self,
        after: Option<RecordId>,
        n: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let after = after.map_or_else(Vec::new, |a| a.as_bytes().to_vec());
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {COLUMNS} FROM docs d WHERE d.id > $1 ORDER BY d.id LIMIT $2"),
                &[&after, &limit(n)],
            )
            .map_err(err)?;
        rows.iter().map(|r| stored(r, 0)).collect()
    }

    fn set_summaries(&self, rows: &[(RecordId, String, String)]) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        let stmt = tx
            .prepare("UPDATE docs SET values_json = $2, conflicts_json = $3 WHERE id = $1")
            .map_err(err)?;
        for (id, values, conflicts) in rows {
            tx.execute(&stmt, &[&id.as_bytes().as_slice(), values, conflicts])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn integrity_check(&self) -> Result<String, StorageError> {
        // PostgreSQL checks its pages itself; what can go wrong between our tables is a
        // feed row or chunk without its document.
        let r = self
            .conn()?
            .query_one(
                "SELECT (SELECT COUNT(*) FROM feed f WHERE NOT EXISTS (SELECT 1 FROM docs d WHERE d.id = f.record_id)),
                        (SELECT COUNT(*) FROM docs d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.record_id = d.id))",
                &[],
            )
            .map_err(err)?;
        let (feed, chunks): (i64, i64) = (r.get(0), r.get(1));
        Ok(if feed == 0 && chunks == 0 {
            "ok".into()
        } else {
            format!("{feed} feed rows without a document, {chunks} documents without chunks")
        })
    }
}

impl TaskStorage for PostgresStorage {
    fn task_docs(
        &self,
        task: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Vec<TaskDocRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT t.record_id, t.task_id, t.issuer, t.village, d.values_json
                 FROM task_docs t JOIN docs d ON d.id = t.record_id
                 WHERE ($1::TEXT IS NULL OR t.task_id = $1) AND ($2::TEXT IS NULL OR t.issuer = $2)
                 ORDER BY t.task_id, t.village NULLS FIRST",
                &[&task, &issuer],
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(TaskDocRow {
                    id: id_of(r.get(0))?,
                    task: r.get(1),
                    issuer: r.get(2),
                    village: r.get(3),
                    json: r.get(4),
                })
            })
            .collect()
    }

    fn typed_counts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TypedCount>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT entity, village, field, COUNT(*), COUNT(DISTINCT record_id) FROM typed
                 WHERE at_ms >= $1 AND at_ms < $2
                 GROUP BY entity, village, field ORDER BY entity, village NULLS FIRST, field",
                &[&from_ms, &to_ms],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| TypedCount {
                entity: r.get(0),
                village: r.get(1),
                field: r.get(2),
                typed: r.get::<_, i64>(3) as u64,
                records: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }
}
