//! The records table and one record, as the signed-in user's view decides: a department
//! clerk's is the department's (`DepartmentDef::filter` narrows the read, `project`
//! keeps its fields, exactly as `GET /v1/records`); township staff read every field.
//!
//! The table shows one entity type at a time with the fields as columns (Chinese labels,
//! option labels), filters by village, form complete / incomplete, conflicts and text,
//! sorts by any column and pages by 50. Storage applies the view, village, conflicts and
//! completeness in its query (`RecordTableStorage`, [`table_filter`]) and, without a
//! text search or a sort, reads only the page and the count; a text search (it matches
//! the labels shown) or a sort reads what passed the query, from the stored summaries (no
//! document is decoded). The records page bench says what each costs at 10,000 records.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::str::FromStr;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use yibiao_model::schema::{DepartmentDef, ViewError};
use yibiao_model::value::{AttachmentRef, FieldType};
use yibiao_model::{RecordId, Schema, clock};

use super::super::i18n::Strings;
use super::super::session::ConsoleUser;
use super::super::{Layout, PageError, blocking, render, view_of};
use super::history::{HistoryRow, Names, field_history};
use super::resolve::may_resolve;
use crate::routes::blobs::console_href;
use crate::routes::records::{Record, project};
use crate::state::AppState;
use crate::storage::{RecordFilter, StoredRecord, TableFilter};

/// Rows per page of the table.
pub const PAGE_ROWS: usize = 50;

/// The table's query string (every key optional; unknown keys such as `lang` ignored).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct TableQuery {
    /// Entity type shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity: String,
    /// Only this village.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub village: String,
    /// The form whose completeness is shown and filtered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub form: String,
    /// `complete` or `incomplete` (by the form).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// `1`: only records with a conflict.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub conflicted: String,
    /// Text any shown value contains.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    /// Field to sort by (default: entry order).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sort: String,
    /// `1`: descending.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// Page, from 1.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub page: String,
}

/// An option of a select.
#[derive(Debug)]
pub struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// One cell.
#[derive(Debug)]
pub struct Cell {
    text: String,
    conflicted: bool,
}

/// One row.
#[derive(Debug)]
pub struct Row {
    id: String,
    village: String,
    cells: Vec<Cell>,
    complete: Option<bool>,
}

#[derive(Template)]
#[template(path = "console/records.html")]
struct TablePage {
    l: Layout,
    s: &'static Strings,
    q: TableQuery,
    entities: Vec<Opt>,
    villages: Vec<Opt>,
    forms: Vec<Opt>,
    sorts: Vec<Opt>,
    columns: Vec<String>,
    show_state: bool,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    xlsx: String,
}

fn view_error(e: ViewError) -> PageError {
    if e.is_bad_parameter() {
        PageError::bad_form("没有这个类别或村。", &e.to_string())
    } else {
        PageError::forbidden("这不在本部门可查看的范围内。", &e.to_string())
    }
}

fn user_view(schema: &Schema, user: &ConsoleUser) -> Result<DepartmentDef, PageError> {
    view_of(schema, &user.scope).ok_or_else(|| {
        PageError::forbidden(
            "本账号的部门不在当前表单定义中。",
            "This account's department is not in the schema.",
        )
    })
}

fn village_label(schema: &Schema, village: Option<&str>, s: &Strings, en: bool) -> String {
    match village {
        Some(v) => schema
            .villages
            .get(v)
            .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned()),
        None => s.township_level.to_owned(),
    }
}

/// The table's own filter (conflicts in the view's fields, complete or incomplete for
/// the chosen form), applied by storage in its query: the one home of that rule.
fn table_filter(schema: &Schema, view: &DepartmentDef, q: &TableQuery) -> TableFilter {
    let form = schema.form(&q.form).filter(|f| f.entity == q.entity);
    TableFilter {
        conflicted_in: (q.conflicted == "1").then(|| view.fields_of(&q.entity).to_vec()),
        complete: form.and_then(|f| match q.state.as_str() {
            "complete" => Some((f.required.clone(), true)),
            "incomplete" => Some((f.required.clone(), false)),
            _ => None,
        }),
        desc: q.desc == "1",
    }
}

/// When storage paged the read: the total and the page shown.
type Paged = Option<(usize, usize)>;

/// The stored records the table shows: with no text search and no sort, only the asked
/// page (and the count) is read; otherwise every record that passes the storage filter,
/// for [`select`] to search and sort. Returns the records and, when paged by storage,
/// the total and the page.
fn read(
    state: &AppState,
    f: &RecordFilter,
    t: &TableFilter,
    q: &TableQuery,
) -> Result<(Vec<StoredRecord>, Paged), PageError> {
    let failed = |e| PageError::internal("records read", e);
    if !q.q.trim().is_empty() || !q.sort.is_empty() {
        let (all, _) = state.storage.records_table(f, t, 0, None).map_err(failed)?;
        return Ok((all, None));
    }
    let wanted = q.page.parse::<usize>().unwrap_or(1).max(1);
    let at = |page: usize| {
        state
            .storage
            .records_table(f, t, (page - 1) * PAGE_ROWS, Some(PAGE_ROWS))
            .map_err(failed)
    };
    let (rows, total) = at(wanted)?;
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    if wanted > pages {
        let (rows, total) = at(pages)?;
        return Ok((rows, Some((total, pages))));
    }
    Ok((rows, Some((total, wanted))))
}

/// Sort key of a raw value: numbers by number, the rest by the text shown.
fn compare(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => x.to_string().cmp(&y.to_string()),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The records that hold the searched text, sorted, with their parsed values (storage
/// already applied the view and [`table_filter`], in id order, reversed if asked).
fn select<'a>(
    schema: &Schema,
    view: &DepartmentDef,
    q: &TableQuery,
    records: &'a [Record<'a>],
    en: bool,
) -> Vec<(&'a Record<'a>, HashMap<&'a str, serde_json::Value>)> {
    let needle = q.q.trim().to_lowercase();
    let mut rows: Vec<_> = records
        .iter()
        .map(|r| {
            let values = r
                .values
                .iter()
                .filter_map(|(k, v)| Some((*k, serde_json::from_str(v.get()).ok()?)))
                .collect::<HashMap<_, _>>();
            (r, values)
        })
        .filter(|(r, values)| {
            needle.is_empty()
                || r.id.starts_with(&needle)
                || view.fields_of(&q.entity).iter().any(|f| {
                    values
                        .get(f.as_str())
                        .is_some_and(|v| schema.display(f, v, en).to_lowercase().contains(&needle))
                })
        })
        .collect();
    if !q.sort.is_empty() {
        rows.sort_by(|(_, a), (_, b)| compare(a.get(q.sort.as_str()), b.get(q.sort.as_str())));
    }
    if !q.sort.is_empty() && q.desc == "1" {
        rows.reverse();
    }
    rows
}

fn options<'a>(
    items: impl Iterator<Item = (&'a str, String)>,
    selected: &str,
    all: Option<&str>,
) -> Vec<Opt> {
    all.map(|label| Opt {
        value: String::new(),
        label: label.to_owned(),
        selected: selected.is_empty(),
    })
    .into_iter()
    .chain(items.map(|(value, label)| Opt {
        selected: value == selected,
        value: value.to_owned(),
        label,
    }))
    .collect()
}

fn href(q: &TableQuery, page: usize) -> String {
    let q = TableQuery {
        page: page.to_string(),
        ..q.clone()
    };
    format!(
        "/records?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

/// The download of what the table shows (its type, village and form).
fn xlsx_href(q: &TableQuery) -> String {
    let keep = [
        ("entity", &q.entity),
        ("village", &q.village),
        ("form", &q.form),
    ];
    format!(
        "/records.xlsx?{}",
        serde_urlencoded::to_string(keep).unwrap_or_default()
    )
}

/// `GET /records`: the table.
pub async fn list(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(mut q): Query<TableQuery>,
) -> Result<Response, PageError> {
    blocking(move || {
        let schema = state.hub.schema();
        let view = user_view(schema, &user)?;
        if q.entity.is_empty() {
            q.entity = view.entities.first().cloned().unwrap_or_default();
        }
        let village = (!q.village.is_empty()).then_some(q.village.as_str());
        let f = RecordFilter {
            view: view
                .filter(schema, Some(&q.entity), village)
                .map_err(view_error)?,
            include_deleted: false,
        };
        let t = table_filter(schema, &view, &q);
        let (stored, paged) = read(&state, &f, &t, &q)?;
        let records = stored
            .iter()
            .map(|r| project(&view, r, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PageError::internal("projection", e))?;
        let page = table(schema, &view, &user, q, &records, paged)?;
        render(&page)
    })
    .await
}

fn table(
    schema: &Schema,
    view: &DepartmentDef,
    user: &ConsoleUser,
    q: TableQuery,
    records: &[Record<'_>],
    paged: Paged,
) -> Result<TablePage, PageError> {
    let (s, en) = (user.lang.strings(), user.lang.en());
    let fields = view.fields_of(&q.entity);
    let label = |f: &str| {
        schema
            .field(f)
            .map_or_else(|| f.to_owned(), |d| d.labels.get(en).to_owned())
    };
    let selected = select(schema, view, &q, records, en);
    let (total, page, skip) = match paged {
        Some((total, page)) => (total, page, 0),
        None => {
            let total = selected.len();
            let pages = total.div_ceil(PAGE_ROWS).max(1);
            let page = q.page.parse::<usize>().unwrap_or(1).clamp(1, pages);
            (total, page, (page - 1) * PAGE_ROWS)
        }
    };
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let form = schema.form(&q.form).filter(|f| f.entity == q.entity);
    let rows = selected
        .iter()
        .skip(skip)
        .take(PAGE_ROWS)
        .map(|(r, values)| Row {
            id: r.id.clone(),
            village: village_label(schema, r.village, s, en),
            cells: fields
                .iter()
                .map(|f| Cell {
                    text: values
                        .get(f.as_str())
                        .map(|v| schema.display(f, v, en))
                        .unwrap_or_default(),
                    conflicted: r.conflicts.contains_key(f.as_str()),
                })
                .collect(),
            complete: form.map(|f| f.is_complete(|k| r.values.contains_key(k))),
        })
        .collect();
    let entity_label = |e: &str| {
        schema
            .entity(e)
            .map_or_else(|| e.to_owned(), |d| d.labels.get(en).to_owned())
    };
    Ok(TablePage {
        l: Layout::of(user, schema, "/records"),
        s,
        entities: options(
            view.entities.iter().map(|e| (e.as_str(), entity_label(e))),
            &q.entity,
            None,
        ),
        villages: options(
            schema
                .villages
                .iter()
                .filter(|(v, _)| view.sees_village(Some(v)))
                .map(|(v, l)| (v.as_str(), l.get(en).to_owned())),
            &q.village,
            Some(s.all),
        ),
        forms: options(
            view.forms
                .iter()
                .filter_map(|f| schema.form(f))
                .filter(|f| f.entity == q.entity)
                .map(|f| (f.key.as_str(), f.labels.get(en).to_owned())),
            &q.form,
            Some("—"),
        ),
        sorts: options(
            fields.iter().map(|f| (f.as_str(), label(f))),
            &q.sort,
            Some(s.created),
        ),
        columns: fields.iter().map(|f| label(f)).collect(),
        show_state: form.is_some(),
        rows,
        total,
        page,
        pages,
        prev: (page > 1).then(|| href(&q, page - 1)),
        next: (page < pages).then(|| href(&q, page + 1)),
        xlsx: xlsx_href(&q),
        q,
    })
}

/// One field of the record page.
#[derive(Debug)]
pub struct FieldRow {
    key: String,
    label: String,
    value: String,
    /// An attachment field's file: a link to it, with its thumbnail when a photo.
    attachment: Option<AttachmentLink>,
    competing: Vec<Competing>,
}

/// A link to a record's attachment through the console (`pages::attachments`).
#[derive(Debug)]
pub struct AttachmentLink {
    /// The file as uploaded.
    href: String,
    /// Its thumbnail, for a photo.
    thumbnail: Option<String>,
    /// Its file name.
    name: String,
}

/// The link of an attachment field's current value; `None` for other fields, no value,
/// or a tombstoned record (which lends its files to nobody: `blobs::access`).
fn attachment_link(
    schema: &Schema,
    rec: &Record<'_>,
    field: &str,
    value: Option<&serde_json::Value>,
) -> Option<AttachmentLink> {
    if rec.deleted
        || !schema
            .field(field)
            .is_some_and(|d| matches!(d.ty, FieldType::Attachment))
    {
        return None;
    }
    let a: AttachmentRef = serde_json::from_value(value?.clone()).ok()?;
    let href = console_href(&rec.id, &a.sha256);
    Some(AttachmentLink {
        thumbnail: a
            .mime
            .starts_with("image/")
            .then(|| format!("{href}/thumbnail")),
        href,
        name: a.name,
    })
}

/// One competing value of a conflict: what, who, when, on which phone.
#[derive(Debug)]
pub struct Competing {
    value: String,
    /// The value as JSON (what the resolve form sends back).
    json: String,
    by: String,
    at: String,
    phone: String,
    shown: bool,
}

#[derive(Template)]
#[template(path = "console/record.html")]
struct RecordPage {
    l: Layout,
    s: &'static Strings,
    id: String,
    title: String,
    village: String,
    deleted: bool,
    fields: Vec<FieldRow>,
    can_resolve: bool,
    history: Vec<HistoryRow>,
}

/// One competing value as stored in a conflict summary.
#[derive(Debug, Deserialize)]
struct StoredCompeting {
    value: serde_json::Value,
    cadre: String,
    device: String,
    at_ms: i64,
    #[serde(default)]
    shown: bool,
}

/// `GET /records/{id}`: current values, every competing value of a conflict (with the
/// resolve form for the township office) and the field history. A record outside the
/// view answers exactly as an unknown id.
pub async fn one(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || PageError::not_found("没有这条记录。", "No such record.");
    let id = RecordId::from_str(&id).map_err(|_| not_found())?;
    blocking(move || {
        let schema = state.hub.schema();
        let view = user_view(schema, &user)?;
        let stored = state
            .storage
            .stored_records(&[id])
            .map_err(|e| PageError::internal("record read", e))?;
        let r = stored
            .iter()
            .find(|r| view.sees_record(&r.entity, r.village.as_deref()))
            .ok_or_else(not_found)?;
        let rec = project(&view, r, None).map_err(|e| PageError::internal("projection", e))?;
        let page = record_page(&state, schema, &view, &user, &rec)?;
        render(&page)
    })
    .await
}

fn record_page(
    state: &AppState,
    schema: &Schema,
    view: &DepartmentDef,
    user: &ConsoleUser,
    rec: &Record<'_>,
) -> Result<RecordPage, PageError> {
    let (s, en) = (user.lang.strings(), user.lang.en());
    let names = Names::read(state)?;
    let fields = view
        .fields_of(rec.entity)
        .iter()
        .map(|f| {
            let raw: Option<serde_json::Value> = rec
                .values
                .get(f.as_str())
                .and_then(|v| serde_json::from_str(v.get()).ok());
            let value = raw
                .as_ref()
                .map(|v| schema.display(f, v, en))
                .unwrap_or_default();
            let competing: Vec<StoredCompeting> = rec
                .conflicts
                .get(f.as_str())
                .and_then(|v| serde_json::from_str(v.get()).ok())
                .unwrap_or_default();
            FieldRow {
                key: f.clone(),
                label: schema
                    .field(f)
                    .map_or_else(|| f.clone(), |d| d.labels.get(en).to_owned()),
                attachment: attachment_link(schema, rec, f, raw.as_ref()),
                value,
                competing: competing
                    .into_iter()
                    .map(|c| Competing {
                        value: schema.display(f, &c.value, en),
                        json: c.value.to_string(),
                        by: names.who(state, &c.cadre),
                        at: clock::local(c.at_ms).format("%Y-%m-%d %H:%M").to_string(),
                        phone: names.phone(&c.device),
                        shown: c.shown,
                    })
                    .collect(),
            }
        })
        .collect();
    let id = RecordId::from_str(&rec.id).map_err(|e| PageError::internal("record id", e))?;
    Ok(RecordPage {
        l: Layout::of(user, schema, "/records"),
        s,
        id: rec.id.clone(),
        title: schema
            .entity(rec.entity)
            .map_or_else(|| rec.entity.to_owned(), |e| e.labels.get(en).to_owned()),
        village: village_label(schema, rec.village, s, en),
        deleted: rec.deleted,
        fields,
        can_resolve: may_resolve(user) && !rec.deleted,
        history: field_history(state, schema, view, rec.entity, id, &names, en)?,
    })
}
