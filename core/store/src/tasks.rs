//! The phone's side of tasks: list them with how far the village is, record receipts.
//!
//! Receipts are written by the phone itself, never typed: *delivered* right after the
//! sync that brought the task ([`Store::refresh_task_receipts`], called by the sync
//! client after every committed page, so the receipt leaves in the same sync), *opened*
//! when the app shows it ([`Store::open_task`]), *done* when every target record has
//! the form's required fields (also `refresh_task_receipts`) or when the cadre says so
//! ([`Store::mark_task_done`]).

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{Inner, Store};
use crate::error::{Error, ModelError, Result};
use yibiao_model::ids::RecordId;
use yibiao_model::schema::FormDef;
use yibiao_model::task::{self, DoneHow, MAX_NOTE_CHARS, Receipt, TaskDoc, TaskFacts, TaskStatus};

/// Where a task stands, as the phone sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneTaskStatus {
    /// Not opened yet on this phone.
    New,
    /// Opened, not done.
    Opened,
    /// Past due and not done.
    Overdue,
    /// Done: marked by a cadre of the village, or every target record complete.
    Done,
}

impl From<TaskStatus> for PhoneTaskStatus {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Done => PhoneTaskStatus::Done,
            TaskStatus::Overdue => PhoneTaskStatus::Overdue,
            TaskStatus::Opened => PhoneTaskStatus::Opened,
            // A cancelled task leaves the phone; until then it reads as not opened.
            TaskStatus::Sent | TaskStatus::Delivered | TaskStatus::Cancelled => {
                PhoneTaskStatus::New
            }
        }
    }
}

/// A task as the phone's task list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneTask {
    /// The task document's id (pass it to `open_task` / `mark_task_done`).
    pub id: RecordId,
    /// The task's id, shared by every village's document.
    pub task: String,
    /// Title.
    pub title: String,
    /// Instructions.
    pub instructions: String,
    /// The form to fill.
    pub form: String,
    /// Due, as the issuer wrote it.
    pub due: String,
    /// Due, ms since the epoch.
    pub due_ms: i64,
    /// Who issued it.
    pub issuer: String,
    /// The village it is for.
    pub village: Option<String>,
    /// Named target records (`None`: every record of the form's entity in the village).
    pub targets: Option<Vec<RecordId>>,
    /// Target records (live) with every required field of the form.
    pub records_complete: u32,
    /// Target records (a named target not on this phone yet counts as incomplete).
    pub records_total: u32,
    /// Target records still missing required fields (present on this phone), by id.
    pub incomplete: Vec<RecordId>,
    /// This phone's receipt.
    pub receipt: Receipt,
    /// Where it stands.
    pub status: PhoneTaskStatus,
}

/// (complete, total, incomplete ids) of `form` over the task's targets, from the index.
fn completeness(
    conn: &Connection,
    form: &FormDef,
    t: &TaskDoc,
) -> Result<(u32, u32, Vec<RecordId>)> {
    let placeholders = vec!["?"; form.required.len()].join(",");
    let filled = if form.required.is_empty() {
        "0".to_owned()
    } else {
        format!(
            "(SELECT COUNT(*) FROM field_values fv WHERE fv.record_id = r.id AND fv.field IN ({placeholders}))"
        )
    };
    let required: Vec<rusqlite::types::Value> = form
        .required
        .iter()
        .cloned()
        .map(rusqlite::types::Value::Text)
        .collect();
    let need = form.required.len() as i64;
    let mut complete = 0;
    let mut incomplete = Vec::new();
    let mut judge = |id: String, n: i64| -> Result<()> {
        if n >= need {
            complete += 1;
        } else {
            incomplete.push(id.parse()?);
        }
        Ok(())
    };
    match &t.spec.targets {
        None => {
            let sql = format!(
                "SELECT r.id, {filled} FROM records r
                 WHERE r.entity = ? AND r.village IS ? AND r.deleted = 0 ORDER BY r.id"
            );
            let mut args = required.clone();
            args.push(rusqlite::types::Value::Text(form.entity.clone()));
            args.push(match &t.village {
                Some(v) => rusqlite::types::Value::Text(v.clone()),
                None => rusqlite::types::Value::Null,
            });
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, n) = row?;
                judge(id, n)?;
            }
            let total = complete + incomplete.len() as u32;
            Ok((complete, total, incomplete))
        }
        Some(ids) => {
            let sql = format!("SELECT r.deleted, r.entity, {filled} FROM records r WHERE r.id = ?");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut total = 0;
            for id in ids {
                let mut args = required.clone();
                args.push(rusqlite::types::Value::Text(id.to_string()));
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    None => total += 1, // not on this phone yet: still to do
                    Some(r) => {
                        let deleted: bool = r.get(0)?;
                        let entity: String = r.get(1)?;
                        if deleted || entity != form.entity {
                            continue;
                        }
                        total += 1;
                        judge(id.to_string(), r.get(2)?)?;
                    }
                }
            }
            Ok((complete, total, incomplete))
        }
    }
}

impl Store {
    fn task_ids(conn: &Connection) -> Result<Vec<RecordId>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM records WHERE entity = ?1 AND deleted = 0 ORDER BY id",
        )?;
        let ids = stmt
            .query_map(params![task::TASK_ENTITY], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ids.into_iter()
            .map(|s| s.parse().map_err(Error::from))
            .collect()
    }

    fn phone_task(&self, inner: &mut Inner, id: RecordId) -> Result<PhoneTask> {
        let t = {
            let record = self.load(inner, id)?;
            task::read_task(record)?
        };
        let (records_complete, records_total, incomplete) = match self.schema().form(&t.spec.form) {
            Some(form) => completeness(&inner.conn, form, &t)?,
            // A form this phone's schema does not know yet (an older app): nothing to count.
            None => (0, 0, Vec::new()),
        };
        let receipt = t
            .receipts
            .get(self.device.as_str())
            .cloned()
            .unwrap_or_default();
        // Done: a cadre marked it, or every target record is complete as this phone sees
        // them. Other phones' "complete" receipts are their view, not evidence.
        let facts = TaskFacts {
            cancelled: false,
            marked: t.receipts.values().any(|r| r.done == Some(DoneHow::Marked)),
            records_complete,
            records_total,
            due_ms: t.spec.due_ms,
            now_ms: self.clock.now_ms(),
            opened: receipt.opened_ms.is_some(),
            // The phone holds it.
            delivered: true,
        };
        let status = PhoneTaskStatus::from(TaskStatus::of(&facts));
        Ok(PhoneTask {
            id,
            task: t.spec.task,
            title: t.spec.title,
            instructions: t.spec.instructions,
            form: t.spec.form,
            due: t.spec.due,
            due_ms: t.spec.due_ms,
            issuer: t.spec.issuer,
            village: t.village,
            targets: t.spec.targets,
            records_complete,
            records_total,
            incomplete,
            receipt,
            status,
        })
    }

    /// The tasks on this phone (cancelled ones left out), soonest due first.
    pub fn tasks(&self) -> Result<Vec<PhoneTask>> {
        let mut inner = self.lock();
        let ids = Self::task_ids(&inner.conn)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // One unreadable task must not hide the others.
            match self.phone_task(&mut inner, id) {
                Ok(t) => out.push(t),
                Err(e) => tracing::warn!(task = %id, error = %e, "unreadable task skipped"),
            }
        }
        out.sort_by(|a, b| a.due_ms.cmp(&b.due_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One task.
    pub fn task(&self, id: RecordId) -> Result<PhoneTask> {
        let mut inner = self.lock();
        self.phone_task(&mut inner, id)
    }

    /// Writes this phone's receipt if `change` alters it. Returns true when written.
    fn update_receipt(
        &self,
        inner: &mut Inner,
        id: RecordId,
        change: impl FnOnce(&TaskDoc, &mut Receipt) -> Result<()>,
    ) -> Result<bool> {
        let t = task::read_task(self.load(inner, id)?)?;
        if t.cancelled {
            return Err(ModelError::Task(format!(
                "task `{}` was cancelled by {}",
                t.spec.title, t.spec.issuer
            ))
            .into());
        }
        let device = self.device.as_str().to_owned();
        let mut receipt = t.receipts.get(&device).cloned().unwrap_or_default();
        let before = receipt.clone();
        change(&t, &mut receipt)?;
        if receipt == before {
            return Ok(false);
        }
        receipt.cadre = Some(inner.cadre.as_str().to_owned());
        let author = self.author(inner);
        let now = self.clock.now_ms();
        self.write(inner, id, Some(&[]), |r| {
            task::put_receipt(r, &device, &receipt, &author, now).map_err(Error::from)
        })
    }

    /// Records that the app showed the task. Returns false when it was already opened.
    pub fn open_task(&self, id: RecordId) -> Result<bool> {
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        self.update_receipt(&mut inner, id, |_, r| {
            r.delivered_ms.get_or_insert(now);
            r.opened_ms.get_or_insert(now);
            Ok(())
        })
    }

    /// The cadre marks the task done, with an optional note (at most 500 characters).
    /// Marking again replaces the note. Returns false when nothing changed.
    pub fn mark_task_done(&self, id: RecordId, note: Option<&str>) -> Result<bool> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note
            && n.chars().count() > MAX_NOTE_CHARS
        {
            return Err(ModelError::Task(format!(
                "a task note may hold at most {MAX_NOTE_CHARS} characters; this one has {}",
                n.chars().count()
            ))
            .into());
        }
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        self.update_receipt(&mut inner, id, |_, r| {
            r.delivered_ms.get_or_insert(now);
            r.opened_ms.get_or_insert(now);
            r.done_ms.get_or_insert(now);
            r.done = Some(DoneHow::Marked);
            r.note = note.map(str::to_owned);
            Ok(())
        })
    }

    /// Writes the receipts a phone records by itself: *delivered* for every task not yet
    /// receipted here, *done* for every task whose target records are all complete.
    /// Returns how many receipts were written. The sync client calls it after each
    /// committed page, so receipts leave in the same sync.
    pub fn refresh_task_receipts(&self) -> Result<usize> {
        let mut inner = self.lock();
        let ids = Self::task_ids(&inner.conn)?;
        let mut written = 0;
        for id in ids {
            let now = self.clock.now_ms();
            // Settled tasks (received and done here) need no more work.
            let settled = task::read_task(self.load(&mut inner, id)?)
                .map(|t| {
                    t.receipts
                        .get(self.device.as_str())
                        .is_some_and(|r| r.delivered_ms.is_some() && r.done_ms.is_some())
                })
                .unwrap_or(false);
            if settled {
                continue;
            }
            // One unreadable task must not hold back the receipts of the others.
            let pt = match self.phone_task(&mut inner, id) {
                Ok(pt) => pt,
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "unreadable task skipped");
                    continue;
                }
            };
            let complete = pt.records_total > 0 && pt.records_complete == pt.records_total;
            let wrote = self.update_receipt(&mut inner, id, |_, r| {
                r.delivered_ms.get_or_insert(now);
                if complete && r.done_ms.is_none() {
                    r.done_ms = Some(now);
                    r.done = Some(DoneHow::Complete);
                }
                Ok(())
            })?;
            written += usize::from(wrote);
        }
        Ok(written)
    }
}
