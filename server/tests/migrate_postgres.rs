//! `yibiao-server migrate --to postgres://...` on a real PostgreSQL (`YIBIAO_TEST_PG`,
//! from `scripts/with-postgres.sh`): phones sync on SQLite, the data directory is
//! migrated, and the same phones sync on against PostgreSQL with their cursors, without
//! downloading anything again.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::process::{Command, Output};
use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::record::FieldEdit;
use yibiao_model::{CadreId, Schema, Value};
use yibiao_server::blobs::{BlobHash, BlobStore, Held};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::state::AppState;
use yibiao_server::storage::{
    AccountStorage, CadreRow, DepartmentStorage, DepartmentTokenRow, PostgresStorage,
};
use yibiao_store::Store;
use yibiao_sync::session::SyncOptions;
use yibiao_sync::{DeviceScope, Hub, HubConfig, HubStorage, Transport};
use yibiao_testkit::pg::{fresh_schema, test_url};
use yibiao_testkit::transport::InProcess;

fn migrate(data: &std::path::Path, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibiao-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["migrate", "--to", to])
        .env_remove("YIBIAO_DATABASE")
        .env_remove("YIBIAO_CONFIG")
        .output()
        .unwrap()
}

fn sync(store: &Store, link: &dyn Transport) -> yibiao_sync::session::SyncReport {
    let r = yibiao_store::sync(store, link, &SyncOptions::default(), &mut |_| {}).unwrap();
    assert!(r.complete && r.refused.is_empty(), "{r:?}");
    r
}

#[test]
fn phones_sync_on_after_a_migration_to_postgres_without_downloading_again() {
    let Some(url) = test_url() else { return };
    let target = fresh_schema(&url, &format!("mig{}", std::process::id())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let schema = Arc::new(Schema::baru_example());
    let clock = Arc::new(ManualClock::new(1_795_536_000_000));
    let phone = |cadre: &str| {
        Store::open(
            dir.path().join(format!("{cadre}.db")),
            schema.clone(),
            CadreId::new(cadre).unwrap(),
        )
        .unwrap()
    };
    let (p1, p2) = (phone("amu"), phone("ayi"));
    let village = DeviceScope::Village("tujiang".into());
    let mut ids = Vec::new();
    let photo: Vec<u8> = b"\xFF\xD8\xFF\xE0"
        .iter()
        .copied()
        .chain((0..300_000u32).map(|i| (i % 251) as u8))
        .collect();
    let photo_hash = BlobHash::of(&photo);
    let other: Vec<u8> = photo.iter().rev().copied().collect();
    {
        let config = Config::resolve(
            Overrides {
                data_dir: Some(data.clone()),
                ..Overrides::default()
            },
            FileConfig::default(),
        )
        .unwrap();
        let state = AppState::open(config, (*schema).clone()).unwrap();
        state
            .storage
            .add_cadre(&CadreRow {
                id: "amu".into(),
                name: "阿木".into(),
                village: Some("tujiang".into()),
                created_ms: 1,
            })
            .unwrap();
        state
            .storage
            .add_department_token(
                &DepartmentTokenRow {
                    key: "k".into(),
                    department: "public_services".into(),
                    name: "民政".into(),
                    created_ms: 1,
                    revoked_ms: None,
                },
                b"hash",
            )
            .unwrap();
        for n in 0..5 {
            ids.push(
                p1.create(
                    "household",
                    Some("tujiang"),
                    &[FieldEdit::Set(
                        "household_size".into(),
                        Value::Integer(n + 1),
                    )],
                )
                .unwrap(),
            );
        }
        for (store, key) in [(&p1, "d1"), (&p2, "d2"), (&p1, "d1")] {
            let link = InProcess::for_store(state.hub.clone(), key, village.clone(), store);
            sync(store, &link);
        }
        assert_eq!(p2.sync_status().unwrap().pending, 0);
        // A photo in the data directory's files, and an upload cut half way.
        let size = photo.len() as u64;
        state
            .blobs
            .append(&photo_hash, "d1", 0, size, &photo)
            .unwrap();
        let half = &other[..other.len() / 2];
        state
            .blobs
            .append(&BlobHash::of(&other), "d1", 0, other.len() as u64, half)
            .unwrap();
    }
    let out = migrate(&data, &target);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("migrated") && stdout.contains("feed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("attachments: 1 blobs (300004 bytes)"),
        "the whole photo moves, the cut upload does not: {stdout}"
    );
    let again = migrate(&data, &target);
    assert!(!again.status.success(), "a non-empty target is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let pg = Arc::new(PostgresStorage::open(&target).unwrap());
    assert_eq!(pg.record_count().unwrap(), 5);
    assert_eq!(pg.cadre("amu").unwrap().unwrap().name, "阿木");
    assert_eq!(pg.department_tokens().unwrap().len(), 1);
    assert_eq!(
        BlobStore::read(pg.as_ref(), &photo_hash)
            .unwrap()
            .as_deref(),
        Some(&photo[..]),
        "the photo is in PostgreSQL, byte for byte"
    );
    assert_eq!(
        BlobStore::held(pg.as_ref(), &BlobHash::of(&other), "d1").unwrap(),
        Held::Partial { held: 0 },
        "a cut upload starts again on the new server"
    );
    let hub = Arc::new(Hub::new(schema.clone(), pg, clock, HubConfig::default()));
    let link =
        |store: &Store, key: &str| InProcess::for_store(hub.clone(), key, village.clone(), store);
    for (store, key) in [(&p1, "d1"), (&p2, "d2")] {
        let r = sync(store, &link(store, key));
        assert_eq!(
            r.progress.pulled, 0,
            "{key} downloaded again after the migration: {r:?}"
        );
    }
    p1.set(ids[2], "household_size", Value::Integer(9)).unwrap();
    sync(&p1, &link(&p1, "d1"));
    let r = sync(&p2, &link(&p2, "d2"));
    assert_eq!(
        (r.progress.pulled, r.changed.clone()),
        (1, vec![ids[2]]),
        "only the new edit"
    );
}

fn cli(data: &std::path::Path, database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibiao-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["--database", database])
        .args(args)
        .env_remove("YIBIAO_DATABASE")
        .env_remove("YIBIAO_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn operator_commands_on_postgres_refuse_a_database_without_tables_and_sqlite_backups() {
    let Some(url) = test_url() else { return };
    let db = fresh_schema(&url, &format!("cli{}", std::process::id())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = cli(
        &data,
        &db,
        &[
            "cadre",
            "add",
            "--id",
            "amu",
            "--name",
            "阿木",
            "--township",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds no yibiao tables"),
        "{err}"
    );
    let out = cli(&data, &db, &["init"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created yibiao's tables"));
    let out = cli(&data, &db, &["init"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already holds"));
    let out = cli(&data, &db, &["webhook", "list"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&data, &db, &["backup", "--to", "/tmp/never.db"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pg_dump"), "{err}");
    let storage = PostgresStorage::open(&db).unwrap();
    assert!(storage.cadres().unwrap().is_empty(), "nothing was added");
}

#[test]
fn quarantine_and_check_schema_read_the_postgres_database() {
    use yibiao_sync::hub::{DocWrite, HubBatch};
    let Some(url) = test_url() else { return };
    let db = fresh_schema(&url, &format!("ops{}", std::process::id())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config::resolve(
        Overrides {
            data_dir: Some(data.clone()),
            database: Some(db.clone()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let schema = Arc::new(Schema::baru_example());
    let state = AppState::open(config, (*schema).clone()).unwrap();
    yibiao_server::schema_change::prepare(&data, state.storage.as_ref(), state.hub.schema(), false)
        .unwrap();
    // A phone's household of 4 people, and a damaged document no server met yet.
    let phone = Store::open(
        dir.path().join("p.db"),
        schema.clone(),
        CadreId::new("amu").unwrap(),
    )
    .unwrap();
    let household = phone
        .create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set("household_size".into(), Value::Integer(4))],
        )
        .unwrap();
    let link = InProcess::for_store(
        state.hub.clone(),
        "d1",
        DeviceScope::Village("tujiang".into()),
        &phone,
    );
    sync(&phone, &link);
    let damaged = yibiao_model::RecordId::new();
    state
        .hub
        .storage()
        .commit(&HubBatch {
            docs: vec![DocWrite {
                id: damaged,
                entity: "household".into(),
                village: Some("tujiang".into()),
                chunk: b"not automerge".to_vec(),
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
    drop(state);
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let list = cli(&data, &db, &["quarantine", "list"]);
    assert!(list.status.success() && text(&list).is_empty(), "{list:?}");
    let scan = cli(&data, &db, &["quarantine", "scan"]);
    assert!(scan.status.success(), "{scan:?}");
    assert!(
        text(&scan).starts_with(&damaged.to_string()) && text(&scan).contains("does not load"),
        "{}",
        text(&scan)
    );
    assert!(
        !text(&scan).contains(&household.to_string()),
        "a healthy record is not listed"
    );
    let refused = cli(&data, &db, &["quarantine", "drop", &household.to_string()]);
    assert!(
        !refused.status.success(),
        "a healthy record is never dropped"
    );
    let dropped = cli(&data, &db, &["quarantine", "drop", &damaged.to_string()]);
    assert!(dropped.status.success(), "{dropped:?}");
    assert!(text(&cli(&data, &db, &["quarantine", "list"])).is_empty());
    let pg = PostgresStorage::open(&db).unwrap();
    assert_eq!(
        pg.record_count().unwrap(),
        1,
        "only the damaged record went"
    );

    // A revision that caps households at 3 people strands the stored 4, read from
    // PostgreSQL (the data directory holds no records).
    let rev2 = dir.path().join("rev2.toml");
    std::fs::write(
        &rev2,
        yibiao_model::schema::BARU_TOML
            .replacen("revision = 1 ", "revision = 2 ", 1)
            .replacen(
                "en = \"Household size\"\nmin = 1\nmax = 30",
                "en = \"Household size\"\nmin = 1\nmax = 3",
                1,
            ),
    )
    .unwrap();
    let data_arg = data.to_str().unwrap();
    let check = cli(
        &data,
        &db,
        &[
            "check-schema",
            rev2.to_str().unwrap(),
            "--against",
            data_arg,
        ],
    );
    assert!(
        !check.status.success(),
        "stranding exits non-zero: {}",
        text(&check)
    );
    assert!(
        text(&check).contains("1 records: household.household_size")
            && text(&check).contains(&household.to_string()),
        "{}",
        text(&check)
    );
}
