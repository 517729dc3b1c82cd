//! The result of a benchmark run: every figure next to its limit and target, the exactly-once
//! checks, Redis work, CPU use, and the curves the plots draw. Written as JSON (machine
//! readable) and as Markdown (a summary, or the whole docs/benchmarks.md).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::ledger::{Latency, LedgerReport};
use crate::redis_stats::RedisWork;
use crate::sys::{CpuUse, Machine};
use crate::table::Table;

/// One figure of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub value: f64,
    pub unit: String,
    /// What bounds this figure, measured in the same run.
    pub limit_name: Option<String>,
    pub limit: Option<f64>,
    /// value / limit
    pub ratio: Option<f64>,
    /// The target, as text (e.g. "≥ 0.8 × limit").
    pub target: Option<String>,
    /// Whether the target was met; only judged at full size.
    pub pass: Option<bool>,
    /// For a figure repeated over rounds: the spread of the value and of the limit.
    pub spread: Option<Spread>,
    pub limit_spread: Option<Spread>,
}

impl Row {
    pub fn new(scenario: &str, figure: &str, value: f64, unit: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            figure: figure.to_owned(),
            value,
            unit: unit.to_owned(),
            limit_name: None,
            limit: None,
            ratio: None,
            target: None,
            pass: None,
            spread: None,
            limit_spread: None,
        }
    }

    /// The spread of the value over its rounds.
    pub fn spread(mut self, spread: Option<Spread>) -> Self {
        self.spread = spread;
        self
    }

    /// The spread of the limit over its rounds.
    pub fn limit_spread(mut self, spread: Option<Spread>) -> Self {
        self.limit_spread = spread;
        self
    }

    pub fn limit(mut self, name: &str, limit: f64) -> Self {
        self.limit_name = Some(name.to_owned());
        self.limit = Some(limit);
        self.ratio = (limit > 0.0).then(|| self.value / limit);
        self
    }

    /// A target and whether it was met (`judge` false leaves pass/miss open).
    pub fn target(mut self, text: &str, met: bool, judge: bool) -> Self {
        self.target = Some(text.to_owned());
        self.pass = judge.then_some(met);
        self
    }
}

/// How a figure measured in several rounds varied: the lowest, the median and the highest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Spread {
    /// The spread of these values (None for none).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Self {
            min: sorted[0],
            median,
            max: sorted[n - 1],
            rounds: n,
        })
    }

    /// ` (min–max, N rounds)` after a figure; nothing for a single round.
    pub fn suffix(&self) -> String {
        if self.rounds < 2 {
            return String::new();
        }
        format!(
            " ({}–{}, {} rounds)",
            num(self.min),
            num(self.max),
            self.rounds
        )
    }
}

/// One round of upload throughput: the files through `POST /files`, then the same bytes
/// written straight into the store.
#[derive(Debug, Clone, Serialize)]
pub struct UploadRound {
    pub round: usize,
    pub files: usize,
    pub file_bytes: u64,
    pub clients: usize,
    pub upload_secs: f64,
    pub upload_mib_per_sec: f64,
    pub raw_secs: f64,
    pub raw_mib_per_sec: f64,
}

impl UploadRound {
    /// Upload throughput ÷ raw write throughput.
    pub fn ratio(&self) -> f64 {
        if self.raw_mib_per_sec > 0.0 {
            self.upload_mib_per_sec / self.raw_mib_per_sec
        } else {
            0.0
        }
    }
}

/// One round of the upload memory measurement: C clients uploading at once to a fresh server.
#[derive(Debug, Clone, Serialize)]
pub struct UploadMemoryRound {
    pub round: usize,
    pub clients: usize,
    pub file_bytes: u64,
    pub secs: f64,
    pub mib_per_sec: f64,
    /// Server RSS after the clients' first requests, before the uploads.
    pub idle_rss_bytes: u64,
    /// The highest server RSS sampled while they uploaded.
    pub peak_rss_bytes: u64,
    pub samples: usize,
}

impl UploadMemoryRound {
    /// Peak − idle, in MB (10⁶ bytes, the unit of the target).
    pub fn growth_mb(&self) -> f64 {
        self.peak_rss_bytes.saturating_sub(self.idle_rss_bytes) as f64 / 1e6
    }
}

/// MiB per second of `bytes` in `secs`.
pub fn mib_per_sec(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1_048_576.0 / secs.max(1e-9)
}

/// The exactly-once check of one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub scenario: String,
    pub label: String,
    pub reconnects: u64,
    pub ledger: LedgerReport,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.ledger.exactly_once()
    }
}

/// A named series of (x, y) points for a plot.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Latency percentiles of one measurement, for the latency distribution plot:
/// (percentile, milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub name: String,
    pub percentiles: Vec<(f64, f64)>,
}

/// Latency of one measurement at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRecord {
    pub scenario: String,
    pub system: String,
    /// Messages per second offered (0 = as fast as the window allows).
    pub offered: f64,
    /// Messages acked per second.
    pub achieved: f64,
    /// Send → receive.
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuRecord {
    pub scenario: String,
    pub label: String,
    pub cores: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedisRecord {
    pub scenario: String,
    pub label: String,
    pub work: RedisWork,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub size: String,
    pub date: String,
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    pub redis: Vec<RedisRecord>,
    pub cpu: Vec<CpuRecord>,
    /// Throughput vs offered rate, per system.
    pub throughput_curves: Vec<Curve>,
    pub latency_distributions: Vec<Distribution>,
    pub latencies: Vec<LatencyRecord>,
    /// The rounds of the uploads scenario.
    pub upload_rounds: Vec<UploadRound>,
    pub upload_memory_rounds: Vec<UploadMemoryRound>,
    /// Observations worth a sentence in the report (settings, anomalies).
    pub notes: Vec<String>,
    pub errors: Vec<String>,
    pub wall_secs: f64,
    /// The sizes the run used (pairs, window, durations ...), by name.
    pub params: std::collections::BTreeMap<String, String>,
}

impl Report {
    pub fn new(size: &str) -> Self {
        Self {
            size: size.to_owned(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: Machine::describe(),
            rows: Vec::new(),
            checks: Vec::new(),
            redis: Vec::new(),
            cpu: Vec::new(),
            throughput_curves: Vec::new(),
            latency_distributions: Vec::new(),
            latencies: Vec::new(),
            upload_rounds: Vec::new(),
            upload_memory_rounds: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
            wall_secs: 0.0,
            params: std::collections::BTreeMap::new(),
        }
    }

    pub fn check(&mut self, scenario: &str, label: &str, ledger: LedgerReport, reconnects: u64) {
        self.checks.push(Check {
            scenario: scenario.to_owned(),
            label: label.to_owned(),
            reconnects,
            ledger,
        });
    }

    pub fn cpu(&mut self, scenario: &str, label: &str, cores: CpuUse) {
        self.cpu.push(CpuRecord {
            scenario: scenario.to_owned(),
            label: label.to_owned(),
            cores,
        });
    }

    pub fn curve_point(&mut self, name: &str, x: f64, y: f64) {
        match self.throughput_curves.iter_mut().find(|c| c.name == name) {
            Some(curve) => curve.points.push((x, y)),
            None => self.throughput_curves.push(Curve {
                name: name.to_owned(),
                points: vec![(x, y)],
            }),
        }
    }

    /// Puts every table in scenario order (1:1 throughput, latency, fan-out, idle, two
    /// processes, uploads), whatever order the scenarios ran in.
    pub fn sort_by_scenario(&mut self) {
        fn rank(scenario: &str) -> u8 {
            match scenario {
                s if s.starts_with("1:1 throughput") => 1,
                s if s.starts_with("1:1 latency") => 2,
                s if s.starts_with("fan-out") => 3,
                s if s.starts_with("idle") => 4,
                s if s.starts_with("two processes") => 5,
                s if s.starts_with("uploads") => 6,
                _ => 7,
            }
        }
        self.rows.sort_by_key(|r| rank(&r.scenario));
        self.checks.sort_by_key(|c| rank(&c.scenario));
        self.latencies.sort_by_key(|l| rank(&l.scenario));
        self.cpu.sort_by_key(|c| rank(&c.scenario));
        self.redis.sort_by_key(|r| rank(&r.scenario));
    }

    /// Every exactly-once check passed and no scenario failed.
    pub fn all_checks_ok(&self) -> bool {
        self.errors.is_empty() && self.checks.iter().all(Check::ok)
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The headline table: scenario, figure, value, limit, ratio, target, pass/miss.
    pub fn table(&self) -> String {
        let mut table = Table::new(
            &[
                "scenario",
                "figure",
                "value",
                "limit (same run)",
                "ratio",
                "target",
                "result",
            ],
            "",
        );
        for r in &self.rows {
            let limit = match (&r.limit_name, r.limit) {
                (Some(name), Some(v)) => format!(
                    "{}{} {name}",
                    num(v),
                    r.limit_spread.map(|s| s.suffix()).unwrap_or_default()
                ),
                _ => String::new(),
            };
            let result = match r.pass {
                Some(true) => "pass",
                Some(false) => "**miss**",
                None => "",
            };
            table.row([
                r.scenario.clone(),
                r.figure.clone(),
                format!(
                    "{} {}{}",
                    num(r.value),
                    r.unit,
                    r.spread.map(|s| s.suffix()).unwrap_or_default()
                ),
                limit,
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
                r.target.clone().unwrap_or_default(),
                result.to_owned(),
            ]);
        }
        table.finish()
    }

    /// Exactly-once checks as a table.
    pub fn checks_table(&self) -> String {
        let mut table = Table::new(
            &[
                "scenario",
                "measurement",
                "sent",
                "acked",
                "delivered",
                "expected",
                "lost",
                "duplicated",
                "reordered",
                "other errors",
                "reconnects",
            ],
            "",
        );
        for c in &self.checks {
            let l = &c.ledger;
            let counts = [
                l.sent,
                l.acked,
                l.delivered,
                l.expected_deliveries,
                l.lost,
                l.duplicated,
                l.reordered,
                l.misrouted + l.phantom + l.seq_mismatch,
                c.reconnects,
            ];
            table.row(
                [c.scenario.clone(), c.label.clone()]
                    .into_iter()
                    .chain(counts.iter().map(u64::to_string)),
            );
        }
        table.finish()
    }

    pub fn latency_table(&self) -> String {
        let mut table = Table::new(
            &[
                "scenario",
                "system",
                "offered msgs/s",
                "acked msgs/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
            ],
            "",
        );
        for r in &self.latencies {
            let l = &r.latency;
            let offered = if r.offered > 0.0 {
                num(r.offered)
            } else {
                "max (window)".to_owned()
            };
            table.row(
                [r.scenario.clone(), r.system.clone(), offered]
                    .into_iter()
                    .chain(
                        [
                            r.achieved, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms,
                        ]
                        .map(num),
                    ),
            );
        }
        table.finish()
    }

    pub fn redis_table(&self) -> String {
        let mut table = Table::new(
            &[
                "scenario",
                "measurement",
                "messages",
                "script calls / msg",
                "pool checks / msg",
                "round trips / msg",
                "all calls / msg (in-script included)",
            ],
            "",
        );
        for r in &self.redis {
            let w = &r.work;
            table.row([
                r.scenario.clone(),
                r.label.clone(),
                w.messages.to_string(),
                format!("{:.2}", w.script_invocations_per_message),
                format!("{:.2}", w.pool_checks_per_message),
                format!("{:.2}", w.round_trips_per_message),
                format!("{:.1}", w.calls_per_message),
            ]);
        }
        table.finish()
    }

    pub fn cpu_table(&self) -> String {
        let mut names: Vec<String> = self
            .cpu
            .iter()
            .flat_map(|c| c.cores.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        let headers: Vec<&str> = ["scenario", "measurement"]
            .into_iter()
            .chain(names.iter().map(String::as_str))
            .collect();
        let mut table = Table::new(&headers, "");
        for c in &self.cpu {
            let cells = names.iter().map(|n| {
                c.cores
                    .get(n)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default()
            });
            table.row(
                [c.scenario.clone(), c.label.clone()]
                    .into_iter()
                    .chain(cells),
            );
        }
        table.finish()
    }

    /// The rounds of upload throughput, each with the raw write limit of the same round.
    pub fn upload_table(&self) -> String {
        let mut table = Table::new(
            &[
                "round",
                "files",
                "clients",
                "uploads s",
                "uploads MiB/s",
                "raw GridFS s",
                "raw GridFS MiB/s",
                "upload ÷ raw",
            ],
            "rrrrrrrr",
        );
        for r in &self.upload_rounds {
            table.row([
                r.round.to_string(),
                format!("{} × {}", r.files, size(r.file_bytes)),
                r.clients.to_string(),
                format!("{:.2}", r.upload_secs),
                num(r.upload_mib_per_sec),
                format!("{:.2}", r.raw_secs),
                num(r.raw_mib_per_sec),
                format!("{:.2}", r.ratio()),
            ]);
        }
        table.finish()
    }

    /// The rounds of the upload memory measurement.
    pub fn upload_memory_table(&self) -> String {
        let mut table = Table::new(
            &[
                "round",
                "clients at once",
                "s",
                "MiB/s",
                "idle RSS MB",
                "peak RSS MB",
                "peak − idle MB",
                "RSS samples",
            ],
            "rrrrrrrr",
        );
        for r in &self.upload_memory_rounds {
            table.row([
                r.round.to_string(),
                format!("{} × {}", r.clients, size(r.file_bytes)),
                format!("{:.1}", r.secs),
                num(r.mib_per_sec),
                num(r.idle_rss_bytes as f64 / 1e6),
                num(r.peak_rss_bytes as f64 / 1e6),
                num(r.growth_mb()),
                r.samples.to_string(),
            ]);
        }
        table.finish()
    }

    /// The short Markdown summary (tiny runs, and next to the JSON).
    pub fn summary_markdown(&self) -> String {
        let mut out = format!(
            "# chat-server benchmark ({} size)\n\n{}; {}; {:.0} s.\n\n",
            self.size,
            self.date,
            self.machine.one_line(),
            self.wall_secs
        );
        out.push_str(&self.table());
        out.push_str("\n## Exactly-once checks\n\n");
        out.push_str(&self.checks_table());
        if !self.upload_rounds.is_empty() || !self.upload_memory_rounds.is_empty() {
            out.push_str("\n## Uploads\n\n");
            out.push_str(&self.upload_table());
            out.push('\n');
            out.push_str(&self.upload_memory_table());
        }
        if !self.errors.is_empty() {
            out.push_str("\n## Errors\n\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {e}");
            }
        }
        out
    }
}

/// A file size as a table shows it: whole MiB, else KiB, else bytes.
pub fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// A number with sensible precision for a table.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_has_the_lowest_the_median_and_the_highest() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.min, s.median, s.max, s.rounds), (1.0, 2.0, 3.0, 3));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).expect("four values");
        assert_eq!(even.median, 2.5);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(s.suffix(), " (1.00–3.00, 3 rounds)");
        assert_eq!(Spread::of(&[5.0]).map(|s| s.suffix()), Some(String::new()));
    }

    #[test]
    fn the_headline_table_shows_the_spreads_of_value_and_limit() {
        let mut report = Report::new("full");
        report.rows.push(
            Row::new("uploads", "upload throughput", 40.0, "MiB/s")
                .spread(Spread::of(&[38.0, 40.0, 41.0]))
                .limit("raw GridFS write", 80.0)
                .limit_spread(Spread::of(&[79.0, 80.0, 82.5])),
        );
        let table = report.table();
        let row = table.lines().nth(2).expect("a row");
        assert_eq!(
            row,
            "| uploads | upload throughput | 40.0 MiB/s (38.0–41.0, 3 rounds) | \
             80.0 (79.0–82.5, 3 rounds) raw GridFS write | 0.50 |  |  |"
        );
    }

    #[test]
    fn upload_rounds_are_tabled_with_their_ratio_and_growth() {
        let mut report = Report::new("tiny");
        report.upload_rounds.push(UploadRound {
            round: 1,
            files: 64,
            file_bytes: 1 << 20,
            clients: 4,
            upload_secs: 2.0,
            upload_mib_per_sec: 32.0,
            raw_secs: 1.0,
            raw_mib_per_sec: 64.0,
        });
        report.upload_memory_rounds.push(UploadMemoryRound {
            round: 1,
            clients: 20,
            file_bytes: 20 << 20,
            secs: 10.0,
            mib_per_sec: 40.0,
            idle_rss_bytes: 20_000_000,
            peak_rss_bytes: 65_500_000,
            samples: 200,
        });
        let uploads = report.upload_table();
        assert_eq!(
            uploads.lines().nth(2),
            Some("| 1 | 64 × 1 MiB | 4 | 2.00 | 32.0 | 1.00 | 64.0 | 0.50 |")
        );
        let memory = report.upload_memory_table();
        assert_eq!(
            memory.lines().nth(2),
            Some("| 1 | 20 × 20 MiB | 10.0 | 40.0 | 20.0 | 65.5 | 45.5 | 200 |")
        );
        assert!(report.summary_markdown().contains("## Uploads"));
    }

    #[test]
    fn sizes_and_rates_read_naturally() {
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(300 * 1024), "300 KiB");
        assert_eq!(size(1000), "1000 B");
        assert_eq!(mib_per_sec(10 << 20, 2.0), 5.0);
    }
}
