//! The server's side of sync, sans I/O: take a decoded request, return a response.
//!
//! The hub merges pushed documents after checking every new change against the schema
//! and the device's scope ([`super::check`]), commits the whole page in one storage
//! transaction, then pages through the change feed of the device's scope.
//!
//! **The feed.** Storage keeps one row per record with a sequence number that is renewed
//! every time the record changes, so "everything changed since cursor X" is one range
//! scan, and a device's cursor is simply the last sequence it stored.
//!
//! **What a device already holds.** Storage remembers, per device and record, heads the
//! device is known to hold: the heads it pushed, and the heads the hub sent once the
//! device's next cursor proves that page was stored. With those, a pull sends nothing for
//! a record the device itself just pushed (no echo), only the missing changes for a
//! record it has, and a compacted document for a record it has never seen.
//!
//! **Budgets and quarantine.** What one push may ask of the hub is bounded ([`budget`]):
//! a document over budget is refused and nothing of it stored. A stored record that will
//! not load, or that is too large to send, is *quarantined*: skipped by pulls (the feed
//! moves on), its pushes refused with a reason, logged once and listed by
//! [`Hub::quarantined`] for the operator, so one bad record never stops its village.
//!
//! Storage is a trait ([`HubStorage`]) so the server can run on SQLite or PostgreSQL and
//! tests on [`MemoryHubStorage`]; [`conformance`] is the suite every implementation passes.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ActorId, Change, ChangeHash};
use lru::LruCache;

use crate::check::{
    Refused, actors_to_bind, check_changes, check_identity, check_receipt_cadres, typed_values,
};
use crate::protocol::{
    PullDoc, PushDoc, Refusal, RefusalCode, SchemaOffer, SyncRequest, SyncResponse, WireHash,
    WireId, heads_from_wire, heads_to_wire,
};
use yibiao_model::clock::Clock;
use yibiao_model::finding;
use yibiao_model::ids::{DeviceId, RecordId};
use yibiao_model::record::{Record, Scope};
use yibiao_model::schema::Schema;
use yibiao_model::task;

pub mod budget;
#[cfg(test)]
mod budget_tests;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
mod memory;
mod storage;

pub use crate::identity::Identity;
pub use budget::Budgets;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryHubStorage;
pub use storage::{
    DeviceAuth, DeviceScope, DocWrite, FeedEntry, HubBatch, HubStorage, SetAside, StorageError,
};

const MISSING_HISTORY: &str =
    "the server does not hold the history these changes build on; the whole record will be sent";

/// Tuning of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Store a snapshot instead of another chunk once a document has this many.
    pub compact_after_chunks: usize,
    /// Smallest and largest response budget a device may ask for.
    pub response_bytes: (u32, u32),
    /// Decoded documents kept in memory.
    pub cached_documents: usize,
    /// Feed rows scanned per pull page.
    pub feed_scan: usize,
    /// What one push may ask of the hub and how large a record may grow.
    pub budgets: Budgets,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            compact_after_chunks: 32,
            response_bytes: (4 * 1024, 8 * 1024 * 1024),
            cached_documents: 1024,
            feed_scan: 512,
            budgets: Budgets::default(),
        }
    }
}

/// Why an exchange failed as a whole (per-document problems are refusals instead).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request itself is unusable.
    #[error("bad sync request: {0}")]
    BadRequest(String),
    /// Storage failed; nothing of the page was committed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What merging one pushed document gives: the write, the actors it binds to the phone,
/// and the stored heads it merged onto (empty: a record new to the hub).
type Merged = (DocWrite, Vec<ActorId>, Vec<ChangeHash>);

/// Counters of one exchange, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Documents accepted.
    pub accepted: usize,
    /// Documents refused.
    pub refused: usize,
    /// Documents sent.
    pub sent: usize,
    /// Pushed documents that held nothing new.
    pub duplicates: usize,
}

/// The server-side sync engine.
pub struct Hub<S> {
    schema: Arc<Schema>,
    storage: S,
    clock: Arc<dyn Clock>,
    config: HubConfig,
    actor: ActorId,
    write: Mutex<()>,
    cache: Mutex<LruCache<RecordId, Record>>,
    /// The records set aside, as storage lists them (read at start, written through).
    quarantine: Mutex<BTreeMap<RecordId, SetAside>>,
}

/// What the hub holds of a record: a loaded copy, nothing, or a copy it cannot use
/// (with its village: only devices of that scope may learn it exists).
enum Held {
    Loaded,
    Absent,
    Quarantined(Option<String>),
}

const QUARANTINED: &str = "the server has set its copy of this record aside for the operator (damaged or too large); your edit is kept on this phone";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: HubStorage> Hub<S> {
    /// A hub over `storage`.
    pub fn new(schema: Arc<Schema>, storage: S, clock: Arc<dyn Clock>, config: HubConfig) -> Self {
        let size = NonZeroUsize::new(config.cached_documents.max(1)).unwrap_or(NonZeroUsize::MIN);
        // Set aside before a restart stays set aside: storage is the one list.
        let quarantine = match storage.quarantined() {
            Ok(rows) => rows.into_iter().map(|q| (q.id, q)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the records set aside; each is found again when met");
                BTreeMap::new()
            }
        };
        Self {
            schema,
            storage,
            clock,
            config,
            actor: ActorId::random(),
            write: Mutex::new(()),
            cache: Mutex::new(LruCache::new(size)),
            quarantine: Mutex::new(quarantine),
        }
    }

    /// The storage underneath.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// A record as the hub holds it, if any.
    pub fn record(&self, id: RecordId) -> Result<Option<Record>, StorageError> {
        let mut cache = lock(&self.cache);
        self.cached(&mut cache, id)?;
        Ok(cache.get(&id).cloned())
    }

    /// Records set aside, with why: stored records that do not load or are too large to
    /// send. Pulls skip them and pushes to them are refused until the operator drops them
    /// (`yibiao-server quarantine`). Read from storage, the one list (an operator's drop
    /// shows at once); the hub's own copy if storage fails.
    pub fn quarantined(&self) -> Vec<(RecordId, String)> {
        match self.storage.quarantined() {
            Ok(rows) => rows.into_iter().map(|q| (q.id, q.reason)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the records set aside from storage");
                lock(&self.quarantine)
                    .values()
                    .map(|q| (q.id, q.reason.clone()))
                    .collect()
            }
        }
    }

    /// Forgets a quarantined record (the operator dropped or repaired it), so the next
    /// access loads it again.
    pub fn release(&self, id: RecordId) {
        lock(&self.quarantine).remove(&id);
        lock(&self.cache).pop(&id);
    }

    /// Sets a stored record aside, durably, logging the first time only; returns its
    /// village as stored. If storage fails it is set aside in memory as township-level
    /// (no village device learns of it) and found again when next met.
    fn set_aside(&self, id: RecordId, why: String) -> Option<String> {
        let mut quarantine = lock(&self.quarantine);
        if let Some(q) = quarantine.get(&id) {
            return q.village.clone();
        }
        tracing::error!(record = %id, reason = %why, "stored record quarantined");
        let stored = self
            .storage
            .quarantine(id, &why, self.clock.now_ms())
            .unwrap_or_else(|e| {
                tracing::error!(record = %id, error = %e, "cannot record the quarantine in storage");
                None
            });
        let entry = stored.unwrap_or(SetAside {
            id,
            village: None,
            reason: why,
            since_ms: self.clock.now_ms(),
        });
        let village = entry.village.clone();
        quarantine.insert(id, entry);
        village
    }

    fn cached(
        &self,
        cache: &mut LruCache<RecordId, Record>,
        id: RecordId,
    ) -> Result<bool, StorageError> {
        match self.held(cache, id)? {
            Held::Loaded => Ok(true),
            Held::Absent => Ok(false),
            Held::Quarantined(_) => Err(StorageError(format!(
                "stored record {id} is set aside for the operator (yibiao-server quarantine show {id})"
            ))),
        }
    }

    /// True when the cached `record` is what storage holds (another process may have
    /// written it since it was loaded: a shared storage only).
    fn still_current(&self, record: &Record, id: RecordId) -> Result<bool, StorageError> {
        let mut cached = record.heads();
        cached.sort();
        Ok(match self.storage.stored_heads(id)? {
            Some(mut stored) => {
                stored.sort();
                stored == cached
            }
            None => false,
        })
    }

    /// Loads a record into the cache; a stored record that does not load is quarantined.
    fn held(
        &self,
        cache: &mut LruCache<RecordId, Record>,
        id: RecordId,
    ) -> Result<Held, StorageError> {
        if let Some(record) = cache.peek(&id) {
            if !self.storage.shared() || self.still_current(record, id)? {
                return Ok(Held::Loaded);
            }
            cache.pop(&id);
        }
        let Some(chunks) = self.storage.load(id)? else {
            // Dropped by the operator, if it was set aside.
            lock(&self.quarantine).remove(&id);
            return Ok(Held::Absent);
        };
        if let Some(q) = lock(&self.quarantine).get(&id) {
            return Ok(Held::Quarantined(q.village.clone()));
        }
        match Record::load(id, self.actor.clone(), &chunks) {
            Ok(record) => {
                cache.put(id, record);
                Ok(Held::Loaded)
            }
            Err(e) => {
                let why = format!("stored record {id} does not load: {e}");
                Ok(Held::Quarantined(self.set_aside(id, why)))
            }
        }
    }

    /// Handles one exchange for `auth`.
    pub fn handle(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
    ) -> Result<(SyncResponse, ExchangeStats), HubError> {
        DeviceId::new(req.device.as_str()).map_err(|e| HubError::BadRequest(e.to_string()))?;
        if req.device != auth.identity.device.as_str() {
            return Err(HubError::BadRequest(format!(
                "this token belongs to device `{}`, not `{}`",
                auth.identity.device, req.device
            )));
        }
        let mut stats = ExchangeStats::default();
        let mut response = SyncResponse {
            server_time_ms: self.clock.now_ms(),
            ..SyncResponse::default()
        };
        self.push(auth, req, &mut response, &mut stats)?;
        self.pull(auth, req, &mut response, &mut stats)?;
        response.schema = self.schema_offer(req);
        Ok((response, stats))
    }

    /// The server's schema for a phone that holds an older revision: its text when the
    /// phone's app reads its format, else only the revision and format (the app says
    /// "update the app"). Nothing for phones that hold it, or never said what they hold.
    fn schema_offer(&self, req: &SyncRequest) -> Option<SchemaOffer> {
        let held = req.schema?;
        if held.revision >= self.schema.revision {
            return None;
        }
        // The format the schema file declares: an app that reads it gets the text, an
        // older app only "update the app" (a format-1 schema still reaches format-1 apps).
        let format = self.schema.format;
        Some(SchemaOffer {
            revision: self.schema.revision,
            format,
            text: (format <= held.format).then(|| self.schema.source().to_owned()),
        })
    }

    /// Merges and commits the pushed documents; a commit refused as stale (another
    /// server process wrote one of the records meanwhile) is merged again on the reloaded
    /// records, a few times.
    fn push(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
        response: &mut SyncResponse,
        stats: &mut ExchangeStats,
    ) -> Result<(), HubError> {
        let mut attempts = 0;
        loop {
            let (accepted, refused, before) = (
                response.accepted.len(),
                response.refused.len(),
                stats.clone(),
            );
            match self.push_once(auth, req, response, stats) {
                Err(HubError::Storage(e)) if e.is_stale() && attempts < 5 => {
                    tracing::info!(device = %auth.identity.device, error = %e, "merging again");
                    response.accepted.truncate(accepted);
                    response.refused.truncate(refused);
                    *stats = before;
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn push_once(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
        response: &mut SyncResponse,
        stats: &mut ExchangeStats,
    ) -> Result<(), HubError> {
        // Budgets of the raw bytes first, outside the write lock: an oversized change is
        // refused without being applied, and costs no other device any waiting.
        let prechecked: Vec<Result<(), Refused>> = req
            .push
            .iter()
            .map(|doc| budget::check_pushed_bytes(&self.config.budgets, &doc.bytes))
            .collect();
        // The cache lock is held through the commit: no pull may see a merged document
        // before it is durable, nor one that is being refused.
        let _writer = lock(&self.write);
        let mut cache = lock(&self.cache);
        let mut batch = HubBatch {
            device: auth.key.clone(),
            confirm_upto: req.cursor,
            ..HubBatch::default()
        };
        let mut touched = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (doc, precheck) in req.push.iter().zip(prechecked) {
            let id = RecordId::from(doc.record);
            if !seen.insert(id) {
                return Err(HubError::BadRequest(format!(
                    "record {id} is pushed twice in one request"
                )));
            }
            let merged = precheck.and_then(|()| self.merge_one(&mut cache, auth, doc));
            match merged {
                Ok(Some((write, actors, base))) => {
                    touched.push(id);
                    batch.base_heads.push((id, base));
                    let phone = auth.identity.device.as_str();
                    batch
                        .actors
                        .extend(actors.into_iter().map(|a| (a, phone.to_owned())));
                    batch.docs.push(write);
                    batch.device_heads.push((id, heads_from_wire(&doc.heads)));
                    response.accepted.push(doc.record);
                    stats.accepted += 1;
                }
                Ok(None) => {
                    batch.device_heads.push((id, heads_from_wire(&doc.heads)));
                    response.accepted.push(doc.record);
                    stats.accepted += 1;
                    stats.duplicates += 1;
                }
                Err(refused) => {
                    // Drop what the refused merge left in the cache (a quarantined
                    // record was never there).
                    cache.pop(&id);
                    let (code, message) = (refused.code, &refused.message);
                    tracing::info!(device = %auth.identity.device, record = %id, ?code, %message, "refused a pushed document");
                    response.refused.push(Refusal {
                        record: doc.record,
                        code,
                        reason: refused.reason(),
                        message: refused.message,
                    });
                    stats.refused += 1;
                }
            }
        }
        if let Err(e) = self.storage.commit(&batch) {
            for id in touched {
                cache.pop(&id);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Merges one pushed document into the cached copy. `Ok(None)`: nothing new; else the
    /// write, the actors it binds to the phone and the heads it merged onto.
    fn merge_one(
        &self,
        cache: &mut LruCache<RecordId, Record>,
        auth: &DeviceAuth,
        doc: &PushDoc,
    ) -> Result<Option<Merged>, Refused> {
        let id = RecordId::from(doc.record);
        let (record, before, is_new) = self.merge_into_cache(cache, auth, id, doc)?;
        // Every head the device declares must now be present, or we hold a gap.
        if lacks_a_head(record.doc(), &doc.heads) {
            return Err(missing_history());
        }
        let new_changes = record.doc().get_changes(&before);
        if new_changes.is_empty() {
            return Ok(None);
        }
        budget::check_new_changes(&self.config.budgets, &new_changes)?;
        let is_task = task::is_task(record);
        self.check_new_changes(record, &new_changes, is_task, is_new, auth)?;
        self.check_scope(&record.scope(), auth)?;
        budget::check_record_size(&self.config.budgets, record.save_for_wire().len())?;
        let actors = self.actors_to_bind(&new_changes, &auth.identity)?;
        let (chunk, snapshot) = self.chunk_to_store(id, record, &before, is_new)?;
        let typed = if is_task || finding::is_finding(record) {
            Vec::new()
        } else {
            typed_values(record, &new_changes)
        };
        Ok(Some((
            self.doc_write(record, chunk, snapshot, typed),
            actors,
            before,
        )))
    }

    /// The actors of `changes` first seen now (to bind to this phone); refuses a change
    /// by another phone's actor or the hub's own.
    fn actors_to_bind(
        &self,
        changes: &[Change],
        identity: &Identity,
    ) -> Result<Vec<ActorId>, Refused> {
        let mut actors: Vec<ActorId> = changes.iter().map(|c| c.actor_id().clone()).collect();
        actors.sort();
        actors.dedup();
        let owners = self
            .storage
            .actor_devices(&actors)
            .map_err(|e| -> Refused {
                tracing::error!(error = %e, "storage failed while reading actor bindings");
                (
                    RefusalCode::Malformed,
                    "the server could not check this change's author; try again later".to_owned(),
                )
                    .into()
            })?;
        actors_to_bind(changes, identity, &self.actor, &owners)
    }

    /// Merges `doc` into the cached copy of its record, loaded from storage if the hub
    /// holds it, or started from `doc` if not. Returns the record, its heads before the
    /// merge, and whether it is new.
    fn merge_into_cache<'c>(
        &self,
        cache: &'c mut LruCache<RecordId, Record>,
        auth: &DeviceAuth,
        id: RecordId,
        doc: &PushDoc,
    ) -> Result<(&'c mut Record, Vec<ChangeHash>, bool), Refused> {
        let exists = match self.held(cache, id).map_err(|e| storage_failed(id, e))? {
            Held::Loaded => true,
            Held::Absent => false,
            Held::Quarantined(village) => {
                // Only a device that could read the record learns it is set aside; any
                // other is answered as for an id the hub does not hold.
                if !auth.scope.contains(village.as_deref()) {
                    return Err(self.as_if_unknown(id, doc, auth));
                }
                return Err((RefusalCode::Malformed, QUARANTINED.to_owned()).into());
            }
        };
        if exists {
            let record = cache.get_mut(&id).ok_or_else(cache_miss)?;
            if !auth.scope.contains(record.scope().village.as_deref()) {
                // No existence oracle: a record outside the device's scope is answered
                // exactly as an id the hub does not hold, and nothing is merged.
                return Err(self.as_if_unknown(id, doc, auth));
            }
            let before = record.heads();
            merge_held(record, id, doc)?;
            Ok((record, before, false))
        } else {
            let record = Record::load_untrusted(id, self.actor.clone(), &doc.bytes)
                .map_err(|e| load_refusal(id, doc, e))?;
            cache.put(id, record);
            let record = cache.get_mut(&id).ok_or_else(cache_miss)?;
            Ok((record, Vec::new(), true))
        }
    }

    /// The refusal a push for `id` would get if the hub did not hold it: the pushed
    /// bytes are loaded on their own (never cached, never stored) and checked as a new
    /// record would be. Bytes that would make a record of this scope are refused too.
    fn as_if_unknown(&self, id: RecordId, doc: &PushDoc, auth: &DeviceAuth) -> Refused {
        let record = match Record::load_untrusted(id, self.actor.clone(), &doc.bytes) {
            Ok(record) => record,
            Err(e) => return load_refusal(id, doc, e),
        };
        if lacks_a_head(record.doc(), &doc.heads) {
            return missing_history();
        }
        let changes = record.doc().get_changes(&[]);
        let is_task = task::is_task(&record);
        if let Err(refused) = self.check_new_changes(&record, &changes, is_task, true, auth) {
            return refused;
        }
        self.check_scope(&record.scope(), auth)
            .err()
            .unwrap_or_else(|| {
                (
                    RefusalCode::OutOfScope,
                    "this record cannot be written from this device".to_owned(),
                )
                    .into()
            })
    }

    /// Checks the changes new to the hub: who made them, then a task's by the task rules,
    /// a finding's by the finding rules (in the role the device's scope gives), a
    /// record's against the schema.
    fn check_new_changes(
        &self,
        record: &Record,
        new_changes: &[Change],
        is_task: bool,
        is_new: bool,
        auth: &DeviceAuth,
    ) -> Result<(), Refused> {
        let identity = &auth.identity;
        check_identity(new_changes, identity)?;
        if finding::is_finding(record) {
            let role = match &auth.scope {
                DeviceScope::Village(v) => finding::Role::Village(v.clone()),
                DeviceScope::Township => finding::Role::Township,
            };
            finding::check_finding_changes(
                &self.schema,
                record,
                new_changes,
                is_new,
                &role,
                identity.device.as_str(),
            )
            .map_err(|e| Refused {
                code: RefusalCode::NotARecord,
                message: e.detail,
                reason: Some(e.reason),
            })
        } else if is_task {
            task::check_task_changes(record, new_changes, is_new, identity.device.as_str())
                .map_err(|e| {
                    let code = match e {
                        task::TaskRefusal::Forbidden(_) => RefusalCode::NotARecord,
                        task::TaskRefusal::BadReceipt(_) => RefusalCode::InvalidValue,
                    };
                    (code, e.message().to_owned())
                })?;
            check_receipt_cadres(new_changes, identity)
        } else {
            check_changes(&self.schema, record, new_changes, is_new)
        }
    }

    /// Refuses a record of another township, of an unknown village, or outside what the
    /// device may write.
    fn check_scope(&self, scope: &Scope, auth: &DeviceAuth) -> Result<(), Refused> {
        if scope.township != self.schema.township.id {
            return Err((
                RefusalCode::OutOfScope,
                format!(
                    "record belongs to township `{}`, this server serves `{}`",
                    scope.township, self.schema.township.id
                ),
            )
                .into());
        }
        if let Some(v) = &scope.village
            && !self.schema.has_village(v)
        {
            return Err((RefusalCode::OutOfScope, format!("unknown village `{v}`")).into());
        }
        if !auth.scope.contains(scope.village.as_deref()) {
            // Never name the record's village: a refusal must not tell where a record is.
            let DeviceScope::Village(mine) = &auth.scope else {
                return Err((RefusalCode::OutOfScope, "out of scope".into()).into());
            };
            return Err((
                RefusalCode::OutOfScope,
                format!("this device may only write records of village `{mine}`"),
            )
                .into());
        }
        Ok(())
    }

    /// What to store of a merged record, and whether it is a snapshot: the whole
    /// document when it is new or its chunks are due for compaction, else only the
    /// changes after `before`.
    fn chunk_to_store(
        &self,
        id: RecordId,
        record: &Record,
        before: &[ChangeHash],
        is_new: bool,
    ) -> Result<(Vec<u8>, bool), Refused> {
        let chunks_now = if is_new {
            0
        } else {
            self.storage
                .load(id)
                .map_err(|e| storage_failed(id, e))?
                .map_or(0, |c| c.len())
        };
        let snapshot = is_new || chunks_now + 1 >= self.config.compact_after_chunks;
        let chunk = if snapshot {
            record.save()
        } else {
            record.save_after(before)
        };
        Ok((chunk, snapshot))
    }

    /// What storage keeps of one written document: the chunk, and the summaries the
    /// read side uses without decoding (values and conflicts of a record; spec and
    /// receipts of a task).
    fn doc_write(
        &self,
        record: &Record,
        chunk: Vec<u8>,
        snapshot: bool,
        typed: Vec<(i64, String)>,
    ) -> DocWrite {
        let is_task = task::is_task(record);
        DocWrite {
            id: record.id(),
            entity: record.entity(),
            village: record.scope().village,
            chunk,
            snapshot,
            heads: record.heads(),
            values_json: if is_task {
                task::task_json(record)
            } else if finding::is_finding(record) {
                finding::finding_json(record)
            } else {
                record.values_json(&self.schema)
            },
            conflicts_json: if is_task || finding::is_finding(record) {
                "{}".to_owned()
            } else {
                record.conflicts_json(&self.schema)
            },
            deleted: record.is_deleted(),
            typed,
        }
    }

    /// Commits documents the server itself wrote (tasks issued or cancelled) in one
    /// storage transaction, so they enter the feed like any pushed change. Each is stored
    /// as a whole snapshot.
    pub fn commit_server_docs(&self, records: Vec<Record>) -> Result<(), StorageError> {
        let _writer = lock(&self.write);
        let mut cache = lock(&self.cache);
        let batch = HubBatch {
            device: String::new(),
            docs: records
                .iter()
                .map(|record| self.doc_write(record, record.save(), true, Vec::new()))
                .collect(),
            ..HubBatch::default()
        };
        for record in &records {
            cache.pop(&record.id());
        }
        self.storage.commit(&batch)?;
        for record in records {
            cache.put(record.id(), record);
        }
        Ok(())
    }

    /// Applies a server-side edit (cancelling a task...) to stored documents under the
    /// hub's write lock, on the very documents pushes merge into, so no concurrent push
    /// is lost; the new changes are committed as chunks in one transaction. Returns how
    /// many documents changed; `edit` returns false to leave one unchanged.
    pub fn update_server_docs(
        &self,
        ids: &[RecordId],
        mut edit: impl FnMut(&mut Record) -> yibiao_model::Result<bool>,
    ) -> Result<usize, StorageError> {
        let _writer = lock(&self.write);
        let mut cache = lock(&self.cache);
        let mut batch = HubBatch::default();
        let mut touched = Vec::new();
        let mut result = Ok(());
        for &id in ids {
            match self.cached(&mut cache, id) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            let Some(record) = cache.get_mut(&id) else {
                continue;
            };
            let before = record.heads();
            touched.push(id);
            match edit(record) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    result = Err(StorageError(format!("editing {id}: {e}")));
                    break;
                }
            }
            let chunk = record.save_after(&before);
            batch.base_heads.push((id, before));
            batch
                .docs
                .push(self.doc_write(record, chunk, false, Vec::new()));
        }
        let result = result.and_then(|()| {
            if batch.docs.is_empty() {
                Ok(())
            } else {
                self.storage.commit(&batch)
            }
        });
        if let Err(e) = result {
            for id in touched {
                cache.pop(&id);
            }
            return Err(e);
        }
        Ok(batch.docs.len())
    }

    /// The hub's automerge actor, for documents the server writes.
    pub fn actor(&self) -> ActorId {
        self.actor.clone()
    }

    fn pull(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
        response: &mut SyncResponse,
        stats: &mut ExchangeStats,
    ) -> Result<(), HubError> {
        let (lo, hi) = self.config.response_bytes;
        let budget = req.max_response_bytes.clamp(lo, hi) as usize;
        let entries = self
            .storage
            .feed_after(&auth.scope, req.cursor, self.config.feed_scan)?;
        let ids: Vec<RecordId> = entries.iter().map(|e| e.id).collect();
        let known = self.storage.device_heads(&auth.key, &ids)?;
        let mut size: usize = response.refused.iter().map(|r| r.message.len() + 24).sum();
        let mut cursor = req.cursor;
        let mut sent = Vec::new();
        let mut stopped_early = false;
        for entry in &entries {
            let mut cache = lock(&self.cache);
            if !matches!(self.held(&mut cache, entry.id)?, Held::Loaded) {
                // Absent or quarantined: the feed moves on without it.
                cursor = entry.seq;
                continue;
            }
            let Some(record) = cache.get(&entry.id) else {
                continue;
            };
            let heads = record.heads();
            let device_has = known.get(&entry.id);
            if device_has == Some(&heads) {
                cursor = entry.seq;
                continue;
            }
            let bytes = match device_has {
                Some(h)
                    if !h.is_empty()
                        && h.iter()
                            .all(|x| record.doc().get_change_meta_by_hash(x).is_some()) =>
                {
                    record.save_after(h)
                }
                _ => record.save_for_wire(),
            };
            if bytes.len() > self.config.budgets.max_record_bytes {
                // Stored before budgets existed: a phone would refuse the page for good.
                let why = format!(
                    "stored record {} is {} KiB to send, over the {} KiB record budget",
                    entry.id,
                    bytes.len() / 1024,
                    self.config.budgets.max_record_bytes / 1024
                );
                // Out of the cache, so the next access finds it set aside.
                cache.pop(&entry.id);
                drop(cache);
                self.set_aside(entry.id, why);
                cursor = entry.seq;
                continue;
            }
            if !response.docs.is_empty() && size + bytes.len() > budget {
                stopped_early = true;
                break;
            }
            size += bytes.len() + 56;
            sent.push((entry.id, heads.clone(), entry.seq));
            response.docs.push(PullDoc {
                record: WireId::from(entry.id),
                heads: heads_to_wire(&heads),
                bytes,
            });
            cursor = entry.seq;
        }
        response.cursor = cursor;
        response.more = stopped_early || entries.len() >= self.config.feed_scan;
        stats.sent = response.docs.len();
        if !sent.is_empty() {
            self.storage.note_sent(&auth.key, &sent)?;
        }
        Ok(())
    }
}

/// Merges pushed bytes into a record the hub holds; a record may not change its place.
fn merge_held(record: &mut Record, id: RecordId, doc: &PushDoc) -> Result<(), Refused> {
    let before_scope = record.scope();
    record
        .merge_bytes(&doc.bytes)
        .map_err(|e| malformed(id, e))?;
    if record.scope() != before_scope {
        return Err((
            RefusalCode::NotARecord,
            "a record cannot move to another place".into(),
        )
            .into());
    }
    Ok(())
}

/// Why a record the hub did not hold fails to load from pushed bytes.
fn load_refusal(id: RecordId, doc: &PushDoc, e: yibiao_model::Error) -> Refused {
    match e {
        yibiao_model::Error::Corrupt { problem, .. } => {
            // A delta whose base we lack also fails the shape check: tell the
            // device to send the whole record instead of calling it corrupt.
            let mut raw = automerge::Automerge::new();
            let lacks_base =
                raw.load_incremental(&doc.bytes).is_ok() && lacks_a_head(&raw, &doc.heads);
            if lacks_base {
                missing_history()
            } else {
                (RefusalCode::NotARecord, format!("record {id}: {problem}")).into()
            }
        }
        other => malformed(id, other),
    }
}

/// Whether `doc` lacks one of the heads a device declares.
fn lacks_a_head(doc: &automerge::Automerge, heads: &[WireHash]) -> bool {
    heads_from_wire(heads)
        .iter()
        .any(|h| doc.get_change_meta_by_hash(h).is_none())
}

/// The refusal for pushed bytes that do not make a record.
fn malformed(id: RecordId, e: yibiao_model::Error) -> Refused {
    (RefusalCode::Malformed, format!("record {id}: {e}")).into()
}

/// The refusal for a merge that storage failed; the error is logged, not sent.
fn storage_failed(id: RecordId, e: StorageError) -> Refused {
    tracing::error!(record = %id, error = %e, "storage failed while merging");
    (
        RefusalCode::Malformed,
        "the server could not read its copy; try again later".to_owned(),
    )
        .into()
}

/// The refusal for a record that left the cache while it was being merged.
fn cache_miss() -> Refused {
    (RefusalCode::Malformed, "cache miss".to_owned()).into()
}

/// The refusal asking the device for the whole record.
fn missing_history() -> Refused {
    (RefusalCode::MissingHistory, MISSING_HISTORY.to_owned()).into()
}
