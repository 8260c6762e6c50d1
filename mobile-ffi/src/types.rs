//! The records and enums that cross the FFI, and every conversion from the core's types,
//! in one place.
//!
//! Field values cross as **JSON text** (`"5"`, `"\"阿木\""`, `"[\"wages\"]"`,
//! `"{\"lat\":27.8,\"lon\":102.3}"`): the core parses them by the field's type, so
//! Kotlin and Swift need no mirror of the value model, and a new field type needs no
//! binding change.

use std::collections::HashMap;

use yibiao_model::messages::Lang;
use yibiao_model::task::{DoneHow, Receipt};
use yibiao_model::{
    Conflict, ConflictValue, HistoryEntry as CoreHistoryEntry, HistoryEvent as CoreEvent,
    Provenance as CoreProvenance,
};
use yibiao_store::{Page, RecordSummary as CoreSummary, RecordView};
use yibiao_store::{PhoneTask, PhoneTaskStatus, RefusedDoc, SyncStatus as CoreSyncStatus};
use yibiao_sync::{SchemaNews, SyncProgress as CoreProgress, SyncReport as CoreReport};

/// What the server said at enrolment.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Enrolment {
    /// This phone's device id (`device_id()`): the one its changes, conflicts, history
    /// and task receipts carry, and the one the township's `device list` shows.
    pub device: String,
    /// The cadre the code was issued to; later edits on this phone are recorded as theirs.
    pub cadre: String,
    /// The village the phone may read and write; `None` for township staff.
    pub village: Option<String>,
}

/// One current value of a record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldValue {
    /// Field key.
    pub field: String,
    /// The shown value as JSON text.
    pub value_json: String,
    /// True when other concurrent values exist (see `conflicts`).
    pub conflicted: bool,
    /// Why the schema the phone holds now refuses this stored value (entered under an
    /// older revision), if it does: show it flagged; it stays and syncs.
    pub invalid: Option<String>,
}

/// A record as read by `get`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordData {
    /// Record id (a UUID).
    pub id: String,
    /// Entity type, e.g. `household`.
    pub entity: String,
    /// Township id.
    pub township: String,
    /// Village id; `None` for township-level records.
    pub village: Option<String>,
    /// True when the record is deleted (`restore` brings it back).
    pub deleted: bool,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Current values in the entity's field order.
    pub fields: Vec<FieldValue>,
    /// Fields with unresolved concurrent values.
    pub conflicted: Vec<String>,
    /// Fields whose stored value the current schema revision refuses.
    pub invalid: Vec<String>,
}

/// Which records to list. Every filter given must hold. Values are JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct RecordQuery {
    /// Only this entity type.
    #[uniffi(default = None)]
    pub entity: Option<String>,
    /// Only this village.
    #[uniffi(default = None)]
    pub village: Option<String>,
    /// Fields that must equal these values (JSON text).
    #[uniffi(default)]
    pub equals: HashMap<String, String>,
    /// Fields whose text must contain these strings.
    #[uniffi(default)]
    pub contains: HashMap<String, String>,
    /// Only records that complete this form's required fields.
    #[uniffi(default = None)]
    pub complete_for: Option<String>,
    /// Only records that still miss a required field of this form.
    #[uniffi(default = None)]
    pub incomplete_for: Option<String>,
    /// Only records with unresolved conflicts.
    #[uniffi(default = false)]
    pub conflicted_only: bool,
    /// Include deleted records.
    #[uniffi(default = false)]
    pub include_deleted: bool,
    /// Start after this record id: the previous page's `next`.
    #[uniffi(default = None)]
    pub after: Option<String>,
    /// Page size; 0 means 100; at most 1000.
    #[uniffi(default = 0)]
    pub limit: u32,
}

/// A record as listed by `query` (from the index; no document is loaded).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordSummary {
    /// Record id.
    pub id: String,
    /// Entity type.
    pub entity: String,
    /// Village, if village-level.
    pub village: Option<String>,
    /// Deleted?
    pub deleted: bool,
    /// Has unresolved conflicts?
    pub conflicted: bool,
    /// Current values by field key, as JSON text.
    pub values: HashMap<String, String>,
}

/// One page of `query` results.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordPage {
    /// The records, in id (creation) order.
    pub records: Vec<RecordSummary>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// What form `form` still needs for one record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FormStatus {
    /// The form.
    pub form: String,
    /// True when every required field is filled.
    pub complete: bool,
    /// Required fields still empty, in the form's order.
    pub missing_required: Vec<String>,
    /// Optional fields still empty, in the form's order.
    pub missing_optional: Vec<String>,
    /// Required fields filled.
    pub filled_required: u32,
    /// Required fields in all.
    pub total_required: u32,
}

/// Who wrote something, on which device, when.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Provenance {
    /// Cadre id.
    pub cadre: Option<String>,
    /// Device id.
    pub device: Option<String>,
    /// ms since the epoch, by the writer's clock.
    pub at_ms: i64,
    /// The automerge change hash (hex).
    pub change: String,
}

/// One of the competing values of a conflicted field.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConflictingValue {
    /// The value as JSON text; `None` when it no longer fits the schema.
    pub value_json: Option<String>,
    /// Who set it.
    pub by: Provenance,
    /// True for the value currently shown (the same on every phone).
    pub shown: bool,
}

/// A field with several concurrent values, until someone resolves it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// Every competing value with its author.
    pub values: Vec<ConflictingValue>,
}

/// What happened in one history entry.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum HistoryEvent {
    /// The record was created.
    Created {
        /// Entity type.
        entity: String,
    },
    /// A field was set.
    Set {
        /// The field.
        field: String,
        /// The value as JSON text.
        value_json: String,
    },
    /// A conflict was settled in favour of a value already present.
    Resolved {
        /// The field.
        field: String,
        /// The value kept, as JSON text.
        value_json: String,
    },
    /// A field was cleared.
    Unset {
        /// The field.
        field: String,
    },
    /// The record was deleted.
    Deleted,
    /// The record was restored.
    Restored,
}

/// One entry of a record's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// What happened.
    pub event: HistoryEvent,
    /// Who, where, when.
    pub by: Provenance,
}

/// The sync state for a status screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Records with changes the server has not acknowledged (refused ones included).
    pub pending: i64,
    /// Records the server refused (see `refusals`).
    pub refused: i64,
    /// Last sync that finished, ms since the epoch.
    pub last_success_ms: Option<i64>,
    /// Why the latest sync failed, if it did.
    pub last_error: Option<String>,
}

/// A record the server refused; the edit stays on the phone until the cadre fixes it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Refusal {
    /// The record.
    pub id: String,
    /// Machine-readable kind: `InvalidValue`, `OutOfScope`, `NotARecord`, `Malformed`.
    pub code: String,
    /// The reason as a stable code (`not_an_option`, `bad_id_number`, `out_of_scope`...).
    pub reason: String,
    /// The reason's parameters (`field`, `field_zh`, `field_en`, `allowed_zh`, ...;
    /// `detail` for refusals that are not about one value).
    pub params: HashMap<String, String>,
    /// What to tell the cadre, in the store's language (`set_language`).
    pub detail: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Progress after each committed page of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// Pages committed so far.
    pub pages: u32,
    /// Requests sent, retries included.
    pub requests: u32,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Records the server accepted.
    pub pushed: u32,
    /// Records received.
    pub pulled: u32,
    /// Records the server refused.
    pub refused: u32,
    /// Records still waiting to be pushed.
    pub pending: u32,
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Counters of the run.
    pub progress: SyncProgress,
    /// True when the phone is up to date both ways (refused records aside).
    pub complete: bool,
    /// Records refused in this run: (id, reason).
    pub refused: Vec<RefusedRecord>,
    /// Records whose content changed on this phone because of what arrived.
    pub changed: Vec<String>,
    /// What became of the server's schema in this run.
    pub schema: SchemaUpdate,
}

/// What a sync did with the server's schema (`schemaRevision()` says what is held).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SchemaUpdate {
    /// The phone holds the server's revision.
    Unchanged,
    /// A newer revision arrived and is used from now on (new forms and options).
    Installed {
        /// The revision held before.
        from: u32,
        /// The revision held now.
        to: u32,
    },
    /// The server's schema needs a newer app: tell the cadre to update the app. The
    /// phone keeps its schema and the sync itself went on.
    UpdateApp {
        /// The server's revision.
        revision: u32,
        /// Its format.
        format: u32,
        /// The newest format this app reads.
        supported: u32,
    },
    /// The server's schema arrived but could not be used; the phone keeps its own.
    Unusable {
        /// The server's revision.
        revision: u32,
        /// Why.
        reason: String,
    },
}

impl From<SchemaNews> for SchemaUpdate {
    fn from(n: SchemaNews) -> Self {
        match n {
            SchemaNews::Unchanged => Self::Unchanged,
            SchemaNews::Installed { from, to } => Self::Installed { from, to },
            SchemaNews::UpdateApp {
                revision,
                format,
                supported,
            } => Self::UpdateApp {
                revision,
                format,
                supported,
            },
            SchemaNews::Unusable { revision, reason } => Self::Unusable { revision, reason },
        }
    }
}

/// A record refused in one sync run.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedRecord {
    /// The record.
    pub id: String,
    /// The server's reason.
    pub detail: String,
}

/// Limits of one sync run. Start from `defaultSyncSettings()` and change what you need.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSettings {
    /// Target size of one request's pushed documents (bytes, before compression).
    pub page_bytes: u32,
    /// Largest response the server should send (bytes, before compression).
    pub max_response_bytes: u32,
    /// Stop starting new pages after this long.
    pub time_budget_ms: Option<u64>,
    /// Stop starting new pages after this many bytes on the wire.
    pub byte_budget: Option<u64>,
    /// Attempts per exchange, the first included.
    pub attempts: u32,
    /// First backoff between attempts (full jitter).
    pub base_delay_ms: u64,
    /// Largest backoff.
    pub max_delay_ms: u64,
    /// Bound of one whole HTTP exchange of the built-in transport; give minutes on 2G.
    pub http_timeout_ms: u64,
}

/// The request an app-supplied transport must deliver: `POST url` with `headers` and
/// `body`, returning the response body of a 200.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncHttpRequest {
    /// `<server>/v1/sync`, from the stored credentials (empty when none are stored).
    pub url: String,
    /// `Content-Type`, and `Authorization` when credentials are stored.
    pub headers: HashMap<String, String>,
    /// The sync message (binary).
    pub body: Vec<u8>,
}

/// Where a task stands, as this phone sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TaskStatus {
    /// Not opened yet on this phone.
    New,
    /// Opened, not done.
    Opened,
    /// Past due and not done.
    Overdue,
    /// Done: marked by a cadre of the village, or every target record complete.
    Done,
}

/// How a task came to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TaskDoneHow {
    /// Every target record has the form's required fields (recorded by sync).
    Complete,
    /// A cadre marked it done (`mark_task_done`).
    Marked,
}

/// What this phone recorded about a task. The phone writes it by itself (delivered,
/// done by completeness: during sync; opened: `open_task`; marked done:
/// `mark_task_done`); it reaches the issuer with the next sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TaskReceipt {
    /// The cadre who was using the phone when it was last written.
    pub cadre: Option<String>,
    /// When the sync that brought the task committed it, ms since the epoch.
    pub delivered_ms: Option<i64>,
    /// When the app first showed it (`open_task`).
    pub opened_ms: Option<i64>,
    /// When it became done.
    pub done_ms: Option<i64>,
    /// How it became done.
    pub done: Option<TaskDoneHow>,
    /// The cadre's note when marking it done.
    pub note: Option<String>,
}

/// A task for this phone's village, as the task list shows it (`tasks`, `task`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TaskItem {
    /// The id to pass to `task`, `open_task` and `mark_task_done` (this village's copy
    /// of the task; not a record id).
    pub id: String,
    /// The task's id, shared by every village's copy (what the issuer sees).
    pub task: String,
    /// Short title for the list.
    pub title: String,
    /// What to do, in the issuer's words.
    pub instructions: String,
    /// The form to fill (see `form_status`).
    pub form: String,
    /// Due, as the issuer wrote it (`2026-11-25` or an RFC 3339 time).
    pub due: String,
    /// Due, ms since the epoch (a date means the end of that day, UTC+8).
    pub due_ms: i64,
    /// Who issued it: a department key or `township`.
    pub issuer: String,
    /// The village it is for; `None` for township-level records.
    pub village: Option<String>,
    /// Named target record ids; `None` means every record of the form's entity in the
    /// village.
    pub targets: Option<Vec<String>>,
    /// Target records with every required field of the form.
    pub records_complete: u32,
    /// Target records in all (a named target not on this phone yet counts).
    pub records_total: u32,
    /// Target records on this phone still missing required fields, by id.
    pub incomplete: Vec<String>,
    /// This phone's receipt.
    pub receipt: TaskReceipt,
    /// Where it stands.
    pub status: TaskStatus,
}

// ----- JSON text <-> values ----------------------------------------------------------

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

// ----- core -> FFI ---------------------------------------------------------------------

impl From<RecordView> for RecordData {
    fn from(v: RecordView) -> Self {
        Self {
            id: v.id.to_string(),
            entity: v.entity,
            township: v.scope.township,
            village: v.scope.village,
            deleted: v.deleted,
            created_ms: v.created_ms,
            fields: v
                .fields
                .into_iter()
                .map(|f| FieldValue {
                    value_json: json_text(&f.value),
                    field: f.field,
                    conflicted: f.conflicted,
                    invalid: f.invalid,
                })
                .collect(),
            conflicted: v.conflicted,
            invalid: v.invalid,
        }
    }
}

impl From<CoreSummary> for RecordSummary {
    fn from(s: CoreSummary) -> Self {
        Self {
            id: s.id.to_string(),
            entity: s.entity,
            village: s.village,
            deleted: s.deleted,
            conflicted: s.conflicted,
            values: s
                .values
                .iter()
                .map(|(k, v)| (k.clone(), json_text(v)))
                .collect(),
        }
    }
}

impl From<Page> for RecordPage {
    fn from(p: Page) -> Self {
        Self {
            records: p.records.into_iter().map(Into::into).collect(),
            next: p.next.map(|id| id.to_string()),
        }
    }
}

impl From<yibiao_store::FormStatus> for FormStatus {
    fn from(s: yibiao_store::FormStatus) -> Self {
        Self {
            complete: s.complete(),
            form: s.form,
            missing_required: s.missing_required,
            missing_optional: s.missing_optional,
            filled_required: u32::try_from(s.filled_required).unwrap_or(u32::MAX),
            total_required: u32::try_from(s.total_required).unwrap_or(u32::MAX),
        }
    }
}

impl From<CoreProvenance> for Provenance {
    fn from(p: CoreProvenance) -> Self {
        Self {
            cadre: p.cadre,
            device: p.device,
            at_ms: p.at_ms,
            change: p.change,
        }
    }
}

impl From<ConflictValue> for ConflictingValue {
    fn from(v: ConflictValue) -> Self {
        Self {
            value_json: v.value.as_ref().map(json_text),
            by: v.by.into(),
            shown: v.shown,
        }
    }
}

impl From<Conflict> for FieldConflict {
    fn from(c: Conflict) -> Self {
        Self {
            field: c.field,
            values: c.values.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<CoreEvent> for HistoryEvent {
    fn from(e: CoreEvent) -> Self {
        match e {
            CoreEvent::Created { entity } => Self::Created { entity },
            CoreEvent::Set { field, value } => Self::Set {
                field,
                value_json: json_text(&value),
            },
            CoreEvent::Resolved { field, value } => Self::Resolved {
                field,
                value_json: json_text(&value),
            },
            CoreEvent::Unset { field } => Self::Unset { field },
            CoreEvent::Deleted => Self::Deleted,
            CoreEvent::Restored => Self::Restored,
        }
    }
}

impl From<CoreHistoryEntry> for HistoryEntry {
    fn from(h: CoreHistoryEntry) -> Self {
        Self {
            event: h.event.into(),
            by: h.by.into(),
        }
    }
}

impl From<CoreSyncStatus> for SyncStatus {
    fn from(s: CoreSyncStatus) -> Self {
        Self {
            pending: s.pending,
            refused: s.refused,
            last_success_ms: s.last_success_ms,
            last_error: s.last_error,
        }
    }
}

impl Refusal {
    /// The refusal with its reason worded in `lang`.
    pub(crate) fn of(r: RefusedDoc, lang: Lang) -> Self {
        Self {
            id: r.id.to_string(),
            code: r.code,
            detail: r.reason.render(lang),
            reason: r.reason.code,
            params: r.reason.params.into_iter().collect(),
            at_ms: r.at_ms,
        }
    }
}

impl From<&CoreProgress> for SyncProgress {
    fn from(p: &CoreProgress) -> Self {
        Self {
            pages: p.pages,
            requests: p.requests,
            bytes_up: p.bytes_up,
            bytes_down: p.bytes_down,
            pushed: p.pushed,
            pulled: p.pulled,
            refused: p.refused,
            pending: p.pending,
        }
    }
}

impl From<CoreReport> for SyncReport {
    fn from(r: CoreReport) -> Self {
        Self {
            progress: (&r.progress).into(),
            complete: r.complete,
            refused: r
                .refused
                .into_iter()
                .map(|(id, detail)| RefusedRecord {
                    id: id.to_string(),
                    detail,
                })
                .collect(),
            changed: r.changed.iter().map(ToString::to_string).collect(),
            schema: r.schema.into(),
        }
    }
}

impl From<PhoneTaskStatus> for TaskStatus {
    fn from(s: PhoneTaskStatus) -> Self {
        match s {
            PhoneTaskStatus::New => Self::New,
            PhoneTaskStatus::Opened => Self::Opened,
            PhoneTaskStatus::Overdue => Self::Overdue,
            PhoneTaskStatus::Done => Self::Done,
        }
    }
}

impl From<DoneHow> for TaskDoneHow {
    fn from(d: DoneHow) -> Self {
        match d {
            DoneHow::Complete => Self::Complete,
            DoneHow::Marked => Self::Marked,
        }
    }
}

impl From<Receipt> for TaskReceipt {
    fn from(r: Receipt) -> Self {
        Self {
            cadre: r.cadre,
            delivered_ms: r.delivered_ms,
            opened_ms: r.opened_ms,
            done_ms: r.done_ms,
            done: r.done.map(Into::into),
            note: r.note,
        }
    }
}

impl From<PhoneTask> for TaskItem {
    fn from(t: PhoneTask) -> Self {
        Self {
            id: t.id.to_string(),
            task: t.task,
            title: t.title,
            instructions: t.instructions,
            form: t.form,
            due: t.due,
            due_ms: t.due_ms,
            issuer: t.issuer,
            village: t.village,
            targets: t
                .targets
                .map(|ids| ids.iter().map(ToString::to_string).collect()),
            records_complete: t.records_complete,
            records_total: t.records_total,
            incomplete: t.incomplete.iter().map(ToString::to_string).collect(),
            receipt: t.receipt.into(),
            status: t.status.into(),
        }
    }
}
