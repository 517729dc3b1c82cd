//! What the machine is (from /proc/cpuinfo, /proc/meminfo and uname), how much CPU each
//! process of a run used during a measurement (from /proc/<pid>/stat), so a result can say
//! which process was busy, and the peak resident memory of a process while a measurement runs
//! ([`PeakRss`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub fd_limit: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        let kernel = std::process::Command::new("uname")
            .arg("-srm")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let fd_limit = std::fs::read_to_string("/proc/self/limits")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or("unknown")
            .to_owned();
        Self {
            cpu_model,
            cores,
            memory_gib,
            kernel,
            fd_limit,
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB RAM, {}, open files limit {}",
            self.cores, self.cpu_model, self.memory_gib, self.kernel, self.fd_limit
        )
    }
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// The pid in a pid file (e.g. var/bench/pids/redis.pid).
pub fn pid_from_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Named processes whose CPU use is measured over a window.
#[derive(Debug, Clone, Default)]
pub struct CpuWatch {
    pids: Vec<(String, u32)>,
}

/// CPU use of each watched process over a window, in cores (1.0 = one core busy).
pub type CpuUse = BTreeMap<String, f64>;

pub struct CpuSample {
    at: Instant,
    secs: Vec<(String, u32, Option<f64>)>,
    machine: Option<f64>,
}

/// The name under which the whole machine's busy time is reported (every process, this run's
/// or not: the difference to the named processes is other work on the machine).
pub const MACHINE: &str = "whole machine";

/// Busy CPU time of the whole machine so far (all cores), in seconds, from /proc/stat.
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0.0);
    Some((total - idle) / TICKS_PER_SEC)
}

impl CpuWatch {
    pub fn add(&mut self, name: &str, pid: u32) {
        self.pids.retain(|(n, _)| n != name);
        self.pids.push((name.to_owned(), pid));
    }

    /// The backing services of a profile, from its pid files.
    pub fn with_services(pids_dir: &Path) -> Self {
        let mut watch = Self::default();
        for name in ["redis", "mariadb", "mongo"] {
            if let Some(pid) = pid_from_file(&pids_dir.join(format!("{name}.pid"))) {
                watch.add(name, pid);
            }
        }
        watch.add("loadgen", std::process::id());
        watch
    }

    pub fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            secs: self
                .pids
                .iter()
                .map(|(n, p)| (n.clone(), *p, cpu_secs(*p)))
                .collect(),
            machine: machine_busy_secs(),
        }
    }
}

impl CpuSample {
    /// Cores used by each process between this sample and now.
    pub fn since(&self) -> CpuUse {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let cores = |used: f64| (used / wall * 100.0).round() / 100.0;
        let mut out: CpuUse = self
            .secs
            .iter()
            .filter_map(|(name, pid, before)| {
                Some((name.clone(), cores(cpu_secs(*pid)? - (*before)?)))
            })
            .collect();
        if let (Some(before), Some(now)) = (self.machine, machine_busy_secs()) {
            out.insert(MACHINE.to_owned(), cores(now - before));
        }
        out
    }
}

/// The highest resident memory (VmRSS) of one process, read every `every` on a thread of its
/// own (so a busy async runtime does not delay the samples) until [`PeakRss::stop`] (or until
/// it is dropped, when a measurement fails half-way).
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<RssPeak>>,
}

/// What a [`PeakRss`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RssPeak {
    pub peak_bytes: u64,
    pub samples: usize,
}

impl PeakRss {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = RssPeak::default();
            loop {
                if let Ok(rss) = crate::server::rss_bytes(pid) {
                    seen.peak_bytes = seen.peak_bytes.max(rss);
                    seen.samples += 1;
                }
                if stopping.load(Ordering::Relaxed) {
                    return seen;
                }
                std::thread::sleep(every);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling (after one last sample) and returns the peak.
    pub fn stop(mut self) -> RssPeak {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
