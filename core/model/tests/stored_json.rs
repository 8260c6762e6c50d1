//! The JSON shapes yibiao stores and serves, pinned: the summaries the server keeps for
//! department reads (`values_json`, `conflicts_json`), task documents' summary and their
//! spec and receipts as phones and the server exchange them.

use automerge::ActorId;
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::task::{DoneHow, Receipt, TaskSpec, new_task_doc, parse_due, task_json};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, Schema, Value};

fn author(cadre: &str, device: &str) -> Author {
    Author {
        cadre: CadreId::new(cadre).expect("cadre"),
        device: DeviceId::new(device).expect("device"),
    }
}

fn scope() -> Scope {
    Scope {
        township: "baru".into(),
        village: Some("tujiang".into()),
    }
}

#[test]
fn a_records_value_and_conflict_summaries_keep_their_shape() {
    let schema = Schema::baru_example();
    let id = RecordId::from_bytes([7; 16]);
    let mut a = Record::create(
        id,
        ActorId::from([0xaa; 16]),
        "household",
        &scope(),
        &[
            FieldEdit::Set("household_head".into(), Value::Text("阿木日哈".into())),
            FieldEdit::Set("household_size".into(), Value::Integer(5)),
        ],
        &author("amu", "phone-a"),
        1_795_536_000_000,
    )
    .expect("create");
    let mut b = Record::load(id, ActorId::from([0xbb; 16]), &[a.save()]).expect("load");
    a.apply_edits(
        &[FieldEdit::Set("household_size".into(), Value::Integer(6))],
        &author("amu", "phone-a"),
        1_795_536_060_000,
    )
    .expect("edit a");
    b.apply_edits(
        &[FieldEdit::Set("household_size".into(), Value::Integer(7))],
        &author("jiaba", "phone-b"),
        1_795_536_120_000,
    )
    .expect("edit b");
    a.merge_bytes(&b.save()).expect("merge");
    let values: serde_json::Value =
        serde_json::from_str(&a.values_json(&schema)).expect("values JSON");
    let conflicts: serde_json::Value =
        serde_json::from_str(&a.conflicts_json(&schema)).expect("conflicts JSON");
    insta::assert_json_snapshot!("record_values_json", values);
    insta::assert_json_snapshot!("record_conflicts_json", conflicts);
}

#[test]
fn a_task_summary_spec_and_receipt_keep_their_shape() {
    let spec = TaskSpec {
        task: "task-1".into(),
        title: "低保复核".into(),
        instructions: "核对每户收入".into(),
        form: "dibao_check".into(),
        due: "2026-11-25".into(),
        due_ms: parse_due("2026-11-25").expect("due"),
        issuer: "civil_affairs".into(),
        targets: Some(vec![RecordId::from_bytes([7; 16])]),
    };
    let receipt = Receipt {
        cadre: Some("amu".into()),
        delivered_ms: Some(1_795_536_000_000),
        opened_ms: Some(1_795_536_060_000),
        done_ms: Some(1_795_536_120_000),
        done: Some(DoneHow::Marked),
        note: Some("已入户核实".into()),
    };
    insta::assert_json_snapshot!("task_spec", spec);
    insta::assert_json_snapshot!("task_receipt", receipt);
    let doc = new_task_doc(
        RecordId::from_bytes([9; 16]),
        ActorId::from([0x5e; 16]),
        &spec,
        "baru",
        Some("tujiang"),
        &author("server", "server"),
        1_795_536_000_000,
    )
    .expect("task doc");
    let summary: serde_json::Value = serde_json::from_str(&task_json(&doc)).expect("task JSON");
    insta::assert_json_snapshot!("task_summary_json", summary);
}
