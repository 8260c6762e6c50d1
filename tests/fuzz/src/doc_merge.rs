//! The untrusted document loader and merge: what the hub does with a pushed document.
//!
//! Each input runs on a fresh `Hub` over `MemoryHubStorage` holding three stored
//! documents made with the project's own types ([`stored`]): a household and a task of
//! the phone's village, and a household of another village. Input: one flags byte, then
//! the pushed bytes (a whole document or changes, as a phone sends them):
//!
//! - bits 0-1 ([`Target`]): push for a new record id, the stored household, the stored
//!   task, or the other village's household;
//! - bit 2 ([`DECLARE_HEADS`]): declare the heads the bytes lead to (computed here on
//!   top of the target's stored chunks), so the merge gets past the missing-history check;
//! - bit 3 ([`TOWNSHIP`]): the pushing phone has township scope instead of its village.
//!
//! Must hold, for any bytes: the exchange never fails as a whole; each pushed document is
//! accepted or refused, never both; a replay of an accepted push is accepted again (as a
//! duplicate); and the pushed record as stored loads in a fresh hub (nothing set aside),
//! fits the record budget and is sent in a form a phone loads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use automerge::{ActorId, Automerge, ChangeHash};
use yibiao_model::clock::ManualClock;
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::task::{TaskSpec, new_task_doc};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema, Value};
use yibiao_sync::hub::{Budgets, FeedEntry, HubBatch, SetAside, StorageError};
use yibiao_sync::protocol::{PushDoc, SyncRequest, heads_to_wire};
use yibiao_sync::{
    DeviceAuth, DeviceScope, Hub, HubConfig, HubStorage, Identity, MemoryHubStorage,
};

/// The hub's clock and the time of every fixture change.
pub const NOW: i64 = 1_764_000_000_000;
/// The pushing phone's device id (its token is bound to it).
pub const PHONE: &str = "dev-fuzzphone";
/// The cadre using it.
pub const CADRE: &str = "amu";
/// The phone's village.
pub const VILLAGE: &str = "tujiang";
/// Another village of the Baru schema.
pub const OTHER_VILLAGE: &str = "heping";
/// The id a push for a new record uses.
pub const NEW_ID: [u8; 16] = [0x0a; 16];
/// Flag: declare the heads the pushed bytes lead to.
pub const DECLARE_HEADS: u8 = 4;
/// Flag: the phone has township scope.
pub const TOWNSHIP: u8 = 8;

/// Which record a push is for (bits 0-1 of the flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An id the hub does not hold.
    New = 0,
    /// The stored household of the phone's village.
    Household = 1,
    /// The stored task document of the phone's village.
    Task = 2,
    /// The stored household of another village.
    Other = 3,
}

/// An input: the flags byte, then the pushed bytes.
pub fn input(target: Target, flags: u8, bytes: &[u8]) -> Vec<u8> {
    let mut data = vec![target as u8 | flags];
    data.extend_from_slice(bytes);
    data
}

/// The author of changes made on the pushing phone.
pub fn phone_author() -> Author {
    author(CADRE, PHONE)
}

fn author(cadre: &str, device: &str) -> Author {
    #[allow(clippy::expect_used, reason = "constant ids")]
    Author {
        cadre: CadreId::new(cadre).expect("a valid cadre id"),
        device: DeviceId::new(device).expect("a valid device id"),
    }
}

fn household(id: [u8; 16], actor: u8, village: &str, head: &str) -> Record {
    let scope = Scope {
        township: "baru".into(),
        village: Some(village.into()),
    };
    let edits = [
        FieldEdit::Set("household_head".into(), Value::Text(head.into())),
        FieldEdit::Set("household_size".into(), Value::Integer(4)),
    ];
    #[allow(clippy::expect_used, reason = "fixed, valid fixture")]
    Record::create(
        RecordId::from_bytes(id),
        ActorId::from([actor; 16]),
        "household",
        &scope,
        &edits,
        &author(CADRE, "dev-basephone"),
        NOW,
    )
    .expect("the fixture household is valid")
}

fn task() -> Record {
    let spec = TaskSpec {
        task: RecordId::from_bytes([0x0c; 16]).to_string(),
        title: "低保户核查".into(),
        instructions: "核对每户人口和收入".into(),
        form: "dibao_check".into(),
        due: "2026-12-31".into(),
        due_ms: NOW + 30 * 86_400_000,
        issuer: "township".into(),
        targets: None,
    };
    #[allow(clippy::expect_used, reason = "fixed, valid fixture")]
    new_task_doc(
        RecordId::from_bytes([0x0d; 16]),
        ActorId::from([0x5e; 16]),
        &spec,
        "baru",
        Some(VILLAGE),
        &author("township", "server"),
        NOW,
    )
    .expect("the fixture task is valid")
}

/// The stored documents every input starts from: always the same bytes (fixed ids,
/// actors and times), so the seed writer's changes apply on top of them.
pub fn stored(target: Target) -> Option<Record> {
    match target {
        Target::New => None,
        Target::Household => Some(household([0x0b; 16], 0xb0, VILLAGE, "阿木")),
        Target::Task => Some(task()),
        Target::Other => Some(household([0x0e; 16], 0xe0, OTHER_VILLAGE, "和平")),
    }
}

fn target_of(flags: u8) -> Target {
    match flags & 3 {
        0 => Target::New,
        1 => Target::Household,
        2 => Target::Task,
        _ => Target::Other,
    }
}

/// The id and saved bytes of the target's stored document (none for a new record).
fn saved(target: Target) -> (RecordId, &'static [u8]) {
    fixed()
        .saved
        .iter()
        .find(|(t, _, _)| *t == target)
        .map_or((RecordId::from_bytes(NEW_ID), &[][..]), |(_, id, bytes)| {
            (*id, &bytes[..])
        })
}

struct Fixed {
    schema: Arc<Schema>,
    /// The stored documents as the hub committed them once (chunks, summaries, feed).
    batch: HubBatch,
    /// Id and saved bytes of each target's stored document.
    saved: Vec<(Target, RecordId, Vec<u8>)>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let schema = Arc::new(Schema::baru_example());
        // Committed by a real hub once; each input starts from a copy of that batch.
        let spy = Arc::new(Recorder::default());
        let hub = Hub::new(
            schema.clone(),
            spy.clone(),
            Arc::new(ManualClock::new(NOW)),
            HubConfig::default(),
        );
        let targets = [Target::Household, Target::Task, Target::Other];
        let records: Vec<Record> = targets.into_iter().filter_map(stored).collect();
        let saved = targets
            .into_iter()
            .zip(&records)
            .map(|(t, r)| (t, r.id(), r.save()))
            .collect();
        #[allow(clippy::expect_used, reason = "memory storage does not fail")]
        hub.commit_server_docs(records)
            .expect("the fixtures are stored");
        let batch = spy.batch.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Fixed {
            schema,
            batch,
            saved,
        }
    })
}

/// Memory storage that keeps the last batch it committed.
#[derive(Default)]
struct Recorder {
    inner: MemoryHubStorage,
    batch: Mutex<HubBatch>,
}

impl HubStorage for Recorder {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        self.inner.load(id)
    }
    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        *self.batch.lock().unwrap_or_else(|p| p.into_inner()) = batch.clone();
        self.inner.commit(batch)
    }
    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        self.inner.feed_after(scope, cursor, limit)
    }
    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
        self.inner.device_heads(device, ids)
    }
    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError> {
        self.inner.note_sent(device, sent)
    }
    fn record_count(&self) -> Result<u64, StorageError> {
        self.inner.record_count()
    }
    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError> {
        self.inner.actor_devices(actors)
    }
    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        self.inner.quarantine(id, reason, now_ms)
    }
    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError> {
        self.inner.quarantined()
    }
}

fn hub(storage: Arc<MemoryHubStorage>) -> Hub<Arc<MemoryHubStorage>> {
    Hub::new(
        fixed().schema.clone(),
        storage,
        Arc::new(ManualClock::new(NOW)),
        HubConfig::default(),
    )
}

fn phone(scope: DeviceScope, device: &str) -> DeviceAuth {
    #[allow(clippy::expect_used, reason = "constant ids")]
    DeviceAuth {
        key: format!("key-{device}"),
        scope,
        identity: Identity::new(
            DeviceId::new(device).expect("a valid device id"),
            [CadreId::new(CADRE).expect("a valid cadre id")],
        ),
    }
}

/// Heads of the target's stored document once `bytes` are loaded on top (none when they
/// do not load).
fn heads_after(target: Target, bytes: &[u8]) -> Vec<ChangeHash> {
    let mut doc = Automerge::new();
    let _ = doc.load_incremental(saved(target).1);
    match doc.load_incremental(bytes) {
        Ok(_) => doc.get_heads(),
        Err(_) => Vec::new(),
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let target = target_of(flags);
    let storage = Arc::new(MemoryHubStorage::default());
    #[allow(clippy::expect_used, reason = "memory storage does not fail")]
    storage
        .commit(&fixed().batch)
        .expect("the fixtures are stored");
    let hub = hub(storage.clone());
    let heads = if flags & DECLARE_HEADS != 0 {
        heads_after(target, bytes)
    } else {
        Vec::new()
    };
    let scope = if flags & TOWNSHIP != 0 {
        DeviceScope::Township
    } else {
        DeviceScope::Village(VILLAGE.into())
    };
    let auth = phone(scope, PHONE);
    let id = saved(target).0;
    let mut request = SyncRequest {
        device: PHONE.into(),
        cursor: 0,
        push: vec![PushDoc {
            record: id.into(),
            heads: heads_to_wire(&heads),
            bytes: bytes.to_vec(),
        }],
        max_response_bytes: 64 * 1024,
        schema: None,
    };
    let first = match hub.handle(&auth, &request) {
        Ok((response, _)) => response,
        Err(e) => panic!("an exchange failed as a whole: {e}"),
    };
    let accepted = first.accepted.contains(&id.into());
    let refused = first.refused.iter().any(|r| r.record == id.into());
    assert!(
        accepted != refused,
        "a pushed document is accepted or refused, exactly once: {first:?}"
    );
    request.cursor = first.cursor;
    let replay = match hub.handle(&auth, &request) {
        Ok((response, _)) => response,
        Err(e) => panic!("a replayed exchange failed as a whole: {e}"),
    };
    if accepted {
        assert!(
            replay.accepted.contains(&id.into()),
            "a replay of an accepted push must be accepted again: {replay:?}"
        );
    }
    read_back(&storage, id);
}

/// A fresh hub over what was stored (as after a restart) reads the pushed record back:
/// it loads (is not set aside), fits the record budget and loads as a phone loads it.
fn read_back(storage: &Arc<MemoryHubStorage>, id: RecordId) {
    let reader = hub(storage.clone());
    let record = match reader.record(id) {
        Ok(record) => record,
        Err(e) => panic!("the hub stored a record it cannot load: {e}"),
    };
    assert_eq!(
        reader.quarantined(),
        Vec::new(),
        "the hub set a stored record aside"
    );
    let Some(record) = record else {
        return;
    };
    let wire = record.save_for_wire();
    let budget = Budgets::default().max_record_bytes;
    assert!(
        wire.len() <= budget,
        "the hub stored a record over budget: {} bytes",
        wire.len()
    );
    if let Err(e) = Record::load_untrusted(id, ActorId::random(), &wire) {
        panic!("a phone cannot load a record the hub would send: {e}");
    }
}
