//! The FFI surface called from Rust, as the generated bindings call it: values as JSON
//! text in and out, core errors turned into the app's few variants, observers told.
//! Tasks reach the store through a real sync with the server's engine in process.
//! (The generated Kotlin and Python are run for real by scripts/test-bindings.sh.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use yibiao_ffi::{
    AppTransport, ChangeObserver, RecordQuery, SchemaUpdate, SyncHttpRequest, TaskDoneHow,
    TaskStatus, TransportFailure, YibiaoError, YibiaoStore,
};
use yibiao_model::schema::BARU_TOML;
use yibiao_model::task::{DoneHow, TaskSpec, new_task_doc, parse_due, read_task};
use yibiao_model::{Author, CadreId, DeviceId, RecordId, SCHEMA_FORMAT, Schema};
use yibiao_sync::hub::{Hub, HubConfig, MemoryHubStorage};
use yibiao_sync::protocol::SchemaOffer;
use yibiao_sync::{DeviceScope, Identity, SyncResponse, Transport, TransportError};
use yibiao_testkit::transport::InProcess;

fn open(dir: &tempfile::TempDir) -> Arc<YibiaoStore> {
    let path = dir.path().join("phone.db").display().to_string();
    YibiaoStore::open(path, None, "amu".into()).expect("open")
}

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Default)]
struct Seen(Mutex<Vec<Vec<String>>>);
impl ChangeObserver for Seen {
    fn on_records_changed(&self, ids: Vec<String>) {
        self.0.lock().expect("lock").push(ids);
    }
}

#[test]
fn values_cross_as_json_text_and_come_back_in_entity_order() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.create(
        "household".into(),
        Some("tujiang".into()),
        fields(&[
            ("household_size", "5"),
            ("household_head", "\"阿木\""),
            ("income_sources", "[\"wages\",\"farming\"]"),
        ]),
    )?;
    let record = store.get(id.clone())?;
    let shown: Vec<(&str, &str)> = record
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.value_json.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("household_head", "\"阿木\""),
            ("household_size", "5"),
            ("income_sources", "[\"farming\",\"wages\"]"),
        ]
    );
    assert_eq!(record.village.as_deref(), Some("tujiang"));
    let page = store.query(RecordQuery {
        equals: fields(&[("household_head", "\"阿木\"")]),
        ..RecordQuery::default()
    })?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].values["household_size"], "5");
    Ok(())
}

#[test]
fn refusals_name_the_field_and_write_nothing() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.create("household".into(), None, fields(&[("household_size", "4")]))?;
    for (bad, want) in [
        ("\"three\"", "wrong_type"),
        ("three", "wrong_type"),
        ("31", "above_max"),
    ] {
        match store.set_field(id.clone(), "household_size".into(), bad.into()) {
            Err(YibiaoError::InvalidValue {
                field,
                code,
                params,
                detail,
            }) => {
                assert_eq!(field, "household_size");
                assert_eq!(code, want);
                assert_eq!(params["field_zh"], "家庭人口数");
                assert_eq!(params["field_en"], "Household size");
                assert!(detail.starts_with("「家庭人口数」"), "{detail}");
            }
            other => panic!("{bad}: expected InvalidValue, got {other:?}"),
        }
    }
    // The app asks for English; the code and parameters stay the same.
    store.set_language("en-GB".into())?;
    assert_eq!(store.language(), "en");
    match store.set_field(id.clone(), "household_size".into(), "31".into()) {
        Err(YibiaoError::InvalidValue { code, detail, .. }) => {
            assert_eq!(code, "above_max");
            assert_eq!(
                detail,
                "field `household_size` (Household size) must be at most 30, got 31"
            );
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    assert!(matches!(
        store.set_language("fr".into()),
        Err(YibiaoError::InvalidInput { .. })
    ));
    store.set_language("zh".into())?;
    // A batch with one bad value writes none of it.
    let r = store.set_fields(
        id.clone(),
        fields(&[("household_size", "6"), ("village_group", "99")]),
    );
    assert!(matches!(r, Err(YibiaoError::InvalidValue { field, .. }) if field == "village_group"));
    assert_eq!(store.get(id.clone())?.fields[0].value_json, "4");
    assert!(matches!(
        store.get("0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01".into()),
        Err(YibiaoError::NotFound { .. })
    ));
    assert!(matches!(
        store.form_status(id, "no_such_form".into()),
        Err(YibiaoError::InvalidInput { .. })
    ));
    assert!(matches!(
        store.sync(None),
        Err(YibiaoError::NotEnrolled { .. })
    ));
    Ok(())
}

#[test]
fn local_writes_tell_the_observer_only_when_something_changed() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let seen = Arc::new(Seen::default());
    store.set_observer(Some(seen.clone()));
    let id = store.create("household".into(), None, HashMap::new())?;
    assert!(store.set_field(id.clone(), "household_size".into(), "3".into())?);
    assert!(!store.set_field(id.clone(), "household_size".into(), "3".into())?);
    assert_eq!(
        *seen.0.lock().expect("lock"),
        vec![vec![id.clone()], vec![id]]
    );
    Ok(())
}

// ----- tasks ---------------------------------------------------------------------------

/// The server's sync engine in process, reached through the app-transport hook: the
/// phone syncs exactly as with a real server, for the village `tujiang`.
/// The app's transport, straight into a hub through the test kit's in-process link.
struct HubLink {
    link: InProcess<Arc<Hub<MemoryHubStorage>>>,
    hub: Arc<Hub<MemoryHubStorage>>,
    /// Answer as a server whose schema is of a format newer than this app reads.
    newer_format: bool,
}

impl HubLink {
    /// A link for the phone `device` used by amu.
    fn new(device: &str) -> Self {
        Self::with_schema(device, Schema::baru_example())
    }

    /// A link to a hub serving `schema`.
    fn with_schema(device: &str, schema: Schema) -> Self {
        let hub = Arc::new(Hub::new(
            Arc::new(schema),
            MemoryHubStorage::default(),
            Arc::new(yibiao_model::clock::SystemClock),
            HubConfig::default(),
        ));
        let scope = DeviceScope::Village("tujiang".into());
        Self {
            link: InProcess::new(
                hub.clone(),
                "key-amu",
                scope,
                Identity::new(
                    DeviceId::new(device).expect("device"),
                    [CadreId::new("amu").expect("cadre")],
                ),
            ),
            hub,
            newer_format: false,
        }
    }

    /// Issues a task for every household of `tujiang`, as the server's task API does.
    fn issue(&self, title: &str, due: &str) -> RecordId {
        let spec = TaskSpec {
            task: format!("task-{title}"),
            title: title.into(),
            instructions: "逐户核对收入和人口".into(),
            form: "dibao_check".into(),
            due: due.into(),
            due_ms: parse_due(due).expect("due"),
            issuer: "public_services".into(),
            targets: None,
        };
        let author = Author {
            cadre: CadreId::new("public_services").expect("cadre"),
            device: DeviceId::new("server").expect("device"),
        };
        let id = RecordId::new();
        let doc = new_task_doc(
            id,
            self.hub.actor(),
            &spec,
            &self.hub.schema().township.id,
            Some("tujiang"),
            &author,
            1_795_482_000_000,
        )
        .expect("task document");
        self.hub.commit_server_docs(vec![doc]).expect("commit");
        id
    }

    /// This phone's receipt as the server holds it.
    fn receipt(&self, task: &str, device: &str) -> yibiao_model::task::Receipt {
        let record = self
            .hub
            .record(task.parse().expect("id"))
            .expect("hub storage")
            .expect("the server holds the task");
        read_task(&record).expect("a task").receipts[device].clone()
    }
}

impl AppTransport for HubLink {
    fn exchange(&self, request: SyncHttpRequest) -> Result<Vec<u8>, TransportFailure> {
        let body = self.link.exchange(&request.body).map_err(|e| match e {
            TransportError::Status { status, message } => TransportFailure::Status {
                status,
                detail: message,
            },
            other => TransportFailure::Network {
                detail: other.to_string(),
            },
        })?;
        if !self.newer_format {
            return Ok(body);
        }
        let mut response = SyncResponse::decode(&body).expect("a response");
        response.schema = Some(SchemaOffer {
            revision: 3,
            format: SCHEMA_FORMAT + 1,
            text: None,
        });
        Ok(response.encode())
    }
}

#[test]
fn tasks_arrive_by_sync_are_opened_and_marked_done_and_receipts_reach_the_server()
-> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert!(store.tasks()?.is_empty(), "a fresh store has no tasks");
    let link = Arc::new(HubLink::new(&store.device_id()));
    let household = store.create(
        "household".into(),
        Some("tujiang".into()),
        fields(&[("household_size", "4")]),
    )?;
    let later = link.issue("明天前完成低保户核查", "2099-12-31");
    let past = link.issue("上月的核查", "2020-01-31");

    let report = store.sync_with(link.clone(), None)?;
    assert!(report.complete, "{report:?}");
    assert!(report.changed.contains(&later.to_string()));
    let tasks = store.tasks()?;
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [past.to_string(), later.to_string()],
        "soonest due first"
    );
    let [overdue, task] = &tasks[..] else {
        panic!("two tasks expected: {tasks:?}")
    };
    assert_eq!(overdue.status, TaskStatus::Overdue);
    assert_eq!(task.status, TaskStatus::New);
    assert_eq!(task.title, "明天前完成低保户核查");
    assert_eq!(task.form, "dibao_check");
    assert_eq!(task.issuer, "public_services");
    assert_eq!(task.village.as_deref(), Some("tujiang"));
    assert_eq!(task.targets, None);
    assert_eq!((task.records_complete, task.records_total), (0, 1));
    assert_eq!(task.incomplete, vec![household.clone()]);
    assert!(
        task.receipt.delivered_ms.is_some(),
        "delivery is receipted by sync"
    );
    assert_eq!(task.receipt.opened_ms, None);
    assert!(
        store.query(RecordQuery::default())?.records.len() == 1,
        "tasks are not records"
    );

    // Shown: opened once; the observer hears the task's id.
    let seen = Arc::new(Seen::default());
    store.set_observer(Some(seen.clone()));
    assert!(store.open_task(task.id.clone())?);
    assert!(
        !store.open_task(task.id.clone())?,
        "opening twice writes once"
    );
    assert_eq!(*seen.0.lock().expect("lock"), vec![vec![task.id.clone()]]);
    let opened = store.task(task.id.clone())?;
    assert_eq!(opened.status, TaskStatus::Opened);
    assert!(opened.receipt.opened_ms.is_some());
    assert_eq!(opened.receipt.cadre.as_deref(), Some("amu"));

    // A note too long is refused and nothing is written.
    match store.mark_task_done(task.id.clone(), Some("字".repeat(501))) {
        Err(YibiaoError::InvalidInput { detail }) => {
            assert!(detail.contains("at most 500"), "{detail}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(store.task(task.id.clone())?.status, TaskStatus::Opened);

    // Marked done with a note (trimmed), even past due.
    assert!(store.mark_task_done(overdue.id.clone(), Some(" 2 户外出 ".into()))?);
    let marked = store.task(overdue.id.clone())?;
    assert_eq!(marked.status, TaskStatus::Done);
    assert_eq!(marked.receipt.done, Some(TaskDoneHow::Marked));
    assert_eq!(marked.receipt.note.as_deref(), Some("2 户外出"));
    assert!(marked.receipt.done_ms.is_some());

    // Filling the form on every target record makes it done; sync writes that receipt.
    store.set_fields(
        household.clone(),
        fields(&[
            ("household_head", "\"阿木日哈\""),
            ("id_number", "\"513431199001011239\""),
            ("annual_income", "\"12000.00\""),
            ("dibao_status", "\"enrolled\""),
            ("visit_date", "\"2026-11-24\""),
        ]),
    )?;
    let filled = store.task(task.id.clone())?;
    assert_eq!(filled.status, TaskStatus::Done);
    assert_eq!((filled.records_complete, filled.records_total), (1, 1));
    assert!(filled.incomplete.is_empty());
    assert!(store.sync_with(link.clone(), None)?.complete);
    assert_eq!(
        store.task(task.id.clone())?.receipt.done,
        Some(TaskDoneHow::Complete)
    );
    assert_eq!(store.status()?.pending, 0);

    // The server holds both receipts as this phone wrote them.
    let device = store.device_id();
    let done = link.receipt(&task.id, &device);
    assert_eq!(done.done, Some(DoneHow::Complete));
    assert_eq!(done.opened_ms, opened.receipt.opened_ms);
    let note = link.receipt(&overdue.id, &device);
    assert_eq!(note.done, Some(DoneHow::Marked));
    assert_eq!(note.note.as_deref(), Some("2 户外出"));
    assert_eq!(note.cadre.as_deref(), Some("amu"));
    Ok(())
}

#[test]
fn task_calls_refuse_bad_ids_and_records_with_a_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.tasks(), Ok(Vec::new()));
    let unknown = "0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01";
    for r in [
        store.open_task("not-an-id".into()),
        store.mark_task_done("not-an-id".into(), None),
        store.task("not-an-id".into()).map(|_| true),
    ] {
        match r {
            Err(YibiaoError::InvalidInput { detail }) => {
                assert!(detail.starts_with("bad task id \"not-an-id\""), "{detail}")
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
    for r in [
        store.open_task(unknown.into()),
        store.mark_task_done(unknown.into(), Some("done".into())),
        store.task(unknown.into()).map(|_| true),
    ] {
        match r {
            Err(YibiaoError::NotFound { id, detail }) => {
                assert_eq!(id, unknown);
                assert!(
                    detail.contains("task") && detail.contains(unknown),
                    "{detail}"
                );
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    // A record is not a task, and a task is not a record.
    let record = store
        .create("household".into(), None, HashMap::new())
        .expect("create");
    match store.open_task(record.clone()) {
        Err(YibiaoError::InvalidInput { detail }) => {
            assert!(detail.contains("not a task"), "{detail}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(
        store.mark_task_done(record, Some("x".repeat(501))),
        Err(YibiaoError::InvalidInput { .. })
    ));
}

// ----- the schema ------------------------------------------------------------------------

#[test]
fn the_schema_revision_held_and_update_the_app_cross_the_ffi() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.schema_revision(), 1);
    let revision_2 = BARU_TOML.replacen("revision = 1 ", "revision = 2 ", 1);
    let schema = Schema::from_toml_str(&revision_2, "revision-2.toml").expect("schema");
    let mut link = HubLink::with_schema(&store.device_id(), schema);
    let report = store.sync_with(Arc::new(link), None)?;
    assert_eq!(report.schema, SchemaUpdate::Installed { from: 1, to: 2 });
    assert_eq!(store.schema_revision(), 2);

    // A server whose schema this app is too old to read.
    link = HubLink::with_schema(&store.device_id(), Schema::baru_example());
    link.newer_format = true;
    store.create("household".into(), Some("tujiang".into()), fields(&[]))?;
    let report = store.sync_with(Arc::new(link), None)?;
    assert!(report.complete, "the sync itself completes: {report:?}");
    assert_eq!(report.progress.pushed, 1);
    assert_eq!(
        report.schema,
        SchemaUpdate::UpdateApp {
            revision: 3,
            format: SCHEMA_FORMAT + 1,
            supported: SCHEMA_FORMAT
        }
    );
    assert_eq!(store.schema_revision(), 2, "the phone keeps what it holds");
    Ok(())
}

/// Finding refusals cross the FFI as `Refused` with their code and parameters, worded
/// in the store's language: a category the schema does not know (with the choices), a
/// step this phone's role may not take. The categories list comes from the schema.
#[test]
fn finding_refusals_are_coded_and_worded_in_the_cadres_language() -> Result<(), YibiaoError> {
    use yibiao_ffi::{FindingInput, FindingSeverity};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let cats = store.finding_categories()?;
    assert_eq!(cats.len(), 5);
    let env = cats
        .iter()
        .find(|c| c.key == "living_environment")
        .expect("env");
    assert_eq!((env.zh.as_str(), env.deadline_days), ("人居环境", Some(7)));
    let input = |category: &str| FindingInput {
        category: category.into(),
        description: "村口垃圾未清运".into(),
        severity: FindingSeverity::Medium,
        photos: vec![],
        record: None,
        lat: None,
        lon: None,
    };
    match store.record_finding(Some("tujiang".into()), input("dust")) {
        Err(YibiaoError::Refused {
            code,
            params,
            detail,
        }) => {
            assert_eq!(code, "unknown_category");
            assert_eq!(params["got"], "dust");
            assert!(
                detail.starts_with("问题类别「dust」不在本镇的类别中"),
                "{detail}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(store.findings()?.is_empty(), "nothing was written");
    let id = store.record_finding(Some("tujiang".into()), input("living_environment"))?;
    let item = store.finding(id.clone())?;
    assert_eq!(
        (item.category_zh.as_str(), item.category_en.as_str()),
        ("人居环境", "Living environment")
    );
    // This phone is not a village's: it may not resolve.
    match store.resolve_finding(id.clone(), "已清运".into(), vec![]) {
        Err(YibiaoError::Refused {
            code,
            params,
            detail,
        }) => {
            assert_eq!(
                (code.as_str(), params["why"].as_str()),
                ("finding_forbidden", "role")
            );
            assert_eq!(detail, "township 不能执行「处置」：这一步不属于该角色");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    store.set_language("en".into())?;
    match store.record_finding(Some("tujiang".into()), input("dust")) {
        Err(YibiaoError::Refused { detail, .. }) => assert!(
            detail.starts_with(
                "finding category `dust` is not one of this township's; choose one of:"
            ),
            "{detail}"
        ),
        other => panic!("expected Refused, got {other:?}"),
    }
    Ok(())
}
