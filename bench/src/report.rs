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
        }
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
    /// processes), whatever order the scenarios ran in.
    pub fn sort_by_scenario(&mut self) {
        fn rank(scenario: &str) -> u8 {
            match scenario {
                s if s.starts_with("1:1 throughput") => 1,
                s if s.starts_with("1:1 latency") => 2,
                s if s.starts_with("fan-out") => 3,
                s if s.starts_with("idle") => 4,
                _ => 5,
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
                (Some(name), Some(v)) => format!("{} {name}", num(v)),
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
                format!("{} {}", num(r.value), r.unit),
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
        if !self.errors.is_empty() {
            out.push_str("\n## Errors\n\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {e}");
            }
        }
        out
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
