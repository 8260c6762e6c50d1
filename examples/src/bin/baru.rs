//! `baru`: one township day in Baru (巴茹), end to end, with every real part.
//!
//! - The yibiao server runs in this process on embedded SQLite (a real file, real HTTP
//!   on loopback), with the shipped Baru schema.
//! - 200 cadre phones (in process, each with its own SQLite store) reach it through the
//!   fault-injecting proxy of `yibiao-tests`: the two mountain villages on a 2G link
//!   (500 ms each way, 40/20 kbit/s, 10% of connections cut, 5% of requests duplicated),
//!   the others on EDGE (250 ms, 100/50 kbit/s, 5% cut).
//! - Morning: the township office registers the households; four departments issue
//!   tasks over HTTP. Phones sync; the tasks arrive and the phones say so themselves.
//! - Day: cadres open their tasks and fill the forms offline; some pairs edit the same
//!   household apart (conflicts); one village marks a task done with a note; nobody does
//!   the xinmin patrol, which becomes overdue.
//! - Evening: phones sync again (retrying through cuts), the office resolves the
//!   conflicts, phones converge, every department pulls its view.
//! - Late evening: the discipline office, back from an afternoon visit to three villages
//!   (issue 15), records five findings over HTTP and hands them over; the village phones
//!   resolve them offline and sync through the same weak links; one is sent back and
//!   resolved again, one left overdue and held to account; the weekly report (通报) is
//!   printed.
//! - It checks itself: every phone holds exactly what was typed for its village, every
//!   department's pull equals what the cadres typed within its view, the tasks stand as
//!   the day made them, each finding stands as the inspection left it on the server and
//!   on its village's phones, and the report's figures are the inspection's. Any mismatch
//!   exits non-zero.
//!
//! - Next morning (with `--then-postgres URL`): the county moves Baru onto PostgreSQL.
//!   The server stops, the operator's `migrate --to` copies the data directory (tables
//!   and photos, verified), the server starts again on PostgreSQL at the same address;
//!   the same phones edit and sync on through the same weak links with their old
//!   cursors, departments page their feeds on from where they stopped; it checks that
//!   nothing was lost, repeated or downloaded again (`baru/postgres.rs`).
//!
//! Usage: `baru [--phones N] [--households N] [--parallel N] [--seed N] [--small]
//! [--then-postgres postgres://...]` (`--small`: 24 phones, 6 households per village,
//! for CI).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use yibiao_model::value::Decimal;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::{AppState, accounts, app};
use yibiao_store::blobs::{self, BlobTransport, Blobs, UploadOptions};
use yibiao_store::http::HttpTransport;
use yibiao_store::{Query, Store};
use yibiao_sync::{RetryPolicy, SyncOptions};
use yibiao_tests::proxy::{LinkProfile, Proxy};

#[path = "baru/inspection.rs"]
mod inspection;
#[path = "baru/postgres.rs"]
mod postgres;

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, Failure>;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("baru: SELF-CHECK FAILED (see the mismatches above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("baru failed: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    phones: usize,
    households: usize,
    parallel: usize,
    seed: u64,
    overdue_after: Duration,
    /// After the day, move the township onto this PostgreSQL and go on (issue 14).
    then_postgres: Option<String>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        phones: 200,
        households: 40,
        parallel: 32,
        seed: 7,
        overdue_after: Duration::from_secs(40),
        then_postgres: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |it: &mut dyn Iterator<Item = String>, flag: &str| -> Res<u64> {
        let v = it.next().ok_or(format!("{flag} needs a number"))?;
        v.parse()
            .map_err(|_| format!("{flag} needs a number, got `{v}`").into())
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--phones" => a.phones = num(&mut it, "--phones")? as usize,
            "--households" => a.households = num(&mut it, "--households")? as usize,
            "--parallel" => a.parallel = num(&mut it, "--parallel")? as usize,
            "--seed" => a.seed = num(&mut it, "--seed")?,
            "--then-postgres" => {
                let url = it
                    .next()
                    .ok_or("--then-postgres needs a postgres:// address")?;
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    return Err(format!(
                        "--then-postgres needs a postgres:// address, got `{url}`"
                    )
                    .into());
                }
                a.then_postgres = Some(url);
            }
            "--small" => {
                a.phones = 24;
                a.households = 6;
                a.parallel = 12;
                a.overdue_after = Duration::from_secs(15);
            }
            "-h" | "--help" => {
                println!(
                    "usage: baru [--phones N] [--households N (per village)] [--parallel N] [--seed N] [--small] [--then-postgres postgres://...]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; try --help").into()),
        }
    }
    if a.phones < 12 {
        return Err("--phones must be at least 12 (two per village)".into());
    }
    if a.households < 4 {
        return Err("--households must be at least 4".into());
    }
    a.parallel = a.parallel.clamp(1, 256);
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// What the cadres typed: the expected state every replica and department must reach.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Model {
    /// Record -> (village, field -> value as JSON).
    records: BTreeMap<RecordId, (String, BTreeMap<String, Json>)>,
    values_typed: u64,
}

impl Model {
    fn set(&mut self, id: RecordId, village: &str, edits: &[FieldEdit]) {
        let entry = self
            .records
            .entry(id)
            .or_insert_with(|| (village.to_owned(), BTreeMap::new()));
        for e in edits {
            if let FieldEdit::Set(f, v) = e {
                entry.1.insert(f.clone(), v.to_json());
                self.values_typed += 1;
            }
        }
    }
}

fn set(f: &str, v: Value) -> FieldEdit {
    FieldEdit::Set(f.to_owned(), v)
}

fn date(s: &str) -> Res<Value> {
    Ok(Value::Date(s.parse()?))
}

// ---------------------------------------------------------------------------------------
// Phones and the network.
// ---------------------------------------------------------------------------------------

struct Phone {
    name: String,
    village: String,
    store: Store,
    /// Photos attached on this phone (ADR 0013), beside its store file.
    blobs: Blobs,
    transport: HttpTransport,
}

#[derive(Default)]
struct Wire {
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    failed_syncs: AtomicU64,
    /// Records phones took from the server (a page's documents, as applied).
    pulled: AtomicU64,
}

/// Syncs every phone in `which` with `parallel` workers until each reports a complete
/// sync; a sync that fails (link cut through every retry) is queued again.
fn sync_round(
    label: &str,
    phones: &[Phone],
    which: &[usize],
    parallel: usize,
    wire: &Wire,
) -> Res<Duration> {
    let started = Instant::now();
    let queue: Mutex<VecDeque<usize>> = Mutex::new(which.iter().copied().collect());
    let done = AtomicU64::new(0);
    let total = which.len() as u64;
    let stop = AtomicBool::new(false);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let attempts: Mutex<HashMap<usize, u32>> = Mutex::new(HashMap::new());
    let options = SyncOptions {
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(3),
        },
        ..SyncOptions::default()
    };
    std::thread::scope(|s| {
        s.spawn(|| show_progress(label, &done, total, &stop, wire, started));
        let mut workers = Vec::new();
        for _ in 0..parallel.min(which.len()).max(1) {
            workers.push(s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                    let Some(i) = next else { break };
                    let p = &phones[i];
                    let n = attempts
                        .lock()
                        .map(|mut a| {
                            let n = a.entry(i).or_insert(0);
                            *n += 1;
                            *n
                        })
                        .unwrap_or(1);
                    if n > 30 {
                        if let Ok(mut e) = errors.lock() {
                            e.push(format!("{} could not complete a sync in 30 tries", p.name));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut last = yibiao_sync::SyncProgress::default();
                    let result = yibiao_store::sync(&p.store, &p.transport, &options, &mut |pr| {
                        last = pr.clone();
                    });
                    match result {
                        Ok(r) if r.complete && r.refused.is_empty() => {
                            add_wire(wire, &r.progress);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) if !r.refused.is_empty() => {
                            add_wire(wire, &r.progress);
                            if let Ok(mut e) = errors.lock() {
                                e.push(format!("{}: refused {:?}", p.name, r.refused));
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            add_wire(wire, &r.progress);
                            wire.failed_syncs.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut q) = queue.lock() {
                                q.push_back(i);
                            }
                        }
                        Err(e) => {
                            // The link failed through every retry: what was committed
                            // stays committed; try this phone again later.
                            add_wire(wire, &last);
                            wire.failed_syncs.fetch_add(1, Ordering::Relaxed);
                            let _ = e;
                            if let Ok(mut q) = queue.lock() {
                                q.push_back(i);
                            }
                        }
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.join();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        return Err(format!("documents were refused: {}", errors.join("; ")).into());
    }
    Ok(started.elapsed())
}

fn add_wire(w: &Wire, p: &yibiao_sync::SyncProgress) {
    w.requests
        .fetch_add(u64::from(p.requests), Ordering::Relaxed);
    w.bytes_up.fetch_add(p.bytes_up, Ordering::Relaxed);
    w.bytes_down.fetch_add(p.bytes_down, Ordering::Relaxed);
    w.pulled.fetch_add(u64::from(p.pulled), Ordering::Relaxed);
}

fn show_progress(
    label: &str,
    done: &AtomicU64,
    total: u64,
    stop: &AtomicBool,
    wire: &Wire,
    started: Instant,
) {
    let tty = std::io::stderr().is_terminal();
    let mut last_tenth = u64::MAX;
    loop {
        let finished = stop.load(Ordering::Relaxed);
        let d = done.load(Ordering::Relaxed);
        let line = format!(
            "  {label}: {d}/{total} phones synced, {} requests, {} failed attempts re-queued, {:.0} KB up / {:.0} KB down, {:.0} s",
            wire.requests.load(Ordering::Relaxed),
            wire.failed_syncs.load(Ordering::Relaxed),
            wire.bytes_up.load(Ordering::Relaxed) as f64 / 1024.0,
            wire.bytes_down.load(Ordering::Relaxed) as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else if total > 0 && (d * 10 / total != last_tenth || finished) {
            last_tenth = d * 10 / total;
            eprintln!("{line}");
        }
        if finished {
            if tty {
                eprintln!();
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------
// HTTP helpers (departments and the township use plain HTTP, as any system would).
// ---------------------------------------------------------------------------------------

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
        }
    }

    fn text(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Json>,
    ) -> Res<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {token}");
        let mut resp = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes())?,
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call()?,
            _ => return Err(format!("unsupported {method}").into()),
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(512 * 1024 * 1024)
            .read_to_string()?;
        Ok((status, text))
    }

    fn json(&self, method: &str, path: &str, token: &str, body: Option<&Json>) -> Res<Json> {
        let (status, text) = self.text(method, path, token, body)?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: HTTP {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }
}

fn today_plus(days: i64) -> String {
    let day = yibiao_model::clock::day_of(chrono::Utc::now().timestamp_millis());
    (day + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The township: server, links, accounts.
// ---------------------------------------------------------------------------------------

/// The server, in process, on a real SQLite file (or PostgreSQL) and real HTTP.
struct Server {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    url: String,
    admin: String,
    storage: Arc<dyn yibiao_server::storage::ServerStorage>,
    data_dir: PathBuf,
    /// Ends the serving task gracefully.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops serving (open requests finish) and waits until the port is free.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), serving).await });
        }
    }
}

/// Starts a server on `data_dir` (and `database`, when given) at `addr` (any free port
/// when `None`).
fn start_server(
    schema: &Schema,
    data_dir: PathBuf,
    database: Option<String>,
    addr: Option<SocketAddr>,
) -> Res<Server> {
    let config = Config::resolve(
        Overrides {
            data_dir: Some(data_dir.clone()),
            database,
            ..Overrides::default()
        },
        FileConfig {
            // 200 phones through 2 proxies share two source addresses but each has its
            // own token; the per-token limit stays as configured.
            ..FileConfig::default()
        },
    )?;
    let state = AppState::open(config, schema.clone())?;
    let admin = accounts::rotate_admin_token(state.storage.as_ref())?;
    let storage = state.storage.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let want = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = runtime.block_on(tokio::net::TcpListener::bind(want))?;
    let addr: SocketAddr = listener.local_addr()?;
    let router = app(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server {
        runtime,
        addr,
        url: format!("http://{addr}"),
        admin,
        storage,
        data_dir,
        stop: Some(stop),
        serving: Some(serving),
    })
}

/// Weak links: the mountain villages on 2G, the others on EDGE.
struct Links {
    mountain: Proxy,
    edge: Proxy,
}

const MOUNTAIN_VILLAGES: [&str; 2] = ["tujiang", "shanzhong"];

impl Links {
    fn start(server: &Server, seed: u64) -> Res<Self> {
        let mountain = LinkProfile {
            cut_probability: 0.10,
            duplicate_probability: 0.05,
            ..LinkProfile::mountain_2g()
        };
        let edge = LinkProfile {
            cut_probability: 0.05,
            ..LinkProfile::edge()
        };
        let links = Self {
            mountain: Proxy::start(server.addr, mountain.clone(), seed)?,
            edge: Proxy::start(server.addr, edge.clone(), seed + 1)?,
        };
        println!(
            "  server on {}; tujiang and shanzhong on 2G ({} ms, {}/{} kbit/s, {:.0}% cut, {:.0}% duplicated), the rest on EDGE ({} ms, {}/{} kbit/s, {:.0}% cut)",
            server.url,
            mountain.latency.as_millis(),
            mountain.down_bps.unwrap_or(0) / 1000,
            mountain.up_bps.unwrap_or(0) / 1000,
            mountain.cut_probability * 100.0,
            mountain.duplicate_probability * 100.0,
            edge.latency.as_millis(),
            edge.down_bps.unwrap_or(0) / 1000,
            edge.up_bps.unwrap_or(0) / 1000,
            edge.cut_probability * 100.0
        );
        Ok(links)
    }

    /// The proxy a phone of `village` reaches the server through.
    fn url_for(&self, village: &str) -> String {
        if MOUNTAIN_VILLAGES.contains(&village) {
            self.mountain.url()
        } else {
            self.edge.url()
        }
    }
}

/// The township office's own device, on the office's good link.
struct Office {
    store: Store,
    link: HttpTransport,
}

impl Office {
    fn sync(&self) -> Res<()> {
        let r = yibiao_store::sync(
            &self.store,
            &self.link,
            &SyncOptions::default(),
            &mut |_| {},
        )?;
        if !r.complete || !r.refused.is_empty() {
            return Err(format!("office sync incomplete: {r:?}").into());
        }
        Ok(())
    }
}

/// Everyone of the day: phones, the office, departments, and what they typed.
struct Township {
    args: Args,
    t0: Instant,
    schema: Schema,
    villages: Vec<String>,
    server: Server,
    http: Http,
    links: Links,
    phones: Vec<Phone>,
    office: Office,
    dept_tokens: BTreeMap<String, String>,
    /// Village -> indexes of its phones.
    by_village: BTreeMap<String, Vec<usize>>,
    /// Village -> the households the office registered.
    households: BTreeMap<String, Vec<RecordId>>,
    wire: Wire,
    model: Model,
    _tmp: tempfile::TempDir,
}

impl Township {
    /// Starts the server and the links and makes every account.
    fn open(args: Args) -> Res<Self> {
        let t0 = Instant::now();
        let schema = Schema::baru_example();
        let villages: Vec<String> = schema.villages.keys().cloned().collect();
        let tmp = tempfile::tempdir()?;
        println!("一表 yibiao — a township day in Baru (巴茹镇)");
        println!(
            "  {} phones in {} villages, {} households per village, data in {}",
            args.phones,
            villages.len(),
            args.households,
            tmp.path().display()
        );
        let server = start_server(&schema, tmp.path().join("server"), None, None)?;
        let links = Links::start(&server, args.seed)?;
        let phones = register_phones(&args, &schema, &villages, &server, &links, tmp.path())?;
        let office = register_office(&schema, &server, tmp.path())?;
        let mut dept_tokens = BTreeMap::new();
        for d in schema.departments.keys() {
            let (_, token) = accounts::issue_department_token(
                server.storage.as_ref(),
                &schema,
                d,
                "baru example",
            )?;
            dept_tokens.insert(d.clone(), token);
        }
        let by_village = villages
            .iter()
            .map(|v| {
                let mine = (0..phones.len()).filter(|&i| &phones[i].village == v);
                (v.clone(), mine.collect())
            })
            .collect();
        Ok(Self {
            http: Http::new(&server.url),
            args,
            t0,
            schema,
            villages,
            server,
            links,
            phones,
            office,
            dept_tokens,
            by_village,
            households: BTreeMap::new(),
            wire: Wire::default(),
            model: Model::default(),
            _tmp: tmp,
        })
    }

    /// Every phone.
    fn all(&self) -> Vec<usize> {
        (0..self.phones.len()).collect()
    }

    /// Syncs every phone until each reports a complete sync.
    fn sync_all(&self, label: &str) -> Res<Duration> {
        sync_round(
            label,
            &self.phones,
            &self.all(),
            self.args.parallel,
            &self.wire,
        )
    }
}

/// One device token and one SQLite store per phone, spread over the villages.
fn register_phones(
    args: &Args,
    schema: &Schema,
    villages: &[String],
    server: &Server,
    links: &Links,
    dir: &Path,
) -> Res<Vec<Phone>> {
    let schema_arc = Arc::new(schema.clone());
    let phones_dir = dir.join("phones");
    std::fs::create_dir_all(&phones_dir)?;
    let mut phones = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let village = villages[i % villages.len()].clone();
        let cadre = format!("{village}-{:03}", i / villages.len() + 1);
        let (_, token) = accounts::register_device(
            server.storage.as_ref(),
            schema,
            &format!("phone {cadre}"),
            Some(&cadre),
            Some(&village),
        )?;
        let url = links.url_for(&village);
        let path = phones_dir.join(format!("{cadre}.db"));
        let blobs = Blobs::open(Blobs::dir_beside(&path))?;
        let store = Store::open(&path, schema_arc.clone(), CadreId::new(&cadre)?)?;
        // Enrolment tells the phone its village, as the app does (the findings handed to
        // the village are then its cadres' to resolve).
        store.set_scope(Some(&yibiao_sync::DeviceScope::Village(village.clone())))?;
        phones.push(Phone {
            name: cadre,
            village,
            store,
            blobs,
            transport: HttpTransport::new(&url, &token, Duration::from_secs(180)),
        });
    }
    Ok(phones)
}

/// The township office: a township-wide device straight to the server.
fn register_office(schema: &Schema, server: &Server, dir: &Path) -> Res<Office> {
    let (_, token) = accounts::register_device(
        server.storage.as_ref(),
        schema,
        "township office",
        Some("office"),
        None,
    )?;
    let store = Store::open(
        dir.join("office.db"),
        Arc::new(schema.clone()),
        CadreId::new("office")?,
    )?;
    Ok(Office {
        store,
        link: HttpTransport::new(&server.url, &token, Duration::from_secs(60)),
    })
}

// ---------------------------------------------------------------------------------------
// The day, step by step.
// ---------------------------------------------------------------------------------------

/// [08:00] The township office registers the households.
fn register_households(t: &mut Township) -> Res<()> {
    println!(
        "\n[08:00] the township office registers {} households",
        t.args.households * t.villages.len()
    );
    let surnames = [
        "阿木", "吉克", "曲比", "沙马", "阿苏", "海来", "勒格", "马海", "俄底", "莫色",
    ];
    for (vi, v) in t.villages.iter().enumerate() {
        for h in 0..t.args.households {
            let edits = vec![
                set(
                    "household_head",
                    Value::Text(format!("{}{}", surnames[(h + vi) % surnames.len()], h + 1)),
                ),
                set("id_number", Value::Text(id_number(vi, h))),
                set("household_size", Value::Integer(2 + (h as i64 % 5))),
                set("address", Value::Text(format!("{v} 第{}组", h % 4 + 1))),
            ];
            let id = t.office.store.create("household", Some(v), &edits)?;
            t.model.set(id, v, &edits);
            t.households.entry(v.clone()).or_default().push(id);
        }
    }
    t.office.sync()
}

/// A resident ID number (GB 11643) for household `h` of village `vi`: born 1980, the
/// month from the village, with the check character the standard gives.
fn id_number(vi: usize, h: usize) -> String {
    let body = format!(
        "5134311980{:02}{:02}{:03}",
        vi % 12 + 1,
        h % 28 + 1,
        h % 1000
    );
    let check = yibiao_model::formats::id_check_char(&body).unwrap_or('X');
    format!("{body}{check}")
}

/// The four tasks of the day.
struct Tasks {
    dibao: String,
    env: String,
    grid: String,
    patrol: String,
}

/// [08:30] Departments issue tasks over HTTP.
fn issue_tasks(t: &Township) -> Res<Tasks> {
    println!("[08:30] departments issue tasks over HTTP");
    let tomorrow = today_plus(1);
    let due_ms =
        (chrono::Utc::now() + chrono::Duration::from_std(t.args.overdue_after)?).timestamp_millis();
    let overdue_due =
        yibiao_model::clock::local(due_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let heping_targets: Vec<String> = t.households["heping"]
        .iter()
        .take(3)
        .map(|id| id.to_string())
        .collect();
    let issue = |dept: &str, body: Json| -> Res<String> {
        let token = t.dept_tokens.get(dept).ok_or("no token")?;
        let task = t.http.json("POST", "/v1/tasks", token, Some(&body))?;
        let id = task["task"].as_str().ok_or("no task id")?.to_owned();
        println!(
            "  {dept:<22} {:<14} -> {} villages  「{}」",
            task["form"].as_str().unwrap_or(""),
            task["villages"].as_array().map_or(0, Vec::len),
            task["title"].as_str().unwrap_or("")
        );
        Ok(id)
    };
    Ok(Tasks {
        dibao: issue(
            "public_services",
            json!({"title": "低保户年度核查：明天下班前完成", "instructions": "逐户核对家庭收入、人口和低保状态", "form": "dibao_check", "due": tomorrow, "villages": ["*"]}),
        )?,
        env: issue(
            "rural_revitalisation",
            json!({"title": "人居环境入户检查", "form": "living_environment", "due": tomorrow, "villages": ["tujiang", "baru", "shanzhong"]}),
        )?,
        grid: issue(
            "social_governance",
            json!({"title": "重点户网格走访（3户）", "form": "grid_patrol", "due": today_plus(2), "records": heping_targets}),
        )?,
        patrol: issue(
            "administration",
            json!({"title": "新民村今日网格巡查", "form": "grid_patrol", "due": overdue_due, "villages": ["xinmin"]}),
        )?,
    })
}

/// [09:00] Every phone syncs once: households and tasks arrive and say so.
fn morning_sync(t: &Township) -> Res<Duration> {
    println!("\n[09:00] every phone syncs once (households and tasks arrive)");
    let d1 = t.sync_all("morning sync")?;
    println!(
        "  all {} phones synced in {:.1} s",
        t.phones.len(),
        d1.as_secs_f64()
    );
    Ok(d1)
}

/// What the cadres did offline.
#[derive(Default)]
struct Fieldwork {
    opened: u32,
    /// Photos attached to living-environment inspections.
    photos: u32,
    conflicts_made: u32,
    marked: u32,
    /// (household, village, one cadre's size, the other's)
    conflicts: Vec<(RecordId, String, i64, i64)>,
}

/// The edits a cadre makes in household `hi` of village `v` for the day's forms.
fn visit_edits(v: &str, hi: usize) -> Res<Vec<FieldEdit>> {
    let mut edits = vec![
        set(
            "annual_income",
            Value::Decimal(Decimal::new(800_000 + (hi as i64) * 12_345, 2)),
        ),
        set(
            "dibao_status",
            Value::Choice(["none", "enrolled", "special"][hi % 3].into()),
        ),
        set("visit_date", date(&today_plus(0))?),
    ];
    if ["tujiang", "baru", "shanzhong"].contains(&v) {
        edits.extend([
            set(
                "toilet_type",
                Value::Choice(["flush", "improved", "pit"][hi % 3].into()),
            ),
            set("garbage_sorted", Value::Boolean(hi.is_multiple_of(2))),
            set(
                "yard_tidiness",
                Value::Choice(["good", "fair"][hi % 2].into()),
            ),
            set("inspection_date", date(&today_plus(0))?),
        ]);
    }
    if v == "heping" && hi < 3 {
        edits.extend([
            set(
                "grid_issue",
                Value::Choice(["none", "assistance", "dispute"][hi].into()),
            ),
            set("inspection_date", date(&today_plus(0))?),
        ]);
    }
    Ok(edits)
}

/// [10:00-17:00] Cadres open their tasks and fill the forms offline; some pairs edit the
/// same household apart; lianhe marks the 低保 task done with a note.
fn fieldwork(t: &mut Township, tasks: &Tasks) -> Res<Fieldwork> {
    println!("\n[10:00-17:00] cadres work offline");
    let mut w = Fieldwork::default();
    for (v, idxs) in &t.by_village {
        let hh = &t.households[v];
        for (k, &pi) in idxs.iter().enumerate() {
            let p = &t.phones[pi];
            // Most cadres open their tasks; the rest leave them unread.
            if k % 5 != 4 {
                for task in p.store.tasks()? {
                    if p.store.open_task(task.id)? {
                        w.opened += 1;
                    }
                }
            }
            for (hi, &id) in hh.iter().enumerate() {
                if hi % idxs.len() != k {
                    continue;
                }
                // lianhe leaves its last household unvisited (the family is away).
                if v == "lianhe" && hi == hh.len() - 1 {
                    continue;
                }
                let edits = visit_edits(v, hi)?;
                p.store.update(id, &edits)?;
                t.model.set(id, v, &edits);
                // Every third living-environment inspection carries a photo of the yard.
                if ["tujiang", "baru", "shanzhong"].contains(&v.as_str()) && hi.is_multiple_of(3) {
                    let bytes = yard_photo(v, hi);
                    let name = format!(
                        "{v}-{hi}.{}",
                        if hi.is_multiple_of(2) { "jpg" } else { "png" }
                    );
                    let mime = if hi.is_multiple_of(2) {
                        "image/jpeg"
                    } else {
                        "image/png"
                    };
                    let r = p.blobs.attach(&p.store, id, "photo", &bytes, mime, &name)?;
                    t.model.set(id, v, &[set("photo", Value::Attachment(r))]);
                    w.photos += 1;
                }
                // Every fourth household: a second cadre of the village also corrects the
                // household size, apart from the first: a conflict for the office.
                if hi % 4 == 1 && idxs.len() > 1 {
                    let other = &t.phones[idxs[(k + 1) % idxs.len()]];
                    let base = t.model.records[&id].1["household_size"]
                        .as_i64()
                        .unwrap_or(3);
                    let (a, b) = (base + 1, base + 2);
                    p.store.set(id, "household_size", Value::Integer(a))?;
                    other.store.set(id, "household_size", Value::Integer(b))?;
                    t.model.values_typed += 2;
                    w.conflicts.push((id, v.clone(), a, b));
                    w.conflicts_made += 1;
                }
            }
        }
    }
    // lianhe's cadre marks the 低保 task done with a note for the missing household.
    let lianhe_phone = &t.phones[t.by_village["lianhe"][0]];
    for task in lianhe_phone.store.tasks()? {
        if task.task == tasks.dibao {
            lianhe_phone
                .store
                .mark_task_done(task.id, Some("1 户外出务工未遇，已电话核实，返乡后补录"))?;
            w.marked += 1;
        }
    }
    println!(
        "  {} task openings recorded, {} households with two cadres' different sizes, {} task marked done with a note, {} yard photos attached",
        w.opened, w.conflicts_made, w.marked, w.photos
    );
    Ok(w)
}

/// A small generated photo of household `hi` of village `v`: JPEG or PNG bytes (the
/// magic number, then ~2 KB that differ per household).
fn yard_photo(v: &str, hi: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = if hi.is_multiple_of(2) {
        vec![0xFF, 0xD8, 0xFF, 0xE0]
    } else {
        b"\x89PNG\r\n\x1a\n".to_vec()
    };
    let seed = v
        .bytes()
        .fold(hi as u64 + 1, |a, b| a.wrapping_mul(31) ^ u64::from(b));
    bytes.extend((0..2048u64).map(|i| (i.wrapping_mul(seed) >> 3) as u8));
    bytes
}

/// After the records: every phone uploads its photos in chunks, in parallel.
fn upload_photos(t: &Township) -> Res<()> {
    let started = Instant::now();
    let options = UploadOptions {
        backoff: Duration::from_millis(200),
        max_failures: 20,
        ..UploadOptions::default()
    };
    let reports: Vec<Res<blobs::UploadReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = t
            .phones
            .iter()
            .map(|p| {
                let options = &options;
                s.spawn(move || -> Res<blobs::UploadReport> {
                    Ok(blobs::upload(&p.blobs, &p.transport, options, &mut |_| {})?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an upload thread panicked".into()))
            })
            .collect()
    });
    let (mut uploaded, mut sent, mut failures) = (0, 0, 0);
    for r in reports {
        let r = r?;
        if r.gave_up || !r.refused.is_empty() {
            return Err(format!("a phone could not upload its photos: {r:?}").into());
        }
        uploaded += r.uploaded;
        sent += r.bytes_sent;
        failures += r.failures;
    }
    println!(
        "  {uploaded} photos uploaded after the records in {:.1} s ({sent} chunk bytes, {failures} cut requests resumed)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Self-check 3: every photo reached the server whole; the department that reads the
/// photo field downloads it, one whose view lacks the field gets 404.
fn check_photos(t: &Township, check: &mut Check) -> Res<usize> {
    let reader = HttpTransport::new(
        &t.server.url,
        &t.dept_tokens["rural_revitalisation"],
        Duration::from_secs(30),
    );
    let blind = HttpTransport::new(
        &t.server.url,
        &t.dept_tokens["emergency_management"],
        Duration::from_secs(30),
    );
    let mut seen = 0;
    for (id, (_, values)) in &t.model.records {
        let Some(sha) = values.get("photo").and_then(|p| p["sha256"].as_str()) else {
            continue;
        };
        match reader.get(sha) {
            Ok(bytes) if blobs::sha256_hex(&bytes) == sha => seen += 1,
            other => check.mismatch(format!(
                "the photo of {id} does not download whole: {other:?}"
            )),
        }
        if seen == 1 && blind.get(sha).is_ok() {
            check.mismatch("emergency_management downloads a photo outside its view".into());
        }
    }
    println!(
        "  {seen} photos download whole for rural_revitalisation; emergency_management gets 404"
    );
    Ok(seen)
}

/// [18:00] Phones sync their day, through cuts and duplicates.
fn evening_sync(t: &Township) -> Res<()> {
    println!("\n[18:00] phones sync their day (through cuts and duplicates)");
    let d2 = t.sync_all("evening push")?;
    println!("  pushed in {:.1} s", d2.as_secs_f64());
    upload_photos(t)?;
    let d3 = t.sync_all("evening pull")?;
    println!(
        "  every phone has its village's day in {:.1} s",
        d3.as_secs_f64()
    );
    Ok(())
}

/// [19:00] The office resolves every conflict to the larger household size; returns
/// (households found conflicted, fields resolved).
fn resolve_conflicts(t: &mut Township) -> Res<(u32, u32)> {
    println!(
        "\n[19:00] the office resolves conflicts (the larger household size, confirmed by phone)"
    );
    t.office.sync()?;
    let office = &t.office.store;
    let (mut found, mut resolved) = (0, 0);
    let mut after = None;
    loop {
        let page = office.query(&Query {
            conflicted_only: true,
            after,
            limit: 200,
            ..Query::default()
        })?;
        for r in &page.records {
            found += 1;
            for c in office.conflicts(r.id)? {
                let best = c
                    .values
                    .iter()
                    .filter_map(|v| v.value.as_ref().and_then(Json::as_i64))
                    .max()
                    .ok_or("conflict without a number")?;
                office.resolve(r.id, &c.field, Some(Value::Integer(best)))?;
                resolved += 1;
                let village = t.model.records[&r.id].0.clone();
                t.model
                    .set(r.id, &village, &[set(&c.field, Value::Integer(best))]);
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    t.office.sync()?;
    println!("  {found} conflicted households found, {resolved} fields resolved");
    let d4 = t.sync_all("final sync")?;
    println!("  converged in {:.1} s", d4.as_secs_f64());
    Ok((found, resolved))
}

// ---------------------------------------------------------------------------------------
// Self-checks and the report.
// ---------------------------------------------------------------------------------------

/// Mismatches found by the self-checks (printed as they are found).
#[derive(Default)]
struct Check {
    failed: bool,
}

impl Check {
    fn mismatch(&mut self, msg: String) {
        eprintln!("MISMATCH: {msg}");
        self.failed = true;
    }
}

/// Self-check 1: every phone holds exactly its village's day, with no conflict and
/// nothing unsent.
fn check_phones(t: &Township, check: &mut Check) -> Res<()> {
    for p in &t.phones {
        let mut seen = BTreeSet::new();
        let mut after = None;
        loop {
            let page = p.store.query(&Query {
                after,
                limit: 500,
                ..Query::default()
            })?;
            for r in &page.records {
                seen.insert(r.id);
                match t.model.records.get(&r.id) {
                    Some((v, values)) if *v == p.village => {
                        if &r.values != values {
                            check.mismatch(format!(
                                "{} holds {} as {:?}, typed {:?}",
                                p.name, r.id, r.values, values
                            ));
                        }
                        if r.conflicted {
                            check
                                .mismatch(format!("{} still shows a conflict on {}", p.name, r.id));
                        }
                    }
                    _ => check.mismatch(format!("{} holds {} outside its village", p.name, r.id)),
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let expected: BTreeSet<RecordId> = t
            .model
            .records
            .iter()
            .filter(|(_, (v, _))| *v == p.village)
            .map(|(id, _)| *id)
            .collect();
        if seen != expected {
            check.mismatch(format!(
                "{} holds {} records, its village has {}",
                p.name,
                seen.len(),
                expected.len()
            ));
        }
        if p.store.stats()?.pending != 0 {
            check.mismatch(format!("{} still has unsent edits", p.name));
        }
    }
    Ok(())
}

type Values = BTreeMap<String, Json>;

/// (task, village) -> the task's status there.
type TaskStatus = HashMap<(String, String), String>;

/// What a department's NDJSON pull holds: record -> values.
fn pull_department(
    t: &Township,
    dept: &str,
    token: &str,
    check: &mut Check,
) -> Res<BTreeMap<RecordId, Values>> {
    let (status, body) = t.http.text("GET", "/v1/records.ndjson", token, None)?;
    if status != 200 {
        return Err(format!("{dept} pull: HTTP {status}: {body}").into());
    }
    let mut got = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let r: Json = serde_json::from_str(line)?;
        let id: RecordId = r["id"].as_str().ok_or("no id")?.parse()?;
        if r["conflicted"] == json!(true) {
            check.mismatch(format!("{dept} receives {id} still conflicted"));
        }
        let values: Values = serde_json::from_value(r["values"].clone())?;
        got.insert(id, values);
    }
    Ok(got)
}

/// [20:00] Departments pull their views; each must equal what the cadres typed within
/// the view. Returns the records pulled.
fn department_pulls(t: &Township, check: &mut Check) -> Res<usize> {
    println!("\n[20:00] departments pull their views (NDJSON)");
    let mut pulled_total = 0usize;
    for (dept, token) in &t.dept_tokens {
        let def = t.schema.department(dept).ok_or("department vanished")?;
        let got = pull_department(t, dept, token, check)?;
        let want: BTreeMap<RecordId, Values> = t
            .model
            .records
            .iter()
            .filter(|(_, (v, _))| def.sees_record("household", Some(v)))
            .map(|(id, (_, values))| {
                (
                    *id,
                    values
                        .iter()
                        .filter(|(f, _)| def.sees_field("household", f))
                        .map(|(f, v)| (f.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect();
        pulled_total += got.len();
        if got != want {
            let wrong = want.iter().filter(|(id, v)| got.get(id) != Some(v)).count();
            let extra = got.keys().filter(|id| !want.contains_key(id)).count();
            check.mismatch(format!(
                "{dept}: {wrong} records differ from what was typed, {extra} it should not see"
            ));
        }
        println!(
            "  {dept:<24} {:>5} records, {:>2} fields of its view  {}",
            got.len(),
            def.fields.len(),
            if got == want {
                "= what the cadres typed"
            } else {
                "MISMATCH"
            }
        );
    }
    Ok(pulled_total)
}

/// Prints the tasks table; returns (task, village) -> status.
fn print_tasks(tasks: &Json) -> Res<TaskStatus> {
    println!("\nTasks (per village: delivered / opened / done / overdue, records complete)");
    let mut task_status = HashMap::new();
    for t in tasks["tasks"].as_array().ok_or("no tasks")?.iter().rev() {
        println!(
            "\n  「{}」 {} · form {} · due {}",
            t["title"].as_str().unwrap_or(""),
            t["issuer"].as_str().unwrap_or(""),
            t["form"].as_str().unwrap_or(""),
            t["due"].as_str().unwrap_or("")
        );
        println!(
            "    {:<10} {:<10} {:^9} {:^7} {:^5} {:^7} {:>9}",
            "village", "status", "delivered", "opened", "done", "overdue", "records"
        );
        for v in t["villages"].as_array().ok_or("no villages")? {
            let yes = |k: &str| if v[k] == json!(true) { "yes" } else { "-" };
            let village = v["village"].as_str().unwrap_or("(township)").to_owned();
            let status = v["status"].as_str().unwrap_or("").to_owned();
            println!(
                "    {:<10} {:<10} {:^9} {:^7} {:^5} {:^7} {:>4}/{:<4}{}",
                village,
                status,
                yes("delivered"),
                yes("opened"),
                yes("done"),
                yes("overdue"),
                v["records_complete"],
                v["records_total"],
                v["note"]
                    .as_str()
                    .map(|n| format!("  note: {n}"))
                    .unwrap_or_default()
            );
            task_status.insert(
                (t["task"].as_str().unwrap_or("").to_owned(), village),
                status,
            );
        }
    }
    Ok(task_status)
}

/// Timings of the day, for the report.
struct Timings {
    morning: Duration,
    converge: Duration,
}

/// The report: tasks, conflicts, reuse, the wire; returns the tasks' statuses and the
/// server's burden summary for the self-check.
fn report(
    t: &Township,
    work: &Fieldwork,
    (found, resolved): (u32, u32),
    timings: &Timings,
    pulled_total: usize,
) -> Res<(TaskStatus, Json)> {
    let admin = &t.server.admin;
    let tasks = t.http.json("GET", "/v1/tasks", admin, None)?;
    let burden = t.http.json(
        "GET",
        // The database is this run's alone: a window around today holds exactly its
        // entries, even when the run crosses midnight in UTC+8.
        &format!("/v1/burden?from={}&to={}", today_plus(-1), today_plus(1)),
        admin,
        None,
    )?;
    println!("\n================ 巴茹镇 今日报告 / Baru township: today's report ================");
    let task_status = print_tasks(&tasks)?;
    let p2 = t.links.mountain.stats();
    let pe = t.links.edge.stats();
    println!(
        "\nConflicts: {} households were edited apart by two cadres; {found} found by the office, {resolved} resolved, 0 left.",
        work.conflicts_made
    );
    println!(
        "\nOne entry, many uses: {} field values typed during the day -> {} deliveries to departments (reuse ratio {}x; {} entries nobody had to type again).",
        burden["values_typed"],
        burden["deliveries"],
        burden["reuse_ratio"],
        burden["entries_saved"]
    );
    let w = &t.wire;
    let (up, down) = (
        w.bytes_up.load(Ordering::Relaxed),
        w.bytes_down.load(Ordering::Relaxed),
    );
    println!(
        "\nOn the wire (phones): {} requests, {:.1} KB up, {:.1} KB down ({:.1} KB per phone); {} syncs failed through every retry and were re-run.",
        w.requests.load(Ordering::Relaxed),
        up as f64 / 1024.0,
        down as f64 / 1024.0,
        (up + down) as f64 / 1024.0 / t.phones.len() as f64,
        w.failed_syncs.load(Ordering::Relaxed)
    );
    println!(
        "The links: 2G {} connections, {} cut, {} requests duplicated; EDGE {} connections, {} cut.",
        p2.connections, p2.cuts, p2.duplicates, pe.connections, pe.cuts
    );
    println!(
        "Time: morning sync {:.1} s; evening sync to convergence {:.1} s; whole day {:.1} s. Departments pulled {pulled_total} records.",
        timings.morning.as_secs_f64(),
        timings.converge.as_secs_f64(),
        t.t0.elapsed().as_secs_f64()
    );
    Ok((task_status, burden))
}

/// Self-check 2: the tasks stand as the day made them, the server counted every value
/// typed, and every conflict resolved to the larger size.
fn check_tasks(
    t: &Township,
    tasks: &Tasks,
    work: &Fieldwork,
    task_status: &TaskStatus,
    burden: &Json,
    check: &mut Check,
) {
    let mut expect = |task: &str, village: &str, status: &str| {
        let got = task_status
            .get(&(task.to_owned(), village.to_owned()))
            .cloned()
            .unwrap_or_default();
        if got != status {
            eprintln!("MISMATCH: task {task} in {village} is `{got}`, expected `{status}`");
            check.failed = true;
        }
    };
    for v in &t.villages {
        expect(&tasks.dibao, v, "done");
    }
    for v in ["tujiang", "baru", "shanzhong"] {
        expect(&tasks.env, v, "done");
    }
    expect(&tasks.grid, "heping", "done");
    expect(&tasks.patrol, "xinmin", "overdue");
    let typed = burden["values_typed"].as_u64().unwrap_or(0);
    // The office's register and resolutions are typed too (on its own device).
    if typed != t.model.values_typed {
        eprintln!(
            "MISMATCH: the server counted {typed} values typed, the cadres typed {}",
            t.model.values_typed
        );
        check.failed = true;
    }
    for (id, v, a, b) in &work.conflicts {
        let final_size = t.model.records[id].1["household_size"]
            .as_i64()
            .unwrap_or(0);
        if final_size != *a.max(b) {
            eprintln!("MISMATCH: conflict on {id} ({v}) resolved to {final_size}");
            check.failed = true;
        }
    }
}

fn run() -> Res<bool> {
    let mut t = Township::open(parse_args()?)?;
    register_households(&mut t)?;
    let tasks = issue_tasks(&t)?;
    let morning = morning_sync(&t)?;
    let work = fieldwork(&mut t, &tasks)?;
    let converge_start = Instant::now();
    evening_sync(&t)?;
    let resolved = resolve_conflicts(&mut t)?;
    let timings = Timings {
        morning,
        converge: converge_start.elapsed(),
    };

    // Wait for the xinmin patrol to be due, so the report can call it overdue.
    let due_at = t.t0 + t.args.overdue_after + Duration::from_secs(2);
    if let Some(wait) = due_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }

    let mut check = Check::default();
    check_phones(&t, &mut check)?;
    let pulled_total = department_pulls(&t, &mut check)?;
    let photos = check_photos(&t, &mut check)?;
    if photos != work.photos as usize {
        check.mismatch(format!(
            "{} photos attached, {photos} downloaded",
            work.photos
        ));
    }
    let (task_status, burden) = report(&t, &work, resolved, &timings, pulled_total)?;
    check_tasks(&t, &tasks, &work, &task_status, &burden, &mut check);
    inspection::discipline_inspection(&t, &mut check)?;
    if let Some(url) = t.args.then_postgres.clone() {
        postgres::next_morning_on_postgres(&mut t, &url, &mut check)?;
    }
    println!(
        "\nSelf-check: {}",
        if check.failed {
            "FAILED"
        } else {
            "every phone holds exactly its village's records; every department's view equals what the cadres typed; tasks stand as the day made them; the five findings and the report stand as the inspection made them."
        }
    );
    let Township { server, links, .. } = t;
    drop(links);
    server.runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(!check.failed)
}
