//! Tasks end to end on a real SQLite file: issued over HTTP, delivered by the real sync
//! engine only to phones whose scope holds the target village, receipts written by the
//! phones themselves and seen by the issuer, done from form completeness, overdue by the
//! clock, the village x form summary, and the burden report on a hand-checkable case.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use yibiao_model::clock::ManualClock;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value as V};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, ServerHub, accounts, app};
use yibiao_store::PhoneTaskStatus;
use yibiao_store::Store;
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

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
    call_in(fx, method, uri, token, body, None).await
}

/// [`call`] with an `Accept-Language` header.
async fn call_in(
    fx: &Fx,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
    accept_language: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if let Some(lang) = accept_language {
        req = req.header("accept-language", lang);
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

struct Phone {
    store: Store,
    /// The real sync engine, in process: requests go through the hub as the server runs it.
    transport: InProcess<Arc<ServerHub>>,
}

impl Phone {
    fn new(fx: &Fx, cadre: &str, village: Option<&str>) -> Self {
        let store = Store::open_in_memory(
            Arc::new(Schema::baru_example()),
            CadreId::new(cadre).unwrap(),
            fx.clock.clone(),
        )
        .unwrap();
        // A registered device, bound to this phone as enrolment or a first sync binds it.
        let (row, _) = accounts::register_device(
            fx.state.storage.as_ref(),
            fx.state.hub.schema(),
            &format!("phone of {cadre}"),
            Some(cadre),
            village,
        )
        .unwrap();
        fx.state
            .storage
            .bind_phone_device(&row.key, store.device_id().as_str())
            .unwrap();
        let scope = match village {
            Some(v) => DeviceScope::Village(v.into()),
            None => DeviceScope::Township,
        };
        // What the server's sync route vouches for behind this token.
        let identity =
            accounts::identity(fx.state.storage.as_ref(), &row, store.device_id().clone()).unwrap();
        let transport = InProcess::new(fx.state.hub.clone(), row.key, scope, identity);
        Self { store, transport }
    }

    fn sync(&self) {
        let report = yibiao_store::sync_with_sleep(
            &self.store,
            &self.transport,
            &SyncOptions::default(),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert!(report.complete && report.refused.is_empty(), "{report:?}");
    }
}

fn set(f: &str, v: V) -> FieldEdit {
    FieldEdit::Set(f.into(), v)
}

fn dibao_complete() -> Vec<FieldEdit> {
    vec![
        set("id_number", V::Text("513431199001011239".into())),
        set("household_size", V::Integer(4)),
        set(
            "annual_income",
            V::Decimal(yibiao_model::value::Decimal::new(1200000, 2)),
        ),
        set("dibao_status", V::Choice("enrolled".into())),
        set("visit_date", V::Date("2026-11-24".parse().unwrap())),
    ]
}

fn village<'a>(task: &'a Value, v: &str) -> &'a Value {
    task["villages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["village"] == v)
        .unwrap_or_else(|| panic!("no village {v} in {task}"))
}

#[tokio::test]
async fn a_task_reaches_only_its_villages_and_receipts_come_back_without_anyone_replying() {
    let fx = fixture();
    let civil = dept_token(&fx, "public_services").await;
    let (status, task) = call(
        &fx,
        "POST",
        "/v1/tasks",
        &civil,
        Some(json!({
            "title": "明天前完成低保户核查",
            "instructions": "逐户核对收入和人口",
            "form": "dibao_check",
            "due": "2026-11-25",
            "villages": ["tujiang", "baru"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["task"].as_str().unwrap().to_owned();
    assert_eq!(task["issuer"], "public_services");
    assert_eq!(task["counts"]["sent"], 2);
    assert_eq!(village(&task, "tujiang")["status"], "sent");

    let tujiang = Phone::new(&fx, "amu", Some("tujiang"));
    let baru = Phone::new(&fx, "jike", Some("baru"));
    let heping = Phone::new(&fx, "qubi", Some("heping"));
    let township = Phone::new(&fx, "zhang", None);
    // The township phone holds every village's task and receipts it, but that says
    // nothing about the villages: they stay `sent`.
    township.sync();
    assert_eq!(township.store.tasks().unwrap().len(), 2);
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &civil, None).await;
    assert_eq!(p["counts"]["sent"], 2, "{p}");
    for p in [&tujiang, &baru, &heping, &township] {
        p.sync();
    }
    // Delivery only to the target scope.
    let on = |p: &Phone| -> Vec<Option<String>> {
        p.store
            .tasks()
            .unwrap()
            .into_iter()
            .map(|t| t.village)
            .collect()
    };
    assert_eq!(on(&tujiang), vec![Some("tujiang".to_owned())]);
    assert_eq!(on(&baru), vec![Some("baru".to_owned())]);
    assert!(on(&heping).is_empty());
    assert_eq!(on(&township).len(), 2);
    let t = &tujiang.store.tasks().unwrap()[0];
    assert_eq!(t.title, "明天前完成低保户核查");
    assert_eq!(t.status, PhoneTaskStatus::New);
    assert!(t.receipt.delivered_ms.is_some());
    // Tasks are not records: queries never list them.
    let page = tujiang
        .store
        .query(&yibiao_store::Query::default())
        .unwrap();
    assert!(page.records.is_empty());

    // The issuer sees delivery without anyone replying "received".
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &civil, None).await;
    assert_eq!(village(&p, "tujiang")["status"], "delivered");
    assert_eq!(village(&p, "baru")["status"], "delivered");
    assert_eq!(village(&p, "tujiang")["delivered_ms"], MORNING);

    // Opened on one phone, marked done with a note on the other.
    fx.clock.advance(HOUR);
    assert!(tujiang.store.open_task(t.id).unwrap());
    assert!(
        !tujiang.store.open_task(t.id).unwrap(),
        "opening twice writes once"
    );
    let b = &baru.store.tasks().unwrap()[0];
    baru.store
        .mark_task_done(b.id, Some("全村 12 户已核查，2 户外出"))
        .unwrap();
    assert_eq!(baru.store.tasks().unwrap()[0].status, PhoneTaskStatus::Done);
    tujiang.sync();
    baru.sync();
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &civil, None).await;
    let tj = village(&p, "tujiang");
    assert_eq!(tj["status"], "opened");
    assert_eq!(tj["opened_ms"], MORNING + HOUR);
    let br = village(&p, "baru");
    assert_eq!(br["status"], "done");
    assert_eq!(br["done_how"], "marked");
    assert_eq!(br["note"], "全村 12 户已核查，2 户外出");
    assert_eq!(br["done_by"], "jike");
    assert_eq!(p["counts"]["done"], 1);
    assert_eq!(p["counts"]["opened"], 1);

    // A note too long is refused on the phone, naming the limit.
    let err = tujiang
        .store
        .mark_task_done(t.id, Some(&"字".repeat(501)))
        .unwrap_err();
    assert!(err.to_string().contains("at most 500"), "{err}");
    // A task is not a record: the record API refuses it.
    let err = tujiang.store.delete(t.id).unwrap_err();
    assert!(err.to_string().contains("is a task"), "{err}");

    // Another department does not see it; the township does.
    let rural = dept_token(&fx, "rural_revitalisation").await;
    let (status, body) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &rural, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = call(&fx, "GET", "/v1/tasks", &rural, None).await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 0);
    let (_, list) = call(&fx, "GET", "/v1/tasks", &fx.admin, None).await;
    assert_eq!(list["tasks"][0]["task"], id.as_str());

    // Cancelling drops it from the phones on their next sync.
    let (status, p) = call(&fx, "DELETE", &format!("/v1/tasks/{id}"), &civil, None).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["counts"]["cancelled"], 2);
    assert_eq!(
        village(&p, "tujiang")["opened"],
        true,
        "receipts survive the cancel"
    );
    assert_eq!(village(&p, "baru")["note"], "全村 12 户已核查，2 户外出");
    tujiang.sync();
    assert!(tujiang.store.tasks().unwrap().is_empty());
    let err = tujiang.store.open_task(t.id).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
}

#[tokio::test]
async fn bad_task_requests_are_refused_with_a_reason_and_issue_nothing() {
    let fx = fixture();
    let civil = dept_token(&fx, "public_services").await;
    let clinic = dept_token(&fx, "tujiang_health_station").await;
    let base =
        json!({"title": "t", "form": "dibao_check", "due": "2026-11-25", "villages": ["tujiang"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let mut no_target = base.clone();
    no_target.as_object_mut().unwrap().remove("villages");
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            &civil,
            with("form", json!("party_member")),
            StatusCode::FORBIDDEN,
            "只能为本部门的表单下发任务",
        ),
        (
            &civil,
            with("form", json!("nope")),
            StatusCode::BAD_REQUEST,
            "没有表单「nope」",
        ),
        (
            &civil,
            with("villages", json!(["atlantis"])),
            StatusCode::BAD_REQUEST,
            "没有村 `atlantis`",
        ),
        (
            &civil,
            with("due", json!("2026-11-23")),
            StatusCode::BAD_REQUEST,
            "截止时间 2026-11-23 已经过去",
        ),
        (
            &civil,
            with("due", json!("soon")),
            StatusCode::BAD_REQUEST,
            "截止时间“soon”无法识别",
        ),
        (
            &civil,
            with("title", json!("  ")),
            StatusCode::BAD_REQUEST,
            "任务标题不能为空",
        ),
        (
            &civil,
            with("records", json!(["x"])),
            StatusCode::BAD_REQUEST,
            "请二选一",
        ),
        (&civil, no_target, StatusCode::BAD_REQUEST, "请二选一"),
        (
            &civil,
            with("colour", json!("red")),
            StatusCode::BAD_REQUEST,
            "unknown field `colour`",
        ),
        (
            &clinic,
            with("form", json!("dibao_check")),
            StatusCode::FORBIDDEN,
            "只能为本部门的表单下发任务",
        ),
        (
            &fx.admin,
            with("villages", json!([])),
            StatusCode::BAD_REQUEST,
            "没有选择村",
        ),
        (
            "ybd_nonsense",
            base.clone(),
            StatusCode::UNAUTHORIZED,
            "department token (ybk_) or the admin token",
        ),
    ];
    for (token, body, status, needle) in cases {
        let (got, answer) = call(&fx, "POST", "/v1/tasks", token, Some(body.clone())).await;
        assert_eq!(got, status, "{body} -> {answer}");
        let msg = answer["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: `{msg}` lacks `{needle}`");
    }
    // Records that do not exist or are of another entity.
    let missing = RecordId::new().to_string();
    let mut b = base.clone();
    b.as_object_mut().unwrap().remove("villages");
    b["records"] = json!([missing]);
    let (got, answer) = call(&fx, "POST", "/v1/tasks", &fx.admin, Some(b.clone())).await;
    assert_eq!(got, StatusCode::NOT_FOUND, "{answer}");
    b["records"] = json!(["not-a-uuid"]);
    let (got, answer) = call(&fx, "POST", "/v1/tasks", &fx.admin, Some(b)).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{answer}");
    let (got, _) = call(&fx, "GET", "/v1/tasks/nope", &fx.admin, None).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    let (_, list) = call(&fx, "GET", "/v1/tasks", &fx.admin, None).await;
    assert_eq!(list["tasks"], json!([]), "nothing was issued");
}

#[tokio::test]
async fn errors_are_worded_in_the_language_accept_language_asks_for_with_the_same_code_and_params()
{
    let fx = fixture();
    let body = |due: &str| json!({"title": "低保核查", "form": "dibao_check", "due": due, "villages": ["tujiang"]});
    let cases = [
        (
            None,
            "截止时间“soon”无法识别；请写日期（2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日）或时间（2027-01-05T18:00:00+08:00）",
        ),
        (
            Some("zh-CN,zh;q=0.9"),
            "截止时间“soon”无法识别；请写日期（2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日）或时间（2027-01-05T18:00:00+08:00）",
        ),
        (
            Some("en-US,en;q=0.9,zh;q=0.5"),
            "due `soon` is neither a date (2027-01-05, 2027-1-5, 2027/1/5 or 2027年1月5日) nor a time (2027-01-05T18:00:00+08:00)",
        ),
        (
            Some("fr"),
            "截止时间“soon”无法识别；请写日期（2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日）或时间（2027-01-05T18:00:00+08:00）",
        ),
    ];
    for (lang, want) in cases {
        let (status, answer) = call_in(
            &fx,
            "POST",
            "/v1/tasks",
            &fx.admin,
            Some(body("soon")),
            lang,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            answer,
            json!({"error": {
                "code": "bad_request",
                "reason": "bad_due",
                "params": {"got": "soon"},
                "message": want,
            }}),
            "{lang:?}"
        );
    }
    // A reason with no finer code: the English explanation is a parameter, and the
    // Chinese message says what kind of refusal it is.
    let (status, answer) = call_in(&fx, "GET", "/v1/tasks/nope", &fx.admin, None, Some("zh")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["reason"], "not_found");
    let detail = answer["error"]["params"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(!detail.is_empty(), "{answer}");
    assert_eq!(
        answer["error"]["message"],
        json!(format!("找不到所请求的内容（{detail}）"))
    );
    let (_, answer) = call_in(&fx, "GET", "/v1/tasks/nope", &fx.admin, None, Some("en")).await;
    assert_eq!(answer["error"]["message"], json!(detail));
    // A due typed as people write it is stored as YYYY-MM-DD.
    let (status, answer) = call_in(
        &fx,
        "POST",
        "/v1/tasks",
        &fx.admin,
        Some(body("2027年1月5日")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["due"], "2027-01-05", "{answer}");
}

#[tokio::test]
async fn done_follows_form_completeness_and_overdue_follows_the_clock() {
    let fx = fixture();
    // Two households registered by the township office.
    let office = Phone::new(&fx, "zhang", None);
    let h1 = office
        .store
        .create(
            "household",
            Some("tujiang"),
            &[set("household_head", V::Text("阿木".into()))],
        )
        .unwrap();
    let h2 = office
        .store
        .create(
            "household",
            Some("tujiang"),
            &[set("household_head", V::Text("曲比".into()))],
        )
        .unwrap();
    office.sync();
    let (status, task) = call(
        &fx,
        "POST",
        "/v1/tasks",
        &fx.admin,
        Some(json!({
            "title": "两户低保核查", "form": "dibao_check", "due": "2026-11-24T18:00:00+08:00",
            "records": [h1.to_string(), h2.to_string()],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["issuer"], "township");
    let id = task["task"].as_str().unwrap().to_owned();
    let tj = village(&task, "tujiang");
    assert_eq!(
        (tj["records_complete"].clone(), tj["records_total"].clone()),
        (json!(0), json!(2))
    );

    let phone = Phone::new(&fx, "amu", Some("tujiang"));
    phone.sync();
    let t = phone.store.tasks().unwrap().remove(0);
    assert_eq!(t.targets, Some(vec![h1, h2]));
    assert_eq!((t.records_complete, t.records_total), (0, 2));
    assert_eq!(t.incomplete, vec![h1, h2]);

    // One household complete: 1 of 2, not done.
    phone.store.update(h1, &dibao_complete()).unwrap();
    assert_eq!(phone.store.tasks().unwrap()[0].records_complete, 1);
    phone.sync();
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &fx.admin, None).await;
    let tj = village(&p, "tujiang");
    assert_eq!(tj["records_complete"], 1);
    assert_eq!(tj["status"], "delivered");
    assert_eq!(tj["overdue"], false);

    // Past 18:00 it is overdue, on the server and on the phone.
    fx.clock.advance(10 * HOUR);
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &fx.admin, None).await;
    assert_eq!(village(&p, "tujiang")["status"], "overdue");
    assert_eq!(village(&p, "tujiang")["overdue"], true);
    assert_eq!(
        phone.store.tasks().unwrap()[0].status,
        PhoneTaskStatus::Overdue
    );
    let (_, s) = call(&fx, "GET", "/v1/summary", &fx.admin, None).await;
    let cell = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["village"] == "tujiang" && r["form"] == "dibao_check")
        .unwrap();
    assert_eq!(cell["tasks"]["overdue"], 1, "{cell}");
    assert_eq!(cell["records_complete"], 1);
    assert_eq!(cell["records_incomplete"], 1);

    // The second household completed: the phone records done by itself on its next sync.
    phone.store.update(h2, &dibao_complete()).unwrap();
    assert_eq!(
        phone.store.tasks().unwrap()[0].status,
        PhoneTaskStatus::Done
    );
    phone.sync();
    let receipt = phone.store.tasks().unwrap().remove(0).receipt;
    assert_eq!(receipt.done, Some(yibiao_model::task::DoneHow::Complete));
    let (_, p) = call(&fx, "GET", &format!("/v1/tasks/{id}"), &fx.admin, None).await;
    let tj = village(&p, "tujiang");
    assert_eq!(tj["status"], "done", "{tj}");
    assert_eq!(tj["done_how"], "complete");
    assert_eq!(tj["overdue"], false);
    assert_eq!(tj["records_complete"], 2);
    let (_, s) = call(&fx, "GET", "/v1/summary", &fx.admin, None).await;
    let total = s["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["form"] == "dibao_check")
        .unwrap();
    assert_eq!(total["tasks"]["done"], 1, "{total}");
    assert_eq!(total["records_complete"], 2);
}

#[tokio::test]
async fn the_burden_report_counts_values_typed_and_their_deliveries() {
    let fx = fixture();
    let phone = Phone::new(&fx, "amu", Some("tujiang"));
    // Three values typed for one household in tujiang.
    let h = phone
        .store
        .create(
            "household",
            Some("tujiang"),
            &[
                set("household_head", V::Text("阿木".into())),
                set("household_size", V::Integer(5)),
                set("toilet_type", V::Choice("pit".into())),
            ],
        )
        .unwrap();
    phone.sync();
    let day = "/v1/burden?from=2026-11-24&to=2026-11-24";
    let (status, b) = call(&fx, "GET", day, &fx.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    // By hand from examples/schema/baru.toml, for a tujiang household:
    // household_head: administration, public_services, rural_revitalisation,
    //   social_governance, discipline_inspection, tujiang_health_station = 6
    // household_size: the same 6 + emergency_management (extra field) = 7
    // toilet_type: administration, rural_revitalisation = 2
    assert_eq!(b["values_typed"], 3, "{b}");
    assert_eq!(b["deliveries"], 15, "{b}");
    assert_eq!(b["reuse_ratio"], 5.0);
    assert_eq!(b["entries_saved"], 12);
    let field = |name: &str| {
        b["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap()["deliveries"]
            .clone()
    };
    assert_eq!(
        (
            field("household_head"),
            field("household_size"),
            field("toilet_type")
        ),
        (json!(6), json!(7), json!(2))
    );
    let dept = |b: &Value, name: &str| {
        b["departments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["department"] == name)
            .unwrap()["deliveries"]
            .clone()
    };
    assert_eq!(dept(&b, "administration"), 3);
    assert_eq!(dept(&b, "party_building"), 0);

    // A correction is typed again but delivers the same (record, field) pairs;
    // a household in baru is not the clinic's (tujiang only): 5 deliveries.
    phone.store.set(h, "household_size", V::Integer(6)).unwrap();
    phone.sync();
    let baru = Phone::new(&fx, "jike", Some("baru"));
    baru.store
        .create(
            "household",
            Some("baru"),
            &[set("household_head", V::Text("吉克".into()))],
        )
        .unwrap();
    baru.sync();
    let (_, b) = call(&fx, "GET", day, &fx.admin, None).await;
    assert_eq!(b["values_typed"], 5, "{b}");
    assert_eq!(b["deliveries"], 20, "{b}");
    assert_eq!(b["reuse_ratio"], 4.0);
    assert_eq!(dept(&b, "tujiang_health_station"), 2);

    // Another day holds nothing; bad input is named; departments may not ask.
    let (_, b) = call(
        &fx,
        "GET",
        "/v1/burden?from=2026-11-23&to=2026-11-23",
        &fx.admin,
        None,
    )
    .await;
    assert_eq!(b["values_typed"], 0);
    let (status, b) = call(&fx, "GET", "/v1/burden?from=yesterday", &fx.admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("“yesterday”不是有效日期")
    );
    let (status, _) = call(
        &fx,
        "GET",
        "/v1/burden?from=2026-11-25&to=2026-11-24",
        &fx.admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&fx, "GET", "/v1/burden?since=1", &fx.admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let civil = dept_token(&fx, "public_services").await;
    let (status, _) = call(&fx, "GET", day, &civil, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
