//! One record = one real thing = one automerge document. Pure logic, no I/O.
//!
//! Document layout (format 1):
//!
//! ```text
//! ROOT
//! ├─ "yb"       : 1                 document format
//! ├─ "entity"   : "household"
//! ├─ "township" : "baru"
//! ├─ "village"  : "tujiang"         absent for township-level records
//! ├─ "created"  : 1764000000000     ms since epoch, set once
//! ├─ "deleted"  : false             the tombstone; true hides the record, undo sets false
//! └─ "fields"   : Map               field key -> one scalar (see `value`)
//! ```
//!
//! Every change is committed with the author's cadre and device as its message
//! (`{"c":"cadre","d":"device"}`) and the writer's clock as its time, so provenance of
//! every value and every history entry comes from automerge's own change metadata; no
//! parallel bookkeeping can drift from the data. The device's automerge actor id is the
//! store's, generated once.
//!
//! Concurrent `put`s of one field stay in the document as conflicting values; automerge
//! picks the same winner on every replica (so indexes converge), and [`Record::conflicts`]
//! lists all of them with their authors until someone [`Record::resolve`]s the field.

use std::collections::BTreeMap;

use automerge::legacy;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::{Author, RecordId};
use crate::schema::Schema;
use crate::value::Value;

/// Document format written by this build.
pub const DOC_FORMAT: i64 = 1;

/// Where a record belongs: its township and, for village-level records, its village.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Township id.
    pub township: String,
    /// Village id; `None` for township-level records.
    pub village: Option<String>,
}

/// One edit of a field: set to a value or unset.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldEdit {
    /// Set the field.
    Set(String, Value),
    /// Remove the field's value.
    Unset(String),
}

impl FieldEdit {
    /// The field this edit touches.
    pub fn field(&self) -> &str {
        match self {
            FieldEdit::Set(f, _) | FieldEdit::Unset(f) => f,
        }
    }
}

/// Who wrote something, on which device, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Cadre id, when the change carried one.
    pub cadre: Option<String>,
    /// Device id, when the change carried one.
    pub device: Option<String>,
    /// Time of the change, ms since the epoch, by the writer's clock.
    pub at_ms: i64,
    /// The automerge change hash (hex).
    pub change: String,
}

/// One of the values of a conflicted field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictValue {
    /// The value (JSON form); `None` when the stored value no longer fits the schema.
    pub value: Option<serde_json::Value>,
    /// Who set it.
    pub by: Provenance,
    /// True for the value automerge currently shows (the same on every replica).
    pub shown: bool,
}

/// A field with several concurrent values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// The field.
    pub field: String,
    /// Every competing value.
    pub values: Vec<ConflictValue>,
}

/// What happened in one history entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
        /// The value as JSON (raw scalar text when it no longer fits the schema).
        value: serde_json::Value,
    },
    /// A conflict was settled: a write (a value already present or a new one) that
    /// supersedes several concurrent values, or automerge's deletion of the losing ones.
    Resolved {
        /// The field.
        field: String,
        /// The value kept.
        value: serde_json::Value,
    },
    /// A field was unset.
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// What happened.
    #[serde(flatten)]
    pub event: HistoryEvent,
    /// Who, where, when.
    pub by: Provenance,
}

/// A record document.
#[derive(Debug, Clone)]
pub struct Record {
    id: RecordId,
    doc: Automerge,
}

pub(crate) fn commit_options(author: &Author, now_ms: i64) -> CommitOptions {
    // serde_json cannot fail on two strings; fall back to no message rather than panic.
    let message = serde_json::to_string(author).unwrap_or_default();
    CommitOptions::default()
        .with_message(message)
        .with_time(now_ms)
}

fn scalar_str(doc: &Automerge, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten() {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The type byte of an automerge chunk that holds a whole document (after the 4-byte
/// magic and the 4-byte checksum).
const DOCUMENT_CHUNK: u8 = 0;

/// Fails unless every chunk in `bytes` parses and verifies.
///
/// Incremental changes (a delta after the heads the receiver holds) depend on history
/// held elsewhere, which is normal. Loaded on their own, automerge reports them as
/// `MissingDeps` and logs that at ERROR level (its `load_with_options` is instrumented
/// with `err`), so a delta is parsed behind an empty document: missing dependencies are
/// then queued, not an error, while a malformed or corrupt chunk still fails.
fn strict_parse(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let options = || {
        automerge::LoadOptions::new()
            .on_partial_load(automerge::OnPartialLoad::Error)
            .verification_mode(automerge::VerificationMode::Check)
    };
    let parsed = if bytes.get(8) == Some(&DOCUMENT_CHUNK) {
        Automerge::load_with_options(bytes, options())
    } else {
        let mut behind_empty = Automerge::new().save();
        behind_empty.extend_from_slice(bytes);
        Automerge::load_with_options(&behind_empty, options())
    };
    parsed.map(|_| ()).map_err(Into::into)
}

impl Record {
    /// Creates a record with its first values in one change. Values must already be
    /// validated by the caller ([`Schema::validate`]).
    pub fn create(
        id: RecordId,
        actor: ActorId,
        entity: &str,
        scope: &Scope,
        edits: &[FieldEdit],
        author: &Author,
        now_ms: i64,
    ) -> Result<Self> {
        let mut doc = Automerge::new().with_actor(actor);
        let mut tx = doc.transaction();
        tx.put(ROOT, "yb", DOC_FORMAT)?;
        tx.put(ROOT, "entity", entity)?;
        tx.put(ROOT, "township", scope.township.as_str())?;
        if let Some(v) = &scope.village {
            tx.put(ROOT, "village", v.as_str())?;
        }
        tx.put(ROOT, "created", ScalarValue::Timestamp(now_ms))?;
        tx.put(ROOT, "deleted", false)?;
        let fields = tx.put_object(ROOT, "fields", ObjType::Map)?;
        for edit in edits {
            if let FieldEdit::Set(field, value) = edit {
                tx.put(&fields, field.as_str(), value.to_scalar())?;
            }
        }
        tx.commit_with(commit_options(author, now_ms));
        Ok(Self { id, doc })
    }

    /// Wraps a document built elsewhere in the crate (task documents).
    pub(crate) fn from_doc(id: RecordId, doc: Automerge) -> Self {
        Self { id, doc }
    }

    /// The underlying document, for writers elsewhere in the crate (task receipts).
    pub(crate) fn doc_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Loads a record from saved document bytes (a snapshot followed by any number of
    /// incremental chunks, all concatenated or loaded in turn).
    pub fn load(id: RecordId, actor: ActorId, chunks: &[Vec<u8>]) -> Result<Self> {
        let mut doc = Automerge::new().with_actor(actor);
        for chunk in chunks {
            doc.load_incremental(chunk)?;
        }
        let record = Self { id, doc };
        record.check_shape()?;
        Ok(record)
    }

    /// Loads a record from bytes received from another device, parsing them strictly
    /// first (see [`Record::merge_bytes`]).
    pub fn load_untrusted(id: RecordId, actor: ActorId, bytes: &[u8]) -> Result<Self> {
        strict_parse(bytes)?;
        Self::load(id, actor, &[bytes.to_vec()])
    }

    /// Checks that the document is a yibiao record of a known format.
    pub fn check_shape(&self) -> Result<()> {
        let corrupt = |problem: &str| Error::Corrupt {
            record: self.id,
            problem: problem.to_owned(),
        };
        match self.doc.get(ROOT, "yb").ok().flatten() {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Int(DOC_FORMAT) | ScalarValue::Uint(1) => {}
                _ => return Err(corrupt("unknown document format")),
            },
            _ => return Err(corrupt("not a yibiao record (no format marker)")),
        }
        if self.entity().is_empty() {
            return Err(corrupt("no entity type"));
        }
        if self.fields_obj().is_none() {
            return Err(corrupt("no fields map"));
        }
        Ok(())
    }

    /// The record's id.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The underlying document (read-only).
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// Current heads of the document.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The entity type.
    pub fn entity(&self) -> String {
        scalar_str(&self.doc, &ROOT, "entity").unwrap_or_default()
    }

    /// The record's scope.
    pub fn scope(&self) -> Scope {
        Scope {
            township: scalar_str(&self.doc, &ROOT, "township").unwrap_or_default(),
            village: scalar_str(&self.doc, &ROOT, "village"),
        }
    }

    /// Creation time, ms since the epoch.
    pub fn created_ms(&self) -> i64 {
        match self.doc.get(ROOT, "created").ok().flatten() {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Timestamp(t) | ScalarValue::Int(t) => *t,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// True when the record carries a tombstone.
    pub fn is_deleted(&self) -> bool {
        matches!(
            self.doc.get(ROOT, "deleted").ok().flatten(),
            Some((automerge::Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Boolean(true))
        )
    }

    fn fields_obj(&self) -> Option<ObjId> {
        match self.doc.get(ROOT, "fields").ok().flatten() {
            Some((automerge::Value::Object(ObjType::Map), id)) => Some(id),
            _ => None,
        }
    }

    /// The shown value of every set field, decoded by the schema. Stored values that no
    /// longer fit the schema are skipped (and logged).
    pub fn values(&self, schema: &Schema) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Some(fields) = self.fields_obj() else {
            return out;
        };
        for key in self.doc.keys(&fields) {
            if let Some(v) = self.value(schema, &fields, &key) {
                out.insert(key, v);
            }
        }
        out
    }

    fn value(&self, schema: &Schema, fields: &ObjId, key: &str) -> Option<Value> {
        let def = schema.field(key)?;
        match self.doc.get(fields, key).ok().flatten()? {
            (automerge::Value::Scalar(s), _) => {
                let decoded = def.ty.from_scalar(s.as_ref());
                if decoded.is_none() {
                    tracing::warn!(record = %self.id, field = key, "stored value does not fit the schema");
                }
                decoded
            }
            _ => None,
        }
    }

    /// Stored values the schema does not accept (written under an older revision, or by
    /// a phone with another one): kept in the document, shown, and flagged with why.
    /// Empty for a record whose values all fit.
    pub fn invalid_values(&self, schema: &Schema) -> Vec<InvalidValue> {
        let Some(fields) = self.fields_obj() else {
            return Vec::new();
        };
        let entity = self.entity();
        let mut out = Vec::new();
        for key in self.doc.keys(&fields) {
            let Some((automerge::Value::Scalar(s), _)) = self.doc.get(&fields, &key).ok().flatten()
            else {
                continue;
            };
            let reason = match crate::schema::field_of_entity(schema, &entity, &key) {
                Err(e) => Some(e.to_string()),
                Ok(def) => match def.ty.from_scalar(s.as_ref()) {
                    None => Some(format!(
                        "field `{key}` ({}) expects {}, holds a value of another type",
                        def.labels.zh,
                        def.ty.expects()
                    )),
                    Some(v) => schema
                        .validate(&entity, &key, &v)
                        .err()
                        .map(|e| e.to_string()),
                },
            };
            if let Some(reason) = reason {
                out.push(InvalidValue {
                    value: scalar_json(s.as_ref()),
                    field: key,
                    reason,
                });
            }
        }
        out
    }

    /// The shown values as one JSON object, field -> value (JSON form).
    pub fn values_json(&self, schema: &Schema) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .values(schema)
            .into_iter()
            .map(|(k, v)| (k, v.to_json()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// Unresolved conflicts as one JSON object: field -> `[{value, cadre, device, at_ms}]`.
    pub fn conflicts_json(&self, schema: &Schema) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .conflicts(schema)
            .into_iter()
            .map(|c| {
                let values = c
                    .values
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "value": v.value, "cadre": v.by.cadre, "device": v.by.device,
                            "at_ms": v.by.at_ms, "shown": v.shown
                        })
                    })
                    .collect();
                (c.field, serde_json::Value::Array(values))
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// Keys of fields that currently hold more than one value.
    pub fn conflicted_fields(&self) -> Vec<String> {
        let Some(fields) = self.fields_obj() else {
            return Vec::new();
        };
        self.doc
            .keys(&fields)
            .filter(|k| {
                self.doc
                    .get_all(&fields, k.as_str())
                    .map(|v| v.len())
                    .unwrap_or(0)
                    > 1
            })
            .collect()
    }

    /// Every conflicted field with all its values and who set each.
    pub fn conflicts(&self, schema: &Schema) -> Vec<Conflict> {
        let Some(fields) = self.fields_obj() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in self.conflicted_fields() {
            let shown = self
                .doc
                .get(&fields, key.as_str())
                .ok()
                .flatten()
                .map(|(_, id)| id);
            let all = self.doc.get_all(&fields, key.as_str()).unwrap_or_default();
            let values = all
                .into_iter()
                .map(|(v, exid)| ConflictValue {
                    value: match (&v, schema.field(&key)) {
                        (automerge::Value::Scalar(s), Some(def)) => {
                            def.ty.from_scalar(s.as_ref()).map(|v| v.to_json())
                        }
                        _ => None,
                    },
                    by: self.provenance_of_op(&exid),
                    shown: Some(&exid) == shown.as_ref(),
                })
                .collect();
            out.push(Conflict { field: key, values });
        }
        out
    }

    fn provenance_of_op(&self, exid: &ObjId) -> Provenance {
        let meta = self
            .doc
            .hash_for_opid(exid)
            .and_then(|h| self.doc.get_change_meta_by_hash(&h));
        match meta {
            Some(m) => {
                let author = m
                    .message
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Author>(s).ok());
                Provenance {
                    cadre: author.as_ref().map(|a| a.cadre.to_string()),
                    device: author.as_ref().map(|a| a.device.to_string()),
                    at_ms: m.timestamp,
                    change: m.hash.to_string(),
                }
            }
            None => Provenance {
                cadre: None,
                device: None,
                at_ms: 0,
                change: String::new(),
            },
        }
    }

    /// The record's full history, oldest first (causal order), one entry per field
    /// touched per change.
    pub fn history(&self, schema: &Schema) -> Vec<HistoryEntry> {
        let fields_id = match self.fields_obj() {
            Some(ObjId::Id(counter, actor, _)) => Some((counter, actor)),
            _ => None,
        };
        let mut out = Vec::new();
        for change in self.changes_in_stable_order() {
            let author = change
                .message()
                .and_then(|s| serde_json::from_str::<Author>(s).ok());
            let by = Provenance {
                cadre: author.as_ref().map(|a| a.cadre.to_string()),
                device: author.as_ref().map(|a| a.device.to_string()),
                at_ms: change.timestamp(),
                change: change.hash().to_string(),
            };
            let expanded = change.decode();
            let is_create = expanded.operations.iter().any(|op| {
                matches!((&op.obj, &op.key), (legacy::ObjectId::Root, legacy::Key::Map(k)) if k == "entity")
            });
            for op in &expanded.operations {
                let legacy::Key::Map(key) = &op.key else {
                    continue;
                };
                let event = match &op.obj {
                    legacy::ObjectId::Root => match (key.as_str(), &op.action) {
                        ("entity", legacy::OpType::Put(ScalarValue::Str(e))) => {
                            Some(HistoryEvent::Created {
                                entity: e.to_string(),
                            })
                        }
                        ("deleted", legacy::OpType::Put(ScalarValue::Boolean(true))) => {
                            Some(HistoryEvent::Deleted)
                        }
                        ("deleted", legacy::OpType::Put(ScalarValue::Boolean(false)))
                            if !is_create =>
                        {
                            Some(HistoryEvent::Restored)
                        }
                        _ => None,
                    },
                    legacy::ObjectId::Id(legacy::OpId(counter, actor))
                        if fields_id.as_ref() == Some(&(*counter, actor.clone())) =>
                    {
                        match &op.action {
                            legacy::OpType::Put(s) => {
                                let field = key.to_string();
                                let value = schema
                                    .field(key)
                                    .and_then(|d| d.ty.from_scalar(s))
                                    .map(|v| v.to_json())
                                    .unwrap_or_else(|| serde_json::Value::String(s.to_string()));
                                // A write that supersedes several concurrent values is the
                                // settling of a conflict (`resolve`, or a set of a conflicted
                                // field): automerge records what it overwrote as `pred`.
                                Some(if op.pred.len() > 1 {
                                    HistoryEvent::Resolved { field, value }
                                } else {
                                    HistoryEvent::Set { field, value }
                                })
                            }
                            // Automerge settles a conflict in favour of an existing value
                            // by deleting only the competing ops; the field keeps a value.
                            legacy::OpType::Delete => {
                                match self.value_at(schema, key, change.hash()) {
                                    Some(value) => Some(HistoryEvent::Resolved {
                                        field: key.to_string(),
                                        value,
                                    }),
                                    None => Some(HistoryEvent::Unset {
                                        field: key.to_string(),
                                    }),
                                }
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(event) = event {
                    out.push(HistoryEntry {
                        event,
                        by: by.clone(),
                    });
                }
            }
        }
        out
    }

    /// Every change, in a causal order that is the same on every replica: among changes
    /// whose dependencies are all listed, the earliest (by time, then hash) comes first.
    fn changes_in_stable_order(&self) -> Vec<automerge::Change> {
        use std::cmp::Reverse;
        use std::collections::{BinaryHeap, HashMap};

        let changes = self.doc.get_changes(&[]);
        let index: HashMap<ChangeHash, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.hash(), i))
            .collect();
        let mut waiting: Vec<usize> = vec![0; changes.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
        for (i, c) in changes.iter().enumerate() {
            for dep in c.deps() {
                if let Some(&d) = index.get(dep) {
                    waiting[i] += 1;
                    dependents[d].push(i);
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<(i64, ChangeHash, usize)>> = changes
            .iter()
            .enumerate()
            .filter(|(i, _)| waiting[*i] == 0)
            .map(|(i, c)| Reverse((c.timestamp(), c.hash(), i)))
            .collect();
        let mut order = Vec::with_capacity(changes.len());
        while let Some(Reverse((_, _, i))) = ready.pop() {
            order.push(i);
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(Reverse((changes[j].timestamp(), changes[j].hash(), j)));
                }
            }
        }
        let mut slots: Vec<Option<automerge::Change>> = changes.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }

    /// The shown value of `field` as of the change `at` (JSON form).
    fn value_at(&self, schema: &Schema, field: &str, at: ChangeHash) -> Option<serde_json::Value> {
        let fields = self.fields_obj()?;
        match self.doc.get_at(&fields, field, &[at]).ok().flatten()? {
            (automerge::Value::Scalar(s), _) => Some(
                schema
                    .field(field)
                    .and_then(|d| d.ty.from_scalar(s.as_ref()))
                    .map(|v| v.to_json())
                    .unwrap_or_else(|| serde_json::Value::String(s.to_string())),
            ),
            _ => None,
        }
    }

    /// Applies validated edits in one change. Returns false when nothing changed.
    pub fn apply_edits(
        &mut self,
        edits: &[FieldEdit],
        author: &Author,
        now_ms: i64,
    ) -> Result<bool> {
        if self.is_deleted() {
            return Err(Error::Deleted(self.id));
        }
        let Some(fields) = self.fields_obj() else {
            return Err(Error::Corrupt {
                record: self.id,
                problem: "no fields map".into(),
            });
        };
        let mut tx = self.doc.transaction();
        for edit in edits {
            match edit {
                FieldEdit::Set(field, value) => {
                    tx.put(&fields, field.as_str(), value.to_scalar())?
                }
                FieldEdit::Unset(field) => {
                    if tx.get(&fields, field.as_str())?.is_some() {
                        tx.delete(&fields, field.as_str())?;
                    }
                }
            }
        }
        if tx.pending_ops() == 0 {
            tx.rollback();
            return Ok(false);
        }
        tx.commit_with(commit_options(author, now_ms));
        Ok(true)
    }

    /// Sets or clears the tombstone. Returns false when it already had that state.
    pub fn set_deleted(&mut self, deleted: bool, author: &Author, now_ms: i64) -> Result<bool> {
        if self.is_deleted() == deleted {
            return Ok(false);
        }
        let mut tx = self.doc.transaction();
        tx.put(ROOT, "deleted", deleted)?;
        tx.commit_with(commit_options(author, now_ms));
        Ok(true)
    }

    /// Settles a conflicted field with `value` (one of the competing values or a new one),
    /// or clears it with `None`. The new write supersedes every value this replica has seen.
    pub fn resolve(
        &mut self,
        field: &str,
        value: Option<&Value>,
        author: &Author,
        now_ms: i64,
    ) -> Result<()> {
        if !self.conflicted_fields().iter().any(|f| f == field) {
            return Err(Error::NoConflict {
                record: self.id,
                field: field.to_owned(),
            });
        }
        let edit = match value {
            Some(v) => FieldEdit::Set(field.to_owned(), v.clone()),
            None => FieldEdit::Unset(field.to_owned()),
        };
        self.apply_edits(&[edit], author, now_ms)?;
        Ok(())
    }

    /// Bytes of every change made after `heads` (all of them for `&[]`).
    pub fn save_after(&self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// A compact snapshot of the whole document.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The whole document for the wire: columns left uncompressed, because the sync
    /// message is zstd-compressed as a whole and zstd then also sees what records share
    /// (measured: about 20% fewer bytes for a page of whole documents than `save()`).
    pub fn save_for_wire(&self) -> Vec<u8> {
        self.doc.save_nocompress()
    }

    /// Merges changes received from elsewhere (a snapshot or incremental chunks).
    /// Returns the number of changes that were new here; 0 for a duplicate.
    ///
    /// The bytes are parsed strictly first: automerge's `load_incremental` skips a
    /// malformed tail with only a log line, and a sync server must refuse it instead.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<usize> {
        strict_parse(bytes)?;
        let before = self.doc.get_heads();
        self.doc.load_incremental(bytes)?;
        if self.doc.get_heads() == before {
            return Ok(0);
        }
        Ok(self.doc.get_changes(&before).len())
    }
}

/// A stored value the current schema does not accept ([`Record::invalid_values`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InvalidValue {
    /// The field key.
    pub field: String,
    /// The stored value as JSON (as stored, whatever the schema now says).
    pub value: serde_json::Value,
    /// Why the current schema refuses it.
    pub reason: String,
}

/// A stored scalar as plain JSON, without the schema.
fn scalar_json(s: &ScalarValue) -> serde_json::Value {
    match s {
        ScalarValue::Str(t) => serde_json::Value::String(t.to_string()),
        ScalarValue::Int(i) => serde_json::json!(i),
        ScalarValue::Uint(u) => serde_json::json!(u),
        ScalarValue::F64(f) => serde_json::json!(f),
        ScalarValue::Boolean(b) => serde_json::Value::Bool(*b),
        ScalarValue::Null => serde_json::Value::Null,
        other => serde_json::Value::String(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_delta_parses_and_a_corrupt_one_is_still_refused() {
        let author = Author {
            cadre: crate::ids::CadreId::new("amu").unwrap(),
            device: crate::ids::DeviceId::new("dev-a").unwrap(),
        };
        let scope = Scope {
            township: "baru".into(),
            village: None,
        };
        let mut record = Record::create(
            RecordId::new(),
            ActorId::random(),
            "household",
            &scope,
            &[],
            &author,
            1,
        )
        .unwrap();
        let before = record.heads();
        let edit = FieldEdit::Set("household_size".into(), Value::Integer(5));
        record.apply_edits(&[edit], &author, 2).unwrap();
        let mut delta = record.save_after(&before);
        assert!(strict_parse(&delta).is_ok());
        let last = delta.len() - 1;
        delta[last] ^= 0xff;
        assert!(strict_parse(&delta).is_err());
        let mut doc = record.save();
        doc.truncate(doc.len() - 1);
        assert!(strict_parse(&doc).is_err());
    }
}
