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

/// Lists one page of the records `q` selects, with their current values.
pub(super) fn run(conn: &Connection, schema: &Schema, q: &Query) -> Result<Page> {
    let limit = page_limit(q.limit)?;
    let select = Select::for_query(schema, q, limit)?;
    let mut records = summaries(conn, select)?;
    let next = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| r.id)
    } else {
        None
    };
    fill_values(conn, &mut records)?;
    Ok(Page { records, next })
}

/// The page size a query asks for: 0 means 100; above [`MAX_PAGE`] is a bad query.
fn page_limit(limit: u32) -> Result<u32> {
    match limit {
        0 => Ok(100),
        n if n > MAX_PAGE => Err(ModelError::BadQuery(format!(
            "limit {n} is above the maximum page of {MAX_PAGE}"
        ))
        .into()),
        n => Ok(n),
    }
}

/// The SQL of a listing, built filter by filter: its text and the values of its `?`s.
struct Select {
    sql: String,
    args: Vec<SqlValue>,
}

impl Select {
    /// Checks every filter of `q` against the schema, in order, and turns it into SQL
    /// that reads one row more than `limit` (to know whether a next page exists).
    fn for_query(schema: &Schema, q: &Query, limit: u32) -> Result<Self> {
        let mut s = Select {
            sql: String::from(
                "SELECT r.id, r.entity, r.village, r.deleted, r.conflicted FROM records r WHERE r.entity NOT IN ('_task', '_finding')",
            ),
            args: Vec::new(),
        };
        if let Some(e) = &q.entity
            && schema.entity(e).is_none()
        {
            return Err(ModelError::UnknownEntity(e.clone()).into());
        }
        if let Some(v) = &q.village {
            if !schema.has_village(v) {
                return Err(ModelError::UnknownVillage(v.clone()).into());
            }
            s.and(" AND r.village = ?", [SqlValue::Text(v.clone())]);
        }
        if !q.include_deleted {
            s.and(" AND r.deleted = 0", []);
        }
        if q.conflicted_only {
            s.and(" AND r.conflicted = 1", []);
        }
        for (field, value) in &q.equals {
            s.field_equals(schema, field, value)?;
        }
        for (field, text) in &q.contains {
            s.field_contains(schema, field, text)?;
        }
        let mut entity_filter = q.entity.clone();
        for (form_key, complete) in [(&q.complete_for, true), (&q.incomplete_for, false)] {
            let Some(form_key) = form_key else { continue };
            s.form_completeness(schema, form_key, complete, &mut entity_filter)?;
        }
        if let Some(e) = &entity_filter {
            s.and(" AND r.entity = ?", [SqlValue::Text(e.clone())]);
        }
        if let Some(after) = &q.after {
            s.and(" AND r.id > ?", [SqlValue::Text(after.to_string())]);
        }
        s.and(
            " ORDER BY r.id LIMIT ?",
            [SqlValue::Integer(i64::from(limit) + 1)],
        );
        Ok(s)
    }

    /// Appends `sql` and the values of its `?`s.
    fn and(&mut self, sql: &str, args: impl IntoIterator<Item = SqlValue>) {
        self.sql.push_str(sql);
        self.args.extend(args);
    }

    /// Only records whose `field` holds `value`; the value must fit the field's type.
    fn field_equals(&mut self, schema: &Schema, field: &str, value: &Value) -> Result<()> {
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
        self.and(
            " AND EXISTS (SELECT 1 FROM field_values fv WHERE fv.record_id = r.id AND fv.field = ? AND fv.value = ?)",
            [
                SqlValue::Text(field.to_owned()),
                SqlValue::Text(value.to_json().to_string()),
            ],
        );
        Ok(())
    }

    /// Only records whose `field` contains `text`.
    fn field_contains(&mut self, schema: &Schema, field: &str, text: &str) -> Result<()> {
        if schema.field(field).is_none() {
            return Err(ModelError::BadQuery(format!(
                "field `{field}` is not in the field dictionary"
            ))
            .into());
        }
        self.and(
            " AND EXISTS (SELECT 1 FROM field_values fv WHERE fv.record_id = r.id AND fv.field = ? AND fv.search LIKE ? ESCAPE '\\')",
            [
                SqlValue::Text(field.to_owned()),
                SqlValue::Text(escape_like(text)),
            ],
        );
        Ok(())
    }

    /// Only records that fill every required field of `form_key` (`complete`), or that
    /// miss one. The form fixes the entity type: `entity_filter` must agree or is set.
    fn form_completeness(
        &mut self,
        schema: &Schema,
        form_key: &str,
        complete: bool,
        entity_filter: &mut Option<String>,
    ) -> Result<()> {
        let form = schema
            .form(form_key)
            .ok_or_else(|| ModelError::UnknownForm(form_key.to_owned()))?;
        match entity_filter {
            Some(e) if *e != form.entity => {
                return Err(ModelError::BadQuery(format!(
                    "form `{form_key}` is for `{}` records, not `{e}`",
                    form.entity
                ))
                .into());
            }
            _ => *entity_filter = Some(form.entity.clone()),
        }
        if form.required.is_empty() {
            if !complete {
                self.and(" AND 0", []);
            }
            return Ok(());
        }
        let placeholders = vec!["?"; form.required.len()].join(",");
        let op = if complete { "=" } else { "<" };
        self.and(
            &format!(
                " AND (SELECT COUNT(*) FROM field_values fv WHERE fv.record_id = r.id AND fv.field IN ({placeholders})) {op} ?"
            ),
            form.required
                .iter()
                .map(|f| SqlValue::Text(f.clone()))
                .chain([SqlValue::Integer(form.required.len() as i64)]),
        );
        Ok(())
    }
}

/// Runs the listing's SQL: one summary per row, values not yet filled.
fn summaries(conn: &Connection, select: Select) -> Result<Vec<RecordSummary>> {
    let mut stmt = conn.prepare_cached(&select.sql)?;
    let mut records = Vec::new();
    let rows = stmt.query_map(rusqlite::params_from_iter(select.args), |r| {
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
    Ok(records)
}

/// Reads each listed record's current values from the index (JSON; text if unparsable).
fn fill_values(conn: &Connection, records: &mut [RecordSummary]) -> Result<()> {
    let mut values_stmt =
        conn.prepare_cached("SELECT field, value FROM field_values WHERE record_id = ?1")?;
    for rec in records {
        let rows = values_stmt.query_map([rec.id.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (field, json) = row?;
            let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
            rec.values.insert(field, value);
        }
    }
    Ok(())
}
