//! Accounts, enrolment and the department pull through `app(state).oneshot(..)`:
//! authorization in every format, bad input on every endpoint, the feed, CSV for Excel,
//! rate limits, metrics, and the OpenAPI document kept true.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::clock::SystemClock;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value as V};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::routes::openapi::document;
use yibiao_server::{AppState, accounts, app};
use yibiao_store::Store;
use yibiao_sync::protocol::{PushDoc, SyncRequest, SyncResponse, WireId, heads_to_wire};
use yibiao_sync::{DeviceAuth, DeviceScope};
use yibiao_testkit::transport::identity_of;

struct Fx {
    state: AppState,
    admin: String,
    _dir: tempfile::TempDir,
}

fn fixture_with(file: FileConfig) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let over = Overrides {
        data_dir: Some(dir.path().to_owned()),
        ..Overrides::default()
    };
    let config = Config::resolve(
        over,
        FileConfig {
            max_body_bytes: Some(64 * 1024),
            ..file
        },
    )
    .unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    Fx {
        state,
        admin,
        _dir: dir,
    }
}

fn fixture() -> Fx {
    fixture_with(FileConfig::default())
}

async fn call(
    fx: &Fx,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    // These tests read the English explanation; the language is tested in tasks.rs.
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("accept-language", "en");
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
    let resp = app(fx.state.clone())
        .oneshot(req.body(body).unwrap())
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

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

fn message(body: &[u8]) -> String {
    json_of(body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn phone(cadre: &str) -> Store {
    Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new(cadre).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap()
}

/// Pushes every pending record of `store` straight into the hub as a township device.
fn push_all(fx: &Fx, store: &Store) {
    let docs = store
        .pending(10_000)
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
        push: docs,
        max_response_bytes: 1 << 20,
        schema: None,
    };
    let auth = DeviceAuth {
        key: format!("test-{}", store.device_id()),
        scope: DeviceScope::Township,
        identity: identity_of(store),
    };
    let (resp, _): (SyncResponse, _) = fx.state.hub.handle(&auth, &req).unwrap();
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
}

fn set(f: &str, v: V) -> FieldEdit {
    FieldEdit::Set(f.into(), v)
}

/// Households in tujiang and baru (with a field public_services may not read), a hazard
/// site, and a conflicted household.
fn seed(fx: &Fx) -> (Vec<RecordId>, RecordId) {
    let a = phone("amu");
    let mut ids = Vec::new();
    for (village, head) in [("tujiang", "阿木"), ("baru", "吉克"), ("tujiang", "曲比")] {
        ids.push(
            a.create(
                "household",
                Some(village),
                &[
                    set("household_head", V::Text(head.into())),
                    set("household_size", V::Integer(4)),
                    set("toilet_type", V::Choice("pit".into())),
                    set("dibao_status", V::Choice("enrolled".into())),
                ],
            )
            .unwrap(),
        );
    }
    let hazard = a
        .create(
            "hazard_site",
            Some("tujiang"),
            &[set("hazard_type", V::Choice("landslide".into()))],
        )
        .unwrap();
    push_all(fx, &a);
    // Two phones set the size of the first household concurrently.
    let b = phone("jike");
    b.merge(ids[0], &a.export(ids[0]).unwrap()).unwrap();
    a.set(ids[0], "household_size", V::Integer(5)).unwrap();
    b.set(ids[0], "household_size", V::Integer(6)).unwrap();
    push_all(fx, &a);
    push_all(fx, &b);
    (ids, hazard)
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
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    json_of(&body)["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_department_sees_only_its_fields_and_villages_in_json_ndjson_csv_and_the_feed() {
    let fx = fixture();
    let (ids, hazard) = seed(&fx);
    let public = dept_token(&fx, "public_services").await;
    let clinic = dept_token(&fx, "tujiang_health_station").await;
    let public_fields: BTreeSet<String> = Schema::baru_example()
        .department("public_services")
        .unwrap()
        .fields_of("household")
        .iter()
        .cloned()
        .collect();

    // JSON page.
    let (status, body) = call(&fx, "GET", "/v1/records", Some(&public), None).await;
    assert_eq!(status, StatusCode::OK);
    let page = json_of(&body);
    let records = page["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        3,
        "households only: the hazard site is outside the view"
    );
    for r in records {
        assert_ne!(r["id"], json!(hazard.to_string()));
        for k in r["values"].as_object().unwrap().keys() {
            assert!(public_fields.contains(k), "leaked field {k}");
        }
        assert!(r["values"].get("toilet_type").is_none());
    }
    let first = records
        .iter()
        .find(|r| r["id"] == json!(ids[0].to_string()))
        .unwrap();
    assert_eq!(first["conflicted"], json!(true));
    let competing: BTreeSet<i64> = first["conflicts"]["household_size"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_i64().unwrap())
        .collect();
    assert_eq!(competing, BTreeSet::from([5, 6]));
    assert!(first["conflicts"]["household_size"][0]["cadre"].is_string());

    // The clinic sees tujiang only, and only its five fields.
    let (_, body) = call(&fx, "GET", "/v1/records.ndjson", Some(&clinic), None).await;
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["village"], json!("tujiang"));
        let keys: BTreeSet<&str> = l["values"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.is_subset(&BTreeSet::from([
                "household_head",
                "household_size",
                "disabled_members",
                "drinking_water",
                "phone"
            ])),
            "{keys:?}"
        );
        assert!(!keys.contains("dibao_status"));
    }
    let (status, body) = call(&fx, "GET", "/v1/records?village=baru", Some(&clinic), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        message(&body),
        "department `tujiang_health_station` does not see village `baru`"
    );

    // CSV: BOM, Chinese headers, only the view's columns, the conflict marked.
    let (status, body) = call(
        &fx,
        "GET",
        "/v1/records.csv?form=dibao_check",
        Some(&public),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..3], b"\xEF\xBB\xBF");
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    assert!(header.starts_with("记录ID id,村 village,类型 entity,已删除 deleted,有冲突的字段 conflicts,最后修改时间 changed_at,最后修改人 changed_by,户主姓名 household_head,身份证号 id_number"), "{header}");
    assert!(!header.contains("toilet_type"));
    let data: Vec<&str> = rows.collect();
    assert_eq!(data.len(), 3);
    assert!(
        data.iter()
            .any(|r| r.contains("阿木") && r.contains(",家庭人口数,") && r.contains("低保户")),
        "{data:?}"
    );
    let (status, _) = call(
        &fx,
        "GET",
        "/v1/records.csv?form=living_environment",
        Some(&public),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a form outside the view is refused"
    );

    // Feed: ordered, replayable, same projection.
    let (_, body) = call(&fx, "GET", "/v1/feed?limit=2", Some(&public), None).await;
    let f1 = json_of(&body);
    assert_eq!(f1["changes"].as_array().unwrap().len(), 2);
    assert_eq!(f1["more"], json!(true));
    let next = f1["next_cursor"].as_u64().unwrap();
    let (_, body) = call(
        &fx,
        "GET",
        &format!("/v1/feed?cursor={next}"),
        Some(&public),
        None,
    )
    .await;
    let f2 = json_of(&body);
    assert_eq!(f2["changes"].as_array().unwrap().len(), 1);
    let seqs: Vec<u64> = f1["changes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(f2["changes"].as_array().unwrap())
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    for c in f1["changes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(f2["changes"].as_array().unwrap())
    {
        assert!(c["values"].get("toilet_type").is_none());
    }
    let (_, body) = call(&fx, "GET", "/v1/feed?limit=2", Some(&public), None).await;
    assert_eq!(
        json_of(&body),
        f1,
        "replaying from the same cursor gives the same answer"
    );
}

#[tokio::test]
async fn enrolment_codes_work_once_and_revocation_takes_effect_at_once() {
    let fx = fixture();
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/admin/cadres",
        Some(&fx.admin),
        Some(json!({"id": "amu", "name": "阿木", "village": "tujiang"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/admin/cadres/amu/codes",
        Some(&fx.admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let code = json_of(&body)["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    // Typed in lowercase without the dash, it still works.
    let typed = code.replace('-', "").to_lowercase();
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/enrol",
        None,
        Some(json!({"code": typed, "device": "dev-phone-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let enrolled = json_of(&body);
    assert_eq!(enrolled["cadre"], json!("amu"));
    assert_eq!(enrolled["village"], json!("tujiang"));
    let token = enrolled["token"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/enrol",
        None,
        Some(json!({"code": code, "device": "dev-phone-2"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        message(&body),
        "this enrolment code was already used; ask for a new one"
    );
    // An expired code.
    let stale = "ABCD-EFGH";
    fx.state
        .storage
        .add_enrol_code(
            &yibiao_server::tokens::token_hash(&accounts::normalise_code(stale)),
            "amu",
            1,
            0,
        )
        .unwrap();
    let (status, body) = call(
        &fx,
        "POST",
        "/v1/enrol",
        None,
        Some(json!({"code": stale, "device": "dev-phone-3"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        message(&body),
        "this enrolment code has expired; ask for a new one"
    );
    let (_, body) = call(
        &fx,
        "POST",
        "/v1/enrol",
        None,
        Some(json!({"code": "ZZZZ-ZZZZ", "device": "dev-phone-3"})),
    )
    .await;
    assert_eq!(
        message(&body),
        "unknown enrolment code; ask the township for a new one"
    );

    // The enrolled token syncs from its own phone only, and stops the moment it is revoked.
    let sync_body = SyncRequest {
        device: "dev-phone-1".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 4096,
        schema: None,
    }
    .encode();
    let sync = |token: String, body: Vec<u8>| {
        let state = fx.state.clone();
        async move {
            let req = Request::post("/v1/sync")
                .header("authorization", format!("Bearer {token}"))
                .header("accept-language", "en")
                .body(Body::from(body))
                .unwrap();
            let resp = app(state).oneshot(req).await.unwrap();
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
    };
    assert_eq!(
        sync(token.clone(), sync_body.clone()).await.0,
        StatusCode::OK
    );
    let other_phone = SyncRequest {
        device: "dev-other".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 4096,
        schema: None,
    }
    .encode();
    let (status, body) = sync(token.clone(), other_phone).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&body).starts_with("this token belongs to another phone"));
    // One device id everywhere: enrolment answers the phone's own id (the one its changes,
    // conflicts and history carry), the device list shows it, and revocation takes it.
    let device_key = enrolled["device"].as_str().unwrap();
    assert_eq!(device_key, "dev-phone-1");
    let (_, body) = call(&fx, "GET", "/v1/admin/devices", Some(&fx.admin), None).await;
    let body = json_of(&body);
    assert!(
        body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["phone_device"] == "dev-phone-1" && d["last_seen_ms"].as_i64().is_some()),
        "the synced phone has a last-seen time: {body}"
    );
    let (status, _) = call(
        &fx,
        "POST",
        &format!("/v1/admin/devices/{device_key}/revoke"),
        Some(&fx.admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = sync(token, sync_body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        message(&body),
        "this device token was revoked; enrol the phone again"
    );

    // Department tokens too.
    let dept = dept_token(&fx, "public_services").await;
    assert_eq!(
        call(&fx, "GET", "/v1/records", Some(&dept), None).await.0,
        StatusCode::OK
    );
    let (_, body) = call(
        &fx,
        "GET",
        "/v1/admin/department-tokens",
        Some(&fx.admin),
        None,
    )
    .await;
    let key = json_of(&body)["tokens"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &fx,
        "POST",
        &format!("/v1/admin/department-tokens/{key}/revoke"),
        Some(&fx.admin),
        None,
    )
    .await;
    let (status, body) = call(&fx, "GET", "/v1/records.ndjson", Some(&dept), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        message(&body),
        "this department token was revoked; ask the operator for a new one"
    );
}

#[tokio::test]
async fn every_endpoint_answers_bad_input_with_a_clear_4xx_and_changes_nothing() {
    let fx = fixture();
    seed(&fx);
    let dept = dept_token(&fx, "public_services").await;
    let a = fx.admin.clone();
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<Value>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "GET",
            "/v1/records?limit=abc",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `limit`: expected a whole number from 1 to 1000, got \"abc\"",
        ),
        (
            "GET",
            "/v1/records?limit=0",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `limit`: expected a whole number from 1 to 1000, got \"0\"",
        ),
        (
            "GET",
            "/v1/records?after=yesterday",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `after`: bad record id \"yesterday\"",
        ),
        (
            "GET",
            "/v1/records?colour=red",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "unknown query parameter `colour`; this endpoint takes: limit, after, entity, village, include_deleted",
        ),
        (
            "GET",
            "/v1/records?entity=castle",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `entity`: unknown entity type `castle`",
        ),
        (
            "GET",
            "/v1/records?entity=hazard_site",
            Some(&dept),
            None,
            StatusCode::FORBIDDEN,
            "department `public_services` does not see `hazard_site` records",
        ),
        (
            "GET",
            "/v1/records?village=atlantis",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `village`: unknown village `atlantis`",
        ),
        (
            "GET",
            "/v1/records?include_deleted=maybe",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `include_deleted`: expected true or false, got \"maybe\"",
        ),
        (
            "GET",
            "/v1/records.ndjson?limit=5",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "unknown query parameter `limit`; this endpoint takes: entity, village, include_deleted",
        ),
        (
            "GET",
            "/v1/records.csv?form=nope",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `form`: unknown form `nope`",
        ),
        (
            "GET",
            "/v1/feed?cursor=-1",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `cursor`: expected the `next_cursor` of a previous answer (a whole number), got \"-1\"",
        ),
        (
            "GET",
            "/v1/feed?cursor=abc",
            Some(&dept),
            None,
            StatusCode::BAD_REQUEST,
            "query parameter `cursor`: expected the `next_cursor` of a previous answer (a whole number), got \"abc\"",
        ),
        (
            "GET",
            "/v1/records",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <department token>` header",
        ),
        (
            "GET",
            "/v1/records",
            Some(&a),
            None,
            StatusCode::UNAUTHORIZED,
            "this is not a department token (department tokens start with ybk_)",
        ),
        (
            "GET",
            "/v1/admin/cadres",
            Some(&dept),
            None,
            StatusCode::UNAUTHORIZED,
            "this is not the admin token (it starts with yba_)",
        ),
        (
            "GET",
            "/v1/admin/devices",
            Some("yba_wrong"),
            None,
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        ),
        (
            "POST",
            "/v1/admin/cadres",
            Some(&a),
            Some(json!({"id": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid JSON body: missing field `name`",
        ),
        (
            "POST",
            "/v1/admin/cadres",
            Some(&a),
            Some(json!({"id": "x", "name": "y", "role": "boss"})),
            StatusCode::BAD_REQUEST,
            "invalid JSON body: unknown field `role`",
        ),
        (
            "POST",
            "/v1/admin/cadres",
            Some(&a),
            Some(json!({"id": "王五", "name": "王五"})),
            StatusCode::BAD_REQUEST,
            "bad cadre id \"王五\": use ASCII letters, digits and - _ . @ only",
        ),
        (
            "POST",
            "/v1/admin/cadres",
            Some(&a),
            Some(json!({"id": "x", "name": "y", "village": "atlantis"})),
            StatusCode::BAD_REQUEST,
            "unknown village `atlantis`; the schema has: baru, heping, lianhe, shanzhong, tujiang, xinmin",
        ),
        (
            "POST",
            "/v1/admin/cadres/nobody/codes",
            Some(&a),
            None,
            StatusCode::NOT_FOUND,
            "no cadre `nobody`",
        ),
        (
            "POST",
            "/v1/admin/cadres/nobody/codes",
            Some(&a),
            Some(json!({"ttl_minutes": 0})),
            StatusCode::BAD_REQUEST,
            "ttl_minutes must be between 1 and 10080 (a week)",
        ),
        (
            "POST",
            "/v1/admin/departments/treasury/tokens",
            Some(&a),
            None,
            StatusCode::NOT_FOUND,
            "unknown department `treasury`; the schema has: administration, discipline_inspection, emergency_management, party_building, public_services, rural_revitalisation, social_governance, tujiang_health_station",
        ),
        (
            "POST",
            "/v1/admin/devices/dev-nope/revoke",
            Some(&a),
            None,
            StatusCode::NOT_FOUND,
            "no device `dev-nope`",
        ),
        (
            "POST",
            "/v1/admin/department-tokens/key-nope/revoke",
            Some(&a),
            None,
            StatusCode::NOT_FOUND,
            "no department token `key-nope`",
        ),
        (
            "POST",
            "/v1/enrol",
            None,
            Some(json!({"code": "12"})),
            StatusCode::BAD_REQUEST,
            "invalid JSON body: missing field `device`",
        ),
        (
            "POST",
            "/v1/enrol",
            None,
            Some(json!({"code": "12", "device": "d"})),
            StatusCode::UNAUTHORIZED,
            "an enrolment code has 8 letters and digits, like K7PM-Q2XD",
        ),
        (
            "POST",
            "/v1/enrol",
            None,
            Some(json!({"code": "ABCD-EFGH", "device": "手机"})),
            StatusCode::BAD_REQUEST,
            "bad device id \"手机\": use ASCII letters, digits and - _ . @ only",
        ),
        (
            "GET",
            "/v1/nothing-here",
            None,
            None,
            StatusCode::NOT_FOUND,
            "no such endpoint; see /openapi.json",
        ),
    ];
    let before = call(&fx, "GET", "/v1/feed", Some(&dept), None).await.1;
    for (method, uri, token, body, want_status, want) in cases {
        let (status, resp) = call(&fx, method, uri, token, body).await;
        assert_eq!(
            status,
            want_status,
            "{method} {uri}: {}",
            String::from_utf8_lossy(&resp)
        );
        let got = message(&resp);
        assert!(got.starts_with(want), "{method} {uri}: {got}");
    }
    // Oversized body.
    let big = json!({"id": "x", "name": "y".repeat(100_000)});
    let (status, resp) = call(&fx, "POST", "/v1/admin/cadres", Some(&fx.admin), Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&resp)["error"]["code"], json!("too_large"));
    // A duplicate cadre is a conflict, and nothing changed through all of this.
    call(
        &fx,
        "POST",
        "/v1/admin/cadres",
        Some(&a),
        Some(json!({"id": "amu", "name": "阿木"})),
    )
    .await;
    let (status, resp) = call(
        &fx,
        "POST",
        "/v1/admin/cadres",
        Some(&a),
        Some(json!({"id": "amu", "name": "阿木", "village": "baru"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(message(&resp), "cadre `amu` already exists");
    let (_, cadres) = call(&fx, "GET", "/v1/admin/cadres", Some(&a), None).await;
    assert_eq!(json_of(&cadres)["cadres"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(&fx, "GET", "/v1/feed", Some(&dept), None).await.1,
        before
    );
}

#[tokio::test]
async fn a_token_that_floods_the_server_is_told_to_wait_while_others_pass() {
    let fx = fixture_with(FileConfig {
        rate_per_minute: Some(60),
        rate_burst: Some(3),
        ..FileConfig::default()
    });
    let greedy = dept_token(&fx, "public_services").await;
    let polite = dept_token(&fx, "administration").await;
    for _ in 0..3 {
        assert_eq!(
            call(&fx, "GET", "/v1/records", Some(&greedy), None).await.0,
            StatusCode::OK
        );
    }
    let resp = app(fx.state.clone())
        .oneshot(
            Request::get("/v1/records")
                .header("authorization", format!("Bearer {greedy}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        call(&fx, "GET", "/v1/records", Some(&polite), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_syncs_refusals_and_department_reads() {
    let fx = fixture();
    seed(&fx);
    let (_, token) = accounts::register_device(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "p",
        None,
        Some("tujiang"),
    )
    .unwrap();
    let body = SyncRequest {
        device: "dev-m".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 65536,
        schema: None,
    }
    .encode();
    let req = Request::post("/v1/sync")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(
        app(fx.state.clone()).oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let dept = dept_token(&fx, "public_services").await;
    call(&fx, "GET", "/v1/records.ndjson", Some(&dept), None).await;
    // `/metrics` takes the admin token (or a configured metrics token) now.
    let (status, body) = call(&fx, "GET", "/metrics", Some(&fx.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for line in [
        "yibiao_syncs_total 1",
        "yibiao_sync_docs_sent_total 3",
        "yibiao_records 4",
        "yibiao_department_records_total{format=\"ndjson\"} 3",
        "yibiao_sync_duration_seconds_count 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_that_answer() {
    let fx = fixture();
    // The document is generated from the same routers `app` serves (`routes::api`); an
    // undocumented `.route(..)` is refused by clippy (`server/clippy.toml`). Here: every
    // documented operation is routed, no other method answers on a documented path,
    // every path parameter is declared, and every operation says who may call it.
    let doc = serde_json::to_value(document()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(['{', '}']);
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{method} {path}: `{name}` is not a documented parameter"
                );
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
        }
    }
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let uri = path
            .replace("{id}", "x")
            .replace("{key}", "x")
            .replace("{department}", "x")
            .replace("{task}", "x");
        for method in ["get", "post", "put", "patch", "delete"] {
            let (status, body) = call(&fx, &method.to_uppercase(), &uri, None, None).await;
            if !documented.contains(&(method.to_owned(), path.clone())) {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} answers but is not documented"
                );
                continue;
            }
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is not routed"
            );
            if status == StatusCode::NOT_FOUND {
                assert_ne!(
                    message(&body),
                    "no such endpoint; see /openapi.json",
                    "{method} {path} is not routed"
                );
            }
        }
    }
    let (status, body) = call(&fx, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), doc);
}

/// Households for the exports: an 18-digit ID and a phone number, option labels, a
/// boolean, a conflict between two named cadres, and a deleted record. The cadres and
/// the pushing device are registered so names can be shown.
fn seed_for_export(fx: &Fx) -> RecordId {
    use yibiao_server::storage::{CadreRow, DeviceRow};
    for (id, name) in [("amu", "阿木"), ("jike", "吉克")] {
        let row = CadreRow {
            id: id.into(),
            name: name.into(),
            village: Some("tujiang".into()),
            created_ms: 0,
        };
        assert!(fx.state.storage.add_cadre(&row).unwrap());
    }
    let (a, b) = (phone("amu"), phone("jike"));
    for (store, cadre) in [(&a, "amu"), (&b, "jike")] {
        let row = DeviceRow {
            key: format!("test-{}", store.device_id()),
            name: format!("{cadre}'s phone"),
            cadre: Some(cadre.into()),
            village: Some("tujiang".into()),
            created_ms: 0,
            revoked_ms: None,
            phone_device: None,
        };
        fx.state.storage.add_device(&row, cadre.as_bytes()).unwrap();
    }
    let id = a
        .create(
            "household",
            Some("tujiang"),
            &[
                set("household_head", V::Text("阿木".into())),
                set("id_number", V::Text("513401198505052226".into())),
                set("phone", V::Text("13800138000".into())),
                set("household_size", V::Integer(4)),
                set("dibao_status", V::Choice("enrolled".into())),
                set(
                    "income_sources",
                    V::MultiChoice(vec!["farming".into(), "wages".into()]),
                ),
                set("housing_safe", V::Boolean(true)),
            ],
        )
        .unwrap();
    let gone = a
        .create(
            "household",
            Some("baru"),
            &[set("household_head", V::Text("曲比".into()))],
        )
        .unwrap();
    a.delete(gone).unwrap();
    push_all(fx, &a);
    b.merge(id, &a.export(id).unwrap()).unwrap();
    a.set(id, "household_size", V::Integer(5)).unwrap();
    b.set(id, "household_size", V::Integer(6)).unwrap();
    push_all(fx, &a);
    push_all(fx, &b);
    id
}

#[tokio::test]
async fn the_xlsx_export_keeps_id_numbers_as_text_and_shows_labels_conflicts_and_deletions() {
    use calamine::{Data, Reader};
    let fx = fixture();
    let id = seed_for_export(&fx);
    let public = dept_token(&fx, "public_services").await;
    let (status, body) = call(
        &fx,
        "GET",
        "/v1/records.xlsx?form=dibao_check&include_deleted=1",
        Some(&public),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    let (labels, keys) = (rows[0], rows[1]);
    let col = |key: &str| {
        keys.iter()
            .position(|k| k == &Data::String(key.into()))
            .unwrap_or_else(|| panic!("no column {key}: {keys:?}"))
    };
    assert_eq!(labels[col("id_number")], Data::String("身份证号".into()));
    assert_eq!(
        labels[col("household_head")],
        Data::String("户主姓名".into())
    );
    assert_eq!(labels[col("deleted")], Data::String("已删除".into()));
    assert!(
        !keys.contains(&Data::String("toilet_type".into())),
        "outside the form"
    );
    assert_eq!(rows.len(), 4, "two header rows, two records (one deleted)");
    let row = rows
        .iter()
        .find(|r| r[col("id")] == Data::String(id.to_string()))
        .unwrap();
    let text = |c: &str| match &row[col(c)] {
        Data::String(s) => s.clone(),
        other => panic!("{c} is not text: {other:?}"),
    };
    assert_eq!(
        text("id_number"),
        "513401198505052226",
        "18 digits, as text"
    );
    assert_eq!(text("phone"), "13800138000");
    assert_eq!(text("dibao_status"), "低保户");
    assert_eq!(text("income_sources"), "种植、务工");
    assert_eq!(text("housing_safe"), "是");
    assert_eq!(text("village"), "土匠村");
    assert_eq!(text("deleted"), "否");
    assert_eq!(text("conflicts"), "家庭人口数");
    let size = text("household_size");
    assert!(
        size.contains("5 (")
            && size.contains("6 (")
            && size.contains("阿木")
            && size.contains("吉克"),
        "both competing values with who: {size}"
    );
    assert!(["阿木", "吉克"].contains(&text("changed_by").as_str()));
    assert!(text("changed_at").starts_with("20"));
    let deleted = rows[2..]
        .iter()
        .filter(|r| r[col("deleted")] == Data::String("是".into()));
    assert_eq!(deleted.count(), 1);

    // The CSV has the same columns and cells.
    let (_, body) = call(
        &fx,
        "GET",
        "/v1/records.csv?form=dibao_check",
        Some(&public),
        None,
    )
    .await;
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("身份证号 id_number") && header.contains("已删除 deleted"),
        "{header}"
    );
    assert!(
        text.contains("513401198505052226")
            && text.contains("种植、务工")
            && text.contains("低保户")
    );
    // English labels on request.
    let (_, body) = call(
        &fx,
        "GET",
        "/v1/records.xlsx?form=dibao_check&lang=en",
        Some(&public),
        None,
    )
    .await;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let first: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(
        first.contains(&"Resident ID number".to_owned()),
        "{first:?}"
    );
    let (status, body) = call(&fx, "GET", "/v1/records.xlsx?lang=fr", Some(&public), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("lang"));
}
