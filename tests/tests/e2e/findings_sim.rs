//! Findings through the real sync path (ADR 0012): recorded on a village phone offline,
//! handed over by the office on the hub, delivered to the village's phones only (with
//! the delivered mark written by the phone), resolved offline through a faulty link; a
//! phone's forbidden step is refused by the hub with the reason as data.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::finding::{
    self, Actor, FindingState, Severity, Step, StepKind, Unit, append_step, read_finding,
};
use yibiao_model::record::Record;
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema};
use yibiao_store::{NewFinding, Store};
use yibiao_sync::protocol::{PushDoc, RefusalCode, SyncRequest, WireId};
use yibiao_sync::{DeviceAuth, DeviceScope, Hub, HubConfig, Identity, MemoryHubStorage};
use yibiao_testkit::simnet::{Faults, SimNet};

const T0: i64 = 1_764_000_000_000;
const DAY: i64 = 86_400_000;

fn office() -> Author {
    Author {
        cadre: CadreId::new("township").unwrap(),
        device: DeviceId::new("server").unwrap(),
    }
}

/// The office takes `kind` on the hub, as the server's HTTP route does.
fn office_step(hub: &Hub<MemoryHubStorage>, id: RecordId, kind: StepKind, at: i64) {
    let step = Step::new(kind, Actor::Staff("li".into()), at);
    let changed = hub
        .update_server_docs(&[id], |r| {
            append_step(r, &step, &office(), at)?;
            Ok(true)
        })
        .unwrap();
    assert_eq!(changed, 1);
}

fn state_at_hub(hub: &Hub<MemoryHubStorage>, id: RecordId) -> FindingState {
    read_finding(&hub.record(id).unwrap().unwrap())
        .unwrap()
        .lifecycle()
        .state
}

#[test]
fn a_finding_recorded_offline_is_handed_over_delivered_and_resolved_through_a_faulty_link() {
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(T0));
    let hub = Hub::new(
        schema.clone(),
        MemoryHubStorage::default(),
        clock.clone(),
        HubConfig::default(),
    );
    let store = |c: &str, v: &str| {
        let s =
            Store::open_in_memory(schema.clone(), CadreId::new(c).unwrap(), clock.clone()).unwrap();
        s.set_scope(Some(&DeviceScope::Village(v.into()))).unwrap();
        s
    };
    let mut net = SimNet::new(&hub, 15, Faults::new(0.25, 0.25, 0.2));
    let tj = net.add_phone(
        store("amu", "tujiang"),
        "tj",
        DeviceScope::Village("tujiang".into()),
    );
    let br = net.add_phone(
        store("jike", "baru"),
        "br",
        DeviceScope::Village("baru".into()),
    );
    let net = net;
    let (tujiang, baru) = (&net.phone(tj).store, &net.phone(br).store);

    // Recorded offline on the tujiang phone; another village is refused at once.
    let new = || NewFinding {
        category: "living_environment".into(),
        description: "村口建筑垃圾未清运".into(),
        record: None,
        gps: None,
        photos: vec!["att-1".into()],
        severity: Severity::Medium,
    };
    let id = tujiang.record_finding(Some("tujiang"), new()).unwrap();
    assert!(tujiang.record_finding(Some("baru"), new()).is_err());
    net.sync(tj).unwrap();
    assert_eq!(state_at_hub(&hub, id), FindingState::Found);

    // The office hands it over to tujiang; its phone gets it and marks it delivered in
    // the same sync; baru's phone never sees it.
    let hand = StepKind::HandOver {
        unit: Unit::Village("tujiang".into()),
        deadline_ms: T0 + 3 * DAY,
    };
    office_step(&hub, id, hand, T0 + 1);
    net.sync(tj).unwrap();
    net.sync(br).unwrap();
    assert!(
        baru.findings().unwrap().is_empty(),
        "baru sees nothing of tujiang's"
    );
    let f = tujiang.finding(id).unwrap();
    assert!(f.ours_to_resolve && f.state == FindingState::HandedOver);
    let at_hub = read_finding(&hub.record(id).unwrap().unwrap()).unwrap();
    let mark = &at_hub.receipts[tujiang.device_id().as_str()];
    assert!(mark.delivered_ms.is_some() && mark.opened_ms.is_none());

    // Opened and resolved offline, then synced: the hub holds the resolution.
    clock.advance(DAY);
    assert!(tujiang.open_finding(id).unwrap());
    tujiang
        .resolve_finding(id, "已清运，见照片", vec!["att-2".into()])
        .unwrap();
    // The phone itself may not accept its own resolution.
    assert!(tujiang.take_finding_step(id, StepKind::Accept).is_err());
    net.sync(tj).unwrap();
    assert_eq!(state_at_hub(&hub, id), FindingState::Resolved);
    let at_hub = read_finding(&hub.record(id).unwrap().unwrap()).unwrap();
    assert!(
        at_hub.receipts[tujiang.device_id().as_str()]
            .opened_ms
            .is_some()
    );

    // Sent back, resolved again, accepted: every replica folds the same log.
    office_step(
        &hub,
        id,
        StepKind::SendBack {
            reason: "仍有残留".into(),
        },
        T0 + DAY + 5,
    );
    net.sync(tj).unwrap();
    assert_eq!(tujiang.finding(id).unwrap().state, FindingState::SentBack);
    tujiang.resolve_finding(id, "已全部清运", vec![]).unwrap();
    net.sync(tj).unwrap();
    office_step(&hub, id, StepKind::Accept, T0 + 2 * DAY);
    net.sync(tj).unwrap();
    let phone = tujiang.finding(id).unwrap();
    let hub_l = read_finding(&hub.record(id).unwrap().unwrap())
        .unwrap()
        .lifecycle();
    assert_eq!(
        (phone.state, hub_l.state),
        (FindingState::Closed, FindingState::Closed)
    );
    assert_eq!(phone.steps, hub_l.steps);
    assert_eq!(hub_l.sent_back, 1);
}

fn push(
    hub: &Hub<MemoryHubStorage>,
    scope: DeviceScope,
    record: &Record,
) -> yibiao_sync::protocol::SyncResponse {
    let req = SyncRequest {
        device: "dev-x".into(),
        cursor: 0,
        push: vec![PushDoc {
            record: WireId::from(record.id()),
            heads: record.heads().iter().map(|h| h.0).collect(),
            bytes: record.save(),
        }],
        max_response_bytes: 65536,
        schema: None,
    };
    let auth = DeviceAuth {
        key: "x".into(),
        scope,
        identity: Identity::new(
            DeviceId::new("dev-x").unwrap(),
            [CadreId::new("amu").unwrap()],
        ),
    };
    hub.handle(&auth, &req).unwrap().0
}

/// Each step a village phone may not take is refused by the hub with
/// `finding_forbidden` naming the role, the step and why; the permitted ones pass.
#[test]
fn the_hub_refuses_each_step_a_village_phone_may_not_take_with_its_reason() {
    let schema = Arc::new(Schema::baru_example());
    let hub = Hub::new(
        schema,
        MemoryHubStorage::default(),
        Arc::new(ManualClock::new(T0)),
        HubConfig::default(),
    );
    let amu = Author {
        cadre: CadreId::new("amu").unwrap(),
        device: DeviceId::new("dev-x").unwrap(),
    };
    let spec = finding::FindingSpec {
        category: "work_style".into(),
        description: "工作日脱岗".into(),
        record: None,
        gps: None,
        photos: vec![],
        severity: Severity::Low,
        found_by: Actor::Cadre("amu".into()),
        found_ms: T0,
    };
    let id = RecordId::new();
    let actor = automerge::ActorId::random();
    let mut phone =
        finding::new_finding_doc(id, actor.clone(), &spec, "baru", Some("tujiang"), &amu, T0)
            .unwrap();
    // A phone of another village may not record it.
    let r = push(&hub, DeviceScope::Village("baru".into()), &phone);
    assert_eq!(r.refused[0].code, RefusalCode::NotARecord, "{r:?}");
    assert_eq!(r.refused[0].reason.param("why"), "other_village");
    let r = push(&hub, DeviceScope::Village("tujiang".into()), &phone);
    assert!(r.refused.is_empty(), "{r:?}");
    office_step(
        &hub,
        id,
        StepKind::HandOver {
            unit: Unit::Village("tujiang".into()),
            deadline_ms: T0 + DAY,
        },
        T0 + 1,
    );
    phone
        .merge_bytes(&hub.record(id).unwrap().unwrap().save())
        .unwrap();
    let forbidden = [
        (
            StepKind::HandOver {
                unit: Unit::Village("tujiang".into()),
                deadline_ms: T0,
            },
            "role",
        ),
        (StepKind::Accept, "role"),
        (StepKind::SendBack { reason: "x".into() }, "role"),
        (
            StepKind::HoldToAccount {
                who: "x".into(),
                measure: "y".into(),
            },
            "role",
        ),
        (
            StepKind::Resolve {
                unit: Unit::Department("housing".into()),
                note: String::new(),
                evidence: vec![],
            },
            "role",
        ),
    ];
    for (kind, why) in forbidden {
        let name = kind.name();
        let mut p = phone.clone();
        append_step(
            &mut p,
            &Step::new(kind, Actor::Cadre("amu".into()), T0 + 2),
            &amu,
            T0 + 2,
        )
        .unwrap();
        let r = push(&hub, DeviceScope::Village("tujiang".into()), &p);
        assert_eq!(r.refused.len(), 1, "{name}: {r:?}");
        let reason = &r.refused[0].reason;
        assert_eq!(reason.code, "finding_forbidden", "{name}");
        assert_eq!(
            (
                reason.param("role"),
                reason.param("step"),
                reason.param("why")
            ),
            ("village:tujiang", name, why)
        );
    }
    // The permitted step passes.
    let resolve = StepKind::Resolve {
        unit: Unit::Village("tujiang".into()),
        note: "已返岗".into(),
        evidence: vec![],
    };
    append_step(
        &mut phone,
        &Step::new(resolve, Actor::Cadre("amu".into()), T0 + 3),
        &amu,
        T0 + 3,
    )
    .unwrap();
    let r = push(&hub, DeviceScope::Village("tujiang".into()), &phone);
    assert!(r.refused.is_empty(), "{r:?}");
    assert_eq!(state_at_hub(&hub, id), FindingState::Resolved);
}
