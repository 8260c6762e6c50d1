//! What the hub needs of its storage: the feed, documents, what each device holds.
//!
//! One small trait ([`HubStorage`]) so the server runs on SQLite (and later PostgreSQL)
//! and tests on [`super::MemoryHubStorage`]; the conformance suite (feature `testing`)
//! is what every implementation must pass.

use std::collections::HashMap;
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use yibiao_model::ids::RecordId;

use crate::identity::Identity;

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
    /// The phone and cadres the server vouches for.
    pub identity: Identity,
}

/// A storage failure, with a message fit for logs (never for devices).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub storage: {0}")]
pub struct StorageError(pub String);

/// How a stale-base refusal's message starts (see [`StorageError::stale`]).
const STALE: &str = "stale base: ";

impl StorageError {
    /// A commit refused because a record's stored heads are no longer the ones the hub
    /// merged on ([`HubBatch::base_heads`]): another process wrote it meanwhile. The hub
    /// reloads the record and merges again.
    pub fn stale(id: RecordId) -> Self {
        Self(format!(
            "{STALE}record {id} was changed by another server process"
        ))
    }

    /// True for [`StorageError::stale`].
    pub fn is_stale(&self) -> bool {
        self.0.starts_with(STALE)
    }
}

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
    /// Automerge actors first seen in this batch, each bound to the phone (device id)
    /// that used it: from now on no other phone may push changes by that actor.
    pub actors: Vec<(ActorId, String)>,
    /// For merged documents, the stored heads the hub merged onto (empty: a record new to
    /// it). A [`HubStorage::shared`] storage refuses the whole batch with
    /// [`StorageError::stale`] when a record's stored heads differ (optimistic
    /// concurrency between server processes); a storage of one process may ignore it.
    pub base_heads: Vec<(RecordId, Vec<ChangeHash>)>,
}

/// A stored record set aside for the operator (it does not load, or is too large to
/// send), as storage keeps it: the one list the hub, `/ready`, the metric and the
/// operator's commands read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The record.
    pub id: RecordId,
    /// Its village as stored (`None`: township level): only devices of that scope may
    /// learn that it exists.
    pub village: Option<String>,
    /// Why, for the operator (never sent to a device).
    pub reason: String,
    /// When it was first set aside, ms since the epoch.
    pub since_ms: i64,
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
    /// The phone (device id) each of `actors` is bound to, for those bound.
    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError>;
    /// Sets the stored record `id` aside with `reason` at `now_ms`, durably; a record
    /// already set aside keeps its first reason and time. `None` when `id` is not stored.
    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError>;
    /// Every record set aside, by id. Deleting a record's documents (the operator's
    /// drop) deletes its entry too.
    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError>;
    /// True when other processes write this storage too (PostgreSQL): the hub then checks
    /// each cached document against [`HubStorage::stored_heads`] before using it, and
    /// the storage checks [`HubBatch::base_heads`] at commit.
    fn shared(&self) -> bool {
        false
    }
    /// The stored heads of `id` (`None`: not stored). Needed only by a shared storage.
    fn stored_heads(&self, id: RecordId) -> Result<Option<Vec<ChangeHash>>, StorageError> {
        let _ = id;
        Ok(None)
    }
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
    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError> {
        (**self).actor_devices(actors)
    }
    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        (**self).quarantine(id, reason, now_ms)
    }
    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError> {
        (**self).quarantined()
    }
    fn shared(&self) -> bool {
        (**self).shared()
    }
    fn stored_heads(&self, id: RecordId) -> Result<Option<Vec<ChangeHash>>, StorageError> {
        (**self).stored_heads(id)
    }
}
