//! The hub under the pushes of issue 11: budgets at merge, the burden, quarantine.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use automerge::transaction::Transactable;
use automerge::{
    ActorId, Automerge, ChangeHash, ExpandedChange, ObjId, ROOT, ReadDoc, ScalarValue, legacy,
};
use yibiao_model::clock::ManualClock;
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema, Value};

use super::{
    DeviceAuth, DeviceScope, DocWrite, FeedEntry, Hub, HubBatch, HubConfig, HubStorage,
    MemoryHubStorage, StorageError,
};
use crate::protocol::{PushDoc, RefusalCode, SyncRequest, SyncResponse, WireId, heads_to_wire};

const NOW: i64 = 1_764_000_000_000;

/// Memory storage that also counts the burden rows (`typed`) it was asked to write.
#[derive(Default)]
struct Spy {
    inner: MemoryHubStorage,
    typed: Mutex<usize>,
}

impl HubStorage for Spy {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        self.inner.load(id)
    }
    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        *self.typed.lock().unwrap() += batch.docs.iter().map(|d| d.typed.len()).sum::<usize>();
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
    ) -> Result<std::collections::HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
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
    fn actor_devices(
        &self,
        actors: &[ActorId],
    ) -> Result<std::collections::HashMap<ActorId, String>, StorageError> {
        self.inner.actor_devices(actors)
    }
    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<super::SetAside>, StorageError> {
        self.inner.quarantine(id, reason, now_ms)
    }
    fn quarantined(&self) -> Result<Vec<super::SetAside>, StorageError> {
        self.inner.quarantined()
    }
}

fn hub() -> Hub<Spy> {
    Hub::new(
        Arc::new(Schema::baru_example()),
        Spy::default(),
        Arc::new(ManualClock::new(NOW)),
        HubConfig::default(),
    )
}

fn phone(key: &str) -> DeviceAuth {
    DeviceAuth {
        key: key.into(),
        scope: DeviceScope::Village("tujiang".into()),
        identity: crate::identity::Identity::new(
            DeviceId::new(key).unwrap(),
            [CadreId::new("amu").unwrap()],
        ),
    }
}

fn author(device: &str) -> Author {
    Author {
        cadre: CadreId::new("amu").unwrap(),
        device: DeviceId::new(device).unwrap(),
    }
}

fn household(device: &str, head: &str) -> Record {
    let scope = Scope {
        township: "baru".into(),
        village: Some("tujiang".into()),
    };
    let edits = [FieldEdit::Set(
        "household_head".into(),
        Value::Text(head.into()),
    )];
    Record::create(
        RecordId::new(),
        ActorId::random(),
        "household",
        &scope,
        &edits,
        &author(device),
        NOW,
    )
    .unwrap()
}

fn push_doc(record: &Record, bytes: Vec<u8>, heads: &[ChangeHash]) -> PushDoc {
    PushDoc {
        record: WireId::from(record.id()),
        heads: heads_to_wire(heads),
        bytes,
    }
}

fn exchange<S: HubStorage>(
    hub: &Hub<S>,
    device: &str,
    cursor: u64,
    push: Vec<PushDoc>,
) -> SyncResponse {
    let req = SyncRequest {
        device: device.into(),
        cursor,
        push,
        max_response_bytes: 64 * 1024,
        schema: None,
    };
    hub.handle(&phone(device), &req)
        .expect("the exchange succeeds")
        .0
}

/// A change on top of `record` written with automerge directly, as an attacker's phone
/// would: `write` puts whatever it likes into the fields map in one change.
fn raw_change(
    record: &Record,
    device: &str,
    write: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &ObjId),
) -> (Vec<u8>, Vec<ChangeHash>) {
    let mut doc = Automerge::load(&record.save())
        .unwrap()
        .with_actor(ActorId::random());
    let before = doc.get_heads();
    let fields = match doc.get(ROOT, "fields").unwrap() {
        Some((_, id)) => id,
        None => panic!("no fields map"),
    };
    let mut tx = doc.transaction();
    write(&mut tx, &fields);
    tx.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::to_string(&author(device)).unwrap())
            .with_time(NOW),
    );
    (doc.save_after(&before), doc.get_heads())
}

/// One change flipping `housing_safe` `flips` times, built as automerge's expanded form and
/// encoded once (no transaction, no op tree): cheap to make, and exactly what a phone
/// would send. Returns the change chunk (compressed, as automerge sends it) and heads.
fn flip_change(record: &Record, device: &str, flips: u64) -> (Vec<u8>, Vec<ChangeHash>) {
    let doc = record.doc();
    let Some((_, ObjId::Id(counter, fields_actor, _))) = doc.get(ROOT, "fields").unwrap() else {
        panic!("no fields map");
    };
    let fields = legacy::ObjectId::Id(legacy::OpId(counter, fields_actor));
    let max_op = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.max_op())
        .max()
        .unwrap();
    let actor = ActorId::random();
    let start = max_op + 1;
    let operations = (0..flips)
        .map(|i| legacy::Op {
            action: legacy::OpType::Put(ScalarValue::Boolean(i % 2 == 0)),
            obj: fields.clone(),
            key: legacy::Key::Map("housing_safe".into()),
            pred: if i == 0 {
                legacy::SortedVec::new()
            } else {
                vec![legacy::OpId(start + i - 1, actor.clone())].into()
            },
            insert: false,
        })
        .collect();
    let expanded = ExpandedChange {
        operations,
        actor_id: actor,
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(start).unwrap(),
        time: NOW,
        message: Some(serde_json::to_string(&author(device)).unwrap()),
        deps: record.heads(),
        extra_bytes: Vec::new(),
        author: None,
    };
    let mut change = automerge::Change::from(expanded);
    let hash = change.hash();
    (change.bytes().into_owned(), vec![hash])
}

#[test]
fn a_small_change_of_four_million_operations_is_refused_before_the_merge_and_stores_nothing() {
    let hub = hub();
    let record = household("p1", "阿木");
    let first = exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&record, record.save(), &record.heads())],
    );
    assert_eq!(first.accepted.len(), 1);
    let typed_before = *hub.storage().typed.lock().unwrap();
    let heads_before = hub.record(record.id()).unwrap().unwrap().heads();

    let (bytes, heads) = flip_change(&record, "p1", 4_000_000);
    assert!(
        bytes.len() < 64 * 1024,
        "the attack is small on the wire: {}",
        bytes.len()
    );

    // Counted from the raw bytes before any merge: a hub without the change's base
    // (which could not merge it at all) refuses it for its size, not for missing history.
    let fresh = self::hub();
    let refused = exchange(
        &fresh,
        "p1",
        0,
        vec![push_doc(&record, bytes.clone(), &heads)],
    );
    assert!(refused.refused[0].message.contains("4000000 operations"));

    let response = exchange(
        &hub,
        "p1",
        first.cursor,
        vec![push_doc(&record, bytes, &heads)],
    );

    assert!(response.accepted.is_empty());
    assert_eq!(response.refused.len(), 1);
    assert_eq!(response.refused[0].code, RefusalCode::Malformed);
    assert!(
        response.refused[0].message.contains("4000000 operations"),
        "{}",
        response.refused[0].message
    );
    // Counted while parsing, never merged: the hub's copy and the burden are unchanged.
    assert_eq!(
        hub.record(record.id()).unwrap().unwrap().heads(),
        heads_before
    );
    assert_eq!(*hub.storage().typed.lock().unwrap(), typed_before);
}

#[test]
fn the_burden_counts_distinct_fields_per_change_not_operations() {
    let hub = hub();
    let record = household("p1", "阿木");
    let first = exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&record, record.save(), &record.heads())],
    );
    let typed_before = *hub.storage().typed.lock().unwrap();
    // One change writing one field 500 times (within the op budget) and another once.
    let (bytes, heads) = raw_change(&record, "p1", |tx, fields| {
        for i in 0..500u32 {
            tx.put(fields, "housing_safe", i % 2 == 0).unwrap();
        }
        tx.put(fields, "household_size", 4i64).unwrap();
    });
    let response = exchange(
        &hub,
        "p1",
        first.cursor,
        vec![push_doc(&record, bytes, &heads)],
    );
    assert_eq!(response.accepted.len(), 1, "{:?}", response.refused);
    assert_eq!(*hub.storage().typed.lock().unwrap() - typed_before, 2);
}

#[test]
fn a_push_of_twenty_five_thousand_notes_is_refused_and_the_village_keeps_syncing() {
    let hub = hub();
    let victim = household("p1", "阿木");
    let other = household("p2", "吉克");
    let first = exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&victim, victim.save(), &victim.heads())],
    );
    assert_eq!(first.accepted.len(), 1);

    let (bytes, heads) = raw_change(&victim, "p1", |tx, fields| {
        for i in 0..25_000u32 {
            tx.put(fields, "notes", format!("{i:05}{}", "x".repeat(995)))
                .unwrap();
        }
    });
    let response = exchange(
        &hub,
        "p1",
        first.cursor,
        vec![push_doc(&victim, bytes, &heads)],
    );
    assert!(response.accepted.is_empty());
    assert_eq!(response.refused.len(), 1);

    // The village goes on: another phone pushes and pulls, and every page it gets is one
    // a phone accepts.
    let second = exchange(
        &hub,
        "p2",
        0,
        vec![push_doc(&other, other.save(), &other.heads())],
    );
    assert_eq!(second.accepted.len(), 1);
    let ids: Vec<WireId> = second.docs.iter().map(|d| d.record).collect();
    assert!(ids.contains(&WireId::from(victim.id())));
    let encoded = second.encode();
    assert!(SyncResponse::decode(&encoded).is_ok());
}

#[test]
fn a_long_history_of_notes_is_refused_once_the_record_would_outgrow_its_budget() {
    let mut config = HubConfig::default();
    config.budgets.max_record_bytes = 64 * 1024;
    let hub = Hub::new(
        Arc::new(Schema::baru_example()),
        Spy::default(),
        Arc::new(ManualClock::new(NOW)),
        config,
    );
    let mut record = household("p1", "阿木");
    let mut cursor = exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&record, record.save(), &record.heads())],
    )
    .cursor;
    let mut refused = None;
    for i in 0..200 {
        let before = record.heads();
        let note = format!("{i:04}{}", "长".repeat(330));
        record
            .apply_edits(
                &[FieldEdit::Set("notes".into(), Value::Text(note))],
                &author("p1"),
                NOW,
            )
            .unwrap();
        let response = exchange(
            &hub,
            "p1",
            cursor,
            vec![push_doc(
                &record,
                record.save_after(&before),
                &record.heads(),
            )],
        );
        cursor = response.cursor;
        if let Some(r) = response.refused.first() {
            refused = Some((i, r.clone()));
            break;
        }
    }
    let (i, refusal) = refused.expect("the record hits its budget");
    assert!(i > 10, "honest edits pass first");
    assert_eq!(refusal.code, RefusalCode::InvalidValue);
    assert!(
        refusal.message.contains("KiB a record may hold"),
        "{}",
        refusal.message
    );
    assert!(
        hub.record(record.id())
            .unwrap()
            .unwrap()
            .save_for_wire()
            .len()
            <= 64 * 1024
    );
}

fn stored_garbage(hub: &Hub<Spy>, id: RecordId) {
    hub.storage()
        .commit(&HubBatch {
            docs: vec![DocWrite {
                id,
                entity: "household".into(),
                village: Some("tujiang".into()),
                chunk: b"\x85\x6f\x4a\x83 not automerge".to_vec(),
                snapshot: true,
                heads: Vec::new(),
                values_json: "{}".into(),
                conflicts_json: "{}".into(),
                deleted: false,
                typed: Vec::new(),
            }],
            ..HubBatch::default()
        })
        .unwrap();
}

#[test]
fn a_stored_record_that_does_not_load_is_quarantined_not_an_outage() {
    let hub = hub();
    let good = household("p1", "阿木");
    exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&good, good.save(), &good.heads())],
    );
    let damaged = household("p1", "吉克");
    stored_garbage(&hub, damaged.id());
    let later = household("p1", "沙马");
    exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&later, later.save(), &later.heads())],
    );

    // A new phone pulls everything but the damaged record, with no error.
    let pulled = exchange(&hub, "p2", 0, Vec::new());
    let ids: Vec<WireId> = pulled.docs.iter().map(|d| d.record).collect();
    assert_eq!(ids, vec![WireId::from(good.id()), WireId::from(later.id())]);
    assert!(!pulled.more);

    // A push to it is refused with a reason; the rest of the page is accepted.
    let fresh = household("p2", "阿果");
    let response = exchange(
        &hub,
        "p2",
        pulled.cursor,
        vec![
            push_doc(&damaged, damaged.save(), &damaged.heads()),
            push_doc(&fresh, fresh.save(), &fresh.heads()),
        ],
    );
    assert_eq!(response.accepted, vec![WireId::from(fresh.id())]);
    assert_eq!(response.refused.len(), 1);
    assert!(
        response.refused[0]
            .message
            .contains("set its copy of this record aside")
    );

    let quarantined = hub.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].0, damaged.id());
}

#[test]
fn a_stored_record_too_large_to_send_is_quarantined_not_sent() {
    let hub = hub();
    // Written before budgets existed: straight into storage, 2 MiB on the wire.
    let mut big = household("p1", "阿木");
    for i in 0..3 {
        big.apply_edits(
            &[FieldEdit::Set(
                "notes".into(),
                Value::Text(format!("{i}{}", "长".repeat(250_000))),
            )],
            &author("p1"),
            NOW,
        )
        .unwrap();
    }
    assert!(big.save_for_wire().len() > 2 * 1024 * 1024);
    hub.commit_server_docs(vec![big.clone()]).unwrap();
    hub.release(big.id()); // out of the cache, as after a restart
    let small = household("p1", "吉克");
    exchange(
        &hub,
        "p1",
        0,
        vec![push_doc(&small, small.save(), &small.heads())],
    );

    let pulled = exchange(&hub, "p2", 0, Vec::new());
    let ids: Vec<WireId> = pulled.docs.iter().map(|d| d.record).collect();
    assert_eq!(ids, vec![WireId::from(small.id())]);
    assert_eq!(hub.quarantined().len(), 1);
    assert_eq!(hub.quarantined()[0].0, big.id());
}

/// Found by fuzzing (`tests/fuzz`, target `doc_merge`): one change chunk whose columns
/// parse but whose operations name an actor the change does not list. The budget check
/// before the merge decoded it with automerge's `Change::decode`, which unwraps the
/// actor and panicked (on the server: a 500 for that phone on every retry). It is now
/// refused like any other bad push, and nothing is stored.
#[test]
fn a_change_naming_an_actor_it_does_not_list_is_refused_not_a_panic() {
    let pushed = hex::decode(concat!(
        "856f4a83d866ad0701a10101360f35b0e0f0ec1d813371bd1d6bbb63fcc71da6db4b1e71f5280c09ebcafde8",
        "10f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1010a88d0dfb4ab331f7b2263223a22616d75222c2264223a226465",
        "762d66757a7a70686f6e65227d0110e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e00a010202021510340142025602",
        "57017002710273027f017f077f0e686f757365686f6c645f73697a65017f017f1402570170027f09",
    ))
    .unwrap();
    let hub = hub();
    let existing = household("dev-a", "阿木");
    let base = exchange(
        &hub,
        "dev-a",
        0,
        vec![push_doc(&existing, existing.save(), &existing.heads())],
    );
    assert_eq!(base.accepted.len(), 1);
    let new_id = RecordId::new();
    for record in [new_id, existing.id()] {
        let doc = PushDoc {
            record: WireId::from(record),
            heads: Vec::new(),
            bytes: pushed.clone(),
        };
        let response = exchange(&hub, "dev-a", base.cursor, vec![doc]);
        assert!(response.accepted.is_empty(), "{response:?}");
        assert_eq!(response.refused.len(), 1, "{response:?}");
    }
    assert!(hub.storage().inner.load(new_id).unwrap().is_none());
    assert_eq!(
        hub.storage()
            .inner
            .load(existing.id())
            .unwrap()
            .unwrap()
            .len(),
        1
    );
}
