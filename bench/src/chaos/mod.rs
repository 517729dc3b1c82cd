//! The fault harness (`loadgen chaos`) and the soak (`loadgen soak`), run by scripts/chaos.sh
//! against the `chaos` service profile; what they check is described in docs/reliability.md.
//!
//! - [`services`]: stopping and starting one backing service (scripts/services.sh).
//! - [`nodes`]: the server processes of a run, the ports clients may use, /health.
//! - [`traffic`]: a client that keeps chatting through faults (retry, reconnect, resume).
//! - [`record`]: what each client saw, for the checks.
//! - [`faults`]: each fault and the run around it.
//! - [`checks`]: what each fault must show beyond the common checks.
//! - [`tally`]: the exactly-once checks afterwards.
//! - [`soak`]: many connections, steady traffic, memory sampled.
//! - [`report`]: the figures as JSON, Markdown and in docs/reliability.md.

mod checks;
mod faults;
mod nodes;
mod record;
mod redis_cluster;
mod report;
mod services;
mod soak;
mod tally;
mod traffic;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

pub use faults::Fault;
use report::FaultFigures;
use services::{Service, ServiceControl};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunSize {
    /// A few clients for a few seconds per fault (the test suite).
    Small,
    /// Hundreds of clients, longer phases.
    Full,
}

/// `loadgen chaos`
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    #[arg(long, value_enum, default_value = "small")]
    pub size: RunSize,
    /// Run only these faults (repeatable); default: all of them.
    #[arg(long = "fault", value_enum)]
    pub faults: Vec<Fault>,
    /// Clients per fault, instead of the size's number.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Messages per second per client, instead of the size's rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Start every fault from empty services (`services.sh --profile chaos reset`): the local
    /// MongoDB stand-in answers more slowly as it fills, which would make later faults harder.
    #[arg(long)]
    pub reset_between: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `loadgen soak`
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    #[arg(long, default_value_t = 300)]
    pub duration_secs: u64,
    /// Messages per second over all connections.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The chat-server binary (default: the one next to this executable).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Where the figures (JSON, Markdown) and the server logs go.
    #[arg(long, default_value = "var/chaos-small")]
    pub out: PathBuf,
    /// Also write the figures into this document's marked section (docs/reliability.md).
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// The repository root: scripts/services.sh, var/chaos, conf/config.toml.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

impl Common {
    fn server_bin(&self) -> anyhow::Result<PathBuf> {
        if let Some(bin) = &self.server_bin {
            return Ok(bin.clone());
        }
        let exe = std::env::current_exe().context("locating this executable")?;
        Ok(exe.with_file_name("chat-server"))
    }

    /// Creates the output directory; returns the server binary and the services' control.
    fn prepare(&self) -> anyhow::Result<(PathBuf, ServiceControl)> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let server_bin = self.server_bin()?;
        let control = ServiceControl::new(std::path::absolute(&self.root)?);
        Ok((server_bin, control))
    }

    /// Writes a run's table as `<name>.md` in the output directory and, with --doc, into the
    /// document's `<name>-figures` section.
    fn publish(&self, name: &str, table: &str) -> anyhow::Result<()> {
        std::fs::write(self.out.join(format!("{name}.md")), table)?;
        if let Some(doc) = &self.doc {
            report::update_doc(doc, &format!("{name}-figures"), table)?;
        }
        Ok(())
    }
}

/// Runs the faults one after another; Err when any of them found a violation.
pub async fn chaos(args: ChaosArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let (server_bin, control) = common.prepare()?;
    let services = control.services()?;
    let mut size = match args.size {
        RunSize::Small => faults::Size::small(),
        RunSize::Full => faults::Size::full(),
    };
    size.clients = args.clients.unwrap_or(size.clients);
    size.rate = args.rate.unwrap_or(size.rate);
    let chosen = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    let env = faults::Env {
        server_bin: &server_bin,
        services: &services,
        control: &control,
        out: &common.out,
    };
    let mut runs: Vec<FaultFigures> = Vec::new();
    for fault in chosen {
        if args.reset_between {
            if let Err(err) = control.reset().await {
                tracing::error!(error = %err, "could not reset the services");
            }
        } else {
            // A run that failed half-way may have left a service stopped; each fault needs
            // them all.
            restore_services(&control).await;
        }
        let started = std::time::Instant::now();
        let figures = match faults::run(fault, &size, &env).await {
            Ok(figures) => figures,
            Err(err) => FaultFigures {
                fault: fault.name().to_owned(),
                violations: vec![format!("the run could not complete: {err:#}")],
                ..FaultFigures::default()
            },
        };
        log_fault(&figures, started.elapsed());
        runs.push(figures);
        report::write_json(&common.out.join("chaos.json"), &runs)?;
    }
    restore_services(&control).await;
    common.publish("chaos", &report::faults_table(&runs))?;
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.fault.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("violations in: {}", failed.join(", "));
    }
    Ok(())
}

/// The soak; Err when it found a violation.
pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let (server_bin, control) = common.prepare()?;
    let plan = soak::Plan {
        connections: args.connections,
        duration: Duration::from_secs(args.duration_secs),
        rate: args.rate,
    };
    let figures = soak::run(&plan, &server_bin, &control).await?;
    report::write_json(&common.out.join("soak.json"), &figures)?;
    common.publish("soak", &report::soak_table(&figures))?;
    log_outcome(
        "soak",
        format_args!(
            "done: {} connections, sent {}, acked {}, refused {}, errors {}, lost {}, \
             duplicates {}, server RSS {:?} KiB",
            figures.connections,
            figures.sent,
            figures.acked,
            figures.refused,
            figures.errors,
            figures.lost,
            figures.duplicates,
            figures.rss.iter().map(|s| s.rss_kib).collect::<Vec<_>>(),
        ),
        &[],
        &figures.violations,
    );
    if !figures.violations.is_empty() {
        bail!("the soak found {} violations", figures.violations.len());
    }
    Ok(())
}

fn log_fault(f: &FaultFigures, took: Duration) {
    log_outcome(
        &format!("fault {}", f.fault),
        format_args!(
            "{} in {} s: sent {}, acked {}, delivered {} / {}, lost {}, undelivered {}, \
             duplicates {}, reconnects {}, recovery {:?} ms",
            if f.passed() { "pass" } else { "FAIL" },
            took.as_secs(),
            f.sent,
            f.acked,
            f.delivered,
            f.expected_deliveries,
            f.lost,
            f.undelivered,
            f.duplicates,
            f.reconnects,
            f.recovery_ms,
        ),
        &f.checks,
        &f.violations,
    );
}

/// Logs how a run (one fault, or the soak) ended: its figures, then each check that held and
/// each violation.
fn log_outcome(
    run: &str,
    figures: std::fmt::Arguments<'_>,
    checks: &[String],
    violations: &[String],
) {
    tracing::info!("{run}: {figures}");
    for check in checks {
        tracing::info!("{run}: check: {check}");
    }
    for v in violations {
        tracing::error!("{run}: violation: {v}");
    }
}

async fn restore_services(control: &ServiceControl) {
    for service in [Service::Redis, Service::Mariadb, Service::Mongo] {
        if let Err(err) = control.up(service).await {
            tracing::error!(error = %err, "could not bring a service back");
        }
    }
}
