//! Identity the server vouches for (issue 11, item 4 and the oracle of item 10): a token
//! is bound to one phone's device id, every pushed change must be authored by that phone
//! and a cadre registered on it, by an automerge actor no other phone uses; receipts name
//! such a cadre; only live phones count in task progress; and a push for a record outside
//! the device's scope answers exactly as one for an unknown id.
//!
//! Phones sync through the kit's in-process transport into the server's own hub, with the
//! identity the sync route builds ([`accounts::identity`]); enrolment and first syncs go
//! through the HTTP API.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use automerge::ActorId;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::clock::ManualClock;
use yibiao_model::record::{Record, Scope};
use yibiao_model::task::{Receipt, put_receipt};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, ServerHub, accounts, app};
use yibiao_store::Store;
use yibiao_sync::protocol::{
    PushDoc, Refusal, RefusalCode, SyncRequest, SyncResponse, WireId, heads_to_wire,
};
use yibiao_sync::{DeviceAuth, DeviceScope, SyncOptions};
use yibiao_testkit::data;
use yibiao_testkit::rng::Rng;
use yibiao_testkit::transport::InProcess;

/// 2026-11-24 09:00 in UTC+8.
const MORNING: i64 = 1_795_482_000_000;

struct Fx {
    state: AppState,
    clock: Arc<ManualClock>,
    admin: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap());
    let clock = Arc::new(ManualClock::new(MORNING));
    let state = AppState::with_clock(config, Schema::baru_example(), storage, clock.clone());
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    let schema = state.hub.schema().clone();
    for (id, village) in [
        ("amu", Some("tujiang")),
        ("ayi", Some("tujiang")),
        ("jike", Some("baru")),
        ("zhang", None),
    ] {
        accounts::create_cadre(state.storage.as_ref(), &schema, id, id, village).unwrap();
    }
    Fx {
        state,
        clock,
        admin,
        _dir: dir,
    }
}

async fn call(fx: &Fx, method: &str, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app(fx.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `POST /v1/enrol` with a fresh code for `cadre`, as the phone `device`.
async fn enrol_http(fx: &Fx, cadre: &str, device: &str) -> (StatusCode, Value) {
    let (code, _) = accounts::issue_code(fx.state.storage.as_ref(), cadre, 30).unwrap();
    call(
        fx,
        "POST",
        "/v1/enrol",
        "",
        json!({"code": code, "device": device}),
    )
    .await
}

/// `POST /v1/sync` with `token`.
async fn sync_http(fx: &Fx, token: &str, req: &SyncRequest) -> (StatusCode, Vec<u8>) {
    let req = Request::post("/v1/sync")
        .header("content-type", "application/x-yibiao-sync")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(req.encode()))
        .unwrap();
    let resp = app(fx.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// An enrolled phone, syncing into the server's hub as the sync route vouches for it.
struct Phone {
    store: Store,
    key: String,
    transport: InProcess<Arc<ServerHub>>,
}

impl Phone {
    fn enrol(fx: &Fx, cadre: &str) -> Self {
        let store = Store::open_in_memory(
            Arc::new(Schema::baru_example()),
            CadreId::new(cadre).unwrap(),
            fx.clock.clone(),
        )
        .unwrap();
        let storage = fx.state.storage.as_ref();
        let (code, _) = accounts::issue_code(storage, cadre, 30).unwrap();
        let enrolled = accounts::enrol(storage, &code, store.device_id().as_str()).unwrap();
        let row = storage
            .devices()
            .unwrap()
            .into_iter()
            .find(|d| d.phone_device.as_deref() == Some(enrolled.device.as_str()))
            .unwrap();
        let scope = match &row.village {
            Some(v) => DeviceScope::Village(v.clone()),
            None => DeviceScope::Township,
        };
        let identity = accounts::identity(storage, &row, store.device_id().clone()).unwrap();
        let transport = InProcess::new(fx.state.hub.clone(), row.key.clone(), scope, identity);
        Self {
            store,
            key: row.key,
            transport,
        }
    }

    fn auth(&self) -> &DeviceAuth {
        self.transport.auth()
    }

    fn sync(&self) {
        let report = yibiao_store::sync_with_sleep(
            &self.store,
            &self.transport,
            &SyncOptions::default(),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert!(report.complete && report.refused.is_empty(), "{report:?}");
    }

    /// Pushes `docs` as this phone; returns the hub's answer.
    fn push(&self, docs: Vec<PushDoc>) -> SyncResponse {
        let req = SyncRequest {
            device: self.store.device_id().to_string(),
            cursor: 0,
            push: docs,
            max_response_bytes: 1 << 16,
            schema: None,
        };
        SyncResponse::decode(&self.transport.handle_decoded(&req).unwrap()).unwrap()
    }
}

/// A household of `village` created by `actor` as `author` (cadre, device).
fn household(village: &str, actor: ActorId, cadre: &str, device: &str) -> (RecordId, PushDoc) {
    let schema = Schema::baru_example();
    let villages = vec![(village.to_owned(), village.to_owned())];
    let h = data::household(&mut Rng::new(11), &schema, &villages).unwrap();
    let id = RecordId::new();
    let author = Author {
        cadre: CadreId::new(cadre).unwrap(),
        device: DeviceId::new(device).unwrap(),
    };
    let scope = Scope {
        township: schema.township.id.clone(),
        village: Some(village.to_owned()),
    };
    let record = Record::create(
        id,
        actor,
        data::ENTITY,
        &scope,
        &h.edits(),
        &author,
        MORNING,
    )
    .unwrap();
    (id, push_doc(&record))
}

fn push_doc(record: &Record) -> PushDoc {
    PushDoc {
        record: WireId::from(record.id()),
        heads: heads_to_wire(&record.heads()),
        bytes: record.save(),
    }
}

fn refusal(resp: &SyncResponse) -> &Refusal {
    assert!(resp.accepted.is_empty(), "accepted: {resp:?}");
    assert_eq!(resp.refused.len(), 1, "{resp:?}");
    &resp.refused[0]
}

fn stored(fx: &Fx, id: RecordId) -> bool {
    fx.state.hub.record(id).unwrap().is_some()
}

#[tokio::test]
async fn enrolment_refuses_reserved_ids_and_another_live_phones_id() {
    let fx = fixture();
    for reserved in ["server", "server-2", "SERVER", "township"] {
        let (status, body) = enrol_http(&fx, "jike", reserved).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reserved}: {body}");
        assert_eq!(body["error"]["reason"], "device_reserved", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("保留"),
            "worded for the cadre, in Chinese: {body}"
        );
    }
    let victim = Phone::enrol(&fx, "amu");
    let taken = victim.store.device_id().to_string();
    let (status, body) = enrol_http(&fx, "jike", &taken).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["reason"], "device_taken", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("已注册"),
        "{body}"
    );
    // Once the township revokes the old token, the same phone enrols again with its id.
    accounts::revoke_device(fx.state.storage.as_ref(), &victim.key).unwrap();
    let (status, body) = enrol_http(&fx, "amu", &taken).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_first_sync_cannot_claim_another_phones_id_to_forge_its_changes() {
    let fx = fixture();
    let victim = Phone::enrol(&fx, "amu");
    let victim_id = victim.store.device_id().to_string();
    // An operator-made token is bound by its first sync; the attacker claims the victim's
    // id and pushes a change authored as the victim.
    let (_, token) = accounts::register_device(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "attacker",
        Some("jike"),
        Some("baru"),
    )
    .unwrap();
    let (id, doc) = household("baru", ActorId::random(), "jike", &victim_id);
    let req = SyncRequest {
        device: victim_id,
        cursor: 0,
        push: vec![doc],
        max_response_bytes: 1 << 16,
        schema: None,
    };
    let (status, body) = sync_http(&fx, &token, &req).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!stored(&fx, id), "nothing forged is stored");
}

#[test]
fn a_change_naming_another_device_than_the_tokens_phone_is_refused() {
    let fx = fixture();
    let phone = Phone::enrol(&fx, "amu");
    let other = Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        fx.clock.clone(),
    )
    .unwrap();
    let (id, doc) = household(
        "tujiang",
        ActorId::random(),
        "amu",
        other.device_id().as_str(),
    );
    let r = phone.push(vec![doc]).refused[0].clone();
    assert_eq!(r.code, RefusalCode::NotARecord);
    assert!(r.message.contains("was made on device"), "{}", r.message);
    assert!(!stored(&fx, id));
}

#[test]
fn a_change_naming_a_cadre_not_registered_on_the_phone_is_refused() {
    let fx = fixture();
    let phone = Phone::enrol(&fx, "amu");
    let device = phone.store.device_id().to_string();
    // jike works in baru: a tujiang phone cannot write as jike.
    let (forged, doc) = household("tujiang", ActorId::random(), "jike", &device);
    let resp = phone.push(vec![doc]);
    let r = refusal(&resp);
    assert_eq!(r.code, RefusalCode::NotARecord);
    assert!(r.message.contains("cadre `jike`"), "{}", r.message);
    assert!(!stored(&fx, forged));
    // ayi works in tujiang too: a shared phone of the village may carry her changes.
    let (shared, doc) = household("tujiang", ActorId::random(), "ayi", &device);
    let resp = phone.push(vec![doc]);
    assert!(resp.refused.is_empty(), "{resp:?}");
    assert!(stored(&fx, shared));
}

#[test]
fn a_change_by_another_phones_automerge_actor_is_refused() {
    let fx = fixture();
    let amu = Phone::enrol(&fx, "amu");
    let ayi = Phone::enrol(&fx, "ayi");
    amu.store.create("household", Some("tujiang"), &[]).unwrap();
    amu.sync();
    // ayi's phone makes a change with amu's actor (readable in any document amu wrote).
    let amu_actor = ActorId::from(hex::decode(amu.store.actor_hex()).unwrap());
    let device = ayi.store.device_id().to_string();
    let (id, doc) = household("tujiang", amu_actor, "ayi", &device);
    let resp = ayi.push(vec![doc]);
    let r = refusal(&resp);
    assert_eq!(r.code, RefusalCode::NotARecord);
    assert!(r.message.contains("another device's"), "{}", r.message);
    assert!(!stored(&fx, id));
    // The phone's own actor keeps working, and so does a phone's own new actor.
    ayi.store.create("household", Some("tujiang"), &[]).unwrap();
    ayi.sync();
    amu.store.create("household", Some("tujiang"), &[]).unwrap();
    amu.sync();
}

/// Issues a task for tujiang's households as the township; returns its id.
async fn issue_task(fx: &Fx) -> String {
    let (status, task) = call(
        fx,
        "POST",
        "/v1/tasks",
        &fx.admin,
        json!({
            "title": "低保复核",
            "instructions": "逐户核对",
            "form": "dibao_check",
            "due": "2026-11-30",
            "villages": ["tujiang"],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["task"].as_str().unwrap().to_owned()
}

async fn tujiang_progress(fx: &Fx, task: &str) -> Value {
    let (status, p) = call(
        fx,
        "GET",
        &format!("/v1/tasks/{task}"),
        &fx.admin,
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    p["villages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["village"] == "tujiang")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn claiming_another_phones_id_cannot_move_it_in_task_progress() {
    let fx = fixture();
    let task = issue_task(&fx).await;
    let amu = Phone::enrol(&fx, "amu");
    amu.sync();
    assert_eq!(tujiang_progress(&fx, &task).await["delivered"], true);
    // A baru phone enrols, then an operator-made baru token syncs, both as amu's phone.
    let amu_id = amu.store.device_id().to_string();
    let (status, _) = enrol_http(&fx, "jike", &amu_id).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, token) = accounts::register_device(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "attacker",
        Some("jike"),
        Some("baru"),
    )
    .unwrap();
    let req = SyncRequest {
        device: amu_id,
        cursor: 0,
        push: Vec::new(),
        max_response_bytes: 1 << 16,
        schema: None,
    };
    let (status, _) = sync_http(&fx, &token, &req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let p = tujiang_progress(&fx, &task).await;
    assert_eq!(
        (p["delivered"].clone(), p["phones"].clone()),
        (json!(true), json!(1)),
        "amu's phone still counts for tujiang: {p}"
    );
}

#[tokio::test]
async fn a_revoked_phone_leaves_task_progress() {
    let fx = fixture();
    let task = issue_task(&fx).await;
    let amu = Phone::enrol(&fx, "amu");
    amu.sync();
    assert_eq!(tujiang_progress(&fx, &task).await["phones"], 1);
    accounts::revoke_device(fx.state.storage.as_ref(), &amu.key).unwrap();
    let p = tujiang_progress(&fx, &task).await;
    assert_eq!(
        (p["delivered"].clone(), p["phones"].clone()),
        (json!(false), json!(0)),
        "{p}"
    );
}

#[tokio::test]
async fn a_township_phone_cannot_write_a_receipt_done_by_a_village_cadre() {
    let fx = fixture();
    let task = issue_task(&fx).await;
    let office = Phone::enrol(&fx, "zhang");
    office.sync();
    let doc_id = office.store.tasks().unwrap()[0].id;
    // The server's copy, edited by the office phone's own actor.
    let held = fx.state.hub.record(doc_id).unwrap().unwrap();
    let actor = ActorId::from(hex::decode(office.store.actor_hex()).unwrap());
    let mut doc = Record::load(doc_id, actor, &[held.save()]).unwrap();
    let before = doc.heads();
    let device = office.auth().identity.device.clone();
    let receipt = Receipt {
        cadre: Some("amu".into()),
        done_ms: Some(MORNING),
        done: Some(yibiao_model::task::DoneHow::Marked),
        note: Some("done".into()),
        ..Receipt::default()
    };
    let author = Author {
        cadre: CadreId::new("zhang").unwrap(),
        device: device.clone(),
    };
    put_receipt(&mut doc, device.as_str(), &receipt, &author, MORNING).unwrap();
    let resp = office.push(vec![PushDoc {
        record: WireId::from(doc_id),
        heads: heads_to_wire(&doc.heads()),
        bytes: doc.save_after(&before),
    }]);
    let r = refusal(&resp);
    assert_eq!(r.code, RefusalCode::InvalidValue);
    assert!(r.message.contains("cadre `amu`"), "{}", r.message);
    let p = tujiang_progress(&fx, &task).await;
    assert_eq!(p["done_by"], Value::Null, "{p}");
}

#[test]
fn a_push_outside_the_scope_answers_as_for_an_unknown_id_and_names_no_village() {
    let fx = fixture();
    let jike = Phone::enrol(&fx, "jike");
    let theirs = jike.store.create("household", Some("baru"), &[]).unwrap();
    jike.sync();
    let amu = Phone::enrol(&fx, "amu");
    let unknown = RecordId::new();
    let device = amu.store.device_id().to_string();
    // Empty bytes, then garbage, then a whole record of baru under the id.
    let (_, baru_doc) = household("baru", ActorId::random(), "amu", &device);
    for bytes in [
        Vec::new(),
        vec![0x85, 0x6f, 0x4a, 0x83],
        baru_doc.bytes.clone(),
    ] {
        let answer = |id: RecordId| {
            let resp = amu.push(vec![PushDoc {
                record: WireId::from(id),
                heads: Vec::new(),
                bytes: bytes.clone(),
            }]);
            let r = refusal(&resp).clone();
            (r.code, r.message.replace(&id.to_string(), "<id>"))
        };
        let (held, fresh) = (answer(theirs), answer(unknown));
        assert_eq!(
            held, fresh,
            "a held record of baru answers as an unknown id"
        );
        assert!(!held.1.contains("baru"), "{}", held.1);
    }
    assert!(!stored(&fx, unknown));
    assert_eq!(
        fx.state.hub.record(theirs).unwrap().unwrap().heads(),
        jike.store.heads(theirs).unwrap(),
        "nothing merged into baru's record"
    );
}

fn sync_report(phone: &Phone) -> yibiao_store::SyncReport {
    yibiao_store::sync_with_sleep(
        &phone.store,
        &phone.transport,
        &SyncOptions::default(),
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn a_phone_refuses_records_outside_its_scope_and_a_refused_record_can_be_discarded() {
    let fx = fixture();
    let amu = Phone::enrol(&fx, "amu");
    // Written before the phone knew its scope (as before enrolment): the server refuses
    // both, and they stay pending and refused until the cadre acts.
    let for_baru = amu.store.create("household", Some("baru"), &[]).unwrap();
    let no_village = amu.store.create("household", None, &[]).unwrap();
    let mine = amu.store.create("household", Some("tujiang"), &[]).unwrap();
    let report = sync_report(&amu);
    assert_eq!(report.refused.len(), 2, "{report:?}");
    let status = amu.store.sync_status().unwrap();
    assert_eq!((status.pending, status.refused), (2, 2));

    // Once it knows its scope (enrolment tells it), the phone refuses at once.
    amu.store.set_scope(Some(&amu.auth().scope)).unwrap();
    assert_eq!(
        amu.store.scope().unwrap(),
        Some(DeviceScope::Village("tujiang".into()))
    );
    let err = amu
        .store
        .create("household", Some("baru"), &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "this phone is enrolled for village `tujiang`; it cannot write a record of village `baru`"
    );
    let err = amu.store.create("household", None, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "this phone is enrolled for village `tujiang`; it cannot write a record of the township level (no village)"
    );
    assert_eq!(amu.store.stats().unwrap().records, 3, "nothing was written");

    // Discarding what the server never accepted removes it for good; what it holds stays.
    amu.store.discard(for_baru).unwrap();
    amu.store.discard(no_village).unwrap();
    let err = amu.store.discard(mine).unwrap_err();
    assert!(err.to_string().contains("is held by the server"), "{err}");
    assert!(amu.store.get(for_baru).is_err());
    let report = sync_report(&amu);
    assert!(report.complete && report.refused.is_empty(), "{report:?}");
    let status = amu.store.sync_status().unwrap();
    assert_eq!((status.pending, status.refused), (0, 0));
    assert!(amu.store.refusals().unwrap().is_empty());
    assert_eq!(amu.store.stats().unwrap().records, 1);

    // A township phone may write for any village of the township, and at township level.
    let zhang = Phone::enrol(&fx, "zhang");
    zhang.store.set_scope(Some(&zhang.auth().scope)).unwrap();
    zhang.store.create("household", Some("baru"), &[]).unwrap();
    zhang.store.create("household", None, &[]).unwrap();
    zhang.sync();
    assert_eq!(zhang.store.sync_status().unwrap().pending, 0);
}
