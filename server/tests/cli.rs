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
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
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
