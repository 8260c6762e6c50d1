//! Findings over HTTP on a real SQLite file (ADR 0012): each role's permitted steps pass
//! and its forbidden ones are refused `403 finding_forbidden` naming role, step and why;
//! a department sees only what was handed to it; the report's figures on a case worked
//! by hand.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::Schema;
use yibiao_model::clock::ManualClock;
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, accounts, app};

/// 2026-11-24 09:00 in UTC+8.
const MORNING: i64 = 1_795_482_000_000;
const HOUR: i64 = 3_600_000;

struct Fx {
    state: AppState,
    clock: Arc<ManualClock>,
    admin: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fx {
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
    let clock = Arc::new(ManualClock::new(MORNING));
    let state = AppState::with_clock(config, Schema::baru_example(), storage, clock.clone());
    let admin = accounts::rotate_admin_token(state.storage.as_ref()).unwrap();
    Fx {
        state,
        clock,
        admin,
        _dir: dir,
    }
}

async fn call(
    fx: &Fx,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_in(fx, "en", method, uri, token, body).await
}

async fn call_in(
    fx: &Fx,
    lang: &str,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("accept-language", lang);
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
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

async fn dept_token(fx: &Fx, dept: &str) -> String {
    let (status, body) = call(
        fx,
        "POST",
        &format!("/v1/admin/departments/{dept}/tokens"),
        &fx.admin,
        Some(json!({"name": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn get_bytes(fx: &Fx, uri: &str, token: &str) -> Vec<u8> {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app(fx.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

fn new_finding(village: &str, category: &str) -> Value {
    json!({"village": village, "category": category, "description": "村口建筑垃圾未清运",
           "photos": ["att-1"], "severity": "medium"})
}

async fn record(fx: &Fx, token: &str, village: &str, category: &str) -> String {
    let (s, b) = call(
        fx,
        "POST",
        "/v1/findings",
        token,
        Some(new_finding(village, category)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// Takes a step; returns the status and body.
async fn step(fx: &Fx, token: &str, id: &str, kind: Value) -> (StatusCode, Value) {
    call(
        fx,
        "POST",
        &format!("/v1/findings/{id}/steps"),
        token,
        Some(kind),
    )
    .await
}

/// Asserts a step is refused for the role with `why`.
async fn refused(fx: &Fx, token: &str, id: &str, kind: Value, role: &str, name: &str, why: &str) {
    let (s, b) = step(fx, token, id, kind).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{role} {name}: {b}");
    let e = &b["error"];
    assert_eq!(e["reason"], "finding_forbidden", "{b}");
    assert_eq!(
        (
            e["params"]["role"].as_str(),
            e["params"]["step"].as_str(),
            e["params"]["why"].as_str()
        ),
        (Some(role), Some(name), Some(why)),
        "{b}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("may not take step `{name}`")),
        "{b}"
    );
}

fn hand(unit: Value, deadline_ms: i64) -> Value {
    json!({"hand_over": {"unit": unit, "deadline_ms": deadline_ms}})
}

fn resolve(unit: Value) -> Value {
    json!({"resolve": {"unit": unit, "note": "已清运", "evidence": ["att-2"]}})
}

fn hold() -> Value {
    json!({"hold_to_account": {"who": "村主任", "measure": "提醒谈话"}})
}

#[tokio::test]
async fn each_role_takes_its_steps_over_http_and_is_refused_the_others_with_a_reason() {
    let fx = fixture();
    let admin = fx.admin.clone();
    let disc = dept_token(&fx, "discipline_inspection").await;
    let works = dept_token(&fx, "public_services").await;
    let other = dept_token(&fx, "administration").await;
    let works_unit = json!({"department": "public_services"});

    // Recording: the township and the discipline office may; a department may not.
    let id = record(&fx, &disc, "tujiang", "living_environment").await;
    record(&fx, &admin, "shanzhong", "work_style").await;
    let (s, b) = call(
        &fx,
        "POST",
        "/v1/findings",
        &works,
        Some(new_finding("tujiang", "x")),
    )
    .await;
    assert_eq!(
        (s, b["error"]["params"]["step"].as_str()),
        (StatusCode::FORBIDDEN, Some("record")),
        "{b}"
    );

    // A department sees nothing not handed to it: unknown, not forbidden.
    let (s, _) = step(&fx, &works, &id, resolve(works_unit.clone())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = call(&fx, "GET", "/v1/findings", &works, None).await;
    assert_eq!(b["findings"].as_array().unwrap().len(), 0);

    // Hand-over: the township office (and discipline); never to another village.
    refused(
        &fx,
        &admin,
        &id,
        hand(json!({"village": "shanzhong"}), MORNING),
        "township",
        "hand_over",
        "other_village",
    )
    .await;
    let (s, b) = step(
        &fx,
        &admin,
        &id,
        hand(works_unit.clone(), MORNING + 48 * HOUR),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["lifecycle"]["state"], "handed_over");
    let (_, b) = call(&fx, "GET", "/v1/findings", &works, None).await;
    assert_eq!(
        b["findings"].as_array().unwrap().len(),
        1,
        "handed to it: seen"
    );
    let (_, b) = call(&fx, "GET", "/v1/findings", &other, None).await;
    assert_eq!(b["findings"].as_array().unwrap().len(), 0);
    let (_, b) = call(&fx, "GET", "/v1/findings", &admin, None).await;
    assert_eq!(
        b["findings"].as_array().unwrap().len(),
        2,
        "the township sees all"
    );

    // The responsible department resolves; it may not hand over, verify or hold to account.
    refused(
        &fx,
        &works,
        &id,
        hand(works_unit.clone(), MORNING),
        "department:public_services",
        "hand_over",
        "role",
    )
    .await;
    refused(
        &fx,
        &works,
        &id,
        json!("accept"),
        "department:public_services",
        "accept",
        "role",
    )
    .await;
    refused(
        &fx,
        &works,
        &id,
        hold(),
        "department:public_services",
        "hold_to_account",
        "role",
    )
    .await;
    refused(
        &fx,
        &admin,
        &id,
        resolve(works_unit.clone()),
        "township",
        "resolve",
        "role",
    )
    .await;
    let (s, b) = step(&fx, &works, &id, resolve(works_unit.clone())).await;
    assert_eq!(
        (s, b["lifecycle"]["state"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{b}"
    );

    // Verification: the office sends back; only the discipline office holds to account.
    refused(
        &fx,
        &works,
        &id,
        json!({"send_back": {"reason": "x"}}),
        "department:public_services",
        "send_back",
        "role",
    )
    .await;
    let (s, b) = step(
        &fx,
        &disc,
        &id,
        json!({"send_back": {"reason": "仍有残留"}}),
    )
    .await;
    assert_eq!(
        (s, b["lifecycle"]["state"].as_str()),
        (StatusCode::OK, Some("sent_back")),
        "{b}"
    );
    refused(
        &fx,
        &admin,
        &id,
        hold(),
        "township",
        "hold_to_account",
        "role",
    )
    .await;
    let (s, b) = step(&fx, &disc, &id, hold()).await;
    assert_eq!(
        (s, b["lifecycle"]["held_to_account"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    fx.clock.advance(72 * HOUR);
    let (s, _) = step(&fx, &works, &id, resolve(works_unit.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = step(&fx, &admin, &id, json!("accept")).await;
    assert_eq!(
        (s, b["lifecycle"]["state"].as_str()),
        (StatusCode::OK, Some("closed")),
        "{b}"
    );
    assert_eq!(b["overdue"], true, "resolved after its deadline");
    // A step after closure is kept in the log, marked superseded.
    let (s, b) = step(&fx, &admin, &id, json!("accept")).await;
    assert_eq!(s, StatusCode::OK);
    let steps = b["lifecycle"]["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["superseded"], "closed");
}

/// Three findings on 2026-11-24, one on 11-30, the report read on 11-30:
///
/// | finding | village | category | log | as of 11-30 |
/// |---|---|---|---|---|
/// | A | tujiang | living_environment | hand +1 h (due +24 h), resolve +5 h, accept | on time, 4 h |
/// | B | tujiang | work_style | hand +1 h (due +24 h) | overdue |
/// | C | shanzhong | living_environment | none | found |
/// | D | shanzhong | work_style | found 11-30: outside the period | |
#[tokio::test]
async fn the_report_counts_the_period_as_worked_by_hand_and_only_the_offices_read_it() {
    let fx = fixture();
    let admin = fx.admin.clone();
    let village = json!({"village": "tujiang"});
    let a = record(&fx, &admin, "tujiang", "living_environment").await;
    let b = record(&fx, &admin, "tujiang", "work_style").await;
    record(&fx, &admin, "shanzhong", "living_environment").await;
    fx.clock.advance(HOUR);
    for id in [&a, &b] {
        let (s, _) = step(&fx, &admin, id, hand(village.clone(), MORNING + 25 * HOUR)).await;
        assert_eq!(s, StatusCode::OK);
    }
    // The village's resolution arrives as a phone would push it: through the hub.
    fx.clock.advance(4 * HOUR);
    let id: yibiao_model::RecordId = a.parse().unwrap();
    let resolve_step = yibiao_model::finding::Step::new(
        serde_json::from_value(resolve(village.clone())).unwrap(),
        yibiao_model::finding::Actor::Cadre("amu".into()),
        MORNING + 5 * HOUR,
    );
    let author = yibiao_model::Author {
        cadre: yibiao_model::CadreId::new("amu").unwrap(),
        device: yibiao_model::DeviceId::new("dev-a").unwrap(),
    };
    fx.state
        .hub
        .update_server_docs(&[id], |r| {
            yibiao_model::finding::append_step(r, &resolve_step, &author, MORNING + 5 * HOUR)?;
            Ok(true)
        })
        .unwrap();
    let (s, _) = step(&fx, &admin, &a, json!("accept")).await;
    assert_eq!(s, StatusCode::OK);
    fx.clock.advance(6 * 24 * HOUR - 5 * HOUR);
    record(&fx, &admin, "shanzhong", "work_style").await;

    let (s, r) = call(
        &fx,
        "GET",
        "/v1/findings/report?from=2026-11-24&to=2026-11-27",
        &admin,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let t = &r["total"];
    let fig = |row: &Value| {
        [
            "found",
            "handed_over",
            "resolved",
            "resolved_on_time",
            "overdue",
            "sent_back",
            "held_to_account",
            "closed",
        ]
        .map(|k| row[k].as_u64().unwrap())
    };
    assert_eq!(fig(t), [3, 2, 1, 1, 1, 0, 0, 1]);
    assert_eq!(t["avg_resolve_ms"], 4 * HOUR);
    let row = |list: &str, key: &str| {
        r[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(fig(&row("by_village", "tujiang")), [2, 2, 1, 1, 1, 0, 0, 1]);
    assert_eq!(
        fig(&row("by_village", "shanzhong")),
        [1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        fig(&row("by_category", "living_environment")),
        [2, 1, 1, 1, 0, 0, 0, 1]
    );
    assert_eq!(fig(&row("by_unit", "unassigned")), [1, 0, 0, 0, 0, 0, 0, 0]);

    // The same figures as a workbook, read back with calamine.
    let xlsx = get_bytes(
        &fx,
        "/v1/findings/report.xlsx?from=2026-11-24&to=2026-11-27",
        &admin,
    )
    .await;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    use calamine::Reader;
    assert_eq!(book.sheet_names(), ["按类别", "按村", "按责任单位"]);
    let villages = book.worksheet_range("按村").unwrap();
    let cells: Vec<Vec<String>> = villages
        .rows()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(cells[0][..4], ["村", "代码", "发现", "已移交"]);
    assert_eq!(cells[1][..3], ["山中村", "shanzhong", "1"], "{cells:?}");
    assert_eq!(
        cells[2][..7],
        ["土匠村", "tujiang", "2", "2", "1", "1", "1"],
        "{cells:?}"
    );
    assert_eq!(cells[3][..3], ["合计", "", "3"], "{cells:?}");
    assert_eq!(
        (cells[2][10].as_str(), cells[2][11].as_str()),
        ("4", "0.5"),
        "4 h; 1 of 2 on time"
    );

    // The discipline office reads it; another department may not; a bad day is 400.
    let disc = dept_token(&fx, "discipline_inspection").await;
    let (s, _) = call(
        &fx,
        "GET",
        "/v1/findings/report?from=2026-11-24&to=2026-11-27",
        &disc,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let works = dept_token(&fx, "public_services").await;
    let (s, b) = call(
        &fx,
        "GET",
        "/v1/findings/report?from=2026-11-24&to=2026-11-27",
        &works,
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("finding_forbidden"))
    );
    let (s, b) = call(
        &fx,
        "GET",
        "/v1/findings/report?from=2026-11-31&to=2026-12-01",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_day")),
        "{b}"
    );
}

/// Categories from the schema: a category it does not name is refused `400
/// unknown_category` in the caller's language with the choices; a hand-over that leaves
/// out its unit or deadline takes the category's, written out in the log; one whose
/// category cannot give them is refused `hand_over_needs`.
#[tokio::test]
async fn a_hand_over_takes_the_category_defaults_and_an_unknown_category_is_refused() {
    const DAY: i64 = 24 * HOUR;
    let fx = fixture();
    let disc = dept_token(&fx, "discipline_inspection").await;
    for (lang, want) in [
        (
            "zh",
            "问题类别「dust」不在本镇的类别中；可选：疫情防控 (epidemic_prevention)",
        ),
        (
            "en",
            "finding category `dust` is not one of this township's; choose one of: Epidemic prevention (epidemic_prevention)",
        ),
    ] {
        let (s, b) = call_in(
            &fx,
            lang,
            "POST",
            "/v1/findings",
            &disc,
            Some(new_finding("tujiang", "dust")),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["error"]["reason"], "unknown_category", "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().starts_with(want),
            "{lang}: {b}"
        );
    }
    let (_, listed) = call(&fx, "GET", "/v1/findings", &disc, None).await;
    assert_eq!(
        listed["findings"].as_array().unwrap().len(),
        0,
        "nothing was recorded"
    );

    // Living environment: the village it is about, in 7 days.
    let env = record(&fx, &disc, "tujiang", "living_environment").await;
    let (s, b) = step(&fx, &disc, &env, json!({"hand_over": {}})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["lifecycle"]["unit"], json!({"village": "tujiang"}), "{b}");
    assert_eq!(b["lifecycle"]["deadline_ms"], MORNING + 7 * DAY, "{b}");
    let logged = &b["lifecycle"]["steps"][0]["step"]["kind"]["hand_over"];
    assert_eq!(logged["deadline_ms"], MORNING + 7 * DAY, "written out: {b}");

    // Livelihood funds: the civil-affairs office; a deadline named wins over 10 days.
    let funds = record(&fx, &disc, "tujiang", "livelihood_funds").await;
    let (s, b) = step(
        &fx,
        &disc,
        &funds,
        json!({"hand_over": {"deadline_ms": MORNING + DAY}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["lifecycle"]["unit"],
        json!({"department": "public_services"}),
        "{b}"
    );
    assert_eq!(b["lifecycle"]["deadline_ms"], MORNING + DAY, "{b}");

    // A township-level finding of a category handed to "the village" must name its unit.
    let (s, b) = call(&fx, "POST", "/v1/findings", &disc,
        Some(json!({"category": "living_environment", "description": "镇政府门口垃圾", "severity": "low"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let town = b["id"].as_str().unwrap().to_owned();
    let (s, b) = step(&fx, &disc, &town, json!({"hand_over": {}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["reason"], "hand_over_needs", "{b}");
    assert_eq!(b["error"]["params"]["what"], "unit", "{b}");
    let (s, b) = step(
        &fx,
        &disc,
        &town,
        json!({"hand_over": {"unit": {"department": "administration"}}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["lifecycle"]["deadline_ms"], MORNING + 7 * DAY, "{b}");

    // The report names categories, villages and units as people read them.
    let (s, r) = call(
        &fx,
        "GET",
        "/v1/findings/report?from=2026-11-24&to=2026-11-24",
        &disc,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let cat = r["by_category"].as_array().unwrap();
    assert!(
        cat.iter()
            .any(|row| row["key"] == "livelihood_funds" && row["label_zh"] == "民生资金"),
        "{r}"
    );
    let unit = r["by_unit"].as_array().unwrap();
    assert!(
        unit.iter()
            .any(|row| row["key"] == "department:public_services"
                && row["label_en"] == "Public services office (civil affairs)"),
        "{r}"
    );
}
