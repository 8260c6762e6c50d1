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

/// A phone with a real SQLite store, syncing over real HTTP.
struct Phone {
    store: yibiao_store::Store,
    token: String,
}

impl Phone {
    fn new(dir: &Path, server: &ServerProcess, i: usize) -> Self {
        let cadre = format!("cadre-{i}");
        let token = server
            .add_device(&format!("phone-{i}"), &cadre, Some("tujiang"))
            .unwrap();
        let store = yibiao_store::Store::open(
            dir.join(format!("phone-{i}.db")),
            std::sync::Arc::new(yibiao_model::Schema::baru_example()),
            yibiao_model::CadreId::new(cadre).unwrap(),
        )
        .unwrap();
        Self { store, token }
    }

    /// Writes one household and syncs it to `url` until a sync completes.
    fn add_and_sync(&self, url: &str, n: usize) -> yibiao_model::RecordId {
        use yibiao_model::{FieldEdit, Value};
        let id = self
            .store
            .create(
                "household",
                Some("tujiang"),
                &[FieldEdit::Set(
                    "household_head".into(),
                    Value::Text(format!("户主{n}")),
                )],
            )
            .unwrap();
        let transport = yibiao_store::http::HttpTransport::new(
            url,
            &self.token,
            std::time::Duration::from_secs(20),
        );
        let options = yibiao_sync::session::SyncOptions::default();
        for _ in 0..20 {
            if let Ok(report) = yibiao_store::sync(&self.store, &transport, &options, &mut |_| {})
                && report.complete
            {
                return id;
            }
        }
        panic!("sync to {url} never completed");
    }
}

/// The records a data directory's database holds, each loaded (a damaged one panics).
fn stored_records(data: &Path) -> std::collections::BTreeSet<yibiao_model::RecordId> {
    use yibiao_sync::HubStorage;
    let storage = yibiao_server::storage::SqliteStorage::open(&data.join("yibiao.db")).unwrap();
    let feed = storage
        .feed_after(&yibiao_sync::DeviceScope::Township, 0, 1_000_000)
        .unwrap();
    feed.iter()
        .map(|e| {
            let chunks = storage.load(e.id).unwrap().unwrap();
            yibiao_model::record::Record::load(e.id, automerge::ActorId::random(), &chunks)
                .unwrap();
            e.id
        })
        .collect()
}

#[test]
fn a_backup_taken_under_sync_load_restores_into_a_server_the_phones_sync_on_with() {
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data);
    let url = server.url();
    let phones: Vec<Phone> = (0..3).map(|i| Phone::new(tmp.path(), &server, i)).collect();
    // Records whose sync completed (the server acknowledged them).
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let backup = tmp.path().join("backup.sqlite");
    let before_backup = std::thread::scope(|s| {
        for (i, phone) in phones.iter().enumerate() {
            let (url, acknowledged) = (url.clone(), acknowledged.clone());
            s.spawn(move || {
                for n in 0..12 {
                    let id = phone.add_and_sync(&url, i * 100 + n);
                    acknowledged.lock().unwrap().push(id);
                }
            });
        }
        // Once the phones are well under way, back up while they keep writing.
        while acknowledged.lock().unwrap().len() < 6 {
            std::thread::yield_now();
        }
        let before = acknowledged.lock().unwrap().clone();
        let out = ok(&data, &["backup", "--to", backup.to_str().unwrap()]);
        assert!(out.contains("integrity ok"), "{out}");
        before
    });
    assert_eq!(acknowledged.lock().unwrap().len(), 36);
    // Refused over an existing file without --force.
    let err = fails(&data, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");

    let restored = tmp.path().join("restored");
    let out = ok(&restored, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(out.contains("integrity ok"), "{out}");
    let conn = rusqlite::Connection::open(restored.join("yibiao.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    // Every record acknowledged before the backup began is in it, and each loads.
    let held = stored_records(&restored);
    for id in &before_backup {
        assert!(held.contains(id), "{id} was acknowledged before the backup");
    }

    // The restored directory serves; the phones sync on with it, tokens and all.
    drop(server);
    let server = start(&restored);
    let mut after = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        after.push(phone.add_and_sync(&server.url(), 1000 + i));
    }
    let held = stored_records(&restored);
    for id in after.iter().chain(&before_backup) {
        assert!(held.contains(id), "{id} missing after the phones synced on");
    }
}

#[test]
fn restore_refuses_a_serving_or_non_empty_data_dir_and_a_damaged_or_foreign_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data);
    let backup = tmp.path().join("b.sqlite");
    ok(&data, &["backup", "--to", backup.to_str().unwrap()]);
    let from = ["restore", "--from", backup.to_str().unwrap()];

    let err = fails(&data, &[&from[..], &["--force"]].concat());
    assert!(
        err.contains(&format!(
            "in use by another yibiao-server (pid {})",
            server.pid()
        )),
        "{err}"
    );
    drop(server);
    let err = fails(&data, &from);
    assert!(err.contains("already holds a yibiao database"), "{err}");
    ok(&data, &[&from[..], &["--force"]].concat());
    let again = start(&data);
    drop(again);

    let empty = tmp.path().join("empty");
    let junk = tmp.path().join("junk.sqlite");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let err = fails(&empty, &["restore", "--from", junk.to_str().unwrap()]);
    assert!(err.contains("is not a SQLite database"), "{err}");
    let foreign = tmp.path().join("foreign.sqlite");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = fails(&empty, &["restore", "--from", foreign.to_str().unwrap()]);
    assert!(err.contains("is not a yibiao database"), "{err}");
    // A backup with damaged pages (b-tree page headers overwritten) is refused before
    // anything is written.
    let mut bytes = std::fs::read(&backup).unwrap();
    let page = 4096;
    for n in 1..6 {
        for b in &mut bytes[n * page..n * page + 12] {
            *b = 0xA5;
        }
    }
    let damaged = tmp.path().join("damaged.sqlite");
    std::fs::write(&damaged, bytes).unwrap();
    let err = fails(&empty, &["restore", "--from", damaged.to_str().unwrap()]);
    assert!(err.contains("cannot restore"), "{err}");
    assert!(
        !empty.exists(),
        "a refused restore made {}",
        empty.display()
    );
}

/// Starts `serve` over TLS from a config file naming the certificate and key; the
/// `https://` URL it printed.
fn start_tls(data: &Path, config: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[test]
fn a_phone_syncs_over_https_with_the_servers_own_certificate_and_plain_http_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.pem(), signing_key.serialize_pem());
    let (cert_file, key_file) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, &key_pem).unwrap();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let (mut child, url) = start_tls(&data, &config);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let cadre = yibiao_model::CadreId::new("amu").unwrap();
    let out = ok(
        &data,
        &[
            "device",
            "add",
            "--name",
            "p",
            "--cadre",
            "amu",
            "--village",
            "tujiang",
        ],
    );
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .unwrap();
    let store = yibiao_store::Store::open(
        tmp.path().join("phone.db"),
        std::sync::Arc::new(yibiao_model::Schema::baru_example()),
        cadre,
    )
    .unwrap();
    let id = store
        .create(
            "household",
            Some("tujiang"),
            &[yibiao_model::FieldEdit::Set(
                "household_head".into(),
                yibiao_model::Value::Text("阿木".into()),
            )],
        )
        .unwrap();
    let timeout = std::time::Duration::from_secs(10);
    let options = yibiao_sync::session::SyncOptions {
        retry: yibiao_sync::session::RetryPolicy {
            attempts: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    // The public roots do not vouch for a county's own certificate.
    let untrusting = yibiao_store::http::HttpTransport::new(&url, token, timeout);
    let err = yibiao_store::sync(&store, &untrusting, &options, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("network"), "{err}");
    // With the certificate pinned, the phone syncs.
    let pinned = yibiao_store::http::HttpTransport::with_trusted_ca(
        &url,
        token,
        timeout,
        cert_pem.as_bytes(),
    )
    .unwrap();
    let report = yibiao_store::sync(&store, &pinned, &options, &mut |_| {}).unwrap();
    assert!(report.complete, "{report:?}");
    assert!(stored_records(&data).contains(&id));

    // Plain http to the TLS port fails at once, and the server keeps serving.
    let plain = url.replace("https://", "http://");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let refused = agent.get(format!("{plain}/healthz")).call();
    assert!(refused.is_err(), "plain http answered: {refused:?}");
    let report = yibiao_store::sync(&store, &pinned, &options, &mut |_| {}).unwrap();
    assert!(report.complete);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_start_with_a_bad_tls_key_names_the_file_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, .. } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let (cert_file, key_file) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, "not a key").unwrap();
    let data = tmp.path().join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ];
    let err = fails(&data, &args);
    assert!(
        err.contains(&format!("TLS key {}", key_file.display())),
        "{err}"
    );
    // A key of another certificate.
    std::fs::write(&key_file, other.serialize_pem()).unwrap();
    let err = fails(&data, &args);
    assert!(err.contains("do not go together"), "{err}");
    assert!(!data.exists(), "a failed start made {}", data.display());
    let err = fails(&data, &args[..5]);
    assert!(err.contains("--tls-key"), "{err}");
}
