//! Store benchmark: prints figures for the durable local store on a real SQLite file,
//! next to a plain "one JSON row per record" SQLite baseline. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-store --bench store`
//!
//! Environment:
//! - `YIBIAO_BENCH_RECORDS`: records to create (default 10000);
//! - `YIBIAO_BENCH_WRITES`: single-field writes to time (default 1000);
//! - `YIBIAO_BENCH_SEED`: seed of the data generator (default 20260214);
//! - `YIBIAO_BENCH_DIR`: directory for the temporary SQLite files (default: the system
//!   temp dir). The files live on that directory's file system, whose fsync speed
//!   dominates every durable write.
//!
//! Phases, in order: create N household records of 15 fields each (one durable
//! transaction per record), measure bytes on disk, close and reopen the store, run
//! representative queries paging through every result, time single-field writes on
//! random records (a mix of cached and uncached documents), compact, then do the same
//! inserts and single-field updates on the plain baseline. Last, a few more creates and
//! writes on both files from an emptied WAL count the pages each durable operation
//! appends to the WAL, and which tables and indexes those pages belong to.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::{Query, Store, StoreConfig};

type BenchResult<T> = Result<T, Box<dyn StdError>>;

const ENTITY: &str = "household";
const PAGE: u32 = 100;
const HOT_RECORDS: usize = 64;
const REOPENS: usize = 5;
const VERIFY_SAMPLE: usize = 200;
/// The village of the village queries (the one named in the schema's comments).
const QUERY_VILLAGE: &str = "tujiang";
/// Operations per write-amplification probe; small enough that no auto-checkpoint
/// (1000 WAL pages) restarts the WAL in between.
const PROBE_OPS: usize = 20;

// ---------------------------------------------------------------------------------------
// Deterministic data generation
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

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
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
// Xichang city and neighbouring Liangshan counties.
const REGION_CODES: &[&str] = &["513401", "513424", "513425", "513431", "513432", "513433"];
const MOBILE_PREFIXES: &[&str] = &[
    "130", "133", "135", "138", "139", "150", "152", "158", "180", "183", "187", "199",
];
const DIBAO_STATUSES: &[&str] = &["none", "enrolled", "special", "suspended"];
const INCOME_SOURCES: &[&str] = &["farming", "livestock", "wages", "business", "transfers"];

/// Fields a generated household holds: always 15 of the entity's fields. Households
/// not visited yet have no `visit_date` (so `dibao_check` is incomplete for them) and
/// carry `toilet_type` from the living-environment inspection instead.
const FIELD_COUNT: usize = 15;

fn chinese_name(rng: &mut Rng, ethnicity: &str) -> String {
    if ethnicity == "yi" {
        format!("{}{}", rng.pick(YI_SURNAMES), rng.pick(YI_GIVEN))
    } else {
        format!("{}{}", rng.pick(HAN_SURNAMES), rng.pick(HAN_GIVEN))
    }
}

/// A valid 18-character resident ID number with its GB 11643 check character.
fn id_number(rng: &mut Rng) -> BenchResult<String> {
    let birth = NaiveDate::from_ymd_opt(
        rng.range(1940, 2002) as i32,
        rng.range(1, 12) as u32,
        rng.range(1, 28) as u32,
    )
    .ok_or("bad birth date")?;
    let body = format!(
        "{}{}{:03}",
        rng.pick(REGION_CODES),
        birth.format("%Y%m%d"),
        rng.range(1, 999)
    );
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    Ok(format!("{body}{check}"))
}

fn phone(rng: &mut Rng) -> String {
    format!(
        "{}{:08}",
        rng.pick(MOBILE_PREFIXES),
        rng.range(0, 99_999_999)
    )
}

fn income(rng: &mut Rng) -> Value {
    // 3,000.00 .. 150,000.00 yuan, to the fen.
    Value::Decimal(Decimal::new(rng.range(300_000, 15_000_000), 2))
}

fn visit_date(rng: &mut Rng) -> BenchResult<Value> {
    let d = NaiveDate::from_ymd_opt(
        rng.range(2025, 2026) as i32,
        rng.range(1, 12) as u32,
        rng.range(1, 28) as u32,
    )
    .ok_or("bad visit date")?;
    Ok(Value::Date(d))
}

fn choice(key: &str) -> Value {
    Value::Choice(key.to_owned())
}

struct Household {
    village: String,
    fields: Vec<(&'static str, Value)>,
}

impl Household {
    fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    fn set(&mut self, field: &'static str, value: Value) {
        match self.fields.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((field, value)),
        }
    }

    fn json_body(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(f, v)| ((*f).to_owned(), v.to_json()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

fn edits_of(h: &Household) -> Vec<FieldEdit> {
    h.fields
        .iter()
        .map(|(f, v)| FieldEdit::Set((*f).to_owned(), v.clone()))
        .collect()
}

fn household(rng: &mut Rng, villages: &[(String, String)]) -> BenchResult<Household> {
    let (village, village_zh) = rng.pick(villages).clone();
    let ethnicity = rng.weighted(&[("yi", 70), ("han", 25), ("tibetan", 3), ("other", 2)]);
    let size = rng.weighted(&[
        ("1", 8),
        ("2", 14),
        ("3", 18),
        ("4", 22),
        ("5", 18),
        ("6", 11),
        ("7", 6),
        ("8", 3),
    ]);
    let size: i64 = size.parse()?;
    let group = rng.range(1, 12);
    let sources: Vec<String> = INCOME_SOURCES
        .iter()
        .filter(|_| rng.chance(40))
        .map(|s| (*s).to_owned())
        .collect();
    let sources = if sources.is_empty() {
        vec!["farming".to_owned()]
    } else {
        sources
    };
    let mut fields = vec![
        ("household_head", Value::Text(chinese_name(rng, ethnicity))),
        ("id_number", Value::Text(id_number(rng)?)),
        ("phone", Value::Text(phone(rng))),
        (
            "address",
            Value::Text(format!(
                "四川省凉山州西昌市巴汝镇{village_zh}{group}组{}号",
                rng.range(1, 80)
            )),
        ),
        ("village_group", Value::Integer(group)),
        ("ethnicity", choice(ethnicity)),
        ("household_size", Value::Integer(size)),
        ("labour_count", Value::Integer(rng.range(0, size))),
        ("annual_income", income(rng)),
        ("income_sources", Value::multi_choice(sources)),
        (
            "dibao_status",
            choice(rng.weighted(&[
                ("none", 70),
                ("enrolled", 18),
                ("special", 4),
                ("suspended", 8),
            ])),
        ),
        (
            "housing_type",
            choice(rng.weighted(&[("brick", 55), ("earth", 25), ("wood", 15), ("other", 5)])),
        ),
        ("housing_safe", Value::Boolean(rng.chance(85))),
        (
            "drinking_water",
            choice(rng.weighted(&[("piped", 60), ("well", 15), ("spring", 20), ("unsafe", 5)])),
        ),
    ];
    if rng.chance(70) {
        fields.push(("visit_date", visit_date(rng)?));
    } else {
        fields.push((
            "toilet_type",
            choice(rng.weighted(&[("flush", 30), ("improved", 40), ("pit", 25), ("none", 5)])),
        ));
    }
    debug_assert_eq!(fields.len(), FIELD_COUNT);
    Ok(Household { village, fields })
}

/// Fields the single-write phase changes, one of each kind cadres correct in the field.
const WRITE_FIELDS: &[&str] = &[
    "annual_income",
    "phone",
    "household_size",
    "dibao_status",
    "housing_safe",
    "visit_date",
];

/// A new value of `field` that differs from `current` (so every write changes something).
fn new_value(rng: &mut Rng, field: &str, current: Option<&Value>) -> BenchResult<Value> {
    loop {
        let v = match field {
            "annual_income" => income(rng),
            "phone" => Value::Text(phone(rng)),
            "household_size" => Value::Integer(rng.range(1, 10)),
            "dibao_status" => choice(rng.pick::<&str>(DIBAO_STATUSES)),
            "housing_safe" => Value::Boolean(rng.chance(50)),
            "visit_date" => visit_date(rng)?,
            other => return Err(format!("no generator for field {other}").into()),
        };
        if current != Some(&v) {
            return Ok(v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Summary {
    n: usize,
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_us: f64,
}

fn summarize(samples: &[Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    // Nearest-rank percentile.
    let pct = |p: f64| us[((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    Summary {
        n: us.len(),
        median_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: us[us.len() - 1],
        mean_us: us.iter().sum::<f64>() / us.len() as f64,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Bytes of one SQLite file, read through a second connection while the writer is open.
#[derive(Clone, Copy, Default)]
struct DiskUse {
    /// Main file + WAL as found, before checkpointing.
    db_plus_wal: u64,
    /// Main file after `PRAGMA wal_checkpoint(TRUNCATE)`.
    checkpointed: u64,
    /// True when the checkpoint could not complete (a reader or writer was busy).
    checkpoint_busy: bool,
    /// Pages in use (page_count - freelist_count) * page_size after the checkpoint.
    live: u64,
}

fn disk_use(db: &Path) -> BenchResult<DiskUse> {
    let db_plus_wal = file_len(db) + file_len(&wal_path(db));
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let (busy, _log, _done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    drop(conn);
    Ok(DiskUse {
        db_plus_wal,
        checkpointed: file_len(db),
        checkpoint_busy: busy != 0,
        live: ((pages - free) * page_size) as u64,
    })
}

fn page_size_of(db: &Path) -> BenchResult<u64> {
    let conn = Connection::open(db)?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(size as u64)
}

/// Frames in the WAL file of `db` (32-byte header, then a 24-byte header per page).
fn wal_frames(db: &Path, page_size: u64) -> u64 {
    file_len(&wal_path(db)).saturating_sub(32) / (page_size + 24)
}

/// Which b-trees the WAL frames of `db` belong to: (table or index, frames), most first.
fn wal_owners(db: &Path, page_size: u64) -> BenchResult<Vec<(String, u64)>> {
    let wal = std::fs::read(wal_path(db))?;
    let frame = 24 + page_size as usize;
    let mut pages: HashMap<u32, u64> = HashMap::new();
    let mut at = 32;
    while at + frame <= wal.len() {
        let pgno = u32::from_be_bytes([wal[at], wal[at + 1], wal[at + 2], wal[at + 3]]);
        *pages.entry(pgno).or_default() += 1;
        at += frame;
    }
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare("SELECT pageno, name FROM dbstat")?;
    let owner: HashMap<u32, String> = stmt
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for (pgno, n) in pages {
        let name = owner
            .get(&pgno)
            .cloned()
            .unwrap_or_else(|| "(free or other)".into());
        *by_name.entry(name).or_default() += n;
    }
    let mut out: Vec<(String, u64)> = by_name.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Bytes of each table and index (`dbstat`), most first.
fn btree_sizes(db: &Path) -> BenchResult<Vec<(String, u64)>> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt =
        conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC, 1")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn print_owners(label: &str, owners: &[(String, u64)], ops: usize) {
    let parts: Vec<String> = owners
        .iter()
        .map(|(name, n)| format!("{name} {:.1}", *n as f64 / ops as f64))
        .collect();
    println!("      {label}: {}", parts.join(", "));
}

/// What the store's tables hold, read through a second connection.
struct StoreContent {
    chunks: i64,
    chunk_bytes: i64,
    index_rows: i64,
    index_bytes: i64,
}

fn store_content(db: &Path) -> BenchResult<StoreContent> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let (chunks, chunk_bytes) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(bytes)), 0) FROM doc_chunks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (index_rows, index_bytes) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(field) + length(value) + COALESCE(length(search), 0)), 0)
         FROM field_values",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(StoreContent {
        chunks,
        chunk_bytes,
        index_rows,
        index_bytes,
    })
}

/// Which record ids a `lru` cache of `cap` documents holds, mirroring the store's cache
/// (every create, load and write puts the document first in line).
struct LruModel {
    cap: usize,
    tick: u64,
    last_use: HashMap<usize, u64>,
}

impl LruModel {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            tick: 0,
            last_use: HashMap::new(),
        }
    }

    /// Uses `k`; returns true when it was cached before.
    fn touch(&mut self, k: usize) -> bool {
        self.tick += 1;
        let hit = self.last_use.insert(k, self.tick).is_some();
        if self.last_use.len() > self.cap
            && let Some((&oldest, _)) = self.last_use.iter().min_by_key(|(_, t)| **t)
        {
            self.last_use.remove(&oldest);
        }
        hit
    }
}

fn env_usize(name: &str, default: usize) -> BenchResult<usize> {
    match std::env::var(name) {
        Ok(s) => {
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a positive whole number, got {s:?}"))?;
            if n == 0 {
                return Err(format!("{name} must be at least 1").into());
            }
            Ok(n)
        }
        Err(_) => Ok(default),
    }
}

fn open_plain(path: &Path) -> BenchResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // The same pragmas as the store.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS households (id TEXT PRIMARY KEY, village TEXT, body TEXT)",
    )?;
    Ok(conn)
}

struct QueryFigure {
    label: &'static str,
    first_ms: f64,
    second_ms: f64,
    first_page_ms: f64,
    slowest_page_ms: f64,
    last_page_ms: f64,
    pages: usize,
    count: usize,
    expected: usize,
    values_ok: bool,
}

/// One paging through every result of a query.
struct PagedRun {
    total: Duration,
    page_times: Vec<Duration>,
    count: usize,
    /// Every record listed carried its 15 values.
    values_ok: bool,
}

/// Pages through every result of `q`, `PAGE` records at a time.
fn page_through(store: &Store, q: &Query) -> BenchResult<PagedRun> {
    let mut q = q.clone();
    q.limit = PAGE;
    q.after = None;
    let (mut page_times, mut count, mut values_ok) = (Vec::new(), 0, true);
    let t = Instant::now();
    loop {
        let tp = Instant::now();
        let page = store.query(&q)?;
        page_times.push(tp.elapsed());
        count += page.records.len();
        values_ok &= page.records.iter().all(|r| r.values.len() == FIELD_COUNT);
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    Ok(PagedRun {
        total: t.elapsed(),
        page_times,
        count,
        values_ok,
    })
}

/// Width of the label column of the summary table, in terminal columns.
const LABEL_WIDTH: usize = 66;

/// `s` padded with spaces to `width` terminal columns (CJK characters take two).
fn pad(s: &str, width: usize) -> String {
    let cols: usize = s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(cols)))
}

fn fmt_bytes_per(total: u64, n: usize) -> String {
    format!("{:.0}", total as f64 / n as f64)
}

fn main() -> BenchResult<()> {
    let n = env_usize("YIBIAO_BENCH_RECORDS", 10_000)?;
    let writes = env_usize("YIBIAO_BENCH_WRITES", 1000)?;
    let seed = env_usize("YIBIAO_BENCH_SEED", 20_260_214)? as u64;
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    let dir = match std::env::var_os("YIBIAO_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let store_path = dir.path().join("store.sqlite");
    let plain_path = dir.path().join("plain.sqlite");
    let schema = Arc::new(Schema::baru_example());
    let cadre = CadreId::new("bench-cadre")?;
    let cache_cap = StoreConfig::default().cached_documents;

    println!("yibiao store bench");
    println!(
        "N={n} records x {FIELD_COUNT} fields ({ENTITY}), writes={writes}, CPUs={cpus}, {} {}, seed={seed}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!("files in {}", dir.path().display());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        // Other work on the machine shows up in every figure below.
        println!("load average at start: {}", load.trim());
    }
    if !schema.has_village(QUERY_VILLAGE) {
        return Err(format!("the schema has no village {QUERY_VILLAGE}").into());
    }
    println!(
        "store: WAL + synchronous=FULL, one transaction per write, cache {cache_cap} docs, compact after {} chunks",
        StoreConfig::default().compact_after_chunks
    );

    // ----- data -----
    let villages: Vec<(String, String)> = schema
        .villages
        .iter()
        .map(|(k, l)| (k.clone(), l.zh.clone()))
        .collect();
    let mut rng = Rng(seed);
    let mut homes: Vec<Household> = (0..n)
        .map(|_| household(&mut rng, &villages))
        .collect::<BenchResult<_>>()?;

    // ----- 1. create -----
    println!("\n[1] create {n} records via Store::create (one durable transaction each)");
    let store = Store::open(&store_path, schema.clone(), cadre.clone())?;
    let mut ids: Vec<RecordId> = Vec::with_capacity(n);
    let mut create_lat = Vec::with_capacity(n);
    let mut lru = LruModel::new(cache_cap);
    let t_all = Instant::now();
    for (i, h) in homes.iter().enumerate() {
        let edits = edits_of(h);
        let t = Instant::now();
        let id = store.create(ENTITY, Some(&h.village), &edits)?;
        create_lat.push(t.elapsed());
        ids.push(id);
        lru.touch(i);
    }
    let create_total = t_all.elapsed();
    let create = summarize(&create_lat);
    let create_rate = n as f64 / create_total.as_secs_f64();
    println!(
        "    total {:.0} ms, {create_rate:.0} records/s; per create median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        ms(create_total),
        create.median_us,
        create.p90_us,
        create.p99_us,
        create.max_us
    );

    let disk_created = disk_use(&store_path)?;
    let content_created = store_content(&store_path)?;
    println!(
        "    on disk: db+wal {} B/record before checkpoint, {} B/record after wal_checkpoint(TRUNCATE) (busy={}), live pages {} B/record",
        fmt_bytes_per(disk_created.db_plus_wal, n),
        fmt_bytes_per(disk_created.checkpointed, n),
        disk_created.checkpoint_busy,
        fmt_bytes_per(disk_created.live, n)
    );
    println!(
        "    content: {} chunks, automerge bytes {:.0} B/record; {} index rows, index payload {:.0} B/record",
        content_created.chunks,
        content_created.chunk_bytes as f64 / n as f64,
        content_created.index_rows,
        content_created.index_bytes as f64 / n as f64
    );

    // ----- 2. reopen -----
    println!("\n[2] close and reopen (Store::open on the same file), {REOPENS} times");
    let mut store = store;
    let mut close_lat = Vec::new();
    let mut open_lat = Vec::new();
    for _ in 0..REOPENS {
        let t = Instant::now();
        drop(store);
        close_lat.push(t.elapsed());
        let t = Instant::now();
        store = Store::open(&store_path, schema.clone(), cadre.clone())?;
        open_lat.push(t.elapsed());
    }
    lru = LruModel::new(cache_cap);
    let first_q = Query {
        entity: Some(ENTITY.into()),
        village: Some(QUERY_VILLAGE.into()),
        limit: PAGE,
        ..Query::default()
    };
    let t = Instant::now();
    let first_page = store.query(&first_q)?;
    let first_query = t.elapsed();
    let close = summarize(&close_lat);
    let open = summarize(&open_lat);
    let first_open_ms = ms(open_lat[0]);
    println!(
        "    open: first {first_open_ms:.1} ms, median {:.1} ms, max {:.1} ms (target <= 100 ms); close (drop): median {:.1} ms",
        open.median_us / 1e3,
        open.max_us / 1e3,
        close.median_us / 1e3
    );
    println!(
        "    first query after reopen (village={}, page of {PAGE}): {:.2} ms, {} records",
        QUERY_VILLAGE,
        ms(first_query),
        first_page.records.len()
    );

    // ----- 3. queries -----
    println!(
        "\n[3] queries (entity=household unless noted), paging through ALL results (page size {PAGE}), run twice"
    );
    let expect = |pred: &dyn Fn(&Household) -> bool| homes.iter().filter(|h| pred(h)).count();
    let v0 = QUERY_VILLAGE.to_owned();
    let enrolled = choice("enrolled");
    let needle = "吉克";
    let dibao_required: Vec<String> = schema
        .form("dibao_check")
        .map(|f| f.required.clone())
        .ok_or("no dibao_check form")?;
    let queries: Vec<(&'static str, Query, usize)> = vec![
        (
            "village=tujiang",
            Query {
                entity: Some(ENTITY.into()),
                village: Some(v0.clone()),
                ..Query::default()
            },
            expect(&|h| h.village == v0),
        ),
        (
            "dibao_status=enrolled",
            Query {
                entity: Some(ENTITY.into()),
                equals: vec![("dibao_status".into(), enrolled.clone())],
                ..Query::default()
            },
            expect(&|h| h.get("dibao_status") == Some(&enrolled)),
        ),
        (
            "dibao_status=enrolled (no entity filter)",
            Query {
                equals: vec![("dibao_status".into(), enrolled.clone())],
                ..Query::default()
            },
            expect(&|h| h.get("dibao_status") == Some(&enrolled)),
        ),
        (
            "household_head contains 吉克",
            Query {
                entity: Some(ENTITY.into()),
                contains: vec![("household_head".into(), needle.into())],
                ..Query::default()
            },
            expect(
                &|h| matches!(h.get("household_head"), Some(Value::Text(t)) if t.contains(needle)),
            ),
        ),
        (
            "incomplete_for=dibao_check",
            Query {
                incomplete_for: Some("dibao_check".into()),
                ..Query::default()
            },
            expect(&|h| dibao_required.iter().any(|f| h.get(f).is_none())),
        ),
        (
            "village=tujiang + dibao_status=enrolled",
            Query {
                entity: Some(ENTITY.into()),
                village: Some(v0.clone()),
                equals: vec![("dibao_status".into(), enrolled.clone())],
                ..Query::default()
            },
            expect(&|h| h.village == v0 && h.get("dibao_status") == Some(&enrolled)),
        ),
    ];
    let mut query_figs = Vec::new();
    for (label, q, expected) in &queries {
        let run1 = page_through(&store, q)?;
        let run2 = page_through(&store, q)?;
        let page_ms = |i: usize| run1.page_times.get(i).copied().map(ms).unwrap_or(0.0);
        let fig = QueryFigure {
            label,
            first_ms: ms(run1.total),
            second_ms: ms(run2.total),
            first_page_ms: page_ms(0),
            slowest_page_ms: run1.page_times.iter().copied().map(ms).fold(0.0, f64::max),
            last_page_ms: page_ms(run1.page_times.len().saturating_sub(1)),
            pages: run1.page_times.len(),
            count: run1.count,
            expected: *expected,
            values_ok: run1.values_ok && run2.count == run1.count,
        };
        println!(
            "    {} {:>7.1} ms (2nd {:>6.1}) {:>5} records {:>3} pages; page 1 {:>5.1} ms, slowest {:>5.1}, last {:>5.1}{}{}",
            pad(fig.label, 42),
            fig.first_ms,
            fig.second_ms,
            fig.count,
            fig.pages,
            fig.first_page_ms,
            fig.slowest_page_ms,
            fig.last_page_ms,
            if fig.count == fig.expected {
                String::new()
            } else {
                format!("  MISMATCH: expected {}", fig.expected)
            },
            if fig.values_ok {
                ""
            } else {
                "  (some records lacked values)"
            }
        );
        query_figs.push(fig);
    }

    // ----- 4. single-field writes -----
    println!(
        "\n[4] {writes} single-field Store::set on random records (half on {HOT_RECORDS} hot records)"
    );
    let hot: Vec<usize> = (0..HOT_RECORDS.min(n)).map(|_| rng.below(n)).collect();
    let mut ops: Vec<(usize, &'static str, Value)> = Vec::with_capacity(writes);
    for _ in 0..writes {
        let idx = if rng.chance(50) {
            *rng.pick(&hot)
        } else {
            rng.below(n)
        };
        let field = *rng.pick(WRITE_FIELDS);
        let value = new_value(&mut rng, field, homes[idx].get(field))?;
        homes[idx].set(field, value.clone());
        ops.push((idx, field, value));
    }
    let mut set_lat = Vec::with_capacity(writes);
    let mut set_cached = Vec::new();
    let mut set_uncached = Vec::new();
    let mut unchanged = 0usize;
    for (idx, field, value) in &ops {
        let cached = lru.touch(*idx);
        let t = Instant::now();
        let changed = store.set(ids[*idx], field, value.clone())?;
        let d = t.elapsed();
        if !changed {
            unchanged += 1;
        }
        set_lat.push(d);
        if cached {
            set_cached.push(d);
        } else {
            set_uncached.push(d);
        }
    }
    let set_all = summarize(&set_lat);
    let set_hit = summarize(&set_cached);
    let set_miss = summarize(&set_uncached);
    for (label, s) in [
        ("all", set_all),
        ("cached doc", set_hit),
        ("uncached doc", set_miss),
    ] {
        println!(
            "    {label:<13} n={:>5}  median {:>7.0} us  p90 {:>7.0} us  p99 {:>7.0} us  max {:>7.0} us  mean {:>7.0} us",
            s.n, s.median_us, s.p90_us, s.p99_us, s.max_us, s.mean_us
        );
    }
    if unchanged > 0 {
        println!("    NOTE: {unchanged} writes reported no change");
    }

    let disk_written = disk_use(&store_path)?;
    let content_written = store_content(&store_path)?;
    let t = Instant::now();
    let compacted = store.compact_all()?;
    let compact_time = t.elapsed();
    let disk_compacted = disk_use(&store_path)?;
    let content_compacted = store_content(&store_path)?;
    println!(
        "    after writes: {} chunks; compact_all rewrote {compacted} records in {:.0} ms -> {} chunks",
        content_written.chunks,
        ms(compact_time),
        content_compacted.chunks
    );

    // Check what was written (not timed): the index and documents hold the last values.
    let mut touched: Vec<usize> = ops.iter().map(|(i, _, _)| *i).collect();
    touched.sort_unstable();
    touched.dedup();
    touched.truncate(VERIFY_SAMPLE);
    let mut store_mismatch = 0usize;
    for &i in &touched {
        let view = store.get(ids[i])?;
        for (f, v) in &homes[i].fields {
            if view.value(f) != Some(&v.to_json()) {
                store_mismatch += 1;
            }
        }
    }
    let stats = store.stats()?;

    // ----- 5. plain SQLite baseline -----
    println!(
        "\n[5] baseline: plain SQLite, one JSON row per record, same pragmas, one transaction each"
    );
    let mut plain = open_plain(&plain_path)?;
    let plain_ids: Vec<String> = (0..n).map(|_| RecordId::new().to_string()).collect();
    // Insert the records as they were created (the pre-write values).
    let mut rng_replay = Rng(seed);
    let created: Vec<Household> = (0..n)
        .map(|_| household(&mut rng_replay, &villages))
        .collect::<BenchResult<_>>()?;
    let mut plain_insert_lat = Vec::with_capacity(n);
    let t_all = Instant::now();
    for (h, id) in created.iter().zip(&plain_ids) {
        let t = Instant::now();
        let body = h.json_body();
        let tx = plain.transaction()?;
        tx.prepare_cached("INSERT INTO households (id, village, body) VALUES (?1, ?2, ?3)")?
            .execute(params![id, h.village, body])?;
        tx.commit()?;
        plain_insert_lat.push(t.elapsed());
    }
    let plain_insert_total = t_all.elapsed();
    let plain_insert = summarize(&plain_insert_lat);
    let plain_rate = n as f64 / plain_insert_total.as_secs_f64();
    let disk_plain_created = disk_use(&plain_path)?;
    println!(
        "    insert: total {:.0} ms, {plain_rate:.0} records/s; median {:.0} us, p90 {:.0} us, p99 {:.0} us",
        ms(plain_insert_total),
        plain_insert.median_us,
        plain_insert.p90_us,
        plain_insert.p99_us
    );

    let mut plain_set_lat = Vec::with_capacity(writes);
    for (idx, field, value) in &ops {
        let path = format!("$.{field}");
        let json = value.to_json().to_string();
        let t = Instant::now();
        let tx = plain.transaction()?;
        let changed = tx
            .prepare_cached(
                "UPDATE households SET body = json_set(body, ?1, json(?2)) WHERE id = ?3",
            )?
            .execute(params![path, json, plain_ids[*idx]])?;
        tx.commit()?;
        plain_set_lat.push(t.elapsed());
        if changed != 1 {
            return Err(format!("plain update hit {changed} rows").into());
        }
    }
    let plain_set = summarize(&plain_set_lat);
    println!(
        "    single-field json_set: median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        plain_set.median_us, plain_set.p90_us, plain_set.p99_us, plain_set.max_us
    );
    let mut plain_mismatch = 0usize;
    for &i in &touched {
        let body: String = plain.query_row(
            "SELECT body FROM households WHERE id = ?1",
            [&plain_ids[i]],
            |r| r.get(0),
        )?;
        let body: BTreeMap<String, serde_json::Value> = serde_json::from_str(&body)?;
        for (f, v) in &homes[i].fields {
            if body.get(*f) != Some(&v.to_json()) {
                plain_mismatch += 1;
            }
        }
    }
    let disk_plain_written = disk_use(&plain_path)?;
    drop(plain);
    println!(
        "    check of {} written records: store {store_mismatch} wrong values, plain {plain_mismatch} wrong values",
        touched.len()
    );

    // ----- 6. summary -----
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "\n[6] bytes on disk per record (db file after PRAGMA wal_checkpoint(TRUNCATE) from a second connection)"
    );
    println!(
        "    ours after create {:.0} B (db+wal before checkpoint {:.0} B), after {writes} writes {:.0} B, after compact_all {:.0} B (live pages {:.0} B)",
        per(disk_created.checkpointed),
        per(disk_created.db_plus_wal),
        per(disk_written.checkpointed),
        per(disk_compacted.checkpointed),
        per(disk_compacted.live)
    );
    println!("    ours by table/index (dbstat, after compact_all), bytes/record:");
    for (name, bytes) in btree_sizes(&store_path)? {
        println!("      {name:<28} {:>7.0}", per(bytes));
    }
    println!(
        "    plain after insert {:.0} B, after writes {:.0} B",
        per(disk_plain_created.checkpointed),
        per(disk_plain_written.checkpointed)
    );
    println!(
        "    store stats at the end: {} records, {} pending, {} conflicted, {} chunks; automerge {:.0} B/record after compaction",
        stats.records,
        stats.pending,
        stats.conflicted,
        stats.chunks,
        content_compacted.chunk_bytes as f64 / n as f64
    );

    // ----- 7. write amplification: WAL pages appended per durable operation -----
    println!("\n[7] WAL pages written per operation ({PROBE_OPS} ops each, from an emptied WAL)");
    let mut probe_homes: Vec<Household> = (0..PROBE_OPS)
        .map(|_| household(&mut rng, &villages))
        .collect::<BenchResult<_>>()?;
    let page_size = page_size_of(&store_path)?;
    disk_use(&store_path)?;
    let mut probe_ids = Vec::new();
    for h in &probe_homes {
        probe_ids.push(store.create(ENTITY, Some(&h.village), &edits_of(h))?);
    }
    let amp_create = wal_frames(&store_path, page_size) as f64 / PROBE_OPS as f64;
    let owners_create = wal_owners(&store_path, page_size)?;
    disk_use(&store_path)?;
    for (i, id) in probe_ids.iter().enumerate() {
        let v = new_value(
            &mut rng,
            "annual_income",
            probe_homes[i].get("annual_income"),
        )?;
        probe_homes[i].set("annual_income", v.clone());
        store.set(*id, "annual_income", v)?;
    }
    let amp_set = wal_frames(&store_path, page_size) as f64 / PROBE_OPS as f64;
    let owners_set = wal_owners(&store_path, page_size)?;
    let plain = open_plain(&plain_path)?;
    let plain_page_size = page_size_of(&plain_path)?;
    disk_use(&plain_path)?;
    let probe_plain_ids: Vec<String> = (0..PROBE_OPS)
        .map(|_| RecordId::new().to_string())
        .collect();
    for (h, id) in probe_homes.iter().zip(&probe_plain_ids) {
        plain.execute(
            "INSERT INTO households (id, village, body) VALUES (?1, ?2, ?3)",
            params![id, h.village, h.json_body()],
        )?;
    }
    let amp_plain_insert = wal_frames(&plain_path, plain_page_size) as f64 / PROBE_OPS as f64;
    disk_use(&plain_path)?;
    for id in &probe_plain_ids {
        plain.execute(
            "UPDATE households SET body = json_set(body, '$.annual_income', json(?1)) WHERE id = ?2",
            params![income(&mut rng).to_json().to_string(), id],
        )?;
    }
    let amp_plain_set = wal_frames(&plain_path, plain_page_size) as f64 / PROBE_OPS as f64;
    drop(plain);
    drop(store);
    println!(
        "    create: ours {amp_create:.1} pages ({:.0} KiB) vs plain insert {amp_plain_insert:.1} pages",
        amp_create * page_size as f64 / 1024.0
    );
    println!(
        "    single-field write: ours {amp_set:.1} pages ({:.0} KiB) vs plain json_set {amp_plain_set:.1} pages",
        amp_set * page_size as f64 / 1024.0
    );
    println!("    pages per op by b-tree:");
    print_owners("create", &owners_create, PROBE_OPS);
    print_owners("field write", &owners_set, PROBE_OPS);

    let bar = "=".repeat(LABEL_WIDTH + 38);
    println!("\n{bar}");
    println!(
        "SUMMARY  N={n} records x {FIELD_COUNT} fields, CPUs={cpus}, {} {}, writes={writes}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!("{bar}");
    println!(
        "{} {:>12} {:>12} {:>10}",
        pad("metric", LABEL_WIDTH),
        "ours",
        "plain JSON",
        "ours/plain"
    );
    let row = |label: &str, ours: f64, plain: Option<f64>, unit: &str, prec: usize| {
        let ours_s = format!("{ours:.prec$}{unit}");
        match plain {
            Some(p) => {
                let p_s = format!("{p:.prec$}{unit}");
                println!(
                    "{} {ours_s:>12} {p_s:>12} {:>9.2}x",
                    pad(label, LABEL_WIDTH),
                    ratio(ours, p)
                );
            }
            None => println!(
                "{} {ours_s:>12} {:>12} {:>10}",
                pad(label, LABEL_WIDTH),
                "-",
                "-"
            ),
        }
    };
    row(
        "create: total",
        ms(create_total),
        Some(ms(plain_insert_total)),
        " ms",
        0,
    );
    row("create: records/s", create_rate, Some(plain_rate), "", 0);
    row(
        "create: median",
        create.median_us,
        Some(plain_insert.median_us),
        " us",
        0,
    );
    row(
        "create: p99",
        create.p99_us,
        Some(plain_insert.p99_us),
        " us",
        0,
    );
    row("reopen: Store::open (first)", first_open_ms, None, " ms", 1);
    row(
        &format!("reopen: Store::open (median of {REOPENS})"),
        open.median_us / 1e3,
        None,
        " ms",
        1,
    );
    row("reopen: first query page", ms(first_query), None, " ms", 2);
    for f in &query_figs {
        let label = format!("query all pages: {} [{}]", f.label, f.count);
        row(&label, f.first_ms, None, " ms", 1);
    }
    for f in &query_figs {
        let label = format!("query page 1: {}", f.label);
        row(&label, f.first_page_ms, None, " ms", 1);
    }
    row(
        "field write: median",
        set_all.median_us,
        Some(plain_set.median_us),
        " us",
        0,
    );
    row(
        "field write: p90",
        set_all.p90_us,
        Some(plain_set.p90_us),
        " us",
        0,
    );
    row(
        "field write: p99",
        set_all.p99_us,
        Some(plain_set.p99_us),
        " us",
        0,
    );
    row(
        "field write: median, cached doc",
        set_hit.median_us,
        None,
        " us",
        0,
    );
    row(
        "field write: median, uncached doc",
        set_miss.median_us,
        None,
        " us",
        0,
    );
    row(
        "bytes/record after create",
        per(disk_created.checkpointed),
        Some(per(disk_plain_created.checkpointed)),
        "",
        0,
    );
    row(
        "bytes/record after writes",
        per(disk_written.checkpointed),
        Some(per(disk_plain_written.checkpointed)),
        "",
        0,
    );
    row(
        "bytes/record after compact_all",
        per(disk_compacted.checkpointed),
        Some(per(disk_plain_written.checkpointed)),
        "",
        0,
    );
    row(
        "WAL pages per create",
        amp_create,
        Some(amp_plain_insert),
        "",
        1,
    );
    row(
        "WAL pages per field write",
        amp_set,
        Some(amp_plain_set),
        "",
        1,
    );
    println!("{bar}");
    let field_write_ratio = ratio(set_all.median_us, plain_set.median_us);
    println!(
        "targets: reopen <= 100 ms: {} ({first_open_ms:.1} ms); field write <= 5x plain: {} ({field_write_ratio:.2}x median, {:.2}x p99)",
        if first_open_ms <= 100.0 {
            "met"
        } else {
            "MISSED"
        },
        if field_write_ratio <= 5.0 {
            "met"
        } else {
            "MISSED"
        },
        ratio(set_all.p99_us, plain_set.p99_us)
    );

    // Paste-ready lines for a note.
    println!("\n--- note (paste) ---");
    println!(
        "yibiao store bench, N={n} households x {FIELD_COUNT} fields, {cpus} CPUs, {} {}, release, real SQLite file (WAL, synchronous=FULL)",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "- create: {:.1} s total, {create_rate:.0} rec/s, median {:.0} us / p99 {:.0} us (plain JSON row: {plain_rate:.0} rec/s, median {:.0} us / p99 {:.0} us; ours/plain median {:.2}x)",
        create_total.as_secs_f64(),
        create.median_us,
        create.p99_us,
        plain_insert.median_us,
        plain_insert.p99_us,
        ratio(create.median_us, plain_insert.median_us)
    );
    println!(
        "- reopen: {first_open_ms:.1} ms first, {:.1} ms median of {REOPENS}; first query page after reopen {:.2} ms",
        open.median_us / 1e3,
        ms(first_query)
    );
    for f in &query_figs {
        println!(
            "- query {}: {} results, {} pages of {PAGE}, {:.1} ms all pages (page 1 {:.1} ms, slowest page {:.1} ms)",
            f.label, f.count, f.pages, f.first_ms, f.first_page_ms, f.slowest_page_ms
        );
    }
    println!(
        "- field write (Store::set, {writes} on random records): median {:.0} us, p90 {:.0} us, p99 {:.0} us (cached median {:.0} us, uncached {:.0} us); plain json_set median {:.0} us, p99 {:.0} us; ours/plain {field_write_ratio:.2}x median, {:.2}x p99",
        set_all.median_us,
        set_all.p90_us,
        set_all.p99_us,
        set_hit.median_us,
        set_miss.median_us,
        plain_set.median_us,
        plain_set.p99_us,
        ratio(set_all.p99_us, plain_set.p99_us)
    );
    println!(
        "- disk (db after wal_checkpoint TRUNCATE): {:.0} B/record after create, {:.0} after writes, {:.0} after compact_all; plain {:.0} B/record ({:.2}x)",
        per(disk_created.checkpointed),
        per(disk_written.checkpointed),
        per(disk_compacted.checkpointed),
        per(disk_plain_written.checkpointed),
        ratio(
            per(disk_compacted.checkpointed),
            per(disk_plain_written.checkpointed)
        )
    );
    println!(
        "- WAL pages appended per durable op: create {amp_create:.1} (plain insert {amp_plain_insert:.1}), field write {amp_set:.1} (plain json_set {amp_plain_set:.1})"
    );
    println!("--- end note ---");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at end: {}", load.trim());
    }
    Ok(())
}
