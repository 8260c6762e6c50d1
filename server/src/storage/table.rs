//! The console's records table on SQLite: the view's filter plus the table's own
//! (conflicted in the view's fields, complete or incomplete for a form) in the query, and
//! one page by `LIMIT`/`OFFSET` with the count, so a page costs a page, not the view.

use rusqlite::types::Value as Sql;
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};
use super::views::{row, stored, where_clause};
use super::{RecordFilter, StoredRecord};

/// What the records table narrows beyond the view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFilter {
    /// Only records with a conflict on one of these fields (the view's fields).
    pub conflicted_in: Option<Vec<String>>,
    /// Only records that hold every one of these fields (`true`: a form's required
    /// fields, complete) or lack one of them (`false`: incomplete).
    pub complete: Option<(Vec<String>, bool)>,
    /// Newest first.
    pub desc: bool,
}

/// The records table's reads.
pub trait RecordTableStorage {
    /// Records of `f` and `t` by id, skipping `offset` and returning at most `limit` (all
    /// with `None`), with how many match in all.
    fn records_table(
        &self,
        f: &RecordFilter,
        t: &TableFilter,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<(Vec<StoredRecord>, usize), StorageError>;
}

fn quoted_path(field: &str) -> String {
    format!("$.\"{}\"", field.replace('"', ""))
}

fn table_clause(t: &TableFilter, args: &mut Vec<Sql>) -> String {
    let mut sql = String::new();
    if let Some(fields) = &t.conflicted_in {
        if fields.is_empty() {
            sql.push_str(" AND 0");
        } else {
            sql.push_str(&format!(
                " AND d.conflicts_json != '{{}}' AND EXISTS (SELECT 1 FROM json_each(d.conflicts_json) c WHERE c.key IN ({}))",
                vec!["?"; fields.len()].join(",")
            ));
            args.extend(fields.iter().cloned().map(Sql::Text));
        }
    }
    if let Some((fields, complete)) = &t.complete {
        let has: Vec<String> = fields
            .iter()
            .map(|f| {
                args.push(Sql::Text(quoted_path(f)));
                "json_type(d.values_json, ?) IS NOT NULL".to_owned()
            })
            .collect();
        let all = if has.is_empty() {
            "1".to_owned()
        } else {
            has.join(" AND ")
        };
        sql.push_str(&if *complete {
            format!(" AND ({all})")
        } else {
            format!(" AND NOT ({all})")
        });
    }
    sql
}

impl RecordTableStorage for SqliteStorage {
    fn records_table(
        &self,
        f: &RecordFilter,
        t: &TableFilter,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<(Vec<StoredRecord>, usize), StorageError> {
        let mut args = Vec::new();
        let mut clause = where_clause(f, &mut args);
        clause.push_str(&table_clause(t, &mut args));
        let conn = lock(&self.reader);
        let total: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM docs d WHERE 1=1{clause}"))
            .map_err(err)?
            .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
            .map_err(err)?;
        let order = if t.desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT d.id, d.entity, d.village, d.deleted, d.values_json, d.conflicts_json
             FROM docs d WHERE 1=1{clause} ORDER BY d.id {order} LIMIT ? OFFSET ?"
        );
        let big = |n: usize| Sql::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        args.push(limit.map_or(Sql::Integer(-1), big));
        args.push(big(offset));
        let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| row(r, 0))
            .map_err(err)?;
        let page = rows
            .map(|r| stored(r.map_err(err)?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((page, usize::try_from(total).unwrap_or(0)))
    }
}
