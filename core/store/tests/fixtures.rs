//! A phone store written by today's release, kept as a binary fixture, must open and read
//! the same in every later build: phones in the field upgrade the app, not their data.
//!
//! `tests/fixtures/phone-store-v{STORE_VERSION}.sqlite` is written by the ignored test
//! below (`cargo test -p yibiao-store --test fixtures -- --ignored write`) when a release
//! bumps the store version; released fixtures are never rewritten.

use std::path::PathBuf;
use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_store::{Credentials, Query, STORE_VERSION, Store, StoreConfig};

fn fixture(version: i64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(format!("phone-store-v{version}.sqlite"))
}

fn open(path: &std::path::Path, cadre: &str) -> Store {
    Store::open_with(
        path,
        Arc::new(Schema::baru_example()),
        CadreId::new(cadre).expect("cadre"),
        Arc::new(ManualClock::new(1_795_536_000_000)),
        StoreConfig::default(),
    )
    .expect("open")
}

#[test]
#[ignore = "writes the fixture of a new store version; run by hand at release"]
fn write_phone_store_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_path, b_path) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    let a = open(&a_path, "amu");
    let b = open(&b_path, "jiaba");
    let text = |s: &str| Value::Text(s.into());
    let head = |s: &str| FieldEdit::Set("household_head".into(), text(s));
    let size = |n: i64| FieldEdit::Set("household_size".into(), Value::Integer(n));
    let kept = a
        .create("household", Some("tujiang"), &[head("阿木日哈"), size(5)])
        .expect("create");
    let gone = a
        .create("household", Some("tujiang"), &[head("吉巴"), size(3)])
        .expect("create");
    a.create("household", Some("tujiang"), &[head("沙马"), size(4)])
        .expect("create");
    a.delete(gone).expect("delete");
    b.merge(kept, &a.export(kept).expect("export"))
        .expect("merge");
    a.update(kept, &[size(6)]).expect("edit a");
    b.update(kept, &[size(7)]).expect("edit b");
    a.merge(kept, &b.export(kept).expect("export"))
        .expect("conflict");
    a.set_credentials(&Credentials {
        server_url: "https://yibiao.example.gov.cn".into(),
        token: "ybd_fixture".into(),
    })
    .expect("credentials");
    drop((a, b));
    std::fs::copy(&a_path, fixture(STORE_VERSION)).expect("write the fixture");
}

#[test]
fn the_phone_store_of_today_opens_reads_and_takes_edits() {
    let source = fixture(STORE_VERSION);
    assert!(
        source.exists(),
        "no fixture for store version {STORE_VERSION}: write one with the ignored test in this file"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.sqlite");
    std::fs::copy(&source, &path).expect("copy");
    let store = open(&path, "amu");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let live = store.query(&Query::default()).expect("query");
    assert_eq!(live.records.len(), 2, "two live households");
    let all = store
        .query(&Query {
            include_deleted: true,
            ..Query::default()
        })
        .expect("query");
    assert_eq!(
        all.records.len(),
        3,
        "the deleted one is kept as a tombstone"
    );
    let conflicted = store
        .query(&Query {
            conflicted_only: true,
            ..Query::default()
        })
        .expect("query");
    assert_eq!(conflicted.records.len(), 1);
    let id = conflicted.records[0].id;
    let conflicts = store.conflicts(id).expect("conflicts");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field, "household_size");
    let mut cadres: Vec<_> = conflicts[0]
        .values
        .iter()
        .map(|v| v.by.cadre.clone().unwrap_or_default())
        .collect();
    cadres.sort();
    assert_eq!(cadres, ["amu", "jiaba"]);
    let view = store.get(id).expect("get");
    assert_eq!(
        view.value("household_head"),
        Some(&serde_json::json!("阿木日哈"))
    );
    assert_eq!(
        store
            .credentials()
            .expect("credentials")
            .map(|c| c.server_url),
        Some("https://yibiao.example.gov.cn".to_owned())
    );
    assert_eq!(
        store.stats().expect("stats").pending,
        3,
        "nothing was ever synced"
    );
    // And it takes new work.
    store
        .resolve(id, "household_size", Some(Value::Integer(6)))
        .expect("resolve");
    assert!(store.conflicts(id).expect("conflicts").is_empty());
}
