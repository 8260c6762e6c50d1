//! A server database written by today's release, kept as a binary fixture, must open,
//! migrate (a no-op today) and serve in every later build: an upgrade of the binary never
//! strands a township's data.
//!
//! `tests/fixtures/server-v{N}.sqlite` (N = the database's `user_version`) is written by
//! the ignored test below (`cargo test -p yibiao-server --test fixtures -- --ignored write`)
//! when a release adds a migration; released fixtures are never rewritten.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, accounts};
use yibiao_store::{Query, Store};
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

/// 2026-11-24 09:00 in UTC+8.
const MORNING: i64 = 1_795_482_000_000;

fn fixture(version: i64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(format!("server-v{version}.sqlite"))
}

/// The database version this build writes: that of a fresh database.
fn current_version() -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    drop(SqliteStorage::open(&path).unwrap());
    user_version(&path)
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn state(dir: &Path) -> AppState {
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.join("yibiao.db")).unwrap());
    AppState::with_clock(
        config,
        Schema::baru_example(),
        storage,
        Arc::new(ManualClock::new(MORNING)),
    )
}

/// A phone of `village` for `cadre`, registered and bound as enrolment binds it.
fn phone(
    state: &AppState,
    cadre: &str,
    village: &str,
) -> (Store, InProcess<Arc<yibiao_server::ServerHub>>) {
    let store = Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new(cadre).unwrap(),
        Arc::new(ManualClock::new(MORNING)),
    )
    .unwrap();
    let (row, _) = accounts::register_device(
        state.storage.as_ref(),
        state.hub.schema(),
        &format!("phone of {cadre}"),
        Some(cadre),
        Some(village),
    )
    .unwrap();
    state
        .storage
        .bind_phone_device(&row.key, store.device_id().as_str())
        .unwrap();
    // What the sync route vouches for behind this token.
    let identity =
        accounts::identity(state.storage.as_ref(), &row, store.device_id().clone()).unwrap();
    let link = InProcess::new(
        state.hub.clone(),
        row.key,
        DeviceScope::Village(village.into()),
        identity,
    );
    (store, link)
}

fn sync(store: &Store, link: &InProcess<Arc<yibiao_server::ServerHub>>) {
    let report = yibiao_store::sync_with_sleep(
        store,
        link,
        &SyncOptions::default(),
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap();
    assert!(report.complete && report.refused.is_empty(), "{report:?}");
}

#[test]
#[ignore = "writes the fixture of a new database version; run by hand at release"]
fn write_server_database_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    accounts::issue_department_token(
        state.storage.as_ref(),
        state.hub.schema(),
        "public_services",
        "minzheng system",
    )
    .unwrap();
    let (store, link) = phone(&state, "amu", "tujiang");
    for (head, size) in [("阿木日哈", 5), ("吉巴", 3)] {
        store
            .create(
                "household",
                Some("tujiang"),
                &[
                    FieldEdit::Set("household_head".into(), Value::Text(head.into())),
                    FieldEdit::Set("household_size".into(), Value::Integer(size)),
                ],
            )
            .unwrap();
    }
    sync(&store, &link);
    drop((link, state));
    std::fs::copy(dir.path().join("yibiao.db"), fixture(current_version())).unwrap();
}

#[test]
fn the_server_database_of_today_opens_and_serves_its_records_to_a_new_phone() {
    let version = current_version();
    let source = fixture(version);
    assert!(
        source.exists(),
        "no fixture for server database version {version}: write one with the ignored test in this file"
    );
    opens_and_serves(&source, version);
}

#[test]
fn every_released_server_database_migrates_and_serves_its_records() {
    let version = current_version();
    for old in 2..version {
        opens_and_serves(&fixture(old), version);
    }
}

/// Opens a copy of the database at `source` (migrating it to `version`); a new phone of
/// the village receives the fixture's households.
fn opens_and_serves(source: &Path, version: i64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(source, dir.path().join("yibiao.db")).unwrap();
    let state = state(dir.path());
    assert_eq!(user_version(&dir.path().join("yibiao.db")), version);
    let devices = state.storage.devices().unwrap();
    assert_eq!(
        devices.len(),
        1,
        "the fixture's one phone is still registered"
    );
    // A second phone of the village receives both households, values intact.
    let (store, link) = phone(&state, "jiaba", "tujiang");
    sync(&store, &link);
    let page = store.query(&Query::default()).unwrap();
    let mut heads: Vec<String> = page
        .records
        .iter()
        .map(|r| {
            store
                .get(r.id)
                .unwrap()
                .value("household_head")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    heads.sort();
    assert_eq!(heads, ["吉巴", "阿木日哈"]);
}
