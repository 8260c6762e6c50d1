//! # yibiao store
//!
//! The phone's durable local store: one SQLite file holding every record's automerge
//! changes and a queryable index of current values, and the blocking driver that runs a
//! sync session over a transport ([`sync`]; the built-in HTTP transport in [`http`],
//! feature `http`). Depends on `yibiao-model` and `yibiao-sync`; the server never links it.
//!
//! ```
//! use std::sync::Arc;
//! use yibiao_model::{CadreId, FieldEdit, Schema, Value, clock::SystemClock};
//! use yibiao_store::Store;
//!
//! let schema = Arc::new(Schema::baru_example());
//! let store = Store::open_in_memory(schema, CadreId::new("cadre-1")?, Arc::new(SystemClock))?;
//! let id = store.create("household", Some("tujiang"), &[
//!     FieldEdit::Set("household_head".into(), Value::Text("阿木".into())),
//!     FieldEdit::Set("household_size".into(), Value::Integer(5)),
//! ])?;
//! let status = store.form_status(id, "dibao_check")?;
//! assert!(status.missing_required.contains(&"annual_income".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//!
//! Why this shape:
//! - **One transaction per logical write.** The change bytes, the index rows and the
//!   sync bookkeeping of an edit commit together or not at all, so the index can never
//!   disagree with the documents, even after `kill -9`.
//! - **WAL + `synchronous=FULL`.** A write that returned has been fsynced to the WAL:
//!   it survives process death and power loss. Readers never block the writer.
//! - **Index beside the documents.** `list`/`query` read `records` and `field_values`
//!   only; documents are loaded just for `get`, edits, conflicts and history. Index rows
//!   are a pure function of the document, so replicas that merged the same changes hold
//!   identical rows.
//! - **Chunks + compaction.** Each write appends the change bytes as a chunk; after
//!   `compact_after_chunks` chunks, the document is rewritten as one compressed snapshot
//!   in the same transaction.
//! - **Sync bookkeeping.** Each record has `local_seq` (bumped on every local write) and
//!   `acked_seq` (the last local write the server acknowledged), plus the server's known
//!   heads, so the sync client sends exactly what the server lacks and a cut mid-sync
//!   loses nothing.
//!
//! One writer connection behind a mutex: a phone has one user, and SQLite has one writer.

pub mod blobs;
pub mod driver;
pub mod error;
mod findings;
#[cfg(feature = "http")]
pub mod http;
mod index;
mod migrations;
mod query;
mod schema;
mod scope;
mod sync_marks;
mod tasks;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use automerge::{ActorId, ChangeHash};
use lru::LruCache;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

pub use driver::{SyncError, sync, sync_with_sleep};
pub use error::{Error, Result};
pub use findings::{NewFinding, PhoneFinding};
pub use migrations::STORE_VERSION;
pub use query::{MAX_PAGE, Page, Query, RecordSummary};
pub use sync_marks::{Credentials, RefusedDoc, SyncStatus};
pub use tasks::{PhoneTask, PhoneTaskStatus};
pub use yibiao_sync::session::{
    Exchange, Merged, Pending, RetryPolicy, SyncOptions, SyncProgress, SyncReport, Transport,
    TransportError,
};

use crate::error::ModelError;
use yibiao_model::clock::{Clock, SystemClock};

use yibiao_model::ids::{Author, CadreId, DeviceId, RecordId};
use yibiao_model::record::{Conflict, FieldEdit, HistoryEntry, Record, Scope};
use yibiao_model::schema::Schema;
use yibiao_model::value::Value;

/// Tuning knobs; the defaults suit a cheap Android phone.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Rewrite a document as one snapshot after this many incremental chunks.
    pub compact_after_chunks: u32,
    /// Documents kept decoded in memory.
    pub cached_documents: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            compact_after_chunks: 64,
            cached_documents: 256,
        }
    }
}

/// A record as read by `get`: its scope, state and current values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    /// Record id.
    pub id: RecordId,
    /// Entity type.
    pub entity: String,
    /// Township and village.
    pub scope: Scope,
    /// True when the record carries a tombstone.
    pub deleted: bool,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Current values in the entity's field order.
    pub fields: Vec<FieldView>,
    /// Fields with unresolved concurrent values.
    pub conflicted: Vec<String>,
    /// Fields whose stored value the current schema revision refuses (kept and shown;
    /// see [`FieldView::invalid`]).
    pub invalid: Vec<String>,
}

/// One current value of a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldView {
    /// Field key.
    pub field: String,
    /// The shown value (JSON form).
    pub value: serde_json::Value,
    /// True when other concurrent values exist (see `conflicts`).
    pub conflicted: bool,
    /// Why the current schema revision refuses this stored value (entered under an
    /// older one), if it does. The value stays and syncs; the cadre may correct it.
    pub invalid: Option<String>,
}

impl RecordView {
    /// The shown value of `field`, if set.
    pub fn value(&self, field: &str) -> Option<&serde_json::Value> {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| &f.value)
    }
}

/// How far a record is from completing a form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FormStatus {
    /// The form.
    pub form: String,
    /// Required fields still empty, in the form's order.
    pub missing_required: Vec<String>,
    /// Optional fields still empty, in the form's order.
    pub missing_optional: Vec<String>,
    /// Required fields filled.
    pub filled_required: usize,
    /// Required fields in all.
    pub total_required: usize,
}

impl FormStatus {
    /// True when every required field is filled.
    pub fn complete(&self) -> bool {
        self.missing_required.is_empty()
    }
}

/// Counts for status screens and benchmarks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Records, including deleted ones.
    pub records: i64,
    /// Records with edits the server has not acknowledged.
    pub pending: i64,
    /// Records with unresolved conflicts.
    pub conflicted: i64,
    /// Stored document chunks.
    pub chunks: i64,
}

struct Inner {
    conn: Connection,
    cache: LruCache<RecordId, Record>,
    write_seq: i64,
    cadre: CadreId,
}

/// The local store of one device. `Send + Sync`; share it behind an `Arc`.
pub struct Store {
    /// The schema edits are validated with: the app's own, or a newer revision the
    /// server sent (stored in `meta`, see `schema.rs`). Swapped whole on a new revision.
    schema: RwLock<Arc<Schema>>,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    device: DeviceId,
    actor: ActorId,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

impl Store {
    /// Opens (creating if needed) the store at `path` for `cadre`, with the system clock.
    pub fn open(path: impl AsRef<Path>, schema: Arc<Schema>, cadre: CadreId) -> Result<Self> {
        Self::open_with(
            path,
            schema,
            cadre,
            Arc::new(SystemClock),
            StoreConfig::default(),
        )
    }

    /// Opens a store with an explicit clock and configuration.
    pub fn open_with(
        path: impl AsRef<Path>,
        schema: Arc<Schema>,
        cadre: CadreId,
        clock: Arc<dyn Clock>,
        config: StoreConfig,
    ) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::from_connection(conn, schema, cadre, clock, config)
    }

    /// A store in memory, for tests and simulations.
    pub fn open_in_memory(
        schema: Arc<Schema>,
        cadre: CadreId,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Self::from_connection(
            Connection::open_in_memory()?,
            schema,
            cadre,
            clock,
            StoreConfig::default(),
        )
    }

    fn from_connection(
        mut conn: Connection,
        schema: Arc<Schema>,
        cadre: CadreId,
        clock: Arc<dyn Clock>,
        config: StoreConfig,
    ) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL for crash safety without blocking readers; FULL so a returned write is on disk.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::migrate(&mut conn)?;
        let schema = schema::on_open(&mut conn, schema)?;

        let tx = conn.transaction()?;
        let device = match meta_get(&tx, "device_id")? {
            Some(d) => DeviceId::new(d)?,
            None => {
                let d = DeviceId::new(format!("dev-{}", uuid::Uuid::new_v4().simple()))?;
                meta_set(&tx, "device_id", d.as_str())?;
                d
            }
        };
        let actor = match meta_get(&tx, "actor_id")? {
            Some(hex_actor) => ActorId::from(
                hex::decode(&hex_actor)
                    .map_err(|_| Error::CorruptStore("stored actor id is not hex".into()))?,
            ),
            None => {
                let a = ActorId::random();
                meta_set(&tx, "actor_id", &a.to_hex_string())?;
                a
            }
        };
        meta_set(&tx, "cadre_id", cadre.as_str())?;
        let write_seq = meta_get(&tx, "write_seq")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tx.commit()?;

        let cache_size =
            NonZeroUsize::new(config.cached_documents.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            schema: RwLock::new(schema),
            clock,
            config,
            device,
            actor,
            inner: Mutex::new(Inner {
                conn,
                cache: LruCache::new(cache_size),
                write_seq,
                cadre,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction
        // rolls back on drop) and the cache is only a cache, so poisoning is recoverable.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.cache.clear();
                g
            }
        }
    }

    /// The schema this store validates against now (the newest revision it holds).
    pub fn schema(&self) -> Arc<Schema> {
        match self.schema.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the schema in memory (the caller committed it).
    fn set_schema(&self, schema: Arc<Schema>) {
        match self.schema.write() {
            Ok(mut s) => *s = schema,
            Err(poisoned) => *poisoned.into_inner() = schema,
        }
    }

    /// This device's stable id.
    pub fn device_id(&self) -> &DeviceId {
        &self.device
    }

    /// This device's automerge actor id (hex).
    pub fn actor_hex(&self) -> String {
        self.actor.to_hex_string()
    }

    /// The cadre whose edits this store records.
    pub fn cadre_id(&self) -> CadreId {
        self.lock().cadre.clone()
    }

    /// Switches the cadre recorded on later edits (another cadre uses this phone).
    pub fn set_cadre(&self, cadre: CadreId) -> Result<()> {
        let mut inner = self.lock();
        meta_set(&inner.conn, "cadre_id", cadre.as_str())?;
        inner.cadre = cadre;
        Ok(())
    }

    fn author(&self, inner: &Inner) -> Author {
        Author {
            cadre: inner.cadre.clone(),
            device: self.device.clone(),
        }
    }

    fn validate_edits(&self, entity: &str, edits: &[FieldEdit]) -> Result<()> {
        for edit in edits {
            match edit {
                FieldEdit::Set(field, value) => self.schema().validate(entity, field, value)?,
                FieldEdit::Unset(field) => {
                    yibiao_model::schema::field_of_entity(&self.schema(), entity, field)?;
                }
            }
        }
        Ok(())
    }

    /// Creates a record of `entity` in `village` (`None`: township level) with its first
    /// values, in one durable write.
    pub fn create(
        &self,
        entity: &str,
        village: Option<&str>,
        edits: &[FieldEdit],
    ) -> Result<RecordId> {
        if self.schema().entity(entity).is_none() {
            return Err(ModelError::UnknownEntity(entity.to_owned()).into());
        }
        if let Some(v) = village
            && !self.schema().has_village(v)
        {
            return Err(ModelError::UnknownVillage(v.to_owned()).into());
        }
        self.check_scope(village)?;
        self.validate_edits(entity, edits)?;
        let scope = Scope {
            township: self.schema().township.id.clone(),
            village: village.map(str::to_owned),
        };
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let id = RecordId::new();
        let record = Record::create(
            id,
            self.actor.clone(),
            entity,
            &scope,
            edits,
            &self.author(&inner),
            now,
        )?;
        self.insert_created(&mut inner, record, now)?;
        Ok(id)
    }

    /// Stores a document created on this phone (a record, a finding) in one durable
    /// write: its row, its first chunk, its index rows.
    fn insert_created(&self, inner: &mut Inner, record: Record, now: i64) -> Result<()> {
        let id = record.id();
        let scope = record.scope();
        let bytes = record.save();
        let Inner {
            conn, write_seq, ..
        } = &mut *inner;
        let tx = conn.transaction()?;
        let seq = *write_seq + 1;
        tx.execute(
            "INSERT INTO records (id, entity, township, village, deleted, conflicted, created_ms,
                                  updated_ms, heads, chunk_count, local_seq, acked_seq)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6, 1, ?7, 0)",
            params![
                id.to_string(),
                record.entity(),
                scope.township,
                scope.village,
                now,
                encode_heads(&record.heads()),
                seq
            ],
        )?;
        tx.execute(
            "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes) VALUES (?1, 1, 1, ?2)",
            params![id.to_string(), bytes],
        )?;
        index::write_fields(&tx, &self.schema(), &record, None)?;
        meta_set(&tx, "write_seq", &seq.to_string())?;
        tx.commit()?;
        *write_seq = seq;
        inner.cache.put(id, record);
        Ok(())
    }

    /// Applies edits to a record in one change and one durable write. Every edit is
    /// validated first; if any is refused, nothing is written. Returns false when the
    /// edits changed nothing.
    pub fn update(&self, id: RecordId, edits: &[FieldEdit]) -> Result<bool> {
        let mut inner = self.lock();
        let record = self.load(&mut inner, id)?;
        not_a_task(record)?;
        let entity = record.entity();
        self.validate_edits(&entity, edits)?;
        let touched: Vec<String> = edits.iter().map(|e| e.field().to_owned()).collect();
        let author = self.author(&inner);
        let now = self.clock.now_ms();
        self.write(&mut inner, id, Some(&touched), |r| {
            r.apply_edits(edits, &author, now).map_err(Error::from)
        })
    }

    /// Sets one field.
    pub fn set(&self, id: RecordId, field: &str, value: Value) -> Result<bool> {
        self.update(id, &[FieldEdit::Set(field.to_owned(), value)])
    }

    /// Sets one field from JSON, parsing it by the field's type first.
    pub fn set_json(&self, id: RecordId, field: &str, json: &serde_json::Value) -> Result<bool> {
        let entity = self.get(id)?.entity;
        let value = self.schema().parse_json(&entity, field, json)?;
        self.set(id, field, value)
    }

    /// Edits from the JSON text an app's form sends (field -> JSON text), parsed by the
    /// dictionary for a record of `entity`, in field order so the first bad field
    /// reported is always the same one.
    pub fn edits_from_json_text(
        &self,
        entity: &str,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<FieldEdit>> {
        let mut fields: Vec<_> = fields.into_iter().collect();
        fields.sort();
        fields
            .into_iter()
            .map(|(field, text)| {
                let value = self.schema().parse_json_text(entity, &field, &text)?;
                Ok(FieldEdit::Set(field, value))
            })
            .collect()
    }

    /// [`Store::create`] with values as JSON text (field -> JSON text).
    pub fn create_from_json_text(
        &self,
        entity: &str,
        village: Option<&str>,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RecordId> {
        if self.schema().entity(entity).is_none() {
            return Err(ModelError::UnknownEntity(entity.to_owned()).into());
        }
        let edits = self.edits_from_json_text(entity, fields)?;
        self.create(entity, village, &edits)
    }

    /// [`Store::update`] with values as JSON text; if any is refused, nothing is written.
    pub fn update_from_json_text(
        &self,
        id: RecordId,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Result<bool> {
        let entity = self.get(id)?.entity;
        let edits = self.edits_from_json_text(&entity, fields)?;
        self.update(id, &edits)
    }

    /// [`Store::resolve`] with the chosen value as JSON text (`None` clears the field).
    pub fn resolve_from_json_text(
        &self,
        id: RecordId,
        field: &str,
        text: Option<&str>,
    ) -> Result<()> {
        let value = match text {
            Some(text) => {
                let entity = self.get(id)?.entity;
                Some(self.schema().parse_json_text(&entity, field, text)?)
            }
            None => None,
        };
        self.resolve(id, field, value)
    }

    /// Clears one field.
    pub fn unset(&self, id: RecordId, field: &str) -> Result<bool> {
        self.update(id, &[FieldEdit::Unset(field.to_owned())])
    }

    /// Marks the record deleted (a tombstone; [`Store::restore`] brings it back).
    pub fn delete(&self, id: RecordId) -> Result<bool> {
        let mut inner = self.lock();
        let author = self.author(&inner);
        let now = self.clock.now_ms();
        self.write(&mut inner, id, Some(&[]), |r| {
            not_a_task(r)?;
            r.set_deleted(true, &author, now).map_err(Error::from)
        })
    }

    /// Removes the tombstone of a deleted record.
    pub fn restore(&self, id: RecordId) -> Result<bool> {
        let mut inner = self.lock();
        let author = self.author(&inner);
        let now = self.clock.now_ms();
        self.write(&mut inner, id, Some(&[]), |r| {
            not_a_task(r)?;
            r.set_deleted(false, &author, now).map_err(Error::from)
        })
    }

    /// Settles a conflicted field with `value` (one of the competing values or a new one)
    /// or clears it with `None`.
    pub fn resolve(&self, id: RecordId, field: &str, value: Option<Value>) -> Result<()> {
        let mut inner = self.lock();
        let entity = self.load(&mut inner, id)?.entity();
        if let Some(v) = &value {
            self.schema().validate(&entity, field, v)?;
        }
        let author = self.author(&inner);
        let now = self.clock.now_ms();
        let touched = [field.to_owned()];
        self.write(&mut inner, id, Some(&touched), |r| {
            r.resolve(field, value.as_ref(), &author, now)
                .map_err(Error::from)
                .map(|()| true)
        })?;
        Ok(())
    }

    /// Loads a record into the cache (if needed) and returns it.
    fn load<'a>(&self, inner: &'a mut Inner, id: RecordId) -> Result<&'a mut Record> {
        if !inner.cache.contains(&id) {
            let record = load_record(&inner.conn, id, &self.actor)?;
            inner.cache.put(id, record);
        }
        inner
            .cache
            .get_mut(&id)
            .ok_or(ModelError::NotFound(id).into())
    }

    /// Runs a local mutation and persists it. `touched` limits reindexing to those fields
    /// (`None`: every field).
    fn write(
        &self,
        inner: &mut Inner,
        id: RecordId,
        touched: Option<&[String]>,
        mutate: impl FnOnce(&mut Record) -> Result<bool>,
    ) -> Result<bool> {
        let record = self.load(inner, id)?;
        let before = record.heads();
        let changed = match mutate(record) {
            Ok(changed) => changed,
            Err(e) => {
                inner.cache.pop(&id);
                return Err(e);
            }
        };
        if !changed {
            return Ok(false);
        }
        let seq = inner.write_seq + 1;
        let Inner { conn, cache, .. } = &mut *inner;
        let result = (|| {
            let record = cache.get(&id).ok_or(ModelError::NotFound(id))?;
            let tx = conn.transaction()?;
            self.persist(&tx, record, &before, touched, Some(seq))?;
            meta_set(&tx, "write_seq", &seq.to_string())?;
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                inner.write_seq = seq;
                Ok(true)
            }
            Err(e) => {
                // The in-memory document holds a change that never reached disk; drop it.
                inner.cache.pop(&id);
                Err(e)
            }
        }
    }

    /// Writes what changed in `record` since `before`: a new chunk (or a snapshot when
    /// it is time to compact), the record row and the index rows.
    fn persist(
        &self,
        tx: &Transaction<'_>,
        record: &Record,
        before: &[ChangeHash],
        touched: Option<&[String]>,
        local_seq: Option<i64>,
    ) -> Result<()> {
        let id_text = record.id().to_string();
        let chunk_count: i64 = tx.query_row(
            "SELECT chunk_count FROM records WHERE id = ?1",
            [&id_text],
            |r| r.get(0),
        )?;
        let now = self.clock.now_ms();
        let compact = chunk_count + 1 >= i64::from(self.config.compact_after_chunks);
        let new_count = if compact {
            tx.execute("DELETE FROM doc_chunks WHERE record_id = ?1", [&id_text])?;
            tx.execute(
                "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes) VALUES (?1, 1, 1, ?2)",
                params![id_text, record.save()],
            )?;
            1
        } else {
            tx.execute(
                "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM doc_chunks WHERE record_id = ?1), 0, ?2)",
                params![id_text, record.save_after(before)],
            )?;
            chunk_count + 1
        };
        tx.execute(
            "UPDATE records SET deleted = ?2, conflicted = ?3, updated_ms = ?4, heads = ?5,
                                chunk_count = ?6, local_seq = COALESCE(?7, local_seq)
             WHERE id = ?1",
            params![
                id_text,
                record.is_deleted(),
                !record.conflicted_fields().is_empty(),
                now,
                encode_heads(&record.heads()),
                new_count,
                local_seq
            ],
        )?;
        index::write_fields(tx, &self.schema(), record, touched)?;
        Ok(())
    }

    /// Merges received bytes into `id` inside `tx`, updating the cache. On error the caller
    /// must drop `id` from the cache (the transaction will roll back).
    fn merge_in(
        &self,
        tx: &Transaction<'_>,
        cache: &mut LruCache<RecordId, Record>,
        id: RecordId,
        bytes: &[u8],
    ) -> Result<Merged> {
        let exists = cache.contains(&id) || record_exists(tx, id)?;
        if !exists {
            let record = Record::load_untrusted(id, self.actor.clone(), bytes)?;
            let scope = record.scope();
            let now = self.clock.now_ms();
            tx.execute(
                "INSERT INTO records (id, entity, township, village, deleted, conflicted, created_ms,
                                      updated_ms, heads, chunk_count, local_seq, acked_seq, server_heads)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, 0, 0, NULL)",
                params![
                    id.to_string(),
                    record.entity(),
                    scope.township,
                    scope.village,
                    record.is_deleted(),
                    !record.conflicted_fields().is_empty(),
                    record.created_ms(),
                    now,
                    encode_heads(&record.heads())
                ],
            )?;
            tx.execute(
                "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes) VALUES (?1, 1, 1, ?2)",
                params![id.to_string(), record.save()],
            )?;
            index::write_fields(tx, &self.schema(), &record, None)?;
            let new_changes = record.doc().get_changes(&[]).len();
            cache.put(id, record);
            return Ok(Merged {
                id,
                created: true,
                new_changes,
            });
        }
        if !cache.contains(&id) {
            let record = load_record(tx, id, &self.actor)?;
            cache.put(id, record);
        }
        let record = cache.get_mut(&id).ok_or(ModelError::NotFound(id))?;
        let before = record.heads();
        let new_changes = record.merge_bytes(bytes)?;
        record.check_shape()?;
        if new_changes > 0 {
            self.persist(tx, record, &before, None, None)?;
        }
        Ok(Merged {
            id,
            created: false,
            new_changes,
        })
    }

    /// Reads a record's current state from its document.
    pub fn get(&self, id: RecordId) -> Result<RecordView> {
        let mut inner = self.lock();
        let record = self.load(&mut inner, id)?;
        Ok(view_of(&self.schema(), record))
    }

    /// Lists conflicted fields of a record with every competing value and its author.
    pub fn conflicts(&self, id: RecordId) -> Result<Vec<Conflict>> {
        let mut inner = self.lock();
        Ok(self.load(&mut inner, id)?.conflicts(&self.schema()))
    }

    /// The record's history: who set what, when, on which device.
    pub fn history(&self, id: RecordId) -> Result<Vec<HistoryEntry>> {
        let mut inner = self.lock();
        Ok(self.load(&mut inner, id)?.history(&self.schema()))
    }

    /// What form `form` still needs for record `id`.
    pub fn form_status(&self, id: RecordId, form: &str) -> Result<FormStatus> {
        let schema = self.schema();
        let def = schema
            .form(form)
            .ok_or_else(|| ModelError::UnknownForm(form.to_owned()))?;
        let inner = self.lock();
        let (entity, filled) = index::filled_fields(&inner.conn, id)?;
        if entity != def.entity {
            return Err(ModelError::FormEntityMismatch {
                form: form.to_owned(),
                form_entity: def.entity.clone(),
                record_entity: entity,
            }
            .into());
        }
        let missing_required: Vec<String> = def
            .required
            .iter()
            .filter(|f| !filled.contains(*f))
            .cloned()
            .collect();
        let missing_optional = def
            .fields
            .iter()
            .filter(|f| !def.required.contains(f) && !filled.contains(*f))
            .cloned()
            .collect();
        Ok(FormStatus {
            form: form.to_owned(),
            filled_required: def.required.len() - missing_required.len(),
            total_required: def.required.len(),
            missing_required,
            missing_optional,
        })
    }

    /// Lists records matching `q`, one page at a time, from the index only.
    pub fn query(&self, q: &Query) -> Result<Page> {
        let inner = self.lock();
        query::run(&inner.conn, &self.schema(), q)
    }

    /// Counts for status screens.
    pub fn stats(&self) -> Result<StoreStats> {
        let inner = self.lock();
        Ok(inner.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM records),
                    (SELECT COUNT(*) FROM records WHERE local_seq > acked_seq),
                    (SELECT COUNT(*) FROM records WHERE conflicted = 1),
                    (SELECT COUNT(*) FROM doc_chunks)",
            [],
            |r| {
                Ok(StoreStats {
                    records: r.get(0)?,
                    pending: r.get(1)?,
                    conflicted: r.get(2)?,
                    chunks: r.get(3)?,
                })
            },
        )?)
    }

    // ----- sync support: what the server lacks, what it acknowledged, what arrived -----

    /// Records with local edits the server has not acknowledged, oldest write first
    /// (refused ones included; see [`Store::pending_for_push`] for what sync sends).
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>> {
        let inner = self.lock();
        pending_rows(&inner.conn, "", limit)
    }

    /// The bytes to send the server for `id`: the whole document when the server has
    /// nothing (or when that is smaller), else only the changes after the heads it holds.
    pub fn outgoing(&self, id: RecordId, server_heads: &[ChangeHash]) -> Result<Vec<u8>> {
        let mut inner = self.lock();
        let record = self.load(&mut inner, id)?;
        if server_heads.is_empty()
            || server_heads
                .iter()
                .any(|h| record.doc().get_change_meta_by_hash(h).is_none())
        {
            Ok(record.save_for_wire())
        } else {
            // Many small edits cost a hash and a checksum each; past a point the whole
            // document (which zstd also compresses better) is the smaller message.
            let delta = record.save_after(server_heads);
            if delta.len() > 256 {
                let whole = record.save_for_wire();
                if whole.len() < delta.len() {
                    return Ok(whole);
                }
            }
            Ok(delta)
        }
    }

    /// Records that the server holds `id` up to `server_heads`, including every local write
    /// up to `local_seq`. Later writes stay pending.
    pub fn acknowledge(
        &self,
        id: RecordId,
        local_seq: i64,
        server_heads: &[ChangeHash],
    ) -> Result<()> {
        let inner = self.lock();
        let n = inner.conn.execute(
            "UPDATE records SET acked_seq = MAX(acked_seq, ?2), server_heads = ?3 WHERE id = ?1",
            params![id.to_string(), local_seq, encode_heads(server_heads)],
        )?;
        if n == 0 {
            return Err(ModelError::NotFound(id).into());
        }
        Ok(())
    }

    /// Merges changes of `id` received from elsewhere (the server, another replica).
    /// Duplicates are harmless. The merged record is reindexed in the same transaction.
    pub fn merge(&self, id: RecordId, bytes: &[u8]) -> Result<Merged> {
        let mut inner = self.lock();
        let Inner { conn, cache, .. } = &mut *inner;
        let result = (|| {
            let tx = conn.transaction()?;
            let merged = self.merge_in(&tx, cache, id, bytes)?;
            tx.commit()?;
            Ok(merged)
        })();
        if result.is_err() {
            cache.pop(&id);
        }
        result
    }

    /// The whole document of `id` as one compact snapshot.
    pub fn export(&self, id: RecordId) -> Result<Vec<u8>> {
        let mut inner = self.lock();
        Ok(self.load(&mut inner, id)?.save())
    }

    /// Current heads of `id`.
    pub fn heads(&self, id: RecordId) -> Result<Vec<ChangeHash>> {
        let mut inner = self.lock();
        Ok(self.load(&mut inner, id)?.heads())
    }

    /// Rewrites every document with more than one chunk as a single snapshot.
    pub fn compact_all(&self) -> Result<usize> {
        let mut inner = self.lock();
        let ids: Vec<String> = {
            let mut stmt = inner
                .conn
                .prepare("SELECT id FROM records WHERE chunk_count > 1")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &ids {
            let id: RecordId = id.parse()?;
            let bytes = self.load(&mut inner, id)?.save();
            let tx = inner.conn.transaction()?;
            tx.execute(
                "DELETE FROM doc_chunks WHERE record_id = ?1",
                [id.to_string()],
            )?;
            tx.execute(
                "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes) VALUES (?1, 1, 1, ?2)",
                params![id.to_string(), bytes],
            )?;
            tx.execute(
                "UPDATE records SET chunk_count = 1 WHERE id = ?1",
                [id.to_string()],
            )?;
            tx.commit()?;
        }
        Ok(ids.len())
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        let inner = self.lock();
        Ok(inner
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Every index row of the store, for tests that compare replicas.
    pub fn index_rows(&self) -> Result<Vec<String>> {
        let inner = self.lock();
        index::dump(&inner.conn)
    }
}

/// Refuses record operations on a task or finding document (each has its own API).
fn not_a_task(record: &Record) -> Result<()> {
    if yibiao_model::finding::is_finding(record) {
        return Err(ModelError::Finding(format!(
            "{} is a finding, not a record: take a step on it instead",
            record.id()
        ))
        .into());
    }
    if yibiao_model::task::is_task(record) {
        return Err(ModelError::Task(format!(
            "{} is a task, not a record: open it or mark it done; only its issuer can change or cancel it",
            record.id()
        )).into());
    }
    Ok(())
}

fn view_of(schema: &Schema, record: &Record) -> RecordView {
    let values = record.values(schema);
    let conflicted = record.conflicted_fields();
    let invalid = record.invalid_values(schema);
    let entity = record.entity();
    let order: Vec<String> = schema
        .entity(&entity)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // Values the schema decodes, then stored values it cannot decode at all (a field
    // removed, a type changed), as stored.
    let shown: Vec<(&String, serde_json::Value)> = values
        .iter()
        .map(|(k, v)| (k, v.to_json()))
        .chain(
            invalid
                .iter()
                .filter(|i| !values.contains_key(&i.field))
                .map(|i| (&i.field, i.value.clone())),
        )
        .collect();
    let rank = |k: &String| order.iter().position(|o| o == k).unwrap_or(usize::MAX);
    let mut fields: Vec<FieldView> = shown
        .into_iter()
        .map(|(k, value)| FieldView {
            field: k.clone(),
            value,
            conflicted: conflicted.contains(k),
            invalid: invalid
                .iter()
                .find(|i| &i.field == k)
                .map(|i| i.reason.clone()),
        })
        .collect();
    // Stable: the entity's order first, other fields by key as before.
    fields.sort_by_key(|f| rank(&f.field));
    RecordView {
        id: record.id(),
        entity,
        scope: record.scope(),
        deleted: record.is_deleted(),
        created_ms: record.created_ms(),
        fields,
        conflicted,
        invalid: invalid.into_iter().map(|i| i.field).collect(),
    }
}

/// Records with unacknowledged local writes matching the extra SQL condition `and`.
fn pending_rows(conn: &Connection, and: &str, limit: usize) -> Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.id, r.local_seq, r.server_heads FROM records r
         WHERE r.local_seq > r.acked_seq {and} ORDER BY r.local_seq LIMIT ?1"
    ))?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, local_seq, heads) = row?;
        out.push(Pending {
            id: id.parse()?,
            local_seq,
            server_heads: heads.as_deref().map(decode_heads).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn record_exists(conn: &Connection, id: RecordId) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM records WHERE id = ?1",
            [id.to_string()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn load_record(conn: &Connection, id: RecordId, actor: &ActorId) -> Result<Record> {
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM doc_chunks WHERE record_id = ?1 ORDER BY seq")?;
    let chunks: Vec<Vec<u8>> = stmt
        .query_map([id.to_string()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if chunks.is_empty() {
        return Err(ModelError::NotFound(id).into());
    }
    Ok(Record::load(id, actor.clone(), &chunks)?)
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}
