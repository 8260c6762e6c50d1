//! The labelled projection of records, the one home of what an export shows: the rows of
//! the XLSX ([`super::xlsx`]), the CSV ([`super::csv`]) and the console's download.
//!
//! A row is the department's projection ([`super::project`]) read as a person reads it:
//! village and entity labels, option labels not keys (a multi-select joined with 、),
//! booleans 是/否, every competing value of a conflict with when and by whom, a
//! 已删除 column, and the last value typed on a phone (when, by which cadre); an
//! attachment is its file name linked to the console's route for it (a hyperlink in the
//! XLSX, `name <url>` in the CSV), so a clerk opens it after signing in. Whole and
//! decimal numbers stay numbers; everything else, ID and phone numbers above all, is
//! text, so a spreadsheet never turns `513401198505052222` into `5.13401E+17`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use yibiao_model::schema::DepartmentDef;
use yibiao_model::value::{AttachmentRef, FieldType};
use yibiao_model::{Schema, clock};

use super::project;
use crate::error::ApiError;
use crate::routes::blobs::console_href;
use crate::storage::{LastChange, StoredRecord};

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, written as text whatever it looks like.
    Text(String),
    /// A number (a whole or decimal number field).
    Number(f64),
    /// A link: an attachment's file name and the console's address of the file.
    Link {
        /// What the cell shows.
        text: String,
        /// Where it leads.
        url: String,
    },
}

impl Cell {
    /// The cell as text (a CSV field); a link as `name <url>`.
    pub fn into_text(self) -> String {
        match self {
            Cell::Text(t) => t,
            Cell::Number(n) => n.to_string(),
            Cell::Link { text, url } => format!("{text} <{url}>"),
        }
    }
}

/// The fixed columns before the fields: (zh label, en label, key).
const FIXED: [(&str, &str, &str); 7] = [
    ("记录ID", "Record ID", "id"),
    ("村", "Village", "village"),
    ("类型", "Type", "entity"),
    ("已删除", "Deleted", "deleted"),
    ("有冲突的字段", "Conflicted fields", "conflicts"),
    ("最后修改时间", "Last changed at", "changed_at"),
    ("最后修改人", "Last changed by", "changed_by"),
];

/// One competing value as stored in a conflict summary.
#[derive(Debug, Deserialize)]
struct Competing {
    value: serde_json::Value,
    cadre: String,
    at_ms: i64,
}

/// How a department's records become labelled rows.
pub struct Sheet {
    schema: Arc<Schema>,
    dept: DepartmentDef,
    columns: Vec<String>,
    en: bool,
    cadres: HashMap<String, String>,
    origin: String,
}

impl Sheet {
    /// Rows of `dept`'s view with `columns` (field keys) after the fixed ones, labelled in
    /// English when `en`; `cadres` names cadres by id; attachments link to the console at
    /// `origin` (`scheme://host[:port]`, [`crate::origin`]).
    pub fn new(
        schema: Arc<Schema>,
        dept: DepartmentDef,
        columns: Vec<String>,
        en: bool,
        cadres: HashMap<String, String>,
        origin: String,
    ) -> Self {
        Self {
            schema,
            dept,
            columns,
            en,
            cadres,
            origin,
        }
    }

    /// English labels.
    pub fn en(&self) -> bool {
        self.en
    }

    /// The header a person reads: fixed columns, then each field's label.
    pub fn labels(&self) -> Vec<String> {
        let fixed = FIXED
            .iter()
            .map(|(zh, en, _)| if self.en { *en } else { *zh });
        fixed
            .map(str::to_owned)
            .chain(self.columns.iter().map(|c| self.field_label(c)))
            .collect()
    }

    /// The header a system reads: the same columns by key.
    pub fn keys(&self) -> Vec<String> {
        FIXED
            .iter()
            .map(|(_, _, k)| (*k).to_owned())
            .chain(self.columns.iter().cloned())
            .collect()
    }

    /// True for the columns written as text whatever they hold (all but number fields).
    pub fn is_text_column(&self, i: usize) -> bool {
        i < FIXED.len()
            || !self
                .columns
                .get(i - FIXED.len())
                .is_some_and(|c| self.is_number(c))
    }

    fn field_label(&self, key: &str) -> String {
        self.schema
            .field(key)
            .map_or_else(|| key.to_owned(), |d| d.labels.get(self.en).to_owned())
    }

    fn is_number(&self, key: &str) -> bool {
        self.schema
            .field(key)
            .is_some_and(|d| matches!(d.ty, FieldType::Integer { .. } | FieldType::Decimal { .. }))
    }

    fn when(&self, at_ms: i64) -> String {
        clock::local(at_ms).format("%Y-%m-%d %H:%M").to_string()
    }

    /// One record's row; `last` is its last typed change.
    pub fn row(&self, r: &StoredRecord, last: Option<&LastChange>) -> Result<Vec<Cell>, ApiError> {
        let p = project(&self.dept, r, None)?;
        let (schema, en) = (&self.schema, self.en);
        let village = match &r.village {
            Some(v) => schema
                .villages
                .get(v)
                .map_or_else(|| v.clone(), |l| l.get(en).to_owned()),
            None => (if en { "Township level" } else { "镇级" }).to_owned(),
        };
        let entity = schema
            .entity(&r.entity)
            .map_or_else(|| r.entity.clone(), |e| e.labels.get(en).to_owned());
        let yes_no = |b: bool| schema_bool(b, en);
        let conflicted: Vec<String> = p.conflicts.keys().map(|k| self.field_label(k)).collect();
        let mut row = vec![
            Cell::Text(p.id.clone()),
            Cell::Text(village),
            Cell::Text(entity),
            Cell::Text(yes_no(r.deleted)),
            Cell::Text(conflicted.join(if en { ", " } else { "、" })),
            Cell::Text(last.map(|l| self.when(l.at_ms)).unwrap_or_default()),
            Cell::Text(last.map(|l| l.by.clone()).unwrap_or_default()),
        ];
        for c in &self.columns {
            if let Some(raw) = p.conflicts.get(c.as_str()) {
                row.push(Cell::Text(self.competing(c, raw.get())));
                continue;
            }
            let value: Option<serde_json::Value> = p
                .values
                .get(c.as_str())
                .and_then(|v| serde_json::from_str(v.get()).ok());
            row.push(match value {
                None => Cell::Text(String::new()),
                Some(v) if !r.deleted => self
                    .attachment_cell(&p.id, c, &v)
                    .unwrap_or_else(|| self.value_cell(c, &v)),
                Some(v) => self.value_cell(c, &v),
            });
        }
        Ok(row)
    }

    /// An attachment of a live record: its file name, linked to the console's route for
    /// it (the clerk signs in, and the console's scope rule decides). A tombstoned
    /// record's file is shown by name only: it lends its files to nobody.
    fn attachment_cell(&self, record: &str, key: &str, v: &serde_json::Value) -> Option<Cell> {
        let field = self.schema.field(key)?;
        if !matches!(field.ty, FieldType::Attachment) {
            return None;
        }
        let a: AttachmentRef = serde_json::from_value(v.clone()).ok()?;
        Some(Cell::Link {
            url: format!("{}{}", self.origin, console_href(record, &a.sha256)),
            text: a.name,
        })
    }

    fn value_cell(&self, key: &str, v: &serde_json::Value) -> Cell {
        if self.is_number(key) {
            let n = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            };
            if let Some(n) = n {
                return Cell::Number(n);
            }
        }
        Cell::Text(self.schema.display(key, v, self.en))
    }

    /// Every competing value: `张三 (2027-01-05 10:00 王芳) | 李四 (...)`.
    fn competing(&self, key: &str, raw: &str) -> String {
        let all: Vec<Competing> = serde_json::from_str(raw).unwrap_or_default();
        all.iter()
            .map(|c| {
                let by = self.cadres.get(&c.cadre).unwrap_or(&c.cadre);
                let value = self.schema.display(key, &c.value, self.en);
                if self.en {
                    format!("{value} ({} by {by})", self.when(c.at_ms))
                } else {
                    format!("{value} ({} {by})", self.when(c.at_ms))
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

fn schema_bool(b: bool, en: bool) -> String {
    match (b, en) {
        (true, false) => "是",
        (false, false) => "否",
        (true, true) => "yes",
        (false, true) => "no",
    }
    .to_owned()
}
