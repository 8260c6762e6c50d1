//! Issue 11, items 1 and 3, end to end: real phone stores syncing through the kit's
//! in-process transport into a hub on the server's SQLite storage.
//! - A push that would make a record too large for any phone is refused, and the village
//!   keeps syncing.
//! - A stored record whose chunks are damaged is set aside: its village keeps syncing,
//!   and the operator finds and drops it with `yibiao-server quarantine`.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use yibiao_model::clock::ManualClock;
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema, Value};
use yibiao_server::storage::SqliteStorage;
use yibiao_store::Store;
use yibiao_sync::hub::Identity;
use yibiao_sync::protocol::{PushDoc, SyncRequest, SyncResponse, WireId, heads_to_wire};
use yibiao_sync::session::SyncOptions;
use yibiao_sync::{DeviceScope, Hub, HubConfig};
use yibiao_testkit::transport::InProcess;

const NOW: i64 = 1_764_000_000_000;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

fn tujiang() -> DeviceScope {
    DeviceScope::Village("tujiang".into())
}

fn hub_on(path: &Path, clock: &Arc<ManualClock>) -> Hub<Arc<SqliteStorage>> {
    Hub::new(
        Arc::new(Schema::baru_example()),
        Arc::new(SqliteStorage::open(path).unwrap()),
        clock.clone(),
        HubConfig::default(),
    )
}

fn phone(clock: &Arc<ManualClock>) -> Store {
    Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        clock.clone(),
    )
    .unwrap()
}

fn sync(store: &Store, transport: &InProcess<&Hub<Arc<SqliteStorage>>>) -> yibiao_sync::SyncReport {
    yibiao_store::sync(store, transport, &SyncOptions::default(), &mut |_| {})
        .expect("the village's sync succeeds")
}

fn head(name: &str) -> FieldEdit {
    FieldEdit::Set("household_head".into(), Value::Text(name.into()))
}

#[test]
fn a_push_that_would_outgrow_every_phone_is_refused_and_the_village_keeps_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let hub = hub_on(&dir.path().join("yibiao.db"), &clock);

    // The attacker's phone creates a record, then pushes one change writing 25,000
    // different notes of 1,000 characters: 75 MB once sent whole.
    let author = Author {
        cadre: CadreId::new("amu").unwrap(),
        device: DeviceId::new("attacker").unwrap(),
    };
    let scope = Scope {
        township: "baru".into(),
        village: Some("tujiang".into()),
    };
    let record = Record::create(
        RecordId::new(),
        ActorId::random(),
        "household",
        &scope,
        &[head("阿木")],
        &author,
        NOW,
    )
    .unwrap();
    let attacker = InProcess::new(
        &hub,
        "attacker",
        tujiang(),
        Identity::new(author.device.clone(), [author.cadre.clone()]),
    );
    let push = |bytes: Vec<u8>, heads: &[automerge::ChangeHash]| -> SyncResponse {
        let req = SyncRequest {
            device: "attacker".into(),
            cursor: 0,
            push: vec![PushDoc {
                record: WireId::from(record.id()),
                heads: heads_to_wire(heads),
                bytes,
            }],
            max_response_bytes: 64 * 1024,
            schema: None,
        };
        SyncResponse::decode(&attacker.handle_decoded(&req).unwrap()).unwrap()
    };
    assert_eq!(push(record.save(), &record.heads()).accepted.len(), 1);

    let mut doc = Automerge::load(&record.save())
        .unwrap()
        .with_actor(ActorId::random());
    let before = doc.get_heads();
    let fields = doc.get(ROOT, "fields").unwrap().unwrap().1;
    let mut tx = doc.transaction();
    for i in 0..25_000u32 {
        let note = format!("{i:05}{}", "长".repeat(995));
        tx.put(&fields, "notes", note).unwrap();
    }
    tx.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::to_string(&author).unwrap())
            .with_time(NOW),
    );
    // Sent as automerge sends one change: compressed.
    let mut change = doc.get_last_local_change().unwrap().clone();
    assert_eq!(change.deps(), before.as_slice());
    let bytes = change.bytes().into_owned();
    assert!(
        bytes.len() < 1024 * 1024,
        "a small push: {} bytes",
        bytes.len()
    );
    let response = push(bytes, &doc.get_heads());
    assert!(response.accepted.is_empty(), "the push is refused");
    assert_eq!(response.refused.len(), 1);

    // Every phone of the village still syncs and holds the record as it was.
    let honest = phone(&clock);
    let own = honest
        .create("household", Some("tujiang"), &[head("吉克")])
        .unwrap();
    let report = sync(
        &honest,
        &InProcess::for_store(&hub, "honest", tujiang(), &honest),
    );
    assert!(report.complete);
    assert!(report.refused.is_empty());
    let held = honest.get(record.id()).unwrap();
    assert!(held.fields.iter().all(|f| f.field != "notes"));
    assert!(hub.record(own).unwrap().is_some());
}

#[test]
fn a_damaged_stored_record_no_longer_stops_its_village_and_the_operator_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("yibiao.db");
    let clock = Arc::new(ManualClock::new(NOW));
    let first = phone(&clock);
    let ids: Vec<RecordId> = ["阿木", "吉克", "沙马"]
        .iter()
        .map(|name| {
            first
                .create("household", Some("tujiang"), &[head(name)])
                .unwrap()
        })
        .collect();
    {
        let hub = hub_on(&db, &clock);
        assert!(
            sync(
                &first,
                &InProcess::for_store(&hub, "first", tujiang(), &first)
            )
            .complete
        );
    }

    // The damaged one: its chunk keeps its header, the rest is noise.
    let damaged = ids[1];
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n = conn
        .execute(
            "UPDATE chunks SET bytes = CAST(substr(bytes, 1, 12) || randomblob(length(bytes) - 12) AS BLOB) WHERE record_id = ?1",
            [damaged.as_bytes().as_slice()],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);

    // After a restart (nothing cached), a new phone of the village syncs everything else.
    let hub = hub_on(&db, &clock);
    let second = phone(&clock);
    let report = sync(
        &second,
        &InProcess::for_store(&hub, "second", tujiang(), &second),
    );
    assert!(report.complete);
    assert!(second.get(ids[0]).is_ok());
    assert!(second.get(ids[2]).is_ok());
    assert!(second.get(damaged).is_err());

    // The first phone edits the damaged record and another: the other is stored, the
    // damaged one refused with a reason, and the sync completes.
    first
        .set(damaged, "household_size", Value::Integer(4))
        .unwrap();
    first
        .set(ids[2], "household_size", Value::Integer(5))
        .unwrap();
    let report = sync(
        &first,
        &InProcess::for_store(&hub, "first", tujiang(), &first),
    );
    assert!(report.complete);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, damaged);
    let stored = hub.record(ids[2]).unwrap().unwrap();
    assert!(stored.values_json(hub.schema()).contains("household_size"));
    assert_eq!(hub.quarantined().len(), 1);
    drop(hub);

    // The operator lists it, looks at it, drops it.
    let data = dir.path();
    let list = yibiao_testkit::server::cli(binary(), data, &["quarantine", "list"]).unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&damaged.to_string()), "{list}");
    assert!(list.contains("does not load"), "{list}");
    let id = damaged.to_string();
    let show = yibiao_testkit::server::cli(binary(), data, &["quarantine", "show", &id]).unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("\"reason\""));
    let healthy = ids[0].to_string();
    assert!(
        yibiao_testkit::server::cli(binary(), data, &["quarantine", "drop", &healthy]).is_err()
    );
    yibiao_testkit::server::cli(binary(), data, &["quarantine", "drop", &id]).unwrap();
    let list = yibiao_testkit::server::cli(binary(), data, &["quarantine", "list"]).unwrap();
    assert!(list.stdout.is_empty());

    // With the damaged copy gone, the phone's next edit pushes the whole record again.
    let hub = hub_on(&db, &clock);
    first
        .set(damaged, "household_size", Value::Integer(6))
        .unwrap();
    let report = sync(
        &first,
        &InProcess::for_store(&hub, "first", tujiang(), &first),
    );
    assert!(report.complete);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(hub.record(damaged).unwrap().is_some());
}
