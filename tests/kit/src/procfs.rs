//! Memory and CPU of a process, read from Linux's `/proc` (benches print them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Result;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// This process.
    This,
    /// Another process.
    Of(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::This => "/proc/self".into(),
            Pid::Of(pid) => format!("/proc/{pid}"),
        }
    }
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), or a count (`Threads:`).
pub fn status_field(pid: Pid, name: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("{}/status", pid.dir()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no {name} in {}/status", pid.dir()).into())
}

/// Memory of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Peak resident set (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// Resident set now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

/// `VmHWM`, `VmRSS` and `Threads` of `pid`.
pub fn memory(pid: Pid) -> Result<Memory> {
    Ok(Memory {
        hwm_kib: status_field(pid, "VmHWM:")?,
        rss_kib: status_field(pid, "VmRSS:")?,
        threads: status_field(pid, "Threads:")?,
    })
}

/// Resets `VmHWM` of `pid` to its current RSS; false when the kernel refuses.
pub fn reset_hwm(pid: Pid) -> bool {
    std::fs::write(format!("{}/clear_refs", pid.dir()), "5").is_ok()
}

/// User + system CPU seconds of `pid`, from `/proc/<pid>/stat` (clock ticks of 10 ms,
/// the Linux default).
pub fn cpu_secs(pid: Pid) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("{}/stat", pid.dir()))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let tick = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<f64>()?
            / 100.0)
    };
    Ok(tick(14)? + tick(15)?)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them (`?` when
/// unreadable). Other work on the machine shows up in every timing.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Samples `VmRSS` of a process every `every` on a thread until finished.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u64, u64)>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: Pid, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut peak, mut n) = (0u64, 0u64);
            loop {
                if let Ok(rss) = status_field(pid, "VmRSS:") {
                    peak = peak.max(rss);
                    n += 1;
                }
                if s.load(Ordering::SeqCst) {
                    return (peak, n);
                }
                std::thread::sleep(every);
            }
        });
        Self { stop, handle }
    }

    /// Stops sampling; returns (peak `VmRSS` in KiB, samples taken).
    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or((0, 0))
    }
}
