//! The conformance suites of the server's storage traits, one per concern, beside
//! [`yibiao_sync::hub::conformance`] (the hub's). Every backend runs every suite on fresh,
//! empty storages ([`run_all`]); a check panics with a message naming the broken property.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite")]

use automerge::{ActorId, ChangeHash};
use yibiao_model::RecordId;
use yibiao_sync::hub::{DocWrite, HubBatch, HubStorage};

use super::{
    AccountStorage, AuditRow, BlobRefStorage, CadreAdminStorage, CadreRow, DepartmentStorage,
    DepartmentTokenRow, DeviceRow, DeviceSeenStorage, FindingStorage, RecordFilter,
    RecordTableStorage, Redeem, ServerStorage, SessionRow, StaffRow, StaffStorage, TableFilter,
    TaskStorage, TrailStorage, ViewStorage,
};

/// Runs every suite of the server's storage (the hub's included), each check on a
/// storage from `make`.
pub(crate) fn run_all<S: ServerStorage>(make: impl Fn() -> S) {
    yibiao_sync::hub::conformance::run_all(&make);
    accounts(&make);
    departments(&make());
    views(&make);
    tasks(&make());
    staff(&make());
    device_seen(&make());
    cadre_admin(&make());
    records_table(&make());
    findings(&make());
    blob_refs(&make());
    trail(&make());
    quarantine(&make());
}

/// The [`QuarantineStorage`] suite: what the operator's `quarantine` commands read and
/// drop, on stored documents that do not load.
pub(crate) fn quarantine<S: super::QuarantineStorage>(s: &S) {
    commit(
        s,
        vec![
            doc(41, "household", Some("v1"), "{}", false),
            doc(42, "household", None, "{}", false),
        ],
    );
    assert_eq!(s.record_ids().unwrap(), vec![id(41), id(42)]);
    assert_eq!(
        s.record_place(id(41)).unwrap(),
        Some(("household".to_owned(), Some("v1".to_owned())))
    );
    assert_eq!(s.record_place(id(99)).unwrap(), None);
    assert!(s.listed_records().unwrap().is_empty(), "nothing met yet");
    let found = s.quarantined_records(1 << 20).unwrap();
    assert_eq!(
        found.iter().map(|q| q.id).collect::<Vec<_>>(),
        vec![id(41), id(42)]
    );
    assert!(found[0].reason.starts_with("does not load"), "{found:?}");
    assert_eq!((found[0].chunks, found[0].bytes), (1, 1));
    assert_eq!(s.quarantined_record(id(99), 1 << 20).unwrap(), None);
    s.quarantine(id(41), &found[0].reason, 7).unwrap();
    let listed = s.listed_records().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id,
            listed[0].entity.as_str(),
            listed[0].village.as_deref(),
            listed[0].chunks,
            listed[0].bytes
        ),
        (id(41), "household", Some("v1"), 1, 1)
    );
    assert!(s.drop_record(id(41)).unwrap());
    assert!(!s.drop_record(id(41)).unwrap(), "gone");
    assert!(
        s.listed_records().unwrap().is_empty(),
        "its entry went with it"
    );
    assert_eq!(s.record_ids().unwrap(), vec![id(42)]);
    assert!(s.load(id(41)).unwrap().is_none());

    // A real document set aside as too large is released once a budget covers it.
    let spec: yibiao_model::finding::FindingSpec = serde_json::from_value(serde_json::json!({
        "category": "work_style", "description": "值班表无人签到", "severity": "low",
        "found_by": {"staff": "li"}, "found_ms": 1
    }))
    .unwrap();
    let author = yibiao_model::Author {
        cadre: yibiao_model::CadreId::new("li").unwrap(),
        device: yibiao_model::DeviceId::new("server").unwrap(),
    };
    let real = yibiao_model::finding::new_finding_doc(
        id(43),
        ActorId::random(),
        &spec,
        "t",
        Some("v1"),
        &author,
        1,
    )
    .unwrap();
    let mut big = doc(43, "household", Some("v1"), "{}", false);
    (big.chunk, big.snapshot) = (real.save(), true);
    commit(s, vec![big]);
    let wire = real.save_for_wire().len();
    s.quarantine(id(43), "too large", 8).unwrap();
    assert!(
        s.release_fitting(wire - 1).unwrap().is_empty(),
        "still too large"
    );
    assert_eq!(s.listed_records().unwrap().len(), 1);
    assert_eq!(s.release_fitting(wire).unwrap(), vec![id(43)]);
    assert!(s.listed_records().unwrap().is_empty(), "served again");
    assert!(!s.unlist(id(43)).unwrap(), "no longer listed");
    assert!(s.load(id(43)).unwrap().is_some(), "the record stays stored");
}

fn device(key: &str, phone: Option<&str>) -> DeviceRow {
    DeviceRow {
        key: key.into(),
        name: format!("phone {key}"),
        cadre: Some("amu".into()),
        village: Some("v1".into()),
        created_ms: 5,
        revoked_ms: None,
        phone_device: phone.map(str::to_owned),
    }
}

fn cadre(id: &str, village: Option<&str>) -> CadreRow {
    CadreRow {
        id: id.into(),
        name: "阿木".into(),
        village: village.map(str::to_owned),
        created_ms: 1,
    }
}

/// The [`AccountStorage`] suite.
pub(crate) fn accounts<S: AccountStorage>(make: impl Fn() -> S) {
    admin_token_rotation_replaces_the_old_one(&make());
    cadres_are_unique_and_listed_by_id(&make());
    an_enrolment_code_works_once_and_not_after_expiry(&make());
    a_phone_binds_to_one_live_token(&make());
}

fn admin_token_rotation_replaces_the_old_one(s: &dyn AccountStorage) {
    assert!(
        !s.has_admin_token().unwrap(),
        "a new storage has no admin token"
    );
    s.set_admin_token(b"one", 1).unwrap();
    assert!(s.has_admin_token().unwrap() && s.is_admin_token(b"one").unwrap());
    s.set_admin_token(b"two", 2).unwrap();
    assert!(
        !s.is_admin_token(b"one").unwrap(),
        "a rotated token still works"
    );
    assert!(s.is_admin_token(b"two").unwrap());
}

fn cadres_are_unique_and_listed_by_id(s: &dyn AccountStorage) {
    assert!(s.add_cadre(&cadre("b", Some("v1"))).unwrap());
    assert!(s.add_cadre(&cadre("a", None)).unwrap());
    assert!(!s.add_cadre(&cadre("a", Some("v2"))).unwrap(), "a taken id");
    assert_eq!(
        s.cadre("a").unwrap(),
        Some(cadre("a", None)),
        "the first stays"
    );
    assert_eq!(s.cadre("zz").unwrap(), None);
    let ids: Vec<String> = s.cadres().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["a", "b"]);
}

fn an_enrolment_code_works_once_and_not_after_expiry(s: &dyn AccountStorage) {
    s.add_cadre(&cadre("amu", Some("v1"))).unwrap();
    s.add_enrol_code(b"c1", "amu", 100, 1).unwrap();
    s.add_enrol_code(b"c2", "amu", 100, 1).unwrap();
    s.add_enrol_code(b"c3", "amu", 100, 1).unwrap();
    let mut make = |c: &CadreRow| {
        assert_eq!(
            c.id, "amu",
            "the code's cadre is handed to the device maker"
        );
        (device("k1", Some("p1")), b"t1".to_vec())
    };
    assert_eq!(
        s.redeem_code(b"nope", 10, &mut make).unwrap(),
        Redeem::Unknown
    );
    assert_eq!(
        s.redeem_code(b"c1", 10, &mut make).unwrap(),
        Redeem::Enrolled(device("k1", Some("p1")))
    );
    assert_eq!(s.redeem_code(b"c1", 11, &mut make).unwrap(), Redeem::Used);
    assert_eq!(
        s.redeem_code(b"c2", 100, &mut make).unwrap(),
        Redeem::Expired
    );
    // The phone p1 holds a live token: a second enrolment of it is refused, code unused.
    let mut again = |_: &CadreRow| (device("k2", Some("p1")), b"t2".to_vec());
    assert_eq!(s.redeem_code(b"c3", 12, &mut again).unwrap(), Redeem::Taken);
    assert_eq!(
        s.revoke_enrol_codes("amu", 13).unwrap(),
        2,
        "c2 and c3 are unused"
    );
    assert_eq!(
        s.redeem_code(b"c3", 14, &mut again).unwrap(),
        Redeem::Expired
    );
    let found = s.device_by_token_hash(b"t1").unwrap().unwrap();
    assert_eq!(found.key, "k1");
    assert_eq!(s.device_by_token_hash(b"t2").unwrap(), None);
}

fn a_phone_binds_to_one_live_token(s: &dyn AccountStorage) {
    s.add_device(&device("k1", None), b"t1").unwrap();
    s.add_device(&device("k2", None), b"t2").unwrap();
    assert!(s.bind_phone_device("k1", "p1").unwrap());
    assert!(!s.bind_phone_device("k2", "p1").unwrap(), "p1 is k1's");
    assert!(s.revoke_device("p1", 9).unwrap(), "revoked by phone id");
    assert!(!s.revoke_device("nobody", 9).unwrap());
    assert!(
        s.bind_phone_device("k2", "p1").unwrap(),
        "a revoked token frees it"
    );
    let all = s.devices().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].revoked_ms, Some(9));
    assert_eq!(all[1].phone_device.as_deref(), Some("p1"));
}

/// The [`DepartmentStorage`] suite.
pub(crate) fn departments(s: &dyn DepartmentStorage) {
    let row = |key: &str, ms| DepartmentTokenRow {
        key: key.into(),
        department: "civil".into(),
        name: "民政".into(),
        created_ms: ms,
        revoked_ms: None,
    };
    s.add_department_token(&row("b", 2), b"hb").unwrap();
    s.add_department_token(&row("a", 1), b"ha").unwrap();
    assert_eq!(
        s.department_by_token_hash(b"hb").unwrap(),
        Some(row("b", 2))
    );
    assert_eq!(s.department_by_token_hash(b"hx").unwrap(), None);
    assert!(s.revoke_department_token("b", 7).unwrap());
    assert!(
        s.revoke_department_token("b", 8).unwrap(),
        "revoking twice is fine"
    );
    assert!(!s.revoke_department_token("x", 8).unwrap());
    let all = s.department_tokens().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].key.as_str(), all[1].revoked_ms),
        ("a", Some(7)),
        "by creation, first revocation kept"
    );
}

fn id(n: u8) -> RecordId {
    RecordId::from_bytes([n; 16])
}

fn doc(n: u8, entity: &str, village: Option<&str>, values: &str, deleted: bool) -> DocWrite {
    DocWrite {
        id: id(n),
        entity: entity.into(),
        village: village.map(str::to_owned),
        chunk: vec![n],
        snapshot: false,
        heads: vec![ChangeHash([n; 32])],
        values_json: values.into(),
        conflicts_json: "{}".into(),
        deleted,
        typed: Vec::new(),
    }
}

fn commit<S: HubStorage>(s: &S, docs: Vec<DocWrite>) {
    s.commit(&HubBatch {
        device: "d1".into(),
        docs,
        ..HubBatch::default()
    })
    .unwrap();
}

fn filter(entities: &[&str], villages: Option<&[&str]>, deleted: bool) -> RecordFilter {
    RecordFilter {
        view: yibiao_model::schema::ViewFilter {
            entities: entities.iter().map(|e| (*e).to_owned()).collect(),
            villages: villages.map(|v| v.iter().map(|e| (*e).to_owned()).collect()),
            entity: None,
            village: None,
        },
        include_deleted: deleted,
    }
}

/// The [`ViewStorage`] suite (documents are written through [`HubStorage::commit`]).
pub(crate) fn views<S: HubStorage + ViewStorage>(make: impl Fn() -> S) {
    records_pages_follow_the_view(&make());
    the_feed_page_follows_commits_and_keeps_tombstones(&make());
    summaries_are_read_and_rewritten(&make());
}

fn records_pages_follow_the_view<S: HubStorage + ViewStorage>(s: &S) {
    commit(
        s,
        vec![
            doc(3, "household", Some("v1"), r#"{"a":3}"#, false),
            doc(1, "household", Some("v2"), r#"{"a":1}"#, false),
            doc(2, "person", Some("v1"), "{}", false),
            doc(4, "household", None, "{}", false),
            doc(5, "household", Some("v1"), "{}", true),
        ],
    );
    let ids = |f: &RecordFilter, after, limit| -> Vec<RecordId> {
        s.records_page(f, after, limit)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let all = filter(&["household"], None, false);
    assert_eq!(
        ids(&all, None, 10),
        [id(1), id(3), id(4)],
        "by id, live only"
    );
    assert_eq!(ids(&all, Some(id(1)), 1), [id(3)], "keyset page");
    let v1 = filter(&["household"], Some(&["v1"]), true);
    assert_eq!(
        ids(&v1, None, 10),
        [id(3), id(5)],
        "one village, tombstones too"
    );
    assert!(
        ids(&filter(&[], None, true), None, 10).is_empty(),
        "no entity, nothing"
    );
    assert!(ids(&filter(&["household"], Some(&[]), true), None, 10).is_empty());
    let mut narrow = all.clone();
    narrow.view.village = Some("v2".into());
    assert_eq!(ids(&narrow, None, 10), [id(1)]);
    let r = s.records_page(&narrow, None, 1).unwrap().remove(0);
    assert_eq!(
        (
            r.entity.as_str(),
            r.village.as_deref(),
            r.values_json.as_str(),
            r.deleted
        ),
        ("household", Some("v2"), r#"{"a":1}"#, false)
    );
    let live = s.live_values("household", Some("v1")).unwrap();
    assert_eq!(
        live,
        [(id(3), r#"{"a":3}"#.to_owned())],
        "tombstones are not live"
    );
    assert_eq!(
        s.live_values("household", None).unwrap().len(),
        1,
        "township level"
    );
    assert!(!s.integrity_check().unwrap().is_empty());
}

fn the_feed_page_follows_commits_and_keeps_tombstones<S: HubStorage + ViewStorage>(s: &S) {
    commit(s, vec![doc(1, "household", Some("v1"), "{}", false)]);
    commit(s, vec![doc(2, "household", Some("v2"), "{}", false)]);
    commit(s, vec![doc(1, "household", Some("v1"), "{}", true)]);
    let f = filter(&["household"], None, false);
    let page = s.feed_page(&f, 0, 10).unwrap();
    let got: Vec<(RecordId, bool)> = page.iter().map(|(_, r)| (r.id, r.deleted)).collect();
    assert_eq!(
        got,
        [(id(2), false), (id(1), true)],
        "a changed record moves to the end"
    );
    assert!(page[0].0 < page[1].0);
    let rest = s.feed_page(&f, page[0].0, 10).unwrap();
    assert_eq!(rest.len(), 1, "after a cursor");
    let v2 = filter(&["household"], Some(&["v2"]), false);
    assert_eq!(s.feed_page(&v2, 0, 10).unwrap().len(), 1);
}

fn summaries_are_read_and_rewritten<S: HubStorage + ViewStorage>(s: &S) {
    commit(
        s,
        vec![
            doc(2, "household", Some("v1"), "{}", false),
            doc(1, "task", None, "{}", true),
        ],
    );
    let all = s.all_records_page(None, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [id(1), id(2)]);
    assert_eq!(s.all_records_page(Some(id(1)), 10).unwrap().len(), 1);
    s.set_summaries(&[(id(2), r#"{"x":1}"#.into(), r#"{"x":[]}"#.into())])
        .unwrap();
    let got = s.stored_records(&[id(9), id(2)]).unwrap();
    assert_eq!(got.len(), 1, "unknown ids are left out");
    assert_eq!(
        (got[0].values_json.as_str(), got[0].conflicts_json.as_str()),
        (r#"{"x":1}"#, r#"{"x":[]}"#)
    );
}

/// The [`TaskStorage`] suite.
pub(crate) fn tasks<S: HubStorage + TaskStorage>(s: &S) {
    let spec = |task: &str, issuer: &str| {
        format!(r#"{{"spec":{{"task":"{task}","issuer":"{issuer}"}},"receipts":{{}}}}"#)
    };
    let mut typed = doc(9, "household", Some("v1"), "{}", false);
    typed.typed = vec![
        (10, "size".into()),
        (11, "size".into()),
        (50, "size".into()),
    ];
    commit(
        s,
        vec![
            doc(
                1,
                yibiao_model::task::TASK_ENTITY,
                Some("v2"),
                &spec("t1", "civil"),
                false,
            ),
            doc(
                2,
                yibiao_model::task::TASK_ENTITY,
                Some("v1"),
                &spec("t1", "civil"),
                false,
            ),
            doc(
                3,
                yibiao_model::task::TASK_ENTITY,
                None,
                &spec("t2", "party"),
                false,
            ),
            doc(4, yibiao_model::task::TASK_ENTITY, None, "{}", false),
            typed,
        ],
    );
    let tasks = |t, i| -> Vec<(String, Option<String>)> {
        s.task_docs(t, i)
            .unwrap()
            .into_iter()
            .map(|r| (r.task, r.village))
            .collect()
    };
    assert_eq!(
        tasks(Some("t1"), None),
        [
            ("t1".into(), Some("v1".into())),
            ("t1".into(), Some("v2".into()))
        ]
    );
    assert_eq!(tasks(None, Some("party")), [("t2".into(), None)]);
    assert_eq!(
        tasks(None, None).len(),
        3,
        "a summary without a spec is not indexed"
    );
    let t = &s.task_docs(Some("t2"), None).unwrap()[0];
    assert_eq!((t.id, t.issuer.as_str()), (id(3), "party"));
    assert!(t.json.contains("receipts"));
    let counts = s.typed_counts(0, 20).unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].field.as_str(), counts[0].typed, counts[0].records),
        ("size", 2, 1)
    );
    assert!(s.typed_counts(20, 40).unwrap().is_empty(), "by time");
}

/// The [`StaffStorage`] suite.
pub(crate) fn staff(s: &dyn StaffStorage) {
    let row = |login: &str, role: &str| StaffRow {
        login: login.into(),
        name: "李华".into(),
        role: role.into(),
        department: None,
        password_hash: "$argon2id$x".into(),
        created_ms: 1,
        disabled_ms: None,
    };
    assert!(!s.has_admin_staff().unwrap());
    assert!(s.add_staff(&row("li", "admin")).unwrap());
    assert!(!s.add_staff(&row("li", "clerk")).unwrap(), "a taken login");
    assert!(s.add_staff(&row("an", "clerk")).unwrap());
    assert!(s.has_admin_staff().unwrap());
    assert_eq!(s.staff_list().unwrap().len(), 2);
    let session = SessionRow {
        id_hash: b"s1".to_vec(),
        login: "li".into(),
        csrf: "c".into(),
        created_ms: 1,
        last_seen_ms: 1,
    };
    s.add_session(&session).unwrap();
    s.touch_session(b"s1", 5).unwrap();
    assert_eq!(s.session(b"s1").unwrap().unwrap().last_seen_ms, 5);
    assert!(s.set_staff_password("li", "$argon2id$y").unwrap());
    assert_eq!(
        s.session(b"s1").unwrap(),
        None,
        "a new password ends sessions"
    );
    assert_eq!(s.staff("li").unwrap().unwrap().password_hash, "$argon2id$y");
    s.add_session(&session).unwrap();
    s.end_session(b"s1").unwrap();
    assert_eq!(s.session(b"s1").unwrap(), None);
    assert!(s.disable_staff("li", 9).unwrap());
    assert!(!s.disable_staff("li", 10).unwrap(), "disabled once");
    assert!(
        !s.has_admin_staff().unwrap(),
        "a disabled admin does not count"
    );
    for (at, outcome) in [(1, "wrong"), (2, "wrong"), (3, "ok")] {
        s.note_login(at, "10.0.0.1", "an", outcome).unwrap();
    }
    let f = s.failed_logins("an", "10.0.0.1", 2).unwrap();
    assert_eq!((f.login, f.login_oldest_ms, f.addr), (1, Some(2), 1));
    s.clear_failed_logins("an").unwrap();
    assert_eq!(s.failed_logins("an", "x", 0).unwrap().login, 0);
    for n in 0..3 {
        s.audit(&AuditRow {
            at_ms: n,
            login: "li".into(),
            action: format!("a{n}"),
            target: String::new(),
            addr: "cli".into(),
        })
        .unwrap();
    }
    let log = s.audit_log(2).unwrap();
    assert_eq!(
        log.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
        [2, 1],
        "newest first"
    );
}

/// The [`DeviceSeenStorage`] suite.
pub(crate) fn device_seen<S: AccountStorage + DeviceSeenStorage>(s: &S) {
    s.add_cadre(&cadre("amu", Some("v1"))).unwrap();
    s.add_device(&device("k1", None), b"t1").unwrap();
    s.add_device(&device("k2", None), b"t2").unwrap();
    assert!(
        s.devices_last_seen().unwrap().is_empty(),
        "no device has synced"
    );
    s.touch_device("k1", 100).unwrap();
    s.touch_device("k1", 50).unwrap();
    s.touch_device("nobody", 70).unwrap();
    assert_eq!(
        s.devices_last_seen().unwrap(),
        [("k1".to_owned(), 100)],
        "last seen never moves backwards; unknown keys write nothing"
    );
    s.touch_device("k1", 200).unwrap();
    assert_eq!(s.devices_last_seen().unwrap(), [("k1".to_owned(), 200)]);
}

/// The [`CadreAdminStorage`] suite.
pub(crate) fn cadre_admin<S: AccountStorage + CadreAdminStorage>(s: &S) {
    s.add_cadre(&cadre("amu", Some("v1"))).unwrap();
    s.add_cadre(&cadre("bo", Some("v1"))).unwrap();
    s.add_device(&device("k1", Some("p1")), b"t1").unwrap();
    s.add_enrol_code(b"c1", "amu", 1000, 1).unwrap();
    s.add_enrol_code(b"c2", "bo", 1000, 1).unwrap();
    assert!(!s.disable_cadre("nobody", 10).unwrap());
    assert!(!s.move_cadre("nobody", None, 10).unwrap());
    assert!(s.move_cadre("amu", Some("v2"), 10).unwrap());
    assert_eq!(
        s.cadre("amu").unwrap().unwrap().village.as_deref(),
        Some("v2")
    );
    let k1 = s
        .devices()
        .unwrap()
        .into_iter()
        .find(|d| d.key == "k1")
        .unwrap();
    assert_eq!(k1.revoked_ms, Some(10), "a moved cadre's device is revoked");
    let mut make = |_: &CadreRow| (device("k9", Some("p9")), b"t9".to_vec());
    assert_eq!(
        s.redeem_code(b"c1", 20, &mut make).unwrap(),
        Redeem::Expired,
        "a moved cadre's unused code ends"
    );
    assert!(s.disabled_cadres().unwrap().is_empty());
    assert!(s.disable_cadre("bo", 30).unwrap());
    assert!(s.disable_cadre("bo", 40).unwrap());
    assert_eq!(
        s.disabled_cadres().unwrap(),
        [("bo".to_owned(), 30)],
        "the first disabling time stays"
    );
    assert_eq!(
        s.redeem_code(b"c2", 35, &mut make).unwrap(),
        Redeem::Expired
    );
    assert!(s.move_cadre("amu", None, 50).unwrap(), "to township level");
    assert_eq!(s.cadre("amu").unwrap().unwrap().village, None);
    let k1 = s
        .devices()
        .unwrap()
        .into_iter()
        .find(|d| d.key == "k1")
        .unwrap();
    assert_eq!(k1.revoked_ms, Some(10), "the first revocation stays");
}

/// The [`RecordTableStorage`] suite.
pub(crate) fn records_table<S: HubStorage + RecordTableStorage>(s: &S) {
    let mut conflicted = doc(2, "household", Some("v1"), r#"{"a":1}"#, false);
    conflicted.conflicts_json = r#"{"b":[1,2]}"#.into();
    commit(
        s,
        vec![
            doc(1, "household", Some("v1"), r#"{"a":1,"b":null}"#, false),
            conflicted,
            doc(3, "household", Some("v2"), "{}", false),
            doc(4, "person", Some("v1"), r#"{"a":1,"b":2}"#, false),
            doc(5, "household", Some("v1"), r#"{"a":1,"b":2}"#, true),
        ],
    );
    let all = filter(&["household"], None, false);
    let ids = |t: &TableFilter, offset, limit| -> (Vec<RecordId>, usize) {
        let (page, total) = s.records_table(&all, t, offset, limit).unwrap();
        (page.into_iter().map(|r| r.id).collect(), total)
    };
    let plain = TableFilter::default();
    assert_eq!(ids(&plain, 0, None), (vec![id(1), id(2), id(3)], 3));
    assert_eq!(
        ids(&plain, 1, Some(1)),
        (vec![id(2)], 3),
        "one page, the whole count"
    );
    let desc = TableFilter {
        desc: true,
        ..TableFilter::default()
    };
    assert_eq!(
        ids(&desc, 0, Some(2)),
        (vec![id(3), id(2)], 3),
        "newest first"
    );
    let conflicted_in = |fields: &[&str]| TableFilter {
        conflicted_in: Some(fields.iter().map(|f| (*f).to_owned()).collect()),
        ..TableFilter::default()
    };
    assert_eq!(ids(&conflicted_in(&["b"]), 0, None), (vec![id(2)], 1));
    assert_eq!(ids(&conflicted_in(&["a"]), 0, None), (vec![], 0));
    assert_eq!(
        ids(&conflicted_in(&[]), 0, None),
        (vec![], 0),
        "no fields, none"
    );
    let complete = |fields: &[&str], yes: bool| TableFilter {
        complete: Some((fields.iter().map(|f| (*f).to_owned()).collect(), yes)),
        ..TableFilter::default()
    };
    assert_eq!(
        ids(&complete(&["a", "b"], true), 0, None),
        (vec![id(1)], 1),
        "a JSON null is held"
    );
    assert_eq!(
        ids(&complete(&["a", "b"], false), 0, None),
        (vec![id(2), id(3)], 2)
    );
    assert_eq!(
        ids(&complete(&[], true), 0, None).1,
        3,
        "no required field: all complete"
    );
}

/// The [`FindingStorage`] suite.
pub(crate) fn findings<S: HubStorage + FindingStorage>(s: &S) {
    let entity = yibiao_model::finding::FINDING_ENTITY;
    commit(
        s,
        vec![
            doc(7, entity, Some("v1"), r#"{"spec":{}}"#, false),
            doc(3, entity, None, r#"{"spec":{"x":1}}"#, false),
            doc(5, "household", Some("v1"), "{}", false),
        ],
    );
    let rows = s.findings().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        [id(3), id(7)],
        "findings only, by id"
    );
    assert_eq!(rows[0].village, None);
    assert_eq!(rows[0].json, r#"{"spec":{"x":1}}"#);
    assert_eq!(rows[1].village.as_deref(), Some("v1"));
}

/// The [`BlobRefStorage`] suite.
pub(crate) fn blob_refs<S: HubStorage + BlobRefStorage>(s: &S) {
    let hash = "ab".repeat(32);
    let photo = format!(r#"{{"photo":{{"sha256":"{hash}","mime":"image/jpeg"}},"name":"x"}}"#);
    let mut conflicted = doc(2, "household", None, "{}", false);
    conflicted.conflicts_json = format!(r#"{{"ids":[[{{"sha256":"{hash}"}}],[]]}}"#);
    commit(
        s,
        vec![
            doc(1, "household", Some("v1"), &photo, true),
            conflicted,
            doc(3, "household", Some("v1"), r#"{"name":"abab"}"#, false),
        ],
    );
    let mut refs = s.blob_references(&hash).unwrap();
    refs.sort_by_key(|r| r.record);
    let got: Vec<_> = refs
        .iter()
        .map(|r| (r.record, r.field.as_str(), r.village.as_deref(), r.deleted))
        .collect();
    assert_eq!(
        got,
        [
            (id(1), "photo", Some("v1"), true),
            (id(2), "ids", None, false)
        ],
        "values and conflicts, tombstones included"
    );
    assert!(s.blob_references(&"cd".repeat(32)).unwrap().is_empty());

    // A finding: its photos and a resolution's evidence are plain references (bare or
    // `sha256:`), named with the departments it was handed to; a text field that only
    // holds the hash as text is no reference.
    let other = "ef".repeat(32);
    let finding = format!(
        r#"{{"spec":{{"photos":["sha256:{other}"]}},"steps":[
            {{"kind":{{"hand_over":{{"unit":{{"department":"public_services"}},"deadline_ms":1}}}}}},
            {{"kind":{{"resolve":{{"unit":{{"department":"public_services"}},"note":"n","evidence":["{other}"]}}}}}}]}}"#
    );
    commit(
        s,
        vec![
            doc(
                4,
                yibiao_model::finding::FINDING_ENTITY,
                Some("v1"),
                &finding,
                false,
            ),
            doc(
                5,
                "household",
                Some("v1"),
                &format!(r#"{{"note":"{other}"}}"#),
                false,
            ),
        ],
    );
    let refs = s.blob_references(&other).unwrap();
    let got: Vec<_> = refs
        .iter()
        .map(|r| (r.record, r.field.as_str(), r.handed_to.clone()))
        .collect();
    let ps = vec!["public_services".to_owned()];
    assert_eq!(
        got,
        [(id(4), "evidence", ps.clone()), (id(4), "photos", ps)],
        "a finding's photo and evidence; text is no reference"
    );
}

/// The [`TrailStorage`] suite.
pub(crate) fn trail<S: HubStorage + AccountStorage + TrailStorage>(s: &S) {
    s.add_cadre(&cadre("amu", Some("v1"))).unwrap();
    let mut d1 = device("d1", None);
    d1.key = "d1".into();
    s.add_device(&d1, b"t1").unwrap();
    let mut one = doc(1, "household", Some("v1"), "{}", false);
    one.typed = vec![(100, "a".into()), (300, "b".into())];
    let mut two = doc(2, "household", Some("v1"), "{}", false);
    two.typed = vec![(50, "a".into())];
    commit(s, vec![one, two, doc(3, "household", None, "{}", false)]);
    let marks = s.last_changes(&[id(1), id(2), id(3), id(9)]).unwrap();
    assert_eq!(marks.len(), 2, "records never typed into are absent");
    assert_eq!(marks[&id(1)].at_ms, 300, "the newest typed value");
    assert_eq!(marks[&id(1)].by, "阿木", "the cadre's name");
    assert_eq!(marks[&id(2)].at_ms, 50);
    assert!(s.last_changes(&[]).unwrap().is_empty());
}
