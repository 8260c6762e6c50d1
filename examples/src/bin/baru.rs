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
//! - It checks itself: every phone holds exactly what was typed for its village, every
//!   department's pull equals what the cadres typed within its view, the tasks stand as
//!   the day made them. Any mismatch exits non-zero.
//!
//! Usage: `baru [--phones N] [--households N] [--parallel N] [--seed N] [--small]`
//! (`--small`: 24 phones, 6 households per village, for CI).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use yibiao_model::value::Decimal;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::{AppState, accounts, app};
use yibiao_store::http::HttpTransport;
use yibiao_store::{Query, Store};
use yibiao_sync::{RetryPolicy, SyncOptions};
use yibiao_tests::proxy::{LinkProfile, Proxy};

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
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        phones: 200,
        households: 40,
        parallel: 32,
        seed: 7,
        overdue_after: Duration::from_secs(40),
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
            "--small" => {
                a.phones = 24;
                a.households = 6;
                a.parallel = 12;
                a.overdue_after = Duration::from_secs(15);
            }
            "-h" | "--help" => {
                println!(
                    "usage: baru [--phones N] [--households N (per village)] [--parallel N] [--seed N] [--small]"
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
    transport: HttpTransport,
}

#[derive(Default)]
struct Wire {
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    failed_syncs: AtomicU64,
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
    let now = chrono::Utc::now() + chrono::Duration::hours(8) + chrono::Duration::days(days);
    now.format("%Y-%m-%d").to_string()
}

// ---------------------------------------------------------------------------------------
// The day.
// ---------------------------------------------------------------------------------------

#[allow(clippy::too_many_lines, reason = "the day reads top to bottom")]
fn run() -> Res<bool> {
    let args = parse_args()?;
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

    // The server, in process, on a real SQLite file and real HTTP.
    let config = Config::resolve(
        Overrides {
            data_dir: Some(tmp.path().join("server")),
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
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let server_addr: SocketAddr = listener.local_addr()?;
    let router = app(state);
    runtime.spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let server_url = format!("http://{server_addr}");
    let http = Http::new(&server_url);

    // Weak links: the mountain villages on 2G, the others on EDGE.
    let mountain = LinkProfile {
        cut_probability: 0.10,
        duplicate_probability: 0.05,
        ..LinkProfile::mountain_2g()
    };
    let edge = LinkProfile {
        cut_probability: 0.05,
        ..LinkProfile::edge()
    };
    let mountain_villages = ["tujiang", "shanzhong"];
    let proxy_2g = Proxy::start(server_addr, mountain.clone(), args.seed)?;
    let proxy_edge = Proxy::start(server_addr, edge.clone(), args.seed + 1)?;
    println!(
        "  server on {server_url}; tujiang and shanzhong on 2G ({} ms, {}/{} kbit/s, {:.0}% cut, {:.0}% duplicated), the rest on EDGE ({} ms, {}/{} kbit/s, {:.0}% cut)",
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

    // Accounts: one device token per phone, the township office, department tokens.
    let schema_arc = Arc::new(schema.clone());
    let phones_dir = tmp.path().join("phones");
    std::fs::create_dir_all(&phones_dir)?;
    let mut phones = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let village = villages[i % villages.len()].clone();
        let cadre = format!("{village}-{:03}", i / villages.len() + 1);
        let (_, token) = accounts::register_device(
            storage.as_ref(),
            &schema,
            &format!("phone {cadre}"),
            Some(&cadre),
            Some(&village),
        )?;
        let url = if mountain_villages.contains(&village.as_str()) {
            proxy_2g.url()
        } else {
            proxy_edge.url()
        };
        let store = Store::open(
            phones_dir.join(format!("{cadre}.db")),
            schema_arc.clone(),
            CadreId::new(&cadre)?,
        )?;
        phones.push(Phone {
            name: cadre,
            village,
            store,
            transport: HttpTransport::new(&url, &token, Duration::from_secs(180)),
        });
    }
    let (_, office_token) = accounts::register_device(
        storage.as_ref(),
        &schema,
        "township office",
        Some("office"),
        None,
    )?;
    let office = Store::open(
        tmp.path().join("office.db"),
        schema_arc.clone(),
        CadreId::new("office")?,
    )?;
    let office_link = HttpTransport::new(&server_url, &office_token, Duration::from_secs(60));
    let office_sync = || -> Res<()> {
        let r = yibiao_store::sync(&office, &office_link, &SyncOptions::default(), &mut |_| {})?;
        if !r.complete || !r.refused.is_empty() {
            return Err(format!("office sync incomplete: {r:?}").into());
        }
        Ok(())
    };
    let mut dept_tokens = BTreeMap::new();
    for d in schema.departments.keys() {
        let (_, token) =
            accounts::issue_department_token(storage.as_ref(), &schema, d, "baru example")?;
        dept_tokens.insert(d.clone(), token);
    }
    let by_village: BTreeMap<String, Vec<usize>> = villages
        .iter()
        .map(|v| {
            (
                v.clone(),
                phones
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| &p.village == v)
                    .map(|(i, _)| i)
                    .collect(),
            )
        })
        .collect();
    let all: Vec<usize> = (0..phones.len()).collect();
    let wire = Wire::default();
    let mut model = Model::default();

    // ---- Morning: the register and the tasks -------------------------------------------
    println!(
        "\n[08:00] the township office registers {} households",
        args.households * villages.len()
    );
    let surnames = [
        "阿木", "吉克", "曲比", "沙马", "阿苏", "海来", "勒格", "马海", "俄底", "莫色",
    ];
    let mut households: BTreeMap<String, Vec<RecordId>> = BTreeMap::new();
    for (vi, v) in villages.iter().enumerate() {
        for h in 0..args.households {
            let edits = vec![
                set(
                    "household_head",
                    Value::Text(format!("{}{}", surnames[(h + vi) % surnames.len()], h + 1)),
                ),
                set(
                    "id_number",
                    Value::Text(format!(
                        "5134311980{:02}{:02}{:03}{}",
                        vi + 1,
                        h % 28 + 1,
                        h,
                        h % 10
                    )),
                ),
                set("household_size", Value::Integer(2 + (h as i64 % 5))),
                set("address", Value::Text(format!("{v} 第{}组", h % 4 + 1))),
            ];
            let id = office.create("household", Some(v), &edits)?;
            model.set(id, v, &edits);
            households.entry(v.clone()).or_default().push(id);
        }
    }
    office_sync()?;

    println!("[08:30] departments issue tasks over HTTP");
    let tomorrow = today_plus(1);
    let china = chrono::FixedOffset::east_opt(8 * 3600).ok_or("no UTC+8")?;
    let overdue_due = (chrono::Utc::now() + chrono::Duration::from_std(args.overdue_after)?)
        .with_timezone(&china)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let heping_targets: Vec<String> = households["heping"]
        .iter()
        .take(3)
        .map(|id| id.to_string())
        .collect();
    let issue = |dept: &str, body: Json| -> Res<String> {
        let token = dept_tokens.get(dept).ok_or("no token")?;
        let t = http.json("POST", "/v1/tasks", token, Some(&body))?;
        let id = t["task"].as_str().ok_or("no task id")?.to_owned();
        println!(
            "  {dept:<22} {:<14} -> {} villages  「{}」",
            t["form"].as_str().unwrap_or(""),
            t["villages"].as_array().map_or(0, Vec::len),
            t["title"].as_str().unwrap_or("")
        );
        Ok(id)
    };
    let t_dibao = issue(
        "public_services",
        json!({"title": "低保户年度核查：明天下班前完成", "instructions": "逐户核对家庭收入、人口和低保状态", "form": "dibao_check", "due": tomorrow, "villages": ["*"]}),
    )?;
    let t_env = issue(
        "rural_revitalisation",
        json!({"title": "人居环境入户检查", "form": "living_environment", "due": tomorrow, "villages": ["tujiang", "baru", "shanzhong"]}),
    )?;
    let t_grid = issue(
        "social_governance",
        json!({"title": "重点户网格走访（3户）", "form": "grid_patrol", "due": today_plus(2), "records": heping_targets}),
    )?;
    let t_patrol = issue(
        "administration",
        json!({"title": "新民村今日网格巡查", "form": "grid_patrol", "due": overdue_due, "villages": ["xinmin"]}),
    )?;

    // ---- Phones sync: tasks arrive and say so ---------------------------------------------
    println!("\n[09:00] every phone syncs once (households and tasks arrive)");
    let d1 = sync_round("morning sync", &phones, &all, args.parallel, &wire)?;
    println!(
        "  all {} phones synced in {:.1} s",
        phones.len(),
        d1.as_secs_f64()
    );

    // ---- The day, offline -------------------------------------------------------------------
    println!("\n[10:00-17:00] cadres work offline");
    let mut opened = 0;
    let mut conflicts_made = 0;
    let mut marked = 0;
    let mut pending_conflicts: Vec<(RecordId, String, i64, i64)> = Vec::new();
    for (v, idxs) in &by_village {
        let hh = &households[v];
        for (k, &pi) in idxs.iter().enumerate() {
            let p = &phones[pi];
            // Most cadres open their tasks; the rest leave them unread.
            if k % 5 != 4 {
                for t in p.store.tasks()? {
                    if p.store.open_task(t.id)? {
                        opened += 1;
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
                if ["tujiang", "baru", "shanzhong"].contains(&v.as_str()) {
                    edits.extend([
                        set(
                            "toilet_type",
                            Value::Choice(["flush", "improved", "pit"][hi % 3].into()),
                        ),
                        set("garbage_sorted", Value::Boolean(hi % 2 == 0)),
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
                p.store.update(id, &edits)?;
                model.set(id, v, &edits);
                // Every fourth household: a second cadre of the village also corrects the
                // household size, apart from the first: a conflict for the office.
                if hi % 4 == 1 && idxs.len() > 1 {
                    let other = &phones[idxs[(k + 1) % idxs.len()]];
                    let base = model.records[&id].1["household_size"].as_i64().unwrap_or(3);
                    let (a, b) = (base + 1, base + 2);
                    p.store.set(id, "household_size", Value::Integer(a))?;
                    other.store.set(id, "household_size", Value::Integer(b))?;
                    model.values_typed += 2;
                    pending_conflicts.push((id, v.clone(), a, b));
                    conflicts_made += 1;
                }
            }
        }
    }
    // lianhe's cadre marks the 低保 task done with a note for the missing household.
    let lianhe_phone = &phones[by_village["lianhe"][0]];
    for t in lianhe_phone.store.tasks()? {
        if t.task == t_dibao {
            lianhe_phone
                .store
                .mark_task_done(t.id, Some("1 户外出务工未遇，已电话核实，返乡后补录"))?;
            marked += 1;
        }
    }
    println!(
        "  {opened} task openings recorded, {conflicts_made} households with two cadres' different sizes, {marked} task marked done with a note"
    );

    // ---- Evening: sync, resolve, converge ----------------------------------------------------
    let converge_start = Instant::now();
    println!("\n[18:00] phones sync their day (through cuts and duplicates)");
    let d2 = sync_round("evening push", &phones, &all, args.parallel, &wire)?;
    println!("  pushed in {:.1} s", d2.as_secs_f64());
    let d3 = sync_round("evening pull", &phones, &all, args.parallel, &wire)?;
    println!(
        "  every phone has its village's day in {:.1} s",
        d3.as_secs_f64()
    );

    println!(
        "\n[19:00] the office resolves conflicts (the larger household size, confirmed by phone)"
    );
    office_sync()?;
    let mut found = 0;
    let mut resolved = 0;
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
                let village = model.records[&r.id].0.clone();
                model.set(r.id, &village, &[set(&c.field, Value::Integer(best))]);
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    office_sync()?;
    println!("  {found} conflicted households found, {resolved} fields resolved");
    let d4 = sync_round("final sync", &phones, &all, args.parallel, &wire)?;
    let converge = converge_start.elapsed();
    println!("  converged in {:.1} s", d4.as_secs_f64());

    // Wait for the xinmin patrol to be due, so the report can call it overdue.
    let due_at = t0 + args.overdue_after + Duration::from_secs(2);
    if let Some(wait) = due_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }

    // ---- Self-check 1: every phone holds exactly its village's day ----------------------------
    let mut ok = true;
    let mut mismatch = |msg: String| {
        eprintln!("MISMATCH: {msg}");
        ok = false;
    };
    for p in &phones {
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
                match model.records.get(&r.id) {
                    Some((v, values)) if *v == p.village => {
                        if &r.values != values {
                            mismatch(format!(
                                "{} holds {} as {:?}, typed {:?}",
                                p.name, r.id, r.values, values
                            ));
                        }
                        if r.conflicted {
                            mismatch(format!("{} still shows a conflict on {}", p.name, r.id));
                        }
                    }
                    _ => mismatch(format!("{} holds {} outside its village", p.name, r.id)),
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let expected: BTreeSet<RecordId> = model
            .records
            .iter()
            .filter(|(_, (v, _))| *v == p.village)
            .map(|(id, _)| *id)
            .collect();
        if seen != expected {
            mismatch(format!(
                "{} holds {} records, its village has {}",
                p.name,
                seen.len(),
                expected.len()
            ));
        }
        if p.store.stats()?.pending != 0 {
            mismatch(format!("{} still has unsent edits", p.name));
        }
    }

    // ---- Departments pull their views ----------------------------------------------------------
    println!("\n[20:00] departments pull their views (NDJSON)");
    let mut pulled_total = 0usize;
    for (dept, token) in &dept_tokens {
        let def = schema.department(dept).ok_or("department vanished")?;
        let (status, body) = http.text("GET", "/v1/records.ndjson", token, None)?;
        if status != 200 {
            return Err(format!("{dept} pull: HTTP {status}: {body}").into());
        }
        let mut got: BTreeMap<RecordId, BTreeMap<String, Json>> = BTreeMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let r: Json = serde_json::from_str(line)?;
            let id: RecordId = r["id"].as_str().ok_or("no id")?.parse()?;
            if r["conflicted"] == json!(true) {
                mismatch(format!("{dept} receives {id} still conflicted"));
            }
            let values: BTreeMap<String, Json> = serde_json::from_value(r["values"].clone())?;
            got.insert(id, values);
        }
        let want: BTreeMap<RecordId, BTreeMap<String, Json>> = model
            .records
            .iter()
            .filter(|(_, (v, _))| def.sees_record("household", Some(v)))
            .map(|(id, (_, values))| {
                (
                    *id,
                    values
                        .iter()
                        .filter(|(f, _)| def.sees_field(f))
                        .map(|(f, v)| (f.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect();
        pulled_total += got.len();
        if got != want {
            let wrong = want.iter().filter(|(id, v)| got.get(id) != Some(v)).count();
            let extra = got.keys().filter(|id| !want.contains_key(id)).count();
            mismatch(format!(
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

    // ---- The report ------------------------------------------------------------------------------
    let tasks = http.json("GET", "/v1/tasks", &admin, None)?;
    let burden = http.json(
        "GET",
        // The database is this run's alone: a window around today holds exactly its
        // entries, even when the run crosses midnight in UTC+8.
        &format!("/v1/burden?from={}&to={}", today_plus(-1), today_plus(1)),
        &admin,
        None,
    )?;
    println!("\n================ 巴茹镇 今日报告 / Baru township: today's report ================");
    println!("\nTasks (per village: delivered / opened / done / overdue, records complete)");
    let mut task_status: HashMap<(String, String), String> = HashMap::new();
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
    let p2 = proxy_2g.stats();
    let pe = proxy_edge.stats();
    println!(
        "\nConflicts: {conflicts_made} households were edited apart by two cadres; {found} found by the office, {resolved} resolved, 0 left."
    );
    println!(
        "\nOne entry, many uses: {} field values typed during the day -> {} deliveries to departments (reuse ratio {}x; {} entries nobody had to type again).",
        burden["values_typed"],
        burden["deliveries"],
        burden["reuse_ratio"],
        burden["entries_saved"]
    );
    println!(
        "\nOn the wire (phones): {} requests, {:.1} KB up, {:.1} KB down ({:.1} KB per phone); {} syncs failed through every retry and were re-run.",
        wire.requests.load(Ordering::Relaxed),
        wire.bytes_up.load(Ordering::Relaxed) as f64 / 1024.0,
        wire.bytes_down.load(Ordering::Relaxed) as f64 / 1024.0,
        (wire.bytes_up.load(Ordering::Relaxed) + wire.bytes_down.load(Ordering::Relaxed)) as f64
            / 1024.0
            / phones.len() as f64,
        wire.failed_syncs.load(Ordering::Relaxed)
    );
    println!(
        "The links: 2G {} connections, {} cut, {} requests duplicated; EDGE {} connections, {} cut.",
        p2.connections, p2.cuts, p2.duplicates, pe.connections, pe.cuts
    );
    println!(
        "Time: morning sync {:.1} s; evening sync to convergence {:.1} s; whole day {:.1} s. Departments pulled {pulled_total} records.",
        d1.as_secs_f64(),
        converge.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    // ---- Self-check 2: the tasks stand as the day made them ----------------------------------------
    let mut expect = |task: &str, village: &str, status: &str| {
        let got = task_status
            .get(&(task.to_owned(), village.to_owned()))
            .cloned()
            .unwrap_or_default();
        if got != status {
            eprintln!("MISMATCH: task {task} in {village} is `{got}`, expected `{status}`");
            ok = false;
        }
    };
    for v in &villages {
        expect(&t_dibao, v, "done");
    }
    for v in ["tujiang", "baru", "shanzhong"] {
        expect(&t_env, v, "done");
    }
    expect(&t_grid, "heping", "done");
    expect(&t_patrol, "xinmin", "overdue");
    let typed = burden["values_typed"].as_u64().unwrap_or(0);
    // The office's register and resolutions are typed too (on its own device).
    if typed != model.values_typed {
        eprintln!(
            "MISMATCH: the server counted {typed} values typed, the cadres typed {}",
            model.values_typed
        );
        ok = false;
    }
    for (id, v, a, b) in &pending_conflicts {
        let final_size = model.records[id].1["household_size"].as_i64().unwrap_or(0);
        if final_size != *a.max(b) {
            eprintln!("MISMATCH: conflict on {id} ({v}) resolved to {final_size}");
            ok = false;
        }
    }
    println!(
        "\nSelf-check: {}",
        if ok {
            "every phone holds exactly its village's records; every department's view equals what the cadres typed; tasks stand as the day made them."
        } else {
            "FAILED"
        }
    );
    drop(proxy_2g);
    drop(proxy_edge);
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(ok)
}
