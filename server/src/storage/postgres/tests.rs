//! The PostgreSQL backend against the conformance suites and the feed property, on the
//! real PostgreSQL that `scripts/with-postgres.sh` starts (`YIBIAO_TEST_PG`).
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::PostgresStorage;

pub(crate) use yibiao_testkit::pg::test_url;

static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty storage in a schema of its own (`search_path`), so tests share one
/// database without seeing each other's rows.
pub(crate) fn fresh(url: &str) -> PostgresStorage {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        SCHEMAS.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .unwrap();
    let mut config = postgres::Config::from_str(url).unwrap();
    config.options(&format!("-c search_path={name}"));
    PostgresStorage::open_config(config).unwrap()
}

#[test]
fn postgres_storage_passes_every_conformance_suite() {
    let Some(url) = test_url() else { return };
    crate::storage::conformance::run_all(|| fresh(&url));
}

#[test]
fn a_second_open_finds_the_schema_migrated_and_keeps_rows() {
    let Some(url) = test_url() else { return };
    use crate::storage::AccountStorage;
    let s = fresh(&url);
    s.set_admin_token(b"x", 1).unwrap();
    let schema: String = s
        .conn()
        .unwrap()
        .query_one("SELECT current_schema()", &[])
        .unwrap()
        .get(0);
    let mut config = postgres::Config::from_str(&url).unwrap();
    config.options(&format!("-c search_path={schema}"));
    let again = PostgresStorage::open_config(config).unwrap();
    assert!(
        again.is_admin_token(b"x").unwrap(),
        "reopening migrated nothing away"
    );
}

/// The feed trap (ADR 0010): writers take positions and then sleep inside their
/// transaction for a random time (some abort), while pagers page "after cursor" as phones
/// do. Every pager must see every committed row exactly once and in position order: no
/// cursor may pass a row that became visible later.
#[test]
fn feed_positions_never_pass_a_row_committed_late() {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    use yibiao_model::RecordId;
    use yibiao_sync::hub::{DeviceScope, HubStorage};

    let Some(url) = test_url() else { return };
    let seed: u64 = std::env::var("YIBIAO_FEED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let (writers, commits, pagers) = (4, 25, 3);
    let storage = Arc::new(fresh(&url));
    let committed = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let write_threads: Vec<_> = (0..writers)
        .map(|w: u64| {
            let (storage, committed) = (storage.clone(), committed.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ w);
                for n in 0..commits {
                    let mut id = [0u8; 16];
                    id[0] = w as u8;
                    id[1] = n as u8;
                    let id = RecordId::from_bytes(id);
                    let mut c = storage.conn().unwrap();
                    let mut tx = c.transaction().unwrap();
                    super::hub::assign_positions(&mut tx, &[(id, None)]).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(rng.u64(0..6)));
                    if rng.u8(0..10) == 0 {
                        tx.rollback().unwrap(); // a gap: the position is never used
                    } else {
                        tx.commit().unwrap();
                        committed.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    let page_threads: Vec<_> = (0..pagers)
        .map(|_| {
            let (storage, done) = (storage.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut cursor = 0;
                loop {
                    // Read `done` before the page: a page that finds nothing after the
                    // writers finished has seen everything.
                    let finished = done.load(Ordering::SeqCst);
                    let page = storage
                        .feed_after(&DeviceScope::Township, cursor, 3)
                        .unwrap();
                    for e in &page {
                        assert!(e.seq > cursor, "positions go up");
                        cursor = e.seq;
                        seen.push(e.id);
                    }
                    if page.is_empty() && finished {
                        return seen;
                    }
                }
            })
        })
        .collect();
    for t in write_threads {
        t.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let committed = committed.lock().unwrap().clone();
    assert!(committed.len() > writers as usize * commits / 2);
    for t in page_threads {
        let seen = t.join().unwrap();
        let unique: BTreeSet<RecordId> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a pager saw a row twice (seed {seed})"
        );
        let missed: Vec<_> = committed.difference(&unique).collect();
        assert!(
            missed.is_empty(),
            "a pager's cursor passed {} rows committed late (seed {seed}): {missed:?}",
            missed.len()
        );
        assert_eq!(
            unique, committed,
            "a pager saw a row that was never committed"
        );
    }
}

/// Two server processes (two hubs with their own caches and pools) on one database: a
/// phone edits a record through one, a second phone the same record through the other,
/// then the first again through its stale cache. Nothing is lost: the stored document and
/// the read model hold every edit, and both phones converge.
#[test]
fn two_hubs_on_one_database_never_merge_onto_a_stale_cache() {
    use std::sync::Arc;

    use yibiao_model::clock::ManualClock;
    use yibiao_model::record::FieldEdit;
    use yibiao_model::{CadreId, Schema, Value};
    use yibiao_store::Store;
    use yibiao_sync::session::SyncOptions;
    use yibiao_sync::{DeviceScope, Hub, HubConfig};
    use yibiao_testkit::transport::InProcess;

    use crate::storage::{RecordFilter, ViewStorage};

    let Some(url) = test_url() else { return };
    let first = fresh(&url);
    let schema_name: String = first
        .conn()
        .unwrap()
        .query_one("SELECT current_schema()", &[])
        .unwrap()
        .get(0);
    let mut config = postgres::Config::from_str(&url).unwrap();
    config.options(&format!("-c search_path={schema_name}"));
    let second = PostgresStorage::open_config(config).unwrap();
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1_795_536_000_000));
    let hub = |s: PostgresStorage| {
        Arc::new(Hub::new(
            schema.clone(),
            Arc::new(s),
            clock.clone(),
            HubConfig::default(),
        ))
    };
    let (a, b) = (hub(first), hub(second));
    let phone = |cadre: &str| {
        Store::open_in_memory(schema.clone(), CadreId::new(cadre).unwrap(), clock.clone()).unwrap()
    };
    let (p1, p2) = (phone("amu"), phone("ayi"));
    let village = DeviceScope::Village("tujiang".into());
    let sync = |store: &Store, hub: &Arc<Hub<Arc<PostgresStorage>>>, key: &str| {
        let link = InProcess::for_store(hub.clone(), key, village.clone(), store);
        let r = yibiao_store::sync(store, &link, &SyncOptions::default(), &mut |_| {}).unwrap();
        assert!(r.complete && r.refused.is_empty(), "{r:?}");
    };
    let id = p1
        .create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set("household_size".into(), Value::Integer(3))],
        )
        .unwrap();
    sync(&p1, &a, "d1");
    sync(&p2, &b, "d2");
    p2.set(id, "household_head", Value::Text("阿依".into()))
        .unwrap();
    sync(&p2, &b, "d2");
    // Hub `a` still caches the record without p2's edit.
    p1.set(id, "household_size", Value::Integer(5)).unwrap();
    sync(&p1, &a, "d1");
    sync(&p2, &b, "d2");
    let stored = a.storage().stored_records(&[id]).unwrap().remove(0);
    let values: serde_json::Value = serde_json::from_str(&stored.values_json).unwrap();
    assert_eq!(values["household_size"], 5, "{values}");
    assert_eq!(
        values["household_head"], "阿依",
        "an edit through the other process was lost: {values}"
    );
    for (p, name) in [(&p1, "p1"), (&p2, "p2")] {
        let v = p.get(id).unwrap();
        let got: std::collections::BTreeMap<_, _> =
            v.fields.into_iter().map(|f| (f.field, f.value)).collect();
        assert_eq!(
            got.get("household_head"),
            Some(&serde_json::json!("阿依")),
            "{name}"
        );
        assert_eq!(
            got.get("household_size"),
            Some(&serde_json::json!(5)),
            "{name}"
        );
    }
    let page = b
        .storage()
        .feed_page(
            &RecordFilter {
                view: yibiao_model::schema::ViewFilter {
                    entities: vec!["household".into()],
                    ..Default::default()
                },
                include_deleted: true,
            },
            0,
            10,
        )
        .unwrap();
    assert_eq!(page.len(), 1, "one feed row per record");
}

/// The commit-time half of the above: a batch merged onto heads that are no longer the
/// stored ones is refused as stale, whole, and one merged onto the stored heads commits.
#[test]
fn a_commit_on_a_stale_base_is_refused_whole() {
    use automerge::ChangeHash;
    use yibiao_model::RecordId;
    use yibiao_sync::hub::{DocWrite, HubBatch, HubStorage};

    let Some(url) = test_url() else { return };
    let s = fresh(&url);
    let id = RecordId::from_bytes([7; 16]);
    let write = |h: u8| DocWrite {
        id,
        entity: "household".into(),
        village: None,
        chunk: vec![h],
        snapshot: false,
        heads: vec![ChangeHash([h; 32])],
        values_json: "{}".into(),
        conflicts_json: "{}".into(),
        deleted: false,
        typed: Vec::new(),
    };
    let batch = |h: u8, base: Vec<ChangeHash>| HubBatch {
        device: "d".into(),
        docs: vec![write(h)],
        base_heads: vec![(id, base)],
        ..HubBatch::default()
    };
    s.commit(&batch(1, Vec::new())).unwrap();
    let e = s.commit(&batch(2, Vec::new())).unwrap_err();
    assert!(e.is_stale(), "a record new to the hub exists already: {e}");
    let e = s.commit(&batch(2, vec![ChangeHash([9; 32])])).unwrap_err();
    assert!(e.is_stale(), "{e}");
    assert_eq!(
        s.load(id).unwrap().unwrap().len(),
        1,
        "a stale batch wrote nothing"
    );
    s.commit(&batch(2, vec![ChangeHash([1; 32])])).unwrap();
    assert_eq!(s.stored_heads(id).unwrap(), Some(vec![ChangeHash([2; 32])]));
}
