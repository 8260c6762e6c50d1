//! Tasks, progress, the village x form summary and the burden report, shared by the HTTP
//! API and the CLI so both give the same answers and the same refusals.
//!
//! A task is issued as one document per target village ([`yibiao_model::task`]); the
//! hub commits them in one transaction, so they enter the feed together and each phone
//! receives exactly its village's on its next sync. Progress is read from the stored
//! summaries (receipts the phones wrote) and from the records themselves: a village is
//! done when a phone says so *or* when every target record has the form's required
//! fields, whoever filled them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yibiao_model::clock;
use yibiao_model::messages::{Lang, Message};
use yibiao_model::schema::{DepartmentDef, FormDef};
use yibiao_model::task::{
    self as task, DoneHow, MAX_INSTRUCTIONS_CHARS, MAX_TITLE_CHARS, Receipt, TaskFacts, TaskSpec,
    new_task_doc,
};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema};

use crate::state::ServerHub;
use crate::storage::{ServerStorage, TaskDocRow};

/// Most target records one task may name.
pub const MAX_TARGET_RECORDS: usize = 10_000;

/// Who issues a task or asks for a report.
#[derive(Debug, Clone)]
pub enum Issuer {
    /// The township (admin token or CLI): any form, any village.
    Township,
    /// A department: its forms and villages only.
    Department(DepartmentDef),
}

impl Issuer {
    /// The name stored in the task: the department key or `township`.
    pub fn name(&self) -> &str {
        match self {
            Issuer::Township => "township",
            Issuer::Department(d) => &d.key,
        }
    }

    /// The author of the changes the server writes for this issuer.
    fn author(&self) -> Result<Author, TaskError> {
        Ok(Author {
            cadre: CadreId::new(self.name()).map_err(|e| TaskError::Invalid(e.to_string()))?,
            device: DeviceId::new("server").map_err(|e| TaskError::Invalid(e.to_string()))?,
        })
    }

    fn sees_village(&self, village: Option<&str>) -> bool {
        match self {
            Issuer::Township => true,
            Issuer::Department(d) => d.sees_village(village),
        }
    }
}

/// Why a task operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The request is wrong, as a code with parameters (worded in the asker's language).
    #[error("{}", .0.render(Lang::En))]
    Refused(Message),
    /// The issuer may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The issuer may not do this, as a code with parameters.
    #[error("{}", .0.render(Lang::En))]
    Denied(Message),
    /// The task or a record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<yibiao_sync::hub::StorageError> for TaskError {
    fn from(e: yibiao_sync::hub::StorageError) -> Self {
        TaskError::Storage(e.0)
    }
}

/// A task as asked for over HTTP or the CLI.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// Short title.
    pub title: String,
    /// What to do.
    #[serde(default)]
    pub instructions: String,
    /// The form to fill.
    pub form: String,
    /// `YYYY-MM-DD` (end of that day, UTC+8) or an RFC 3339 time.
    pub due: String,
    /// Target villages (`["*"]`: every village the issuer sees). Give this or `records`.
    #[serde(default)]
    pub villages: Option<Vec<String>>,
    /// Target record ids (UUIDs). Give this or `villages`.
    #[serde(default)]
    pub records: Option<Vec<String>>,
}

/// Where a task stands in one village: the model's one rule ([`TaskStatus::of`]).
pub use yibiao_model::task::TaskStatus as Status;

/// Progress of a task in one village.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VillageProgress {
    /// The village (`None`: township-level records).
    pub village: Option<String>,
    /// The task document delivered to this village.
    pub document: String,
    /// Where it stands.
    pub status: Status,
    /// A phone of the village received it.
    pub delivered: bool,
    /// A cadre opened it.
    pub opened: bool,
    /// Done.
    pub done: bool,
    /// Past due and not done.
    pub overdue: bool,
    /// First delivery, ms since the epoch.
    pub delivered_ms: Option<i64>,
    /// First opening.
    pub opened_ms: Option<i64>,
    /// When a phone recorded it done.
    pub done_ms: Option<i64>,
    /// `complete` (every target record filled) or `marked` (a cadre said so).
    #[schema(value_type = Option<String>)]
    pub done_how: Option<DoneHow>,
    /// The cadre's note, when marked done.
    pub note: Option<String>,
    /// The cadre who marked it or whose phone saw it complete.
    pub done_by: Option<String>,
    /// Phones that hold it.
    pub phones: usize,
    /// Target records with every required field of the form.
    pub records_complete: u32,
    /// Target records (live ones; a named target not yet on the server counts as incomplete).
    pub records_total: u32,
}

/// Counts of villages by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusCounts {
    /// Not yet delivered.
    pub sent: u32,
    /// Delivered, not opened.
    pub delivered: u32,
    /// Opened, not done.
    pub opened: u32,
    /// Overdue.
    pub overdue: u32,
    /// Done.
    pub done: u32,
    /// Cancelled.
    pub cancelled: u32,
}

impl StatusCounts {
    fn add_all(&mut self, o: &StatusCounts) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.opened += o.opened;
        self.overdue += o.overdue;
        self.done += o.done;
        self.cancelled += o.cancelled;
    }

    fn add(&mut self, s: Status) {
        match s {
            Status::Sent => self.sent += 1,
            Status::Delivered => self.delivered += 1,
            Status::Opened => self.opened += 1,
            Status::Overdue => self.overdue += 1,
            Status::Done => self.done += 1,
            Status::Cancelled => self.cancelled += 1,
        }
    }
}

/// A task with its progress in every target village.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskProgress {
    /// Task id.
    pub task: String,
    /// Title.
    pub title: String,
    /// Instructions.
    pub instructions: String,
    /// Form to fill.
    pub form: String,
    /// Due, as given.
    pub due: String,
    /// Due, ms since the epoch.
    pub due_ms: i64,
    /// Issuer.
    pub issuer: String,
    /// Issued at, ms since the epoch.
    pub created_ms: i64,
    /// Cancelled by the issuer.
    pub cancelled: bool,
    /// Villages by status.
    pub counts: StatusCounts,
    /// Per village.
    pub villages: Vec<VillageProgress>,
}

#[derive(Deserialize)]
struct StoredTask {
    spec: TaskSpec,
    #[serde(default)]
    receipts: BTreeMap<String, Receipt>,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    created_ms: i64,
}

fn check_form<'a>(
    schema: &'a Schema,
    issuer: &Issuer,
    form: &str,
) -> Result<&'a FormDef, TaskError> {
    let def = schema.form(form).ok_or_else(|| {
        let known: Vec<&str> = schema.forms.keys().map(String::as_str).collect();
        TaskError::Refused(
            Message::new("task_unknown_form")
                .with("form", form)
                .with("known", known.join(", ")),
        )
    })?;
    if let Issuer::Department(d) = issuer
        && !d.forms.iter().any(|f| f == form)
    {
        return Err(TaskError::Denied(
            Message::new("task_form_forbidden")
                .with("department", d.key.as_str())
                .with("forms", d.forms.join(", ")),
        ));
    }
    Ok(def)
}

/// Where a task goes: village -> its target records (`None`: every record of the form).
type Targets = BTreeMap<Option<String>, Option<Vec<RecordId>>>;

/// Issues a task: one document per target village, committed together. Returns its
/// progress (every village `sent`).
pub fn issue(
    hub: &ServerHub,
    storage: &dyn ServerStorage,
    issuer: &Issuer,
    req: &NewTask,
    now_ms: i64,
) -> Result<TaskProgress, TaskError> {
    let schema = hub.schema().clone();
    let title = check_text(req)?;
    let form = check_form(&schema, issuer, &req.form)?;
    let (due, due_ms) = task::due(&req.due).map_err(TaskError::Refused)?;
    if due_ms <= now_ms {
        return Err(TaskError::Refused(
            Message::new("due_past").with("due", due),
        ));
    }
    let targets = match (&req.villages, &req.records) {
        (Some(villages), None) => village_targets(&schema, issuer, villages)?,
        (None, Some(records)) => record_targets(storage, issuer, form, &req.form, records)?,
        (Some(_), Some(_)) | (None, None) => {
            return Err(TaskError::Refused(Message::new("task_targets")));
        }
    };
    if targets.is_empty() {
        return Err(TaskError::Refused(Message::new("task_reaches_nothing")));
    }
    let task_id = RecordId::new().to_string();
    let author = issuer.author()?;
    let mut docs = Vec::new();
    for (village, targets) in targets {
        let spec = TaskSpec {
            task: task_id.clone(),
            title: title.to_owned(),
            instructions: req.instructions.trim().to_owned(),
            form: req.form.clone(),
            due: due.clone(),
            due_ms,
            issuer: issuer.name().to_owned(),
            targets,
        };
        let doc = new_task_doc(
            RecordId::new(),
            hub.actor(),
            &spec,
            &schema.township.id,
            village.as_deref(),
            &author,
            now_ms,
        )
        .map_err(|e| TaskError::Storage(e.to_string()))?;
        docs.push(doc);
    }
    hub.commit_server_docs(docs)?;
    tracing::info!(task = %task_id, issuer = issuer.name(), form = %req.form, "task issued");
    progress(storage, &schema, issuer, &task_id, now_ms)
}

/// The trimmed title, once title and instructions are within their lengths.
fn check_text(req: &NewTask) -> Result<&str, TaskError> {
    let title = req.title.trim();
    if title.is_empty() {
        return Err(TaskError::Refused(Message::new("task_title_empty")));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(TaskError::Refused(
            Message::new("task_title_long").with("max", MAX_TITLE_CHARS.to_string()),
        ));
    }
    if req.instructions.chars().count() > MAX_INSTRUCTIONS_CHARS {
        return Err(TaskError::Refused(
            Message::new("task_instructions_long").with("max", MAX_INSTRUCTIONS_CHARS.to_string()),
        ));
    }
    Ok(title)
}

/// Every record of the form in `villages` (`*`: every village the issuer sees).
fn village_targets(
    schema: &Schema,
    issuer: &Issuer,
    villages: &[String],
) -> Result<Targets, TaskError> {
    if villages.is_empty() {
        return Err(TaskError::Refused(Message::new("task_villages_empty")));
    }
    let list: Vec<String> = if villages.iter().any(|v| v == "*") {
        schema
            .villages
            .keys()
            .filter(|v| issuer.sees_village(Some(v)))
            .cloned()
            .collect()
    } else {
        villages.to_vec()
    };
    let mut targets = Targets::new();
    for v in list {
        if !schema.has_village(&v) {
            let known: Vec<&str> = schema.villages.keys().map(String::as_str).collect();
            return Err(TaskError::Refused(
                Message::new("unknown_village")
                    .with("village", v.as_str())
                    .with("known", known.join(", ")),
            ));
        }
        if !issuer.sees_village(Some(&v)) {
            return Err(TaskError::Denied(
                Message::new("task_village_forbidden")
                    .with("issuer", issuer.name())
                    .with("village", v.as_str()),
            ));
        }
        targets.insert(Some(v), None);
    }
    Ok(targets)
}

/// Named records, grouped by village, once each is on the server, live, of the form's
/// entity and within the issuer's view.
fn record_targets(
    storage: &dyn ServerStorage,
    issuer: &Issuer,
    form: &FormDef,
    form_key: &str,
    records: &[String],
) -> Result<Targets, TaskError> {
    if records.is_empty() {
        return Err(TaskError::Refused(Message::new("task_records_empty")));
    }
    if records.len() > MAX_TARGET_RECORDS {
        return Err(TaskError::Refused(
            Message::new("task_records_many").with("max", MAX_TARGET_RECORDS.to_string()),
        ));
    }
    let mut ids = Vec::with_capacity(records.len());
    for r in records {
        let id: RecordId = r.trim().parse().map_err(|_| {
            TaskError::Refused(
                Message::new("task_bad_record_id")
                    .with("got", r.chars().take(40).collect::<String>()),
            )
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let found: HashMap<RecordId, _> = storage
        .stored_records(&ids)?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut targets = Targets::new();
    for id in ids {
        // The view first, and answered as if absent: a record outside it tells nothing,
        // not its entity type, not whether it is deleted, not that it exists.
        let rec = found
            .get(&id)
            .filter(|rec| issuer.sees_village(rec.village.as_deref()))
            .ok_or_else(|| {
                TaskError::NotFound(format!(
                    "no record {id} that `{}` may see on the server",
                    issuer.name()
                ))
            })?;
        if rec.entity != form.entity {
            return Err(TaskError::Refused(
                Message::new("task_record_entity")
                    .with("record", id.to_string())
                    .with("entity", rec.entity.as_str())
                    .with("form", form_key)
                    .with("form_entity", form.entity.as_str()),
            ));
        }
        if rec.deleted {
            return Err(TaskError::Refused(
                Message::new("task_record_deleted").with("record", id.to_string()),
            ));
        }
        targets
            .entry(rec.village.clone())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(id);
    }
    Ok(targets)
}

/// Cancels a task (its documents get the tombstone; phones drop it from their list).
pub fn cancel(
    hub: &ServerHub,
    storage: &dyn ServerStorage,
    issuer: &Issuer,
    task: &str,
    now_ms: i64,
) -> Result<TaskProgress, TaskError> {
    let rows = visible_docs(storage, issuer, Some(task))?;
    let author = issuer.author()?;
    let ids: Vec<RecordId> = rows.iter().map(|r| r.id).collect();
    // A document set aside for the operator cannot be edited: say so instead of failing
    // the whole cancel as a storage error.
    let set_aside = hub.quarantined();
    if let Some(row) = rows
        .iter()
        .find(|r| set_aside.iter().any(|(q, _)| *q == r.id))
    {
        return Err(TaskError::Refused(
            Message::new("task_set_aside")
                .with("task", task)
                .with("village", row.village.as_deref().unwrap_or("-"))
                .with("record", row.id.to_string()),
        ));
    }
    let changed =
        hub.update_server_docs(&ids, |record| record.set_deleted(true, &author, now_ms))?;
    if changed > 0 {
        tracing::info!(
            task,
            issuer = issuer.name(),
            villages = changed,
            "task cancelled"
        );
    }
    progress(storage, hub.schema(), issuer, task, now_ms)
}

fn visible_docs(
    storage: &dyn ServerStorage,
    issuer: &Issuer,
    task: Option<&str>,
) -> Result<Vec<TaskDocRow>, TaskError> {
    let issuer_filter = match issuer {
        Issuer::Township => None,
        Issuer::Department(d) => Some(d.key.as_str()),
    };
    let rows = storage.task_docs(task, issuer_filter)?;
    if let Some(t) = task
        && rows.is_empty()
    {
        return Err(TaskError::NotFound(format!(
            "no task `{t}` issued by `{}`",
            issuer.name()
        )));
    }
    Ok(rows)
}

/// Current values of one record, parsed.
type Fields = serde_json::Map<String, serde_json::Value>;

/// (entity, village).
type ScopeKey = (String, Option<String>);

/// Parsed current values of live records, per (entity, village), loaded once per report.
#[derive(Default)]
struct Values {
    by_scope: HashMap<ScopeKey, Vec<(RecordId, Fields)>>,
}

fn parse_values(json: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(json).unwrap_or_default()
}

impl Values {
    fn scope(
        &mut self,
        storage: &dyn ServerStorage,
        entity: &str,
        village: Option<&str>,
    ) -> Result<&[(RecordId, Fields)], TaskError> {
        let key = (entity.to_owned(), village.map(str::to_owned));
        if !self.by_scope.contains_key(&key) {
            let rows = storage
                .live_values(entity, village)?
                .into_iter()
                .map(|(id, j)| (id, parse_values(&j)))
                .collect();
            self.by_scope.insert(key.clone(), rows);
        }
        Ok(self.by_scope.get(&key).map(Vec::as_slice).unwrap_or(&[]))
    }
}

fn complete(form: &FormDef, values: &serde_json::Map<String, serde_json::Value>) -> bool {
    form.is_complete(|f| values.contains_key(f))
}

/// Phone device id -> the village its token may write (`None`: township staff).
type DeviceScopes = HashMap<String, Option<String>>;

/// The phones the server vouches for: live tokens bound to a phone (enrolment refuses an
/// id bound to another live token, so each phone appears once). A revoked device's
/// receipts no longer count.
fn device_scopes(storage: &dyn ServerStorage) -> Result<DeviceScopes, TaskError> {
    Ok(storage
        .devices()?
        .into_iter()
        .filter(|d| d.revoked_ms.is_none())
        .filter_map(|d| d.phone_device.map(|p| (p, d.village)))
        .collect())
}

/// Target records of a task document complete by the form's required fields, and
/// their total (a named target not yet on the server counts as incomplete).
fn records_done(
    storage: &dyn ServerStorage,
    schema: &Schema,
    values: &mut Values,
    row: &TaskDocRow,
    t: &StoredTask,
) -> Result<(u32, u32), TaskError> {
    let Some(form) = schema.form(&t.spec.form) else {
        return Ok((0, 0));
    };
    Ok(match &t.spec.targets {
        None => {
            let rows = values.scope(storage, &form.entity, row.village.as_deref())?;
            let done = rows.iter().filter(|(_, v)| complete(form, v)).count();
            (done as u32, rows.len() as u32)
        }
        Some(ids) => {
            let stored = storage.stored_records(ids)?;
            let live: Vec<_> = stored.iter().filter(|s| !s.deleted).collect();
            let missing = ids.len() - stored.len();
            let done = live
                .iter()
                .filter(|s| complete(form, &parse_values(&s.values_json)))
                .count();
            (done as u32, (live.len() + missing) as u32)
        }
    })
}

fn village_progress(
    storage: &dyn ServerStorage,
    schema: &Schema,
    values: &mut Values,
    scopes: &DeviceScopes,
    row: &TaskDocRow,
    t: &StoredTask,
    now_ms: i64,
) -> Result<VillageProgress, TaskError> {
    let (records_complete, records_total) = records_done(storage, schema, values, row, t)?;
    // Delivery and opening count only from the village's own phones (a township phone
    // holds every village's task and receipts it too). A mark counts from any registered
    // phone allowed to see the task. Completeness comes from the server's records, never
    // from a phone's "complete" receipt (its view may be older than the server's).
    let of_village: Vec<&Receipt> = t
        .receipts
        .iter()
        .filter(|(device, _)| scopes.get(*device) == Some(&row.village))
        .map(|(_, r)| r)
        .collect();
    let first =
        |pick: &dyn Fn(&Receipt) -> Option<i64>| of_village.iter().filter_map(|r| pick(r)).min();
    let delivered_ms = first(&|r| r.delivered_ms.or(r.opened_ms).or(r.done_ms));
    let opened_ms = first(&|r| r.opened_ms);
    let marked = t
        .receipts
        .iter()
        .filter(|(device, r)| r.done == Some(DoneHow::Marked) && scopes.contains_key(*device))
        .map(|(_, r)| r)
        .min_by_key(|r| r.done_ms);
    let facts = TaskFacts {
        cancelled: t.cancelled,
        marked: marked.is_some(),
        records_complete,
        records_total,
        due_ms: t.spec.due_ms,
        now_ms,
        opened: opened_ms.is_some(),
        delivered: delivered_ms.is_some(),
    };
    let all_complete = records_total > 0 && records_complete == records_total;
    let seen_complete = of_village
        .iter()
        .filter(|r| r.done == Some(DoneHow::Complete))
        .filter_map(|r| r.done_ms)
        .min();
    let (done, overdue) = (facts.done(), facts.overdue());
    let status = Status::of(&facts);
    Ok(VillageProgress {
        village: row.village.clone(),
        document: row.id.to_string(),
        status,
        delivered: delivered_ms.is_some(),
        opened: opened_ms.is_some(),
        done,
        overdue,
        delivered_ms,
        opened_ms,
        done_ms: match marked {
            Some(r) => r.done_ms,
            None if all_complete => seen_complete,
            None => None,
        },
        done_how: if marked.is_some() {
            Some(DoneHow::Marked)
        } else {
            all_complete.then_some(DoneHow::Complete)
        },
        note: marked.and_then(|r| r.note.clone()),
        done_by: marked.and_then(|r| r.cadre.clone()),
        phones: of_village.len(),
        records_complete,
        records_total,
    })
}

fn build(
    storage: &dyn ServerStorage,
    schema: &Schema,
    rows: Vec<TaskDocRow>,
    now_ms: i64,
) -> Result<Vec<TaskProgress>, TaskError> {
    let mut values = Values::default();
    let scopes = device_scopes(storage)?;
    let mut out: Vec<TaskProgress> = Vec::new();
    for row in rows {
        // One unreadable summary must not hide every other task.
        let t: StoredTask = match serde_json::from_str(&row.json) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(document = %row.id, error = %e, "unreadable task summary skipped");
                continue;
            }
        };
        let v = village_progress(storage, schema, &mut values, &scopes, &row, &t, now_ms)?;
        if out.last().is_none_or(|p| p.task != row.task) {
            out.push(TaskProgress {
                task: row.task.clone(),
                title: t.spec.title.clone(),
                instructions: t.spec.instructions.clone(),
                form: t.spec.form.clone(),
                due: t.spec.due.clone(),
                due_ms: t.spec.due_ms,
                issuer: t.spec.issuer.clone(),
                created_ms: t.created_ms,
                cancelled: t.cancelled,
                counts: StatusCounts::default(),
                villages: Vec::new(),
            });
        }
        if let Some(p) = out.last_mut() {
            p.counts.add(v.status);
            p.cancelled &= t.cancelled;
            p.villages.push(v);
        }
    }
    // Newest first.
    out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.task.cmp(&a.task)));
    Ok(out)
}

/// One task's progress.
pub fn progress(
    storage: &dyn ServerStorage,
    schema: &Schema,
    issuer: &Issuer,
    task: &str,
    now_ms: i64,
) -> Result<TaskProgress, TaskError> {
    let rows = visible_docs(storage, issuer, Some(task))?;
    build(storage, schema, rows, now_ms)?
        .pop()
        .ok_or_else(|| TaskError::NotFound(format!("no task `{task}`")))
}

/// Every task the issuer may see, newest first.
pub fn list(
    storage: &dyn ServerStorage,
    schema: &Schema,
    issuer: &Issuer,
    now_ms: i64,
) -> Result<Vec<TaskProgress>, TaskError> {
    let rows = visible_docs(storage, issuer, None)?;
    build(storage, schema, rows, now_ms)
}

/// One row of the village x form summary.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SummaryRow {
    /// Village.
    pub village: String,
    /// Form.
    pub form: String,
    /// Records of the form's entity with every required field.
    pub records_complete: u32,
    /// Records still missing required fields.
    pub records_incomplete: u32,
    /// Task villages of this form by status.
    pub tasks: StatusCounts,
}

/// The automatic aggregation "one table" promises: per village and form, how many
/// records are complete and where the tasks stand.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Summary {
    /// When it was computed.
    pub generated_ms: i64,
    /// Rows by village then form.
    pub rows: Vec<SummaryRow>,
    /// Totals over all villages, by form.
    pub totals: Vec<SummaryRow>,
}

/// The village x form x status summary for what `issuer` may see.
pub fn summary(
    storage: &dyn ServerStorage,
    schema: &Schema,
    issuer: &Issuer,
    now_ms: i64,
) -> Result<Summary, TaskError> {
    let forms: Vec<&str> = match issuer {
        Issuer::Township => schema.forms.keys().map(String::as_str).collect(),
        Issuer::Department(d) => d.forms.iter().map(String::as_str).collect(),
    };
    let villages: Vec<&str> = schema
        .villages
        .keys()
        .map(String::as_str)
        .filter(|v| issuer.sees_village(Some(v)))
        .collect();
    let mut values = Values::default();
    let mut cells: BTreeMap<(String, String), SummaryRow> = BTreeMap::new();
    for v in &villages {
        for f in &forms {
            let Some(form) = schema.form(f) else { continue };
            let rows = values.scope(storage, &form.entity, Some(v))?;
            let done = rows.iter().filter(|(_, x)| complete(form, x)).count() as u32;
            cells.insert(
                ((*v).to_owned(), (*f).to_owned()),
                SummaryRow {
                    village: (*v).to_owned(),
                    form: (*f).to_owned(),
                    records_complete: done,
                    records_incomplete: rows.len() as u32 - done,
                    tasks: StatusCounts::default(),
                },
            );
        }
    }
    for task in list(storage, schema, issuer, now_ms)? {
        for v in &task.villages {
            let Some(village) = &v.village else { continue };
            if let Some(cell) = cells.get_mut(&(village.clone(), task.form.clone())) {
                cell.tasks.add(v.status);
            }
        }
    }
    let rows: Vec<SummaryRow> = cells.into_values().collect();
    let mut totals: BTreeMap<String, SummaryRow> = BTreeMap::new();
    for r in &rows {
        let t = totals.entry(r.form.clone()).or_insert_with(|| SummaryRow {
            village: "*".into(),
            form: r.form.clone(),
            records_complete: 0,
            records_incomplete: 0,
            tasks: StatusCounts::default(),
        });
        t.records_complete += r.records_complete;
        t.records_incomplete += r.records_incomplete;
        t.tasks.add_all(&r.tasks);
    }
    Ok(Summary {
        generated_ms: now_ms,
        rows,
        totals: totals.into_values().collect(),
    })
}

/// The burden report: values typed vs (record, field, department) deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Burden {
    /// First day (inclusive), as given.
    pub from: String,
    /// Last day (inclusive), as given.
    pub to: String,
    /// Field values cadres typed on phones in the period (a later correction of the
    /// same field counts again).
    pub values_typed: u64,
    /// Distinct (record, field, department) triples those values reached: each
    /// department whose view holds that field of that record receives it.
    pub deliveries: u64,
    /// deliveries / values_typed: how many uses one entry had.
    pub reuse_ratio: f64,
    /// Entries cadres would have typed had each department collected its own copy
    /// (deliveries) minus what they typed.
    pub entries_saved: i64,
    /// Per department.
    pub departments: Vec<BurdenDepartment>,
    /// Per field.
    pub fields: Vec<BurdenField>,
}

/// One department's share of the burden report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BurdenDepartment {
    /// Department key.
    pub department: String,
    /// (record, field) values it received.
    pub deliveries: u64,
}

/// One field's line of the burden report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BurdenField {
    /// Field key.
    pub field: String,
    /// Values typed.
    pub typed: u64,
    /// Distinct records they went into.
    pub records: u64,
    /// Deliveries produced.
    pub deliveries: u64,
}

/// Parses a report day `YYYY-MM-DD` into its start, ms since the epoch (UTC+8).
pub fn day_start_ms(day: &str) -> Result<i64, TaskError> {
    clock::parse_day(day)
        .map(clock::day_start_ms)
        .ok_or_else(|| TaskError::Refused(Message::new("bad_day").with("got", day.trim())))
}

/// Today in UTC+8, as `YYYY-MM-DD`.
pub fn today(now_ms: i64) -> String {
    clock::day_of(now_ms).format("%Y-%m-%d").to_string()
}

/// The burden report for the days `from..=to` (UTC+8).
pub fn burden(
    storage: &dyn ServerStorage,
    schema: &Schema,
    from: &str,
    to: &str,
) -> Result<Burden, TaskError> {
    let from_ms = day_start_ms(from)?;
    let to_ms = day_start_ms(to)? + 24 * 3600 * 1000;
    if to_ms <= from_ms {
        return Err(TaskError::Refused(
            Message::new("period_reversed")
                .with("from", from)
                .with("to", to),
        ));
    }
    let mut typed = 0;
    let mut deliveries = 0;
    let mut per_dept: BTreeMap<String, u64> =
        schema.departments.keys().map(|k| (k.clone(), 0)).collect();
    let mut per_field: BTreeMap<String, BurdenField> = BTreeMap::new();
    for c in storage.typed_counts(from_ms, to_ms)? {
        typed += c.typed;
        let f = per_field
            .entry(c.field.clone())
            .or_insert_with(|| BurdenField {
                field: c.field.clone(),
                typed: 0,
                records: 0,
                deliveries: 0,
            });
        f.typed += c.typed;
        f.records += c.records;
        for d in schema.departments.values() {
            if d.sees_record(&c.entity, c.village.as_deref()) && d.sees_field(&c.entity, &c.field) {
                deliveries += c.records;
                f.deliveries += c.records;
                *per_dept.entry(d.key.clone()).or_default() += c.records;
            }
        }
    }
    Ok(Burden {
        from: from.trim().to_owned(),
        to: to.trim().to_owned(),
        values_typed: typed,
        deliveries,
        reuse_ratio: if typed == 0 {
            0.0
        } else {
            (deliveries as f64 / typed as f64 * 100.0).round() / 100.0
        },
        entries_saved: deliveries as i64 - typed as i64,
        departments: per_dept
            .into_iter()
            .map(|(department, deliveries)| BurdenDepartment {
                department,
                deliveries,
            })
            .collect(),
        fields: per_field.into_values().collect(),
    })
}
