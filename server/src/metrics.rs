//! Prometheus metrics an operator would graph: syncs, bytes, pages, refusals, latencies,
//! records served to departments. Hand-rolled on atomics: a dozen series do not need a
//! metrics framework, and the text format is stable.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram in seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every series the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sync exchanges answered with 200.
    pub syncs: AtomicU64,
    /// Sync exchanges that failed (4xx/5xx).
    pub sync_errors: AtomicU64,
    /// Sync request bytes received.
    pub sync_bytes_in: AtomicU64,
    /// Sync response bytes sent.
    pub sync_bytes_out: AtomicU64,
    /// Documents accepted from devices.
    pub docs_accepted: AtomicU64,
    /// Documents sent to devices.
    pub docs_sent: AtomicU64,
    /// Responses that left more to pull (multi-page syncs).
    pub pages_with_more: AtomicU64,
    /// Refused documents by reason.
    pub refusals: Mutex<BTreeMap<String, u64>>,
    /// Sync latency.
    pub sync_seconds: Histogram,
    /// Records served to departments, by format.
    pub department_records: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests refused by the rate limiter.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Counts a refusal.
    pub fn refused(&self, code: &str) {
        let mut m = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code.to_owned()).or_default() += 1;
    }

    /// Counts records served to a department.
    pub fn served(&self, format: &'static str, n: u64) {
        let mut m = self
            .department_records
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry(format).or_default() += n;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, records: u64) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "yibiao_syncs_total",
            "Sync exchanges answered.",
            &self.syncs,
        );
        counter(
            &mut out,
            "yibiao_sync_errors_total",
            "Sync exchanges refused as a whole (4xx/5xx).",
            &self.sync_errors,
        );
        counter(
            &mut out,
            "yibiao_sync_bytes_in_total",
            "Sync request bytes received.",
            &self.sync_bytes_in,
        );
        counter(
            &mut out,
            "yibiao_sync_bytes_out_total",
            "Sync response bytes sent.",
            &self.sync_bytes_out,
        );
        counter(
            &mut out,
            "yibiao_sync_docs_accepted_total",
            "Documents accepted from devices.",
            &self.docs_accepted,
        );
        counter(
            &mut out,
            "yibiao_sync_docs_sent_total",
            "Documents sent to devices.",
            &self.docs_sent,
        );
        counter(
            &mut out,
            "yibiao_sync_pages_with_more_total",
            "Responses that left more to pull.",
            &self.pages_with_more,
        );
        counter(
            &mut out,
            "yibiao_rate_limited_total",
            "Requests refused by the rate limiter.",
            &self.rate_limited,
        );
        let _ = writeln!(
            out,
            "# HELP yibiao_sync_refusals_total Documents refused, by reason.\n# TYPE yibiao_sync_refusals_total counter"
        );
        for (code, n) in self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "yibiao_sync_refusals_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP yibiao_department_records_total Records served to departments, by format.\n# TYPE yibiao_department_records_total counter"
        );
        for (format, n) in self
            .department_records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "yibiao_department_records_total{{format=\"{format}\"}} {n}"
            );
        }
        self.sync_seconds.render(
            &mut out,
            "yibiao_sync_duration_seconds",
            "Time to handle one sync exchange.",
        );
        let _ = writeln!(
            out,
            "# HELP yibiao_records Records held by the server.\n# TYPE yibiao_records gauge\nyibiao_records {records}"
        );
        out
    }
}
