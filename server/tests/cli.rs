//! The task and report commands of the real `yibiao-server` binary, run as a child
//! process against a fresh data directory (built-in Baru schema): issue, list, show,
//! summary, burden, and the refusals that must exit non-zero with the reason on stderr.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary with `--data-dir dir` and `args`, isolated from the caller's
/// `YIBIAO_*` environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yibiao-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("YIBIAO_CONFIG")
        .env_remove("YIBIAO_DATA_DIR")
        .env_remove("YIBIAO_SCHEMA")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A fresh data directory with a database (`init`, as a first `serve` would make it).
fn fresh() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init"]);
    dir
}

/// Runs a command that must succeed; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

/// Runs a command that must fail; its stderr, which must hold `reason`.
fn refused(dir: &Path, args: &[&str], reason: &str) {
    let out = run(dir, args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(reason),
        "{args:?}: stderr should say `{reason}`, got: {err}"
    );
}

#[test]
fn task_add_list_show_summary_burden() {
    let dir = fresh();
    let dir = dir.path();

    let added = ok(
        dir,
        &[
            "task",
            "add",
            "--title",
            "低保复核",
            "--form",
            "dibao_check",
            "--due",
            "2099/12/31", // typed as people write it; stored as 2099-12-31
            "--villages",
            "tujiang,baru",
            "--instructions",
            "核查家庭收入",
        ],
    );
    let first = added.lines().next().unwrap();
    let id = first
        .strip_prefix("task ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a task id is a UUID: {first}");
    assert!(
        added.contains("tujiang") && added.contains("baru"),
        "{added}"
    );

    let list = ok(dir, &["task", "list"]);
    let line = list.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(line.contains("township"), "{line}");
    assert!(line.contains("dibao_check"), "{line}");
    assert!(line.contains("2099-12-31"), "{line}");
    assert!(line.contains("sent 2"), "{line}");

    let listed: Value = serde_json::from_str(&ok(dir, &["task", "list", "--json"])).unwrap();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);

    let shown: Value = serde_json::from_str(&ok(dir, &["task", "show", &id, "--json"])).unwrap();
    assert_eq!(shown["task"], id.as_str());
    let villages = shown["villages"].as_array().unwrap();
    assert_eq!(villages.len(), 2);
    assert!(villages.iter().all(|v| v["status"] == "sent"), "{shown}");
    let mut names: Vec<&str> = villages
        .iter()
        .map(|v| v["village"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["baru", "tujiang"]);

    let table = ok(dir, &["task", "show", &id]);
    assert!(
        table.contains("土匠村") && table.contains("sent"),
        "{table}"
    );

    // A department issues to every village it sees, then sees only its own task.
    let dept = ok(
        dir,
        &[
            "task",
            "add",
            "--title",
            "check",
            "--form",
            "dibao_check",
            "--due",
            "2099-12-31",
            "--villages",
            "*",
            "--issuer",
            "public_services",
            "--json",
        ],
    );
    let dept: Value = serde_json::from_str(&dept).unwrap();
    assert_eq!(dept["issuer"], "public_services");
    assert_eq!(dept["villages"].as_array().unwrap().len(), 6);
    let theirs = ok(dir, &["task", "list", "--issuer", "public_services"]);
    assert_eq!(theirs.lines().count(), 1, "{theirs}");
    refused(
        dir,
        &["task", "show", &id, "--issuer", "public_services"],
        "no task",
    );

    let summary: Value = serde_json::from_str(&ok(dir, &["summary", "--json"])).unwrap();
    let total = summary["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["form"] == "dibao_check")
        .unwrap();
    assert_eq!(total["tasks"]["sent"], 8, "{summary}");
    let table = ok(dir, &["summary"]);
    assert!(table.contains("低保户核查表"), "{table}");

    let burden: Value = serde_json::from_str(&ok(
        dir,
        &[
            "burden",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-01",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(burden["values_typed"], 0);
    assert_eq!(burden["deliveries"], 0);
    let report = ok(dir, &["burden"]);
    assert!(report.contains("values typed"), "{report}");
    assert!(report.contains("公共服务办公室"), "{report}");
}

#[test]
fn bad_input_exits_non_zero_with_the_reason() {
    let dir = fresh();
    let dir = dir.path();
    let add = |extra: &[&'static str]| {
        let mut args = vec!["task", "add", "--title", "t", "--due", "2099-12-31"];
        args.extend_from_slice(extra);
        args
    };

    refused(
        dir,
        &add(&["--form", "no_such_form", "--villages", "tujiang"]),
        "unknown form `no_such_form`",
    );
    refused(
        dir,
        &[
            "task",
            "add",
            "--title",
            "t",
            "--due",
            "2099-13-01",
            "--form",
            "dibao_check",
            "--villages",
            "tujiang",
        ],
        "due `2099-13-01` is neither a date (2027-01-05, 2027-1-5, 2027/1/5 or 2027年1月5日) nor a time",
    );
    refused(
        dir,
        &add(&[
            "--form",
            "dibao_check",
            "--villages",
            "tujiang",
            "--issuer",
            "finance",
        ]),
        "unknown issuer `finance`",
    );
    refused(
        dir,
        &add(&[
            "--form",
            "party_member",
            "--villages",
            "tujiang",
            "--issuer",
            "public_services",
        ]),
        "only for its forms",
    );
    refused(
        dir,
        &add(&["--form", "dibao_check", "--villages", "atlantis"]),
        "unknown village `atlantis`",
    );
    refused(
        dir,
        &[
            "task",
            "add",
            "--title",
            "t",
            "--form",
            "dibao_check",
            "--due",
            "2020-01-01",
            "--villages",
            "tujiang",
        ],
        "already past",
    );
    refused(
        dir,
        &add(&[
            "--form",
            "dibao_check",
            "--villages",
            "tujiang",
            "--records",
            "01a20fab-0018-716b-8bf1-8b51830fbc5a",
        ]),
        "cannot be used with",
    );
    refused(
        dir,
        &add(&["--form", "dibao_check"]),
        "required arguments were not provided",
    );
    refused(
        dir,
        &add(&["--form", "dibao_check", "--records", "not-a-uuid"]),
        "not a record id",
    );
    refused(
        dir,
        &["task", "show", "no-such-task"],
        "no task `no-such-task`",
    );
    refused(
        dir,
        &["burden", "--from", "2026-13-01", "--to", "2026-12-01"],
        "not a day",
    );
    refused(
        dir,
        &["burden", "--from", "2026-01-02", "--to", "2026-01-01"],
        "is before",
    );
    refused(dir, &["summary", "--issuer", "finance"], "unknown issuer");

    // Nothing was issued by any of the refusals.
    assert_eq!(ok(dir, &["task", "list"]), "");
}

#[test]
fn device_list_shows_the_phone_id_its_changes_carry_and_revoke_takes_it() {
    let dir = fresh();
    let data = dir.path();
    ok(
        data,
        &[
            "cadre",
            "add",
            "--id",
            "amu",
            "--name",
            "阿木",
            "--village",
            "tujiang",
        ],
    );
    let code_out = ok(data, &["cadre", "code", "amu"]);
    let code = code_out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .unwrap_or_else(|| panic!("no code in {code_out}"));
    // The phone enrols with the id its store generated (as the app does over HTTP).
    let storage = yibiao_server::storage::SqliteStorage::open(&data.join("yibiao.db")).unwrap();
    let phone = "dev-bd1ef04c5ccf4f2d9a1b2c3d4e5f6a7b";
    let enrolled = yibiao_server::accounts::enrol(&storage, code, phone).unwrap();
    assert_eq!(enrolled.device, phone);
    drop(storage);

    let list = ok(data, &["device", "list"]);
    assert!(list.starts_with(phone), "{list}");
    assert!(list.contains("active"), "{list}");
    assert!(list.contains("last sync -"), "never synced: {list}");
    assert_eq!(
        ok(data, &["device", "revoke", phone]).trim(),
        format!("device {phone} revoked")
    );
    assert!(ok(data, &["device", "list"]).contains("revoked"));
    refused(
        data,
        &["device", "revoke", "dev-nobody"],
        "no device `dev-nobody`",
    );
}

/// The operator commands of the README's "Running a server" walk-through (`$B --data-dir
/// yibiao-data ...`, continuation lines joined, comments dropped), split as a shell would
/// split these simple lines (words, '...' and "..." quoting).
fn readme_operator_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in readme.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim_end();
        if pending.is_empty() && !line.starts_with("$B --data-dir yibiao-data ") {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                commands.push(shell_words(&pending)[3..].to_vec());
                pending.clear();
            }
        }
    }
    commands
}

fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[test]
fn the_readme_operator_commands_run_as_written_on_any_day() {
    let commands = readme_operator_commands();
    let names: Vec<String> = commands.iter().map(|c| c[..2].join(" ")).collect();
    assert_eq!(
        names,
        [
            "cadre add",
            "cadre code",
            "cadre move",
            "device list",
            "department token",
            "task add",
            "task list",
            "burden --from"
        ]
    );
    // `scripts/run.sh` (the walk-through's first line) serves, which makes the database.
    let dir = fresh();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(dir.path(), &args);
    }
    // `--due +30d` is 30 days after today in the township, whatever today is.
    let due = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive()
        + chrono::Days::new(30);
    let list = ok(dir.path(), &["task", "list"]);
    assert!(list.contains(&due.format("%Y-%m-%d").to_string()), "{list}");
    refused(
        dir.path(),
        &[
            "task",
            "add",
            "--title",
            "x",
            "--form",
            "dibao_check",
            "--due",
            "+7w",
            "--villages",
            "*",
        ],
        "write +N days, e.g. +7d",
    );
}

#[test]
fn moving_a_cadre_revokes_their_phone_and_a_disabled_cadre_gets_no_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(data, &["init"]);
    ok(
        data,
        &[
            "cadre",
            "add",
            "--id",
            "amu",
            "--name",
            "阿木",
            "--village",
            "tujiang",
        ],
    );
    let code_out = ok(data, &["cadre", "code", "amu"]);
    let code = code_out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .unwrap()
        .to_owned();
    let storage = yibiao_server::storage::SqliteStorage::open(&data.join("yibiao.db")).unwrap();
    yibiao_server::accounts::enrol(&storage, &code, "dev-amu-1").unwrap();
    drop(storage);
    let moved = ok(data, &["cadre", "move", "amu", "--village", "baru"]);
    assert!(moved.contains("enrol again"), "{moved}");
    assert!(ok(data, &["device", "list"]).contains("revoked"));
    assert!(ok(data, &["cadre", "list"]).contains("baru"));
    refused(
        data,
        &["cadre", "move", "amu", "--village", "atlantis"],
        "unknown village",
    );
    ok(data, &["cadre", "disable", "amu"]);
    refused(data, &["cadre", "code", "amu"], "is disabled");
    refused(data, &["cadre", "disable", "nobody"], "no cadre `nobody`");
}

#[test]
fn findings_report_prints_the_period_writes_the_workbook_and_refuses_a_bad_day() {
    use yibiao_server::config::{Config, FileConfig, Overrides};
    use yibiao_server::tasks::Issuer;
    use yibiao_server::{AppState, findings};

    let dir = tempfile::tempdir().unwrap();
    {
        let config = Config::resolve(
            Overrides {
                data_dir: Some(dir.path().to_owned()),
                ..Overrides::default()
            },
            FileConfig::default(),
        )
        .unwrap();
        let storage = std::sync::Arc::new(
            yibiao_server::storage::SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap(),
        );
        let state = AppState::with_storage(config, yibiao_model::Schema::baru_example(), storage);
        let now = yibiao_server::accounts::now_ms();
        for village in ["tujiang", "baru"] {
            let new = serde_json::from_value(serde_json::json!({
                "village": village, "category": "work_style", "description": "脱岗",
                "severity": "low"
            }))
            .unwrap();
            let v = findings::record(&state.hub, &Issuer::Township, new, now).unwrap();
            if village == "tujiang" {
                let hand: findings::NewStep = serde_json::from_value(serde_json::json!(
                    {"hand_over": {"unit": {"village": "tujiang"}, "deadline_ms": now + 1}}
                ))
                .unwrap();
                findings::take_step(&state.hub, &Issuer::Township, v.id, hand, now).unwrap();
            }
        }
    }
    let d = dir.path();
    let xlsx = d.join("report.xlsx");
    let json: Value = serde_json::from_str(&ok(
        d,
        &[
            "findings",
            "report",
            "--json",
            "--xlsx",
            xlsx.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(
        (
            json["total"]["found"].as_u64(),
            json["total"]["handed_over"].as_u64()
        ),
        (Some(2), Some(1)),
        "{json}"
    );
    assert!(
        std::fs::read(&xlsx).unwrap().starts_with(b"PK"),
        "an XLSX (zip) file"
    );
    let table = ok(d, &["findings", "report"]);
    assert!(
        table.contains("by village") && table.contains("tujiang"),
        "{table}"
    );
    refused(
        d,
        &["findings", "report", "--from", "2026-13-01"],
        "2026-13-01",
    );
}
