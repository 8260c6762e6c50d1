//! Department pull: the merged records of a department's view, and only its fields and
//! villages, as paged JSON, streamed NDJSON, CSV for Excel ([`csv`]), and a replayable
//! feed.
//!
//! Every format goes through [`project`] (and CSV through its row of the same
//! projection), so no format can leak a field another one hides. The read path never
//! decodes a document: it reads the JSON summaries the hub stored at merge time and
//! copies values through as raw JSON (no re-parsing of values). NDJSON and CSV stream
//! page by page through a bounded channel, so memory stays flat however many records
//! there are; each stream holds a slot (per token and overall) and ends when the client
//! leaves a page untaken past the write deadline.

pub mod csv;
pub mod sheet;
pub mod xlsx;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yibiao_model::Schema;
use yibiao_model::schema::{DepartmentDef, ViewError};

use crate::auth::{Department, DepartmentStream};
use crate::error::{ApiError, ErrorBody};
use crate::limits::{NoSlot, StreamPermit};
use crate::params::{After, Cursor, Flag, Limit, Query};
use crate::state::AppState;
use crate::storage::{RecordFilter, StoredRecord};

const STREAM_PAGE: usize = 2000;

/// The department pull routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(ndjson))
        .routes(routes!(csv::csv))
        .routes(routes!(xlsx::xlsx))
        .routes(routes!(feed))
}

/// One record as a department sees it: only the fields of its view.
#[derive(Debug, Serialize, ToSchema)]
pub struct Record<'a> {
    /// The record's position in the feed (feed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Record id (a UUIDv7: ids sort by creation).
    #[schema(format = Uuid)]
    pub id: String,
    /// Entity type.
    pub entity: &'a str,
    /// Village; null for township-level records.
    pub village: Option<&'a str>,
    /// Tombstoned.
    pub deleted: bool,
    /// Some field of the view holds competing values.
    pub conflicted: bool,
    /// Field key -> value, only the department's fields.
    #[schema(value_type = Object)]
    pub values: BTreeMap<&'a str, &'a RawValue>,
    /// Field key -> every competing value with cadre, device, at_ms.
    #[schema(value_type = Object)]
    pub conflicts: BTreeMap<&'a str, &'a RawValue>,
}

fn parse_map(json: &str) -> Result<BTreeMap<&str, &RawValue>, ApiError> {
    serde_json::from_str(json).map_err(|e| {
        ApiError::internal(
            "stored record summary is not a JSON object of plain keys",
            e,
        )
    })
}

/// A stored record projected on the department's fields.
pub fn project<'a>(
    dept: &DepartmentDef,
    r: &'a StoredRecord,
    seq: Option<u64>,
) -> Result<Record<'a>, ApiError> {
    let values = dept
        .project(&r.entity, parse_map(&r.values_json)?)
        .collect();
    let conflicts = if r.conflicts_json == "{}" {
        BTreeMap::new()
    } else {
        dept.project(&r.entity, parse_map(&r.conflicts_json)?)
            .collect()
    };
    Ok(Record {
        seq,
        id: r.id.to_string(),
        entity: &r.entity,
        village: r.village.as_deref(),
        deleted: r.deleted,
        conflicted: !conflicts.is_empty(),
        values,
        conflicts,
    })
}

/// The storage filter of a department, narrowed by `entity` and `village` parameters
/// (the schema's [`DepartmentDef::filter`] decides; this only names the parameter).
fn filter(
    schema: &Schema,
    dept: &DepartmentDef,
    entity: Option<String>,
    village: Option<String>,
    include_deleted: Flag,
) -> Result<RecordFilter, ApiError> {
    let view = dept
        .filter(schema, entity.as_deref(), village.as_deref())
        .map_err(|e| match e {
            ViewError::UnknownEntity(_) => ApiError::query_parameter("entity", e),
            ViewError::UnknownVillage(_) => ApiError::query_parameter("village", e),
            ViewError::HiddenEntity { .. } | ViewError::HiddenVillage { .. } => {
                ApiError::Forbidden(e.to_string())
            }
        })?;
    Ok(RecordFilter {
        view,
        include_deleted: include_deleted.0,
    })
}

fn read_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("department read failed", e)
}

/// Query of `GET /v1/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Limit,
    /// The `next` of the previous page.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<After>,
    /// Only this entity type (must be one the department sees).
    pub entity: Option<String>,
    /// Only this village (must be one the department sees).
    pub village: Option<String>,
    /// Include tombstoned records.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub include_deleted: Flag,
}

/// One page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsPage<'a> {
    /// The records, by id.
    pub records: Vec<Record<'a>>,
    /// Give it as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// One page of the department's records (its fields and villages only).
#[utoipa::path(get, path = "/v1/records", operation_id = "list_records", tag = "departments", security(("department" = [])),
    params(PullParams),
    responses(
        (status = 200, description = "one page", body = RecordsPage),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked department token", body = ErrorBody),
        (status = 403, description = "an entity or village outside the view", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn list(
    Department(dept): Department,
    State(state): State<AppState>,
    Query(q): Query<PullParams>,
) -> Result<Response, ApiError> {
    let f = filter(
        state.hub.schema(),
        &dept,
        q.entity,
        q.village,
        q.include_deleted,
    )?;
    let (limit, after) = (q.limit.0, q.after.map(|a| a.0));
    tokio::task::spawn_blocking(move || {
        let page = state
            .storage
            .records_page(&f, after, limit + 1)
            .map_err(read_failed)?;
        let more = page.len() > limit;
        let records = page
            .iter()
            .take(limit)
            .map(|r| project(&dept, r, None))
            .collect::<Result<Vec<_>, _>>()?;
        let next = records.last().filter(|_| more).map(|r| r.id.clone());
        state.metrics.served("json", records.len() as u64);
        Ok(Json(RecordsPage { records, next }).into_response())
    })
    .await?
}

/// Streams every record of the filter, page by page, through `render` (which gets a
/// page at a time); the body holds
/// `permit` (its stream slot) until the response is dropped (sent, or its connection
/// closed).
///
/// An async task reads each page on the blocking pool (a short read, never a wait on the
/// client) and hands it to a channel of two pages. A page the client has not taken within
/// `write_timeout_secs` ends the stream: the task stops, the slot is freed, and the body
/// ends with an error so the client cannot take the cut for the end (the connection's
/// own write deadline, [`crate::limits::StallGuard`], then closes the socket).
fn stream(
    state: AppState,
    f: RecordFilter,
    head: Vec<u8>,
    format: &'static str,
    permit: StreamPermit,
    render: impl Fn(&mut Vec<u8>, &[StoredRecord]) -> Result<(), ApiError> + Send + Sync + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let cut = Arc::new(AtomicBool::new(false));
    let body = PageStream {
        rx,
        cut: cut.clone(),
        _permit: permit,
    };
    let deadline = Duration::from_secs(state.config.write_timeout_secs);
    let render = Arc::new(render);
    tokio::spawn(async move {
        let give = |item: Result<Bytes, std::io::Error>| {
            let tx = tx.clone();
            async move {
                matches!(
                    tokio::time::timeout(deadline, tx.send(item)).await,
                    Ok(Ok(()))
                )
            }
        };
        if !head.is_empty() && !give(Ok(Bytes::from(head))).await {
            cut.store(true, Relaxed);
            return;
        }
        let mut after = None;
        loop {
            let (st, f, render) = (state.clone(), f.clone(), render.clone());
            let page = tokio::task::spawn_blocking(move || {
                let page = st
                    .storage
                    .records_page(&f, after, STREAM_PAGE)
                    .map_err(read_failed)?;
                let mut buf = Vec::with_capacity(page.len() * 400);
                render(&mut buf, &page)?;
                Ok::<_, ApiError>((buf, page.len(), page.last().map(|r| r.id)))
            })
            .await;
            let (buf, n, last) = match page {
                Ok(Ok(page)) => page,
                Ok(Err(_)) | Err(_) => {
                    tracing::error!("stream read failed; cutting the response");
                    let _ = give(Err(std::io::Error::other("read failed"))).await;
                    return;
                }
            };
            if n == 0 {
                return;
            }
            state.metrics.served(format, n as u64);
            if !give(Ok(Bytes::from(buf))).await {
                if !tx.is_closed() {
                    tracing::warn!(
                        format,
                        "a stream's client read nothing for {deadline:?}; ended"
                    );
                }
                cut.store(true, Relaxed);
                return;
            }
            if n < STREAM_PAGE {
                return;
            }
            after = last;
        }
    });
    Body::from_stream(body)
}

/// The pages of a stream, ending with an error when the producer cut it short.
struct PageStream {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    cut: Arc<AtomicBool>,
    _permit: StreamPermit,
}

impl tokio_stream::Stream for PageStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(None) if self.cut.swap(false, Relaxed) => {
                std::task::Poll::Ready(Some(Err(std::io::Error::other(
                    "the client was too slow; stream ended",
                ))))
            }
            other => other,
        }
    }
}

/// The stream slot of a department's request, or the refusal (`429` for the token,
/// `503` for the server).
fn stream_slot(state: &AppState, key: &str) -> Result<StreamPermit, ApiError> {
    state.guards.streams.acquire(key).map_err(|no| {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        match no {
            NoSlot::Token(n) => {
                tracing::info!(token = key, "stream refused: {n} already open");
                ApiError::RateLimited(1)
            }
            NoSlot::Server(n) => {
                ApiError::Busy(format!("the server has {n} streams open; retry shortly"))
            }
        }
    })
}

/// Query of `GET /v1/records.ndjson`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only this entity type (must be one the department sees).
    pub entity: Option<String>,
    /// Only this village (must be one the department sees).
    pub village: Option<String>,
    /// Include tombstoned records.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub include_deleted: Flag,
}

/// Every record of the department's view, one JSON object per line, streamed.
#[utoipa::path(get, path = "/v1/records.ndjson", tag = "departments", security(("department" = [])),
    params(StreamParams),
    responses(
        (status = 200, description = "one record per line", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked department token", body = ErrorBody),
        (status = 403, description = "an entity or village outside the view", body = ErrorBody),
        (status = 429, description = "too many requests or open streams for this token", body = ErrorBody),
        (status = 503, description = "the server has all its streams open", body = ErrorBody),
    ))]
pub async fn ndjson(
    DepartmentStream { dept, key }: DepartmentStream,
    State(state): State<AppState>,
    Query(q): Query<StreamParams>,
) -> Result<Response, ApiError> {
    let f = filter(
        state.hub.schema(),
        &dept,
        q.entity,
        q.village,
        q.include_deleted,
    )?;
    let permit = stream_slot(&state, &key)?;
    let body = stream(state, f, Vec::new(), "ndjson", permit, move |buf, page| {
        for r in page {
            serde_json::to_writer(&mut *buf, &project(&dept, r, None)?).map_err(read_failed)?;
            buf.push(b'\n');
        }
        Ok(())
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Query of `GET /v1/feed`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The `next_cursor` of the previous answer (0 = from the start).
    #[serde(default)]
    #[param(value_type = Option<u64>, minimum = 0)]
    pub cursor: Cursor,
    /// Changes per answer, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Limit,
    /// Only this entity type (must be one the department sees).
    pub entity: Option<String>,
    /// Only this village (must be one the department sees).
    pub village: Option<String>,
}

/// One answer of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage<'a> {
    /// Changed records in feed order, each with its `seq`.
    pub changes: Vec<Record<'a>>,
    /// Give it as `cursor` to continue.
    pub next_cursor: u64,
    /// More changes wait after this answer.
    pub more: bool,
}

/// Everything that changed since `cursor`, in order; replay from any cursor.
#[utoipa::path(get, path = "/v1/feed", tag = "departments", security(("department" = [])),
    params(FeedParams),
    responses(
        (status = 200, description = "changes after the cursor", body = FeedPage),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked department token", body = ErrorBody),
        (status = 403, description = "an entity or village outside the view", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn feed(
    Department(dept): Department,
    State(state): State<AppState>,
    Query(q): Query<FeedParams>,
) -> Result<Response, ApiError> {
    let f = filter(state.hub.schema(), &dept, q.entity, q.village, Flag(false))?;
    let (cursor, limit) = (q.cursor.0, q.limit.0);
    tokio::task::spawn_blocking(move || {
        let page = feed_body(state.storage.as_ref(), &dept, &f, cursor, limit)?;
        state.metrics.served("feed", page.count as u64);
        Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            page.json,
        )
            .into_response())
    })
    .await?
}

/// One page of a department's feed, as the JSON body [`FeedPage`] of `GET /v1/feed`.
#[derive(Debug)]
pub struct FeedBody {
    /// The serialized [`FeedPage`].
    pub json: Vec<u8>,
    /// Changes in it.
    pub count: usize,
    /// Feed position of its first change.
    pub first_position: Option<u64>,
    /// Its `next_cursor`.
    pub next_cursor: u64,
    /// More changes wait after it.
    pub more: bool,
}

/// The changes of `dept`'s view (filter `f`) after `cursor`, at most `limit`, projected
/// to its fields: the one home of the feed's projection, for `GET /v1/feed` and the
/// webhooks alike.
pub fn feed_body(
    storage: &dyn crate::storage::ServerStorage,
    dept: &DepartmentDef,
    f: &RecordFilter,
    cursor: u64,
    limit: usize,
) -> Result<FeedBody, ApiError> {
    let page = storage
        .feed_page(f, cursor, limit + 1)
        .map_err(read_failed)?;
    let more = page.len() > limit;
    let changes = page
        .iter()
        .take(limit)
        .map(|(seq, r)| project(dept, r, Some(*seq)))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = changes.last().and_then(|c| c.seq).unwrap_or(cursor);
    let (count, first_position) = (changes.len(), changes.first().and_then(|c| c.seq));
    let json = serde_json::to_vec(&FeedPage {
        changes,
        next_cursor,
        more,
    })
    .map_err(|e| ApiError::internal("feed encoding failed", e))?;
    Ok(FeedBody {
        json,
        count,
        first_position,
        next_cursor,
        more,
    })
}

/// The webhooks' [`crate::webhooks::FeedReader`]: the page of department `department`'s
/// whole view after `cursor` as a delivery batch, `None` when nothing is new.
pub fn feed_batch(
    state: &AppState,
    department: &str,
    cursor: u64,
    limit: usize,
) -> Result<Option<crate::storage::NewDelivery>, String> {
    let schema = state.hub.schema();
    let dept = schema
        .department(department)
        .ok_or_else(|| format!("department `{department}` is not in the schema served"))?;
    let filter = department_filter(schema, dept).map_err(|e| e.to_string())?;
    let page = feed_body(state.storage.as_ref(), dept, &filter, cursor, limit)
        .map_err(|e| e.to_string())?;
    let Some(first_position) = page.first_position else {
        return Ok(None);
    };
    Ok(Some(crate::storage::NewDelivery {
        first_position,
        last_position: page.next_cursor,
        records: u32::try_from(page.count).unwrap_or(u32::MAX),
        body: String::from_utf8(page.json).map_err(|e| e.to_string())?,
    }))
}

/// The whole view of `dept` as a storage filter (what its feed and webhooks carry).
pub fn department_filter(schema: &Schema, dept: &DepartmentDef) -> Result<RecordFilter, ApiError> {
    filter(schema, dept, None, None, Flag(false))
}
