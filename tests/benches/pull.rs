//! Department pull benchmark: prints how fast a real `yibiao-server` process serves the
//! department read API over HTTP on loopback, and how much memory the server holds while it
//! does. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-tests --bench pull`
//!
//! Environment:
//! - `YIBIAO_BENCH_RECORDS`: households in the database (default 100000; 10000 when quick);
//! - `YIBIAO_BENCH_QUICK=1`: a small run for CI (seconds in release);
//! - `YIBIAO_BENCH_REPS`: repetitions of each timed run at 100% (default 5; 3 when quick);
//! - `YIBIAO_BENCH_SEED`: seed of the data generator (default 20260214);
//! - `YIBIAO_BENCH_DIR`: where the data directory goes (default: the system temp dir);
//! - `YIBIAO_BENCH_KEEP=1`: keep the data directory afterwards (to profile the server on it).
//!
//! Method:
//! 1. A few hundred real household documents (about 17 fields each: Chinese names, ID
//!    numbers, addresses, incomes, GPS points, photos, notes) are made with
//!    `Record::create` over the Baru schema's six villages; one in 25 carries a real
//!    conflict (two cadres set the same field apart, then merged).
//! 2. The server's SQLite database is filled directly through `HubStorage::commit` with
//!    N households that reuse those documents' bytes, heads, `values_json` and
//!    `conflicts_json` under fresh `RecordId`s (so stored chunks do not match their ids;
//!    the department read path never loads chunks). One in 500 is a tombstone.
//! 3. The database is filled in three steps (10%, 50%, 100% of N); after each step a
//!    fresh `yibiao-server serve` process (`CARGO_BIN_EXE_server_under_test`, the real
//!    command line, through the test kit's server helper) streams every
//!    record as NDJSON, so its peak memory can be compared across sizes.
//! 4. At 100%: NDJSON again (warm), NDJSON of one village, NDJSON for a one-village
//!    department with five fields, CSV, and the paged JSON endpoint (1000 per page,
//!    keep-alive); then a slow client that parses every NDJSON line checks ids, order,
//!    scope, fields and conflicts (its memory figure shows the server under backpressure).
//!
//! Each figure (best and median of the repetitions; the machine may be shared): records,
//! body bytes, wall time, records/s, MB/s, CPU of the server and of this client, records
//! per second of server CPU, and the server's memory: `VmRSS` before, the peak `VmRSS`
//! sampled every 20 ms, and `VmHWM` (reset through `/proc/<pid>/clear_refs` before each
//! run when the kernel allows it). The client is a plain HTTP/1.1 reader on `std::net::TcpStream`.
//! The server runs with `rate_per_minute = 0` so the paged run is not throttled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use automerge::{ActorId, ChangeHash};
use serde_json::{Value as Json, json};
use yibiao_model::{Author, CadreId, DeviceId, FieldEdit, Record, RecordId, Schema, Scope};
use yibiao_server::storage::SqliteStorage;
use yibiao_sync::HubStorage;
use yibiao_sync::hub::{DocWrite, HubBatch};
use yibiao_testkit::bench::{BenchEnv, cpus, env_parse, mib};
use yibiao_testkit::data::{self, ENTITY};
use yibiao_testkit::http::Conn;
use yibiao_testkit::procfs::{self, Pid, RssSampler, load_average as loadavg};
use yibiao_testkit::rng::Rng;
use yibiao_testkit::server::{self, ServerOptions, ServerProcess};

type BenchResult<T> = yibiao_testkit::Result<T>;

/// Distinct real documents per village.
const TEMPLATES_PER_VILLAGE: usize = 50;
/// One template in this many carries a conflict.
const CONFLICT_EVERY: usize = 25;
/// One record in this many is a tombstone.
const DELETED_EVERY: usize = 500;
/// Documents per `HubStorage::commit`.
const LOAD_BATCH: usize = 2000;
/// Page size of the JSON endpoint (its maximum).
const JSON_PAGE: usize = 1000;
/// Memory sampling period.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);
/// The department that sees every village and the `dibao_check` fields.
const DEPT_ALL: &str = "public_services";
/// The department that sees one village and five fields.
const DEPT_ONE: &str = "tujiang_health_station";
const ONE_VILLAGE: &str = "tujiang";
/// Target of the brief: records per second of the department NDJSON stream.
const TARGET_RPS: f64 = 200_000.0;

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    env: BenchEnv,
    records: usize,
    reps: usize,
}

impl Settings {
    fn from_env() -> BenchResult<Self> {
        let env = BenchEnv::from_env()?;
        let records: usize =
            env_parse("YIBIAO_BENCH_RECORDS")?.unwrap_or(env.pick(10_000, 100_000));
        let reps: usize = env_parse("YIBIAO_BENCH_REPS")?.unwrap_or(env.pick(3, 5));
        Ok(Self {
            env,
            records: records.max(10),
            reps: reps.max(1),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Realistic households, as real documents
// ---------------------------------------------------------------------------------------

/// A real document whose stored form is reused by many records.
struct Template {
    village: String,
    chunk: Vec<u8>,
    heads: Vec<ChangeHash>,
    values_json: String,
    conflicts_json: String,
    fields: usize,
}

impl Template {
    fn conflicted(&self) -> bool {
        self.conflicts_json != "{}"
    }
}

fn author(cadre: &str, device: &str) -> BenchResult<Author> {
    Ok(Author {
        cadre: CadreId::new(cadre)?,
        device: DeviceId::new(device)?,
    })
}

fn edits(schema: &Schema, values: &[(&'static str, Json)]) -> BenchResult<Vec<FieldEdit>> {
    values
        .iter()
        .map(|(field, json)| {
            let v = schema
                .parse_json(ENTITY, field, json)
                .map_err(|e| format!("generated value of {field} is refused: {e}"))?;
            Ok(FieldEdit::Set((*field).to_owned(), v))
        })
        .collect()
}

/// `TEMPLATES_PER_VILLAGE` real documents per village of the schema.
fn make_templates(schema: &Schema, rng: &mut Rng) -> BenchResult<Vec<Template>> {
    let mut out = Vec::new();
    let base_ms: i64 = 1_764_000_000_000;
    for (vi, (village, labels)) in schema.villages.iter().enumerate() {
        let cadre = author(
            &format!("cadre-{village}-01"),
            &format!("phone-{village}-01"),
        )?;
        let other = author(
            &format!("cadre-{village}-02"),
            &format!("phone-{village}-02"),
        )?;
        for t in 0..TEMPLATES_PER_VILLAGE {
            let yi = rng.chance(80);
            let values = data::rich_household(rng, &labels.zh, yi);
            let scope = Scope {
                township: schema.township.id.clone(),
                village: Some(village.clone()),
            };
            let at = base_ms + (vi * TEMPLATES_PER_VILLAGE + t) as i64 * 60_000;
            let mut record = Record::create(
                RecordId::new(),
                ActorId::random(),
                ENTITY,
                &scope,
                &edits(schema, &values)?,
                &cadre,
                at,
            )?;
            if (vi * TEMPLATES_PER_VILLAGE + t).is_multiple_of(CONFLICT_EVERY) {
                // Two cadres correct the same field apart; the merge keeps both values.
                let mut theirs = Record::load(record.id(), ActorId::random(), &[record.save()])?;
                let (field, a, b) = if t % 2 == 0 {
                    ("phone", json!("13908140001"), json!("15082345678"))
                } else {
                    ("household_size", json!(4), json!(5))
                };
                record.apply_edits(&edits(schema, &[(field, a)])?, &cadre, at + 3_600_000)?;
                theirs.apply_edits(&edits(schema, &[(field, b)])?, &other, at + 7_200_000)?;
                record.merge_bytes(&theirs.save())?;
            }
            out.push(Template {
                village: village.clone(),
                chunk: record.save(),
                heads: record.heads(),
                values_json: record.values_json(schema),
                conflicts_json: record.conflicts_json(schema),
                fields: record.values(schema).len(),
            });
        }
    }
    Ok(out)
}

/// What the loaded database holds, to check what the server answers.
#[derive(Default, Clone)]
struct Expect {
    loaded: usize,
    live: usize,
    live_conflicted: usize,
    live_by_village: BTreeMap<String, usize>,
    live_conflicted_by_village: BTreeMap<String, usize>,
    fields_per_record: f64,
}

/// Appends records `expect.loaded..upto` to the database through `HubStorage::commit`.
fn load(
    db: &Path,
    templates: &[Template],
    rng: &mut Rng,
    upto: usize,
    expect: &mut Expect,
) -> BenchResult<Duration> {
    let t0 = Instant::now();
    let storage = SqliteStorage::open(db)?;
    while expect.loaded < upto {
        let n = LOAD_BATCH.min(upto - expect.loaded);
        let mut docs = Vec::with_capacity(n);
        for _ in 0..n {
            expect.loaded += 1;
            let t = &templates[rng.below(templates.len())];
            let deleted = expect.loaded.is_multiple_of(DELETED_EVERY);
            if !deleted {
                expect.live += 1;
                expect.live_conflicted += usize::from(t.conflicted());
                *expect.live_by_village.entry(t.village.clone()).or_default() += 1;
                *expect
                    .live_conflicted_by_village
                    .entry(t.village.clone())
                    .or_default() += usize::from(t.conflicted());
            }
            docs.push(DocWrite {
                id: RecordId::new(),
                entity: ENTITY.to_owned(),
                village: Some(t.village.clone()),
                chunk: t.chunk.clone(),
                snapshot: true,
                heads: t.heads.clone(),
                values_json: t.values_json.clone(),
                conflicts_json: t.conflicts_json.clone(),
                deleted,
                typed: Vec::new(),
            });
        }
        storage.commit(&HubBatch {
            device: "bench-loader".into(),
            docs,
            ..HubBatch::default()
        })?;
    }
    drop(storage);
    Ok(t0.elapsed())
}

// ---------------------------------------------------------------------------------------
// Counting a streamed body
// ---------------------------------------------------------------------------------------

/// Counts a streamed body: bytes, newlines, the first line and the tail.
#[derive(Default)]
struct Counter {
    bytes: u64,
    lines: u64,
    first: Vec<u8>,
    first_done: bool,
    tail: Vec<u8>,
}

const TAIL: usize = 8192;

impl Counter {
    fn feed(&mut self, b: &[u8]) {
        self.bytes += b.len() as u64;
        self.lines += b.iter().filter(|&&c| c == b'\n').count() as u64;
        if !self.first_done {
            match b.iter().position(|&c| c == b'\n') {
                Some(p) => {
                    self.first.extend_from_slice(&b[..p]);
                    self.first_done = true;
                }
                None => self.first.extend_from_slice(b),
            }
        }
        if b.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&b[b.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(b);
            if self.tail.len() > 2 * TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
    }

    /// The last complete line.
    fn last_line(&self) -> &[u8] {
        let t = self.tail.strip_suffix(b"\n").unwrap_or(&self.tail);
        match t.iter().rposition(|&c| c == b'\n') {
            Some(p) => &t[p + 1..],
            None => t,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/// What one timed request (or series of requests) saw.
struct Run {
    records: u64,
    bytes: u64,
    requests: u64,
    wall: Duration,
    server_cpu: f64,
    client_cpu: f64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    hwm_kib: u64,
    hwm_reset: bool,
    samples: u64,
}

impl Run {
    fn rps(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }
    /// The larger of the sampled `VmRSS` peak and `VmHWM` (the kernel folds RSS counters
    /// into `VmHWM` in batches, so either can be the higher).
    fn peak_kib(&self) -> u64 {
        self.rss_peak_kib.max(self.hwm_kib)
    }
}

/// Repetitions of one measurement.
struct Figures {
    label: String,
    /// Sorted by wall time.
    runs: Vec<Run>,
}

impl Figures {
    fn best(&self) -> &Run {
        &self.runs[0]
    }
    fn median(&self) -> &Run {
        &self.runs[self.runs.len() / 2]
    }
    fn peak_kib(&self) -> u64 {
        self.runs.iter().map(Run::peak_kib).max().unwrap_or(0)
    }
    fn rss_before_kib(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.rss_before_kib)
            .min()
            .unwrap_or(0)
    }
    fn server_cpu(&self) -> f64 {
        let mut c: Vec<f64> = self.runs.iter().map(|r| r.server_cpu).collect();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    }
    /// Records served per second of server CPU (median CPU): what the server could do
    /// with a core to itself, whatever else runs on the machine.
    fn records_per_cpu_second(&self) -> f64 {
        self.best().records as f64 / self.server_cpu().max(0.01)
    }
}

/// Times `body` (which returns records, bytes, requests) while watching the server.
fn measure_once(
    server: &ServerProcess,
    body: &mut dyn FnMut() -> BenchResult<(u64, u64, u64)>,
) -> BenchResult<Run> {
    let pid = Pid::Of(server.pid());
    let hwm_reset = procfs::reset_hwm(pid);
    let rss_before_kib = procfs::status_field(pid, "VmRSS:")?;
    let sampler = RssSampler::start(pid, SAMPLE_EVERY);
    let cpu = || -> BenchResult<(f64, f64)> {
        Ok((procfs::cpu_secs(pid)?, procfs::cpu_secs(Pid::This)?))
    };
    let (cpu_s, cpu_c) = cpu()?;
    let t0 = Instant::now();
    let result = body();
    let wall = t0.elapsed();
    let (cpu_s2, cpu_c2) = cpu()?;
    let (rss_peak_kib, samples) = sampler.finish();
    let hwm_kib = procfs::status_field(pid, "VmHWM:")?;
    let (records, bytes, requests) = result?;
    Ok(Run {
        records,
        bytes,
        requests,
        wall,
        server_cpu: cpu_s2 - cpu_s,
        client_cpu: cpu_c2 - cpu_c,
        rss_before_kib,
        rss_peak_kib: rss_peak_kib.max(rss_before_kib),
        hwm_kib,
        hwm_reset,
        samples,
    })
}

/// Runs `body` `reps` times and prints each run.
fn measure(
    server: &ServerProcess,
    label: &str,
    reps: usize,
    mut body: impl FnMut() -> BenchResult<(u64, u64, u64)>,
) -> BenchResult<Figures> {
    let mut runs = Vec::with_capacity(reps);
    for rep in 1..=reps.max(1) {
        let r = measure_once(server, &mut body)?;
        let (rps, mbps) = (r.rps(), r.mbps());
        println!(
            "  {label} [{rep}/{reps}]: {} records, {:.1} MB, {} requests, in {:.3} s = {rps:.0} records/s, \
             {mbps:.1} MB/s; CPU server {:.2} s, client {:.2} s; server RSS {:.1} MiB before, \
             peak {:.1} MiB ({} samples), VmHWM {:.1} MiB{}",
            r.records,
            r.bytes as f64 / 1e6,
            r.requests,
            r.wall.as_secs_f64(),
            r.server_cpu,
            r.client_cpu,
            mib(r.rss_before_kib),
            mib(r.rss_peak_kib),
            r.samples,
            mib(r.hwm_kib),
            if r.hwm_reset {
                ""
            } else {
                " (not reset: lifetime peak)"
            },
        );
        runs.push(r);
    }
    runs.sort_by_key(|r| r.wall);
    Ok(Figures {
        label: label.to_owned(),
        runs,
    })
}

/// Streams a whole NDJSON or CSV body; checks the record count.
fn stream_count(
    addr: SocketAddr,
    path: &str,
    token: &str,
    header_lines: u64,
    expected: usize,
) -> BenchResult<(Counter, (u64, u64, u64))> {
    let mut conn = Conn::open(addr, HTTP_TIMEOUT)?;
    let mut c = Counter::default();
    conn.get(path, Some(token), &mut |b| c.feed(b))?;
    let records = c.lines.saturating_sub(header_lines);
    if records != expected as u64 {
        return Err(format!("GET {path}: {records} records, expected {expected}").into());
    }
    let bytes = c.bytes;
    Ok((c, (records, bytes, 1)))
}

/// Pages through `GET /v1/records?limit=1000&after=...` on one keep-alive connection.
fn json_pages(addr: SocketAddr, token: &str, expected: usize) -> BenchResult<(u64, u64, u64)> {
    let mut conn = Conn::open(addr, HTTP_TIMEOUT)?;
    let (mut records, mut bytes, mut requests) = (0u64, 0u64, 0u64);
    let mut after: Option<String> = None;
    let mut body = Vec::with_capacity(1 << 20);
    loop {
        let path = match &after {
            None => format!("/v1/records?limit={JSON_PAGE}"),
            Some(a) => format!("/v1/records?limit={JSON_PAGE}&after={a}"),
        };
        body.clear();
        conn.get(&path, Some(token), &mut |b| body.extend_from_slice(b))?;
        requests += 1;
        bytes += body.len() as u64;
        if requests == 1 {
            // Check the shape once, outside the hot loop's habits.
            let v: Json = serde_json::from_slice(&body)?;
            if !v["records"].is_array() {
                return Err("the JSON page has no `records` array".into());
            }
        }
        records += count_pattern(&body, b"{\"id\":\"") as u64;
        let tail_at = find_last(&body, b"\"next\":").ok_or("the JSON page has no `next`")?;
        let tail = &body[tail_at + 7..];
        if tail.starts_with(b"null") {
            break;
        }
        let id = tail
            .get(1..37)
            .ok_or("the JSON page's `next` is cut")?
            .to_vec();
        after = Some(String::from_utf8(id)?);
    }
    if records != expected as u64 {
        return Err(format!("JSON pages: {records} records, expected {expected}").into());
    }
    Ok((records, bytes, requests))
}

fn count_pattern(hay: &[u8], pat: &[u8]) -> usize {
    let Some(&first) = pat.first() else { return 0 };
    let mut n = 0;
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&b| b == first) {
        let at = i + p;
        if hay[at..].starts_with(pat) {
            n += 1;
        }
        i = at + 1;
    }
    n
}

fn find_last(hay: &[u8], pat: &[u8]) -> Option<usize> {
    hay.windows(pat.len()).rposition(|w| w == pat)
}

/// Checks that a line is a record object with only `allowed` value fields.
fn check_line(line: &[u8], allowed: &[String], what: &str) -> BenchResult<Json> {
    let v: Json = serde_json::from_slice(line).map_err(|e| {
        format!(
            "{what}: a line is not JSON ({e}): {}",
            String::from_utf8_lossy(line)
        )
    })?;
    let values = v["values"]
        .as_object()
        .ok_or_else(|| format!("{what}: a line has no `values` object"))?;
    if let Some(k) = values.keys().find(|k| !allowed.contains(k)) {
        return Err(format!("{what}: field `{k}` is not in the department's view").into());
    }
    if v["id"].as_str().is_none() || v["entity"] != ENTITY {
        return Err(format!("{what}: a line lacks id or entity").into());
    }
    Ok(v)
}

/// Untimed: parses every line of an NDJSON body and checks order, scope, fields, conflicts.
fn verify_ndjson(
    addr: SocketAddr,
    path: &str,
    token: &str,
    allowed: &[String],
    village: Option<&str>,
    expected: usize,
    expected_conflicted: usize,
) -> BenchResult<(String, (u64, u64, u64))> {
    let mut conn = Conn::open(addr, HTTP_TIMEOUT)?;
    let mut bytes = 0u64;
    let mut partial: Vec<u8> = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let (mut n, mut conflicted, mut field_total) = (0usize, 0usize, 0usize);
    let mut last_id = String::new();
    let mut problem: Option<String> = None;
    let mut check = |line: &[u8]| {
        if problem.is_some() {
            return;
        }
        match check_line(line, allowed, path) {
            Ok(v) => {
                n += 1;
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                if id <= last_id {
                    problem = Some(format!("{path}: ids not increasing at {id}"));
                }
                last_id = id;
                if v["deleted"] != false {
                    problem = Some(format!("{path}: a tombstone was served"));
                }
                if village.is_some_and(|vl| v["village"] != vl) {
                    problem = Some(format!("{path}: a record of another village"));
                }
                field_total += v["values"].as_object().map_or(0, |m| m.len());
                if v["conflicted"] == true {
                    conflicted += 1;
                    if v["conflicts"].as_object().is_none_or(|m| m.is_empty()) {
                        problem = Some(format!("{path}: conflicted without conflicts"));
                    }
                }
            }
            Err(e) => problem = Some(e.to_string()),
        }
    };
    conn.get(path, Some(token), &mut |b| {
        bytes += b.len() as u64;
        partial.extend_from_slice(b);
        while let Some(p) = partial.iter().position(|&c| c == b'\n') {
            lines.push(partial.drain(..=p).collect());
        }
        for l in lines.drain(..) {
            check(&l[..l.len() - 1]);
        }
    })?;
    if let Some(p) = problem {
        return Err(p.into());
    }
    if !partial.is_empty() {
        return Err(format!("{path}: the body does not end with a newline").into());
    }
    if n != expected || conflicted != expected_conflicted {
        return Err(format!(
            "{path}: {n} records ({conflicted} conflicted), expected {expected} ({expected_conflicted})"
        )
        .into());
    }
    let message = format!(
        "{path}: {n} lines parsed, ids strictly increasing, no tombstone, {conflicted} conflicted, \
         {:.1} visible fields per record, all within the department's {} fields",
        field_total as f64 / n.max(1) as f64,
        allowed.len()
    );
    Ok((message, (n as u64, bytes, 1)))
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

fn ndjson_run(
    server: &ServerProcess,
    label: &str,
    reps: usize,
    path: &str,
    token: &str,
    allowed: &[String],
    expected: usize,
) -> BenchResult<Figures> {
    let mut counter = None;
    let figures = measure(server, label, reps, || {
        let (c, figures) = stream_count(server.addr(), path, token, 0, expected)?;
        counter = Some(c);
        Ok(figures)
    })?;
    if let Some(c) = counter.filter(|_| expected > 0) {
        check_line(&c.first, allowed, path)?;
        check_line(c.last_line(), allowed, path)?;
    }
    Ok(figures)
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// Where the run's data lives.
struct Rig {
    tmp: tempfile::TempDir,
    data_dir: PathBuf,
    db: PathBuf,
    config: PathBuf,
}

impl Rig {
    fn new(settings: &Settings) -> BenchResult<Self> {
        let tmp = settings.env.tempdir("yibiao-pull-")?;
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let config = tmp.path().join("bench-config.toml");
        std::fs::write(&config, "rate_per_minute = 0\n")?;
        println!("  data dir {}", data_dir.display());
        Ok(Self {
            db: data_dir.join("yibiao.db"),
            data_dir,
            config,
            tmp,
        })
    }

    /// A fresh server process on the data.
    fn serve(&self) -> BenchResult<ServerProcess> {
        let options = ServerOptions {
            config: Some(self.config.clone()),
            ..ServerOptions::default()
        };
        ServerProcess::start(server_binary(), &self.data_dir, options)
    }

    fn department_token(&self, department: &str) -> BenchResult<String> {
        server::department_token(server_binary(), &self.data_dir, department, "pull bench")
    }

    /// Keeps the data when `YIBIAO_BENCH_KEEP=1`, saying how to serve it.
    fn finish(self) {
        if std::env::var("YIBIAO_BENCH_KEEP").is_ok_and(|v| v == "1") {
            let kept = self.tmp.keep();
            println!(
                "data kept in {} (serve it with: yibiao-server --config {} serve --data-dir {})",
                kept.display(),
                kept.join("bench-config.toml").display(),
                kept.join("data").display()
            );
        }
    }
}

fn print_header(settings: &Settings, schema: &Schema) {
    println!("yibiao department pull benchmark");
    println!(
        "  {} households over {} villages, seed {}, {} mode, {} repetitions, {} cores, \
         {} build, load average {}",
        settings.records,
        schema.villages.len(),
        settings.env.seed,
        if settings.env.quick { "QUICK" } else { "full" },
        settings.reps,
        cpus(),
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless)"
        } else {
            "optimised"
        },
        loadavg()
    );
}

/// The real documents, described.
fn templates(schema: &Schema, rng: &mut Rng) -> BenchResult<(Vec<Template>, f64)> {
    let t0 = Instant::now();
    let templates = make_templates(schema, rng)?;
    let tn = templates.len().max(1) as f64;
    let avg_fields = templates.iter().map(|t| t.fields).sum::<usize>() as f64 / tn;
    let avg_values = templates.iter().map(|t| t.values_json.len()).sum::<usize>() as f64 / tn;
    let avg_chunk = templates.iter().map(|t| t.chunk.len()).sum::<usize>() as f64 / tn;
    let conflicted_templates = templates.iter().filter(|t| t.conflicted()).count();
    println!(
        "  {} real documents made with Record::create in {:.2} s: {avg_fields:.1} fields, \
         values_json {avg_values:.0} B, automerge snapshot {avg_chunk:.0} B on average; \
         {conflicted_templates} with a conflict",
        templates.len(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "  NOTE: records reuse those documents' bytes and summaries under fresh RecordIds, so \
         stored chunks do not match their ids (fine for this read benchmark: the department \
         path reads only the summaries); 1 in {DELETED_EVERY} records is a tombstone"
    );
    if let Some(t) = templates.iter().find(|t| t.conflicted()) {
        println!("  sample values_json:    {}", t.values_json);
        println!("  sample conflicts_json: {}", t.conflicts_json);
    }
    Ok((templates, avg_fields))
}

/// The two departments the runs pull as: tokens and visible household fields.
struct Departments {
    all_token: String,
    all_fields: Vec<String>,
    one_token: String,
    one_fields: Vec<String>,
}

impl Departments {
    fn issue(schema: &Schema, rig: &Rig) -> BenchResult<Self> {
        let fields = |d: &str| -> BenchResult<Vec<String>> {
            Ok(schema
                .departments
                .get(d)
                .ok_or_else(|| format!("no {d} department"))?
                .fields_of("household")
                .to_vec())
        };
        Ok(Self {
            all_fields: fields(DEPT_ALL)?,
            one_fields: fields(DEPT_ONE)?,
            all_token: rig.department_token(DEPT_ALL)?,
            one_token: rig.department_token(DEPT_ONE)?,
        })
    }
}

/// Fills the database up to `upto` records and says so.
fn load_step(
    rig: &Rig,
    templates: &[Template],
    rng: &mut Rng,
    percent: usize,
    upto: usize,
    expect: &mut Expect,
) -> BenchResult<()> {
    let before = expect.loaded;
    let took = load(&rig.db, templates, rng, upto, expect)?;
    let db_mb = std::fs::metadata(&rig.db).map_or(0, |m| m.len()) as f64 / 1e6;
    println!(
        "\n[{percent}% = {upto} records] loaded {} through HubStorage::commit in {:.2} s \
         ({:.0}/s), database {db_mb:.1} MB; load average {}",
        upto - before,
        took.as_secs_f64(),
        (upto - before) as f64 / took.as_secs_f64().max(1e-9),
        loadavg()
    );
    Ok(())
}

/// Everything measured at 100%, and the slow clients' verification messages.
#[derive(Default)]
struct FullSize {
    finals: Vec<Figures>,
    verified: Vec<String>,
}

/// At 100%: NDJSON warm, of one village, for the one-village department, CSV, JSON pages,
/// then the slow clients that check every line.
fn full_size_runs(
    server: &ServerProcess,
    settings: &Settings,
    depts: &Departments,
    expect: &Expect,
) -> BenchResult<FullSize> {
    let reps = settings.reps;
    let mut out = FullSize::default();
    let all = |label: String, path: &str, expected| {
        ndjson_run(
            server,
            &label,
            reps,
            path,
            &depts.all_token,
            &depts.all_fields,
            expected,
        )
    };
    out.finals.push(all(
        format!("NDJSON {DEPT_ALL}, warm"),
        "/v1/records.ndjson",
        expect.live,
    )?);
    let in_village = expect
        .live_by_village
        .get(ONE_VILLAGE)
        .copied()
        .unwrap_or(0);
    out.finals.push(all(
        format!("NDJSON {DEPT_ALL} ?village={ONE_VILLAGE}"),
        &format!("/v1/records.ndjson?village={ONE_VILLAGE}"),
        in_village,
    )?);
    out.finals.push(ndjson_run(
        server,
        &format!(
            "NDJSON {DEPT_ONE} (1 village, {} fields)",
            depts.one_fields.len()
        ),
        reps,
        "/v1/records.ndjson",
        &depts.one_token,
        &depts.one_fields,
        in_village,
    )?);
    out.finals.push(csv_run(server, reps, depts, expect)?);
    out.finals.push(measure(
        server,
        &format!("JSON pages {DEPT_ALL} (limit {JSON_PAGE}, keep-alive)"),
        reps,
        || json_pages(server.addr(), &depts.all_token, expect.live),
    )?);
    slow_clients(server, depts, expect, in_village, &mut out)?;
    Ok(out)
}

fn csv_run(
    server: &ServerProcess,
    reps: usize,
    depts: &Departments,
    expect: &Expect,
) -> BenchResult<Figures> {
    let mut csv_head = Vec::new();
    let figures = measure(server, &format!("CSV {DEPT_ALL}"), reps, || {
        let (c, figures) = stream_count(
            server.addr(),
            "/v1/records.csv",
            &depts.all_token,
            1,
            expect.live,
        )?;
        csv_head = c.first;
        Ok(figures)
    })?;
    if !csv_head.starts_with(b"\xEF\xBB\xBF") {
        return Err("the CSV does not start with a UTF-8 BOM".into());
    }
    Ok(figures)
}

/// Clients that parse every line: timed once for the whole township, untimed for one
/// village.
fn slow_clients(
    server: &ServerProcess,
    depts: &Departments,
    expect: &Expect,
    in_village: usize,
    out: &mut FullSize,
) -> BenchResult<()> {
    let mut message = String::new();
    out.finals.push(measure(
        server,
        &format!("NDJSON {DEPT_ALL}, slow client (parses each line)"),
        1,
        || {
            let (m, figures) = verify_ndjson(
                server.addr(),
                "/v1/records.ndjson",
                &depts.all_token,
                &depts.all_fields,
                None,
                expect.live,
                expect.live_conflicted,
            )?;
            message = m;
            Ok(figures)
        },
    )?);
    out.verified.push(message);
    let conflicted_in_village = expect
        .live_conflicted_by_village
        .get(ONE_VILLAGE)
        .copied()
        .unwrap_or(0);
    out.verified.push(
        verify_ndjson(
            server.addr(),
            "/v1/records.ndjson",
            &depts.one_token,
            &depts.one_fields,
            Some(ONE_VILLAGE),
            in_village,
            conflicted_in_village,
        )?
        .0,
    );
    Ok(())
}

fn run() -> BenchResult<()> {
    let settings = Settings::from_env()?;
    let n = settings.records;
    let schema = Schema::baru_example();
    print_header(&settings, &schema);
    let rig = Rig::new(&settings)?;
    let mut rng = Rng::new(settings.env.seed);
    let (templates, avg_fields) = templates(&schema, &mut rng)?;

    // Steps: 10%, 50%, 100% of N, a fresh server process after each.
    let mut expect = Expect {
        fields_per_record: avg_fields,
        ..Expect::default()
    };
    let mut depts: Option<Departments> = None;
    let mut steps: Vec<(usize, Figures)> = Vec::new();
    let mut full = FullSize::default();
    for percent in [10usize, 50, 100] {
        let upto = (n * percent / 100).max(1);
        load_step(&rig, &templates, &mut rng, percent, upto, &mut expect)?;
        if depts.is_none() {
            depts = Some(Departments::issue(&schema, &rig)?);
        }
        let depts = depts.as_ref().ok_or("no department tokens")?;
        let server = rig.serve()?;
        let started_rss = procfs::status_field(Pid::Of(server.pid()), "VmRSS:")?;
        println!(
            "  server pid {} on {} (RSS {:.1} MiB after start)",
            server.pid(),
            server.addr(),
            mib(started_rss)
        );
        steps.push((
            upto,
            ndjson_run(
                &server,
                &format!("NDJSON {DEPT_ALL}, fresh server, {upto} in db"),
                1,
                "/v1/records.ndjson",
                &depts.all_token,
                &depts.all_fields,
                expect.live,
            )?,
        ));
        if percent < 100 {
            continue;
        }
        full = full_size_runs(&server, &settings, depts, &expect)?;
        println!(
            "  server after the runs: VmRSS {:.1} MiB; load average {}",
            mib(procfs::status_field(Pid::Of(server.pid()), "VmRSS:")?),
            loadavg()
        );
    }

    report(&settings, &expect, &steps, &full);
    rig.finish();
    Ok(())
}

fn report(settings: &Settings, expect: &Expect, steps: &[(usize, Figures)], full: &FullSize) {
    println!("\nverification (untimed):");
    for v in &full.verified {
        println!("  {v}");
    }
    print_table(expect, steps, &full.finals);
    print_note(settings, expect, steps, &full.finals);
}

fn print_table(expect: &Expect, steps: &[(usize, Figures)], finals: &[Figures]) {
    println!(
        "\nsummary ({} households loaded, {} live; best and median of the repetitions):",
        expect.loaded, expect.live
    );
    println!(
        "| {:<54} | {:>7} | {:>5} | {:>4} | {:>6} | {:>6} | {:>9} | {:>9} | {:>8} | {:>7} | {:>9} | {:>8} | {:>8} |",
        "run",
        "records",
        "MB",
        "reps",
        "best s",
        "med s",
        "rec/s best",
        "rec/s med",
        "MB/s best",
        "srv CPU",
        "rec/CPU-s",
        "RSS pre",
        "peak mem"
    );
    println!("|{}|", ["---"; 13].join("|"));
    let all: Vec<&Figures> = steps.iter().map(|(_, f)| f).chain(finals).collect();
    for f in &all {
        let (b, m) = (f.best(), f.median());
        println!(
            "| {:<54} | {:>7} | {:>5.1} | {:>4} | {:>6.3} | {:>6.3} | {:>10.0} | {:>9.0} | {:>9.1} | {:>6.2}s | {:>9.0} | {:>4.1} MiB | {:>4.1} MiB |",
            f.label,
            b.records,
            b.bytes as f64 / 1e6,
            f.runs.len(),
            b.wall.as_secs_f64(),
            m.wall.as_secs_f64(),
            b.rps(),
            m.rps(),
            b.mbps(),
            f.server_cpu(),
            f.records_per_cpu_second(),
            mib(f.rss_before_kib()),
            mib(f.peak_kib())
        );
    }
    let samples: u64 = all
        .iter()
        .flat_map(|f| f.runs.iter().map(|r| r.samples))
        .sum();
    let all_reset = all.iter().all(|f| f.runs.iter().all(|r| r.hwm_reset));
    println!(
        "srv CPU: median user+system CPU of the server process per run (10 ms ticks, coarse for short runs); rec/CPU-s: records per \
         second of server CPU (independent of other load on the machine). peak mem: the larger \
         of VmRSS sampled every {} ms ({samples} samples in all) and VmHWM {}.",
        SAMPLE_EVERY.as_millis(),
        if all_reset {
            "(reset through /proc/PID/clear_refs before each run)"
        } else {
            "(could NOT be reset: lifetime peak)"
        }
    );
}

fn print_note(
    settings: &Settings,
    expect: &Expect,
    steps: &[(usize, Figures)],
    finals: &[Figures],
) {
    println!("\n--- note (paste) ---");
    println!(
        "Department pull bench (`{}cargo bench -p yibiao-tests --bench pull`): {} households \
         ({:.1} fields each, Chinese text, 1 in {CONFLICT_EVERY} conflicted) over 6 villages; \
         real server process on loopback, plain HTTP/1.1 client, {} cores, load average {} at \
         the end; best (median) of {} runs:",
        if settings.env.quick {
            "YIBIAO_BENCH_QUICK=1 "
        } else {
            ""
        },
        expect.loaded,
        expect.fields_per_record,
        cpus(),
        loadavg(),
        settings.reps
    );
    for f in finals {
        let (b, m) = (f.best(), f.median());
        println!(
            "- {}: {} records, {:.1} MB in {:.2} s ({:.2}) = {:.0} ({:.0}) records/s, {:.1} MB/s; \
             server CPU {:.2} s = {:.0} records per CPU-second; server memory {:.1} MiB before, \
             peak {:.1} MiB",
            f.label,
            b.records,
            b.bytes as f64 / 1e6,
            b.wall.as_secs_f64(),
            m.wall.as_secs_f64(),
            b.rps(),
            m.rps(),
            b.mbps(),
            f.server_cpu(),
            f.records_per_cpu_second(),
            mib(f.rss_before_kib()),
            mib(f.peak_kib())
        );
    }
    print_memory_curve(steps);
    if let Some(w) = finals.first() {
        println!(
            "- target >= {TARGET_RPS:.0} records/s for NDJSON: {} (best {:.0}, median {:.0} \
             records/s; {:.0} records per server CPU-second)",
            if w.best().rps() >= TARGET_RPS {
                "met"
            } else {
                "NOT met"
            },
            w.best().rps(),
            w.median().rps(),
            w.records_per_cpu_second()
        );
    }
    println!(
        "- data: {} real Record::create documents reused under fresh RecordIds (chunk bytes do \
         not match ids; the read path never loads chunks); 1 in {DELETED_EVERY} records a \
         tombstone; server run with rate_per_minute = 0 so the 100-page JSON run is not \
         throttled",
        TEMPLATES_PER_VILLAGE * 6
    );
    println!("--- end note ---");
}

/// The server's peak memory while streaming everything, at each size.
fn print_memory_curve(steps: &[(usize, Figures)]) {
    let curve: Vec<String> = steps
        .iter()
        .map(|(upto, f)| format!("{upto} in db: {:.1} MiB", mib(f.peak_kib())))
        .collect();
    println!(
        "- server peak memory while streaming all of NDJSON {DEPT_ALL} (fresh process each): {}",
        curve.join(", ")
    );
    if let (Some((_, small)), Some((_, big))) = (steps.first(), steps.last()) {
        let growth = mib(big.peak_kib()) - mib(small.peak_kib());
        println!(
            "  => {growth:+.1} MiB from {} to {} records streamed: {}",
            small.best().records,
            big.best().records,
            if growth.abs() < 8.0 {
                "flat (bounded by the stream's 2000-record pages, not by the record count)"
            } else {
                "NOT flat"
            }
        );
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pull bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
