//! Webhooks: the storage conformance suite (run on SQLite, and on PostgreSQL when
//! `YIBIAO_TEST_PG` is set), and end to end: the real server binary delivering to a real
//! receiving HTTP server on loopback that verifies every signature, goes down and comes
//! back, while a second endpoint is dead all along.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use yibiao_server::storage::{
    NewDelivery, PostgresStorage, SqliteStorage, WebhookRow, WebhookStorage,
};
use yibiao_server::webhooks::signature;
use yibiao_testkit::server::{ServerOptions, ServerProcess};

fn hook(id: &str) -> WebhookRow {
    WebhookRow {
        id: id.into(),
        department: "public_services".into(),
        url: "https://example.invalid/hook".into(),
        secret: "whsec_test".into(),
        created_ms: 1,
        cursor: 0,
    }
}

fn batch(first: u64, last: u64) -> NewDelivery {
    NewDelivery {
        first_position: first,
        last_position: last,
        records: (last - first + 1) as u32,
        body: format!("{{\"next_cursor\":{last}}}"),
    }
}

/// What every [`WebhookStorage`] must do.
fn conformance(s: &dyn WebhookStorage) {
    s.add_webhook(&hook("wh_a")).unwrap();
    s.add_webhook(&WebhookRow {
        created_ms: 2,
        ..hook("wh_b")
    })
    .unwrap();
    assert_eq!(
        s.webhooks()
            .unwrap()
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        ["wh_a", "wh_b"]
    );

    // The lease: one holder at a time, renewable by its holder, taken over once expired.
    assert!(s.claim_webhook("wh_a", "p1", 1000, 2000).unwrap());
    assert!(!s.claim_webhook("wh_a", "p2", 1500, 2500).unwrap());
    assert!(s.claim_webhook("wh_a", "p1", 1900, 3000).unwrap());
    assert!(!s.claim_webhook("wh_a", "p2", 2999, 4000).unwrap());
    assert!(s.claim_webhook("wh_a", "p2", 3000, 4000).unwrap());
    assert!(!s.claim_webhook("wh_none", "p1", 0, 1).unwrap());
    // A stopping holder gives its leases up; another takes them before they expire.
    assert!(s.claim_webhook("wh_b", "p2", 3000, 9000).unwrap());
    assert_eq!(s.release_webhooks("p9").unwrap(), 0);
    assert_eq!(s.release_webhooks("p2").unwrap(), 2);
    assert!(s.claim_webhook("wh_b", "p3", 3001, 9000).unwrap());
    assert!(s.claim_webhook("wh_a", "p2", 3000, 4000).unwrap());
    assert!(s.release_webhooks("p3").unwrap() == 1);

    // Only the live holder queues; one pending batch at a time; the cursor moves with it.
    assert!(!s.queue_delivery("wh_a", "p1", &batch(1, 3), 3500).unwrap());
    assert!(
        !s.queue_delivery("wh_a", "p2", &batch(1, 3), 4000).unwrap(),
        "expired"
    );
    assert!(s.queue_delivery("wh_a", "p2", &batch(1, 3), 3500).unwrap());
    assert_eq!(s.webhooks().unwrap()[0].cursor, 3);
    assert!(!s.queue_delivery("wh_a", "p2", &batch(4, 5), 3500).unwrap());
    let pending = s.pending_delivery("wh_a").unwrap().unwrap();
    assert_eq!((pending.first_position, pending.last_position), (1, 3));
    assert_eq!(pending.body, "{\"next_cursor\":3}");
    assert_eq!((pending.status.as_str(), pending.attempts), ("pending", 0));

    // A failed attempt keeps it pending with the error; a 2xx delivers it.
    s.record_attempt(pending.id, Err("answered 503"), 3600)
        .unwrap();
    let again = s.pending_delivery("wh_a").unwrap().unwrap();
    assert_eq!(again.id, pending.id);
    assert_eq!(again.attempts, 1);
    assert_eq!(again.last_error.as_deref(), Some("answered 503"));
    s.record_attempt(pending.id, Ok(()), 3700).unwrap();
    assert!(s.pending_delivery("wh_a").unwrap().is_none());
    // A batch behind the cursor is refused (never delivered twice as new).
    assert!(!s.queue_delivery("wh_a", "p2", &batch(2, 3), 3800).unwrap());
    assert!(s.queue_delivery("wh_a", "p2", &batch(4, 5), 3800).unwrap());
    s.record_attempt(
        s.pending_delivery("wh_a").unwrap().unwrap().id,
        Ok(()),
        3900,
    )
    .unwrap();

    let log = s.deliveries("wh_a", 10).unwrap();
    assert_eq!(
        log.iter().map(|d| d.last_position).collect::<Vec<_>>(),
        [5, 3],
        "newest first"
    );
    assert!(log.iter().all(|d| d.status == "delivered"));
    assert_eq!(log[1].attempts, 2);
    assert!(s.deliveries("wh_b", 10).unwrap().is_empty());

    // Redelivery: the same batch pending again, same body; not across endpoints.
    assert!(!s.redeliver("wh_b", log[1].id).unwrap());
    assert!(s.redeliver("wh_a", log[1].id).unwrap());
    let redo = s.pending_delivery("wh_a").unwrap().unwrap();
    assert_eq!(
        (redo.id, redo.body.as_str()),
        (log[1].id, "{\"next_cursor\":3}")
    );

    assert!(s.remove_webhook("wh_a").unwrap());
    assert!(!s.remove_webhook("wh_a").unwrap());
    assert!(s.deliveries("wh_a", 10).unwrap().is_empty());
    assert_eq!(s.webhooks().unwrap().len(), 1);
}

#[test]
fn sqlite_webhook_storage_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap());
}

#[test]
fn postgres_webhook_storage_passes_the_conformance_suite() {
    let Some(url) = yibiao_testkit::pg::test_url() else {
        return;
    };
    let url = yibiao_testkit::pg::fresh_schema(&url, &format!("webhooks_{}", std::process::id()))
        .unwrap();
    conformance(&PostgresStorage::open(&url).unwrap());
}

/// What the receiver got: each request's idempotency key and body, in arrival order.
type Received = Arc<Mutex<Vec<(u64, String)>>>;

/// A receiving HTTP server on a fixed loopback port, in its own runtime so that stopping
/// it closes its listener and every open connection.
struct Receiver {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    fn start(port: u16, secret: Arc<Mutex<String>>, got: Received) -> Self {
        use axum::http::{HeaderMap, StatusCode};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(async {
            for _ in 0..100 {
                if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    return l;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("port {port} stays taken");
        });
        #[allow(
            clippy::disallowed_methods,
            reason = "the test's receiver is not part of the documented API"
        )]
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (secret, got) = (secret.clone(), got.clone());
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let sig = header("yibiao-signature");
                    let Some(t) = sig
                        .strip_prefix("t=")
                        .and_then(|r| r.split(',').next())
                        .and_then(|t| t.parse::<i64>().ok())
                    else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let secret = secret.lock().unwrap().clone();
                    if signature(&secret, t, body.as_bytes()) != sig {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let key = header("idempotency-key").parse().unwrap();
                    got.lock().unwrap().push((key, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            runtime: Some(runtime),
        }
    }

    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_yibiao-server"))
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("YIBIAO_CONFIG")
        .env_remove("YIBIAO_SCHEMA")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn printed<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(prefix)).unwrap()
}

/// Waits (up to a minute, then fails) until `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The record ids a body carries, with their feed positions.
fn changes(body: &str) -> Vec<(u64, String)> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().unwrap(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Writes `n` households on the phone and syncs them.
fn write_and_sync(store: &yibiao_store::Store, url: &str, token: &str, from: usize, n: usize) {
    use yibiao_model::{FieldEdit, Value};
    for i in from..from + n {
        store
            .create(
                "household",
                Some("tujiang"),
                &[FieldEdit::Set(
                    "household_head".into(),
                    Value::Text(format!("户主{i}")),
                )],
            )
            .unwrap();
    }
    let transport = yibiao_store::http::HttpTransport::new(url, token, Duration::from_secs(20));
    let report = yibiao_store::sync(
        store,
        &transport,
        &yibiao_sync::session::SyncOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(report.complete);
}

#[test]
fn every_change_reaches_a_receiver_that_goes_down_and_comes_back_in_order_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        "webhook_max_backoff_secs = 1\nrate_per_minute = 0\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        binary(),
        &data,
        ServerOptions {
            config: Some(config),
            ..ServerOptions::default()
        },
    )
    .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = Arc::new(Mutex::new(String::new()));
    let got: Received = Arc::default();
    let mut receiver = Receiver::start(port, secret.clone(), got.clone());

    // The dead endpoint first: were deliveries one queue, it would hold up the live one.
    let dead = cli(
        &data,
        &[
            "webhook",
            "add",
            "--department",
            "public_services",
            "--url",
            &format!("http://127.0.0.1:{dead_port}/hook"),
        ],
    );
    let dead_id = printed(&dead, "webhook ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let live = cli(
        &data,
        &[
            "webhook",
            "add",
            "--department",
            "public_services",
            "--url",
            &format!("http://127.0.0.1:{port}/hook"),
        ],
    );
    let live_id = printed(&live, "webhook ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    *secret.lock().unwrap() = printed(&live, "secret (shown once): ").to_owned();

    let token = server.add_device("phone", "amu", Some("tujiang")).unwrap();
    let store = yibiao_store::Store::open(
        tmp.path().join("phone.db"),
        Arc::new(yibiao_model::Schema::baru_example()),
        yibiao_model::CadreId::new("amu").unwrap(),
    )
    .unwrap();
    let delivered = |got: &Received| -> BTreeMap<u64, String> {
        got.lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| changes(body))
            .collect()
    };

    write_and_sync(&store, &server.url(), &token, 0, 5);
    wait_for("the first five changes", || delivered(&got).len() == 5);

    // The receiver goes down; changes keep coming; the server keeps trying.
    receiver.stop();
    write_and_sync(&store, &server.url(), &token, 5, 5);
    wait_for("a failed attempt in the log", || {
        cli(&data, &["webhook", "deliveries", &live_id]).contains("network:")
    });
    write_and_sync(&store, &server.url(), &token, 10, 5);
    let mut receiver = Receiver::start(port, secret.clone(), got.clone());
    wait_for("all fifteen changes", || delivered(&got).len() == 15);

    // In feed order, nothing lost; a key seen twice carries the same body.
    let requests = got.lock().unwrap().clone();
    let mut by_key: BTreeMap<u64, String> = BTreeMap::new();
    let mut order = Vec::new();
    for (key, body) in &requests {
        match by_key.get(key) {
            Some(first) => assert_eq!(first, body, "key {key} resent with another body"),
            None => {
                by_key.insert(*key, body.clone());
                order.push(*key);
                let seqs: Vec<u64> = changes(body).iter().map(|c| c.0).collect();
                assert_eq!(
                    seqs.last(),
                    Some(key),
                    "the key is the batch's last position"
                );
            }
        }
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "batches arrive in feed order");
    let all: Vec<u64> = delivered(&got).into_keys().collect();
    let mut firsts: Vec<u64> = by_key
        .values()
        .flat_map(|b| changes(b))
        .map(|c| c.0)
        .collect();
    firsts.dedup();
    assert_eq!(
        firsts, all,
        "each change once across first deliveries, in order"
    );

    // The dead endpoint is still trying, its first batch pending.
    let dead_log = cli(&data, &["webhook", "deliveries", &dead_id]);
    assert!(
        dead_log.contains("pending") && dead_log.contains("network:"),
        "{dead_log}"
    );

    // Manual redelivery sends the same batch again, same key and body.
    let n = requests.len();
    let first = cli(
        &data,
        &["webhook", "deliveries", &live_id, "--limit", "100"],
    );
    let oldest = first
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    cli(&data, &["webhook", "redeliver", &live_id, &oldest]);
    wait_for("the redelivery", || got.lock().unwrap().len() > n);
    let again = got.lock().unwrap()[n].clone();
    assert_eq!(by_key.get(&again.0), Some(&again.1));
    receiver.stop();
}

#[test]
fn registration_refuses_plain_http_off_loopback_and_unknown_departments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    cli(data, &["init"]);
    let run = |args: &[&str]| {
        Command::new(binary())
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env_remove("YIBIAO_CONFIG")
            .env_remove("YIBIAO_SCHEMA")
            .output()
            .unwrap()
    };
    let out = run(&[
        "webhook",
        "add",
        "--department",
        "public_services",
        "--url",
        "http://10.1.2.3/hook",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http"));
    let out = run(&[
        "webhook",
        "add",
        "--department",
        "nobody",
        "--url",
        "https://x.example/hook",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown department `nobody`"));
    let ok = cli(
        data,
        &[
            "webhook",
            "add",
            "--department",
            "public_services",
            "--url",
            "http://10.1.2.3/hook",
            "--allow-http",
        ],
    );
    assert!(ok.contains("secret (shown once): whsec_"));
    assert!(cli(data, &["webhook", "list"]).contains("http://10.1.2.3/hook"));
}

/// An admin API call: (status, JSON body).
fn admin_call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    lang: &str,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    let mut resp = match (method, body) {
        ("GET", _) => agent
            .get(&url)
            .header("Authorization", &auth)
            .header("Accept-Language", lang)
            .call(),
        ("DELETE", _) => agent
            .delete(&url)
            .header("Authorization", &auth)
            .header("Accept-Language", lang)
            .call(),
        (_, Some(b)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Accept-Language", lang)
            .header("Content-Type", "application/json")
            .send(b.to_string().as_bytes()),
        (_, None) => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Accept-Language", lang)
            .send_empty(),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Who holds endpoint `id`'s delivery lease, read from the SQLite file.
fn lease_holder(data: &Path, id: &str) -> Option<String> {
    let db = rusqlite::Connection::open(data.join("yibiao.db")).unwrap();
    db.query_row(
        "SELECT lease_holder FROM webhooks WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn the_admin_api_registers_shows_the_delivery_log_redelivers_and_shutdown_frees_the_lease() {
    use serde_json::json;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        "webhook_max_backoff_secs = 1\nrate_per_minute = 0\n",
    )
    .unwrap();
    let mut server = ServerProcess::start(
        binary(),
        &data,
        ServerOptions {
            config: Some(config),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let base = server.url();
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        admin_call(&base, &admin, method, path, body, "zh-CN")
    };

    // Refusals name what is wrong, in the caller's language.
    let (status, body) = call(
        "POST",
        "/v1/admin/webhooks",
        Some(json!({"department": "public_services", "url": "http://10.1.2.3/hook"})),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["reason"], "webhook_plain_http", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("明文"),
        "{body}"
    );
    let (status, body) = admin_call(
        &base,
        &admin,
        "POST",
        "/v1/admin/webhooks",
        Some(json!({"department": "treasury", "url": "https://x.example/hook"})),
        "en",
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["reason"], "unknown_department", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown department `treasury`"),
        "{body}"
    );
    let (status, _) = call(
        "POST",
        "/v1/admin/webhooks",
        Some(json!({"department": "public_services", "url": "https://x.example/hook", "extra": 1})),
    );
    assert_eq!(status, 400, "unknown body fields are refused");

    // Register; the secret is in the answer once, never in the list.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, live) = call(
        "POST",
        "/v1/admin/webhooks",
        Some(
            json!({"department": "public_services", "url": format!("http://127.0.0.1:{port}/hook")}),
        ),
    );
    assert_eq!(status, 201, "{live}");
    let id = live["id"].as_str().unwrap().to_owned();
    let secret = live["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, spare) = call(
        "POST",
        "/v1/admin/webhooks",
        Some(json!({"department": "public_services", "url": "https://x.example/hook"})),
    );
    let spare_id = spare["id"].as_str().unwrap().to_owned();
    let (status, list) = call("GET", "/v1/admin/webhooks", None);
    assert_eq!(status, 200);
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|h| h.get("secret").is_none()), "{list}");
    assert_eq!(
        call("DELETE", &format!("/v1/admin/webhooks/{spare_id}"), None).0,
        204
    );
    let (status, body) = call("DELETE", &format!("/v1/admin/webhooks/{spare_id}"), None);
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (404, Some("no_webhook"))
    );

    // The receiver is down: the log shows the batch pending with its failures.
    let token = server
        .add_device("phone-a", "amu", Some("tujiang"))
        .unwrap();
    let store = yibiao_store::Store::open(
        tmp.path().join("phone.db"),
        Arc::new(yibiao_model::Schema::baru_example()),
        yibiao_model::CadreId::new("amu").unwrap(),
    )
    .unwrap();
    write_and_sync(&store, &base, &token, 0, 2);
    let log = |limit: &str| {
        call(
            "GET",
            &format!("/v1/admin/webhooks/{id}/deliveries?limit={limit}"),
            None,
        )
    };
    wait_for("a failed attempt in the log", || {
        let (_, body) = log("10");
        body["deliveries"][0]["attempts"].as_u64().unwrap_or(0) >= 1
    });
    let (_, failing) = log("10");
    let first = &failing["deliveries"][0];
    assert_eq!(first["status"], "pending", "{failing}");
    assert!(first["last_error"].as_str().is_some(), "{failing}");
    assert_eq!(first["records"], 2);
    assert_eq!(
        (
            log("0").0,
            call("GET", "/v1/admin/webhooks/wh_nobody/deliveries", None).0
        ),
        (400, 404)
    );

    // It comes back: delivered, signed; the log says so.
    let got: Received = Arc::default();
    let mut receiver = Receiver::start(port, Arc::new(Mutex::new(secret)), got.clone());
    wait_for("the delivery", || !got.lock().unwrap().is_empty());
    wait_for("the log to say delivered", || {
        log("10").1["deliveries"][0]["status"] == "delivered"
    });
    let delivery = log("10").1["deliveries"][0]["id"].as_i64().unwrap();
    let (key, body) = got.lock().unwrap()[0].clone();
    assert_eq!(changes(&body).len(), 2);

    // Redelivery through the API: the same body and key, signed again.
    let (status, answer) = call(
        "POST",
        &format!("/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver"),
        None,
    );
    assert_eq!(status, 202, "{answer}");
    wait_for("the redelivery", || got.lock().unwrap().len() >= 2);
    assert_eq!(got.lock().unwrap()[1], (key, body));
    let (status, body) = call(
        "POST",
        &format!("/v1/admin/webhooks/{id}/deliveries/99999/redeliver"),
        None,
    );
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (404, Some("no_delivery"))
    );

    // This process holds the lease while it serves and gives it up when stopped cleanly
    // (another process then delivers at once, not after the lease expires).
    let holder = lease_holder(&data, &id).expect("the running server holds the lease");
    assert!(
        holder.starts_with(&format!("pid{}-", server.pid())),
        "{holder}"
    );
    assert!(server.terminate().unwrap(), "a clean exit on SIGTERM");
    assert_eq!(
        lease_holder(&data, &id),
        None,
        "the lease was given up on shutdown"
    );
    receiver.stop();
}
