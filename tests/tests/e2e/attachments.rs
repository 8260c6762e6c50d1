//! Attachments over real HTTP (ADR 0013): a real server process, phones with real
//! SQLite files and blob directories, the built-in HTTP transport, the fault proxy.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::Store;
use yibiao_store::blobs::{self, BlobTransport, Blobs, ChunkError, UploadOptions};
use yibiao_store::http::HttpTransport;
use yibiao_sync::session::{RetryPolicy, SyncOptions, TransportError};
use yibiao_testkit::server::{ServerOptions, ServerProcess};
use yibiao_tests::proxy::{LinkProfile, Proxy};

fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// A JPEG-looking blob of `len` bytes (the magic number, then bytes from `seed`).
fn photo(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len.saturating_sub(4)).map(|i| (i as u8).wrapping_mul(7) ^ seed));
    bytes
}

struct Phone {
    store: Store,
    blobs: Blobs,
    transport: HttpTransport,
}

fn phone(dir: &Path, name: &str, url: &str, token: &str) -> Phone {
    let path = dir.join(format!("{name}.sqlite"));
    let store = Store::open(
        &path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
    )
    .expect("store opens");
    let blobs = Blobs::open(Blobs::dir_beside(&path)).expect("blobs open");
    Phone {
        store,
        blobs,
        transport: HttpTransport::new(url, token, Duration::from_secs(20)),
    }
}

fn household(store: &Store) -> RecordId {
    store
        .create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set(
                "household_head".into(),
                Value::Text("阿木".into()),
            )],
        )
        .expect("create")
}

fn sync(p: &Phone) {
    let options = SyncOptions {
        retry: RetryPolicy {
            attempts: 40,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
        ..SyncOptions::default()
    };
    for _ in 0..20 {
        let result = yibiao_store::sync(&p.store, &p.transport, &options, &mut |_| {});
        if result.is_ok_and(|r| r.complete) {
            return;
        }
    }
    panic!("sync never completed");
}

fn fast() -> UploadOptions {
    UploadOptions {
        chunk_bytes: 8 * 1024,
        max_failures: 30,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    server: ServerProcess,
    token: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(server_binary(), &data, ServerOptions::default())
        .expect("server starts");
    let token = server
        .add_device("phone-a", "amu", Some("tujiang"))
        .expect("device add");
    Setup {
        _dir: dir,
        server,
        token,
    }
}

#[test]
fn a_cut_mid_upload_resumes_from_what_the_server_holds_and_resends_at_most_one_chunk() {
    let s = setup();
    let proxy = Proxy::start(s.server.addr(), LinkProfile::loopback(), 1).unwrap();
    let p = phone(s.server.data_dir(), "a", &proxy.url(), &s.token);
    let id = household(&p.store);
    let bytes = photo(1, 100 * 1024);
    let reference = p
        .blobs
        .attach(&p.store, id, "photo", &bytes, "image/jpeg", "院子.jpg")
        .unwrap();
    sync(&p);
    // After the third acknowledged chunk the link goes down (open connections cut);
    // it comes back during the phone's wait.
    let acks = Cell::new(0);
    let report = blobs::upload_with_sleep(
        &p.blobs,
        &p.transport,
        &fast(),
        &mut |_| {
            acks.set(acks.get() + 1);
            if acks.get() == 3 {
                proxy.set_down(true);
            }
        },
        &mut |_| proxy.set_down(false),
    )
    .unwrap();
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(report.failures >= 1, "the link went down: {report:?}");
    let chunk = fast().chunk_bytes as u64;
    assert!(
        report.bytes_sent <= bytes.len() as u64 + chunk,
        "at most one chunk sent again: {report:?}"
    );
    let on_server = std::fs::read(s.server.data_dir().join("blobs").join(&reference.sha256))
        .expect("the server holds the blob");
    assert_eq!(on_server, bytes);
    assert!(p.blobs.pending().unwrap().is_empty());
}

#[test]
fn cuts_inside_chunk_bodies_cost_at_most_one_chunk_each() {
    let s = setup();
    let profile = LinkProfile {
        name: "cutting",
        cut_probability: 0.3,
        ..LinkProfile::loopback()
    };
    let proxy = Proxy::start(s.server.addr(), profile, 7).unwrap();
    // A fresh connection per request, so every request may meet a cut.
    let p = phone(s.server.data_dir(), "a", &proxy.url(), &s.token);
    let bytes = photo(2, 120 * 1024);
    p.blobs.put(&bytes).unwrap();
    let report =
        blobs::upload_with_sleep(&p.blobs, &p.transport, &fast(), &mut |_| {}, &mut |_| {})
            .unwrap();
    assert_eq!(report.uploaded, 1, "{report:?}");
    let chunk = fast().chunk_bytes as u64;
    assert!(
        report.bytes_sent <= bytes.len() as u64 + u64::from(report.failures) * chunk,
        "{report:?}"
    );
    assert!(proxy.stats().cuts > 0, "the profile cut connections");
}

/// Damages the last chunk of its first completing `put`.
struct Corrupting<'a> {
    inner: &'a HttpTransport,
    damaged: Cell<u32>,
}

impl BlobTransport for Corrupting<'_> {
    fn held(&self, sha256: &str) -> Result<(u64, bool), TransportError> {
        self.inner.held(sha256)
    }
    fn put(
        &self,
        sha256: &str,
        size: u64,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(u64, bool), ChunkError> {
        if self.damaged.get() == 0 && offset + chunk.len() as u64 == size {
            self.damaged.set(1);
            let mut bad = chunk.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 0xFF;
            return self.inner.put(sha256, size, offset, &bad);
        }
        self.inner.put(sha256, size, offset, chunk)
    }
    fn get(&self, sha256: &str) -> Result<Vec<u8>, ChunkError> {
        self.inner.get(sha256)
    }
}

#[test]
fn a_corrupted_upload_is_refused_and_sent_again_and_a_duplicate_is_not_resent() {
    let s = setup();
    let url = s.server.url();
    let p = phone(s.server.data_dir(), "a", &url, &s.token);
    let bytes = photo(3, 20 * 1024);
    let sha = p.blobs.put(&bytes).unwrap();
    let corrupting = Corrupting {
        inner: &p.transport,
        damaged: Cell::new(0),
    };
    let report =
        blobs::upload_with_sleep(&p.blobs, &corrupting, &fast(), &mut |_| {}, &mut |_| {}).unwrap();
    assert_eq!(corrupting.damaged.get(), 1, "one completion was damaged");
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(
        report.bytes_sent >= 2 * bytes.len() as u64,
        "started again: {report:?}"
    );
    let on_server = std::fs::read(s.server.data_dir().join("blobs").join(&sha)).unwrap();
    assert_eq!(on_server, bytes);

    // A second phone holding the same photo sends nothing of it.
    let token_b = s
        .server
        .add_device("phone-b", "amu", Some("tujiang"))
        .unwrap();
    let b = phone(s.server.data_dir(), "b", &url, &token_b);
    b.blobs.put(&bytes).unwrap();
    let again = blobs::upload_with_sleep(&b.blobs, &b.transport, &fast(), &mut |_| {}, &mut |_| {})
        .unwrap();
    assert_eq!((again.already_held, again.bytes_sent), (1, 0), "{again:?}");
}

#[test]
fn a_blob_over_the_limit_or_of_a_wrong_type_is_refused_with_a_clear_error() {
    let s = setup();
    let p = phone(s.server.data_dir(), "a", &s.server.url(), &s.token);
    let text = b"just some text, not a photo".to_vec();
    p.blobs.put(&text).unwrap();
    let report =
        blobs::upload_with_sleep(&p.blobs, &p.transport, &fast(), &mut |_| {}, &mut |_| {})
            .unwrap();
    let (_, code, message) = &report.refused[0];
    assert_eq!(code, "blob_type_refused");
    assert!(
        message.contains("附件类型不被接受") && message.contains("JPEG"),
        "{message}"
    );

    let big = photo(4, 1024);
    match p
        .transport
        .put(&blobs::sha256_hex(&big), 11 * 1024 * 1024, 0, &big)
    {
        Err(ChunkError::Refused { code, message, .. }) => {
            assert_eq!(code, "blob_too_large");
            assert!(
                message.contains("附件过大") && message.contains("11534336"),
                "{message}"
            );
        }
        other => panic!("an 11 MB blob must be refused: {other:?}"),
    }
}

#[test]
fn a_blob_is_served_only_to_whom_sees_its_field_and_fetched_on_demand() {
    let s = setup();
    let url = s.server.url();
    let p = phone(s.server.data_dir(), "a", &url, &s.token);
    let id = household(&p.store);
    let bytes = photo(5, 10 * 1024);
    let r = p
        .blobs
        .attach(&p.store, id, "photo", &bytes, "image/jpeg", "院子.jpg")
        .unwrap();
    sync(&p);
    blobs::upload(&p.blobs, &p.transport, &fast(), &mut |_| {}).unwrap();

    // Rural revitalisation reads the living-environment form (with its photo).
    let rural = s
        .server
        .department_token("rural_revitalisation", "t")
        .unwrap();
    let sees = HttpTransport::new(&url, &rural, Duration::from_secs(10));
    assert_eq!(sees.get(&r.sha256).unwrap(), bytes);
    // Emergency management reads households, but not their photo.
    let emergency = s
        .server
        .department_token("emergency_management", "t")
        .unwrap();
    let blind = HttpTransport::new(&url, &emergency, Duration::from_secs(10));
    match blind.get(&r.sha256) {
        Err(ChunkError::Transport(TransportError::Status { status: 404, .. })) => {}
        other => panic!("a department without the field must get 404: {other:?}"),
    }
    // A phone of another village gets 404; one of the same village fetches on demand.
    let other = s.server.add_device("phone-c", "amu", Some("baru")).unwrap();
    let c = phone(s.server.data_dir(), "c", &url, &other);
    assert!(blobs::fetch(&c.blobs, &c.transport, &r.sha256).is_err());
    let same = s
        .server
        .add_device("phone-b", "amu", Some("tujiang"))
        .unwrap();
    let b = phone(s.server.data_dir(), "b", &url, &same);
    assert!(!b.blobs.has(&r.sha256), "never fetched by default");
    assert_eq!(
        blobs::fetch(&b.blobs, &b.transport, &r.sha256).unwrap(),
        bytes
    );
    assert!(b.blobs.has(&r.sha256) && b.blobs.pending().unwrap().is_empty());
}

/// Every household of the store at `path` with a photo reference has its whole blob.
fn check_after_kill(path: &Path, reported: &[(String, String)]) -> usize {
    let store = Store::open(
        path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
    )
    .expect("the store opens after SIGKILL");
    let blobs = Blobs::open(Blobs::dir_beside(path)).expect("blobs open after SIGKILL");
    let temps = std::fs::read_dir(blobs.dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "tmp")
        })
        .count();
    assert_eq!(temps, 0, "interrupted writes are removed on open");
    let page = store
        .query(&yibiao_store::Query {
            entity: Some("household".into()),
            limit: yibiao_store::MAX_PAGE,
            ..yibiao_store::Query::default()
        })
        .unwrap();
    let mut with_photo = 0;
    for summary in &page.records {
        let view = store.get(summary.id).unwrap();
        let Some(photo) = view.value("photo") else {
            continue;
        };
        with_photo += 1;
        let sha = photo["sha256"].as_str().unwrap();
        let bytes = blobs
            .read(sha)
            .unwrap()
            .unwrap_or_else(|| panic!("record {} references {sha} without its bytes", summary.id));
        assert_eq!(bytes.len() as u64, photo["size"].as_u64().unwrap());
    }
    for (id, sha) in reported {
        let id: RecordId = id.parse().unwrap();
        let view = store.get(id).expect("a reported record survives");
        assert_eq!(
            view.value("photo").unwrap()["sha256"].as_str(),
            Some(sha.as_str())
        );
    }
    with_photo
}

#[test]
fn a_phone_killed_while_attaching_keeps_a_reference_only_with_its_whole_blob() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.sqlite");
    let mut reported = Vec::new();
    // Kills after 1, 2 and 3 reported attaches, each a few milliseconds later, land
    // inside blob writes, renames and record commits.
    for (round, (after, delay_ms)) in [(1, 0u64), (2, 3), (3, 7)].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_attach_writer"))
            .arg(&path)
            .arg((round as u64 * 1000).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("attach_writer starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..after {
            let line = lines.next().expect("a line").expect("readable");
            let (id, sha) = line.split_once(' ').expect("`<id> <sha256>`");
            reported.push((id.to_owned(), sha.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let with_photo = check_after_kill(&path, &reported);
        assert!(with_photo >= reported.len());
    }
}

#[test]
fn a_device_holds_at_most_its_budget_of_unfinished_uploads() {
    let s = setup();
    let p = phone(s.server.data_dir(), "a", &s.server.url(), &s.token);
    // Four photos begun and left unfinished (the default budget is 4).
    for seed in 0..4u8 {
        let bytes = photo(10 + seed, 20 * 1024);
        let ack = p
            .transport
            .put(
                &blobs::sha256_hex(&bytes),
                bytes.len() as u64,
                0,
                &bytes[..1024],
            )
            .unwrap();
        assert_eq!(ack, (1024, false));
    }
    let fifth = photo(20, 20 * 1024);
    match p.transport.put(
        &blobs::sha256_hex(&fifth),
        fifth.len() as u64,
        0,
        &fifth[..1024],
    ) {
        Err(ChunkError::Refused { code, message, .. }) => {
            assert_eq!(code, "blob_busy");
            assert!(message.contains("最多 4 个"), "{message}");
        }
        other => panic!("a fifth unfinished upload must be refused: {other:?}"),
    }
}
