//! Listing and querying records from the index, one page at a time.
//!
//! Paging is by record id (keyset), so a page is stable while records are added and
//! costs the same at page 1 and page 1,000. No document is loaded.

use std::collections::BTreeMap;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use crate::error::{ModelError, Result};
use yibiao_model::ids::RecordId;
use yibiao_model::schema::Schema;
use yibiao_model::value::Value;

/// Largest page a query returns.
pub const MAX_PAGE: u32 = 1000;

/// Which records to list. Every filter given must hold (AND).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this entity type.
    pub entity: Option<String>,
    /// Only this village.
    pub village: Option<String>,
    /// Fields that must equal these values.
    pub equals: Vec<(String, Value)>,
    /// Fields whose text must contain these strings (case-insensitive for ASCII).
    pub contains: Vec<(String, String)>,
    /// Only records that complete this form's required fields.
    pub complete_for: Option<String>,
    /// Only records that still miss a required field of this form.
    pub incomplete_for: Option<String>,
    /// Only records with unresolved conflicts.
    pub conflicted_only: bool,
    /// Include records carrying a tombstone.
    pub include_deleted: bool,
    /// Start after this record id (the previous page's `next`).
    pub after: Option<RecordId>,
    /// Page size; 0 means the default of 100; at most [`MAX_PAGE`].
    pub limit: u32,
}

impl Query {
    /// An equality filter's value from the JSON text an app sends, parsed by the field's
    /// type; a field outside the dictionary is a bad query.
    pub fn value_from_json_text(schema: &Schema, field: &str, text: &str) -> Result<Value> {
        if schema.field(field).is_none() {
            return Err(ModelError::BadQuery(format!(
                "field `{field}` is not in the field dictionary"
            ))
            .into());
        }
        Ok(schema.parse_query_text(field, text)?)
    }
}

/// A record as listed from the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordSummary {
    /// Record id.
    pub id: RecordId,
    /// Entity type.
    pub entity: String,
    /// Village, if village-level.
    pub village: Option<String>,
    /// Tombstone state.
    pub deleted: bool,
    /// True when some field has concurrent values.
    pub conflicted: bool,
    /// Current values by field key (JSON form).
    pub values: BTreeMap<String, serde_json::Value>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The records, in id order.
    pub records: Vec<RecordSummary>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<RecordId>,
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn run(conn: &Connection, schema: &Schema, q: &Query) -> Result<Page> {
    let limit = match q.limit {
        0 => 100,
        n if n > MAX_PAGE => {
            return Err(ModelError::BadQuery(format!(
                "limit {n} is above the maximum page of {MAX_PAGE}"
            ))
            .into());
        }
        n => n,
    };
    let mut sql = String::from(
        "SELECT r.id, r.entity, r.village, r.deleted, r.conflicted FROM records r WHERE r.entity != '_task'",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    let mut entity_filter = q.entity.clone();

    if let Some(e) = &q.entity
        && schema.entity(e).is_none()
    {
        return Err(ModelError::UnknownEntity(e.clone()).into());
    }
    if let Some(v) = &q.village {
        if !schema.has_village(v) {
            return Err(ModelError::UnknownVillage(v.clone()).into());
        }
        sql.push_str(" AND r.village = ?");
        args.push(SqlValue::Text(v.clone()));
    }
    if !q.include_deleted {
        sql.push_str(" AND r.deleted = 0");
    }
    if q.conflicted_only {
        sql.push_str(" AND r.conflicted = 1");
    }
    for (field, value) in &q.equals {
        let def = schema.field(field).ok_or_else(|| {
            ModelError::BadQuery(format!("field `{field}` is not in the field dictionary"))
        })?;
        if !def.ty.accepts(value) {
            return Err(ModelError::BadQuery(format!(
                "field `{field}` holds {}, the query value does not",
                def.ty.expects()
            ))
            .into());
        }
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM field_values fv WHERE fv.record_id = r.id AND fv.field = ? AND fv.value = ?)",
        );
        args.push(SqlValue::Text(field.clone()));
        args.push(SqlValue::Text(value.to_json().to_string()));
    }
    for (field, text) in &q.contains {
        if schema.field(field).is_none() {
            return Err(ModelError::BadQuery(format!(
                "field `{field}` is not in the field dictionary"
            ))
            .into());
        }
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM field_values fv WHERE fv.record_id = r.id AND fv.field = ? AND fv.search LIKE ? ESCAPE '\\')",
        );
        args.push(SqlValue::Text(field.clone()));
        args.push(SqlValue::Text(escape_like(text)));
    }
    for (form_key, complete) in [(&q.complete_for, true), (&q.incomplete_for, false)] {
        let Some(form_key) = form_key else { continue };
        let form = schema
            .form(form_key)
            .ok_or_else(|| ModelError::UnknownForm(form_key.clone()))?;
        match &entity_filter {
            Some(e) if *e != form.entity => {
                return Err(ModelError::BadQuery(format!(
                    "form `{form_key}` is for `{}` records, not `{e}`",
                    form.entity
                ))
                .into());
            }
            _ => entity_filter = Some(form.entity.clone()),
        }
        let placeholders = vec!["?"; form.required.len()].join(",");
        let op = if complete { "=" } else { "<" };
        if form.required.is_empty() {
            if !complete {
                sql.push_str(" AND 0");
            }
        } else {
            sql.push_str(&format!(
                " AND (SELECT COUNT(*) FROM field_values fv WHERE fv.record_id = r.id AND fv.field IN ({placeholders})) {op} ?"
            ));
            for f in &form.required {
                args.push(SqlValue::Text(f.clone()));
            }
            args.push(SqlValue::Integer(form.required.len() as i64));
        }
    }
    if let Some(e) = &entity_filter {
        sql.push_str(" AND r.entity = ?");
        args.push(SqlValue::Text(e.clone()));
    }
    if let Some(after) = &q.after {
        sql.push_str(" AND r.id > ?");
        args.push(SqlValue::Text(after.to_string()));
    }
    sql.push_str(" ORDER BY r.id LIMIT ?");
    args.push(SqlValue::Integer(i64::from(limit) + 1));

    let mut stmt = conn.prepare_cached(&sql)?;
    let mut records = Vec::new();
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (id, entity, village, deleted, conflicted) = row?;
        records.push(RecordSummary {
            id: id.parse()?,
            entity,
            village,
            deleted,
            conflicted,
            values: BTreeMap::new(),
        });
    }
    let next = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| r.id)
    } else {
        None
    };
    let mut values_stmt =
        conn.prepare_cached("SELECT field, value FROM field_values WHERE record_id = ?1")?;
    for rec in &mut records {
        let rows = values_stmt.query_map([rec.id.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (field, json) = row?;
            let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
            rec.values.insert(field, value);
        }
    }
    Ok(Page { records, next })
}
