//! An in-memory [`HubStorage`]: for tests, simulations and benches (feature `testing`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use automerge::{ActorId, ChangeHash};
use yibiao_model::ids::RecordId;

use super::{DeviceScope, FeedEntry, HubBatch, HubStorage, SetAside, StorageError, lock};

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
    actors: HashMap<ActorId, String>,
    quarantine: BTreeMap<RecordId, SetAside>,
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
        for (actor, device) in &batch.actors {
            m.actors
                .entry(actor.clone())
                .or_insert_with(|| device.clone());
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

    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError> {
        let m = lock(&self.inner);
        Ok(actors
            .iter()
            .filter_map(|a| m.actors.get(a).map(|d| (a.clone(), d.clone())))
            .collect())
    }

    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        let mut m = lock(&self.inner);
        let Some(seq) = m.feed_pos.get(&id) else {
            return Ok(None);
        };
        let village = m.feed.get(seq).and_then(|(_, v)| v.clone());
        let entry = m.quarantine.entry(id).or_insert_with(|| SetAside {
            id,
            village,
            reason: reason.to_owned(),
            since_ms: now_ms,
        });
        Ok(Some(entry.clone()))
    }

    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError> {
        Ok(lock(&self.inner).quarantine.values().cloned().collect())
    }
}
