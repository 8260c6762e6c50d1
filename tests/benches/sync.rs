//! Sync benchmark: prints figures for phones syncing with a real `yibiao-server` process
//! over HTTP on loopback. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-tests --bench sync`
//!
//! Environment:
//! - `YIBIAO_BENCH_DEVICES`: phones of the fleet phases (default 200; 12 when quick);
//! - `YIBIAO_BENCH_QUICK=1`: shrink everything for CI (a few seconds in release);
//! - `YIBIAO_BENCH_THREADS`: client threads of the fleet phases (default 32; 6 when quick);
//! - `YIBIAO_BENCH_IDLE_SECS`: length of the no-change phase (default 5; 1 when quick);
//! - `YIBIAO_BENCH_SEED`: seed of the data generator (default 20260214);
//! - `YIBIAO_BENCH_DIR`: directory for the server's data and the phones' SQLite files
//!   (default: the system temp dir).
//!
//! Phases, in order:
//! 1. A cadre's day on one phone: 20 new households of 15 fields, then 100 single-field
//!    edits; synced after the creates, after the edits, and (another phone, same values)
//!    the whole day at once; plus a colleague's phone in the same village pulling the day.
//!    Bodies are counted by the sync client, whole HTTP exchanges (headers included) by a
//!    counting TCP relay in front of the server. Next to them: the same values as JSON
//!    compressed with zstd, the baseline a hand-written JSON API would send.
//! 2. A fleet: N phones spread over the schema's villages, each with its own token and
//!    store, each doing a cadre's day offline; then all sync at once from a thread pool
//!    until complete, and a second round where every phone pulls its village.
//! 3. No-change syncs: every phone syncs again and again with nothing to send.
//! 4. The server process's memory (`VmHWM`, `VmRSS`) before and after phases 2 and 3.
//!
//! Phase 1 also prints what the push weighs encoded otherwise (at zstd-19, without the
//! per-document heads, as whole documents, without automerge's own column DEFLATE, as
//! automerge bundles) and a weak-link time estimate per profile of the brief; those are
//! computed, never sent. Phases 2 and 3 print the CPU time of the server process and of
//! this process (the simulated phones share the machine with the server).
//!
//! The server runs from the binary cargo built for this bench
//! (`CARGO_BIN_EXE_server_under_test`, the real `yibiao-server` command line) through the
//! test kit's server helper, with the per-token rate limit off (`rate_per_minute = 0`);
//! the helper kills it at the end, on error or panic.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::Store;
use yibiao_store::http::HttpTransport;
use yibiao_store::sync;
use yibiao_sync::protocol::{PullDoc, PushDoc, SyncRequest, SyncResponse, WireId, heads_to_wire};
use yibiao_sync::session::{SyncOptions, SyncReport, Transport, TransportError};
use yibiao_testkit::bench::{BenchEnv, cpus, env_parse, percentile, ratio_text as ratio, run_pool};
use yibiao_testkit::data::{self, ENTITY};
use yibiao_testkit::http::Conn;
use yibiao_testkit::procfs::{self, Memory as Mem, Pid, load_average};
use yibiao_testkit::rng::Rng;
use yibiao_testkit::server::{ServerOptions, ServerProcess};

type BenchResult<T> = yibiao_testkit::Result<T>;

const RECORDS_PER_DAY: usize = 20;
const EDITS_PER_DAY: usize = 100;
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Weak-link profiles of /work/shared/BRIEF.md: name, one-way latency (ms), down and up
/// (kbit/s). Cuts are not modelled by the estimate.
const PROFILES: &[(&str, f64, f64, f64)] = &[
    ("mountain-2g", 500.0, 40.0, 20.0),
    ("edge", 250.0, 100.0, 50.0),
    ("flaky-4g", 50.0, 2000.0, 1000.0),
];

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    env: BenchEnv,
    devices: usize,
    threads: usize,
    idle: Duration,
}

impl Settings {
    fn from_env() -> BenchResult<Self> {
        let env = BenchEnv::from_env()?;
        let devices = env_parse("YIBIAO_BENCH_DEVICES")?.unwrap_or(env.pick(12, 200));
        let threads = env_parse("YIBIAO_BENCH_THREADS")?.unwrap_or(env.pick(6, 32));
        let idle: f64 = env_parse("YIBIAO_BENCH_IDLE_SECS")?.unwrap_or(env.pick(1.0, 5.0));
        Ok(Self {
            env,
            devices: usize::max(devices, 1),
            threads: usize::max(threads, 1),
            idle: Duration::from_secs_f64(idle.max(0.1)),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// A real server on `data_dir` with the per-token rate limit off: the phases measure the
/// sync path, and the no-change phase syncs each phone far more often than the default
/// allows.
fn start_server(data_dir: &Path) -> BenchResult<ServerProcess> {
    let options = ServerOptions {
        no_rate_limit: true,
        ..ServerOptions::default()
    };
    ServerProcess::start(server_binary(), data_dir, options)
}

/// Registers phones (name, village) in parallel (each `device add` is its own process),
/// each for the cadre `cadre-{name}` its store opens with ([`Phone::open`]).
fn add_devices(server: &ServerProcess, specs: &[(String, String)]) -> BenchResult<Vec<String>> {
    let tokens = run_pool(specs.len(), 8, |i| {
        let (name, village) = &specs[i];
        server.add_device(name, &format!("cadre-{name}"), Some(village))
    });
    tokens.into_iter().collect()
}

/// `records` of `GET /healthz`.
fn healthz_records(addr: SocketAddr) -> BenchResult<u64> {
    let mut body = Vec::new();
    Conn::open(addr, Duration::from_secs(30))?
        .get("/healthz", None, &mut |b| body.extend_from_slice(b))?;
    let v: Json = serde_json::from_slice(&body)?;
    v["records"]
        .as_u64()
        .ok_or_else(|| format!("healthz has no record count: {v}").into())
}

/// CPU seconds spent by the server and by this process (the phones) over a phase.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    phones: f64,
}

impl Cpu {
    fn now(server: &ServerProcess) -> BenchResult<Cpu> {
        Ok(Cpu {
            server: procfs::cpu_secs(Pid::Of(server.pid()))?,
            phones: procfs::cpu_secs(Pid::This)?,
        })
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            phones: self.phones - before.phones,
        }
    }

    fn describe(self, wall: Duration) -> String {
        let w = wall.as_secs_f64().max(1e-9);
        format!(
            "CPU: server {:.2} s ({:.0}% of one core), phones/bench {:.2} s ({:.0}%)",
            self.server,
            100.0 * self.server / w,
            self.phones,
            100.0 * self.phones / w
        )
    }
}

fn memory(server: &ServerProcess) -> BenchResult<Mem> {
    procfs::memory(Pid::Of(server.pid()))
}

// ---------------------------------------------------------------------------------------
// A counting TCP relay: whole HTTP exchanges, headers included
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct WireCount {
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
}

#[derive(Clone, Copy, Default)]
struct Wire {
    up: u64,
    down: u64,
    connections: u64,
}

impl WireCount {
    fn snapshot(&self) -> Wire {
        Wire {
            up: self.up.load(Ordering::SeqCst),
            down: self.down.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
        }
    }
}

impl Wire {
    fn since(self, before: Wire) -> Wire {
        Wire {
            up: self.up - before.up,
            down: self.down - before.down,
            connections: self.connections - before.connections,
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: &AtomicU64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Listens on a loopback port and relays every connection to `target`, counting bytes.
fn start_relay(target: SocketAddr) -> BenchResult<(SocketAddr, Arc<WireCount>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let count = Arc::new(WireCount::default());
    let c = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            let (cu, cd) = (c.clone(), c.clone());
            std::thread::spawn(move || pump(client, server, &cu.up));
            std::thread::spawn(move || pump(server2, client2, &cd.down));
        }
    });
    Ok((addr, count))
}

// ---------------------------------------------------------------------------------------
// A transport that remembers how long the last exchange took
// ---------------------------------------------------------------------------------------

struct TimedTransport {
    inner: HttpTransport,
    last_nanos: AtomicU64,
}

impl TimedTransport {
    fn new(url: &str, token: &str) -> Self {
        Self {
            inner: HttpTransport::new(url, token, HTTP_TIMEOUT),
            last_nanos: AtomicU64::new(0),
        }
    }

    fn last(&self) -> Duration {
        Duration::from_nanos(self.last_nanos.load(Ordering::SeqCst))
    }
}

impl Transport for TimedTransport {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let t = Instant::now();
        let r = self.inner.exchange(request);
        let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_nanos.store(nanos, Ordering::SeqCst);
        r
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic data: a cadre's day
// ---------------------------------------------------------------------------------------

/// The 15 `household` fields a new record holds: text, integer, decimal, choice,
/// multiple choice, boolean and date fields of the Baru schema.
const DAY_FIELDS: [&str; 15] = [
    "household_head",
    "id_number",
    "phone",
    "address",
    "village_group",
    "ethnicity",
    "household_size",
    "labour_count",
    "annual_income",
    "income_sources",
    "dibao_status",
    "housing_type",
    "housing_safe",
    "drinking_water",
    "visit_date",
];

/// Fields the cadre corrects later in the day, one of each kind.
const EDIT_FIELDS: &[&str] = &[
    "annual_income",
    "phone",
    "household_size",
    "labour_count",
    "dibao_status",
    "housing_safe",
    "visit_date",
    "drinking_water",
    "income_sources",
    "address",
];

/// One household: field values in the schema's typed form.
type Fields = Vec<(&'static str, Value)>;

/// A cadre's day: 20 new households, then 100 single-field edits of them.
struct Day {
    village: String,
    records: Vec<Fields>,
    /// (record index, field, new value)
    edits: Vec<(usize, &'static str, Value)>,
}

impl Day {
    fn generate(schema: &Schema, village: &str, seed: u64) -> BenchResult<Self> {
        let village_zh = schema
            .villages
            .get(village)
            .map(|l| l.zh.clone())
            .ok_or("unknown village")?;
        let mut rng = Rng::new(seed);
        let mut records = Vec::with_capacity(RECORDS_PER_DAY);
        let mut groups = Vec::with_capacity(RECORDS_PER_DAY);
        for _ in 0..RECORDS_PER_DAY {
            let group = rng.range(1, 12);
            let mut fields = Vec::with_capacity(DAY_FIELDS.len());
            for f in DAY_FIELDS {
                fields.push((
                    f,
                    data::field_value(&mut rng, schema, f, &village_zh, group)?,
                ));
            }
            records.push(fields);
            groups.push(group);
        }
        let mut current = records.clone();
        let mut edits = Vec::with_capacity(EDITS_PER_DAY);
        while edits.len() < EDITS_PER_DAY {
            let r = rng.below(RECORDS_PER_DAY);
            let field = *rng.pick(EDIT_FIELDS);
            let v = data::field_value(&mut rng, schema, field, &village_zh, groups[r])?;
            let slot = current[r]
                .iter_mut()
                .find(|(f, _)| *f == field)
                .ok_or("edit field not in the record")?;
            if slot.1 == v {
                continue; // every edit changes something
            }
            slot.1 = v.clone();
            edits.push((r, field, v));
        }
        Ok(Self {
            village: village.to_owned(),
            records,
            edits,
        })
    }

    fn enter_records(&self, store: &Store) -> BenchResult<Vec<RecordId>> {
        self.records
            .iter()
            .map(|fields| {
                let edits: Vec<FieldEdit> = fields
                    .iter()
                    .map(|(f, v)| FieldEdit::Set((*f).to_owned(), v.clone()))
                    .collect();
                store
                    .create(ENTITY, Some(&self.village), &edits)
                    .map_err(Into::into)
            })
            .collect()
    }

    fn enter_edits(&self, store: &Store, ids: &[RecordId]) -> BenchResult<()> {
        for (r, field, v) in &self.edits {
            if !store.set(ids[*r], field, v.clone())? {
                return Err(format!("edit of {field} changed nothing").into());
            }
        }
        Ok(())
    }

    fn records_json(&self, ids: &[RecordId]) -> Json {
        Json::Array(
            self.records
                .iter()
                .zip(ids)
                .map(|(fields, id)| record_json(id, fields))
                .collect(),
        )
    }

    fn edits_json(&self, ids: &[RecordId]) -> Json {
        Json::Array(
            self.edits
                .iter()
                .map(|(r, f, v)| json!({"record": ids[*r].to_string(), "field": f, "value": v.to_json()}))
                .collect(),
        )
    }

    fn final_json(&self, ids: &[RecordId]) -> Json {
        let mut current = self.records.clone();
        for (r, field, v) in &self.edits {
            if let Some(slot) = current[*r].iter_mut().find(|(f, _)| f == field) {
                slot.1 = v.clone();
            }
        }
        Json::Array(
            current
                .iter()
                .zip(ids)
                .map(|(fields, id)| record_json(id, fields))
                .collect(),
        )
    }
}

fn record_json(id: &RecordId, fields: &Fields) -> Json {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(id.to_string()));
    for (f, v) in fields {
        m.insert((*f).to_owned(), v.to_json());
    }
    Json::Object(m)
}

// ---------------------------------------------------------------------------------------
// Phones
// ---------------------------------------------------------------------------------------

struct Phone {
    store: Store,
    transport: TimedTransport,
    village: String,
    /// Records this phone created.
    own: Vec<RecordId>,
}

impl Phone {
    fn open(
        schema: &Arc<Schema>,
        dir: &Path,
        name: &str,
        village: &str,
        url: &str,
        token: &str,
    ) -> BenchResult<Self> {
        let store = Store::open(
            dir.join(format!("{name}.db")),
            schema.clone(),
            CadreId::new(format!("cadre-{name}"))?,
        )?;
        Ok(Self {
            store,
            transport: TimedTransport::new(url, token),
            village: village.to_owned(),
            own: Vec::new(),
        })
    }

    fn sync(&self) -> BenchResult<(SyncReport, Duration)> {
        let t = Instant::now();
        let report = sync(
            &self.store,
            &self.transport,
            &SyncOptions::default(),
            &mut |_| {},
        )?;
        Ok((report, t.elapsed()))
    }
}

/// What the next push carries, measured from the store before syncing, and what the same
/// request would weigh encoded differently (diagnostics only: nothing here is sent).
struct Payload {
    docs: usize,
    /// Automerge bytes the client sends (whole documents or deltas).
    automerge: usize,
    /// The same records as whole compacted documents.
    whole_docs: usize,
    /// The request body before zstd.
    raw: usize,
    /// The request body as the client builds it (first page).
    body: usize,
    /// The same request compressed at zstd level 19 instead of the protocol's level.
    body_z19: usize,
    /// The request without the `heads` of each pushed document.
    body_no_heads: usize,
    /// The request if every record went as a whole compacted document.
    body_whole: usize,
    /// The request if every record went as a whole document without automerge's own
    /// DEFLATE of its columns (`save_nocompress`), leaving compression to zstd.
    body_whole_plain: usize,
    /// The request if deltas went as automerge's (experimental) columnar bundles.
    body_bundle: usize,
    /// Every bundle loaded onto the server's known state gives the phone's heads.
    bundles_ok: bool,
}

fn payload(store: &Store) -> BenchResult<Payload> {
    let pending = store.pending_for_push(512)?;
    let (mut push, mut push_whole, mut push_bundle) = (Vec::new(), Vec::new(), Vec::new());
    let mut push_plain = Vec::new();
    let (mut automerge_len, mut whole_docs) = (0, 0);
    let mut bundles_ok = true;
    for p in &pending {
        let bytes = store.outgoing(p.id, &p.server_heads)?;
        let whole = store.export(p.id)?;
        automerge_len += bytes.len();
        whole_docs += whole.len();
        let heads = heads_to_wire(&store.heads(p.id)?);
        let doc = automerge::Automerge::load(&whole)?;
        let plain = doc.save_nocompress();
        let bundle = if p.server_heads.is_empty() {
            whole.clone()
        } else {
            let hashes: Vec<_> = doc
                .get_changes(&p.server_heads)
                .iter()
                .map(|c| c.hash())
                .collect();
            let b = doc.bundle(hashes)?.bytes().to_vec();
            let mut base = doc.fork_at(&p.server_heads)?;
            base.load_incremental(&b)?;
            bundles_ok &= base.get_heads() == doc.get_heads();
            b
        };
        let doc = |bytes: Vec<u8>| PushDoc {
            record: WireId::from(p.id),
            heads: heads.clone(),
            bytes,
        };
        push.push(doc(bytes));
        push_whole.push(doc(whole));
        push_bundle.push(doc(bundle));
        push_plain.push(doc(plain));
    }
    let request = |push: Vec<PushDoc>| -> BenchResult<SyncRequest> {
        Ok(SyncRequest {
            device: store.device_id().to_string(),
            cursor: store.sync_cursor()?,
            push,
            max_response_bytes: SyncOptions::default().max_response_bytes,
            schema: None,
        })
    };
    let req = request(push)?;
    let encoded = req.encode();
    let raw = zstd::bulk::decompress(&encoded[4..], 64 << 20)?;
    let mut no_heads = req.clone();
    for d in &mut no_heads.push {
        d.heads.clear();
    }
    Ok(Payload {
        docs: pending.len(),
        automerge: automerge_len,
        whole_docs,
        raw: raw.len(),
        body: encoded.len(),
        body_z19: 4 + zstd_len(&raw, 19)?,
        body_no_heads: no_heads.encode().len(),
        body_whole: request(push_whole)?.encode().len(),
        body_whole_plain: request(push_plain)?.encode().len(),
        body_bundle: request(push_bundle)?.encode().len(),
        bundles_ok,
    })
}

/// A pull page of `ids` as the server builds it (whole compacted documents), and the same
/// page with documents saved without automerge's column DEFLATE. Diagnostics only.
fn pull_page_sizes(store: &Store, ids: &[RecordId]) -> BenchResult<(usize, usize)> {
    let (mut docs, mut plain) = (Vec::new(), Vec::new());
    for id in ids {
        let bytes = store.export(*id)?;
        let heads = heads_to_wire(&store.heads(*id)?);
        let doc = automerge::Automerge::load(&bytes)?;
        plain.push(PullDoc {
            record: WireId::from(*id),
            heads: heads.clone(),
            bytes: doc.save_nocompress(),
        });
        docs.push(PullDoc {
            record: WireId::from(*id),
            heads,
            bytes,
        });
    }
    let page = |docs: Vec<PullDoc>| {
        SyncResponse {
            docs,
            cursor: u64::MAX / 2,
            ..SyncResponse::default()
        }
        .encode()
        .len()
    };
    Ok((page(docs), page(plain)))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn zstd_len(bytes: &[u8], level: i32) -> BenchResult<usize> {
    Ok(zstd::bulk::compress(bytes, level)?.len())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", yibiao_testkit::bench::mib(kib))
}

/// Seconds a sync would take on `profile`: one round trip per request plus one per new
/// connection, plus bytes over the bandwidth. Cuts and TCP slow start are ignored.
fn estimate_secs(profile: &(&str, f64, f64, f64), requests: u64, wire: Wire) -> f64 {
    let (_, one_way_ms, down_kbps, up_kbps) = *profile;
    let rtt = 2.0 * one_way_ms / 1000.0;
    (requests + wire.connections) as f64 * rtt
        + wire.up as f64 * 8.0 / (up_kbps * 1000.0)
        + wire.down as f64 * 8.0 / (down_kbps * 1000.0)
}

/// Sums of many sync runs.
#[derive(Default, Clone)]
struct Totals {
    runs: u64,
    requests: u64,
    pages: u64,
    bytes_up: u64,
    bytes_down: u64,
    pushed: u64,
    pulled: u64,
    refused: u64,
}

impl Totals {
    fn add(&mut self, r: &SyncReport) {
        let p = &r.progress;
        self.runs += 1;
        self.requests += u64::from(p.requests);
        self.pages += u64::from(p.pages);
        self.bytes_up += p.bytes_up;
        self.bytes_down += p.bytes_down;
        self.pushed += u64::from(p.pushed);
        self.pulled += u64::from(p.pulled);
        self.refused += u64::from(p.refused);
    }

    fn merge(&mut self, o: &Totals) {
        self.runs += o.runs;
        self.requests += o.requests;
        self.pages += o.pages;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.pushed += o.pushed;
        self.pulled += o.pulled;
        self.refused += o.refused;
    }

    /// Per no-change sync: (bytes up, bytes down, requests).
    fn per_run(&self) -> (f64, f64, f64) {
        let runs = self.runs.max(1) as f64;
        (
            self.bytes_up as f64 / runs,
            self.bytes_down as f64 / runs,
            self.requests as f64 / runs,
        )
    }
}

/// Syncs until the client reports complete (or gives up after a few failed runs).
fn sync_until_complete(phone: &Phone) -> (Totals, Duration, Vec<String>) {
    let t = Instant::now();
    let mut totals = Totals::default();
    let mut errors = Vec::new();
    for _ in 0..10 {
        match phone.sync() {
            Ok((report, _)) => {
                totals.add(&report);
                for (id, why) in &report.refused {
                    errors.push(format!("refused {id}: {why}"));
                }
                if report.complete {
                    break;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (totals, t.elapsed(), errors)
}

/// The summary table and the paste-ready note, filled by each phase.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.rows.push((what.into(), value.into()));
    }

    fn print(&self, started: Instant) {
        println!();
        println!("== Summary ==");
        let width = self
            .rows
            .iter()
            .map(|(w, _)| w.chars().count())
            .max()
            .unwrap_or(0);
        for (what, value) in &self.rows {
            println!("{what:<width$}  {value}");
        }
        println!(
            "total run time {:.1} s; load average at the end {} (this bench's own threads included)",
            started.elapsed().as_secs_f64(),
            load_average()
        );
        println!();
        println!("--- note (paste) ---");
        for n in &self.notes {
            println!("{n}");
        }
        println!("--- end note ---");
    }
}

// ---------------------------------------------------------------------------------------
// Phase 1: a cadre's day
// ---------------------------------------------------------------------------------------

struct Measured {
    label: &'static str,
    report: SyncReport,
    elapsed: Duration,
    wire: Wire,
    payload: Option<Payload>,
    base3: usize,
    base19: usize,
}

fn measure(
    label: &'static str,
    phone: &Phone,
    count: &WireCount,
    baseline_json: Option<&Json>,
) -> BenchResult<Measured> {
    let payload = if baseline_json.is_some() {
        Some(payload(&phone.store)?)
    } else {
        None
    };
    let (base3, base19) = match baseline_json {
        Some(j) => {
            let text = serde_json::to_vec(j)?;
            (zstd_len(&text, 3)?, zstd_len(&text, 19)?)
        }
        None => (0, 0),
    };
    let before = count.snapshot();
    let (report, elapsed) = phone.sync()?;
    // The relay counts asynchronously; give its threads a moment to catch up.
    std::thread::sleep(Duration::from_millis(50));
    let wire = count.snapshot().since(before);
    if !report.complete || !report.refused.is_empty() {
        return Err(format!("{label}: sync incomplete or refused: {:?}", report.refused).into());
    }
    Ok(Measured {
        label,
        report,
        elapsed,
        wire,
        payload,
        base3,
        base19,
    })
}

/// Phase 1's four syncs and the figures they are compared with.
struct DayRun {
    /// (a) after the creates, (b) after the edits, (c) the whole day at once, (d) a
    /// colleague's pull.
    syncs: [Measured; 4],
    /// Records the colleague's phone holds afterwards.
    pulled: i64,
    /// The day's 20 documents as one pull page: as sent, and without column DEFLATE.
    d_page: usize,
    d_plain: usize,
    /// The final state alone as JSON, at zstd-3 and zstd-19.
    final3: usize,
    final19: usize,
}

fn cadre_day(settings: &Settings, schema: &Arc<Schema>, report: &mut Report) -> BenchResult<()> {
    println!(
        "== 1. A cadre's day: {RECORDS_PER_DAY} new households x 15 fields, then {EDITS_PER_DAY} single-field edits =="
    );
    let run = run_day(settings, schema)?;
    print_day_syncs(&run);
    print_day_payloads(&run);
    print_day_estimates(&run);
    summarize_day(&run, report);
    Ok(())
}

/// A real server behind the counting relay; phones A and D in tujiang, C in baru.
fn run_day(settings: &Settings, schema: &Arc<Schema>) -> BenchResult<DayRun> {
    let dir = settings.env.tempdir("yibiao-bench-day-")?;
    let server = start_server(&dir.path().join("server"))?;
    let (relay, count) = start_relay(server.addr())?;
    let relay_url = format!("http://{relay}");
    let phones_dir = dir.path().join("phones");
    std::fs::create_dir_all(&phones_dir)?;
    // A: syncs after the creates and after the edits. C: another village, the same day
    // synced once at the end. D: a colleague in A's village who pulls A's day.
    let tokens = add_devices(
        &server,
        &[
            ("a".into(), "tujiang".into()),
            ("c".into(), "baru".into()),
            ("d".into(), "tujiang".into()),
        ],
    )?;
    let a = Phone::open(schema, &phones_dir, "a", "tujiang", &relay_url, &tokens[0])?;
    let c = Phone::open(schema, &phones_dir, "c", "baru", &relay_url, &tokens[1])?;
    let d = Phone::open(schema, &phones_dir, "d", "tujiang", &relay_url, &tokens[2])?;

    let day = Day::generate(schema, "tujiang", settings.env.seed)?;
    let example = day.records[0]
        .iter()
        .map(|(f, v)| format!("{f}={}", v.to_json()))
        .collect::<Vec<_>>()
        .join(", ");
    println!("first household: {example}");

    let ids = day.enter_records(&a.store)?;
    let m_a = measure(
        "(a) after 20 creates",
        &a,
        &count,
        Some(&day.records_json(&ids)),
    )?;
    day.enter_edits(&a.store, &ids)?;
    let m_b = measure(
        "(b) after 100 edits",
        &a,
        &count,
        Some(&day.edits_json(&ids)),
    )?;

    let day_c = Day {
        village: "baru".into(),
        records: day.records.clone(),
        edits: day.edits.clone(),
    };
    let ids_c = day_c.enter_records(&c.store)?;
    day_c.enter_edits(&c.store, &ids_c)?;
    let whole_day =
        json!({"records": day_c.records_json(&ids_c), "edits": day_c.edits_json(&ids_c)});
    let final_state = day_c.final_json(&ids_c);
    let m_c = measure("(c) whole day at once", &c, &count, Some(&whole_day))?;
    let m_d = measure("(d) colleague pulls (a)+(b)", &d, &count, None)?;
    let pulled = d.store.stats()?.records;
    let (d_page, d_plain) = pull_page_sizes(&d.store, &ids)?;

    let final_bytes = serde_json::to_vec(&final_state)?;
    Ok(DayRun {
        syncs: [m_a, m_b, m_c, m_d],
        pulled,
        d_page,
        d_plain,
        final3: zstd_len(&final_bytes, 3)?,
        final19: zstd_len(&final_bytes, 19)?,
    })
}

/// `n` as text, or `-` when there is no baseline.
fn or_dash(has: bool, text: impl FnOnce() -> String) -> String {
    if has { text() } else { "-".into() }
}

fn print_day_syncs(run: &DayRun) {
    println!();
    println!(
        "{:<30} {:>8} {:>8} {:>5} {:>5} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "sync",
        "up",
        "down",
        "reqs",
        "pages",
        "wire up",
        "wire down",
        "zstd-3",
        "zstd-19",
        "up/z3",
        "up/z19",
        "1 request"
    );
    for m in &run.syncs {
        let p = &m.report.progress;
        let has = m.base3 > 0;
        println!(
            "{:<30} {:>8} {:>8} {:>5} {:>5} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}",
            m.label,
            p.bytes_up,
            p.bytes_down,
            p.requests,
            p.pages,
            m.wire.up,
            m.wire.down,
            or_dash(has, || m.base3.to_string()),
            or_dash(has, || m.base19.to_string()),
            or_dash(has, || ratio(p.bytes_up, m.base3 as u64)),
            or_dash(has, || ratio(p.bytes_up, m.base19 as u64)),
            if p.requests == 1 { "yes" } else { "no" },
        );
    }
    println!(
        "up/down: sync bodies as counted by the client; wire: whole HTTP exchanges incl. headers (counting relay); \
         zstd-N: the same values as JSON compressed at level N (ratios: body up / baseline)"
    );
    println!(
        "(c) baseline = records + edits as JSON; the final state alone (20 records after the edits) is {} B at zstd-3, {} B at zstd-19 \
         -> (c) up / final-state zstd-19 = {}",
        run.final3,
        run.final19,
        ratio(run.syncs[2].report.progress.bytes_up, run.final19 as u64)
    );
    println!(
        "(d) the colleague's phone now holds {} records; the same 20 documents as one response: {} B as the \
         server sends them, {} B saved without automerge's column DEFLATE (computed)",
        run.pulled, run.d_page, run.d_plain
    );
}

fn print_day_payloads(run: &DayRun) {
    println!();
    println!(
        "what the push carries (measured on the store before syncing; alternatives are computed, not sent):"
    );
    println!(
        "{:<30} {:>5} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "sync",
        "docs",
        "automerge",
        "as whole",
        "raw body",
        "body",
        "zstd-19",
        "no heads",
        "if whole",
        "whole plain",
        "bundles"
    );
    for m in &run.syncs[..3] {
        if let Some(p) = &m.payload {
            println!(
                "{:<30} {:>5} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>11} {:>9}",
                m.label,
                p.docs,
                p.automerge,
                p.whole_docs,
                p.raw,
                p.body,
                p.body_z19,
                p.body_no_heads,
                p.body_whole,
                p.body_whole_plain,
                format!("{}{}", p.body_bundle, if p.bundles_ok { "" } else { "!" })
            );
        }
    }
    println!(
        "automerge: document bytes the client sends (whole docs when the server has none, else the changes after the \
         server's heads, one chunk per change); as whole: the same records as compacted documents; raw body: postcard \
         before zstd; body: the request as sent (zstd level 9); then the same request at zstd-19, without the \
         per-document heads, with whole documents, with whole documents without automerge's own column DEFLATE \
         (`save_nocompress`, zstd then sees across records), and with deltas as automerge's experimental columnar bundles \
         (`Automerge::bundle`; '!' = a bundle did not load back)"
    );
}

fn print_day_estimates(run: &DayRun) {
    println!();
    println!(
        "weak-link estimate (computed, not measured: (requests + new connections) x RTT + wire bytes / bandwidth; no cuts):"
    );
    print!("{:<30}", "sync");
    for p in PROFILES {
        print!(" {:>12}", p.0);
    }
    println!();
    for m in &run.syncs {
        print!("{:<30}", m.label);
        for p in PROFILES {
            let s = estimate_secs(p, u64::from(m.report.progress.requests), m.wire);
            print!(" {s:>10.1} s");
        }
        println!();
    }
    println!();
}

fn summarize_day(run: &DayRun, report: &mut Report) {
    for m in &run.syncs {
        let p = &m.report.progress;
        let base = if m.base3 > 0 {
            format!(
                "; baseline zstd-3/19 {} / {} B, ours/baseline {} / {}",
                m.base3,
                m.base19,
                ratio(p.bytes_up, m.base3 as u64),
                ratio(p.bytes_up, m.base19 as u64)
            )
        } else {
            String::new()
        };
        report.row(
            format!("day {}", m.label),
            format!(
                "up {} B, down {} B, {} req, {} page(s), wire {}+{} B, {}{}",
                p.bytes_up,
                p.bytes_down,
                p.requests,
                p.pages,
                m.wire.up,
                m.wire.down,
                ms(m.elapsed),
                base
            ),
        );
    }
    let [m_a, m_b, m_c, _] = &run.syncs;
    let within = |m: &Measured| {
        if m.report.progress.bytes_up as f64 <= 1.3 * m.base19 as f64 {
            "met"
        } else {
            "missed"
        }
    };
    report.notes.push(format!(
        "Cadre's day (20 households x 15 fields + 100 single-field edits), loopback, real server: \
         (a) creates {} B up / {} B down in {} request(s) = {} of zstd-19 JSON ({} B); \
         (b) edits {} B up in {} request(s) = {} of zstd-19 JSON ({} B); \
         (c) whole day at once {} B up in {} request(s) = {} of zstd-19 records+edits JSON ({} B), {} of the final state alone ({} B). \
         Target 1.3x: (a) {}, (b) {}, (c) {}.",
        m_a.report.progress.bytes_up,
        m_a.report.progress.bytes_down,
        m_a.report.progress.requests,
        ratio(m_a.report.progress.bytes_up, m_a.base19 as u64),
        m_a.base19,
        m_b.report.progress.bytes_up,
        m_b.report.progress.requests,
        ratio(m_b.report.progress.bytes_up, m_b.base19 as u64),
        m_b.base19,
        m_c.report.progress.bytes_up,
        m_c.report.progress.requests,
        ratio(m_c.report.progress.bytes_up, m_c.base19 as u64),
        m_c.base19,
        ratio(m_c.report.progress.bytes_up, run.final19 as u64),
        run.final19,
        within(m_a),
        within(m_b),
        within(m_c),
    ));
}

// ---------------------------------------------------------------------------------------
// Phases 2-4: a fleet
// ---------------------------------------------------------------------------------------

struct RoundResult {
    totals: Totals,
    per_device: Vec<(Totals, Duration)>,
    errors: Vec<String>,
    wall: Duration,
}

fn round(phones: &[Phone], threads: usize) -> RoundResult {
    let t = Instant::now();
    let results = run_pool(phones.len(), threads, |i| sync_until_complete(&phones[i]));
    let wall = t.elapsed();
    let mut totals = Totals::default();
    let mut per_device = Vec::new();
    let mut errors = Vec::new();
    for (i, (tot, d, errs)) in results.into_iter().enumerate() {
        totals.merge(&tot);
        per_device.push((tot, d));
        errors.extend(errs.into_iter().map(|e| format!("phone {i}: {e}")));
    }
    RoundResult {
        totals,
        per_device,
        errors,
        wall,
    }
}

fn print_round(name: &str, r: &RoundResult, devices: usize) {
    let t = &r.totals;
    let n = devices.max(1) as u64;
    let reqs: Vec<u64> = r.per_device.iter().map(|(t, _)| t.requests).collect();
    let mut durations: Vec<Duration> = r.per_device.iter().map(|(_, d)| *d).collect();
    durations.sort();
    println!(
        "{name}: wall {:.2} s; {} requests ({:.2}/phone, min {}, max {}), {} pages, {} sync runs; \
         up {} B ({} B/phone), down {} B ({} B/phone), total {} B; pushed {}, pulled {}, refused {}",
        r.wall.as_secs_f64(),
        t.requests,
        t.requests as f64 / n as f64,
        reqs.iter().min().copied().unwrap_or(0),
        reqs.iter().max().copied().unwrap_or(0),
        t.pages,
        t.runs,
        t.bytes_up,
        t.bytes_up / n,
        t.bytes_down,
        t.bytes_down / n,
        t.bytes_up + t.bytes_down,
        t.pushed,
        t.pulled,
        t.refused
    );
    println!(
        "  per-phone sync time: median {}, p90 {}, max {}",
        ms(percentile(&durations, 0.5)),
        ms(percentile(&durations, 0.9)),
        ms(percentile(&durations, 1.0))
    );
    if !r.errors.is_empty() {
        println!("  {} error(s); first ones:", r.errors.len());
        for e in r.errors.iter().take(5) {
            println!("    {e}");
        }
    }
}

/// N phones, each with its day entered offline, and the server they sync with.
struct Fleet {
    server: ServerProcess,
    phones: Vec<Phone>,
    villages: usize,
    mem_start: Mem,
    _dir: tempfile::TempDir,
}

fn start_fleet(settings: &Settings, schema: &Arc<Schema>) -> BenchResult<Fleet> {
    let n = settings.devices;
    let villages: Vec<String> = schema.villages.keys().cloned().collect();
    let dir = settings.env.tempdir("yibiao-bench-fleet-")?;
    let server = start_server(&dir.path().join("server"))?;
    let url = server.url();
    let mem_start = memory(&server)?;

    let t = Instant::now();
    let specs: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("phone-{i:04}"),
                villages[i % villages.len()].clone(),
            )
        })
        .collect();
    let tokens = add_devices(&server, &specs)?;
    println!(
        "registered {n} phones with `yibiao-server device add` in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let phones_dir = dir.path().join("phones");
    std::fs::create_dir_all(&phones_dir)?;
    let t = Instant::now();
    let phones: Vec<BenchResult<Phone>> = run_pool(n, settings.threads, |i| {
        let (name, village) = &specs[i];
        let mut phone = Phone::open(schema, &phones_dir, name, village, &url, &tokens[i])?;
        let seed = settings.env.seed.wrapping_add(1 + i as u64);
        let day = Day::generate(schema, village, seed)?;
        let ids = day.enter_records(&phone.store)?;
        day.enter_edits(&phone.store, &ids)?;
        phone.own = ids;
        Ok(phone)
    });
    let phones: Vec<Phone> = phones.into_iter().collect::<BenchResult<_>>()?;
    println!(
        "each phone entered its day offline ({} durable writes per phone) in {:.2} s",
        RECORDS_PER_DAY + EDITS_PER_DAY,
        t.elapsed().as_secs_f64()
    );
    Ok(Fleet {
        server,
        phones,
        villages: villages.len(),
        mem_start,
        _dir: dir,
    })
}

/// Round 1: everyone syncs at once.
struct RoundOne {
    round: RoundResult,
    expected: u64,
    until_held: Duration,
    all_complete: Duration,
    cpu: Cpu,
    cpu_after: Cpu,
}

fn round_one(fleet: &Fleet, settings: &Settings) -> BenchResult<RoundOne> {
    let n = fleet.phones.len();
    let expected = (n * RECORDS_PER_DAY) as u64;
    let addr = fleet.server.addr();
    let cpu0 = Cpu::now(&fleet.server)?;
    let t = Instant::now();
    // A watcher polls GET /healthz while the phones sync, to see when the server first
    // holds every record (pushes come first in each phone's sync, pulls after).
    let held_at: Mutex<Option<Duration>> = Mutex::new(None);
    let done = AtomicBool::new(false);
    let r1 = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if healthz_records(addr).is_ok_and(|h| h >= expected) {
                    if let Ok(mut slot) = held_at.lock() {
                        *slot = Some(t.elapsed());
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let r = round(&fleet.phones, settings.threads);
        done.store(true, Ordering::SeqCst);
        r
    });
    let all_complete = r1.wall;
    let mut held = healthz_records(addr)?;
    while held < expected && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
        held = healthz_records(addr)?;
    }
    let until_held = held_at
        .into_inner()
        .ok()
        .flatten()
        .unwrap_or_else(|| t.elapsed());
    let cpu1 = Cpu::now(&fleet.server)?;
    print_round("round 1 (push + pull, all at once)", &r1, n);
    println!("  {}", cpu1.since(cpu0).describe(all_complete));
    println!(
        "  server holds {held} of {expected} records (GET /healthz, polled every 25 ms): all held {:.2} s after the start; \
         every phone reported complete after {:.2} s{}",
        until_held.as_secs_f64(),
        all_complete.as_secs_f64(),
        if held == expected {
            ""
        } else {
            "  <-- MISMATCH"
        }
    );
    Ok(RoundOne {
        round: r1,
        expected,
        until_held,
        all_complete,
        cpu: cpu1.since(cpu0),
        cpu_after: cpu1,
    })
}

/// Round 2: every phone pulls until it holds its village.
struct RoundTwo {
    round: RoundResult,
    all_hold_their_village: bool,
    cpu: Cpu,
    cpu_after: Cpu,
    mem: Mem,
}

fn round_two(fleet: &Fleet, settings: &Settings, before: Cpu) -> BenchResult<RoundTwo> {
    let phones = &fleet.phones;
    let r2 = round(phones, settings.threads);
    let cpu2 = Cpu::now(&fleet.server)?;
    print_round("round 2 (pull until complete)", &r2, phones.len());
    println!("  {}", cpu2.since(before).describe(r2.wall));
    let mut per_village: BTreeMap<&str, i64> = BTreeMap::new();
    for p in phones {
        *per_village.entry(p.village.as_str()).or_default() += RECORDS_PER_DAY as i64;
    }
    let mut wrong = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let has = p.store.stats()?.records;
        let want = per_village.get(p.village.as_str()).copied().unwrap_or(0);
        let pending = p.store.sync_status()?.pending;
        if has != want || pending != 0 {
            wrong.push(format!(
                "phone {i} ({}): holds {has} of {want}, {pending} pending",
                p.village
            ));
        }
    }
    println!(
        "  every phone holds its village: {}",
        if wrong.is_empty() {
            format!("yes (records per village: {per_village:?})")
        } else {
            format!(
                "NO, {} phone(s) differ; first: {:?}",
                wrong.len(),
                wrong.iter().take(3).collect::<Vec<_>>()
            )
        }
    );
    print_pull_page(phones)?;
    Ok(RoundTwo {
        round: r2,
        all_hold_their_village: wrong.is_empty(),
        cpu: cpu2.since(before),
        cpu_after: cpu2,
        mem: memory(&fleet.server)?,
    })
}

/// What one pull page weighs, and would weigh with documents saved without automerge's
/// column DEFLATE (zstd then sees across the documents of the page).
fn print_pull_page(phones: &[Phone]) -> BenchResult<()> {
    let first = &phones[0];
    let page_ids: Vec<RecordId> = phones
        .iter()
        .skip(1)
        .filter(|p| p.village == first.village)
        .flat_map(|p| p.own.iter().copied())
        .take(80)
        .collect();
    let (page_len, page_plain) = pull_page_sizes(&first.store, &page_ids)?;
    println!(
        "  a pull page of {} whole documents (about what 64 KiB holds): {page_len} B as sent, {page_plain} B with documents \
         saved without automerge's column DEFLATE ({}; computed)",
        page_ids.len(),
        ratio(page_plain as u64, page_len as u64)
    );
    Ok(())
}

/// Phase 3: syncs with nothing to send.
struct NoChange {
    threads: usize,
    /// Sorted latencies of `sync()`, and of its HTTP exchange alone.
    lat: Vec<Duration>,
    exch: Vec<Duration>,
    totals: Totals,
    rate: f64,
}

/// One thread of phase 3: phones `k`, `k + threads`, … in turn until `stop_at`.
type IdleOut = (Vec<Duration>, Vec<Duration>, Totals, Vec<String>);

fn idle_worker(phones: &[Phone], k: usize, threads: usize, stop_at: Instant) -> IdleOut {
    let n = phones.len();
    let mut out: IdleOut = Default::default();
    let mut i = k;
    while Instant::now() < stop_at {
        let phone = &phones[i];
        match phone.sync() {
            Ok((report, d)) => {
                out.0.push(d);
                out.1.push(phone.transport.last());
                let p = &report.progress;
                if p.requests != 1 || p.pushed != 0 || p.pulled != 0 || !report.complete {
                    out.3.push(format!("phone {i}: {p:?}"));
                }
                out.2.add(&report);
            }
            Err(e) => out.3.push(format!("phone {i}: {e}")),
        }
        i += threads;
        if i >= n {
            i = k;
        }
    }
    out
}

fn no_change(fleet: &Fleet, settings: &Settings, before: Cpu) -> BenchResult<NoChange> {
    let n = fleet.phones.len();
    println!();
    println!(
        "== 3. No-change syncs: {} threads cycling over {n} phones for {:.0} s ==",
        settings.threads.min(n),
        settings.idle.as_secs_f64()
    );
    let threads = settings.threads.min(n);
    let stop_at = Instant::now() + settings.idle;
    let t = Instant::now();
    let outs = run_pool(threads, threads, |k| {
        idle_worker(&fleet.phones, k, threads, stop_at)
    });
    let wall = t.elapsed();
    let cpu3 = Cpu::now(&fleet.server)?;
    let (mut lat, mut exch, mut totals, mut odd) = IdleOut::default();
    for (l, e, t, o) in outs {
        lat.extend(l);
        exch.extend(e);
        totals.merge(&t);
        odd.extend(o);
    }
    lat.sort();
    exch.sort();
    let rate = lat.len() as f64 / wall.as_secs_f64();
    let (up, down, requests) = totals.per_run();
    println!(
        "{} syncs in {:.2} s = {rate:.0} syncs/s; latency of sync(): median {}, p90 {}, p99 {}, max {}",
        lat.len(),
        wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 1.0))
    );
    println!(
        "  HTTP exchange alone: median {}, p90 {}, p99 {}; per no-change sync: {up:.0} B up, {down:.0} B down (bodies), {requests:.2} requests",
        ms(percentile(&exch, 0.5)),
        ms(percentile(&exch, 0.9)),
        ms(percentile(&exch, 0.99)),
    );
    let cpu = cpu3.since(before);
    println!(
        "  {}; server CPU per no-change sync {:.0} us",
        cpu.describe(wall),
        1e6 * cpu.server / (lat.len().max(1) as f64)
    );
    if !odd.is_empty() {
        println!(
            "  {} unexpected outcome(s); first: {:?}",
            odd.len(),
            odd.iter().take(3).collect::<Vec<_>>()
        );
    }
    Ok(NoChange {
        threads,
        lat,
        exch,
        totals,
        rate,
    })
}

fn print_memory(fleet: &Fleet, mem_fleet: Mem, mem_idle: Mem) {
    println!();
    println!(
        "== 4. Server memory (/proc/{}/status) ==",
        fleet.server.pid()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "VmHWM", "VmRSS", "threads"
    );
    for (label, m) in [
        ("at start (empty)", fleet.mem_start),
        ("after phase 2 (fleet)", mem_fleet),
        ("after phase 3 (no-change)", mem_idle),
    ] {
        println!(
            "{label:<28} {:>12} {:>12} {:>8}",
            mib(m.hwm_kib),
            mib(m.rss_kib),
            m.threads
        );
    }
}

fn fleet(settings: &Settings, schema: &Arc<Schema>, report: &mut Report) -> BenchResult<()> {
    println!(
        "== 2. {} phones' days over {} villages; {} client threads; {} CPU(s) shared by server and clients ==",
        settings.devices,
        schema.villages.len(),
        settings.threads,
        cpus().max(1)
    );
    let fleet = start_fleet(settings, schema)?;
    let r1 = round_one(&fleet, settings)?;
    let r2 = round_two(&fleet, settings, r1.cpu_after)?;
    let idle = no_change(&fleet, settings, r2.cpu_after)?;
    let mem_idle = memory(&fleet.server)?;
    print_memory(&fleet, r2.mem, mem_idle);
    summarize_fleet(settings, &fleet, (&r1, &r2, &idle), mem_idle, report);
    Ok(())
}

fn summarize_fleet(
    settings: &Settings,
    fleet: &Fleet,
    (r1, r2, idle): (&RoundOne, &RoundTwo, &NoChange),
    mem_idle: Mem,
    report: &mut Report,
) {
    let n = fleet.phones.len();
    let per_phone = |x: u64| x as f64 / n as f64;
    let (t1, t2) = (&r1.round.totals, &r2.round.totals);
    let (up, down, _) = idle.totals.per_run();
    let (lat, exch) = (&idle.lat, &idle.exch);
    report.row(
        format!("fleet round 1 ({n} phones)"),
        format!(
            "server holds all {} after {:.2} s, all phones complete after {:.2} s; {} req ({:.2}/phone), {} B up + {} B down; \
             CPU server {:.1} s, phones {:.1} s",
            r1.expected,
            r1.until_held.as_secs_f64(),
            r1.all_complete.as_secs_f64(),
            t1.requests,
            per_phone(t1.requests),
            t1.bytes_up,
            t1.bytes_down,
            r1.cpu.server,
            r1.cpu.phones
        ),
    );
    report.row(
        "fleet round 2 (pull village)",
        format!(
            "{:.2} s; {} req ({:.2}/phone), {} docs, {} B down ({} B/phone); all hold their village: {}; \
             CPU server {:.1} s, phones {:.1} s",
            r2.round.wall.as_secs_f64(),
            t2.requests,
            per_phone(t2.requests),
            t2.pulled,
            t2.bytes_down,
            t2.bytes_down / n as u64,
            if r2.all_hold_their_village { "yes" } else { "NO" },
            r2.cpu.server,
            r2.cpu.phones
        ),
    );
    report.row(
        "no-change syncs",
        format!(
            "{:.0}/s with {} threads; median {} (HTTP {}), p99 {}; {up:.0} B up + {down:.0} B down each",
            idle.rate,
            idle.threads,
            ms(percentile(lat, 0.5)),
            ms(percentile(exch, 0.5)),
            ms(percentile(lat, 0.99)),
        ),
    );
    let m = |m: Mem| format!("{}/{}", mib(m.hwm_kib), mib(m.rss_kib));
    report.row(
        "server memory HWM/RSS",
        format!(
            "start {}, after fleet {}, after no-change {}",
            m(fleet.mem_start),
            m(r2.mem),
            m(mem_idle)
        ),
    );
    report.notes.push(format!(
        "{n} phones ({} villages, own tokens and stores) syncing their days at once through {} threads on {} CPU(s): \
         the server held all {} records after {:.2} s and every phone was complete after {:.2} s, {:.2} requests/phone, \
         {:.1} KiB up + {:.1} KiB down per phone; \
         pulling each village afterwards took {:.2} s, {:.2} requests/phone, {:.1} KiB down per phone. \
         No-change syncs: {:.0}/s, median {} ({up:.0} B up, {down:.0} B down). Server peak RSS {}.",
        fleet.villages,
        settings.threads,
        cpus().max(1),
        r1.expected,
        r1.until_held.as_secs_f64(),
        r1.all_complete.as_secs_f64(),
        per_phone(t1.requests),
        per_phone(t1.bytes_up) / 1024.0,
        per_phone(t1.bytes_down) / 1024.0,
        r2.round.wall.as_secs_f64(),
        per_phone(t2.requests),
        per_phone(t2.bytes_down) / 1024.0,
        idle.rate,
        ms(percentile(lat, 0.5)),
        mib(mem_idle.hwm_kib),
    ));
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env()?;
    let schema = Arc::new(Schema::baru_example());
    println!(
        "yibiao sync benchmark{}: server {}, {} phones in the fleet, seed {}",
        if settings.env.quick { " (quick)" } else { "" },
        server_binary().display(),
        settings.devices,
        settings.env.seed
    );
    println!(
        "machine: {} CPU(s), load average {} (other work on the machine skews every timing below)",
        cpus().max(1),
        load_average()
    );
    let started = Instant::now();
    let mut report = Report::default();
    cadre_day(&settings, &schema, &mut report)?;
    fleet(&settings, &schema, &mut report)?;
    report.print(started);
    Ok(())
}
