//! Attachment benchmark (ADR 0013): photos uploaded over the weak-link profiles of the
//! brief through the fault proxy, against a real `yibiao-server` process. Prints figures,
//! never asserts them. Not in CI (a 200 KB photo is 80 s of `mountain-2g` airtime).
//!
//! Run: `cargo bench -p yibiao-tests --bench attach`
//!
//! Environment:
//! - `YIBIAO_BENCH_ATTACH_KB`: photo sizes in KB, comma-separated (default `200,2000`;
//!   `200` when quick);
//! - `YIBIAO_BENCH_ATTACH_PROFILES`: profiles (default `mountain-2g,edge`; `edge` when
//!   quick);
//! - `YIBIAO_BENCH_QUICK=1`, `YIBIAO_BENCH_SEED`, `YIBIAO_BENCH_DIR` as the other benches.
//!
//! Per profile and size: the time to upload the photo (cuts included), chunk bytes sent
//! and whole HTTP bytes up (headers, `HEAD`s, cut attempts) as ratios to the photo's size
//! (goal: at most 1.10), and the latency of a record sync made by another phone while the
//! photo uploads, as a ratio to the same sync with no upload, in the same run. The proxy
//! shapes each connection on its own, so that ratio shows what the server and the phone
//! add, not radio contention between the two transfers.
//!
//! **A cut mid-way.** The profile's own cuts hit only the first request of a connection
//! (the proxy frames no later request), and the phone sends its chunks one after another
//! on one kept-alive connection, so a long upload would rarely meet one. The bench
//! therefore cuts every upload itself: once half the photo is acknowledged it waits half
//! a chunk's airtime (so the cut falls inside a chunk body) and takes the link down for a
//! moment, which cuts the open connection; the phone waits, asks `HEAD` and goes on
//! from what the server holds. The line `cut mid-way` prints the bytes sent again
//! (chunk bytes sent beyond the photo's size, and the same as a share of the size) and
//! the time to complete; at most one chunk (a sixteenth of the photo, 8 to 32 KiB:
//! `blobs::upload::chunk_for`) should be sent again per cut.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::Store;
use yibiao_store::blobs::{self, Blobs, UploadOptions};
use yibiao_store::http::HttpTransport;
use yibiao_sync::session::SyncOptions;
use yibiao_testkit::bench::{BenchEnv, ms, ratio};
use yibiao_testkit::server::{ServerOptions, ServerProcess};
use yibiao_tests::proxy::{LinkProfile, Proxy};

use yibiao_testkit::Result;

fn photo(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    let mut x = seed | 1;
    bytes.extend((4..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    bytes
}

struct Phone {
    store: Store,
    blobs: Blobs,
    transport: HttpTransport,
}

fn phone(dir: &Path, name: &str, url: &str, token: &str) -> Result<Phone> {
    let path = dir.join(format!("{name}.sqlite"));
    let store = Store::open(
        &path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu")?,
    )?;
    let blobs = Blobs::open(Blobs::dir_beside(&path))?;
    Ok(Phone {
        store,
        blobs,
        transport: HttpTransport::new(url, token, Duration::from_secs(120)),
    })
}

fn sync(p: &Phone) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..10 {
        let result =
            yibiao_store::sync(&p.store, &p.transport, &SyncOptions::default(), &mut |_| {});
        if result.is_ok_and(|r| r.complete) {
            return Ok(started.elapsed());
        }
    }
    Err("record sync never completed".into())
}

/// One record edit and its sync: the latency a cadre waits for.
fn edit_and_sync(p: &Phone, id: RecordId, n: usize) -> Result<Duration> {
    p.store.update(
        id,
        &[FieldEdit::Set(
            "notes".into(),
            Value::Text(format!("note {n}")),
        )],
    )?;
    sync(p)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn run_one(env: &BenchEnv, profile: &LinkProfile, kb: usize) -> Result<()> {
    let dir = env.tempdir("yibiao-attach-bench")?;
    let server = ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_server_under_test")),
        &dir.path().join("data"),
        ServerOptions {
            no_rate_limit: true,
            ..ServerOptions::default()
        },
    )?;
    let proxy = Proxy::start(server.addr(), profile.clone(), env.seed)?;
    let token_a = server.add_device("phone-a", "amu", Some("tujiang"))?;
    let token_b = server.add_device("phone-b", "amu", Some("tujiang"))?;
    let a = phone(dir.path(), "a", &proxy.url(), &token_a)?;
    let b = phone(dir.path(), "b", &proxy.url(), &token_b)?;
    let house = |p: &Phone| {
        p.store.create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set(
                "household_head".into(),
                Value::Text("阿木".into()),
            )],
        )
    };
    let id_a = house(&a)?;
    let id_b = house(&b)?;
    let bytes = photo(env.seed ^ kb as u64, kb * 1000);
    a.blobs
        .attach(&a.store, id_a, "photo", &bytes, "image/jpeg", "院子.jpg")?;
    sync(&a)?;
    sync(&b)?;
    let quiet: Vec<Duration> = (0..3)
        .map(|n| edit_and_sync(&b, id_b, n))
        .collect::<Result<_>>()?;

    let up_before = proxy.stats().bytes_up;
    let started = Instant::now();
    let options = UploadOptions::default();
    let chunk = blobs::upload::chunk_for(bytes.len(), options.chunk_bytes);
    let cutter = Cutter::new(bytes.len() as u64 / 2, airtime(profile, chunk) / 2);
    let (report, busy) = std::thread::scope(|s| -> Result<_> {
        let upload = s.spawn(|| {
            let done = blobs::upload(&a.blobs, &a.transport, &options, &mut |p| {
                cutter.held.store(p.held, Ordering::SeqCst);
            })
            .map(|r| (r, started.elapsed()));
            cutter.finished.store(true, Ordering::SeqCst);
            done
        });
        s.spawn(|| cutter.run(&proxy));
        let mut busy = Vec::new();
        for n in 0..3 {
            std::thread::sleep(Duration::from_secs(2));
            if upload.is_finished() {
                break;
            }
            busy.push(edit_and_sync(&b, id_b, 10 + n)?);
        }
        let (report, took) = upload.join().map_err(|_| "upload thread panicked")??;
        Ok(((report, took), busy))
    })?;
    let (report, took) = report;
    let up = proxy.stats().bytes_up - up_before;
    let size = bytes.len() as f64;
    println!(
        "{:<12} {:>6} KB  {:>8.1} s  sent/size {:>5.3}  http-up/size {:>5.3}  chunks {:>3}  cuts/failures {:>2}  {}",
        profile.name,
        kb,
        took.as_secs_f64(),
        ratio(report.bytes_sent as f64, size),
        ratio(up as f64, size),
        report.chunks_sent,
        report.failures,
        if report.uploaded == 1 {
            "complete"
        } else {
            "NOT complete"
        },
    );
    let resent = report.bytes_sent.saturating_sub(bytes.len() as u64);
    println!(
        "{:<12} {:>6} KB  cut mid-way: {}  re-sent {} B of {} B ({:.3} of the photo; a chunk is {} B)  complete in {:.1} s",
        profile.name,
        kb,
        match cutter.cut_at.load(Ordering::SeqCst) {
            0 => "none (finished first)".to_owned(),
            at => format!("at {:.0}%", 100.0 * at as f64 / size),
        },
        resent,
        bytes.len(),
        ratio(resent as f64, size),
        chunk,
        took.as_secs_f64(),
    );
    let (q, m) = (median(quiet), median(busy.clone()));
    println!(
        "{:<12} {:>6} KB  record sync: {:.0} ms quiet, {:.0} ms during the upload ({} samples): ratio {:.2}",
        profile.name,
        kb,
        ms(q),
        ms(m),
        busy.len(),
        ratio(ms(m), ms(q)),
    );
    Ok(())
}

/// How long `bytes` take up the link of `profile` (no cap: no time).
fn airtime(profile: &LinkProfile, bytes: usize) -> Duration {
    profile.up_bps.map_or(Duration::ZERO, |bps| {
        Duration::from_secs_f64(bytes as f64 * 8.0 / bps as f64)
    })
}

/// Cuts the upload once: when `half` bytes are acknowledged, waits `into_chunk`, then
/// takes the link down (cutting the open connection mid-chunk) and up again.
struct Cutter {
    half: u64,
    into_chunk: Duration,
    /// Bytes the server holds, as the upload's progress says.
    held: AtomicU64,
    /// The upload ended (the cutter stops waiting).
    finished: AtomicBool,
    /// Bytes held when the link was cut (0: no cut).
    cut_at: AtomicU64,
}

impl Cutter {
    fn new(half: u64, into_chunk: Duration) -> Self {
        Self {
            half,
            into_chunk,
            held: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            cut_at: AtomicU64::new(0),
        }
    }

    fn run(&self, proxy: &Proxy) {
        while self.held.load(Ordering::SeqCst) < self.half {
            if self.finished.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(self.into_chunk);
        if self.finished.load(Ordering::SeqCst) {
            return;
        }
        self.cut_at
            .store(self.held.load(Ordering::SeqCst).max(1), Ordering::SeqCst);
        proxy.set_down(true);
        std::thread::sleep(Duration::from_millis(300));
        proxy.set_down(false);
    }
}

fn main() -> Result<()> {
    let env = BenchEnv::from_env()?;
    let sizes = std::env::var("YIBIAO_BENCH_ATTACH_KB")
        .unwrap_or_else(|_| env.pick("200", "200,2000").to_owned());
    let profiles = std::env::var("YIBIAO_BENCH_ATTACH_PROFILES")
        .unwrap_or_else(|_| env.pick("edge", "mountain-2g,edge").to_owned());
    println!(
        "attachments over the weak-link profiles (chunks of a sixteenth, 8 to 32 KiB; one photo each, cut once mid-way)"
    );
    for name in profiles.split(',') {
        let profile = LinkProfile::by_name(name.trim())
            .ok_or_else(|| format!("unknown profile `{name}`; use {:?}", LinkProfile::NAMES))?;
        for kb in sizes.split(',') {
            run_one(&env, &profile, kb.trim().parse()?)?;
        }
    }
    Ok(())
}
