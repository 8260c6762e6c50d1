//! A new schema revision over a data directory with records: `check-schema --against`
//! lists what it would strand, `serve` refuses it unless `--allow-stranding`, and the
//! department read model is rebuilt with the revision served (stranded values stay in
//! the documents and come back when a later revision accepts them again).

#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use yibiao_model::clock::ManualClock;
use yibiao_model::schema::BARU_TOML;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::AppState;
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::schema_change;
use yibiao_store::Store;
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

const SUSPENDED: &str = r#"  { key = "suspended", zh = "暂停", en = "Suspended" },
"#;

/// Revision 2 drops the option `suspended` of `dibao_status`.
fn revision_2() -> String {
    BARU_TOML
        .replacen("revision = 1 ", "revision = 2 ", 1)
        .replacen(SUSPENDED, "", 1)
}

/// Revision 2b makes `household_size` a text field: stored integers no longer decode.
fn size_as_text(revision: u32) -> String {
    BARU_TOML
        .replacen("revision = 1 ", &format!("revision = {revision} "), 1)
        .replacen(
            "[fields.household_size]\ntype = \"integer\"\nzh = \"家庭人口数\"\nen = \"Household size\"\nmin = 1\nmax = 30",
            "[fields.household_size]\ntype = \"text\"\nzh = \"家庭人口数\"\nen = \"Household size\"",
            1,
        )
}

fn state(dir: &Path, schema: Schema) -> AppState {
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    AppState::open(config, schema).unwrap()
}

/// A server that served revision 1 and holds two households from a phone: one
/// `suspended`, one `enrolled`. Returns their ids.
fn seed(dir: &Path) -> (RecordId, RecordId) {
    let state = state(dir, Schema::baru_example());
    let rebuilt =
        schema_change::prepare(dir, state.storage.as_ref(), state.hub.schema(), false).unwrap();
    assert_eq!(rebuilt, Some(0), "a first start notes the revision served");
    let phone = Store::open_in_memory(
        Arc::new(Schema::baru_example()),
        CadreId::new("amu").unwrap(),
        Arc::new(ManualClock::new(1_795_536_000_000)),
    )
    .unwrap();
    let household = |status: &str, size: i64| {
        phone
            .create(
                "household",
                Some("tujiang"),
                &[
                    FieldEdit::Set("dibao_status".into(), Value::Choice(status.into())),
                    FieldEdit::Set("household_size".into(), Value::Integer(size)),
                ],
            )
            .unwrap()
    };
    let (suspended, enrolled) = (household("suspended", 4), household("enrolled", 3));
    let link = InProcess::for_store(
        state.hub.clone(),
        "dev",
        DeviceScope::Village("tujiang".into()),
        &phone,
    );
    let report = yibiao_store::sync(&phone, &link, &SyncOptions::default(), &mut |_| {}).unwrap();
    assert!(report.complete && report.refused.is_empty(), "{report:?}");
    (suspended, enrolled)
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibiao-server"))
        .args(args)
        .env_remove("YIBIAO_CONFIG")
        .env_remove("YIBIAO_DATA_DIR")
        .env_remove("YIBIAO_SCHEMA")
        .env_remove("YIBIAO_ALLOW_STRANDING")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_schema_against_a_data_dir_lists_stranded_values_with_counts_and_examples() {
    let data = tempfile::tempdir().unwrap();
    let (suspended, _) = seed(data.path());
    let file = data.path().join("rev2.toml");
    std::fs::write(&file, revision_2()).unwrap();
    let dir = data.path().to_str().unwrap();

    let out = cli(&["check-schema", file.to_str().unwrap(), "--against", dir]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "stranding exits non-zero: {stdout}");
    assert!(
        stdout.contains("against revision 1 and the stored records"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "1 records: household.dibao_status: field `dibao_status` (Minimum living allowance status) has no option \"suspended\"; allowed: Not enrolled, Enrolled, Extreme-poverty support (e.g. {suspended} = \"suspended\")"
        )),
        "{stdout}"
    );
    assert!(stderr.contains("revision 2 would strand data"), "{stderr}");

    // The revision being served strands nothing.
    let same = data.path().join("rev1.toml");
    std::fs::write(&same, BARU_TOML).unwrap();
    let out = cli(&["check-schema", same.to_str().unwrap(), "--against", dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nothing would be stranded"));
}

/// Starts `serve` on `dir`; `Ok` once it listens (then stops it), `Err(stderr)` when it
/// exits first.
fn serve(dir: &Path, extra: &[&str]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yibiao-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("YIBIAO_CONFIG")
        .env_remove("YIBIAO_SCHEMA")
        .env_remove("YIBIAO_ALLOW_STRANDING")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening on "));
    if listening {
        child.kill().unwrap();
        child.wait().unwrap();
        return Ok(());
    }
    let out = child.wait_with_output().unwrap();
    Err(text(&out.stderr))
}

#[test]
fn serve_refuses_a_revision_that_strands_data_unless_told_to() {
    let data = tempfile::tempdir().unwrap();
    seed(data.path());
    // The operator drops revision 2 where `serve` looks for the schema.
    std::fs::write(data.path().join("schema.toml"), revision_2()).unwrap();
    let refused = serve(data.path(), &[]).unwrap_err();
    assert!(
        refused.contains("schema revision 2 would strand data"),
        "{refused}"
    );
    assert!(refused.contains("has no option \"suspended\""), "{refused}");
    assert!(refused.contains("--allow-stranding"), "{refused}");
    serve(data.path(), &["--allow-stranding"]).unwrap();
    // Served once, revision 2 is the one served: the next start needs no flag.
    serve(data.path(), &[]).unwrap();
}

#[test]
fn the_read_model_is_rebuilt_with_each_revision_served_and_stranded_values_stay() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let (suspended, enrolled) = seed(dir);
    let sizes = |state: &AppState| {
        let rows = state
            .storage
            .stored_records(&[suspended, enrolled])
            .unwrap();
        rows.iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.values_json).unwrap();
                v.get("household_size").cloned()
            })
            .collect::<Vec<_>>()
    };

    // Revision 2 makes the size text: stored integers no longer fit, the read model
    // drops them (after the operator agreed to strand them).
    let rev2 = Schema::from_toml_str(&size_as_text(2), "rev2.toml").unwrap();
    let state2 = state(dir, rev2);
    let refused = schema_change::prepare(dir, state2.storage.as_ref(), state2.hub.schema(), false)
        .unwrap_err();
    assert!(
        refused.contains("2 records: household.household_size: field `household_size` (Household size) expects text (e.g. "),
        "{refused}"
    );
    let rebuilt =
        schema_change::prepare(dir, state2.storage.as_ref(), state2.hub.schema(), true).unwrap();
    assert_eq!(rebuilt, Some(2));
    assert_eq!(sizes(&state2), [None, None]);
    drop(state2);

    // Revision 3 takes integers again: the values were never lost.
    let rev3 = Schema::from_toml_str(
        &BARU_TOML.replacen("revision = 1 ", "revision = 3 ", 1),
        "rev3.toml",
    )
    .unwrap();
    let state3 = state(dir, rev3);
    schema_change::prepare(dir, state3.storage.as_ref(), state3.hub.schema(), false).unwrap();
    assert_eq!(
        sizes(&state3),
        [Some(serde_json::json!(4)), Some(serde_json::json!(3))]
    );
    // Unchanged text: nothing to do on the next start.
    assert_eq!(
        schema_change::prepare(dir, state3.storage.as_ref(), state3.hub.schema(), false).unwrap(),
        None
    );
}
