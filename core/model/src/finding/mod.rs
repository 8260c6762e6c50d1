//! Findings: a problem an inspection found, run through five steps (find, hand over,
//! resolve, hold to account, report) as an append-only log inside one document
//! (ADR 0012).
//!
//! Document layout (entity [`FINDING_ENTITY`], which no schema entity can be named):
//!
//! ```text
//! ROOT
//! ├─ "yb", "entity" = "_finding", "township", "village", "created", "deleted" (false)
//! ├─ "fields"   : Map    always empty (keeps the record envelope; never indexed)
//! ├─ "finding"  : Str    the FindingSpec as JSON, written once by the creating change
//! ├─ "steps"    : List   one Step as JSON per element, appended, never edited or removed
//! └─ "receipts" : Map    device id -> Receipt (delivered / opened), as tasks
//! ```
//!
//! A finding is scoped by the village it is about, so sync delivers it to that village's
//! phones like a record. The status is never stored: [`lifecycle::fold`] computes it from
//! the steps in list order, the same on every replica. [`rules`] says who may take which
//! step (the hub for phones, the server for HTTP); [`report`] counts a period.

pub mod categories;
pub mod lifecycle;
pub mod report;
pub mod rules;

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{Author, RecordId};
use crate::messages::Message;
use crate::record::{DOC_FORMAT, Record, commit_options};
use crate::task::Receipt;

pub use lifecycle::{FindingState, Lifecycle, StepView, fold};
pub use rules::{FindingRefusal, Role, check_finding_changes, forbidden, may_record, may_take};

/// The entity name of finding documents. Schema keys start with a letter, so it cannot clash.
pub const FINDING_ENTITY: &str = "_finding";

/// Longest description, note, reason or measure, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Most photo or evidence references on one finding or step.
pub const MAX_REFS: usize = 20;

/// Who took a step or found a finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A cadre (on a phone, vouched for by the server: ADR 0007).
    Cadre(String),
    /// A console staff member, or the township office's admin token (`admin`).
    Staff(String),
    /// A department, by its schema key (`discipline_inspection` is the discipline office).
    Department(String),
}

/// Who is responsible for resolving a finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A village (its cadres resolve it).
    Village(String),
    /// A department (its token resolves it).
    Department(String),
}

impl Unit {
    /// The unit as one word for tables: `village:tujiang`, `department:civil_affairs`.
    pub fn label(&self) -> String {
        match self {
            Unit::Village(v) => format!("village:{v}"),
            Unit::Department(d) => format!("department:{d}"),
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Minor.
    Low,
    /// Ordinary.
    Medium,
    /// Serious.
    High,
}

/// A GPS point, as the `gps` field type writes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpsPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// What was found, as the finder wrote it. Written once, by the creating change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindingSpec {
    /// Category key (e.g. `epidemic_prevention`, `livelihood_funds`, `work_style`).
    pub category: String,
    /// What was found.
    pub description: String,
    /// The record the finding concerns (a household, a hazard site), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub record: Option<RecordId>,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsPoint>,
    /// Photo references (attachment ids or sha256), never the bytes.
    #[serde(default)]
    pub photos: Vec<String>,
    /// How serious.
    pub severity: Severity,
    /// Who found it.
    pub found_by: Actor,
    /// When it was found, ms since the epoch.
    pub found_ms: i64,
}

/// One step of the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// 移交: hand over to a responsible unit, due at `deadline_ms`.
    HandOver {
        /// The responsible unit.
        unit: Unit,
        /// The deadline, ms since the epoch.
        deadline_ms: i64,
    },
    /// 处置: resolved by `unit` (the unit the resolver acts for).
    Resolve {
        /// The unit that resolved it.
        unit: Unit,
        /// What was done.
        note: String,
        /// Evidence references (attachment ids).
        #[serde(default)]
        evidence: Vec<String>,
    },
    /// 核查通过: the resolution is verified.
    Accept,
    /// 返工: the resolution is not accepted.
    SendBack {
        /// Why.
        reason: String,
    },
    /// 追责: who is held to account and by which measure.
    HoldToAccount {
        /// The person or unit held to account.
        who: String,
        /// The measure (reminder talk, circulated criticism...).
        measure: String,
    },
}

impl StepKind {
    /// The step's name as JSON writes it (`hand_over`, `resolve`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::HandOver { .. } => "hand_over",
            StepKind::Resolve { .. } => "resolve",
            StepKind::Accept => "accept",
            StepKind::SendBack { .. } => "send_back",
            StepKind::HoldToAccount { .. } => "hold_to_account",
        }
    }

    /// Checks the limits a step must respect; a refusal is coded
    /// (`finding_resolution_size`, `finding_send_back_reason`, `finding_hold_fields`).
    pub fn check(&self) -> std::result::Result<(), Message> {
        let long = |s: &str| s.chars().count() > MAX_TEXT_CHARS;
        let limits = |code: &str| {
            Message::new(code)
                .with("max_chars", MAX_TEXT_CHARS.to_string())
                .with("max_refs", MAX_REFS.to_string())
        };
        match self {
            StepKind::Resolve { note, evidence, .. } if long(note) || evidence.len() > MAX_REFS => {
                Err(limits("finding_resolution_size"))
            }
            StepKind::SendBack { reason } if long(reason) || reason.trim().is_empty() => {
                Err(limits("finding_send_back_reason"))
            }
            StepKind::HoldToAccount { who, measure }
                if long(who)
                    || long(measure)
                    || who.trim().is_empty()
                    || measure.trim().is_empty() =>
            {
                Err(limits("finding_hold_fields"))
            }
            _ => Ok(()),
        }
    }
}

/// One entry of the log: a step, who took it, when, and its unique id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    /// Unique id (a UUID), so a step is named in views and reports.
    pub id: String,
    /// What was done.
    pub kind: StepKind,
    /// Who did it.
    pub by: Actor,
    /// When, by the writer's clock, ms since the epoch.
    pub at_ms: i64,
}

impl Step {
    /// A new step with a fresh id.
    pub fn new(kind: StepKind, by: Actor, at_ms: i64) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            by,
            at_ms,
        }
    }
}

impl FindingSpec {
    /// Checks the limits a finding must respect; a refusal is coded
    /// (`finding_category_key`, `finding_description`, `finding_photos`). Whether the
    /// schema knows the category is [`categories::check_category`].
    pub fn check(&self) -> std::result::Result<(), Message> {
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.len() <= 64
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !key_ok(&self.category) {
            return Err(Message::new("finding_category_key")
                .with("got", self.category.chars().take(40).collect::<String>()));
        }
        let n = self.description.trim().chars().count();
        if n == 0 || n > MAX_TEXT_CHARS {
            return Err(
                Message::new("finding_description").with("max_chars", MAX_TEXT_CHARS.to_string())
            );
        }
        if self.photos.len() > MAX_REFS || self.photos.iter().any(|p| p.len() > 128) {
            return Err(Message::new("finding_photos").with("max_refs", MAX_REFS.to_string()));
        }
        Ok(())
    }
}

/// A finding document as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingDoc {
    /// The document's id.
    pub id: RecordId,
    /// The village it is about (`None`: township level).
    pub village: Option<String>,
    /// What was found.
    pub spec: FindingSpec,
    /// The log, in list order (the order the fold uses). Unreadable entries are skipped.
    pub steps: Vec<Step>,
    /// Delivered / opened marks by device id.
    pub receipts: BTreeMap<String, Receipt>,
}

impl FindingDoc {
    /// The lifecycle the log gives.
    pub fn lifecycle(&self) -> Lifecycle {
        fold(&self.steps)
    }
}

/// True when `record` is a finding document.
pub fn is_finding(record: &Record) -> bool {
    record.entity() == FINDING_ENTITY
}

/// Creates the document of a finding, authored by its finder.
pub fn new_finding_doc(
    id: RecordId,
    actor: ActorId,
    spec: &FindingSpec,
    township: &str,
    village: Option<&str>,
    author: &Author,
    now_ms: i64,
) -> Result<Record> {
    spec.check().map_err(Error::Refused)?;
    let json = serde_json::to_string(spec)
        .map_err(|e| Error::Finding(format!("cannot encode a finding: {e}")))?;
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    tx.put(ROOT, "yb", DOC_FORMAT)?;
    tx.put(ROOT, "entity", FINDING_ENTITY)?;
    tx.put(ROOT, "township", township)?;
    if let Some(v) = village {
        tx.put(ROOT, "village", v)?;
    }
    tx.put(ROOT, "created", ScalarValue::Timestamp(now_ms))?;
    tx.put(ROOT, "deleted", false)?;
    tx.put_object(ROOT, "fields", ObjType::Map)?;
    tx.put(ROOT, "finding", json)?;
    tx.put_object(ROOT, "steps", ObjType::List)?;
    tx.put_object(ROOT, "receipts", ObjType::Map)?;
    tx.commit_with(commit_options(author, now_ms));
    Ok(Record::from_doc(id, doc))
}

pub(crate) fn obj_at(doc: &Automerge, key: &str, ty: ObjType) -> Option<ObjId> {
    match doc.get(ROOT, key).ok().flatten() {
        Some((automerge::Value::Object(t), id)) if t == ty => Some(id),
        _ => None,
    }
}

fn str_of(v: Option<(automerge::Value<'_>, ObjId)>) -> Option<String> {
    match v {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Appends `step` to the log (one change). The caller has checked the step is allowed
/// ([`may_take`]).
pub fn append_step(record: &mut Record, step: &Step, author: &Author, now_ms: i64) -> Result<()> {
    if !is_finding(record) {
        return Err(Error::Finding(format!(
            "record {} is not a finding",
            record.id()
        )));
    }
    step.kind.check().map_err(Error::Refused)?;
    let obj = obj_at(record.doc(), "steps", ObjType::List)
        .ok_or_else(|| Error::Finding(format!("finding {} has no steps list", record.id())))?;
    let json = serde_json::to_string(step)
        .map_err(|e| Error::Finding(format!("cannot encode a step: {e}")))?;
    let doc = record.doc_mut();
    let len = doc.length(&obj);
    let mut tx = doc.transaction();
    tx.insert(&obj, len, json)?;
    tx.commit_with(commit_options(author, now_ms));
    Ok(())
}

/// Writes `device`'s delivered/opened marks. Returns false when they were already so.
pub fn put_receipt(
    record: &mut Record,
    device: &str,
    receipt: &Receipt,
    author: &Author,
    now_ms: i64,
) -> Result<bool> {
    let current = read_finding(record)?;
    if current.receipts.get(device) == Some(receipt) {
        return Ok(false);
    }
    rules::check_receipt(receipt).map_err(Error::Finding)?;
    let obj = obj_at(record.doc(), "receipts", ObjType::Map)
        .ok_or_else(|| Error::Finding(format!("finding {} has no receipts map", record.id())))?;
    let json = serde_json::to_string(receipt)
        .map_err(|e| Error::Finding(format!("cannot encode a receipt: {e}")))?;
    let doc = record.doc_mut();
    let mut tx = doc.transaction();
    tx.put(&obj, device, json)?;
    tx.commit_with(commit_options(author, now_ms));
    Ok(true)
}

/// Reads a finding document; an error names what is wrong when it is not one.
pub fn read_finding(record: &Record) -> Result<FindingDoc> {
    let id = record.id();
    if !is_finding(record) {
        return Err(Error::Finding(format!("record {id} is not a finding")));
    }
    let doc = record.doc();
    let spec_json = str_of(doc.get(ROOT, "finding").ok().flatten())
        .ok_or_else(|| Error::Finding(format!("finding {id} has no description")))?;
    let spec: FindingSpec = serde_json::from_str(&spec_json)
        .map_err(|e| Error::Finding(format!("finding {id} is unreadable: {e}")))?;
    let mut steps = Vec::new();
    if let Some(obj) = obj_at(doc, "steps", ObjType::List) {
        for i in 0..doc.length(&obj) {
            // Steps were checked by the server; skip (and log) anything unreadable.
            match str_of(doc.get(&obj, i).ok().flatten()).map(|j| serde_json::from_str(&j)) {
                Some(Ok(step)) => steps.push(step),
                _ => tracing::warn!(finding = %id, index = i, "unreadable finding step skipped"),
            }
        }
    }
    let mut receipts = BTreeMap::new();
    if let Some(obj) = obj_at(doc, "receipts", ObjType::Map) {
        for device in doc.keys(&obj) {
            if let Some(Ok(r)) = str_of(doc.get(&obj, &device).ok().flatten())
                .map(|j| serde_json::from_str::<Receipt>(&j))
            {
                receipts.insert(device, r);
            }
        }
    }
    Ok(FindingDoc {
        id,
        village: record.scope().village,
        spec,
        steps,
        receipts,
    })
}

/// The JSON the server keeps for a finding document (lists and the report read it
/// without decoding the document): `{"spec", "steps", "receipts", "created_ms"}`.
pub fn finding_json(record: &Record) -> String {
    match read_finding(record) {
        Ok(f) => serde_json::json!({
            "spec": f.spec, "steps": f.steps, "receipts": f.receipts,
            "created_ms": record.created_ms()
        })
        .to_string(),
        Err(_) => "{}".to_owned(),
    }
}
