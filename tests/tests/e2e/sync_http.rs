//! Sync over real HTTP on loopback: a real `yibiao-server` process, phones with real
//! SQLite files and the built-in HTTP transport, through the fault-injecting proxy.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use yibiao_model::record::{HistoryEvent, Record};
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::storage::SqliteStorage;
use yibiao_store::http::HttpTransport;
use yibiao_store::{Query, Store};
use yibiao_sync::session::{RetryPolicy, SyncOptions};
use yibiao_sync::{DeviceScope, HubStorage};
use yibiao_testkit::server::{ServerOptions, ServerProcess};
use yibiao_tests::proxy::{LinkProfile, Proxy};

/// The real server command line, built for this test run.
fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// A real server process on `data`, on a free loopback port.
fn start_server(data: &Path) -> ServerProcess {
    ServerProcess::start(server_binary(), data, ServerOptions::default()).expect("server starts")
}

/// Registers a device of `cadre` through the server's CLI; returns its token.
fn add_device(data: &Path, name: &str, cadre: &str, village: Option<&str>) -> String {
    yibiao_testkit::server::add_device(server_binary(), data, name, cadre, village)
        .expect("device add")
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::baru_example())
}

fn options() -> SyncOptions {
    SyncOptions {
        page_bytes: 16 * 1024,
        max_response_bytes: 16 * 1024,
        retry: RetryPolicy {
            attempts: 40,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
        },
        ..SyncOptions::default()
    }
}

fn sync_until_complete(store: &Store, transport: &HttpTransport) {
    for _ in 0..30 {
        match yibiao_store::sync(store, transport, &options(), &mut |_| {}) {
            Ok(report) if report.complete => return,
            Ok(_) => {}
            Err(e) => eprintln!("sync attempt failed, trying again: {e}"),
        }
    }
    panic!("sync never completed");
}

/// What the server holds, read from its database file (WAL lets us read beside it).
fn server_records(data_dir: &Path) -> BTreeMap<RecordId, Record> {
    let storage = SqliteStorage::open(&data_dir.join("yibiao.db")).expect("open server db");
    let feed = storage
        .feed_after(&DeviceScope::Township, 0, 1_000_000)
        .expect("feed");
    feed.iter()
        .map(|e| {
            let chunks = storage.load(e.id).expect("load").expect("stored");
            (
                e.id,
                Record::load(e.id, automerge::ActorId::random(), &chunks).expect("record loads"),
            )
        })
        .collect()
}

fn values(schema: &Schema, r: &Record) -> BTreeMap<String, serde_json::Value> {
    r.values(schema)
        .into_iter()
        .map(|(k, v)| (k, v.to_json()))
        .collect()
}

struct Phone {
    store: Store,
    transport: HttpTransport,
    village: Option<&'static str>,
}

#[test]
fn twenty_devices_editing_offline_converge_through_a_cutting_duplicating_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let server = start_server(&data);
    let profile = LinkProfile {
        name: "test-cuts",
        latency: Duration::from_millis(2),
        down_bps: None,
        up_bps: None,
        cut_probability: 0.3,
        duplicate_probability: 0.15,
    };
    let proxy = Proxy::start(server.addr(), profile, 42).expect("proxy");
    let villages = ["tujiang", "baru", "shanzhong", "heping", "xinmin", "lianhe"];
    let mut phones = Vec::new();
    for i in 0..20 {
        let village = if i < 18 { Some(villages[i % 6]) } else { None };
        let token = add_device(&data, &format!("phone-{i}"), &format!("cadre-{i}"), village);
        let store = Store::open(
            dir.path().join(format!("phone-{i}.db")),
            schema(),
            CadreId::new(format!("cadre-{i}")).expect("id"),
        )
        .expect("store");
        phones.push(Phone {
            store,
            transport: HttpTransport::new(&proxy.url(), &token, Duration::from_secs(20)),
            village,
        });
    }

    // Day 1, offline: village phones register households; township phones hazard sites.
    let mut written: Vec<(RecordId, &'static str, serde_json::Value)> = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let (entity, village, field) = match p.village {
            Some(v) => ("household", v, "household_head"),
            None => ("hazard_site", villages[i % 6], "hazard_description"),
        };
        for n in 0..4 {
            let v = Value::Text(format!("第{i}台手机 第{n}条"));
            let id = p
                .store
                .create(
                    entity,
                    Some(village),
                    &[FieldEdit::Set(field.into(), v.clone())],
                )
                .expect("create");
            written.push((id, field, v.to_json()));
        }
    }
    let sync_all = |phones: &[Phone]| {
        std::thread::scope(|s| {
            for p in phones {
                s.spawn(|| sync_until_complete(&p.store, &p.transport));
            }
        });
    };
    sync_all(&phones);
    sync_all(&phones);

    // Day 2, offline: phones of the same village edit the same households.
    for (i, p) in phones.iter().enumerate().take(18) {
        let page = p
            .store
            .query(&Query {
                entity: Some("household".into()),
                limit: 1000,
                ..Query::default()
            })
            .expect("query");
        for (k, r) in page.records.iter().enumerate().take(5) {
            let v = Value::Integer(((i + k) % 12 + 1) as i64);
            p.store.set(r.id, "household_size", v.clone()).expect("set");
            written.push((r.id, "household_size", v.to_json()));
        }
    }
    sync_all(&phones);
    sync_all(&phones);

    let held = server_records(&data);
    assert_eq!(held.len(), 20 * 4, "the server holds every record once");
    let schema = schema();
    for (i, p) in phones.iter().enumerate() {
        let page = p
            .store
            .query(&Query {
                include_deleted: true,
                limit: 1000,
                ..Query::default()
            })
            .expect("query");
        let mut mine: Vec<RecordId> = page.records.iter().map(|r| r.id).collect();
        mine.sort();
        let mut want: Vec<RecordId> = held
            .iter()
            .filter(|(_, r)| p.village.is_none() || r.scope().village.as_deref() == p.village)
            .map(|(id, _)| *id)
            .collect();
        want.sort();
        assert_eq!(mine, want, "phone {i} holds exactly its scope");
        for id in &want {
            let r = &held[id];
            assert_eq!(
                p.store.heads(*id).expect("heads"),
                r.heads(),
                "phone {i} has every change of {id}"
            );
            let view = p.store.get(*id).expect("get");
            let got: BTreeMap<String, serde_json::Value> = view
                .fields
                .into_iter()
                .map(|f| (f.field, f.value))
                .collect();
            assert_eq!(
                got,
                values(&schema, r),
                "phone {i} agrees with the server on {id}"
            );
        }
        let status = p.store.sync_status().expect("status");
        assert_eq!(
            (status.pending, status.refused),
            (0, 0),
            "phone {i} has nothing left to send"
        );
    }
    for (id, field, value) in &written {
        let r = &held[id];
        let current = r.values(&schema).get(*field).map(Value::to_json);
        let in_conflict = r
            .conflicts(&schema)
            .iter()
            .any(|c| c.field == *field && c.values.iter().any(|v| v.value.as_ref() == Some(value)));
        let in_history = r.history(&schema).iter().any(|h| matches!(&h.event, HistoryEvent::Set { field: f, value: v } if f == field && v == value));
        assert!(
            current.as_ref() == Some(value) || in_conflict || in_history,
            "edit {field}={value} of {id} was lost"
        );
    }
    let conflicted = held
        .values()
        .filter(|r| !r.conflicted_fields().is_empty())
        .count();
    assert!(
        conflicted > 0,
        "concurrent edits of the same households are kept as conflicts"
    );
    let stats = proxy.stats();
    assert!(
        stats.cuts > 0 && stats.duplicates > 0,
        "the proxy really cut and duplicated: {stats:?}"
    );
}

fn big_backlog(store: &Store, village: &str, n: usize) -> Vec<RecordId> {
    (0..n)
        .map(|i| {
            store
                .create(
                    "household",
                    Some(village),
                    &[
                        FieldEdit::Set("household_head".into(), Value::Text(format!("户主{i}"))),
                        FieldEdit::Set(
                            "notes".into(),
                            Value::Text(format!("{i}:{}", "走访记录".repeat(40))),
                        ),
                    ],
                )
                .expect("create")
        })
        .collect()
}

#[test]
fn a_server_killed_mid_multi_page_sync_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let mut server = start_server(&data);
    let token = add_device(&data, "phone", "amu", Some("heping"));
    let slow = LinkProfile {
        name: "slow",
        latency: Duration::from_millis(20),
        down_bps: Some(2_000_000),
        up_bps: Some(400_000),
        cut_probability: 0.0,
        duplicate_probability: 0.0,
    };
    let proxy = Proxy::start(server.addr(), slow, 7).expect("proxy");
    let store = Store::open(
        dir.path().join("phone.db"),
        schema(),
        CadreId::new("amu").expect("id"),
    )
    .expect("store");
    let ids = big_backlog(&store, "heping", 400);
    let transport = HttpTransport::new(&proxy.url(), &token, Duration::from_secs(20));

    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let syncing = s.spawn(|| {
            let mut opts = options();
            opts.retry.attempts = 200;
            yibiao_store::sync(&store, &transport, &opts, &mut |p| {
                let _ = tx.send(p.pushed);
            })
        });
        // Wait until some pages are acknowledged, then pull the plug on the server.
        let acked = loop {
            let pushed = rx.recv_timeout(Duration::from_secs(60)).expect("progress");
            if pushed >= 60 {
                break pushed;
            }
        };
        server.kill9();
        // Everything the phone saw acknowledged must be on disk at the server.
        let after_kill = server_records(&data);
        assert!(
            after_kill.len() as u32 >= acked,
            "acknowledged pages survive SIGKILL: {} < {acked}",
            after_kill.len()
        );
        server.restart_after_kill9().expect("restart");
        let report = syncing
            .join()
            .expect("sync thread")
            .expect("sync finishes after the restart");
        assert!(report.complete);
    });
    let held = server_records(&data);
    assert_eq!(
        held.len(),
        400,
        "every record once, none lost, none duplicated"
    );
    for id in &ids {
        assert_eq!(held[id].heads(), store.heads(*id).expect("heads"));
    }
    assert_eq!(store.sync_status().expect("status").pending, 0);
    let storage = SqliteStorage::open(&data.join("yibiao.db")).expect("db");
    assert_eq!(storage.integrity_check().expect("check"), "ok");
    assert_eq!(
        storage
            .feed_after(&DeviceScope::Township, 0, 10_000)
            .expect("feed")
            .len(),
        400,
        "one feed row per record"
    );

    // A second phone of the village pulls everything in several pages.
    let token2 = add_device(&data, "phone-2", "jike", Some("heping"));
    let other = Store::open(
        dir.path().join("phone2.db"),
        schema(),
        CadreId::new("jike").expect("id"),
    )
    .expect("store");
    let t2 = HttpTransport::new(&server.url(), &token2, Duration::from_secs(20));
    let report = yibiao_store::sync(&other, &t2, &options(), &mut |_| {}).expect("pull");
    assert!(
        report.complete && report.progress.pulled == 400 && report.progress.pages > 2,
        "{report:?}"
    );
}

#[test]
fn a_phone_killed_mid_sync_resumes_without_resending_what_was_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let server = start_server(&data);
    let token = add_device(&data, "phone", "amu", Some("lianhe"));
    let slow = LinkProfile {
        name: "slow",
        latency: Duration::from_millis(20),
        down_bps: Some(2_000_000),
        up_bps: Some(400_000),
        cut_probability: 0.0,
        duplicate_probability: 0.0,
    };
    let proxy = Proxy::start(server.addr(), slow, 9).expect("proxy");
    let path = dir.path().join("phone.db");
    let ids = {
        let store = Store::open(&path, schema(), CadreId::new("amu").expect("id")).expect("store");
        big_backlog(&store, "lianhe", 300)
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phone_sync"))
        .arg(&path)
        .arg(proxy.url())
        .arg(&token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("phone process");
    let stdout = child.stdout.take().expect("stdout");
    let mut pushed_before_kill = 0;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("pushed ") {
            pushed_before_kill = n.trim().parse().expect("number");
            if pushed_before_kill >= 50 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let store = Store::open(&path, schema(), CadreId::new("amu").expect("id"))
        .expect("reopen after SIGKILL");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let pending = store.sync_status().expect("status").pending;
    assert!(
        pending <= 300 - pushed_before_kill as i64,
        "acknowledged pages stay acknowledged ({pending} pending)"
    );
    let transport = HttpTransport::new(&proxy.url(), &token, Duration::from_secs(20));
    let report = yibiao_store::sync(&store, &transport, &options(), &mut |_| {}).expect("resume");
    assert!(report.complete);
    assert!(
        report.progress.pushed as i64 <= pending,
        "only what was not acknowledged is sent again"
    );
    let held = server_records(&data);
    assert_eq!(held.len(), 300);
    for id in &ids {
        assert_eq!(held[id].heads(), store.heads(*id).expect("heads"));
    }
    drop(server);
}

#[test]
fn a_three_phone_session_with_conflicts_logs_no_error_and_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let log_file = dir.path().join("server.log");
    let server = ServerProcess::start(
        server_binary(),
        &data,
        ServerOptions {
            log_file: Some(log_file.clone()),
            ..ServerOptions::default()
        },
    )
    .expect("server starts");
    let phones: Vec<(Store, HttpTransport)> = ["amu", "jike", "ashu"]
        .iter()
        .map(|cadre| {
            let token = add_device(&data, cadre, cadre, Some("tujiang"));
            let store = Store::open(
                dir.path().join(format!("{cadre}.db")),
                schema(),
                CadreId::new(*cadre).expect("id"),
            )
            .expect("store");
            let http = HttpTransport::new(&server.url(), &token, Duration::from_secs(20));
            (store, http)
        })
        .collect();
    let sync_all = || {
        for (store, http) in &phones {
            sync_until_complete(store, http);
        }
    };
    let ids: Vec<RecordId> = phones
        .iter()
        .map(|(store, _)| {
            let head = FieldEdit::Set("household_head".into(), Value::Text("阿木日哈".into()));
            store
                .create("household", Some("tujiang"), &[head])
                .expect("create")
        })
        .collect();
    sync_all();
    sync_all();
    // Offline, every phone edits every household: three-way conflicts, then deltas.
    for (n, (store, _)) in phones.iter().enumerate() {
        for id in &ids {
            let size = Value::Integer(3 + i64::try_from(n).expect("small"));
            store.set(*id, "household_size", size).expect("set");
        }
    }
    sync_all();
    sync_all();
    let (first, _) = &phones[0];
    for id in &ids {
        assert_eq!(first.conflicts(*id).expect("conflicts").len(), 1);
        first
            .resolve(*id, "household_size", Some(Value::Integer(4)))
            .expect("resolve");
    }
    sync_all();
    sync_all();
    for (store, _) in &phones {
        assert_eq!(store.sync_status().expect("status").pending, 0);
        for id in &ids {
            assert!(store.conflicts(*id).expect("conflicts").is_empty());
        }
    }

    let log = server.log().expect("server log");
    assert!(!log.contains("ERROR"), "the server logged errors:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
}
