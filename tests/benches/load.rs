//! Load benchmark (issue 11, "Load"): many phones syncing against a real `yibiao-server`
//! process on loopback, department NDJSON streams read in a loop, and one attacker phone
//! pushing the item-2 change (one change flipping a boolean many times) in a loop. It
//! prints figures and never asserts them.
//!
//! Run: `cargo bench -p yibiao-tests --bench load`
//!
//! Environment:
//! - `YIBIAO_BENCH_QUICK=1`: 100 phones and 10 s phases (default 1,000 phones, 60 s);
//! - `YIBIAO_BENCH_DEVICES`: honest phones;
//! - `YIBIAO_BENCH_SECS`: length of each phase;
//! - `YIBIAO_BENCH_THREADS`: client threads syncing the phones (default 48; 16 when quick);
//! - `YIBIAO_BENCH_STREAMS`: department streams (default 20);
//! - `YIBIAO_BENCH_FLIPS`: operations in the attacker's change (default 200,000);
//! - `YIBIAO_BENCH_SEED`, `YIBIAO_BENCH_DIR`: as every bench.
//!
//! Phases, in order, in one process and on one server:
//! 1. Setup: phones registered with `yibiao-server device add`, spread over the Baru
//!    villages, each an in-memory store with a few households, all synced once; department
//!    tokens issued with `yibiao-server department token`; the attacker phone enrolled
//!    with one household of its own.
//! 2. Baseline: for the phase's length, client threads loop over the phones, each `sync`
//!    preceded now and then by a fresh edit, while the department streams read
//!    `/v1/records.ndjson` again and again.
//! 3. Attack: the same for the same length, while the attacker pushes, in a loop, a raw
//!    `SyncRequest` whose document is one change of `YIBIAO_BENCH_FLIPS` operations (the
//!    hub's budget is 1,000 operations per change, so every push must be refused).
//!
//! Printed: honest syncs and their errors (must be 0), latency percentiles of honest syncs
//! and the attack/baseline ratio, attacker pushes and how they were answered, department
//! records streamed per second, the server's RSS and CPU seconds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge, ExpandedChange, ObjId, ROOT, ReadDoc, ScalarValue, legacy};
use yibiao_model::clock::SystemClock;
use yibiao_model::{Author, CadreId, RecordId, Schema};
use yibiao_store::Store;
use yibiao_store::http::HttpTransport;
use yibiao_store::sync;
use yibiao_sync::protocol::{
    PushDoc, RefusalCode, SyncRequest, SyncResponse, WireId, heads_to_wire,
};
use yibiao_sync::session::{SyncOptions, Transport};
use yibiao_testkit::bench::{
    BenchEnv, RatioTable, Summary, as_f64, cpus, env_count, env_parse, mib, run_pool,
};
use yibiao_testkit::data::{self, ENTITY};
use yibiao_testkit::http::Conn;
use yibiao_testkit::procfs::{self, Memory as Mem, Pid, RssSampler, load_average};
use yibiao_testkit::rng::Rng;
use yibiao_testkit::server::{ServerOptions, ServerProcess};

type BenchResult<T> = yibiao_testkit::Result<T>;

const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Households each honest phone holds before the phases.
const HOUSEHOLDS_PER_PHONE: usize = 3;
/// Percent of honest syncs preceded by a fresh edit.
const EDIT_PERCENT: u64 = 20;
/// Fields a fresh edit changes.
const EDIT_FIELDS: &[&str] = &[
    "household_size",
    "housing_safe",
    "annual_income",
    "phone",
    "drinking_water",
];
/// Departments that read every village (streams cycle over them, one stream per token).
const DEPARTMENTS: &[&str] = &[
    "administration",
    "emergency_management",
    "public_services",
    "rural_revitalisation",
    "social_governance",
    "party_building",
    "discipline_inspection",
];

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    env: BenchEnv,
    devices: usize,
    secs: Duration,
    threads: usize,
    streams: usize,
    flips: u64,
}

impl Settings {
    fn from_env() -> BenchResult<Self> {
        let env = BenchEnv::from_env()?;
        let devices = env_count("YIBIAO_BENCH_DEVICES", env.pick(100, 1000))?;
        let secs: f64 = env_parse("YIBIAO_BENCH_SECS")?.unwrap_or(env.pick(10.0, 60.0));
        let threads = env_count("YIBIAO_BENCH_THREADS", env.pick(16, 48))?;
        let streams = env_parse("YIBIAO_BENCH_STREAMS")?.unwrap_or(20);
        let flips = env_parse("YIBIAO_BENCH_FLIPS")?.unwrap_or(200_000u64);
        Ok(Self {
            env,
            devices,
            secs: Duration::from_secs_f64(secs.max(0.5)),
            threads,
            streams,
            flips: flips.max(2),
        })
    }
}

fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

// ---------------------------------------------------------------------------------------
// Phones
// ---------------------------------------------------------------------------------------

struct Phone {
    store: Store,
    transport: HttpTransport,
    village_zh: String,
    own: Vec<RecordId>,
}

impl Phone {
    fn open(schema: &Arc<Schema>, name: &str, url: &str, token: &str) -> BenchResult<Self> {
        let store = Store::open_in_memory(
            schema.clone(),
            CadreId::new(format!("cadre-{name}"))?,
            Arc::new(SystemClock),
        )?;
        Ok(Self {
            store,
            transport: HttpTransport::new(url, token, HTTP_TIMEOUT),
            village_zh: String::new(),
            own: Vec::new(),
        })
    }

    fn sync(&self) -> BenchResult<yibiao_sync::SyncReport> {
        Ok(sync(
            &self.store,
            &self.transport,
            &SyncOptions::default(),
            &mut |_| {},
        )?)
    }

    /// Syncs until complete (at most `tries` runs).
    fn sync_until_complete(&self, tries: usize) -> BenchResult<()> {
        for _ in 0..tries {
            let r = self.sync()?;
            if !r.refused.is_empty() {
                return Err(format!("{} document(s) refused", r.refused.len()).into());
            }
            if r.complete {
                return Ok(());
            }
        }
        Err("not complete".into())
    }
}

// ---------------------------------------------------------------------------------------
// The attacker
// ---------------------------------------------------------------------------------------

struct Attacker {
    transport: HttpTransport,
    /// The encoded request, built once.
    body: Vec<u8>,
    change_bytes: usize,
}

/// The attacker's phone: enrolled, one household synced, then one change of `flips`
/// operations on it, built in automerge's expanded form and encoded once (no transaction,
/// no op tree), as `core/sync/src/hub/budget_tests.rs` does.
fn attacker(
    schema: &Arc<Schema>,
    server: &ServerProcess,
    village: &str,
    flips: u64,
    seed: u64,
) -> BenchResult<Attacker> {
    let token = server.add_device("attacker", "cadre-attacker", Some(village))?;
    let phone = Phone::open(schema, "attacker", &server.url(), &token)?;
    let mut rng = Rng::new(seed);
    let vz = vec![(village.to_owned(), village_zh(schema, village)?)];
    let h = data::household(&mut rng, schema, &vz)?;
    let id = phone.store.create(ENTITY, Some(&h.village), &h.edits())?;
    phone.sync_until_complete(5)?;

    let doc = Automerge::load(&phone.store.export(id)?)?;
    let Some((_, ObjId::Id(counter, fields_actor, _))) = doc.get(ROOT, "fields")? else {
        return Err("no fields map".into());
    };
    let fields = legacy::ObjectId::Id(legacy::OpId(counter, fields_actor));
    let max_op = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.max_op())
        .max()
        .ok_or("no changes")?;
    let actor = ActorId::random();
    let start = max_op + 1;
    let operations = (0..flips)
        .map(|i| legacy::Op {
            action: legacy::OpType::Put(ScalarValue::Boolean(i % 2 == 0)),
            obj: fields.clone(),
            key: legacy::Key::Map("housing_safe".into()),
            pred: if i == 0 {
                legacy::SortedVec::new()
            } else {
                vec![legacy::OpId(start + i - 1, actor.clone())].into()
            },
            insert: false,
        })
        .collect();
    let author = Author {
        cadre: CadreId::new("cadre-attacker")?,
        device: phone.store.device_id().clone(),
    };
    let heads = phone.store.heads(id)?;
    let expanded = ExpandedChange {
        operations,
        actor_id: actor,
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(start).ok_or("start op 0")?,
        time: now_ms(),
        message: Some(serde_json::to_string(&author)?),
        deps: heads,
        extra_bytes: Vec::new(),
        author: None,
    };
    let mut change = automerge::Change::from(expanded);
    let hash = change.hash();
    let bytes = change.bytes().into_owned();
    let change_bytes = bytes.len();
    let request = SyncRequest {
        device: phone.store.device_id().to_string(),
        cursor: phone.store.sync_cursor()?,
        push: vec![PushDoc {
            record: WireId::from(id),
            heads: heads_to_wire(&[hash]),
            bytes,
        }],
        max_response_bytes: SyncOptions::default().max_response_bytes,
        schema: None,
    };
    Ok(Attacker {
        transport: HttpTransport::new(&server.url(), &token, HTTP_TIMEOUT),
        body: request.encode(),
        change_bytes,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn village_zh(schema: &Schema, village: &str) -> BenchResult<String> {
    schema
        .villages
        .get(village)
        .map(|l| l.zh.clone())
        .ok_or_else(|| format!("unknown village {village}").into())
}

// ---------------------------------------------------------------------------------------
// One phase
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct HonestOut {
    lat: Vec<Duration>,
    errors: u64,
    refused: u64,
    incomplete: u64,
    edits: u64,
    pushed: u64,
    pulled: u64,
    first_errors: Vec<String>,
}

impl HonestOut {
    fn merge(&mut self, o: HonestOut) {
        self.lat.extend(o.lat);
        self.errors += o.errors;
        self.refused += o.refused;
        self.incomplete += o.incomplete;
        self.edits += o.edits;
        self.pushed += o.pushed;
        self.pulled += o.pulled;
        for e in o.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e);
            }
        }
    }
}

#[derive(Default)]
struct StreamOut {
    streams: u64,
    records: u64,
    errors: u64,
    first_errors: Vec<String>,
}

#[derive(Default)]
struct AttackOut {
    sent: u64,
    refused_ops: u64,
    refused_other: u64,
    accepted: u64,
    errors: u64,
    lat: Vec<Duration>,
    first_answer: Option<String>,
}

struct PhaseOut {
    wall: Duration,
    honest: HonestOut,
    streams: StreamOut,
    attack: Option<AttackOut>,
    cpu_server: f64,
    cpu_bench: f64,
    rss_peak_kib: u64,
    mem_after: Mem,
}

fn honest_worker(
    schema: &Schema,
    phones: &[Phone],
    k: usize,
    threads: usize,
    stop: &AtomicBool,
    rng: &mut Rng,
) -> HonestOut {
    let mut out = HonestOut::default();
    let mut i = k;
    while !stop.load(Ordering::SeqCst) {
        let phone = &phones[i];
        if rng.chance(EDIT_PERCENT) && !phone.own.is_empty() {
            let id = phone.own[rng.below(phone.own.len())];
            let field = *rng.pick(EDIT_FIELDS);
            let group = rng.range(1, 12);
            match data::field_value(rng, schema, field, &phone.village_zh, group) {
                Ok(v) => match phone.store.set(id, field, v) {
                    Ok(changed) => out.edits += u64::from(changed),
                    Err(e) => out.first_errors.push(format!("edit: {e}")),
                },
                Err(e) => out.first_errors.push(format!("value: {e}")),
            }
        }
        let t = Instant::now();
        match phone.sync() {
            Ok(r) => {
                out.lat.push(t.elapsed());
                out.pushed += u64::from(r.progress.pushed);
                out.pulled += u64::from(r.progress.pulled);
                if !r.refused.is_empty() {
                    out.refused += 1;
                    if out.first_errors.len() < 5 {
                        out.first_errors
                            .push(format!("phone {i}: refused {:?}", r.refused));
                    }
                }
                if !r.complete {
                    out.incomplete += 1;
                }
            }
            Err(e) => {
                out.errors += 1;
                if out.first_errors.len() < 5 {
                    out.first_errors.push(format!("phone {i}: {e}"));
                }
            }
        }
        i += threads;
        if i >= phones.len() {
            i = k;
        }
    }
    out
}

fn stream_worker(addr: std::net::SocketAddr, token: &str, stop: &AtomicBool) -> StreamOut {
    let mut out = StreamOut::default();
    while !stop.load(Ordering::SeqCst) {
        let mut lines = 0u64;
        let r = Conn::open(addr, HTTP_TIMEOUT).and_then(|mut c| {
            c.get("/v1/records.ndjson", Some(token), &mut |b| {
                lines += b.iter().filter(|&&c| c == b'\n').count() as u64;
            })
        });
        match r {
            Ok(()) => {
                out.streams += 1;
                out.records += lines;
            }
            Err(e) => {
                out.errors += 1;
                if out.first_errors.len() < 3 {
                    out.first_errors.push(e.to_string());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    out
}

fn attack_worker(a: &Attacker, stop: &AtomicBool) -> AttackOut {
    let mut out = AttackOut::default();
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let r = a.transport.exchange(&a.body);
        out.lat.push(t.elapsed());
        out.sent += 1;
        let answer = match r {
            Ok(body) => match SyncResponse::decode(&body) {
                Ok(resp) => {
                    if !resp.accepted.is_empty() {
                        out.accepted += 1;
                        format!("accepted {}", resp.accepted.len())
                    } else if let Some(refusal) = resp.refused.first() {
                        if refusal.code == RefusalCode::Malformed
                            && refusal.message.contains("operations")
                        {
                            out.refused_ops += 1;
                        } else {
                            out.refused_other += 1;
                        }
                        format!("refused {:?}: {}", refusal.code, refusal.message)
                    } else {
                        out.refused_other += 1;
                        "neither accepted nor refused".to_owned()
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    format!("undecodable response: {e}")
                }
            },
            Err(e) => {
                out.errors += 1;
                format!("transport error: {e}")
            }
        };
        if out.first_answer.is_none() {
            out.first_answer = Some(answer);
        }
    }
    out
}

struct World<'a> {
    settings: &'a Settings,
    schema: &'a Schema,
    server: &'a ServerProcess,
    phones: &'a [Phone],
    dept_tokens: &'a [String],
}

fn run_phase(w: &World<'_>, attacker: Option<&Attacker>, salt: u64) -> BenchResult<PhaseOut> {
    let pid = w.server.pid();
    let threads = w.settings.threads.min(w.phones.len()).max(1);
    let stop = AtomicBool::new(false);
    let sampler = RssSampler::start(Pid::Of(pid), Duration::from_millis(100));
    let cpu0 = procfs::cpu_secs(Pid::Of(pid))?;
    let bench0 = procfs::cpu_secs(Pid::This)?;
    let t = Instant::now();
    let addr = w.server.addr();
    let (honest, streams, attack) = std::thread::scope(|s| {
        let honest: Vec<_> = (0..threads)
            .map(|k| {
                let stop = &stop;
                let mut rng = Rng::stream(w.settings.env.seed ^ salt, k as u64);
                s.spawn(move || honest_worker(w.schema, w.phones, k, threads, stop, &mut rng))
            })
            .collect();
        let streams: Vec<_> = w
            .dept_tokens
            .iter()
            .map(|token| {
                let stop = &stop;
                s.spawn(move || stream_worker(addr, token, stop))
            })
            .collect();
        let attack = attacker.map(|a| {
            let stop = &stop;
            s.spawn(move || attack_worker(a, stop))
        });
        std::thread::sleep(w.settings.secs);
        stop.store(true, Ordering::SeqCst);
        let mut h = HonestOut::default();
        for j in honest {
            h.merge(j.join().unwrap_or_else(|_| HonestOut {
                errors: 1,
                first_errors: vec!["a client thread panicked".into()],
                ..HonestOut::default()
            }));
        }
        let mut st = StreamOut::default();
        for j in streams {
            let o = j.join().unwrap_or_default();
            st.streams += o.streams;
            st.records += o.records;
            st.errors += o.errors;
            if st.first_errors.len() < 3 {
                st.first_errors.extend(o.first_errors);
            }
        }
        let a = attack.map(|j| j.join().unwrap_or_default());
        (h, st, a)
    });
    let wall = t.elapsed();
    let cpu_server = procfs::cpu_secs(Pid::Of(pid))? - cpu0;
    let cpu_bench = procfs::cpu_secs(Pid::This)? - bench0;
    let (rss_peak_kib, _) = sampler.finish();
    Ok(PhaseOut {
        wall,
        honest,
        streams,
        attack,
        cpu_server,
        cpu_bench,
        rss_peak_kib,
        mem_after: procfs::memory(Pid::Of(pid))?,
    })
}

fn ms(us: f64) -> String {
    format!("{:.1} ms", us / 1000.0)
}

fn print_phase(name: &str, p: &PhaseOut) {
    let h = &p.honest;
    let s = Summary::of(&h.lat);
    let wall = p.wall.as_secs_f64();
    println!();
    println!("== {name}: {wall:.1} s ==");
    println!(
        "honest syncs: {} ({:.0}/s); errors {}, syncs with a refusal {}, incomplete {}; \
         {} edits, {} docs pushed, {} docs pulled",
        s.n,
        as_f64(s.n) / wall,
        h.errors,
        h.refused,
        h.incomplete,
        h.edits,
        h.pushed,
        h.pulled
    );
    println!(
        "  latency of sync(): p50 {}, p90 {}, p99 {}, max {}, mean {}",
        ms(s.median_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.max_us),
        ms(s.mean_us)
    );
    if !h.first_errors.is_empty() {
        println!("  first errors: {:?}", h.first_errors);
    }
    let st = &p.streams;
    println!(
        "department streams: {} complete, {} records ({:.0} records/s), {} errors{}",
        st.streams,
        st.records,
        as_f64(usize::try_from(st.records).unwrap_or(usize::MAX)) / wall,
        st.errors,
        if st.first_errors.is_empty() {
            String::new()
        } else {
            format!("; first: {:?}", st.first_errors)
        }
    );
    if let Some(a) = &p.attack {
        let al = Summary::of(&a.lat);
        println!(
            "attacker pushes: {} sent; refused for operations {}, refused otherwise {}, ACCEPTED {}, errors {}; \
             per push p50 {}, p99 {}",
            a.sent,
            a.refused_ops,
            a.refused_other,
            a.accepted,
            a.errors,
            ms(al.median_us),
            ms(al.p99_us)
        );
        if let Some(first) = &a.first_answer {
            println!("  first answer: {first}");
        }
    }
    println!(
        "server: CPU {:.2} s ({:.0}% of one core), peak VmRSS {:.1} MiB (sampled every 100 ms), \
         after: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads; bench process CPU {:.2} s",
        p.cpu_server,
        100.0 * p.cpu_server / wall,
        mib(p.rss_peak_kib),
        mib(p.mem_after.rss_kib),
        mib(p.mem_after.hwm_kib),
        p.mem_after.threads,
        p.cpu_bench
    );
}

fn print_table(base: &PhaseOut, attack: &PhaseOut) {
    let (b, a) = (
        Summary::of(&base.honest.lat),
        Summary::of(&attack.honest.lat),
    );
    let per_s = |p: &PhaseOut, x: u64| {
        as_f64(usize::try_from(x).unwrap_or(usize::MAX)) / p.wall.as_secs_f64()
    };
    println!();
    println!("== attack (ours) against baseline, same process, same server ==");
    let t = RatioTable::new(34);
    t.header("baseline");
    t.row("honest syncs", as_f64(a.n), Some(as_f64(b.n)), "", 0);
    t.row(
        "honest syncs/s",
        as_f64(a.n) / attack.wall.as_secs_f64(),
        Some(as_f64(b.n) / base.wall.as_secs_f64()),
        "",
        1,
    );
    t.row(
        "sync p50",
        a.median_us / 1000.0,
        Some(b.median_us / 1000.0),
        " ms",
        1,
    );
    t.row(
        "sync p90",
        a.p90_us / 1000.0,
        Some(b.p90_us / 1000.0),
        " ms",
        1,
    );
    t.row(
        "sync p99",
        a.p99_us / 1000.0,
        Some(b.p99_us / 1000.0),
        " ms",
        1,
    );
    t.row(
        "sync max",
        a.max_us / 1000.0,
        Some(b.max_us / 1000.0),
        " ms",
        1,
    );
    t.row(
        "department records/s",
        per_s(attack, attack.streams.records),
        Some(per_s(base, base.streams.records)),
        "",
        0,
    );
    t.row(
        "server CPU",
        attack.cpu_server,
        Some(base.cpu_server),
        " s",
        2,
    );
    t.row(
        "server peak VmRSS",
        mib(attack.rss_peak_kib),
        Some(mib(base.rss_peak_kib)),
        " MiB",
        1,
    );
    println!(
        "honest errors + syncs with a refusal: {} under attack, {} baseline",
        attack.honest.errors + attack.honest.refused,
        base.honest.errors + base.honest.refused
    );
}

// ---------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env()?;
    let schema = Arc::new(Schema::baru_example());
    let villages = data::villages(&schema);
    println!(
        "yibiao load benchmark{}: server {}, {} honest phones over {} villages, {} client threads, \
         {} department streams, attacker change of {} operations, phases of {:.0} s, seed {}",
        if settings.env.quick { " (quick)" } else { "" },
        server_binary().display(),
        settings.devices,
        villages.len(),
        settings.threads,
        settings.streams,
        settings.flips,
        settings.secs.as_secs_f64(),
        settings.env.seed
    );
    println!(
        "machine: {} CPU(s) shared by server and clients, load average {}",
        cpus().max(1),
        load_average()
    );

    let dir = settings.env.tempdir("yibiao-load-")?;
    let options = ServerOptions {
        no_rate_limit: true,
        ..ServerOptions::default()
    };
    let server = ServerProcess::start(server_binary(), &dir.path().join("server"), options)?;
    let pid = Pid::Of(server.pid());
    let mem_start = procfs::memory(pid)?;
    let url = server.url();

    let n = settings.devices;
    let t = Instant::now();
    let tokens: Vec<String> = run_pool(n, 8, |i| {
        let name = format!("phone-{i:04}");
        let village = &villages[i % villages.len()].0;
        server.add_device(&name, &format!("cadre-{name}"), Some(village))
    })
    .into_iter()
    .collect::<BenchResult<_>>()?;
    let dept_tokens: Vec<String> = run_pool(settings.streams, 8, |i| {
        let dept = DEPARTMENTS[i % DEPARTMENTS.len()];
        server.department_token(dept, &format!("load-{i:02}"))
    })
    .into_iter()
    .collect::<BenchResult<_>>()?;
    println!(
        "registered {n} phones and {} department tokens through the CLI in {:.1} s",
        dept_tokens.len(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let phones: Vec<Phone> = run_pool(n, settings.threads.min(16), |i| {
        let name = format!("phone-{i:04}");
        let (village, zh) = &villages[i % villages.len()];
        let mut phone = Phone::open(&schema, &name, &url, &tokens[i])?;
        phone.village_zh.clone_from(zh);
        let mut rng = Rng::stream(settings.env.seed, i as u64);
        let vz = vec![(village.clone(), zh.clone())];
        for _ in 0..HOUSEHOLDS_PER_PHONE {
            let h = data::household(&mut rng, &schema, &vz)?;
            phone
                .own
                .push(phone.store.create(ENTITY, Some(&h.village), &h.edits())?);
        }
        phone.sync_until_complete(20)?;
        Ok(phone)
    })
    .into_iter()
    .collect::<BenchResult<_>>()?;
    println!(
        "{n} phones entered {HOUSEHOLDS_PER_PHONE} households each and synced once in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // A second round so that every phone holds its village before the phases.
    let t = Instant::now();
    run_pool(n, settings.threads, |i| phones[i].sync_until_complete(20))
        .into_iter()
        .collect::<BenchResult<Vec<()>>>()?;
    println!(
        "every phone pulled its village in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let a = attacker(
        &schema,
        &server,
        &villages[0].0,
        settings.flips,
        settings.env.seed ^ 0xA77A_C4E5,
    )?;
    println!(
        "attacker phone enrolled in {}; its change: {} operations in {} bytes, request body {} bytes",
        villages[0].0,
        settings.flips,
        a.change_bytes,
        a.body.len()
    );
    let mem_setup = procfs::memory(pid)?;

    let world = World {
        settings: &settings,
        schema: &schema,
        server: &server,
        phones: &phones,
        dept_tokens: &dept_tokens,
    };
    let base = run_phase(&world, None, 1)?;
    print_phase("baseline (no attacker)", &base);
    let attack = run_phase(&world, Some(&a), 2)?;
    print_phase("attack (attacker pushing in a loop)", &attack);
    print_table(&base, &attack);

    println!();
    println!("== server memory (/proc/{}/status) ==", server.pid());
    println!(
        "{:<30} {:>12} {:>12} {:>8}",
        "", "VmRSS", "VmHWM", "threads"
    );
    for (label, m) in [
        ("at start (empty)", mem_start),
        ("after setup", mem_setup),
        ("after baseline", base.mem_after),
        ("after attack", attack.mem_after),
    ] {
        println!(
            "{label:<30} {:>8.1} MiB {:>8.1} MiB {:>8}",
            mib(m.rss_kib),
            mib(m.hwm_kib),
            m.threads
        );
    }
    println!("server CPU seconds in total: {:.2}", procfs::cpu_secs(pid)?);
    let h = Summary::of(&attack.honest.lat);
    let b = Summary::of(&base.honest.lat);
    println!();
    println!(
        "note: {n} phones + {} department streams + 1 attacker, {:.0} s per phase on {} CPU(s): \
         honest errors {} (baseline {}), p99 of honest syncs {} under attack vs {} baseline ({:.2}x), \
         attacker pushes {} ({} refused for their operations, {} accepted), server peak RSS {:.1} MiB under attack \
         ({:.1} MiB baseline)",
        dept_tokens.len(),
        settings.secs.as_secs_f64(),
        cpus().max(1),
        attack.honest.errors + attack.honest.refused,
        base.honest.errors + base.honest.refused,
        ms(h.p99_us),
        ms(b.p99_us),
        yibiao_testkit::bench::ratio(h.p99_us, b.p99_us),
        attack.attack.as_ref().map_or(0, |x| x.sent),
        attack.attack.as_ref().map_or(0, |x| x.refused_ops),
        attack.attack.as_ref().map_or(0, |x| x.accepted),
        mib(attack.rss_peak_kib),
        mib(base.rss_peak_kib)
    );
    Ok(())
}
