//! Sync benchmark: prints figures for phones syncing with a real `yibiao-server` process
//! over HTTP on loopback. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-server --bench sync`
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
//! (`CARGO_BIN_EXE_yibiao-server`) with a config file that turns the per-token rate limit
//! off (`rate_per_minute = 0`); a drop guard kills it at the end, on error or panic.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::Store;
use yibiao_store::http::HttpTransport;
use yibiao_store::sync;
use yibiao_sync::protocol::{PullDoc, PushDoc, SyncRequest, SyncResponse, WireId, heads_to_wire};
use yibiao_sync::session::{SyncOptions, SyncReport, Transport, TransportError};

type BenchResult<T> = Result<T, Box<dyn StdError + Send + Sync>>;

const ENTITY: &str = "household";
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
    quick: bool,
    devices: usize,
    threads: usize,
    idle: Duration,
    seed: u64,
    dir: Option<PathBuf>,
}

fn env_parse<T: std::str::FromStr>(name: &str) -> BenchResult<Option<T>> {
    match std::env::var(name) {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={s} does not parse").into()),
        _ => Ok(None),
    }
}

impl Settings {
    fn from_env() -> BenchResult<Self> {
        let quick = std::env::var("YIBIAO_BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
        let devices = env_parse("YIBIAO_BENCH_DEVICES")?.unwrap_or(if quick { 12 } else { 200 });
        let threads = env_parse("YIBIAO_BENCH_THREADS")?.unwrap_or(if quick { 6 } else { 32 });
        let idle: f64 =
            env_parse("YIBIAO_BENCH_IDLE_SECS")?.unwrap_or(if quick { 1.0 } else { 5.0 });
        Ok(Self {
            quick,
            devices: devices.max(1),
            threads: threads.max(1),
            idle: Duration::from_secs_f64(idle.max(0.1)),
            seed: env_parse("YIBIAO_BENCH_SEED")?.unwrap_or(20_260_214),
            dir: std::env::var_os("YIBIAO_BENCH_DIR").map(PathBuf::from),
        })
    }

    fn tempdir(&self, prefix: &str) -> BenchResult<tempfile::TempDir> {
        let mut b = tempfile::Builder::new();
        b.prefix(prefix);
        Ok(match &self.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// A running `yibiao-server serve`; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
}

fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_yibiao-server")
}

impl Server {
    fn start(data_dir: &Path) -> BenchResult<Self> {
        // The per-token rate limit is off: the phases measure the sync path, and the
        // no-change phase syncs each phone far more often than the default allows.
        std::fs::create_dir_all(data_dir)?;
        let config = data_dir.join("bench-server.toml");
        std::fs::write(&config, "rate_per_minute = 0\n")?;
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not piped".into());
        };
        // From here on the guard owns the child: an early return kills it.
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
        };
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("listening on http://") {
                        server.addr = rest.trim().parse()?;
                        break;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err("the server exited before it listened".into()),
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(server)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Registers a phone through the server's own CLI; returns its token.
    fn add_device(&self, name: &str, village: &str) -> BenchResult<String> {
        let out = Command::new(server_binary())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["device", "add", "--name", name, "--village", village])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "device add failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
            .ok_or_else(|| "`device add` printed no token".into())
    }

    /// Registers phones in parallel (each `device add` is its own process).
    fn add_devices(&self, specs: &[(String, String)]) -> BenchResult<Vec<String>> {
        let tokens = run_pool(specs.len(), 8, |i| {
            self.add_device(&specs[i].0, &specs[i].1)
        });
        tokens.into_iter().collect()
    }

    /// `records` of `GET /healthz`, over a raw socket.
    fn healthz_records(&self) -> BenchResult<u64> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .ok_or("healthz answered no body")?;
        let start = body.find('{').ok_or("healthz body is not JSON")?;
        let end = body.rfind('}').ok_or("healthz body is not JSON")?;
        let v: Json = serde_json::from_str(&body[start..=end])?;
        v["records"]
            .as_u64()
            .ok_or_else(|| format!("healthz has no record count: {v}").into())
    }

    /// `VmHWM` and `VmRSS` of the server process, in KiB.
    fn memory(&self) -> BenchResult<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> BenchResult<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/<pid>/status").into())
        };
        Ok(Mem {
            hwm_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
        })
    }
}

/// User + system CPU time of process `pid` ("self" for this one), from `/proc/<pid>/stat`
/// (clock ticks of 10 ms, the Linux default).
fn cpu_secs(pid: &str) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let tick = |i: usize| -> BenchResult<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<f64>()?
            / 100.0)
    };
    Ok(tick(14)? + tick(15)?)
}

/// CPU seconds spent by the server and by this process (the phones) over a phase.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    phones: f64,
}

impl Server {
    fn cpu(&self) -> BenchResult<Cpu> {
        Ok(Cpu {
            server: cpu_secs(&self.pid().to_string())?,
            phones: cpu_secs("self")?,
        })
    }
}

impl Cpu {
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
struct Mem {
    hwm_kib: u64,
    rss_kib: u64,
    threads: u64,
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

/// SplitMix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn weighted(&mut self, items: &[(&'static str, u32)]) -> &'static str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut roll = (self.next_u64() % u64::from(total)) as u32;
        for (key, w) in items {
            if roll < *w {
                return key;
            }
            roll -= w;
        }
        items[items.len() - 1].0
    }
}

// Liangshan is mostly Yi; Yi names are written in Chinese characters as clan name + name.
const YI_SURNAMES: &[&str] = &[
    "吉克", "阿苏", "沙马", "曲比", "马海", "海来", "俄木", "阿尔", "吉伍", "加拉", "阿木", "勒格",
    "瓦其", "日火", "吉吉", "苏呷",
];
const YI_GIVEN: &[&str] = &[
    "拉哈", "木呷", "石者", "阿依", "尔古", "日哈", "伍各", "阿果", "拉则", "子拉", "莫色", "史体",
    "阿支", "木乃", "有格", "以作",
];
const HAN_SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "罗", "何", "蒋", "邓",
];
const HAN_GIVEN: &[&str] = &[
    "建国", "秀英", "志强", "桂兰", "明", "华", "德芳", "永福", "玉珍", "春梅", "光荣", "国平",
    "小军", "红",
];
const REGION_CODES: &[&str] = &["513401", "513424", "513425", "513431", "513432", "513433"];
const MOBILE_PREFIXES: &[&str] = &[
    "130", "133", "135", "138", "139", "150", "152", "158", "180", "183", "187", "199",
];
const INCOME_SOURCES: &[&str] = &["farming", "livestock", "wages", "business", "transfers"];

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

fn chinese_name(rng: &mut Rng, ethnicity: &str) -> String {
    if ethnicity == "yi" {
        format!("{}{}", rng.pick(YI_SURNAMES), rng.pick(YI_GIVEN))
    } else {
        format!("{}{}", rng.pick(HAN_SURNAMES), rng.pick(HAN_GIVEN))
    }
}

/// An 18-character resident ID number with its GB 11643 check character.
fn id_number(rng: &mut Rng) -> String {
    let body = format!(
        "{}{:04}{:02}{:02}{:03}",
        rng.pick(REGION_CODES),
        rng.range(1940, 2002),
        rng.range(1, 12),
        rng.range(1, 28),
        rng.range(1, 999)
    );
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

fn phone(rng: &mut Rng) -> String {
    format!(
        "{}{:08}",
        rng.pick(MOBILE_PREFIXES),
        rng.range(0, 99_999_999)
    )
}

fn income(rng: &mut Rng) -> Json {
    // 3,000.00 .. 150,000.00 yuan, to the fen.
    let fen = rng.range(300_000, 15_000_000);
    json!(format!("{}.{:02}", fen / 100, fen % 100))
}

fn date(rng: &mut Rng) -> Json {
    json!(format!(
        "{}-{:02}-{:02}",
        rng.range(2025, 2026),
        rng.range(1, 12),
        rng.range(1, 28)
    ))
}

fn sources(rng: &mut Rng) -> Json {
    let mut s: Vec<&str> = INCOME_SOURCES
        .iter()
        .copied()
        .filter(|_| rng.chance(40))
        .collect();
    if s.is_empty() {
        s.push("farming");
    }
    json!(s)
}

/// A value of `field` as a cadre types it (JSON, as a form sends it).
fn typed_value(rng: &mut Rng, field: &str, village_zh: &str, group: i64) -> BenchResult<Json> {
    Ok(match field {
        "household_head" => {
            let eth = rng.weighted(&[("yi", 70), ("han", 30)]);
            json!(chinese_name(rng, eth))
        }
        "id_number" => json!(id_number(rng)),
        "phone" => json!(phone(rng)),
        "address" => json!(format!(
            "四川省凉山州西昌市巴汝镇{village_zh}{group}组{}号",
            rng.range(1, 80)
        )),
        "village_group" => json!(group),
        "ethnicity" => {
            json!(rng.weighted(&[("yi", 70), ("han", 25), ("tibetan", 3), ("other", 2)]))
        }
        "household_size" => json!(rng.range(1, 8)),
        "labour_count" => json!(rng.range(0, 4)),
        "annual_income" => income(rng),
        "income_sources" => sources(rng),
        "dibao_status" => json!(rng.weighted(&[
            ("none", 70),
            ("enrolled", 18),
            ("special", 4),
            ("suspended", 8)
        ])),
        "housing_type" => {
            json!(rng.weighted(&[("brick", 55), ("earth", 25), ("wood", 15), ("other", 5)]))
        }
        "housing_safe" => json!(rng.chance(85)),
        "drinking_water" => {
            json!(rng.weighted(&[("piped", 60), ("well", 15), ("spring", 20), ("unsafe", 5)]))
        }
        "visit_date" => date(rng),
        other => return Err(format!("no generator for field {other}").into()),
    })
}

/// One household: field values in the schema's typed form.
type Fields = Vec<(&'static str, Value)>;

/// A cadre's day: 20 new households, then 100 single-field edits of them.
struct Day {
    village: String,
    records: Vec<Fields>,
    /// (record index, field, new value)
    edits: Vec<(usize, &'static str, Value)>,
}

fn parse(schema: &Schema, field: &str, v: &Json) -> BenchResult<Value> {
    schema
        .parse_json(ENTITY, field, v)
        .map_err(|e| format!("generated value {v} of {field} is refused: {e}").into())
}

impl Day {
    fn generate(schema: &Schema, village: &str, seed: u64) -> BenchResult<Self> {
        let village_zh = schema
            .villages
            .get(village)
            .map(|l| l.zh.clone())
            .ok_or("unknown village")?;
        let mut rng = Rng(seed);
        let mut records = Vec::with_capacity(RECORDS_PER_DAY);
        let mut groups = Vec::with_capacity(RECORDS_PER_DAY);
        for _ in 0..RECORDS_PER_DAY {
            let group = rng.range(1, 12);
            let mut fields = Vec::with_capacity(DAY_FIELDS.len());
            for f in DAY_FIELDS {
                let v = typed_value(&mut rng, f, &village_zh, group)?;
                fields.push((f, parse(schema, f, &v)?));
            }
            records.push(fields);
            groups.push(group);
        }
        let mut current = records.clone();
        let mut edits = Vec::with_capacity(EDITS_PER_DAY);
        while edits.len() < EDITS_PER_DAY {
            let r = rng.below(RECORDS_PER_DAY);
            let field = *rng.pick(EDIT_FIELDS);
            let v = parse(
                schema,
                field,
                &typed_value(&mut rng, field, &village_zh, groups[r])?,
            )?;
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

/// Runs `f(0..n)` on `threads` threads; results in index order.
fn run_pool<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(n).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    out.lock().expect("result slots")[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .expect("result slots")
        .into_iter()
        .map(|r| r.expect("every index ran"))
        .collect()
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn zstd_len(bytes: &[u8], level: i32) -> BenchResult<usize> {
    Ok(zstd::bulk::compress(bytes, level)?.len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(ours: u64, base: u64) -> String {
    if base == 0 {
        "-".into()
    } else {
        format!("{:.2}x", ours as f64 / base as f64)
    }
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

struct Summary {
    rows: Vec<(String, String)>,
}

impl Summary {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.rows.push((what.into(), value.into()));
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

fn cadre_day(
    settings: &Settings,
    schema: &Arc<Schema>,
    summary: &mut Summary,
    notes: &mut Vec<String>,
) -> BenchResult<()> {
    println!(
        "== 1. A cadre's day: {RECORDS_PER_DAY} new households x 15 fields, then {EDITS_PER_DAY} single-field edits =="
    );
    let dir = settings.tempdir("yibiao-bench-day-")?;
    let server = Server::start(&dir.path().join("server"))?;
    let (relay, count) = start_relay(server.addr)?;
    let relay_url = format!("http://{relay}");
    let phones_dir = dir.path().join("phones");
    std::fs::create_dir_all(&phones_dir)?;
    // A: syncs after the creates and after the edits. C: another village, the same day
    // synced once at the end. D: a colleague in A's village who pulls A's day.
    let tokens = server.add_devices(&[
        ("cadre-a".into(), "tujiang".into()),
        ("cadre-c".into(), "baru".into()),
        ("cadre-d".into(), "tujiang".into()),
    ])?;
    let a = Phone::open(schema, &phones_dir, "a", "tujiang", &relay_url, &tokens[0])?;
    let c = Phone::open(schema, &phones_dir, "c", "baru", &relay_url, &tokens[1])?;
    let d = Phone::open(schema, &phones_dir, "d", "tujiang", &relay_url, &tokens[2])?;

    let day = Day::generate(schema, "tujiang", settings.seed)?;
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
    let (final3, final19) = (zstd_len(&final_bytes, 3)?, zstd_len(&final_bytes, 19)?);

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
    for m in [&m_a, &m_b, &m_c, &m_d] {
        let p = &m.report.progress;
        let has_base = m.base3 > 0;
        println!(
            "{:<30} {:>8} {:>8} {:>5} {:>5} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}",
            m.label,
            p.bytes_up,
            p.bytes_down,
            p.requests,
            p.pages,
            m.wire.up,
            m.wire.down,
            if has_base {
                m.base3.to_string()
            } else {
                "-".into()
            },
            if has_base {
                m.base19.to_string()
            } else {
                "-".into()
            },
            if has_base {
                ratio(p.bytes_up, m.base3 as u64)
            } else {
                "-".into()
            },
            if has_base {
                ratio(p.bytes_up, m.base19 as u64)
            } else {
                "-".into()
            },
            if p.requests == 1 { "yes" } else { "no" },
        );
    }
    println!(
        "up/down: sync bodies as counted by the client; wire: whole HTTP exchanges incl. headers (counting relay); \
         zstd-N: the same values as JSON compressed at level N (ratios: body up / baseline)"
    );
    println!(
        "(c) baseline = records + edits as JSON; the final state alone (20 records after the edits) is {final3} B at zstd-3, {final19} B at zstd-19 \
         -> (c) up / final-state zstd-19 = {}",
        ratio(m_c.report.progress.bytes_up, final19 as u64)
    );
    println!(
        "(d) the colleague's phone now holds {pulled} records; the same 20 documents as one response: {d_page} B as the \
         server sends them, {d_plain} B saved without automerge's column DEFLATE (computed)"
    );
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
    for m in [&m_a, &m_b, &m_c] {
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
    println!();
    println!(
        "weak-link estimate (computed, not measured: (requests + new connections) x RTT + wire bytes / bandwidth; no cuts):"
    );
    print!("{:<30}", "sync");
    for p in PROFILES {
        print!(" {:>12}", p.0);
    }
    println!();
    for m in [&m_a, &m_b, &m_c, &m_d] {
        print!("{:<30}", m.label);
        for p in PROFILES {
            let s = estimate_secs(p, u64::from(m.report.progress.requests), m.wire);
            print!(" {s:>10.1} s");
        }
        println!();
    }
    println!();

    for m in [&m_a, &m_b, &m_c, &m_d] {
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
        summary.row(
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
    let within = |m: &Measured| m.report.progress.bytes_up as f64 <= 1.3 * m.base19 as f64;
    notes.push(format!(
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
        ratio(m_c.report.progress.bytes_up, final19 as u64),
        final19,
        if within(&m_a) { "met" } else { "missed" },
        if within(&m_b) { "met" } else { "missed" },
        if within(&m_c) { "met" } else { "missed" },
    ));
    drop(server);
    Ok(())
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

fn fleet(
    settings: &Settings,
    schema: &Arc<Schema>,
    summary: &mut Summary,
    notes: &mut Vec<String>,
) -> BenchResult<()> {
    let n = settings.devices;
    let villages: Vec<String> = schema.villages.keys().cloned().collect();
    println!(
        "== 2. {n} phones' days over {} villages; {} client threads; {} CPU(s) shared by server and clients ==",
        villages.len(),
        settings.threads,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    let dir = settings.tempdir("yibiao-bench-fleet-")?;
    let server = Server::start(&dir.path().join("server"))?;
    let url = server.url();
    let mem_start = server.memory()?;

    let t = Instant::now();
    let specs: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("phone-{i:04}"),
                villages[i % villages.len()].clone(),
            )
        })
        .collect();
    let tokens = server.add_devices(&specs)?;
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
        let day = Day::generate(schema, village, settings.seed.wrapping_add(1 + i as u64))?;
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

    // Round 1: everyone syncs at once.
    let expected = (n * RECORDS_PER_DAY) as u64;
    let cpu0 = server.cpu()?;
    let t = Instant::now();
    // A watcher polls GET /healthz while the phones sync, to see when the server first
    // holds every record (pushes come first in each phone's sync, pulls after).
    let held_at: Mutex<Option<Duration>> = Mutex::new(None);
    let done = std::sync::atomic::AtomicBool::new(false);
    let r1 = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if server.healthz_records().is_ok_and(|h| h >= expected) {
                    *held_at.lock().expect("watcher slot") = Some(t.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let r = round(&phones, settings.threads);
        done.store(true, Ordering::SeqCst);
        r
    });
    let all_complete = r1.wall;
    let mut held = server.healthz_records()?;
    while held < expected && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
        held = server.healthz_records()?;
    }
    let until_held = held_at
        .into_inner()
        .expect("watcher slot")
        .unwrap_or_else(|| t.elapsed());
    let cpu1 = server.cpu()?;
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

    // Round 2: every phone pulls until it holds its village.
    let r2 = round(&phones, settings.threads);
    let cpu2 = server.cpu()?;
    print_round("round 2 (pull until complete)", &r2, n);
    println!("  {}", cpu2.since(cpu1).describe(r2.wall));
    let mut per_village: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &phones {
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
    // What one pull page weighs, and would weigh with documents saved without
    // automerge's column DEFLATE (zstd then sees across the documents of the page).
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
    let mem_fleet = server.memory()?;

    // Phase 3: syncs with nothing to send.
    println!();
    println!(
        "== 3. No-change syncs: {} threads cycling over {n} phones for {:.0} s ==",
        settings.threads.min(n),
        settings.idle.as_secs_f64()
    );
    let threads = settings.threads.min(n);
    let stop_at = Instant::now() + settings.idle;
    let t = Instant::now();
    type IdleOut = (Vec<Duration>, Vec<Duration>, Totals, Vec<String>);
    let outs: Vec<IdleOut> = run_pool(threads, threads, |k| {
        let mut lat = Vec::new();
        let mut exch = Vec::new();
        let mut totals = Totals::default();
        let mut odd = Vec::new();
        let mut i = k;
        while Instant::now() < stop_at {
            let phone = &phones[i];
            match phone.sync() {
                Ok((report, d)) => {
                    lat.push(d);
                    exch.push(phone.transport.last());
                    let p = &report.progress;
                    if p.requests != 1 || p.pushed != 0 || p.pulled != 0 || !report.complete {
                        odd.push(format!("phone {i}: {p:?}"));
                    }
                    totals.add(&report);
                }
                Err(e) => odd.push(format!("phone {i}: {e}")),
            }
            i += threads;
            if i >= n {
                i = k;
            }
        }
        (lat, exch, totals, odd)
    });
    let wall = t.elapsed();
    let cpu3 = server.cpu()?;
    let mut lat = Vec::new();
    let mut exch = Vec::new();
    let mut totals = Totals::default();
    let mut odd = Vec::new();
    for (l, e, t, o) in outs {
        lat.extend(l);
        exch.extend(e);
        totals.merge(&t);
        odd.extend(o);
    }
    lat.sort();
    exch.sort();
    let rate = lat.len() as f64 / wall.as_secs_f64();
    let runs = totals.runs.max(1);
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
        "  HTTP exchange alone: median {}, p90 {}, p99 {}; per no-change sync: {:.0} B up, {:.0} B down (bodies), {:.2} requests",
        ms(percentile(&exch, 0.5)),
        ms(percentile(&exch, 0.9)),
        ms(percentile(&exch, 0.99)),
        totals.bytes_up as f64 / runs as f64,
        totals.bytes_down as f64 / runs as f64,
        totals.requests as f64 / runs as f64
    );
    println!(
        "  {}; server CPU per no-change sync {:.0} us",
        cpu3.since(cpu2).describe(wall),
        1e6 * cpu3.since(cpu2).server / (lat.len().max(1) as f64)
    );
    if !odd.is_empty() {
        println!(
            "  {} unexpected outcome(s); first: {:?}",
            odd.len(),
            odd.iter().take(3).collect::<Vec<_>>()
        );
    }
    let mem_idle = server.memory()?;

    println!();
    println!("== 4. Server memory (/proc/{}/status) ==", server.pid());
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "VmHWM", "VmRSS", "threads"
    );
    for (label, m) in [
        ("at start (empty)", mem_start),
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

    summary.row(
        format!("fleet round 1 ({n} phones)"),
        format!(
            "server holds all {expected} after {:.2} s, all phones complete after {:.2} s; {} req ({:.2}/phone), {} B up + {} B down; \
             CPU server {:.1} s, phones {:.1} s",
            until_held.as_secs_f64(),
            all_complete.as_secs_f64(),
            r1.totals.requests,
            r1.totals.requests as f64 / n as f64,
            r1.totals.bytes_up,
            r1.totals.bytes_down,
            cpu1.since(cpu0).server,
            cpu1.since(cpu0).phones
        ),
    );
    summary.row(
        "fleet round 2 (pull village)",
        format!(
            "{:.2} s; {} req ({:.2}/phone), {} docs, {} B down ({} B/phone); all hold their village: {}; \
             CPU server {:.1} s, phones {:.1} s",
            r2.wall.as_secs_f64(),
            r2.totals.requests,
            r2.totals.requests as f64 / n as f64,
            r2.totals.pulled,
            r2.totals.bytes_down,
            r2.totals.bytes_down / n as u64,
            if wrong.is_empty() { "yes" } else { "NO" },
            cpu2.since(cpu1).server,
            cpu2.since(cpu1).phones
        ),
    );
    summary.row(
        "no-change syncs",
        format!(
            "{rate:.0}/s with {threads} threads; median {} (HTTP {}), p99 {}; {:.0} B up + {:.0} B down each",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&exch, 0.5)),
            ms(percentile(&lat, 0.99)),
            totals.bytes_up as f64 / runs as f64,
            totals.bytes_down as f64 / runs as f64
        ),
    );
    summary.row(
        "server memory HWM/RSS",
        format!(
            "start {}/{}, after fleet {}/{}, after no-change {}/{}",
            mib(mem_start.hwm_kib),
            mib(mem_start.rss_kib),
            mib(mem_fleet.hwm_kib),
            mib(mem_fleet.rss_kib),
            mib(mem_idle.hwm_kib),
            mib(mem_idle.rss_kib)
        ),
    );
    notes.push(format!(
        "{n} phones ({} villages, own tokens and stores) syncing their days at once through {} threads on {} CPU(s): \
         the server held all {expected} records after {:.2} s and every phone was complete after {:.2} s, {:.2} requests/phone, \
         {:.1} KiB up + {:.1} KiB down per phone; \
         pulling each village afterwards took {:.2} s, {:.2} requests/phone, {:.1} KiB down per phone. \
         No-change syncs: {rate:.0}/s, median {} ({:.0} B up, {:.0} B down). Server peak RSS {}.",
        villages.len(),
        settings.threads,
        std::thread::available_parallelism().map_or(1, |p| p.get()),
        until_held.as_secs_f64(),
        all_complete.as_secs_f64(),
        r1.totals.requests as f64 / n as f64,
        r1.totals.bytes_up as f64 / n as f64 / 1024.0,
        r1.totals.bytes_down as f64 / n as f64 / 1024.0,
        r2.wall.as_secs_f64(),
        r2.totals.requests as f64 / n as f64,
        r2.totals.bytes_down as f64 / n as f64 / 1024.0,
        ms(percentile(&lat, 0.5)),
        totals.bytes_up as f64 / runs as f64,
        totals.bytes_down as f64 / runs as f64,
        mib(mem_idle.hwm_kib),
    ));
    drop(phones);
    drop(server);
    Ok(())
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env()?;
    let schema = Arc::new(Schema::baru_example());
    println!(
        "yibiao sync benchmark{}: server {}, {} phones in the fleet, seed {}",
        if settings.quick { " (quick)" } else { "" },
        server_binary(),
        settings.devices,
        settings.seed
    );
    println!(
        "machine: {} CPU(s), load average {} (other work on the machine skews every timing below)",
        std::thread::available_parallelism().map_or(1, |p| p.get()),
        load_average()
    );
    let started = Instant::now();
    let mut summary = Summary { rows: Vec::new() };
    let mut notes = Vec::new();
    cadre_day(&settings, &schema, &mut summary, &mut notes)?;
    fleet(&settings, &schema, &mut summary, &mut notes)?;

    println!();
    println!("== Summary ==");
    let width = summary
        .rows
        .iter()
        .map(|(w, _)| w.chars().count())
        .max()
        .unwrap_or(0);
    for (what, value) in &summary.rows {
        println!("{what:<width$}  {value}");
    }
    println!(
        "total run time {:.1} s; load average at the end {} (this bench's own threads included)",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    println!();
    println!("--- note (paste) ---");
    for n in &notes {
        println!("{n}");
    }
    println!("--- end note ---");
    Ok(())
}
