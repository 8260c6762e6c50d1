//! The query index: one row per (record, set field), a pure function of the document.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{ModelError, Result};
use yibiao_model::ids::RecordId;
use yibiao_model::record::Record;
use yibiao_model::schema::Schema;

/// Rewrites the index rows of `record`: all of them when `touched` is `None`, else only
/// those fields.
pub(super) fn write_fields(
    tx: &Transaction<'_>,
    schema: &Schema,
    record: &Record,
    touched: Option<&[String]>,
) -> Result<()> {
    let id = record.id().to_string();
    let values = record.values(schema);
    let conflicted: BTreeSet<String> = record.conflicted_fields().into_iter().collect();
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO field_values (record_id, field, value, search, conflicted)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    match touched {
        None => {
            tx.execute("DELETE FROM field_values WHERE record_id = ?1", [&id])?;
            for (field, value) in &values {
                insert.execute(params![
                    id,
                    field,
                    value.to_json().to_string(),
                    value.search_text(),
                    conflicted.contains(field)
                ])?;
            }
        }
        Some(fields) => {
            let mut delete =
                tx.prepare_cached("DELETE FROM field_values WHERE record_id = ?1 AND field = ?2")?;
            for field in fields {
                match values.get(field) {
                    Some(value) => {
                        insert.execute(params![
                            id,
                            field,
                            value.to_json().to_string(),
                            value.search_text(),
                            conflicted.contains(field)
                        ])?;
                    }
                    None => {
                        delete.execute(params![id, field])?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The entity type of `id` and the fields it has values for, from the index.
pub(super) fn filled_fields(conn: &Connection, id: RecordId) -> Result<(String, BTreeSet<String>)> {
    let entity: Option<String> = conn
        .query_row(
            "SELECT entity FROM records WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    let entity = entity.ok_or(ModelError::NotFound(id))?;
    let mut stmt = conn.prepare_cached("SELECT field FROM field_values WHERE record_id = ?1")?;
    let fields = stmt
        .query_map([id.to_string()], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok((entity, fields))
}

/// Every index row as text, in a fixed order (replica comparison in tests).
pub(super) fn dump(conn: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT id, entity, township, COALESCE(village, ''), deleted, conflicted, created_ms, hex(heads)
         FROM records ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "record {} {} {} {} deleted={} conflicted={} created={} heads={}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, bool>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, String>(7)?,
        ))
    })?;
    for row in rows {
        out.push(row?);
    }
    let mut stmt = conn.prepare(
        "SELECT record_id, field, value, COALESCE(search, ''), conflicted FROM field_values
         ORDER BY record_id, field",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "value {} {} {} search={} conflicted={}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}
