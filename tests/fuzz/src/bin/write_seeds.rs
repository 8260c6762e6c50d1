//! Writes the committed seeds of every fuzz target under `tests/fuzz/seeds/<target>/`,
//! from real data made with the project's own types: sync messages as a phone and the
//! server send them, pushes of real automerge changes onto the fuzz hub's stored
//! documents, the Baru schema, and the JSON bodies of every JSON route.
//!
//! Built by `cargo fuzz build` with the targets (same flags, so nothing is compiled
//! twice); run `tests/fuzz/target/x86_64-unknown-linux-gnu/release/write_seeds` after a
//! format change. Deterministic: fixed ids, actors and times. Every seed is run through
//! its target once after writing, so a seed that breaks an invariant is caught here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a tool; failures are bugs"
)]

use std::path::{Path, PathBuf};

use automerge::ActorId;
use yibiao_fuzz::doc_merge::{
    self, CADRE, DECLARE_HEADS, NEW_ID, NOW, OTHER_VILLAGE, PHONE, TOWNSHIP, Target,
};
use yibiao_fuzz::http_json::{self, Route};
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::task::{DoneHow, Receipt, put_receipt};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Value};
use yibiao_sync::protocol::{
    PullDoc, PushDoc, Refusal, RefusalCode, SyncRequest, SyncResponse, WireId, heads_to_wire,
};

fn out_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap();
}

fn main() {
    sync_request();
    doc_merge();
    schema_toml();
    http_json();
    // Each seed must pass its own target: a seed that breaks an invariant is a bug here.
    let targets: [(&str, fn(&[u8])); 4] = [
        ("sync_request", yibiao_fuzz::sync_request::run),
        ("doc_merge", yibiao_fuzz::doc_merge::run),
        ("schema_toml", yibiao_fuzz::schema_toml::run),
        ("http_json", yibiao_fuzz::http_json::run),
    ];
    for (target, run) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            run(&std::fs::read(&path).unwrap());
        }
        println!("{target}: seeds written and run");
    }
}

/// A household made on the fuzz phone.
fn new_household(id: [u8; 16], village: &str, edits: &[FieldEdit]) -> Record {
    let scope = Scope {
        township: "baru".into(),
        village: Some(village.into()),
    };
    Record::create(
        RecordId::from_bytes(id),
        ActorId::from([0xf0; 16]),
        "household",
        &scope,
        edits,
        &doc_merge::phone_author(),
        NOW,
    )
    .unwrap()
}

fn household_edits() -> Vec<FieldEdit> {
    vec![
        FieldEdit::Set("household_head".into(), Value::Text("吉克阿依".into())),
        FieldEdit::Set("household_size".into(), Value::Integer(5)),
        FieldEdit::Set("housing_safe".into(), Value::Boolean(true)),
        FieldEdit::Set("phone".into(), Value::Text("13800000000".into())),
        FieldEdit::Set("notes".into(), Value::Text("上山路远, 信号弱".into())),
    ]
}

fn sync_request() {
    let dir = out_dir("sync_request");
    let record = new_household(NEW_ID, "tujiang", &household_edits());
    let request = SyncRequest {
        device: PHONE.into(),
        cursor: 17,
        push: vec![PushDoc {
            record: WireId::from(record.id()),
            heads: heads_to_wire(&record.heads()),
            bytes: record.save_for_wire(),
        }],
        max_response_bytes: 64 * 1024,
        schema: None,
    };
    let empty = SyncRequest {
        device: PHONE.into(),
        cursor: 0,
        push: Vec::new(),
        max_response_bytes: 64 * 1024,
        schema: None,
    };
    let response = SyncResponse {
        accepted: vec![WireId::from(record.id())],
        refused: vec![Refusal {
            record: WireId([8; 16]),
            code: RefusalCode::InvalidValue,
            message: "field `household_size` must be at most 30, got 31".into(),
            reason: yibiao_model::messages::Message::new("above_max")
                .with("field", "household_size")
                .with("max", "30"),
        }],
        docs: vec![PullDoc {
            record: WireId::from(record.id()),
            heads: heads_to_wire(&record.heads()),
            bytes: record.save_for_wire(),
        }],
        cursor: 18,
        more: true,
        server_time_ms: NOW,
        schema: None,
    };
    // Mode 0: the wire body as sent; mode 1: the message inside (wrapped by the target).
    for (name, body) in [
        ("push", request.encode()),
        ("pull", empty.encode()),
        ("response", response.encode()),
    ] {
        let mut wire = vec![0];
        wire.extend(&body);
        write(&dir, &format!("{name}-wire"), &wire);
        let mut raw = vec![1];
        raw.extend(zstd::bulk::decompress(&body[4..], 1 << 24).unwrap());
        write(&dir, &format!("{name}-message"), &raw);
    }
}

/// A copy of a stored fixture the phone edits, with its heads before.
fn phone_copy(target: Target) -> (Record, Vec<automerge::ChangeHash>) {
    let stored = doc_merge::stored(target).unwrap();
    let copy = Record::load(stored.id(), ActorId::from([0xf1; 16]), &[stored.save()]).unwrap();
    let before = copy.heads();
    (copy, before)
}

fn doc_merge() {
    let dir = out_dir("doc_merge");
    let heads = DECLARE_HEADS;
    let new = new_household(NEW_ID, "tujiang", &household_edits());
    write(
        &dir,
        "new-household",
        &doc_merge::input(Target::New, heads, &new.save_for_wire()),
    );
    write(
        &dir,
        "new-household-compressed",
        &doc_merge::input(Target::New, heads, &new.save()),
    );
    let far = new_household(NEW_ID, OTHER_VILLAGE, &household_edits());
    write(
        &dir,
        "new-household-township",
        &doc_merge::input(Target::New, heads | TOWNSHIP, &far.save_for_wire()),
    );

    let author = doc_merge::phone_author();
    let (mut edited, before) = phone_copy(Target::Household);
    let edits = [
        FieldEdit::Set("household_size".into(), Value::Integer(6)),
        FieldEdit::Set("dibao_status".into(), Value::Choice("none".into())),
        FieldEdit::Unset("household_head".into()),
    ];
    edited.apply_edits(&edits, &author, NOW + 1).unwrap();
    write(
        &dir,
        "edit-delta",
        &doc_merge::input(Target::Household, heads, &edited.save_after(&before)),
    );
    write(
        &dir,
        "edit-whole",
        &doc_merge::input(Target::Household, heads, &edited.save()),
    );
    // The delta for an id the hub does not hold: it asks for the whole record.
    write(
        &dir,
        "edit-missing-history",
        &doc_merge::input(Target::New, heads, &edited.save_after(&before)),
    );

    let (mut deleted, before) = phone_copy(Target::Household);
    deleted.set_deleted(true, &author, NOW + 2).unwrap();
    write(
        &dir,
        "delete",
        &doc_merge::input(Target::Household, heads, &deleted.save_after(&before)),
    );

    // Two phones of the village edit one field apart: the push carries both (a conflict).
    let (mut a, before) = phone_copy(Target::Household);
    let mut b = Record::load(a.id(), ActorId::from([0xf2; 16]), &[a.save()]).unwrap();
    a.apply_edits(
        &[FieldEdit::Set("household_size".into(), Value::Integer(3))],
        &author,
        NOW + 3,
    )
    .unwrap();
    b.apply_edits(
        &[FieldEdit::Set("household_size".into(), Value::Integer(7))],
        &author,
        NOW + 4,
    )
    .unwrap();
    a.merge_bytes(&b.save()).unwrap();
    write(
        &dir,
        "conflict",
        &doc_merge::input(Target::Household, heads, &a.save_after(&before)),
    );

    doc_merge_others(&dir);
}

/// Pushes to the task, to another village's record, and by a stranger.
fn doc_merge_others(dir: &Path) {
    let heads = DECLARE_HEADS;
    let author = doc_merge::phone_author();
    let (mut task, before) = phone_copy(Target::Task);
    let receipt = Receipt {
        cadre: Some(CADRE.into()),
        delivered_ms: Some(NOW + 5),
        opened_ms: Some(NOW + 6),
        done_ms: Some(NOW + 7),
        done: Some(DoneHow::Marked),
        note: Some("已全部核对".into()),
    };
    put_receipt(&mut task, PHONE, &receipt, &author, NOW + 7).unwrap();
    write(
        dir,
        "task-receipt",
        &doc_merge::input(Target::Task, heads, &task.save_after(&before)),
    );

    let (mut other, before) = phone_copy(Target::Other);
    other
        .apply_edits(
            &[FieldEdit::Set("household_size".into(), Value::Integer(2))],
            &author,
            NOW + 8,
        )
        .unwrap();
    write(
        dir,
        "other-village",
        &doc_merge::input(Target::Other, heads, &other.save_after(&before)),
    );
    write(
        dir,
        "other-village-township",
        &doc_merge::input(Target::Other, heads | TOWNSHIP, &other.save_after(&before)),
    );

    // A change signed as another cadre and phone (refused: not the token's).
    let stranger = Author {
        cadre: CadreId::new("jike").unwrap(),
        device: DeviceId::new("dev-stranger").unwrap(),
    };
    let (mut forged, before) = phone_copy(Target::Household);
    forged
        .apply_edits(
            &[FieldEdit::Set("housing_safe".into(), Value::Boolean(false))],
            &stranger,
            NOW + 9,
        )
        .unwrap();
    write(
        dir,
        "forged-author",
        &doc_merge::input(Target::Household, heads, &forged.save_after(&before)),
    );
}

fn schema_toml() {
    let dir = out_dir("schema_toml");
    let baru = include_str!("../../../../examples/schema/baru.toml");
    write(&dir, "baru.toml", baru.as_bytes());
    // The smallest schema that loads: one village, one field, one entity, one form.
    let small = r#"format = 1
name = "mini"
revision = 1

[township]
id = "baru"
zh = "巴汝镇"
en = "Baru"

[villages]
tujiang = { zh = "土匠村", en = "Tujiang" }

[fields.household_size]
zh = "家庭人口"
en = "Household size"
type = "integer"
min = 1
max = 30

[entities.household]
zh = "户"
en = "Household"
fields = ["household_size"]

[forms.count]
zh = "人口"
en = "Count"
entity = "household"
fields = ["household_size"]
required = ["household_size"]

[departments.stats]
zh = "统计"
en = "Statistics"
forms = ["count"]
villages = ["*"]
"#;
    yibiao_model::Schema::from_toml_str(small, "mini.toml").expect("the small schema loads");
    write(&dir, "mini.toml", small.as_bytes());
}

fn http_json() {
    let dir = out_dir("http_json");
    let bodies: &[(Route, &str, serde_json::Value)] = &[
        (
            Route::Enrol,
            "enrol",
            serde_json::json!({"code": "K7PM-Q2XD", "device": "dev-0b7c"}),
        ),
        (
            Route::TaskByTownship,
            "task-villages",
            serde_json::json!({"title": "低保户核查", "instructions": "核对每户人口和收入",
                "form": "dibao_check", "due": "2099-12-31", "villages": ["tujiang", "heping"]}),
        ),
        (
            Route::TaskByTownship,
            "task-records",
            serde_json::json!({"title": "复核", "form": "dibao_check", "due": "2099-12-31T18:00:00+08:00",
                "records": [RecordId::from_bytes(NEW_ID).to_string()]}),
        ),
        (
            Route::TaskByDepartment,
            "task-department",
            serde_json::json!({"title": "低保户核查", "form": "dibao_check", "due": "2099-12-31", "villages": ["*"]}),
        ),
        (
            Route::NewCadre,
            "cadre",
            serde_json::json!({"id": "jike.ayi", "name": "吉克阿依", "village": "tujiang"}),
        ),
        (
            Route::NewCadre,
            "cadre-township",
            serde_json::json!({"id": "wang", "name": "王", "village": null}),
        ),
        (
            Route::EnrolCode,
            "code",
            serde_json::json!({"ttl_minutes": 60}),
        ),
        (Route::EnrolCode, "code-empty", serde_json::json!({})),
        (
            Route::DepartmentToken,
            "department-token",
            serde_json::json!({"name": "民政 Excel"}),
        ),
    ];
    for (route, name, body) in bodies {
        write(
            &dir,
            name,
            &http_json::input(*route, &serde_json::to_vec(body).unwrap()),
        );
    }
    write(
        &dir,
        "code-no-body",
        &http_json::input(Route::EnrolCode, b""),
    );
}
