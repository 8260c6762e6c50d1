//! What every bench shares: settings from the environment, latency summaries, ratios
//! against a baseline run in the same process, and a small thread pool.
//!
//! Benches print figures; they never assert timings. The environment knobs:
//! - `YIBIAO_BENCH_QUICK=1` (or `true`): small sizes, for CI smoke runs;
//! - `YIBIAO_BENCH_SEED`: seed of the data generator (default 20260214);
//! - `YIBIAO_BENCH_DIR`: directory for temporary data (default: the system temp dir);
//! - bench-specific sizes (`YIBIAO_BENCH_RECORDS`, `YIBIAO_BENCH_DEVICES`, …) through
//!   [`env_parse`] and [`env_count`].

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::Result;

/// The default seed of every bench's data.
pub const DEFAULT_SEED: u64 = 20_260_214;

/// The environment variable `name` parsed as `T`; `None` when unset or blank.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={s} does not parse").into()),
        _ => Ok(None),
    }
}

/// A count from the environment variable `name` (at least 1), or `default`.
pub fn env_count(name: &str, default: usize) -> Result<usize> {
    match env_parse::<usize>(name)? {
        Some(0) => Err(format!("{name} must be at least 1").into()),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Settings every bench reads.
#[derive(Debug, Clone)]
pub struct BenchEnv {
    /// `YIBIAO_BENCH_QUICK`: a small run for CI.
    pub quick: bool,
    /// `YIBIAO_BENCH_SEED`.
    pub seed: u64,
    /// `YIBIAO_BENCH_DIR`.
    pub dir: Option<PathBuf>,
}

impl BenchEnv {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            quick: std::env::var("YIBIAO_BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true"),
            seed: env_parse("YIBIAO_BENCH_SEED")?.unwrap_or(DEFAULT_SEED),
            dir: std::env::var_os("YIBIAO_BENCH_DIR").map(PathBuf::from),
        })
    }

    /// `quick` when the run is quick, else `full`.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }

    /// A fresh temporary directory named `prefix…` under `YIBIAO_BENCH_DIR` (or the
    /// system temp dir), removed when dropped.
    pub fn tempdir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let mut b = tempfile::Builder::new();
        b.prefix(prefix);
        Ok(match &self.dir {
            Some(d) => b.tempdir_in(d)?,
            None => b.tempdir()?,
        })
    }
}

/// CPUs this process may use (0 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

/// Latencies of many operations, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Operations.
    pub n: usize,
    /// Median.
    pub median_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Summary {
    /// Summarizes `samples` (nearest-rank percentiles); all zero when empty.
    pub fn of(samples: &[Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let pct = |p: f64| us[nearest_rank(us.len(), p)];
        Self {
            n: us.len(),
            median_us: pct(0.50),
            p90_us: pct(0.90),
            p99_us: pct(0.99),
            max_us: us[us.len() - 1],
            mean_us: us.iter().sum::<f64>() / as_f64(us.len()),
        }
    }
}

/// Index of the nearest-rank `p` percentile in a sorted slice of `len > 0` items.
fn nearest_rank(len: usize, p: f64) -> usize {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 <= p * len <= len, a small count"
    )]
    let rank = (p * as_f64(len)).ceil() as usize;
    rank.clamp(1, len) - 1
}

/// The nearest-rank `p` percentile (0..=1) of sorted `durations`; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[nearest_rank(sorted.len(), p)]
}

/// `n` as a float, for figures (exact below 2^53).
pub fn as_f64(n: usize) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts of a bench are far below 2^53"
    )]
    let x = n as f64;
    x
}

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// MiB of `kib` KiB.
pub fn mib(kib: u64) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "memory sizes are far below 2^53 KiB"
    )]
    let x = kib as f64;
    x / 1024.0
}

/// `ours / baseline`; NaN when the baseline is not positive.
pub fn ratio(ours: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        ours / baseline
    } else {
        f64::NAN
    }
}

/// `ours / baseline` as `1.23x`, or `-` without a baseline.
pub fn ratio_text(ours: u64, baseline: u64) -> String {
    if baseline == 0 {
        "-".into()
    } else {
        #[allow(clippy::cast_precision_loss, reason = "byte counts are far below 2^53")]
        let r = ours as f64 / baseline as f64;
        format!("{r:.2}x")
    }
}

/// `s` padded with spaces to `width` terminal columns (CJK characters take two).
pub fn pad(s: &str, width: usize) -> String {
    let cols: usize = s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(cols)))
}

/// A table of figures, ours beside a baseline measured in the same process, with the
/// ratio: `metric  ours  baseline  ours/baseline`.
#[derive(Debug, Clone)]
pub struct RatioTable {
    label_width: usize,
}

impl RatioTable {
    /// A table whose label column is `label_width` terminal columns wide.
    pub fn new(label_width: usize) -> Self {
        Self { label_width }
    }

    /// Prints the header row, naming the baseline.
    pub fn header(&self, baseline: &str) {
        println!(
            "{} {:>12} {:>12} {:>10}",
            pad("metric", self.label_width),
            "ours",
            baseline,
            format!(
                "ours/{}",
                baseline.split_whitespace().next().unwrap_or(baseline)
            )
        );
    }

    /// Prints one row: `ours` and, when measured, the baseline, with `prec` decimals and
    /// `unit` after each figure.
    pub fn row(&self, label: &str, ours: f64, baseline: Option<f64>, unit: &str, prec: usize) {
        let ours_s = format!("{ours:.prec$}{unit}");
        match baseline {
            Some(b) => {
                let b_s = format!("{b:.prec$}{unit}");
                println!(
                    "{} {ours_s:>12} {b_s:>12} {:>9.2}x",
                    pad(label, self.label_width),
                    ratio(ours, b)
                );
            }
            None => println!(
                "{} {ours_s:>12} {:>12} {:>10}",
                pad(label, self.label_width),
                "-",
                "-"
            ),
        }
    }
}

/// Runs `f(0..n)` on `threads` threads; results in index order.
pub fn run_pool<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
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
                    if let Ok(mut slots) = out.lock() {
                        slots[i] = Some(r);
                    }
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn nearest_rank_percentiles_pick_a_sample() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&d);
        assert_eq!(
            (s.median_us, s.p90_us, s.p99_us, s.max_us),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(percentile(&d, 1.0), Duration::from_micros(100));
    }

    #[test]
    fn the_pool_returns_results_in_index_order() {
        assert_eq!(
            run_pool(10, 3, |i| i * 2),
            (0..10).map(|i| i * 2).collect::<Vec<_>>()
        );
    }
}
