//! Snapshots of HTTP response bodies (insta): the error envelope, a department's JSON
//! page, NDJSON and CSV heads, a task's progress, the summary, the burden report and the
//! OpenAPI document. A change to any shape shows up as a diff to review. Ids, times and
//! tokens are redacted, so the snapshots hold only what a change of code can change.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::clock::ManualClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value as V};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, accounts, app};
use yibiao_store::Store;
use yibiao_sync::protocol::{PushDoc, SyncRequest, WireId, heads_to_wire};
use yibiao_sync::{DeviceAuth, DeviceScope};
use yibiao_testkit::transport::identity_of;

/// 2026-01-15 10:00 UTC+8: when the phone typed and the server's clock stands.
const NOW_MS: i64 = 1_768_442_400_000;

/// Keys whose values differ from run to run.
const VOLATILE: &[&str] = &[
    "id",
    "next",
    "task",
    "document",
    "token",
    "key",
    "created_ms",
    "generated_ms",
    "expires_ms",
];

struct Fx {
    state: AppState,
    admin: String,
    dept: String,
    _dir: tempfile::TempDir,
}

/// A server whose clock stands at [`NOW_MS`], with three households typed on one phone.
async fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap());
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let state = AppState::with_clock(config, Schema::baru_example(), storage, clock.clone());
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    let phone = Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        clock,
    )
    .unwrap();
    for (village, head, size) in [
        ("tujiang", "阿木", 4),
        ("baru", "吉克", 3),
        ("tujiang", "曲比", 5),
    ] {
        phone
            .create(
                "household",
                Some(village),
                &[
                    FieldEdit::Set("household_head".into(), V::Text(head.into())),
                    FieldEdit::Set("household_size".into(), V::Integer(size)),
                    FieldEdit::Set("dibao_status".into(), V::Choice("enrolled".into())),
                ],
            )
            .unwrap();
    }
    push_all(&state, &phone);
    let (_, dept) = accounts::issue_department_token(
        state.storage.as_ref(),
        state.hub.schema(),
        "public_services",
        "snapshots",
    )
    .unwrap();
    Fx {
        state,
        admin,
        dept,
        _dir: dir,
    }
}

fn push_all(state: &AppState, store: &Store) {
    let push = store
        .pending(100)
        .unwrap()
        .into_iter()
        .map(|p| PushDoc {
            record: WireId::from(p.id),
            heads: heads_to_wire(&store.heads(p.id).unwrap()),
            bytes: store.export(p.id).unwrap(),
        })
        .collect();
    let req = SyncRequest {
        device: store.device_id().to_string(),
        cursor: 0,
        push,
        max_response_bytes: 1 << 20,
        schema: None,
    };
    let auth = DeviceAuth {
        key: "snapshot-phone".into(),
        scope: DeviceScope::Township,
        identity: identity_of(store),
    };
    let (resp, _) = state.hub.handle(&auth, &req).unwrap();
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
}

async fn call(
    fx: &Fx,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app(fx.state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// Replaces the values of [`VOLATILE`] keys, at any depth, by `"[redacted]"`.
fn redact(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                        *x = json!("[redacted]");
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn json_of(body: &[u8]) -> Value {
    redact(serde_json::from_slice(body).unwrap())
}

#[tokio::test]
async fn sync_error_envelope() {
    let fx = fixture().await;
    let (status, body) = call(&fx, "POST", "/v1/sync", None, Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("sync_unauthorized", json_of(&body));
    let (_, token) = accounts::register_device(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "p",
        None,
        Some("tujiang"),
    )
    .unwrap();
    let (status, body) = call(&fx, "POST", "/v1/sync", Some(&token), Body::from("hello")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("sync_not_a_sync_message", json_of(&body));
}

#[tokio::test]
async fn department_pull_in_json_ndjson_and_csv() {
    let fx = fixture().await;
    let dept = Some(fx.dept.as_str());
    let (status, body) = call(&fx, "GET", "/v1/records?limit=2", dept, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("records_page", json_of(&body));

    let (status, body) = call(&fx, "GET", "/v1/records.ndjson", dept, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .take(2)
        .map(|l| redact(serde_json::from_str(l).unwrap()))
        .collect();
    insta::assert_json_snapshot!("records_ndjson_head", lines);

    let (status, body) = call(
        &fx,
        "GET",
        "/v1/records.csv?form=dibao_check",
        dept,
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..3], b"\xEF\xBB\xBF", "a BOM for Excel");
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    // The first column is the record id.
    let head: Vec<String> = text
        .lines()
        .take(3)
        .enumerate()
        .map(|(i, l)| match (i, l.split_once(',')) {
            (0, _) | (_, None) => l.to_owned(),
            (_, Some((_, rest))) => format!("[id],{rest}"),
        })
        .collect();
    insta::assert_snapshot!("records_csv_head", head.join("\n"));
}

#[tokio::test]
async fn task_progress_summary_and_burden() {
    let fx = fixture().await;
    let task = json!({
        "title": "低保复核",
        "instructions": "核查家庭收入",
        "form": "dibao_check",
        "due": "2026-01-31",
        "villages": ["tujiang", "baru"],
    });
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/tasks",
        Some(&fx.dept),
        Body::from(task.to_string()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    insta::assert_json_snapshot!("task_progress", json_of(&body));

    let (status, body) = call(&fx, "GET", "/v1/summary", Some(&fx.dept), Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("summary", json_of(&body));

    let (status, body) = call(
        &fx,
        "GET",
        "/v1/burden?from=2026-01-15&to=2026-01-15",
        Some(&fx.admin),
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("burden", json_of(&body));
}

#[tokio::test]
async fn openapi_document() {
    let fx = fixture().await;
    let (status, body) = call(&fx, "GET", "/openapi.json", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}
