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
//! Storage is a trait ([`HubStorage`]) so the server can run on SQLite or PostgreSQL and
//! tests on [`MemoryHubStorage`]; [`conformance`] is the suite every implementation passes.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ActorId, ChangeHash};
use lru::LruCache;

use super::check::{check_changes, typed_values};
use super::protocol::{
    PullDoc, PushDoc, Refusal, RefusalCode, SyncRequest, SyncResponse, WireId, heads_from_wire,
    heads_to_wire,
};
use crate::clock::Clock;
use crate::ids::{DeviceId, RecordId};
use crate::record::Record;
use crate::schema::Schema;
use crate::task;

const MISSING_HISTORY: &str =
    "the server does not hold the history these changes build on; the whole record will be sent";

/// What a device may read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceScope {
    /// Township staff: every record of the township.
    Township,
    /// Village cadres: records of this village only.
    Village(String),
}

impl DeviceScope {
    /// True when a record of `village` (`None`: township level) is in this scope.
    pub fn contains(&self, village: Option<&str>) -> bool {
        match self {
            DeviceScope::Township => true,
            DeviceScope::Village(v) => village == Some(v.as_str()),
        }
    }
}

/// An authenticated device, as the server's auth layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    /// The server's key for this device (stable, unique).
    pub key: String,
    /// Its scope.
    pub scope: DeviceScope,
}

/// A storage failure, with a message fit for logs (never for devices).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub storage: {0}")]
pub struct StorageError(pub String);

/// One feed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    /// Sequence number, increasing.
    pub seq: u64,
    /// The record.
    pub id: RecordId,
}

/// One document write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocWrite {
    /// The record.
    pub id: RecordId,
    /// Entity type.
    pub entity: String,
    /// Village, for feed scoping.
    pub village: Option<String>,
    /// Bytes to store.
    pub chunk: Vec<u8>,
    /// True when `chunk` is a whole snapshot that replaces every stored chunk.
    pub snapshot: bool,
    /// Heads after this write.
    pub heads: Vec<ChangeHash>,
    /// The merged record's current values as a JSON object (field -> value), for the
    /// department API, which must never decode documents on the read path.
    pub values_json: String,
    /// Unresolved conflicts as JSON (field -> every competing value with its author);
    /// `{}` when there are none.
    pub conflicts_json: String,
    /// Tombstone state.
    pub deleted: bool,
    /// Field values typed in the new changes: `(change time ms, field)` (burden report).
    pub typed: Vec<(i64, String)>,
}

/// Everything one exchange writes, committed atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubBatch {
    /// The device.
    pub device: String,
    /// Documents that changed; each gets a new feed sequence.
    pub docs: Vec<DocWrite>,
    /// Sent heads with a sequence at or below this are now known to be held by the device.
    pub confirm_upto: u64,
    /// Heads the device now holds (applied after the confirmations).
    pub device_heads: Vec<(RecordId, Vec<ChangeHash>)>,
}

/// The server's storage. Every method is blocking; call it off the async runtime.
pub trait HubStorage: Send + Sync {
    /// Stored chunks of a document, in order; `None` when unknown.
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError>;
    /// Commits a batch atomically.
    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError>;
    /// Feed rows after `cursor` in `scope`, in sequence order, at most `limit`.
    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StorageError>;
    /// Heads `device` is known to hold, for those of `ids` it has any.
    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError>;
    /// Remembers heads sent to `device` at feed sequence `seq`; confirmed by a later cursor.
    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError>;
    /// Number of records stored.
    fn record_count(&self) -> Result<u64, StorageError>;
}

impl<S: HubStorage + ?Sized> HubStorage for Arc<S> {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        (**self).load(id)
    }
    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        (**self).commit(batch)
    }
    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        (**self).feed_after(scope, cursor, limit)
    }
    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
        (**self).device_heads(device, ids)
    }
    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError> {
        (**self).note_sent(device, sent)
    }
    fn record_count(&self) -> Result<u64, StorageError> {
        (**self).record_count()
    }
}

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
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            compact_after_chunks: 32,
            response_bytes: (4 * 1024, 8 * 1024 * 1024),
            cached_documents: 1024,
            feed_scan: 512,
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: HubStorage> Hub<S> {
    /// A hub over `storage`.
    pub fn new(schema: Arc<Schema>, storage: S, clock: Arc<dyn Clock>, config: HubConfig) -> Self {
        let size = NonZeroUsize::new(config.cached_documents.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            schema,
            storage,
            clock,
            config,
            actor: ActorId::random(),
            write: Mutex::new(()),
            cache: Mutex::new(LruCache::new(size)),
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

    fn cached(
        &self,
        cache: &mut LruCache<RecordId, Record>,
        id: RecordId,
    ) -> Result<bool, StorageError> {
        if cache.contains(&id) {
            return Ok(true);
        }
        let Some(chunks) = self.storage.load(id)? else {
            return Ok(false);
        };
        let record = Record::load(id, self.actor.clone(), &chunks)
            .map_err(|e| StorageError(format!("stored record {id} does not load: {e}")))?;
        cache.put(id, record);
        Ok(true)
    }

    /// Handles one exchange for `auth`.
    pub fn handle(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
    ) -> Result<(SyncResponse, ExchangeStats), HubError> {
        DeviceId::new(req.device.as_str()).map_err(|e| HubError::BadRequest(e.to_string()))?;
        let mut stats = ExchangeStats::default();
        let mut response = SyncResponse {
            server_time_ms: self.clock.now_ms(),
            ..SyncResponse::default()
        };
        self.push(auth, req, &mut response, &mut stats)?;
        self.pull(auth, req, &mut response, &mut stats)?;
        Ok((response, stats))
    }

    fn push(
        &self,
        auth: &DeviceAuth,
        req: &SyncRequest,
        response: &mut SyncResponse,
        stats: &mut ExchangeStats,
    ) -> Result<(), HubError> {
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
        for doc in &req.push {
            let id = RecordId::from(doc.record);
            if !seen.insert(id) {
                return Err(HubError::BadRequest(format!(
                    "record {id} is pushed twice in one request"
                )));
            }
            match self.merge_one(&mut cache, auth, &req.device, doc) {
                Ok(Some(write)) => {
                    touched.push(id);
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
                Err((code, message)) => {
                    cache.pop(&id);
                    tracing::info!(device = %auth.key, record = %id, ?code, %message, "refused a pushed document");
                    response.refused.push(Refusal {
                        record: doc.record,
                        code,
                        message,
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

    /// Merges one pushed document into the cached copy. `Ok(None)`: nothing new.
    fn merge_one(
        &self,
        cache: &mut LruCache<RecordId, Record>,
        auth: &DeviceAuth,
        device: &str,
        doc: &PushDoc,
    ) -> Result<Option<DocWrite>, (RefusalCode, String)> {
        let id = RecordId::from(doc.record);
        let internal = |e: StorageError| {
            tracing::error!(record = %id, error = %e, "storage failed while merging");
            (
                RefusalCode::Malformed,
                "the server could not read its copy; try again later".to_owned(),
            )
        };
        let exists = self.cached(cache, id).map_err(internal)?;
        let malformed = |e: crate::Error| (RefusalCode::Malformed, format!("record {id}: {e}"));
        let (record, before, is_new) = if exists {
            let record = cache
                .get_mut(&id)
                .ok_or_else(|| (RefusalCode::Malformed, "cache miss".to_owned()))?;
            let before = record.heads();
            let before_scope = record.scope();
            record.merge_bytes(&doc.bytes).map_err(malformed)?;
            if record.scope() != before_scope {
                return Err((
                    RefusalCode::NotARecord,
                    "a record cannot move to another place".into(),
                ));
            }
            (record, before, false)
        } else {
            let record = Record::load_untrusted(id, self.actor.clone(), &doc.bytes).map_err(
                |e| match e {
                    crate::Error::Corrupt { problem, .. } => {
                        // A delta whose base we lack also fails the shape check: tell the
                        // device to send the whole record instead of calling it corrupt.
                        let mut raw = automerge::Automerge::new();
                        let lacks_base = raw.load_incremental(&doc.bytes).is_ok()
                            && heads_from_wire(&doc.heads)
                                .iter()
                                .any(|h| raw.get_change_meta_by_hash(h).is_none());
                        if lacks_base {
                            (RefusalCode::MissingHistory, MISSING_HISTORY.to_owned())
                        } else {
                            (RefusalCode::NotARecord, format!("record {id}: {problem}"))
                        }
                    }
                    other => malformed(other),
                },
            )?;
            cache.put(id, record);
            let record = cache
                .get_mut(&id)
                .ok_or_else(|| (RefusalCode::Malformed, "cache miss".to_owned()))?;
            (record, Vec::new(), true)
        };
        // Every head the device declares must now be present, or we hold a gap.
        let missing = heads_from_wire(&doc.heads)
            .iter()
            .any(|h| record.doc().get_change_meta_by_hash(h).is_none());
        if missing {
            return Err((RefusalCode::MissingHistory, MISSING_HISTORY.to_owned()));
        }
        let new_changes = record.doc().get_changes(&before);
        if new_changes.is_empty() {
            return Ok(None);
        }
        let is_task = task::is_task(record);
        if is_task {
            task::check_task_changes(record, &new_changes, is_new, device)?;
        } else {
            check_changes(&self.schema, record, &new_changes, is_new, device)?;
        }
        let scope = record.scope();
        if scope.township != self.schema.township.id {
            return Err((
                RefusalCode::OutOfScope,
                format!(
                    "record belongs to township `{}`, this server serves `{}`",
                    scope.township, self.schema.township.id
                ),
            ));
        }
        if let Some(v) = &scope.village
            && !self.schema.has_village(v)
        {
            return Err((RefusalCode::OutOfScope, format!("unknown village `{v}`")));
        }
        if !auth.scope.contains(scope.village.as_deref()) {
            let DeviceScope::Village(mine) = &auth.scope else {
                return Err((RefusalCode::OutOfScope, "out of scope".into()));
            };
            return Err((
                RefusalCode::OutOfScope,
                format!(
                    "record belongs to {}; this device may only write village `{mine}`",
                    scope
                        .village
                        .as_deref()
                        .map(|v| format!("village `{v}`"))
                        .unwrap_or_else(|| "the township".into())
                ),
            ));
        }
        let chunks_now = if is_new {
            0
        } else {
            self.storage
                .load(id)
                .map_err(internal)?
                .map_or(0, |c| c.len())
        };
        let snapshot = is_new || chunks_now + 1 >= self.config.compact_after_chunks;
        let chunk = if snapshot {
            record.save()
        } else {
            record.save_after(&before)
        };
        let typed = if is_task {
            Vec::new()
        } else {
            typed_values(record, &new_changes)
        };
        Ok(Some(self.doc_write(record, chunk, snapshot, typed)))
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
            } else {
                record.values_json(&self.schema)
            },
            conflicts_json: if is_task {
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
        mut edit: impl FnMut(&mut Record) -> crate::Result<bool>,
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
            if !self.cached(&mut cache, entry.id)? {
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

/// Hub storage in memory, for simulations and tests.
#[derive(Debug, Default)]
pub struct MemoryHubStorage {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    docs: HashMap<RecordId, Vec<Vec<u8>>>,
    feed: BTreeMap<u64, (RecordId, Option<String>)>,
    feed_pos: HashMap<RecordId, u64>,
    next_seq: u64,
    device_heads: HashMap<(String, RecordId), Vec<ChangeHash>>,
    sent: HashMap<(String, RecordId), (Vec<ChangeHash>, u64)>,
}

impl HubStorage for MemoryHubStorage {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        Ok(lock(&self.inner).docs.get(&id).cloned())
    }

    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        let mut m = lock(&self.inner);
        for doc in &batch.docs {
            let chunks = m.docs.entry(doc.id).or_default();
            if doc.snapshot {
                chunks.clear();
            }
            chunks.push(doc.chunk.clone());
            if let Some(old) = m.feed_pos.remove(&doc.id) {
                m.feed.remove(&old);
            }
            m.next_seq += 1;
            let seq = m.next_seq;
            m.feed.insert(seq, (doc.id, doc.village.clone()));
            m.feed_pos.insert(doc.id, seq);
        }
        let confirmed: Vec<(RecordId, Vec<ChangeHash>, u64)> = m
            .sent
            .iter()
            .filter(|((d, _), (_, seq))| *d == batch.device && *seq <= batch.confirm_upto)
            .map(|((_, id), (h, seq))| (*id, h.clone(), *seq))
            .collect();
        for (id, heads, seq) in confirmed {
            m.sent.remove(&(batch.device.clone(), id));
            // Only while the record still sits where it was sent (see the SQLite storage).
            if m.feed_pos.get(&id) == Some(&seq) {
                m.device_heads.insert((batch.device.clone(), id), heads);
            }
        }
        for (id, heads) in &batch.device_heads {
            m.device_heads
                .insert((batch.device.clone(), *id), heads.clone());
        }
        Ok(())
    }

    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        let m = lock(&self.inner);
        Ok(m.feed
            .range(cursor + 1..)
            .filter(|(_, (_, village))| scope.contains(village.as_deref()))
            .take(limit)
            .map(|(seq, (id, _))| FeedEntry { seq: *seq, id: *id })
            .collect())
    }

    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
        let m = lock(&self.inner);
        Ok(ids
            .iter()
            .filter_map(|id| {
                m.device_heads
                    .get(&(device.to_owned(), *id))
                    .map(|h| (*id, h.clone()))
            })
            .collect())
    }

    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError> {
        let mut m = lock(&self.inner);
        for (id, heads, seq) in sent {
            m.sent
                .insert((device.to_owned(), *id), (heads.clone(), *seq));
        }
        Ok(())
    }

    fn record_count(&self) -> Result<u64, StorageError> {
        Ok(lock(&self.inner).docs.len() as u64)
    }
}

/// The conformance suite every [`HubStorage`] passes. Call each check with a fresh,
/// empty storage; it panics with a message naming the broken property.
pub mod conformance {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite")]
    use super::*;

    fn write(id: RecordId, village: Option<&str>, chunk: &[u8], snapshot: bool) -> DocWrite {
        DocWrite {
            id,
            entity: "household".into(),
            village: village.map(str::to_owned),
            chunk: chunk.to_vec(),
            snapshot,
            heads: vec![ChangeHash([chunk.first().copied().unwrap_or(0); 32])],
            values_json: "{}".into(),
            conflicts_json: "{}".into(),
            deleted: false,
            typed: Vec::new(),
        }
    }

    fn batch(device: &str, docs: Vec<DocWrite>) -> HubBatch {
        HubBatch {
            device: device.into(),
            docs,
            ..HubBatch::default()
        }
    }

    /// Runs every check, each on a storage from `make`.
    pub fn run_all<S: HubStorage>(make: impl Fn() -> S) {
        chunks_append_and_snapshots_replace(&make());
        feed_moves_changed_records_to_the_end_and_respects_scope(&make());
        device_heads_come_from_pushes_and_confirmed_sends(&make());
        a_send_of_a_record_that_moved_is_not_confirmed(&make());
    }

    /// Chunks append in order; a snapshot replaces them all.
    pub fn chunks_append_and_snapshots_replace<S: HubStorage>(s: &S) {
        let id = RecordId::new();
        assert_eq!(s.load(id).unwrap(), None, "unknown record loads as None");
        s.commit(&batch("d", vec![write(id, Some("a"), &[1], true)]))
            .unwrap();
        s.commit(&batch("d", vec![write(id, Some("a"), &[2], false)]))
            .unwrap();
        assert_eq!(
            s.load(id).unwrap(),
            Some(vec![vec![1], vec![2]]),
            "chunks append in order"
        );
        s.commit(&batch("d", vec![write(id, Some("a"), &[3], true)]))
            .unwrap();
        assert_eq!(
            s.load(id).unwrap(),
            Some(vec![vec![3]]),
            "a snapshot replaces every chunk"
        );
        assert_eq!(s.record_count().unwrap(), 1);
    }

    /// A changed record gets a new, higher sequence; scopes filter by village.
    pub fn feed_moves_changed_records_to_the_end_and_respects_scope<S: HubStorage>(s: &S) {
        let (a, b, t) = (RecordId::new(), RecordId::new(), RecordId::new());
        s.commit(&batch(
            "d",
            vec![
                write(a, Some("x"), &[1], true),
                write(b, Some("y"), &[1], true),
            ],
        ))
        .unwrap();
        s.commit(&batch("d", vec![write(t, None, &[1], true)]))
            .unwrap();
        let all = s.feed_after(&DeviceScope::Township, 0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a, b, t]);
        assert!(
            all.windows(2).all(|w| w[0].seq < w[1].seq),
            "sequences increase"
        );
        s.commit(&batch("d", vec![write(a, Some("x"), &[2], false)]))
            .unwrap();
        let after = s
            .feed_after(&DeviceScope::Township, all[2].seq, 10)
            .unwrap();
        assert_eq!(
            after.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![a],
            "a changed record moves to the end"
        );
        let x = s
            .feed_after(&DeviceScope::Village("x".into()), 0, 10)
            .unwrap();
        assert_eq!(
            x.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![a],
            "a village sees only its records"
        );
        let limited = s.feed_after(&DeviceScope::Township, 0, 2).unwrap();
        assert_eq!(limited.len(), 2, "limit is respected");
    }

    /// A send whose record moved on in the feed is never confirmed: the page that carried
    /// it may have been lost while a later page passed its old position.
    pub fn a_send_of_a_record_that_moved_is_not_confirmed<S: HubStorage>(s: &S) {
        let r = RecordId::new();
        s.commit(&batch("d", vec![write(r, Some("x"), &[1], true)]))
            .unwrap();
        let sent_at = s.feed_after(&DeviceScope::Township, 0, 10).unwrap()[0].seq;
        s.note_sent("phone", &[(r, vec![ChangeHash([9; 32])], sent_at)])
            .unwrap();
        // Another device changes the record: it moves to a later position.
        s.commit(&batch("other", vec![write(r, Some("x"), &[2], false)]))
            .unwrap();
        s.commit(&HubBatch {
            device: "phone".into(),
            confirm_upto: sent_at,
            ..HubBatch::default()
        })
        .unwrap();
        assert!(
            s.device_heads("phone", &[r]).unwrap().is_empty(),
            "a send of a record that moved is not confirmed"
        );
    }

    /// Pushed heads are known at once; sent heads only once a cursor passes them.
    pub fn device_heads_come_from_pushes_and_confirmed_sends<S: HubStorage>(s: &S) {
        let (a, b) = (RecordId::new(), RecordId::new());
        let h1 = vec![ChangeHash([1; 32])];
        let h2 = vec![ChangeHash([2; 32])];
        s.commit(&HubBatch {
            device: "d1".into(),
            device_heads: vec![(a, h1.clone())],
            ..HubBatch::default()
        })
        .unwrap();
        assert_eq!(
            s.device_heads("d1", &[a, b]).unwrap(),
            HashMap::from([(a, h1.clone())])
        );
        assert!(
            s.device_heads("d2", &[a]).unwrap().is_empty(),
            "heads are per device"
        );
        s.commit(&batch("d0", vec![write(b, None, &[2], true)]))
            .unwrap();
        let at = s.feed_after(&DeviceScope::Township, 0, 10).unwrap()[0].seq;
        s.note_sent("d1", &[(b, h2.clone(), at)]).unwrap();
        s.commit(&HubBatch {
            device: "d1".into(),
            confirm_upto: at - 1,
            ..HubBatch::default()
        })
        .unwrap();
        assert!(
            !s.device_heads("d1", &[b]).unwrap().contains_key(&b),
            "unconfirmed sends are not known"
        );
        s.commit(&HubBatch {
            device: "d1".into(),
            confirm_upto: at,
            ..HubBatch::default()
        })
        .unwrap();
        assert_eq!(
            s.device_heads("d1", &[b]).unwrap().get(&b),
            Some(&h2),
            "a cursor past the send confirms it"
        );
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn memory_storage_passes_the_conformance_suite() {
            super::run_all(super::super::MemoryHubStorage::default);
        }
    }
}
