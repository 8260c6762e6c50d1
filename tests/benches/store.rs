//! Store benchmark: prints figures for the durable local store on a real SQLite file,
//! next to a plain "one JSON row per record" SQLite baseline. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-tests --bench store`
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use yibiao_model::{CadreId, RecordId, SCHEMA_FORMAT, Schema, Value};
use yibiao_store::{Query, Store, StoreConfig};
use yibiao_sync::SyncResponse;
use yibiao_sync::protocol::SchemaOffer;
use yibiao_testkit::Result;
use yibiao_testkit::bench::{BenchEnv, RatioTable, Summary, cpus, env_count, ms, pad, ratio};
use yibiao_testkit::data::{self, ENTITY, Household};
use yibiao_testkit::procfs::load_average;
use yibiao_testkit::rng::Rng;

const FIELD_COUNT: usize = Household::FIELD_COUNT;
const PAGE: u32 = 100;
const HOT_RECORDS: usize = 64;
const REOPENS: usize = 5;
const VERIFY_SAMPLE: usize = 200;
/// The village of the village queries (the one named in the schema's comments).
const QUERY_VILLAGE: &str = "tujiang";
/// Operations per write-amplification probe; small enough that no auto-checkpoint
/// (1000 WAL pages) restarts the WAL in between.
const PROBE_OPS: usize = 20;
/// Width of the label column of the summary table, in terminal columns.
const LABEL_WIDTH: usize = 66;

/// Fields the single-write phase changes, one of each kind cadres correct in the field.
const WRITE_FIELDS: &[&str] = &[
    "annual_income",
    "phone",
    "household_size",
    "dibao_status",
    "housing_safe",
    "visit_date",
];
const DIBAO_STATUSES: &[&str] = &["none", "enrolled", "special", "suspended"];

/// A new value of `field` that differs from `current` (so every write changes something).
fn new_value(
    rng: &mut Rng,
    schema: &Schema,
    field: &str,
    current: Option<&Value>,
) -> Result<Value> {
    loop {
        let json = match field {
            "annual_income" => data::income(rng),
            "phone" => serde_json::json!(data::phone(rng)),
            "household_size" => serde_json::json!(rng.range(1, 10)),
            "dibao_status" => serde_json::json!(rng.pick(DIBAO_STATUSES)),
            "housing_safe" => serde_json::json!(rng.chance(50)),
            "visit_date" => data::date(rng),
            other => return Err(format!("no generator for field {other}").into()),
        };
        let v = data::typed(schema, field, &json)?;
        if current != Some(&v) {
            return Ok(v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite files, read from a second connection
// ---------------------------------------------------------------------------------------

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

fn open_reader(db: &Path) -> Result<Connection> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
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

fn disk_use(db: &Path) -> Result<DiskUse> {
    let db_plus_wal = file_len(db) + file_len(&wal_path(db));
    let conn = open_reader(db)?;
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

fn page_size_of(db: &Path) -> Result<u64> {
    let conn = Connection::open(db)?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(size as u64)
}

/// Frames in the WAL file of `db` (32-byte header, then a 24-byte header per page).
fn wal_frames(db: &Path, page_size: u64) -> u64 {
    file_len(&wal_path(db)).saturating_sub(32) / (page_size + 24)
}

/// Which b-trees the WAL frames of `db` belong to: (table or index, frames), most first.
fn wal_owners(db: &Path, page_size: u64) -> Result<Vec<(String, u64)>> {
    let wal = std::fs::read(wal_path(db))?;
    let frame = 24 + page_size as usize;
    let mut pages: HashMap<u32, u64> = HashMap::new();
    let mut at = 32;
    while at + frame <= wal.len() {
        let pgno = u32::from_be_bytes([wal[at], wal[at + 1], wal[at + 2], wal[at + 3]]);
        *pages.entry(pgno).or_default() += 1;
        at += frame;
    }
    let conn = open_reader(db)?;
    let mut stmt = conn.prepare("SELECT pageno, name FROM dbstat")?;
    let owner: HashMap<u32, String> = stmt
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
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
fn btree_sizes(db: &Path) -> Result<Vec<(String, u64)>> {
    let conn = open_reader(db)?;
    let mut stmt =
        conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC, 1")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<std::result::Result<_, _>>()?;
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

fn store_content(db: &Path) -> Result<StoreContent> {
    let conn = open_reader(db)?;
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

/// The baseline: one JSON row per record, the same pragmas as the store.
fn open_plain(path: &Path) -> Result<Connection> {
    let conn = open_reader(path)?;
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS households (id TEXT PRIMARY KEY, village TEXT, body TEXT)",
    )?;
    Ok(conn)
}

fn fmt_bytes_per(total: u64, n: usize) -> String {
    format!("{:.0}", total as f64 / n as f64)
}

// ---------------------------------------------------------------------------------------
// The run, phase by phase
// ---------------------------------------------------------------------------------------

/// What every phase needs.
struct Bench {
    n: usize,
    writes: usize,
    seed: u64,
    cpus: usize,
    _dir: tempfile::TempDir,
    store_path: PathBuf,
    plain_path: PathBuf,
    schema: Arc<Schema>,
    cadre: CadreId,
    cache_cap: usize,
    villages: Vec<(String, String)>,
}

impl Bench {
    fn from_env() -> Result<Self> {
        let env = BenchEnv::from_env()?;
        let dir = env.tempdir(".tmp")?;
        let schema = Arc::new(Schema::baru_example());
        Ok(Self {
            n: env_count("YIBIAO_BENCH_RECORDS", 10_000)?,
            writes: env_count("YIBIAO_BENCH_WRITES", 1000)?,
            seed: env.seed,
            cpus: cpus(),
            store_path: dir.path().join("store.sqlite"),
            plain_path: dir.path().join("plain.sqlite"),
            _dir: dir,
            villages: data::villages(&schema),
            schema,
            cadre: CadreId::new("bench-cadre")?,
            cache_cap: StoreConfig::default().cached_documents,
        })
    }

    fn per(&self, bytes: u64) -> f64 {
        bytes as f64 / self.n as f64
    }

    fn print_header(&self) -> Result<()> {
        let (n, writes, seed, cpus) = (self.n, self.writes, self.seed, self.cpus);
        println!("yibiao store bench");
        println!(
            "N={n} records x {FIELD_COUNT} fields ({ENTITY}), writes={writes}, CPUs={cpus}, {} {}, seed={seed}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        println!(
            "files in {}",
            self.store_path.parent().unwrap_or(Path::new(".")).display()
        );
        // Other work on the machine shows up in every figure below.
        println!("load average at start: {}", load_average());
        if !self.schema.has_village(QUERY_VILLAGE) {
            return Err(format!("the schema has no village {QUERY_VILLAGE}").into());
        }
        println!(
            "store: WAL + synchronous=FULL, one transaction per write, cache {} docs, compact after {} chunks",
            self.cache_cap,
            StoreConfig::default().compact_after_chunks
        );
        Ok(())
    }

    /// `n` households from `seed`: the same sequence every time.
    fn households(&self, rng: &mut Rng, n: usize) -> Result<Vec<Household>> {
        (0..n)
            .map(|_| data::household(rng, &self.schema, &self.villages))
            .collect()
    }
}

/// Phase 1.
struct Created {
    ids: Vec<RecordId>,
    total: Duration,
    latency: Summary,
    rate: f64,
    disk: DiskUse,
}

fn create(b: &Bench, store: &Store, homes: &[Household]) -> Result<Created> {
    let n = b.n;
    println!("\n[1] create {n} records via Store::create (one durable transaction each)");
    let mut ids: Vec<RecordId> = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let t_all = Instant::now();
    for h in homes {
        let edits = h.edits();
        let t = Instant::now();
        let id = store.create(ENTITY, Some(&h.village), &edits)?;
        lat.push(t.elapsed());
        ids.push(id);
    }
    let total = t_all.elapsed();
    let latency = Summary::of(&lat);
    let rate = n as f64 / total.as_secs_f64();
    println!(
        "    total {:.0} ms, {rate:.0} records/s; per create median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        ms(total),
        latency.median_us,
        latency.p90_us,
        latency.p99_us,
        latency.max_us
    );
    let disk = disk_use(&b.store_path)?;
    let content = store_content(&b.store_path)?;
    println!(
        "    on disk: db+wal {} B/record before checkpoint, {} B/record after wal_checkpoint(TRUNCATE) (busy={}), live pages {} B/record",
        fmt_bytes_per(disk.db_plus_wal, n),
        fmt_bytes_per(disk.checkpointed, n),
        disk.checkpoint_busy,
        fmt_bytes_per(disk.live, n)
    );
    println!(
        "    content: {} chunks, automerge bytes {:.0} B/record; {} index rows, index payload {:.0} B/record",
        content.chunks,
        b.per(content.chunk_bytes as u64),
        content.index_rows,
        b.per(content.index_bytes as u64)
    );
    Ok(Created {
        ids,
        total,
        latency,
        rate,
        disk,
    })
}

/// Phase 2.
struct Reopened {
    first_open_ms: f64,
    open: Summary,
    first_query: Duration,
}

fn reopen(b: &Bench, store: Store) -> Result<(Store, Reopened)> {
    println!("\n[2] close and reopen (Store::open on the same file), {REOPENS} times");
    let mut store = store;
    let mut close_lat = Vec::new();
    let mut open_lat = Vec::new();
    for _ in 0..REOPENS {
        let t = Instant::now();
        drop(store);
        close_lat.push(t.elapsed());
        let t = Instant::now();
        store = Store::open(&b.store_path, b.schema.clone(), b.cadre.clone())?;
        open_lat.push(t.elapsed());
    }
    let first_q = Query {
        entity: Some(ENTITY.into()),
        village: Some(QUERY_VILLAGE.into()),
        limit: PAGE,
        ..Query::default()
    };
    let t = Instant::now();
    let first_page = store.query(&first_q)?;
    let first_query = t.elapsed();
    let close = Summary::of(&close_lat);
    let open = Summary::of(&open_lat);
    let first_open_ms = ms(open_lat[0]);
    println!(
        "    open: first {first_open_ms:.1} ms, median {:.1} ms, max {:.1} ms (target <= 100 ms); close (drop): median {:.1} ms",
        open.median_us / 1e3,
        open.max_us / 1e3,
        close.median_us / 1e3
    );
    println!(
        "    first query after reopen (village={QUERY_VILLAGE}, page of {PAGE}): {:.2} ms, {} records",
        ms(first_query),
        first_page.records.len()
    );
    Ok((
        store,
        Reopened {
            first_open_ms,
            open,
            first_query,
        },
    ))
}

/// Phase 2b: the server's next schema revision arrives in a sync response; the phone
/// stores it and rebuilds its index of every record with it, in one transaction.
fn new_revision(store: &Store, reopened: &Reopened) -> Result<()> {
    let current = store.schema();
    let text = current.source().replacen(
        &format!("revision = {} ", current.revision),
        &format!("revision = {} ", current.revision + 1),
        1,
    );
    let offer = SchemaOffer {
        revision: current.revision + 1,
        format: SCHEMA_FORMAT,
        text: Some(text.clone()),
    };
    let quiet = SyncResponse::default().encode().len();
    let carrying = SyncResponse {
        schema: Some(offer.clone()),
        ..SyncResponse::default()
    }
    .encode()
    .len();
    let t = Instant::now();
    let news = store.install_schema(&offer)?;
    let took = t.elapsed();
    let records = store.stats()?.records;
    println!(
        "\n[2b] schema revision {} by sync ({news:?}): {} bytes of text, +{} bytes on the wire (zstd, in the page); none when revisions match",
        offer.revision,
        text.len(),
        carrying - quiet
    );
    println!(
        "    install + index rebuild of {records} records: {:.1} ms ({:.1} x the median reopen)",
        ms(took),
        ratio(ms(took), reopened.open.median_us / 1e3)
    );
    Ok(())
}

/// One query of phase 3.
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
fn page_through(store: &Store, q: &Query) -> Result<PagedRun> {
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

/// The representative queries, each with the count the generated data says it finds.
fn queries(b: &Bench, homes: &[Household]) -> Result<Vec<(&'static str, Query, usize)>> {
    let expect = |pred: &dyn Fn(&Household) -> bool| homes.iter().filter(|h| pred(h)).count();
    let v0 = QUERY_VILLAGE.to_owned();
    let enrolled = Value::Choice("enrolled".into());
    let needle = "吉克";
    let dibao_required: Vec<String> = b
        .schema
        .form("dibao_check")
        .map(|f| f.required.clone())
        .ok_or("no dibao_check form")?;
    let household = || Some(ENTITY.to_owned());
    Ok(vec![
        (
            "village=tujiang",
            Query {
                entity: household(),
                village: Some(v0.clone()),
                ..Query::default()
            },
            expect(&|h| h.village == v0),
        ),
        (
            "dibao_status=enrolled",
            Query {
                entity: household(),
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
                entity: household(),
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
                entity: household(),
                village: Some(v0.clone()),
                equals: vec![("dibao_status".into(), enrolled.clone())],
                ..Query::default()
            },
            expect(&|h| h.village == v0 && h.get("dibao_status") == Some(&enrolled)),
        ),
    ])
}

/// Phase 3.
fn query(b: &Bench, store: &Store, homes: &[Household]) -> Result<Vec<QueryFigure>> {
    println!(
        "\n[3] queries (entity=household unless noted), paging through ALL results (page size {PAGE}), run twice"
    );
    let mut figures = Vec::new();
    for (label, q, expected) in queries(b, homes)? {
        let run1 = page_through(store, &q)?;
        let run2 = page_through(store, &q)?;
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
            expected,
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
        figures.push(fig);
    }
    Ok(figures)
}

/// One write of phase 4: (household index, field, new value).
type Op = (usize, &'static str, Value);

/// Phase 4.
struct Written {
    ops: Vec<Op>,
    all: Summary,
    cached: Summary,
    uncached: Summary,
    disk: DiskUse,
    compacted_disk: DiskUse,
    compacted_chunk_bytes: i64,
    /// Households written, checked against the store and the baseline (a sample).
    touched: Vec<usize>,
    store_mismatch: usize,
}

/// The writes of phase 4, half on a few hot records; `homes` takes every new value.
fn plan_writes(b: &Bench, rng: &mut Rng, homes: &mut [Household]) -> Result<Vec<Op>> {
    let n = b.n;
    let hot: Vec<usize> = (0..HOT_RECORDS.min(n)).map(|_| rng.below(n)).collect();
    let mut ops = Vec::with_capacity(b.writes);
    for _ in 0..b.writes {
        let idx = if rng.chance(50) {
            *rng.pick(&hot)
        } else {
            rng.below(n)
        };
        let field = *rng.pick(WRITE_FIELDS);
        let value = new_value(rng, &b.schema, field, homes[idx].get(field))?;
        homes[idx].set(field, value.clone());
        ops.push((idx, field, value));
    }
    Ok(ops)
}

fn write(
    b: &Bench,
    store: &Store,
    ids: &[RecordId],
    rng: &mut Rng,
    homes: &mut [Household],
) -> Result<Written> {
    println!(
        "\n[4] {} single-field Store::set on random records (half on {HOT_RECORDS} hot records)",
        b.writes
    );
    let ops = plan_writes(b, rng, homes)?;
    // The reopened store's cache starts empty.
    let mut lru = LruModel::new(b.cache_cap);
    let (mut all, mut cached, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
    let mut unchanged = 0usize;
    for (idx, field, value) in &ops {
        let hit = lru.touch(*idx);
        let t = Instant::now();
        let changed = store.set(ids[*idx], field, value.clone())?;
        let d = t.elapsed();
        if !changed {
            unchanged += 1;
        }
        all.push(d);
        if hit {
            cached.push(d)
        } else {
            uncached.push(d)
        }
    }
    let (all, cached, uncached) = (
        Summary::of(&all),
        Summary::of(&cached),
        Summary::of(&uncached),
    );
    for (label, s) in [
        ("all", all),
        ("cached doc", cached),
        ("uncached doc", uncached),
    ] {
        println!(
            "    {label:<13} n={:>5}  median {:>7.0} us  p90 {:>7.0} us  p99 {:>7.0} us  max {:>7.0} us  mean {:>7.0} us",
            s.n, s.median_us, s.p90_us, s.p99_us, s.max_us, s.mean_us
        );
    }
    if unchanged > 0 {
        println!("    NOTE: {unchanged} writes reported no change");
    }

    let disk = disk_use(&b.store_path)?;
    let content = store_content(&b.store_path)?;
    let t = Instant::now();
    let compacted = store.compact_all()?;
    let compact_time = t.elapsed();
    let compacted_disk = disk_use(&b.store_path)?;
    let compacted_content = store_content(&b.store_path)?;
    println!(
        "    after writes: {} chunks; compact_all rewrote {compacted} records in {:.0} ms -> {} chunks",
        content.chunks,
        ms(compact_time),
        compacted_content.chunks
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
    Ok(Written {
        ops,
        all,
        cached,
        uncached,
        disk,
        compacted_disk,
        compacted_chunk_bytes: compacted_content.chunk_bytes,
        touched,
        store_mismatch,
    })
}

/// Phase 5: the baseline.
struct Plain {
    insert_total: Duration,
    insert: Summary,
    rate: f64,
    set: Summary,
    created_disk: DiskUse,
    written_disk: DiskUse,
}

fn plain_baseline(b: &Bench, written: &Written, homes: &[Household]) -> Result<Plain> {
    println!(
        "\n[5] baseline: plain SQLite, one JSON row per record, same pragmas, one transaction each"
    );
    let n = b.n;
    let mut plain = open_plain(&b.plain_path)?;
    let plain_ids: Vec<String> = (0..n).map(|_| RecordId::new().to_string()).collect();
    // Insert the records as they were created (the pre-write values).
    let created = b.households(&mut Rng::new(b.seed), n)?;
    let mut insert_lat = Vec::with_capacity(n);
    let t_all = Instant::now();
    for (h, id) in created.iter().zip(&plain_ids) {
        let t = Instant::now();
        let body = h.json().to_string();
        let tx = plain.transaction()?;
        tx.prepare_cached("INSERT INTO households (id, village, body) VALUES (?1, ?2, ?3)")?
            .execute(params![id, h.village, body])?;
        tx.commit()?;
        insert_lat.push(t.elapsed());
    }
    let insert_total = t_all.elapsed();
    let insert = Summary::of(&insert_lat);
    let rate = n as f64 / insert_total.as_secs_f64();
    let created_disk = disk_use(&b.plain_path)?;
    println!(
        "    insert: total {:.0} ms, {rate:.0} records/s; median {:.0} us, p90 {:.0} us, p99 {:.0} us",
        ms(insert_total),
        insert.median_us,
        insert.p90_us,
        insert.p99_us
    );

    let mut set_lat = Vec::with_capacity(b.writes);
    for (idx, field, value) in &written.ops {
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
        set_lat.push(t.elapsed());
        if changed != 1 {
            return Err(format!("plain update hit {changed} rows").into());
        }
    }
    let set = Summary::of(&set_lat);
    println!(
        "    single-field json_set: median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        set.median_us, set.p90_us, set.p99_us, set.max_us
    );
    let mut plain_mismatch = 0usize;
    for &i in &written.touched {
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
    let written_disk = disk_use(&b.plain_path)?;
    drop(plain);
    println!(
        "    check of {} written records: store {} wrong values, plain {plain_mismatch} wrong values",
        written.touched.len(),
        written.store_mismatch
    );
    Ok(Plain {
        insert_total,
        insert,
        rate,
        set,
        created_disk,
        written_disk,
    })
}

/// Section 6: bytes on disk.
fn print_disk(
    b: &Bench,
    store: &Store,
    created: &Created,
    written: &Written,
    plain: &Plain,
) -> Result<()> {
    let per = |d: u64| b.per(d);
    println!(
        "\n[6] bytes on disk per record (db file after PRAGMA wal_checkpoint(TRUNCATE) from a second connection)"
    );
    println!(
        "    ours after create {:.0} B (db+wal before checkpoint {:.0} B), after {} writes {:.0} B, after compact_all {:.0} B (live pages {:.0} B)",
        per(created.disk.checkpointed),
        per(created.disk.db_plus_wal),
        b.writes,
        per(written.disk.checkpointed),
        per(written.compacted_disk.checkpointed),
        per(written.compacted_disk.live)
    );
    println!("    ours by table/index (dbstat, after compact_all), bytes/record:");
    for (name, bytes) in btree_sizes(&b.store_path)? {
        println!("      {name:<28} {:>7.0}", per(bytes));
    }
    println!(
        "    plain after insert {:.0} B, after writes {:.0} B",
        per(plain.created_disk.checkpointed),
        per(plain.written_disk.checkpointed)
    );
    let stats = store.stats()?;
    println!(
        "    store stats at the end: {} records, {} pending, {} conflicted, {} chunks; automerge {:.0} B/record after compaction",
        stats.records,
        stats.pending,
        stats.conflicted,
        stats.chunks,
        per(written.compacted_chunk_bytes as u64)
    );
    Ok(())
}

/// Phase 7: WAL pages appended per durable operation.
struct Amplification {
    page_size: u64,
    create: f64,
    set: f64,
    plain_insert: f64,
    plain_set: f64,
    create_owners: Vec<(String, u64)>,
    set_owners: Vec<(String, u64)>,
}

fn amplification(b: &Bench, store: Store, rng: &mut Rng) -> Result<Amplification> {
    println!("\n[7] WAL pages written per operation ({PROBE_OPS} ops each, from an emptied WAL)");
    let mut probe_homes = b.households(rng, PROBE_OPS)?;
    let page_size = page_size_of(&b.store_path)?;
    let frames_per_op = |db: &Path, size: u64| wal_frames(db, size) as f64 / PROBE_OPS as f64;
    disk_use(&b.store_path)?;
    let mut probe_ids = Vec::new();
    for h in &probe_homes {
        probe_ids.push(store.create(ENTITY, Some(&h.village), &h.edits())?);
    }
    let create = frames_per_op(&b.store_path, page_size);
    let create_owners = wal_owners(&b.store_path, page_size)?;
    disk_use(&b.store_path)?;
    for (i, id) in probe_ids.iter().enumerate() {
        let current = probe_homes[i].get("annual_income");
        let v = new_value(rng, &b.schema, "annual_income", current)?;
        probe_homes[i].set("annual_income", v.clone());
        store.set(*id, "annual_income", v)?;
    }
    let set = frames_per_op(&b.store_path, page_size);
    let set_owners = wal_owners(&b.store_path, page_size)?;
    let plain = open_plain(&b.plain_path)?;
    let plain_page_size = page_size_of(&b.plain_path)?;
    disk_use(&b.plain_path)?;
    let probe_plain_ids: Vec<String> = (0..PROBE_OPS)
        .map(|_| RecordId::new().to_string())
        .collect();
    for (h, id) in probe_homes.iter().zip(&probe_plain_ids) {
        plain.execute(
            "INSERT INTO households (id, village, body) VALUES (?1, ?2, ?3)",
            params![id, h.village, h.json().to_string()],
        )?;
    }
    let plain_insert = frames_per_op(&b.plain_path, plain_page_size);
    disk_use(&b.plain_path)?;
    for id in &probe_plain_ids {
        plain.execute(
            "UPDATE households SET body = json_set(body, '$.annual_income', json(?1)) WHERE id = ?2",
            params![data::income(rng).to_string(), id],
        )?;
    }
    let plain_set = frames_per_op(&b.plain_path, plain_page_size);
    drop(plain);
    drop(store);
    let a = Amplification {
        page_size,
        create,
        set,
        plain_insert,
        plain_set,
        create_owners,
        set_owners,
    };
    println!(
        "    create: ours {:.1} pages ({:.0} KiB) vs plain insert {:.1} pages",
        a.create,
        a.create * a.page_size as f64 / 1024.0,
        a.plain_insert
    );
    println!(
        "    single-field write: ours {:.1} pages ({:.0} KiB) vs plain json_set {:.1} pages",
        a.set,
        a.set * a.page_size as f64 / 1024.0,
        a.plain_set
    );
    println!("    pages per op by b-tree:");
    print_owners("create", &a.create_owners, PROBE_OPS);
    print_owners("field write", &a.set_owners, PROBE_OPS);
    Ok(a)
}

/// Everything measured.
struct Figures {
    created: Created,
    reopened: Reopened,
    queries: Vec<QueryFigure>,
    written: Written,
    plain: Plain,
    amp: Amplification,
}

fn print_summary(b: &Bench, f: &Figures) {
    let (c, r, w, p) = (&f.created, &f.reopened, &f.written, &f.plain);
    let bar = "=".repeat(LABEL_WIDTH + 38);
    println!("\n{bar}");
    println!(
        "SUMMARY  N={} records x {FIELD_COUNT} fields, CPUs={}, {} {}, writes={}",
        b.n,
        b.cpus,
        std::env::consts::OS,
        std::env::consts::ARCH,
        b.writes
    );
    println!("{bar}");
    let table = RatioTable::new(LABEL_WIDTH);
    table.header("plain JSON");
    table.row(
        "create: total",
        ms(c.total),
        Some(ms(p.insert_total)),
        " ms",
        0,
    );
    table.row("create: records/s", c.rate, Some(p.rate), "", 0);
    table.row(
        "create: median",
        c.latency.median_us,
        Some(p.insert.median_us),
        " us",
        0,
    );
    table.row(
        "create: p99",
        c.latency.p99_us,
        Some(p.insert.p99_us),
        " us",
        0,
    );
    table.row(
        "reopen: Store::open (first)",
        r.first_open_ms,
        None,
        " ms",
        1,
    );
    table.row(
        &format!("reopen: Store::open (median of {REOPENS})"),
        r.open.median_us / 1e3,
        None,
        " ms",
        1,
    );
    table.row(
        "reopen: first query page",
        ms(r.first_query),
        None,
        " ms",
        2,
    );
    query_and_write_rows(&table, f);
    disk_rows(&table, b, f);
    println!("{bar}");
    let field_write_ratio = ratio(w.all.median_us, p.set.median_us);
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: reopen <= 100 ms: {} ({:.1} ms); field write <= 5x plain: {} ({field_write_ratio:.2}x median, {:.2}x p99)",
        met(r.first_open_ms <= 100.0),
        r.first_open_ms,
        met(field_write_ratio <= 5.0),
        ratio(w.all.p99_us, p.set.p99_us)
    );
}

/// The summary's rows of queries and single-field writes.
fn query_and_write_rows(table: &RatioTable, f: &Figures) {
    let (w, p) = (&f.written, &f.plain);
    for q in &f.queries {
        let label = format!("query all pages: {} [{}]", q.label, q.count);
        table.row(&label, q.first_ms, None, " ms", 1);
    }
    for q in &f.queries {
        table.row(
            &format!("query page 1: {}", q.label),
            q.first_page_ms,
            None,
            " ms",
            1,
        );
    }
    table.row(
        "field write: median",
        w.all.median_us,
        Some(p.set.median_us),
        " us",
        0,
    );
    table.row(
        "field write: p90",
        w.all.p90_us,
        Some(p.set.p90_us),
        " us",
        0,
    );
    table.row(
        "field write: p99",
        w.all.p99_us,
        Some(p.set.p99_us),
        " us",
        0,
    );
    table.row(
        "field write: median, cached doc",
        w.cached.median_us,
        None,
        " us",
        0,
    );
    table.row(
        "field write: median, uncached doc",
        w.uncached.median_us,
        None,
        " us",
        0,
    );
}

/// The summary's rows of bytes on disk and WAL pages per operation.
fn disk_rows(table: &RatioTable, b: &Bench, f: &Figures) {
    let (c, w, p, a) = (&f.created, &f.written, &f.plain, &f.amp);
    let per = |d: u64| b.per(d);
    table.row(
        "bytes/record after create",
        per(c.disk.checkpointed),
        Some(per(p.created_disk.checkpointed)),
        "",
        0,
    );
    table.row(
        "bytes/record after writes",
        per(w.disk.checkpointed),
        Some(per(p.written_disk.checkpointed)),
        "",
        0,
    );
    table.row(
        "bytes/record after compact_all",
        per(w.compacted_disk.checkpointed),
        Some(per(p.written_disk.checkpointed)),
        "",
        0,
    );
    table.row(
        "WAL pages per create",
        a.create,
        Some(a.plain_insert),
        "",
        1,
    );
    table.row("WAL pages per field write", a.set, Some(a.plain_set), "", 1);
}

/// Paste-ready lines for a note.
fn print_note(b: &Bench, f: &Figures) {
    let (c, r, w, p, a) = (&f.created, &f.reopened, &f.written, &f.plain, &f.amp);
    let per = |d: u64| b.per(d);
    println!("\n--- note (paste) ---");
    println!(
        "yibiao store bench, N={} households x {FIELD_COUNT} fields, {} CPUs, {} {}, release, real SQLite file (WAL, synchronous=FULL)",
        b.n,
        b.cpus,
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "- create: {:.1} s total, {:.0} rec/s, median {:.0} us / p99 {:.0} us (plain JSON row: {:.0} rec/s, median {:.0} us / p99 {:.0} us; ours/plain median {:.2}x)",
        c.total.as_secs_f64(),
        c.rate,
        c.latency.median_us,
        c.latency.p99_us,
        p.rate,
        p.insert.median_us,
        p.insert.p99_us,
        ratio(c.latency.median_us, p.insert.median_us)
    );
    println!(
        "- reopen: {:.1} ms first, {:.1} ms median of {REOPENS}; first query page after reopen {:.2} ms",
        r.first_open_ms,
        r.open.median_us / 1e3,
        ms(r.first_query)
    );
    for q in &f.queries {
        println!(
            "- query {}: {} results, {} pages of {PAGE}, {:.1} ms all pages (page 1 {:.1} ms, slowest page {:.1} ms)",
            q.label, q.count, q.pages, q.first_ms, q.first_page_ms, q.slowest_page_ms
        );
    }
    println!(
        "- field write (Store::set, {} on random records): median {:.0} us, p90 {:.0} us, p99 {:.0} us (cached median {:.0} us, uncached {:.0} us); plain json_set median {:.0} us, p99 {:.0} us; ours/plain {:.2}x median, {:.2}x p99",
        b.writes,
        w.all.median_us,
        w.all.p90_us,
        w.all.p99_us,
        w.cached.median_us,
        w.uncached.median_us,
        p.set.median_us,
        p.set.p99_us,
        ratio(w.all.median_us, p.set.median_us),
        ratio(w.all.p99_us, p.set.p99_us)
    );
    println!(
        "- disk (db after wal_checkpoint TRUNCATE): {:.0} B/record after create, {:.0} after writes, {:.0} after compact_all; plain {:.0} B/record ({:.2}x)",
        per(c.disk.checkpointed),
        per(w.disk.checkpointed),
        per(w.compacted_disk.checkpointed),
        per(p.written_disk.checkpointed),
        ratio(
            per(w.compacted_disk.checkpointed),
            per(p.written_disk.checkpointed)
        )
    );
    println!(
        "- WAL pages appended per durable op: create {:.1} (plain insert {:.1}), field write {:.1} (plain json_set {:.1})",
        a.create, a.plain_insert, a.set, a.plain_set
    );
    println!("--- end note ---");
    println!("load average at end: {}", load_average());
}

fn main() -> Result<()> {
    let b = Bench::from_env()?;
    b.print_header()?;
    let mut rng = Rng::new(b.seed);
    let mut homes = b.households(&mut rng, b.n)?;
    let store = Store::open(&b.store_path, b.schema.clone(), b.cadre.clone())?;
    let created = create(&b, &store, &homes)?;
    let (store, reopened) = reopen(&b, store)?;
    new_revision(&store, &reopened)?;
    let queries = query(&b, &store, &homes)?;
    let written = write(&b, &store, &created.ids, &mut rng, &mut homes)?;
    let plain = plain_baseline(&b, &written, &homes)?;
    print_disk(&b, &store, &created, &written, &plain)?;
    let amp = amplification(&b, store, &mut rng)?;
    let figures = Figures {
        created,
        reopened,
        queries,
        written,
        plain,
        amp,
    };
    print_summary(&b, &figures);
    print_note(&b, &figures);
    Ok(())
}
