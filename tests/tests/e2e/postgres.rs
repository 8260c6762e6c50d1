//! Several processes, one truth: three real `yibiao-server` processes on one real
//! PostgreSQL (`YIBIAO_TEST_PG`, from `scripts/with-postgres.sh`), phones whose every
//! request goes to a random process through a cutting, duplicating proxy, one process
//! SIGKILLed mid-run and restarted, and departments pulling from any process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::blobs::{BlobTransport, Blobs, ChunkError, UploadOptions};
use yibiao_store::http::HttpTransport;
use yibiao_store::{Query, Store};
use yibiao_sync::session::{RetryPolicy, SyncOptions, Transport, TransportError};
use yibiao_testkit::pg::{fresh_schema, test_url};
use yibiao_testkit::server::{ServerOptions, ServerProcess};
use yibiao_tests::proxy::{LinkProfile, Proxy};

fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// Every request of a phone to a random one of several server processes.
struct AnyOf {
    links: Vec<HttpTransport>,
    rng: std::sync::Mutex<fastrand::Rng>,
}

impl Transport for AnyOf {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let i = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usize(..self.links.len());
        self.links[i].exchange(request)
    }
}

fn options() -> SyncOptions {
    SyncOptions {
        page_bytes: 16 * 1024,
        max_response_bytes: 16 * 1024,
        retry: RetryPolicy {
            attempts: 60,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
        },
        ..SyncOptions::default()
    }
}

fn sync_until_complete(store: &Store, transport: &dyn Transport) {
    for _ in 0..40 {
        match yibiao_store::sync(store, transport, &options(), &mut |_| {}) {
            Ok(report) if report.complete => return,
            Ok(_) => {}
            Err(e) => eprintln!("sync attempt failed, trying again: {e}"),
        }
    }
    panic!("sync never completed");
}

fn cli(database: &str, data: &Path, args: &[&str]) -> String {
    let out = Command::new(server_binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("YIBIAO_DATABASE", database)
        .env("RUST_LOG", "warn")
        .output()
        .expect("cli runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
        .unwrap_or_default()
}

/// A department's whole feed, each page from a random process; ids in feed order.
fn pull_feed(bases: &[String], token: &str, rng: &mut fastrand::Rng) -> Vec<String> {
    let mut cursor = 0u64;
    let mut ids = Vec::new();
    loop {
        let base = &bases[rng.usize(..bases.len())];
        let url = format!("{base}/v1/feed?cursor={cursor}&limit=7");
        let body: serde_json::Value = match ureq::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(mut r) => serde_json::from_str(&r.body_mut().read_to_string().expect("feed body"))
                .expect("feed json"),
            Err(e) => {
                eprintln!("pull failed, trying again: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        for c in body["changes"].as_array().expect("changes") {
            ids.push(c["id"].as_str().expect("id").to_owned());
        }
        cursor = body["next_cursor"].as_u64().expect("next_cursor");
        if !body["more"].as_bool().expect("more") {
            return ids;
        }
    }
}

/// `n` server processes on one PostgreSQL database, each with its own data directory
/// (`server-<i>`) holding only its config: nothing of the truth is in them.
fn start_servers(database: &str, dir: &Path, n: usize) -> Vec<ServerProcess> {
    (0..n)
        .map(|i| {
            let data: PathBuf = dir.join(format!("server-{i}"));
            std::fs::create_dir_all(&data).expect("data dir");
            let config = data.join("server.toml");
            std::fs::write(
                &config,
                format!("rate_per_minute = 0\ndatabase = \"{database}\"\n"),
            )
            .expect("config");
            let options = ServerOptions {
                config: Some(config),
                ..ServerOptions::default()
            };
            ServerProcess::start(server_binary(), &data, options).expect("server starts")
        })
        .collect()
}

#[test]
fn three_processes_on_one_postgres_converge_through_cuts_duplicates_and_a_kill() {
    let Some(url) = test_url() else { return };
    let phones_n: usize = std::env::var("YIBIAO_PG_PHONES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let database = fresh_schema(&url, &format!("e2e{}", std::process::id())).expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut servers = start_servers(&database, dir.path(), 3);
    let profile = LinkProfile {
        name: "test-cuts",
        latency: Duration::from_millis(1),
        down_bps: None,
        up_bps: None,
        cut_probability: 0.2,
        duplicate_probability: 0.1,
    };
    let proxies: Vec<Proxy> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| Proxy::start(s.addr(), profile.clone(), 7 + i as u64).expect("proxy"))
        .collect();
    let data0 = dir.path().join("server-0");
    let villages = ["tujiang", "baru", "shanzhong"];
    let schema = Arc::new(Schema::baru_example());
    let phones: Vec<(Store, AnyOf, Option<&str>)> = (0..phones_n)
        .map(|i| {
            let village = (i + 1 < phones_n).then(|| villages[i % villages.len()]);
            let cadre = format!("cadre-{i}");
            let mut args = vec!["device", "add", "--name", "p", "--cadre", cadre.as_str()];
            match village {
                Some(v) => args.extend(["--village", v]),
                None => args.push("--township"),
            }
            let token = cli(&database, &data0, &args);
            let store = Store::open(
                dir.path().join(format!("phone-{i}.db")),
                schema.clone(),
                CadreId::new(cadre).expect("cadre"),
            )
            .expect("store");
            let links = proxies
                .iter()
                .map(|p| HttpTransport::new(&p.url(), &token, Duration::from_secs(20)))
                .collect();
            let rng = std::sync::Mutex::new(fastrand::Rng::with_seed(i as u64));
            (store, AnyOf { links, rng }, village)
        })
        .collect();
    let dept = cli(
        &database,
        &data0,
        &["department", "token", "public_services", "--name", "d"],
    );

    // Each village phone registers three households, and edits its village's households.
    for (i, (store, _, village)) in phones.iter().enumerate() {
        for n in 0..3 {
            let v = Value::Text(format!("第{i}台手机 第{n}户"));
            let village = village.unwrap_or(villages[i % villages.len()]);
            store
                .create(
                    "household",
                    Some(village),
                    &[FieldEdit::Set("household_head".into(), v)],
                )
                .expect("create");
        }
    }
    let sync_all = |phones: &[(Store, AnyOf, Option<&str>)]| {
        std::thread::scope(|s| {
            for (store, link, _) in phones {
                s.spawn(move || sync_until_complete(store, link));
            }
        });
    };
    // One process is SIGKILLed while the phones sync, and started again.
    std::thread::scope(|s| {
        s.spawn(|| sync_all(&phones));
        std::thread::sleep(Duration::from_millis(300));
        servers[1].restart_after_kill9().expect("restart");
    });
    for (i, (store, _, _)) in phones.iter().enumerate() {
        let page = store
            .query(&Query {
                entity: Some("household".into()),
                limit: 1000,
                ..Query::default()
            })
            .expect("query");
        for (k, r) in page.records.iter().enumerate().take(4) {
            store
                .set(
                    r.id,
                    "household_size",
                    Value::Integer(((i + k) % 9 + 1) as i64),
                )
                .expect("set");
        }
    }
    sync_all(&phones);
    sync_all(&phones);

    let all: BTreeSet<RecordId> = phones
        .iter()
        .flat_map(|(s, _, _)| {
            s.query(&Query {
                limit: 1000,
                include_deleted: true,
                ..Query::default()
            })
            .expect("query")
            .records
            .into_iter()
            .map(|r| r.id)
        })
        .collect();
    assert_eq!(
        all.len(),
        phones_n * 3,
        "every record once, none lost, none duplicated"
    );
    let township = &phones[phones_n - 1].0;
    let reference: BTreeMap<RecordId, _> = all
        .iter()
        .map(|id| (*id, township.heads(*id).expect("heads")))
        .collect();
    for (i, (store, _, village)) in phones.iter().enumerate() {
        let mine: BTreeSet<RecordId> = store
            .query(&Query {
                limit: 1000,
                include_deleted: true,
                ..Query::default()
            })
            .expect("query")
            .records
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: BTreeSet<RecordId> = all
            .iter()
            .copied()
            .filter(|id| {
                village.is_none_or(|v| {
                    township.get(*id).expect("get").scope.village.as_deref() == Some(v)
                })
            })
            .collect();
        assert_eq!(mine, want, "phone {i} holds exactly its scope");
        for id in &want {
            assert_eq!(
                store.heads(*id).expect("heads"),
                reference[id],
                "phone {i} converged on {id}"
            );
        }
        let status = store.sync_status().expect("status");
        assert_eq!(
            (status.pending, status.refused),
            (0, 0),
            "phone {i} has nothing left"
        );
    }
    let bases: Vec<String> = servers.iter().map(ServerProcess::url).collect();
    let mut rng = fastrand::Rng::with_seed(99);
    for pass in 0..2 {
        let ids = pull_feed(&bases, &dept, &mut rng);
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "pass {pass}: a record twice in one quiet feed"
        );
        assert_eq!(
            ids.len(),
            all.len(),
            "pass {pass}: the department sees every household"
        );
    }
    let cuts: u64 = proxies.iter().map(|p| p.stats().cuts).sum();
    let dups: u64 = proxies.iter().map(|p| p.stats().duplicates).sum();
    assert!(
        cuts > 0 && dups > 0,
        "the proxies really cut ({cuts}) and duplicated ({dups})"
    );
}

/// A phone's blob link that goes to one process at a time; the test moves it.
struct Switch {
    links: Vec<HttpTransport>,
    at: std::cell::Cell<usize>,
}

impl BlobTransport for Switch {
    fn held(&self, sha256: &str) -> Result<(u64, bool), TransportError> {
        self.links[self.at.get()].held(sha256)
    }
    fn put(
        &self,
        sha256: &str,
        size: u64,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(u64, bool), ChunkError> {
        self.links[self.at.get()].put(sha256, size, offset, chunk)
    }
    fn get(&self, sha256: &str) -> Result<Vec<u8>, ChunkError> {
        self.links[self.at.get()].get(sha256)
    }
}

#[test]
fn a_photo_upload_cut_at_one_process_resumes_at_another_and_downloads_from_a_third() {
    let Some(url) = test_url() else { return };
    let database = fresh_schema(&url, &format!("blob{}", std::process::id())).expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = start_servers(&database, dir.path(), 3);
    let proxies: Vec<Proxy> = servers
        .iter()
        .map(|s| Proxy::start(s.addr(), LinkProfile::loopback(), 1).expect("proxy"))
        .collect();
    let data0 = dir.path().join("server-0");
    let token = cli(
        &database,
        &data0,
        &[
            "device",
            "add",
            "--name",
            "p",
            "--cadre",
            "amu",
            "--village",
            "tujiang",
        ],
    );
    let path = dir.path().join("phone.db");
    let store = Store::open(
        &path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").expect("cadre"),
    )
    .expect("store");
    let blobs = Blobs::open(Blobs::dir_beside(&path)).expect("blobs");
    let link = |i: usize| HttpTransport::new(&proxies[i].url(), &token, Duration::from_secs(20));
    let id = store
        .create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set(
                "household_head".into(),
                Value::Text("阿木".into()),
            )],
        )
        .expect("create");
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..200_000u32).map(|i| (i % 253) as u8));
    let reference = blobs
        .attach(&store, id, "photo", &bytes, "image/jpeg", "院子.jpg")
        .expect("attach");
    sync_until_complete(&store, &link(0));

    // Three chunks reach process 0, then its link goes down; the phone's next try goes
    // to process 1, which asks the database what is held.
    let switch = Switch {
        links: vec![link(0), link(1)],
        at: std::cell::Cell::new(0),
    };
    let options = UploadOptions {
        chunk_bytes: 16 * 1024,
        max_failures: 20,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    let acks = std::cell::Cell::new(0);
    let report = yibiao_store::blobs::upload_with_sleep(
        &blobs,
        &switch,
        &options,
        &mut |_| {
            acks.set(acks.get() + 1);
            if acks.get() == 3 {
                proxies[0].set_down(true);
            }
        },
        &mut |_| switch.at.set(1),
    )
    .expect("upload");
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(
        report.failures >= 1,
        "process 0's link went down: {report:?}"
    );
    assert!(
        report.bytes_sent <= bytes.len() as u64 + options.chunk_bytes as u64,
        "process 1 continued where process 0 stopped, at most one chunk again: {report:?}"
    );
    assert!(
        !servers[0].data_dir().join("blobs").exists()
            && !servers[1].data_dir().join("blobs").exists(),
        "no process keeps the photo in its own directory"
    );

    // A department reading the living-environment form downloads it from process 2.
    let rural = cli(
        &database,
        &data0,
        &["department", "token", "rural_revitalisation", "--name", "d"],
    );
    let third = HttpTransport::new(&servers[2].url(), &rural, Duration::from_secs(20));
    assert_eq!(third.get(&reference.sha256).expect("download"), bytes);
    // Any process refuses a blob over the limit.
    match link(2).put(
        &reference.sha256.replace('a', "b"),
        11 * 1024 * 1024,
        0,
        &bytes[..1024],
    ) {
        Err(ChunkError::Refused { code, .. }) => assert_eq!(code, "blob_too_large"),
        other => panic!("an 11 MB blob must be refused: {other:?}"),
    }
}
