//! The server's HTTP API through `app(state).oneshot(..)`: authentication, bad bodies,
//! protocol versions, and one real exchange. Nothing wrong is stored.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use yibiao_model::clock::SystemClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::{AppState, accounts, app};
use yibiao_store::Store;
use yibiao_sync::HubStorage;
use yibiao_sync::protocol::{PushDoc, SyncRequest, SyncResponse, WireId, heads_to_wire};

struct Fixture {
    state: AppState,
    token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let over = Overrides {
        data_dir: Some(dir.path().to_owned()),
        ..Overrides::default()
    };
    let file = FileConfig {
        max_body_bytes: Some(64 * 1024),
        ..FileConfig::default()
    };
    let config = Config::resolve(over, file).unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let (_, token) = accounts::register_device(
        state.storage.as_ref(),
        state.hub.schema(),
        "a",
        Some("amu"),
        Some("tujiang"),
    )
    .unwrap();
    Fixture {
        state,
        token,
        _dir: dir,
    }
}

async fn post(f: &Fixture, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    // These tests read the English explanation; the language is tested in tasks.rs.
    let mut req = Request::post("/v1/sync")
        .header("content-type", "application/x-yibiao-sync")
        .header("accept-language", "en");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app(f.state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
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

fn error_of(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    (
        v["error"]["code"].as_str().unwrap().into(),
        v["error"]["message"].as_str().unwrap().into(),
    )
}

fn phone_request() -> SyncRequest {
    let store = Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let id = store
        .create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set(
                "household_head".into(),
                Value::Text("阿木".into()),
            )],
        )
        .unwrap();
    SyncRequest {
        device: store.device_id().to_string(),
        cursor: 0,
        push: vec![PushDoc {
            record: WireId::from(id),
            heads: heads_to_wire(&store.heads(id).unwrap()),
            bytes: store.export(id).unwrap(),
        }],
        max_response_bytes: 65536,
        schema: None,
    }
}

#[tokio::test]
async fn health_answers_with_the_record_count() {
    let f = fixture();
    let resp = app(f.state.clone())
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["records"], 0);
}

#[tokio::test]
async fn a_sync_without_a_valid_token_is_refused_and_stores_nothing() {
    let f = fixture();
    let body = phone_request().encode();
    let (status, resp) = post(&f, None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&resp),
        (
            "unauthorized".into(),
            "missing `Authorization: Bearer <device token>` header".into()
        )
    );
    let (status, resp) = post(&f, Some("ybd_nope"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&resp).1, "unknown device token");
    let (status, resp) = post(&f, Some("ybk_0000"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&resp).1,
        "this is not a device token (device tokens start with ybd_)"
    );
    let key = f.state.storage.devices().unwrap()[0].key.clone();
    f.state.storage.revoke_device(&key, 2).unwrap();
    let (status, resp) = post(&f, Some(&f.token), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&resp).1,
        "this device token was revoked; enrol the phone again"
    );
    assert_eq!(f.state.hub.storage().record_count().unwrap(), 0);
}

#[tokio::test]
async fn bad_bodies_get_a_clear_4xx_and_store_nothing() {
    let f = fixture();
    let good = phone_request().encode();
    let mut old = good.clone();
    old[3] = 0;
    let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            b"{\"hello\": 1}".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not a yibiao sync message",
        ),
        (
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not a yibiao sync message",
        ),
        (
            old,
            StatusCode::UPGRADE_REQUIRED,
            "protocol_version",
            "this app speaks sync protocol 0; the server speaks 1. Update the app.",
        ),
        (
            good[..good.len() - 7].to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "sync message is damaged or too large",
        ),
        (
            vec![b'Y'; 100 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "sync body is larger than the server's limit of 65536 bytes",
        ),
    ];
    for (body, want_status, want_code, want_message) in cases {
        let (status, resp) = post(&f, Some(&f.token), body).await;
        assert_eq!(status, want_status, "{want_message}");
        let (code, message) = error_of(&resp);
        assert_eq!(code, want_code);
        assert!(message.starts_with(want_message), "{message}");
    }
    assert_eq!(f.state.hub.storage().record_count().unwrap(), 0);
}

#[tokio::test]
async fn a_real_exchange_is_accepted_and_replaying_it_changes_nothing() {
    let f = fixture();
    let req = phone_request();
    let body = req.encode();
    let (status, resp) = post(&f, Some(&f.token), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let resp = SyncResponse::decode(&resp).unwrap();
    assert_eq!(resp.accepted, vec![req.push[0].record]);
    assert!(
        resp.docs.is_empty(),
        "the device's own record is not echoed back"
    );
    let (_, again) = post(&f, Some(&f.token), body).await;
    let again = SyncResponse::decode(&again).unwrap();
    assert_eq!(again.accepted, vec![req.push[0].record]);
    assert_eq!(f.state.hub.storage().record_count().unwrap(), 1);
    assert_eq!(f.state.storage.integrity_check().unwrap(), "ok");
}

async fn get_json(f: &Fixture, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = app(f.state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn ready_counts_a_quarantined_record_and_stays_ready() {
    use yibiao_sync::hub::{DocWrite, HubBatch};
    use yibiao_sync::{DeviceAuth, DeviceScope};

    let f = fixture();
    let (status, v) = get_json(&f, "/ready").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["ready"], true);
    assert_eq!(v["quarantined"], 0);
    assert_eq!(v["reasons"], serde_json::json!([]));

    // A stored record whose chunk does not load; a pull meets it and sets it aside.
    let id = yibiao_model::RecordId::new();
    f.state
        .hub
        .storage()
        .commit(&HubBatch {
            docs: vec![DocWrite {
                id,
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
    let auth = DeviceAuth {
        key: "t".into(),
        scope: DeviceScope::Township,
        identity: yibiao_sync::hub::Identity::new(
            yibiao_model::DeviceId::new("t").unwrap(),
            [yibiao_model::CadreId::new("staff").unwrap()],
        ),
    };
    let req = SyncRequest {
        device: "t".into(),
        cursor: 0,
        push: Vec::new(),
        max_response_bytes: 65536,
        schema: None,
    };
    let (resp, _) = f
        .state
        .hub
        .handle(&auth, &req)
        .expect("no 500 for a damaged record");
    assert!(resp.docs.is_empty());

    let (status, v) = get_json(&f, "/ready").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["quarantined"], 1);
    // Metrics are for the operator: the admin token reads them.
    let admin = yibiao_server::accounts::rotate_admin_token(f.state.storage.as_ref()).unwrap();
    let resp = app(f.state.clone())
        .oneshot(
            Request::get("/metrics")
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.lines().any(|l| l == "yibiao_quarantined_records 1"),
        "{text}"
    );
}

#[test]
fn the_server_refuses_to_open_a_damaged_database() {
    let f = fixture();
    let dir = f.state.config.data_dir.clone();
    drop(f.state);
    let path = dir.join("yibiao.db");
    // Every page but the header page overwritten, the write-ahead log gone.
    for side in ["yibiao.db-wal", "yibiao.db-shm"] {
        let _ = std::fs::remove_file(dir.join(side));
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096..] {
        *b = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.clone()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let Err(e) = AppState::open(config, Schema::baru_example()) else {
        panic!("a damaged database was opened");
    };
    assert!(e.contains("yibiao.db"), "{e}");
}

/// Found by the API property test (`scripts/test-api-properties.sh`): axum answers a
/// method an endpoint does not take with an empty `405`, and tower-http's timeout with an
/// empty `408`. Both are errors a client must be able to show, in the one envelope.
#[tokio::test]
async fn a_wrong_method_and_a_request_past_its_deadline_get_the_error_envelope() {
    let f = fixture();
    for (method, path) in [
        ("TRACE", "/v1/records"),
        ("DELETE", "/v1/sync"),
        ("PUT", "/healthz"),
    ] {
        let resp = app(f.state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let (code, message) = error_of(&body);
        assert_eq!(code, "method_not_allowed");
        assert!(message.contains(method), "{message}");
    }

    // A body that never finishes: the handler waits for it until the deadline.
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig {
            request_timeout_secs: Some(1),
            ..FileConfig::default()
        },
    )
    .unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    let never = tokio_stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let resp = app(state)
        .oneshot(
            Request::post("/v1/tasks")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(Body::from_stream(never))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(error_of(&body).0, "timeout");
}

/// Stores a record of `village` whose chunk does not load (as a damaged disk leaves it).
fn store_damaged(state: &AppState, village: &str) -> yibiao_model::RecordId {
    use yibiao_sync::hub::{DocWrite, HubBatch};
    let id = yibiao_model::RecordId::new();
    state
        .hub
        .storage()
        .commit(&HubBatch {
            docs: vec![DocWrite {
                id,
                entity: "household".into(),
                village: Some(village.into()),
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
    id
}

/// A device of `scope` pushes `bytes` as record `id` (and pulls); its one refusal.
fn push_as(
    state: &AppState,
    scope: yibiao_sync::DeviceScope,
    id: yibiao_model::RecordId,
    bytes: Vec<u8>,
) -> yibiao_sync::protocol::Refusal {
    let auth = yibiao_sync::DeviceAuth {
        key: "t".into(),
        scope,
        identity: yibiao_sync::hub::Identity::new(
            yibiao_model::DeviceId::new("t").unwrap(),
            [CadreId::new("staff").unwrap()],
        ),
    };
    let req = SyncRequest {
        device: "t".into(),
        cursor: 0,
        push: vec![PushDoc {
            record: WireId::from(id),
            heads: Vec::new(),
            bytes,
        }],
        max_response_bytes: 65536,
        schema: None,
    };
    let (resp, _) = state.hub.handle(&auth, &req).expect("no 500");
    assert_eq!(resp.refused.len(), 1, "{resp:?}");
    resp.refused[0].clone()
}

async fn metric_quarantined(state: &AppState) -> String {
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    let resp = app(state.clone())
        .oneshot(
            Request::get("/metrics")
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| l.starts_with("yibiao_quarantined_records "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_quarantine_list_survives_a_restart_and_ready_metric_and_cli_agree_after_a_drop() {
    let f = fixture();
    let damaged = store_damaged(&f.state, "tujiang");
    // Met by a pull: set aside.
    let auth = yibiao_sync::DeviceAuth {
        key: "t".into(),
        scope: yibiao_sync::DeviceScope::Township,
        identity: yibiao_sync::hub::Identity::new(
            yibiao_model::DeviceId::new("t").unwrap(),
            [CadreId::new("staff").unwrap()],
        ),
    };
    let req = SyncRequest {
        device: "t".into(),
        cursor: 0,
        push: Vec::new(),
        max_response_bytes: 65536,
        schema: None,
    };
    f.state.hub.handle(&auth, &req).unwrap();
    assert_eq!(get_json(&f, "/ready").await.1["quarantined"], 1);

    // Restart: a new state on the same data directory, nothing met yet.
    let config = (*f.state.config).clone();
    drop(f.state);
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let f = Fixture { state, ..f };
    assert_eq!(
        get_json(&f, "/ready").await.1["quarantined"],
        1,
        "the quarantine was forgotten by a restart"
    );
    assert_eq!(
        metric_quarantined(&f.state).await,
        "yibiao_quarantined_records 1"
    );
    let data = f.state.config.data_dir.clone();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_yibiao-server"));
    let list = yibiao_testkit::server::cli(bin, &data, &["quarantine", "list"]).unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.starts_with(&damaged.to_string()), "{list}");
    assert!(list.contains("does not load"), "{list}");

    // The operator drops it while the server runs: /ready and the metric say so at once.
    yibiao_testkit::server::cli(bin, &data, &["quarantine", "drop", &damaged.to_string()]).unwrap();
    assert_eq!(
        get_json(&f, "/ready").await.1["quarantined"],
        0,
        "/ready still counts a record the operator dropped"
    );
    assert_eq!(
        metric_quarantined(&f.state).await,
        "yibiao_quarantined_records 0"
    );
    let list = yibiao_testkit::server::cli(bin, &data, &["quarantine", "list"]).unwrap();
    assert!(list.stdout.is_empty());
}

#[test]
fn a_quarantined_record_of_another_village_is_answered_as_an_unknown_id() {
    use yibiao_sync::DeviceScope;
    let f = fixture();
    let damaged = store_damaged(&f.state, "tujiang");
    // Its own village meets it first (a push), so it is set aside.
    let own = push_as(
        &f.state,
        DeviceScope::Village("tujiang".into()),
        damaged,
        Vec::new(),
    );
    assert!(
        own.message.contains("set its copy of this record aside"),
        "{own:?}"
    );
    assert_eq!(f.state.hub.quarantined().len(), 1);

    // A phone of another village, pushing the same bytes for that id and for an id
    // nobody holds, gets the same answer: no existence oracle, no reason.
    let other = DeviceScope::Village("baru".into());
    for bytes in [Vec::new(), b"not automerge".to_vec()] {
        let quarantined = push_as(&f.state, other.clone(), damaged, bytes.clone());
        let unknown = push_as(
            &f.state,
            other.clone(),
            yibiao_model::RecordId::new(),
            bytes,
        );
        assert_eq!(quarantined.code, unknown.code);
        let unknown_text = unknown.message.replace(
            &yibiao_model::RecordId::from(unknown.record).to_string(),
            "ID",
        );
        let quarantined_text = quarantined.message.replace(&damaged.to_string(), "ID");
        assert_eq!(quarantined_text, unknown_text);
        assert!(!quarantined.message.contains("aside"), "{quarantined:?}");
        assert!(!quarantined.message.contains("tujiang"), "{quarantined:?}");
    }
}

#[tokio::test]
async fn quarantine_scan_adds_damaged_records_no_server_met_to_the_one_list() {
    let f = fixture();
    let damaged = store_damaged(&f.state, "tujiang");
    let data = f.state.config.data_dir.clone();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_yibiao-server"));
    let list = yibiao_testkit::server::cli(bin, &data, &["quarantine", "list"]).unwrap();
    assert!(list.stdout.is_empty(), "listed before anything met it");
    let scan = yibiao_testkit::server::cli(bin, &data, &["quarantine", "scan"]).unwrap();
    let scan = String::from_utf8_lossy(&scan.stdout).to_string();
    assert!(scan.starts_with(&damaged.to_string()), "{scan}");
    assert_eq!(get_json(&f, "/ready").await.1["quarantined"], 1);
}
