//! The schema reaches phones through sync: a phone on revision 1 receives revision 2 in
//! its next exchange, keeps it across restarts and validates with it offline; an app too
//! old for a schema's format is told to update and keeps syncing; values a revision no
//! longer accepts stay, are flagged and never block the record's sync.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::schema::BARU_TOML;
use yibiao_model::{CadreId, SCHEMA_FORMAT, Schema, Value};
use yibiao_store::Store;
use yibiao_sync::protocol::{SchemaHeld, SchemaOffer, SyncRequest, SyncResponse};
use yibiao_sync::session::{SchemaNews, SyncOptions};
use yibiao_sync::{DeviceScope, Hub, HubConfig, MemoryHubStorage, Transport, TransportError};
use yibiao_testkit::transport::InProcess;

type TestHub = Hub<Arc<MemoryHubStorage>>;

const STATUS_OPTIONS: &str = r#"  { key = "suspended", zh = "暂停", en = "Suspended" },
]"#;

/// Revision 2: `dibao_status` gains `applying` and loses `suspended`; a new form asks
/// for it.
fn revision_2() -> String {
    BARU_TOML
        .replacen("revision = 1 ", "revision = 2 ", 1)
        .replacen(
            STATUS_OPTIONS,
            r#"  { key = "applying", zh = "申请中", en = "Applying" },
]"#,
            1,
        )
        + r#"
[forms.dibao_application]
zh = "低保申请登记"
en = "Allowance application"
entity = "household"
fields = ["household_head", "dibao_status"]
required = ["dibao_status"]
"#
}

/// Revision 3: `applying` is gone again (what the operator forced with
/// `--allow-stranding`).
fn revision_3() -> String {
    revision_2()
        .replacen("revision = 2 ", "revision = 3 ", 1)
        .replacen(
            r#"  { key = "applying", zh = "申请中", en = "Applying" },"#,
            "",
            1,
        )
}

fn schema(text: &str) -> Arc<Schema> {
    Arc::new(Schema::from_toml_str(text, "test.toml").unwrap())
}

fn hub(schema: Arc<Schema>, storage: &Arc<MemoryHubStorage>) -> TestHub {
    Hub::new(
        schema,
        storage.clone(),
        Arc::new(ManualClock::new(1_795_536_000_000)),
        HubConfig::default(),
    )
}

fn open(path: &std::path::Path) -> Store {
    Store::open_with(
        path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        Arc::new(ManualClock::new(1_795_536_000_000)),
        Default::default(),
    )
    .unwrap()
}

fn sync(store: &Store, hub: &TestHub) -> yibiao_store::SyncReport {
    let link = InProcess::for_store(hub, "dev", DeviceScope::Village("tujiang".into()), store);
    yibiao_store::sync(store, &link, &SyncOptions::default(), &mut |_| {}).unwrap()
}

fn status(v: &str) -> Value {
    Value::Choice(v.into())
}

#[test]
fn a_phone_on_revision_1_gets_revision_2_and_validates_with_it_offline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.sqlite");
    let storage = Arc::new(MemoryHubStorage::default());
    let hub = hub(schema(&revision_2()), &storage);
    let phone = open(&path);
    assert_eq!(phone.schema_revision(), 1);
    let id = phone.create("household", Some("tujiang"), &[]).unwrap();
    let refused = phone
        .set(id, "dibao_status", status("applying"))
        .unwrap_err();
    assert!(
        refused.to_string().contains("has no option \"applying\""),
        "{refused}"
    );

    let report = sync(&phone, &hub);
    assert!(report.complete);
    assert_eq!(report.schema, SchemaNews::Installed { from: 1, to: 2 });
    assert_eq!(phone.schema_revision(), 2);
    // The next sync carries no schema bytes: the revisions match.
    assert_eq!(sync(&phone, &hub).schema, SchemaNews::Unchanged);
    drop(phone);

    // Offline, after a restart of the app (which still ships revision 1).
    let phone = open(&path);
    assert_eq!(
        phone.schema_revision(),
        2,
        "the server's revision is kept on disk"
    );
    phone.set(id, "dibao_status", status("applying")).unwrap();
    let removed = phone
        .set(id, "dibao_status", status("suspended"))
        .unwrap_err();
    assert!(
        removed.to_string().contains("has no option \"suspended\""),
        "{removed}"
    );
    let form = phone.form_status(id, "dibao_application").unwrap();
    assert!(
        form.complete(),
        "the new form is known and filled: {form:?}"
    );
    assert_eq!(sync(&phone, &hub).progress.pushed, 1);
    let held = hub.record(id).unwrap().unwrap();
    assert_eq!(
        held.values(hub.schema())["dibao_status"],
        status("applying")
    );
}

/// A link that hands the phone what a server with a newer schema format would answer.
struct NewerFormat<'h>(InProcess<&'h TestHub>);

impl Transport for NewerFormat<'_> {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut response = SyncResponse::decode(&self.0.exchange(request)?).unwrap();
        response.schema = Some(SchemaOffer {
            revision: 7,
            format: SCHEMA_FORMAT + 1,
            text: None,
        });
        Ok(response.encode())
    }
}

#[test]
fn a_schema_of_a_newer_format_says_update_the_app_and_the_sync_still_completes() {
    let storage = Arc::new(MemoryHubStorage::default());
    let hub = hub(schema(&revision_2()), &storage);
    // The hub itself: an app that reads an older format gets no text, only the news.
    let old_app = SyncRequest {
        device: "dev-old".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 65_536,
        schema: Some(SchemaHeld {
            revision: 1,
            format: SCHEMA_FORMAT - 1,
        }),
    };
    let auth = yibiao_sync::DeviceAuth {
        key: "dev".into(),
        scope: DeviceScope::Village("tujiang".into()),
        identity: yibiao_sync::Identity::new(
            yibiao_model::DeviceId::new("dev-old").unwrap(),
            [CadreId::new("amu").unwrap()],
        ),
    };
    let (answer, _) = hub.handle(&auth, &old_app).unwrap();
    assert_eq!(
        answer.schema,
        Some(SchemaOffer {
            revision: 2,
            format: SCHEMA_FORMAT,
            text: None
        })
    );

    // The phone: keeps revision 1, says why, and its records still go up.
    let dir = tempfile::tempdir().unwrap();
    let phone = open(&dir.path().join("phone.sqlite"));
    let id = phone.create("household", Some("tujiang"), &[]).unwrap();
    let link = NewerFormat(InProcess::for_store(
        &hub,
        "dev",
        DeviceScope::Village("tujiang".into()),
        &phone,
    ));
    let report = yibiao_store::sync(&phone, &link, &SyncOptions::default(), &mut |_| {}).unwrap();
    assert!(report.complete);
    assert_eq!(
        report.schema,
        SchemaNews::UpdateApp {
            revision: 7,
            format: SCHEMA_FORMAT + 1,
            supported: SCHEMA_FORMAT
        }
    );
    assert_eq!(phone.schema_revision(), 1);
    assert!(hub.record(id).unwrap().is_some());
    assert_eq!(phone.sync_status().unwrap().pending, 0);
}

/// `text` without its `[finding_categories.*]` tables.
fn without_categories(text: &str) -> String {
    let mut skipping = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line.starts_with("[finding_categories.");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The server offers the format the schema file declares, not the newest its build
/// reads: a township that has not taken up finding categories (format 1) still sends its
/// revisions whole to apps that read only format 1; once it does (format 2), those apps
/// are told to update and a format-2 app gets the text.
#[test]
fn a_format_1_schema_still_reaches_format_1_apps_and_a_format_2_one_says_update() {
    let storage = Arc::new(MemoryHubStorage::default());
    let plain = without_categories(&revision_2().replacen("format = 2 ", "format = 1 ", 1));
    let plain = schema(&plain);
    assert_eq!((plain.format, plain.finding_categories.len()), (1, 0));
    let request = |format| SyncRequest {
        device: "dev-old".into(),
        cursor: 0,
        push: vec![],
        max_response_bytes: 65_536,
        schema: Some(SchemaHeld {
            revision: 1,
            format,
        }),
    };
    let auth = yibiao_sync::DeviceAuth {
        key: "dev".into(),
        scope: DeviceScope::Village("tujiang".into()),
        identity: yibiao_sync::Identity::new(
            yibiao_model::DeviceId::new("dev-old").unwrap(),
            [CadreId::new("amu").unwrap()],
        ),
    };
    let (answer, _) = hub(plain, &storage).handle(&auth, &request(1)).unwrap();
    let offer = answer.schema.unwrap();
    assert_eq!((offer.revision, offer.format), (2, 1));
    assert!(
        offer.text.is_some(),
        "a format-1 app gets a format-1 schema whole"
    );

    let with_categories = hub(schema(&revision_2()), &storage);
    let (answer, _) = with_categories.handle(&auth, &request(1)).unwrap();
    assert_eq!(
        answer.schema,
        Some(SchemaOffer {
            revision: 2,
            format: 2,
            text: None
        })
    );
    let (answer, _) = with_categories.handle(&auth, &request(2)).unwrap();
    assert!(answer.schema.unwrap().text.is_some());
}

#[test]
fn a_value_stranded_by_a_revision_is_kept_flagged_and_the_record_still_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let phone = open(&dir.path().join("phone.sqlite"));
    let storage = Arc::new(MemoryHubStorage::default());
    let rev2 = hub(schema(&revision_2()), &storage);
    sync(&phone, &rev2);
    let id = phone.create("household", Some("tujiang"), &[]).unwrap();
    phone.set(id, "dibao_status", status("applying")).unwrap();
    assert!(sync(&phone, &rev2).refused.is_empty());

    // The server moves on to revision 3, over the same data.
    let rev3 = hub(schema(&revision_3()), &storage);
    assert_eq!(
        sync(&phone, &rev3).schema,
        SchemaNews::Installed { from: 2, to: 3 }
    );
    let view = phone.get(id).unwrap();
    assert_eq!(
        view.value("dibao_status"),
        Some(&serde_json::json!("applying"))
    );
    assert_eq!(view.invalid, ["dibao_status"]);
    let field = view
        .fields
        .iter()
        .find(|f| f.field == "dibao_status")
        .unwrap();
    let why = field.invalid.as_deref().unwrap_or_default();
    assert!(why.contains("has no option \"applying\""), "{why}");

    // Another field of the record is edited and syncs; the stranded value stays.
    phone.set(id, "household_size", Value::Integer(4)).unwrap();
    let report = sync(&phone, &rev3);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.progress.pushed, 1);
    assert_eq!(phone.sync_status().unwrap().pending, 0);
    let held = rev3.record(id).unwrap().unwrap();
    let values = held.values(rev3.schema());
    assert_eq!(values["household_size"], Value::Integer(4));
    assert_eq!(values["dibao_status"], status("applying"));
}
