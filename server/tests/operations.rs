//! What an operator meets running the real `yibiao-server` binary: the data directory's
//! lock, operator commands that refuse a mistyped `--data-dir`, a failed start that leaves
//! nothing behind, owner-only files, and backup/restore.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::{Command, Output};

use yibiao_testkit::server::{ServerOptions, ServerProcess};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_yibiao-server"))
}

/// Runs the binary with `--data-dir dir` and `args`, isolated from the caller's
/// `YIBIAO_*` environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("YIBIAO_CONFIG")
        .env_remove("YIBIAO_DATA_DIR")
        .env_remove("YIBIAO_SCHEMA")
        .env_remove("YIBIAO_LISTEN")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command that must fail; its stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(binary(), dir, ServerOptions::default()).unwrap()
}

#[test]
fn a_second_serve_on_the_same_data_dir_fails_naming_the_pid_that_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = start(&data);
    let err = fails(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains(&format!(
            "in use by another yibiao-server (pid {})",
            first.pid()
        )),
        "{err}"
    );
    // The lock dies with its holder, even by SIGKILL: the directory serves again.
    drop(first);
    let again = start(&data);
    assert!(again.pid() > 0);
}

#[test]
fn operator_commands_refuse_a_data_dir_without_a_database_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("yibiao-dta");
    let err = fails(
        &typo,
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
    assert!(
        err.contains(&format!("no yibiao database in {}", typo.display())),
        "{err}"
    );
    assert!(err.contains("did you mistype --data-dir?"), "{err}");
    assert!(!typo.exists(), "a refused command made {}", typo.display());
    // An existing but empty directory is refused the same way, and stays empty.
    std::fs::create_dir(&typo).unwrap();
    fails(&typo, &["task", "list"]);
    assert_eq!(std::fs::read_dir(&typo).unwrap().count(), 0);

    // `--create` or `init` make one; then the commands work.
    ok(
        &typo,
        &[
            "--create",
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
    assert!(ok(&typo, &["cadre", "list"]).contains("amu"));
    let other = tmp.path().join("other");
    assert!(ok(&other, &["init"]).contains("created a yibiao database"));
    assert!(ok(&other, &["init"]).contains("already holds a yibiao database"));
    ok(&other, &["task", "list"]);
}

#[test]
fn operator_commands_run_beside_a_serving_server_which_sees_their_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data);
    let out = ok(&data, &["department", "token", "public_services"]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .unwrap();
    let answer = ureq::get(format!("{}/v1/records", server.url()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[test]
fn a_start_that_fails_on_a_taken_port_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = fails(&data, &["serve", "--listen", &port]);
    assert!(err.contains(&format!("cannot listen on {port}")), "{err}");
    assert!(!data.exists(), "a failed start made {}", data.display());

    // Over an existing data directory: no admin token written, no database made.
    std::fs::create_dir(&data).unwrap();
    fails(&data, &["serve", "--listen", &port]);
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_0700_and_every_file_in_it_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data);
    ok(&data, &["department", "token", "public_services"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    files.sort();
    for expected in ["admin-token", "yibiao.db", "yibiao.db-wal", "yibiao.lock"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} in {files:?}"
        );
    }
    drop(server);
}
