//! Tasks: an assignment from a department or the township to the phones of some villages,
//! and the receipts those phones write back by themselves.
//!
//! Why tasks are documents: a task must reach exactly the phones of its target villages on
//! their next sync, however weak the link, and the issuer must learn that it arrived,
//! was opened and was done without anyone replying "received". The sync protocol already
//! delivers documents to exactly the devices whose scope holds them, retries, pages and
//! survives cuts; so a task is one automerge document **per target village**, in the
//! same envelope as a record, and a receipt is a change the phone makes to it. Nothing
//! new crosses the wire; nothing new can be lost.
//!
//! Document layout (entity [`TASK_ENTITY`], which no schema entity can be named):
//!
//! ```text
//! ROOT
//! ├─ "yb", "entity" = "_task", "township", "village", "created", "deleted" (= cancelled)
//! ├─ "fields"   : Map    always empty (keeps the record envelope; never indexed)
//! ├─ "task"     : Str    the TaskSpec as JSON, written once by the server
//! └─ "receipts" : Map    device id -> Receipt as JSON
//! ```
//!
//! Each phone writes only the key of its own device id, so receipts never conflict and
//! the server checks exactly that ([`check_task_changes`]): a phone cannot create,
//! cancel or reword a task, nor write another device's receipt.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, legacy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{Author, RecordId};
use crate::messages::{Lang, Message};
use crate::record::{DOC_FORMAT, Record, commit_options};

/// The entity name of task documents. Schema keys start with a letter, so it cannot clash.
pub const TASK_ENTITY: &str = "_task";

/// Longest note a cadre may attach when marking a task done, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Longest instructions, in characters.
pub const MAX_INSTRUCTIONS_CHARS: usize = 4000;

/// What a task asks, as the issuer wrote it. The same in every village's document.
/// Written only by the server; unknown fields are ignored so an older app can read the
/// tasks of a newer server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's id (shared by its per-village documents).
    pub task: String,
    /// Short title shown in the phone's list.
    pub title: String,
    /// What to do, in the issuer's words.
    pub instructions: String,
    /// The form to fill.
    pub form: String,
    /// Due date as the issuer gave it (`YYYY-MM-DD` or an RFC 3339 time).
    pub due: String,
    /// The due moment, ms since the epoch (a date means the end of that day, UTC+8).
    pub due_ms: i64,
    /// Who issued it: a department name or `township`.
    pub issuer: String,
    /// Target records in this village; `None` means every record of the form's entity
    /// in the village.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<RecordId>>,
}

/// How a task came to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneHow {
    /// Every target record has the form's required fields.
    Complete,
    /// The cadre marked it done (with an optional note).
    Marked,
}

/// What one phone recorded about a task. Written only by that phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The cadre using the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadre: Option<String>,
    /// When the sync that brought the task committed it on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<i64>,
    /// When the app first showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_ms: Option<i64>,
    /// When it became done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_ms: Option<i64>,
    /// How it became done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<DoneHow>,
    /// The cadre's note when marking it done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Receipt {
    /// Checks limits a receipt from a phone must respect.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(n) = &self.note
            && n.chars().count() > MAX_NOTE_CHARS
        {
            return Err(format!(
                "a task note may hold at most {MAX_NOTE_CHARS} characters"
            ));
        }
        if self.cadre.as_ref().is_some_and(|c| c.len() > 128) {
            return Err("a receipt's cadre id is too long".into());
        }
        if self.done.is_some() != self.done_ms.is_some() {
            return Err("a receipt names how a task was done exactly when it says when".into());
        }
        Ok(())
    }
}

/// A task document as read from its automerge document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDoc {
    /// The document's id (one per target village).
    pub id: RecordId,
    /// The target village (`None`: township level).
    pub village: Option<String>,
    /// True when the issuer cancelled the task.
    pub cancelled: bool,
    /// What the task asks.
    pub spec: TaskSpec,
    /// Receipts by device id.
    pub receipts: BTreeMap<String, Receipt>,
}

/// Where a task stands in one village.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Status))]
#[serde(rename_all = "snake_case")]
// The one rule, used by the phone's task list and the server's reports alike: `of` below.
pub enum TaskStatus {
    /// Issued; no phone of the village has it yet.
    Sent,
    /// A phone received it.
    Delivered,
    /// A cadre opened it.
    Opened,
    /// Past due and not done.
    Overdue,
    /// Done (marked, or every target record complete).
    Done,
    /// Cancelled by the issuer.
    Cancelled,
}

/// What the status of a task in one village is decided from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFacts {
    /// The issuer cancelled the task.
    pub cancelled: bool,
    /// A cadre allowed to see the task marked it done.
    pub marked: bool,
    /// Target records with every required field of the form.
    pub records_complete: u32,
    /// Target records (live, plus named ones not yet received).
    pub records_total: u32,
    /// The due moment, ms since the epoch.
    pub due_ms: i64,
    /// Now, ms since the epoch (the reader's clock).
    pub now_ms: i64,
    /// A phone of the village opened it.
    pub opened: bool,
    /// A phone of the village received it.
    pub delivered: bool,
}

impl TaskFacts {
    /// Done: a cadre marked it, or every target record is complete.
    pub fn done(&self) -> bool {
        self.marked || (self.records_total > 0 && self.records_complete == self.records_total)
    }

    /// Past due, not done and not cancelled.
    pub fn overdue(&self) -> bool {
        !self.done() && !self.cancelled && self.now_ms > self.due_ms
    }
}

impl TaskStatus {
    /// The status these facts give: cancelled, then done, then overdue, then how far the
    /// task travelled (opened, delivered, sent).
    pub fn of(f: &TaskFacts) -> Self {
        if f.cancelled {
            TaskStatus::Cancelled
        } else if f.done() {
            TaskStatus::Done
        } else if f.overdue() {
            TaskStatus::Overdue
        } else if f.opened {
            TaskStatus::Opened
        } else if f.delivered {
            TaskStatus::Delivered
        } else {
            TaskStatus::Sent
        }
    }

    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Sent => "sent",
            TaskStatus::Delivered => "delivered",
            TaskStatus::Opened => "opened",
            TaskStatus::Overdue => "overdue",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// Parses a due date: `YYYY-MM-DD` (the end of that day in China Standard Time, UTC+8,
/// where every township we serve lies) or an RFC 3339 time. Returns ms since the epoch.
/// The refusal is in English; [`due`] gives it as a [`Message`].
pub fn parse_due(due: &str) -> std::result::Result<i64, String> {
    self::due(due)
        .map(|(_, ms)| ms)
        .map_err(|m| m.render(Lang::En))
}

/// A due date as people type it: a day in any form [`crate::clock::parse_day`] reads
/// (`2027-1-5`, `2027/1/5`, `2027年1月5日`: the end of that day, UTC+8) or an RFC 3339
/// time. Returns the due as it is stored and shown (`2027-01-05`, or the time as given)
/// and its instant, ms since the epoch; refused as `bad_due`.
pub fn due(typed: &str) -> std::result::Result<(String, i64), Message> {
    let typed = typed.trim();
    if let Some(day) = crate::clock::parse_day(typed) {
        return Ok((
            day.format("%Y-%m-%d").to_string(),
            crate::clock::day_end_ms(day),
        ));
    }
    chrono::DateTime::parse_from_rfc3339(typed)
        .map(|t| (typed.to_owned(), t.timestamp_millis()))
        .map_err(|_| {
            Message::new("bad_due").with("got", typed.chars().take(40).collect::<String>())
        })
}

fn put_json<T: Serialize>(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    key: &str,
    value: &T,
) -> Result<()> {
    let json = serde_json::to_string(value)
        .map_err(|e| Error::Task(format!("cannot encode {key}: {e}")))?;
    tx.put(obj, key, json)?;
    Ok(())
}

/// Creates the document of `spec` for one target village, authored by the issuer.
pub fn new_task_doc(
    id: RecordId,
    actor: ActorId,
    spec: &TaskSpec,
    township: &str,
    village: Option<&str>,
    author: &Author,
    now_ms: i64,
) -> Result<Record> {
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    tx.put(ROOT, "yb", DOC_FORMAT)?;
    tx.put(ROOT, "entity", TASK_ENTITY)?;
    tx.put(ROOT, "township", township)?;
    if let Some(v) = village {
        tx.put(ROOT, "village", v)?;
    }
    tx.put(ROOT, "created", ScalarValue::Timestamp(now_ms))?;
    tx.put(ROOT, "deleted", false)?;
    tx.put_object(ROOT, "fields", ObjType::Map)?;
    put_json(&mut tx, &ROOT, "task", spec)?;
    tx.put_object(ROOT, "receipts", ObjType::Map)?;
    tx.commit_with(commit_options(author, now_ms));
    Ok(Record::from_doc(id, doc))
}

/// True when `record` is a task document.
pub fn is_task(record: &Record) -> bool {
    record.entity() == TASK_ENTITY
}

fn receipts_obj(doc: &Automerge) -> Option<ObjId> {
    match doc.get(ROOT, "receipts").ok().flatten() {
        Some((automerge::Value::Object(ObjType::Map), id)) => Some(id),
        _ => None,
    }
}

fn str_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten() {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a task document; an error names what is wrong when it is not one.
pub fn read_task(record: &Record) -> Result<TaskDoc> {
    let id = record.id();
    if !is_task(record) {
        return Err(Error::Task(format!("record {id} is not a task")));
    }
    let doc = record.doc();
    let spec_json = str_at(doc, &ROOT, "task")
        .ok_or_else(|| Error::Task(format!("task {id} has no description")))?;
    let spec: TaskSpec = serde_json::from_str(&spec_json)
        .map_err(|e| Error::Task(format!("task {id} has an unreadable description: {e}")))?;
    let mut receipts = BTreeMap::new();
    if let Some(obj) = receipts_obj(doc) {
        for device in doc.keys(&obj) {
            // Receipts were checked by the server; skip (and log) anything unreadable.
            match str_at(doc, &obj, &device).map(|j| serde_json::from_str::<Receipt>(&j)) {
                Some(Ok(r)) => {
                    receipts.insert(device, r);
                }
                _ => tracing::warn!(task = %id, %device, "unreadable task receipt skipped"),
            }
        }
    }
    Ok(TaskDoc {
        id,
        village: record.scope().village,
        cancelled: record.is_deleted(),
        spec,
        receipts,
    })
}

/// Writes `device`'s receipt into a task document. Returns false when it was already so.
pub fn put_receipt(
    record: &mut Record,
    device: &str,
    receipt: &Receipt,
    author: &Author,
    now_ms: i64,
) -> Result<bool> {
    let current = read_task(record)?;
    if current.receipts.get(device) == Some(receipt) {
        return Ok(false);
    }
    receipt.check().map_err(Error::Task)?;
    let obj = receipts_obj(record.doc())
        .ok_or_else(|| Error::Task(format!("task {} has no receipts map", record.id())))?;
    let doc = record.doc_mut();
    let mut tx = doc.transaction();
    put_json(&mut tx, &obj, device, receipt)?;
    tx.commit_with(commit_options(author, now_ms));
    Ok(true)
}

/// Why a phone's change to a task document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskRefusal {
    /// The change writes something a phone may not write to a task.
    #[error("{0}")]
    Forbidden(String),
    /// The phone's own receipt is malformed.
    #[error("{0}")]
    BadReceipt(String),
}

impl TaskRefusal {
    /// What the cadre is told.
    pub fn message(&self) -> &str {
        match self {
            TaskRefusal::Forbidden(m) | TaskRefusal::BadReceipt(m) => m,
        }
    }
}

/// What the server checks in changes a phone pushes to a task document: the phone may
/// only write its own receipt, as a well-formed [`Receipt`].
pub fn check_task_changes(
    record: &Record,
    changes: &[Change],
    is_new: bool,
    device: &str,
) -> std::result::Result<(), TaskRefusal> {
    let refuse = TaskRefusal::Forbidden;
    if is_new {
        return Err(refuse(
            "tasks are issued by a department or the township, not by phones".into(),
        ));
    }
    let Some(ObjId::Id(counter, actor, _)) = receipts_obj(record.doc()) else {
        return Err(refuse("task has no receipts map".into()));
    };
    for change in changes {
        let author = change
            .message()
            .and_then(|m| serde_json::from_str::<Author>(m).ok())
            .ok_or_else(|| {
                refuse(format!(
                    "change {} carries no cadre and device",
                    change.hash()
                ))
            })?;
        if author.device.as_str() != device {
            return Err(refuse(format!(
                "change {} was made on device `{}`, but this is device `{device}`",
                change.hash(),
                author.device
            )));
        }
        for op in change.decode().operations {
            let in_receipts = matches!(&op.obj,
                legacy::ObjectId::Id(legacy::OpId(c, a)) if (*c, a) == (counter, &actor));
            let legacy::Key::Map(key) = &op.key else {
                return Err(refuse("tasks hold no lists".into()));
            };
            if !in_receipts {
                return Err(refuse(
                    "a phone may only write its own receipt into a task".into(),
                ));
            }
            if key != device {
                return Err(refuse(format!(
                    "device `{device}` may not write the receipt of device `{key}`"
                )));
            }
            let legacy::OpType::Put(ScalarValue::Str(json)) = &op.action else {
                return Err(refuse("a task receipt must be written as one value".into()));
            };
            let receipt: Receipt = serde_json::from_str(json)
                .map_err(|e| TaskRefusal::BadReceipt(format!("bad task receipt: {e}")))?;
            receipt.check().map_err(TaskRefusal::BadReceipt)?;
        }
    }
    Ok(())
}

/// The JSON the server keeps for a task document (read by progress reports without
/// decoding the document): `{"spec": ..., "receipts": {...}, "cancelled": bool}`.
pub fn task_json(record: &Record) -> String {
    match read_task(record) {
        Ok(t) => serde_json::json!({
            "spec": t.spec, "receipts": t.receipts, "cancelled": t.cancelled,
            "created_ms": record.created_ms()
        })
        .to_string(),
        Err(_) => "{}".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CadreId, DeviceId};

    fn spec() -> TaskSpec {
        TaskSpec {
            task: "t1".into(),
            title: "低保复核".into(),
            instructions: "核对收入".into(),
            form: "dibao_check".into(),
            due: "2026-11-25".into(),
            due_ms: parse_due("2026-11-25").expect("date"),
            issuer: "civil_affairs".into(),
            targets: None,
        }
    }

    fn author(device: &str) -> Author {
        Author {
            cadre: CadreId::new("c1").expect("cadre"),
            device: DeviceId::new(device).expect("device"),
        }
    }

    #[test]
    fn due_dates_end_the_day_in_china_time() {
        // 2026-11-25 23:59:59.999 +08:00 = 2026-11-25 15:59:59.999 UTC.
        let ms = parse_due("2026-11-25").expect("date");
        let utc = chrono::DateTime::from_timestamp_millis(ms).expect("time");
        assert_eq!(utc.to_rfc3339(), "2026-11-25T15:59:59.999+00:00");
        assert_eq!(
            parse_due("2026-11-25T18:00:00+08:00").expect("time"),
            parse_due("2026-11-25T10:00:00Z").expect("time")
        );
        let err = parse_due("next tuesday").expect_err("refused");
        assert!(err.contains("neither a date"), "{err}");
        assert!(parse_due("2026-02-30").is_err());
        // A day typed in another common form is stored as YYYY-MM-DD.
        assert_eq!(
            due(" 2027-1-05 ").map(|(d, _)| d),
            Ok("2027-01-05".to_owned())
        );
        assert_eq!(due("2027年1月5日"), due("2027-01-05"));
    }

    #[test]
    fn receipts_round_trip_and_only_own_key_passes_the_check() {
        let id = RecordId::new();
        let server = author("server");
        let mut doc = new_task_doc(
            id,
            ActorId::random(),
            &spec(),
            "baru",
            Some("tujiang"),
            &server,
            1,
        )
        .expect("task");
        let before = doc.heads();
        let mut phone = Record::load(id, ActorId::random(), &[doc.save()]).expect("load");
        let r = Receipt {
            delivered_ms: Some(5),
            cadre: Some("c1".into()),
            ..Receipt::default()
        };
        assert!(put_receipt(&mut phone, "phone-a", &r, &author("phone-a"), 5).expect("put"));
        assert!(!put_receipt(&mut phone, "phone-a", &r, &author("phone-a"), 6).expect("same"));
        doc.merge_bytes(&phone.save_after(&before)).expect("merge");
        let changes = doc.doc().get_changes(&before);
        check_task_changes(&doc, &changes, false, "phone-a").expect("own receipt passes");
        let err = check_task_changes(&doc, &changes, false, "phone-b").expect_err("other device");
        assert!(
            err.message().contains("made on device `phone-a`"),
            "{}",
            err.message()
        );
        let t = read_task(&doc).expect("task");
        assert_eq!(t.receipts.get("phone-a"), Some(&r));
        assert_eq!(t.spec, spec());
        assert_eq!(t.village.as_deref(), Some("tujiang"));

        // Writing another device's key is refused even when the author is honest.
        let before = doc.heads();
        let mut phone = Record::load(id, ActorId::random(), &[doc.save()]).expect("load");
        put_receipt(&mut phone, "phone-c", &r, &author("phone-b"), 7).expect("put");
        doc.merge_bytes(&phone.save_after(&before)).expect("merge");
        let changes = doc.doc().get_changes(&before);
        let err = check_task_changes(&doc, &changes, false, "phone-b").expect_err("foreign key");
        assert!(
            err.message().contains("receipt of device `phone-c`"),
            "{}",
            err.message()
        );

        // A phone may not create a task.
        let err = check_task_changes(&doc, &changes, true, "phone-b").expect_err("creation");
        assert!(err.message().contains("not by phones"), "{}", err.message());
    }

    #[test]
    fn a_phone_cannot_cancel_or_reword_a_task() {
        let id = RecordId::new();
        let doc = new_task_doc(
            id,
            ActorId::random(),
            &spec(),
            "baru",
            Some("tujiang"),
            &author("server"),
            1,
        )
        .expect("task");
        let before = doc.heads();
        let mut phone = Record::load(id, ActorId::random(), &[doc.save()]).expect("load");
        phone
            .set_deleted(true, &author("phone-a"), 3)
            .expect("delete");
        let mut server = doc.clone();
        server
            .merge_bytes(&phone.save_after(&before))
            .expect("merge");
        let changes = server.doc().get_changes(&before);
        let err = check_task_changes(&server, &changes, false, "phone-a").expect_err("cancel");
        assert!(
            err.message().contains("only write its own receipt"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn status_is_cancelled_then_done_then_overdue_then_how_far_it_travelled() {
        let base = TaskFacts {
            records_total: 2,
            due_ms: 100,
            now_ms: 50,
            ..TaskFacts::default()
        };
        assert_eq!(TaskStatus::of(&base), TaskStatus::Sent);
        let delivered = TaskFacts {
            delivered: true,
            ..base
        };
        assert_eq!(TaskStatus::of(&delivered), TaskStatus::Delivered);
        let opened = TaskFacts {
            opened: true,
            ..delivered
        };
        assert_eq!(TaskStatus::of(&opened), TaskStatus::Opened);
        let late = TaskFacts {
            now_ms: 101,
            ..opened
        };
        assert_eq!(TaskStatus::of(&late), TaskStatus::Overdue);
        let complete = TaskFacts {
            records_complete: 2,
            ..late
        };
        assert_eq!(TaskStatus::of(&complete), TaskStatus::Done);
        assert!(!complete.overdue());
        let marked = TaskFacts {
            marked: true,
            ..late
        };
        assert_eq!(TaskStatus::of(&marked), TaskStatus::Done);
        let cancelled = TaskFacts {
            cancelled: true,
            ..marked
        };
        assert_eq!(TaskStatus::of(&cancelled), TaskStatus::Cancelled);
        // No target records: never done by completeness.
        let empty = TaskFacts {
            records_total: 0,
            ..late
        };
        assert_eq!(TaskStatus::of(&empty), TaskStatus::Overdue);
    }

    #[test]
    fn long_notes_and_inconsistent_receipts_are_refused() {
        let long = Receipt {
            note: Some("字".repeat(MAX_NOTE_CHARS + 1)),
            done_ms: Some(1),
            done: Some(DoneHow::Marked),
            ..Receipt::default()
        };
        assert!(long.check().expect_err("long").contains("at most 500"));
        let odd = Receipt {
            done_ms: Some(1),
            ..Receipt::default()
        };
        assert!(odd.check().is_err());
    }
}
