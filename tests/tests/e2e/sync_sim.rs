//! Deterministic, in-process sync: phones (real stores in memory) and the hub (memory
//! storage) exchange real protocol bodies through the kit's simulated network, whose links
//! cut requests, cut responses after the server committed, and replay requests.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::record::{FieldEdit, HistoryEvent, Record, Scope};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema, Value};
use yibiao_store::Store;
use yibiao_sync::protocol::{PushDoc, RefusalCode, SyncRequest, SyncResponse, WireId};
use yibiao_sync::session::SyncOptions;
use yibiao_sync::{
    DeviceAuth, DeviceScope, Hub, HubConfig, HubStorage, Identity, MemoryHubStorage,
};
use yibiao_testkit::simnet::{Faults, SimLink, SimNet, sim_options};
use yibiao_testkit::transport::identity_of;

type TestHub = Hub<MemoryHubStorage>;

fn options() -> SyncOptions {
    sim_options()
}

fn set(field: &str, value: Value) -> FieldEdit {
    FieldEdit::Set(field.into(), value)
}

fn hub_view(
    hub: &TestHub,
    id: RecordId,
) -> (BTreeMap<String, serde_json::Value>, Vec<String>, bool) {
    let r = hub.record(id).unwrap().unwrap();
    let values = r
        .values(hub.schema())
        .into_iter()
        .map(|(k, v)| (k, v.to_json()))
        .collect();
    (values, r.conflicted_fields(), r.is_deleted())
}

fn phone_view(
    store: &Store,
    id: RecordId,
) -> (BTreeMap<String, serde_json::Value>, Vec<String>, bool) {
    let v = store.get(id).unwrap();
    (
        v.fields.into_iter().map(|f| (f.field, f.value)).collect(),
        v.conflicted,
        v.deleted,
    )
}

/// Every edit a test typed: (record, field, value as JSON).
type Written = Vec<(RecordId, &'static str, serde_json::Value)>;

/// Nineteen village phones over four villages and one township phone, on links that cut
/// requests and responses and replay requests.
fn twenty_phones<'h>(
    hub: &'h TestHub,
    schema: &Arc<Schema>,
    clock: &Arc<ManualClock>,
) -> SimNet<'h, MemoryHubStorage> {
    let villages = ["tujiang", "baru", "shanzhong", "heping"];
    let mut net = SimNet::new(hub, 20_260_214, Faults::new(0.2, 0.2, 0.1));
    for i in 0..20 {
        let scope = if i == 19 {
            DeviceScope::Township
        } else {
            DeviceScope::Village(villages[i % 4].into())
        };
        let store = Store::open_in_memory(
            schema.clone(),
            CadreId::new(format!("cadre-{i}")).unwrap(),
            clock.clone(),
        )
        .unwrap();
        net.add_phone(store, format!("device-{i}"), scope);
    }
    net
}

/// Day 1, offline: every village phone registers five households.
fn register_households(
    net: &SimNet<'_, MemoryHubStorage>,
    clock: &ManualClock,
    written: &mut Written,
) {
    for (i, p) in net.phones().iter().enumerate().take(19) {
        let DeviceScope::Village(v) = &p.scope else {
            unreachable!()
        };
        for n in 0..5 {
            clock.advance(1000);
            let head = Value::Text(format!("户主{i}-{n}"));
            let id = p
                .store
                .create("household", Some(v), &[set("household_head", head.clone())])
                .unwrap();
            written.push((id, "household_head", head.to_json()));
        }
    }
}

/// Day 2, offline: phones of one village edit the same households concurrently, and the
/// township phone edits too.
fn edit_concurrently(
    net: &SimNet<'_, MemoryHubStorage>,
    clock: &ManualClock,
    written: &mut Written,
) {
    for (i, p) in net.phones().iter().enumerate().take(19) {
        let ids: Vec<RecordId> = p
            .store
            .query(&Default::default())
            .unwrap()
            .records
            .iter()
            .map(|r| r.id)
            .collect();
        for (k, id) in ids.iter().enumerate().take(6) {
            clock.advance(1000);
            let size = Value::Integer(((i + k) % 9 + 1) as i64);
            p.store.set(*id, "household_size", size.clone()).unwrap();
            written.push((*id, "household_size", size.to_json()));
        }
    }
    let township = &net.phone(19).store;
    let t_ids: Vec<RecordId> = township
        .query(&Default::default())
        .unwrap()
        .records
        .iter()
        .map(|r| r.id)
        .take(10)
        .collect();
    for id in &t_ids {
        let phone = Value::Text("13800000000".into());
        township.set(*id, "phone", phone.clone()).unwrap();
        written.push((*id, "phone", phone.to_json()));
    }
}

/// Every phone holds exactly its scope, identical to the server, with nothing pending.
fn assert_every_phone_holds_its_scope(net: &SimNet<'_, MemoryHubStorage>, hub: &TestHub) {
    for p in net.phones() {
        let scoped: Vec<RecordId> = hub
            .storage()
            .feed_after(&p.scope, 0, 10_000)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let mut held: Vec<RecordId> = p
            .store
            .query(&yibiao_store::Query {
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .records
            .iter()
            .map(|r| r.id)
            .collect();
        let mut want = scoped.clone();
        held.sort();
        want.sort();
        assert_eq!(held, want, "{} holds exactly its scope", p.key);
        for id in &scoped {
            assert_eq!(
                phone_view(&p.store, *id),
                hub_view(hub, *id),
                "{} agrees with the server on {id}",
                p.key
            );
            assert_eq!(
                p.store.heads(*id).unwrap(),
                hub.record(*id).unwrap().unwrap().heads()
            );
        }
        assert_eq!(p.store.sync_status().unwrap().pending, 0);
    }
}

/// No edit is lost: each is current, a conflict, or in the history.
fn assert_no_edit_lost(hub: &TestHub, schema: &Schema, written: &Written) {
    for (id, field, value) in written {
        let r = hub.record(*id).unwrap().unwrap();
        let current = r.values(schema).get(*field).map(Value::to_json);
        let in_conflict = r
            .conflicts(schema)
            .iter()
            .any(|c| c.field == *field && c.values.iter().any(|v| v.value.as_ref() == Some(value)));
        let in_history = r.history(schema).iter().any(|h| matches!(&h.event, HistoryEvent::Set { field: f, value: v } if f == field && v == value));
        assert!(
            current.as_ref() == Some(value) || in_conflict || in_history,
            "lost {field}={value} on {id}"
        );
    }
}

#[test]
fn twenty_phones_converge_through_a_link_that_cuts_and_replays() {
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let hub = Hub::new(
        schema.clone(),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let net = twenty_phones(&hub, &schema, &clock);
    let mut written = Written::new();
    register_households(&net, &clock, &mut written);
    // Everyone syncs, and pulls what the later phones pushed, until nothing moves.
    net.run_until_quiescent().unwrap();
    edit_concurrently(&net, &clock, &mut written);
    net.run_until_quiescent().unwrap();

    let all = hub
        .storage()
        .feed_after(&DeviceScope::Township, 0, 10_000)
        .unwrap();
    assert_eq!(all.len(), 19 * 5);
    assert_every_phone_holds_its_scope(&net, &hub);
    assert_no_edit_lost(&hub, &schema, &written);
    // Concurrent edits of one household by two phones show up as conflicts.
    let conflicted = all
        .iter()
        .filter(|e| {
            !hub.record(e.id)
                .unwrap()
                .unwrap()
                .conflicted_fields()
                .is_empty()
        })
        .count();
    assert!(
        conflicted > 0,
        "same-village phones edited the same households"
    );
}

#[test]
fn a_refused_document_stays_on_the_phone_with_its_reason_and_the_rest_is_accepted() {
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1));
    let hub = Hub::new(
        schema.clone(),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let phone =
        Store::open_in_memory(schema.clone(), CadreId::new("amu").unwrap(), clock.clone()).unwrap();
    let mine = phone.create("household", Some("tujiang"), &[]).unwrap();
    let theirs = phone.create("household", Some("baru"), &[]).unwrap();
    let link = SimLink::new(
        &hub,
        "dev",
        DeviceScope::Village("tujiang".into()),
        identity_of(&phone),
        1,
        Faults::NONE,
    );
    let report =
        yibiao_store::sync_with_sleep(&phone, &link, &options(), &mut |_| {}, &mut |_| {}).unwrap();
    assert!(report.complete);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, theirs);
    assert_eq!(
        report.refused[0].1,
        "this device may only write records of village `tujiang`"
    );
    assert!(hub.record(mine).unwrap().is_some());
    assert!(
        hub.record(theirs).unwrap().is_none(),
        "nothing wrong is stored"
    );
    let status = phone.sync_status().unwrap();
    assert_eq!(
        (status.pending, status.refused),
        (1, 1),
        "the refused edit stays on the phone"
    );
    assert_eq!(phone.refusals().unwrap()[0].code, "OutOfScope");
    // Not re-sent forever: the next sync is quiet...
    let again =
        yibiao_store::sync_with_sleep(&phone, &link, &options(), &mut |_| {}, &mut |_| {}).unwrap();
    assert_eq!(again.progress.refused, 0);
    // ...until the cadre edits it again.
    phone
        .set(theirs, "household_size", Value::Integer(2))
        .unwrap();
    let third =
        yibiao_store::sync_with_sleep(&phone, &link, &options(), &mut |_| {}, &mut |_| {}).unwrap();
    assert_eq!(third.progress.refused, 1);
}

fn push(hub: &TestHub, scope: DeviceScope, docs: Vec<PushDoc>) -> SyncResponse {
    let req = SyncRequest {
        device: "dev-x".into(),
        cursor: 0,
        push: docs,
        max_response_bytes: 65536,
        schema: None,
    };
    hub.handle(
        &DeviceAuth {
            key: "x".into(),
            scope,
            // A shared phone of c and amu, as the server vouches for it.
            identity: Identity::new(
                DeviceId::new("dev-x").unwrap(),
                ["c", "amu"].map(|c| CadreId::new(c).unwrap()),
            ),
        },
        &req,
    )
    .unwrap()
    .0
}

fn crafted(entity: &str, village: Option<&str>, edits: &[FieldEdit]) -> (RecordId, Record) {
    let id = RecordId::new();
    let author = Author {
        cadre: CadreId::new("c").unwrap(),
        device: DeviceId::new("dev-x").unwrap(),
    };
    let scope = Scope {
        township: "baru".into(),
        village: village.map(str::to_owned),
    };
    (
        id,
        Record::create(
            id,
            automerge::ActorId::random(),
            entity,
            &scope,
            edits,
            &author,
            1,
        )
        .unwrap(),
    )
}

fn doc(id: RecordId, r: &Record) -> PushDoc {
    PushDoc {
        record: WireId::from(id),
        heads: r.heads().iter().map(|h| h.0).collect(),
        bytes: r.save(),
    }
}

#[test]
fn the_hub_checks_every_pushed_change_and_refuses_each_bad_document_alone() {
    let schema = Arc::new(Schema::baru_example());
    let hub = Hub::new(
        schema,
        MemoryHubStorage::default(),
        Arc::new(ManualClock::new(1)),
        HubConfig::default(),
    );
    let (good, good_r) = crafted(
        "household",
        Some("tujiang"),
        &[set("household_size", Value::Integer(3))],
    );
    let (big, big_r) = crafted(
        "household",
        Some("tujiang"),
        &[set("household_size", Value::Integer(99))],
    );
    let (alien, alien_r) = crafted("castle", Some("tujiang"), &[]);
    let (wrong_field, wf_r) = crafted(
        "household",
        Some("tujiang"),
        &[set("party_status", Value::Choice("member".into()))],
    );
    let (garbage, _) = crafted("household", Some("tujiang"), &[]);
    let (gap, gap_r) = crafted("household", Some("tujiang"), &[]);
    let mut gap_r2 = gap_r.clone();
    let author = Author {
        cadre: CadreId::new("c").unwrap(),
        device: DeviceId::new("dev-x").unwrap(),
    };
    gap_r2
        .apply_edits(&[set("household_size", Value::Integer(2))], &author, 2)
        .unwrap();
    let delta = PushDoc {
        record: WireId::from(gap),
        heads: gap_r2.heads().iter().map(|h| h.0).collect(),
        bytes: gap_r2.save_after(&gap_r.heads()),
    };
    let resp = push(
        &hub,
        DeviceScope::Village("tujiang".into()),
        vec![
            doc(good, &good_r),
            doc(big, &big_r),
            doc(alien, &alien_r),
            doc(wrong_field, &wf_r),
            PushDoc {
                record: WireId::from(garbage),
                heads: vec![],
                bytes: b"not automerge".to_vec(),
            },
            delta,
        ],
    );
    assert_eq!(resp.accepted, vec![WireId::from(good)]);
    let refused: Vec<(RecordId, RefusalCode, String)> = resp
        .refused
        .iter()
        .map(|r| (RecordId::from(r.record), r.code, r.message.clone()))
        .collect();
    assert_eq!(
        refused[0],
        (
            big,
            RefusalCode::InvalidValue,
            "field `household_size` (Household size) must be at most 30, got 99".into()
        )
    );
    assert_eq!(
        refused[1],
        (
            alien,
            RefusalCode::NotARecord,
            "unknown entity type `castle`".into()
        )
    );
    assert_eq!(
        refused[2],
        (
            wrong_field,
            RefusalCode::InvalidValue,
            "field `party_status` (Party membership) is not a field of entity type `household`"
                .into()
        )
    );
    assert_eq!(refused[3].1, RefusalCode::Malformed);
    assert_eq!(refused[4].1, RefusalCode::MissingHistory);
    for id in [big, alien, wrong_field, garbage, gap] {
        assert!(
            hub.record(id).unwrap().is_none(),
            "nothing of a refused document is stored"
        );
    }
    // A phone cannot push changes it says another phone made.
    let forged_id = RecordId::new();
    let other = Author {
        cadre: CadreId::new("c").unwrap(),
        device: DeviceId::new("someone-else").unwrap(),
    };
    let scope = Scope {
        township: "baru".into(),
        village: Some("tujiang".into()),
    };
    let forged = Record::create(
        forged_id,
        automerge::ActorId::random(),
        "household",
        &scope,
        &[],
        &other,
        1,
    )
    .unwrap();
    let resp = push(
        &hub,
        DeviceScope::Village("tujiang".into()),
        vec![doc(forged_id, &forged)],
    );
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].code, RefusalCode::NotARecord);
    assert!(
        resp.refused[0]
            .message
            .ends_with("was made on device `someone-else`, but this is device `dev-x`"),
        "{}",
        resp.refused[0].message
    );
    // Replaying the same request changes nothing.
    let again = push(
        &hub,
        DeviceScope::Village("tujiang".into()),
        vec![doc(good, &good_r)],
    );
    assert_eq!(again.accepted, vec![WireId::from(good)]);
    assert_eq!(
        hub.storage()
            .feed_after(&DeviceScope::Township, 0, 100)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_large_backlog_goes_in_bounded_pages_and_resumes_after_a_failure() {
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1));
    let hub = Hub::new(
        schema.clone(),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let phone =
        Store::open_in_memory(schema.clone(), CadreId::new("amu").unwrap(), clock.clone()).unwrap();
    for i in 0..300 {
        phone
            .create(
                "household",
                Some("heping"),
                &[
                    set("household_head", Value::Text(format!("户主{i}"))),
                    set("notes", Value::Text("长".repeat(100))),
                ],
            )
            .unwrap();
    }
    let link = SimLink::new(
        &hub,
        "dev",
        DeviceScope::Village("heping".into()),
        identity_of(&phone),
        7,
        Faults::NONE,
    );
    // A byte budget stops the run early; the next run resumes where it stopped.
    let opts = SyncOptions {
        byte_budget: Some(20_000),
        ..options()
    };
    let first =
        yibiao_store::sync_with_sleep(&phone, &link, &opts, &mut |_| {}, &mut |_| {}).unwrap();
    assert!(!first.complete);
    let acked_first = first.progress.pushed;
    assert!(acked_first > 0 && acked_first < 300);
    let second =
        yibiao_store::sync_with_sleep(&phone, &link, &options(), &mut |_| {}, &mut |_| {}).unwrap();
    assert!(second.complete);
    assert_eq!(
        acked_first + second.progress.pushed,
        300,
        "nothing acknowledged is sent twice"
    );
    assert!(second.progress.pages > 3);
    let sizes = link.request_sizes();
    assert!(
        sizes.iter().all(|s| *s < 8 * 1024),
        "every request stays near the page size: {sizes:?}"
    );
    // A second phone of the village pulls everything in bounded pages.
    let other = Store::open_in_memory(schema, CadreId::new("jike").unwrap(), clock).unwrap();
    let link2 = SimLink::new(
        &hub,
        "dev2",
        DeviceScope::Village("heping".into()),
        identity_of(&other),
        8,
        Faults::NONE,
    );
    let pulled =
        yibiao_store::sync_with_sleep(&other, &link2, &options(), &mut |_| {}, &mut |_| {})
            .unwrap();
    assert!(pulled.complete);
    assert_eq!(pulled.progress.pulled, 300);
    assert!(pulled.progress.pages > 3, "pulled in several pages");
}

#[test]
fn an_old_client_is_told_to_update() {
    let body = SyncRequest {
        device: "d".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 1,
        schema: None,
    }
    .encode();
    let mut old = body.clone();
    old[3] = 9;
    assert_eq!(
        SyncRequest::decode(&old).unwrap_err().to_string(),
        "sync protocol version 9 is not supported (this side speaks 1); update the app"
    );
}

#[test]
fn tasks_reach_their_village_through_a_faulty_link_and_only_own_receipts_pass() {
    use yibiao_model::task::{self, DoneHow, Receipt, TaskSpec};
    use yibiao_store::PhoneTaskStatus;

    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let hub = Hub::new(
        schema.clone(),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let store = |c: &str| {
        Store::open_in_memory(schema.clone(), CadreId::new(c).unwrap(), clock.clone()).unwrap()
    };
    let faults = Faults::new(0.25, 0.25, 0.2);
    let mut net = SimNet::new(&hub, 3, faults);
    let of = net.add_phone_with(
        store("office"),
        "office",
        DeviceScope::Township,
        Faults::NONE,
    );
    let tj = net.add_phone(store("amu"), "tj", DeviceScope::Village("tujiang".into()));
    let br = net.add_phone(store("jike"), "br", DeviceScope::Village("baru".into()));
    let net = net;
    let (office, tujiang, baru) = (
        &net.phone(of).store,
        &net.phone(tj).store,
        &net.phone(br).store,
    );
    let mut tj_homes = Vec::new();
    for n in 0..2 {
        tj_homes.push(
            office
                .create(
                    "household",
                    Some("tujiang"),
                    &[set("household_head", Value::Text(format!("户{n}")))],
                )
                .unwrap(),
        );
    }
    office
        .create(
            "household",
            Some("baru"),
            &[set("household_head", Value::Text("吉克".into()))],
        )
        .unwrap();
    net.sync(of).unwrap();

    // The township issues a village-wide 低保 task for tujiang only.
    let spec = TaskSpec {
        task: "t-1".into(),
        title: "低保核查".into(),
        instructions: String::new(),
        form: "dibao_check".into(),
        due: "2025-11-30".into(),
        due_ms: task::parse_due("2025-11-30").unwrap(),
        issuer: "township".into(),
        targets: None,
    };
    let author = Author {
        cadre: CadreId::new("township").unwrap(),
        device: DeviceId::new("server").unwrap(),
    };
    let doc_id = RecordId::new();
    let task_doc = task::new_task_doc(
        doc_id,
        hub.actor(),
        &spec,
        "baru",
        Some("tujiang"),
        &author,
        1_764_000_000_000,
    )
    .unwrap();
    hub.commit_server_docs(vec![task_doc]).unwrap();

    net.sync(tj).unwrap();
    net.sync(br).unwrap();
    assert!(
        baru.tasks().unwrap().is_empty(),
        "baru's phone never sees tujiang's task"
    );
    let t = tujiang.tasks().unwrap().remove(0);
    assert_eq!((t.records_complete, t.records_total), (0, 2));
    assert_eq!(t.status, PhoneTaskStatus::New);
    // The delivered receipt left in the same sync and reached the hub.
    let at_hub = task::read_task(&hub.record(doc_id).unwrap().unwrap()).unwrap();
    let mine = &at_hub.receipts[tujiang.device_id().as_str()];
    assert!(mine.delivered_ms.is_some() && mine.done.is_none());

    // Both households completed offline: the next sync says done by itself.
    let complete = |id| {
        tujiang
            .update(
                id,
                &[
                    set("id_number", Value::Text("513431199001011239".into())),
                    set("household_size", Value::Integer(3)),
                    set("annual_income", Value::Decimal("9000.00".parse().unwrap())),
                    set("dibao_status", Value::Choice("none".into())),
                    set("visit_date", Value::Date("2025-11-29".parse().unwrap())),
                ],
            )
            .unwrap()
    };
    complete(tj_homes[0]);
    complete(tj_homes[1]);
    net.sync(tj).unwrap();
    let at_hub = task::read_task(&hub.record(doc_id).unwrap().unwrap()).unwrap();
    assert_eq!(
        at_hub.receipts[tujiang.device_id().as_str()].done,
        Some(DoneHow::Complete)
    );

    // A phone that writes another device's receipt is refused, and nothing is stored.
    let mut forged = Record::load(
        doc_id,
        automerge::ActorId::random(),
        &[tujiang.export(doc_id).unwrap()],
    )
    .unwrap();
    let before = hub.record(doc_id).unwrap().unwrap().heads();
    let fake = Receipt {
        done: Some(DoneHow::Marked),
        done_ms: Some(1),
        ..Receipt::default()
    };
    let phone_author = Author {
        cadre: CadreId::new("amu").unwrap(),
        device: DeviceId::new("dev-x").unwrap(),
    };
    task::put_receipt(&mut forged, "someone-else", &fake, &phone_author, 5).unwrap();
    let resp = push(
        &hub,
        DeviceScope::Village("tujiang".into()),
        vec![doc(doc_id, &forged)],
    );
    assert_eq!(resp.refused.len(), 1, "{resp:?}");
    assert_eq!(resp.refused[0].code, RefusalCode::NotARecord);
    assert!(
        resp.refused[0]
            .message
            .contains("receipt of device `someone-else`"),
        "{}",
        resp.refused[0].message
    );
    assert_eq!(hub.record(doc_id).unwrap().unwrap().heads(), before);
}

#[test]
fn a_value_the_server_refuses_reaches_the_phone_as_a_code_with_parameters() {
    // The phone's schema allows households of up to 50; the server's (Baru) up to 30.
    let baru = Schema::baru_example();
    let lenient = yibiao_model::schema::BARU_TOML.replacen(
        "zh = \"家庭人口数\"\nen = \"Household size\"\nmin = 1\nmax = 30",
        "zh = \"家庭人口数\"\nen = \"Household size\"\nmin = 1\nmax = 50",
        1,
    );
    assert_ne!(
        lenient,
        yibiao_model::schema::BARU_TOML,
        "the fixture changed"
    );
    let lenient = Arc::new(Schema::from_toml_str(&lenient, "lenient.toml").unwrap());
    let clock = Arc::new(ManualClock::new(1));
    let hub = Hub::new(
        Arc::new(baru),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let phone = Store::open_in_memory(lenient, CadreId::new("amu").unwrap(), clock).unwrap();
    let id = phone
        .create(
            "household",
            Some("tujiang"),
            &[set("household_size", Value::Integer(40))],
        )
        .unwrap();
    let link = SimLink::new(
        &hub,
        "dev",
        DeviceScope::Village("tujiang".into()),
        identity_of(&phone),
        1,
        Faults::NONE,
    );
    let report =
        yibiao_store::sync_with_sleep(&phone, &link, &options(), &mut |_| {}, &mut |_| {}).unwrap();
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let refusal = &phone.refusals().unwrap()[0];
    assert_eq!((refusal.id, refusal.code.as_str()), (id, "InvalidValue"));
    assert_eq!(refusal.reason.code, "above_max");
    assert_eq!(refusal.reason.param("field"), "household_size");
    assert_eq!(refusal.reason.param("max"), "30");
    assert_eq!(refusal.reason.param("got"), "40");
    assert_eq!(
        refusal.reason.render(yibiao_model::messages::Lang::Zh),
        "「家庭人口数」不能大于 30，填的是 40"
    );
    assert_eq!(
        refusal.message,
        "field `household_size` (Household size) must be at most 30, got 40"
    );
}
