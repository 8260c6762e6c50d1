//! Department pull: the merged records of a department's view, and only its fields and
//! villages, as paged JSON, streamed NDJSON, CSV for Excel, and a replayable feed.
//!
//! Every format goes through [`write_record`] / [`csv_row`], which project the stored
//! summary onto the department's fields, so no format can leak a field another one
//! hides. The read path never decodes a document: it reads the JSON summaries the hub
//! stored at merge time and copies values through as raw JSON (no re-parsing of values).
//! NDJSON and CSV stream page by page through a bounded channel, so memory stays flat
//! however many records there are.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use yibiao_model::RecordId;
use yibiao_model::schema::{DepartmentDef, VillageScope};

use super::blocking;
use crate::AppState;
use crate::error::ApiError;
use crate::storage::{RecordFilter, StoredRecord};

/// Largest page of the JSON and feed endpoints.
pub const MAX_LIMIT: usize = 1000;
const STREAM_PAGE: usize = 2000;

fn param_error(name: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("query parameter `{name}`: {problem}"))
}

pub(crate) fn only_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    for k in params.keys() {
        if !known.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{k}`; this endpoint takes: {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(100),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(param_error(
                "limit",
                format!("expected a whole number from 1 to {MAX_LIMIT}, got \"{v}\""),
            )),
        },
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(param_error(
            name,
            format!("expected true or false, got \"{v}\""),
        )),
    }
}

/// The storage filter of a department, narrowed by `entity` and `village` parameters.
fn filter(
    state: &AppState,
    dept: &DepartmentDef,
    params: &HashMap<String, String>,
) -> Result<RecordFilter, ApiError> {
    let schema = state.hub.schema();
    let entities = dept.entities.clone();
    let villages = match &dept.villages {
        VillageScope::All => None,
        VillageScope::Only(list) => Some(list.clone()),
    };
    let entity = params.get("entity").cloned();
    if let Some(e) = &entity {
        if schema.entity(e).is_none() {
            return Err(param_error("entity", format!("unknown entity type `{e}`")));
        }
        if !entities.contains(e) {
            return Err(ApiError::Forbidden(format!(
                "department `{}` does not see `{e}` records",
                dept.key
            )));
        }
    }
    let village = params.get("village").cloned();
    if let Some(v) = &village {
        if !schema.has_village(v) {
            return Err(param_error("village", format!("unknown village `{v}`")));
        }
        if !dept.sees_village(Some(v)) {
            return Err(ApiError::Forbidden(format!(
                "department `{}` does not see village `{v}`",
                dept.key
            )));
        }
    }
    Ok(RecordFilter {
        entities,
        villages,
        entity,
        village,
        include_deleted: flag(params, "include_deleted")?,
    })
}

fn parse_map(json: &str) -> Result<BTreeMap<&str, &RawValue>, ApiError> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(error = %e, "stored record summary is not a JSON object of plain keys");
        ApiError::Internal
    })
}

/// Appends one record as a JSON object, projected on the department's fields.
pub fn write_record(
    buf: &mut Vec<u8>,
    dept: &DepartmentDef,
    r: &StoredRecord,
    seq: Option<u64>,
) -> Result<(), ApiError> {
    let values = parse_map(&r.values_json)?;
    let conflicts = if r.conflicts_json == "{}" {
        BTreeMap::new()
    } else {
        parse_map(&r.conflicts_json)?
    };
    let visible_conflicts: Vec<(&str, &RawValue)> = conflicts
        .into_iter()
        .filter(|(k, _)| dept.sees_field(k))
        .collect();
    buf.push(b'{');
    if let Some(seq) = seq {
        buf.extend_from_slice(format!("\"seq\":{seq},").as_bytes());
    }
    buf.extend_from_slice(b"\"id\":\"");
    buf.extend_from_slice(r.id.to_string().as_bytes());
    buf.extend_from_slice(b"\",\"entity\":");
    serde_json::to_writer(&mut *buf, &r.entity).map_err(|_| ApiError::Internal)?;
    buf.extend_from_slice(b",\"village\":");
    serde_json::to_writer(&mut *buf, &r.village).map_err(|_| ApiError::Internal)?;
    buf.extend_from_slice(if r.deleted {
        b",\"deleted\":true"
    } else {
        b",\"deleted\":false"
    });
    buf.extend_from_slice(if visible_conflicts.is_empty() {
        b",\"conflicted\":false"
    } else {
        b",\"conflicted\":true"
    });
    buf.extend_from_slice(b",\"values\":{");
    let mut first = true;
    for (k, v) in values.iter().filter(|(k, _)| dept.sees_field(k)) {
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.push(b'"');
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"\":");
        buf.extend_from_slice(v.get().as_bytes());
    }
    buf.extend_from_slice(b"},\"conflicts\":{");
    for (i, (k, v)) in visible_conflicts.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'"');
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"\":");
        buf.extend_from_slice(v.get().as_bytes());
    }
    buf.extend_from_slice(b"}}");
    Ok(())
}

fn department(state: &AppState, headers: &HeaderMap) -> Result<DepartmentDef, ApiError> {
    let (dept, token_key) =
        crate::auth::department(state.storage.as_ref(), state.hub.schema(), headers)?;
    state.limiter.check(&token_key).map_err(|s| {
        state
            .metrics
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::RateLimited(s)
    })?;
    Ok(dept)
}

/// `GET /v1/records`: one page of JSON.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_known(
        &params,
        &["limit", "after", "entity", "village", "include_deleted"],
    )?;
    let limit = limit(&params)?;
    let after = match params.get("after") {
        None => None,
        Some(a) => Some(a.parse::<RecordId>().map_err(|e| param_error("after", e))?),
    };
    blocking(move || {
        let dept = department(&state, &headers)?;
        let f = filter(&state, &dept, &params)?;
        let page = state
            .storage
            .records_page(&f, after, limit + 1)
            .map_err(internal)?;
        let more = page.len() > limit;
        let mut buf = Vec::with_capacity(page.len() * 512 + 64);
        buf.extend_from_slice(b"{\"records\":[");
        for (i, r) in page.iter().take(limit).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_record(&mut buf, &dept, r, None)?;
        }
        buf.extend_from_slice(b"],\"next\":");
        match page.get(limit.saturating_sub(1)).filter(|_| more) {
            Some(last) => buf.extend_from_slice(format!("\"{}\"", last.id).as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
        buf.push(b'}');
        state.metrics.served("json", page.len().min(limit) as u64);
        Ok(([(header::CONTENT_TYPE, "application/json")], buf).into_response())
    })
    .await
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "department read failed");
    ApiError::Internal
}

/// Streams every record of the filter, page by page, through `render`.
fn stream(
    state: AppState,
    f: RecordFilter,
    head: Vec<u8>,
    format: &'static str,
    render: impl Fn(&mut Vec<u8>, &StoredRecord) -> Result<(), ApiError> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        if !head.is_empty() && tx.blocking_send(Ok(Bytes::from(head))).is_err() {
            return;
        }
        let mut after = None;
        loop {
            let page = match state.storage.records_page(&f, after, STREAM_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "stream read failed; cutting the response");
                    let _ = tx.blocking_send(Err(std::io::Error::other("read failed")));
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some(last.id);
            let mut buf = Vec::with_capacity(page.len() * 400);
            for r in &page {
                if render(&mut buf, r).is_err() {
                    let _ = tx.blocking_send(Err(std::io::Error::other("render failed")));
                    return;
                }
            }
            state.metrics.served(format, page.len() as u64);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
            if page.len() < STREAM_PAGE {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// `GET /v1/records.ndjson`: every record, one JSON object per line, streamed.
pub async fn ndjson(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_known(&params, &["entity", "village", "include_deleted"])?;
    let s = state.clone();
    let (dept, f) = blocking(move || {
        let dept = department(&s, &headers)?;
        let f = filter(&s, &dept, &params)?;
        Ok((dept, f))
    })
    .await?;
    let body = stream(state, f, Vec::new(), "ndjson", move |buf, r| {
        write_record(buf, &dept, r, None)?;
        buf.push(b'\n');
        Ok(())
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn csv_cell(raw: Option<&&RawValue>) -> String {
    match raw {
        None => String::new(),
        Some(v) => {
            let text = v.get();
            if text.starts_with('"') {
                serde_json::from_str::<String>(text).unwrap_or_default()
            } else {
                text.to_owned()
            }
        }
    }
}

/// One CSV row: id, village, entity, conflicted fields, then `columns`.
fn csv_row(
    writer: &mut csv::Writer<Vec<u8>>,
    columns: &[String],
    dept: &DepartmentDef,
    r: &StoredRecord,
) -> Result<(), ApiError> {
    let values = parse_map(&r.values_json)?;
    let conflicts = if r.conflicts_json == "{}" {
        BTreeMap::new()
    } else {
        parse_map(&r.conflicts_json)?
    };
    let conflicted: Vec<&str> = conflicts
        .keys()
        .copied()
        .filter(|k| dept.sees_field(k))
        .collect();
    let mut row = vec![
        r.id.to_string(),
        r.village.clone().unwrap_or_default(),
        r.entity.clone(),
        conflicted.join(";"),
    ];
    row.extend(columns.iter().map(|c| csv_cell(values.get(c.as_str()))));
    writer.write_record(&row).map_err(internal)
}

/// `GET /v1/records.csv`: UTF-8 with a BOM so Excel shows Chinese text; one column per
/// field of the department's view (or of `form`), Chinese labels in the header.
pub async fn csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(mut params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_known(&params, &["form", "entity", "village", "include_deleted"])?;
    let s = state.clone();
    let (dept, f, columns) = blocking(move || {
        let dept = department(&s, &headers)?;
        let schema = s.hub.schema();
        let columns: Vec<String> = match params.get("form") {
            Some(form_key) => {
                let form = schema
                    .form(form_key)
                    .ok_or_else(|| param_error("form", format!("unknown form `{form_key}`")))?;
                if !dept.forms.contains(form_key) {
                    return Err(ApiError::Forbidden(format!(
                        "department `{}` does not read form `{form_key}`",
                        dept.key
                    )));
                }
                if params.get("entity").is_some_and(|e| *e != form.entity) {
                    return Err(param_error(
                        "entity",
                        format!("form `{form_key}` is for `{}` records", form.entity),
                    ));
                }
                params.insert("entity".into(), form.entity.clone());
                form.fields
                    .iter()
                    .filter(|f| dept.sees_field(f))
                    .cloned()
                    .collect()
            }
            None => dept.fields.clone(),
        };
        let f = filter(&s, &dept, &params)?;
        Ok((dept, f, columns))
    })
    .await?;
    let schema = state.hub.schema().clone();
    let mut head = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header_row = vec![
            "记录ID id".to_owned(),
            "村 village".into(),
            "类型 entity".into(),
            "冲突 conflicts".into(),
        ];
        header_row.extend(columns.iter().map(|c| match schema.field(c) {
            Some(d) => format!("{} {c}", d.labels.zh),
            None => c.clone(),
        }));
        w.write_record(&header_row).map_err(internal)?;
        head.extend(w.into_inner().map_err(internal)?);
    }
    let body = stream(state, f, head, "csv", move |buf, r| {
        let mut w = csv::Writer::from_writer(Vec::new());
        csv_row(&mut w, &columns, &dept, r)?;
        buf.extend(w.into_inner().map_err(internal)?);
        Ok(())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"yibiao.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/feed`: everything that changed since `cursor`, in order; replayable.
pub async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    only_known(&params, &["cursor", "limit", "entity", "village"])?;
    let limit = limit(&params)?;
    let cursor = match params.get("cursor") {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            param_error(
                "cursor",
                format!(
                    "expected the `next_cursor` of a previous answer (a whole number), got \"{c}\""
                ),
            )
        })?,
    };
    blocking(move || {
        let dept = department(&state, &headers)?;
        let f = filter(&state, &dept, &params)?;
        let page = state
            .storage
            .feed_page(&f, cursor, limit + 1)
            .map_err(internal)?;
        let more = page.len() > limit;
        let mut changes = Vec::with_capacity(page.len().min(limit));
        let mut next = cursor;
        for (seq, r) in page.iter().take(limit) {
            let mut buf = Vec::new();
            write_record(&mut buf, &dept, r, Some(*seq))?;
            changes.push(serde_json::from_slice::<serde_json::Value>(&buf).map_err(internal)?);
            next = *seq;
        }
        state.metrics.served("feed", changes.len() as u64);
        Ok(Json(
            serde_json::json!({ "changes": changes, "next_cursor": next, "more": more }),
        ))
    })
    .await
}
