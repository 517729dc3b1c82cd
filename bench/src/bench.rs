//! `loadgen bench`: creates the users, runs the selected scenarios against fresh server
//! processes, and writes the result (JSON + Markdown summary; at full size optionally the whole
//! docs/benchmarks.md with its plots). A tiny run exits non-zero when an exactly-once check
//! fails or a scenario errors (an upload refused, a download whose sha256 differs); at full
//! size a missed target is reported, not an error.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::client::{self, Http};
use crate::report::Report;
use crate::scenarios::{self, Ctx, Scenario, Sizes, progress};
use crate::server::Services;
use crate::sys::CpuWatch;
use crate::{doc, plot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    /// A few clients and messages, every scenario once: keeps the tool and its checks honest.
    Tiny,
    /// The sizes of the benchmark report.
    Full,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// The chat-server binary.
    #[arg(long)]
    pub server_bin: PathBuf,
    #[arg(long, value_enum, default_value = "full")]
    pub size: Size,
    #[arg(long, default_value = "redis://127.0.0.1:16382")]
    pub redis_url: String,
    #[arg(long, default_value = "mysql://chat:chat@127.0.0.1:13309/chat")]
    pub mysql_url: String,
    #[arg(long, default_value = "mongodb://127.0.0.1:17020")]
    pub mongodb_uri: String,
    #[arg(long, default_value = "smtp://127.0.0.1:2528")]
    pub smtp_url: String,
    /// The configuration file the servers read.
    #[arg(long, default_value = "conf/config.toml")]
    pub config: PathBuf,
    /// Pid files of the services (their CPU use is reported).
    #[arg(long, default_value = "var/bench/pids")]
    pub pids_dir: PathBuf,
    /// Where result.json and summary.md go (default var/bench-tiny or var/bench).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Write the full report here (full size only), e.g. docs/benchmarks.md, with its plots in
    /// --images-dir; by default both go into the output directory.
    #[arg(long)]
    pub out_doc: Option<PathBuf>,
    /// Also rewrite the benchmark block of this README (full size, with --out-doc).
    #[arg(long)]
    pub readme: Option<PathBuf>,
    /// Where the plots of --out-doc go.
    #[arg(long, default_value = "images")]
    pub images_dir: PathBuf,
    /// Relay worker threads (0 = one per core, like the server).
    #[arg(long, default_value_t = 0)]
    pub relay_workers: usize,
    /// Seed nodes of a Redis Cluster (comma-separated, e.g. the cluster profile of
    /// scripts/services.sh): the two-processes scenario then also runs one and two processes in
    /// cluster mode, beside the single Redis.
    #[arg(long)]
    pub cluster_seeds: Option<String>,
    /// Overrides: pairs, window and seconds of the 1:1 scenarios.
    #[arg(long)]
    pub pairs: Option<usize>,
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long)]
    pub secs: Option<f64>,
    /// Override: group sizes of the fan-out scenario (comma-separated), and the first offered
    /// rate (group messages per second) of each.
    #[arg(long, value_delimiter = ',')]
    pub fanout_members: Option<Vec<usize>>,
    #[arg(long, value_delimiter = ',')]
    pub fanout_rates: Option<Vec<f64>>,
    /// Override: the connection counts of the idle scenario (comma-separated, increasing).
    #[arg(long, value_delimiter = ',')]
    pub idle_steps: Option<Vec<usize>>,
    /// Override: concurrent writers of the storage limit.
    #[arg(long)]
    pub storage_writers: Option<usize>,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let started = Instant::now();
    let tiny = args.size == Size::Tiny;
    let mut sizes = if tiny { Sizes::tiny() } else { Sizes::full() };
    if let Some(pairs) = args.pairs {
        sizes.pairs = pairs;
    }
    if let Some(window) = args.window {
        sizes.window = window;
    }
    if let Some(secs) = args.secs {
        sizes.throughput_secs = secs;
    }
    if let Some(members) = args.fanout_members.clone() {
        sizes.fanout_members = members;
    }
    if let Some(rates) = args.fanout_rates.clone() {
        sizes.fanout_first_rate = rates;
    }
    if let Some(steps) = args.idle_steps.clone() {
        sizes.idle_steps = steps;
    }
    if let Some(writers) = args.storage_writers {
        sizes.storage_writers = writers;
    }
    let mut selected = args.scenarios.clone();
    if selected.is_empty() {
        selected = vec![
            Scenario::Throughput,
            Scenario::Latency,
            Scenario::Fanout,
            Scenario::Idle,
            Scenario::TwoProcesses,
            Scenario::Uploads,
        ];
    }
    if tiny && args.out_doc.is_some() {
        bail!("--out-doc is for full runs; tiny runs write under var/bench-tiny only");
    }
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(if tiny { "var/bench-tiny" } else { "var/bench" }));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let services = Services::new(
        &args.redis_url,
        &args.mysql_url,
        &args.mongodb_uri,
        &args.smtp_url,
        &args.config,
    )?;
    let prefix = client::run_prefix("b");
    let mut report = Report::new(if tiny { "tiny" } else { "full" });
    report.params = sizes.describe();
    let users = {
        let n = sizes.users_needed(&selected);
        let server = crate::server::ServerProcess::spawn(&args.server_bin, &services, &[]).await?;
        let http = Http::new(server.port())?;
        let bar = progress(n as u64, "creating users");
        let start = Instant::now();
        let users =
            client::create_users(&http, &prefix, n, sizes.concurrency, || bar.inc(1)).await?;
        bar.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        tracing::info!(users = n, secs, "users registered and logged in");
        report.notes.push(format!(
            "{n} users registered and logged in over HTTP in {secs:.1} s ({:.0}/s, bcrypt cost 4, {} at a time).",
            n as f64 / secs.max(1e-9),
            sizes.concurrency
        ));
        server.terminate().await?;
        users
    };
    let ctx = Ctx {
        sizes,
        services,
        server_bin: args.server_bin.clone(),
        users,
        prefix,
        cpu: CpuWatch::with_services(&args.pids_dir),
        relay_workers: args.relay_workers,
        cluster_seeds: args.cluster_seeds.clone(),
    };

    // Idle connections first, then fan-out, then the 1:1 scenarios: opening a connection and the
    // first message of a conversation cost more the more messages are stored (see the notes
    // in docs/benchmarks.md), so each scenario runs with as little history as possible. Uploads
    // last: they store no messages, and delete their files.
    let wants = |s: &[Scenario]| s.iter().any(|x| selected.contains(x));
    if wants(&[Scenario::Idle]) {
        tracing::info!("scenario 4: idle connections");
        if let Err(err) = scenarios::idle::run(&ctx, &mut report).await {
            report.errors.push(format!("idle connections: {err:#}"));
        }
    }
    if wants(&[Scenario::Fanout]) {
        tracing::info!("scenario 3: group fan-out");
        if let Err(err) = scenarios::fanout::run(&ctx, &mut report).await {
            report.errors.push(format!("fan-out: {err:#}"));
        }
    }
    if wants(&[
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::TwoProcesses,
    ]) {
        tracing::info!("scenarios 1, 2, 5: 1:1 throughput, latency, two processes");
        if let Err(err) = scenarios::one_to_one::run(&ctx, &mut report, &selected).await {
            report.errors.push(format!("1:1 scenarios: {err:#}"));
        }
    }
    if wants(&[Scenario::Uploads]) {
        tracing::info!("scenario 6: uploads");
        if let Err(err) = scenarios::uploads::run(&ctx, &mut report).await {
            report.errors.push(format!("uploads: {err:#}"));
        }
    }
    report.wall_secs = started.elapsed().as_secs_f64();
    report.sort_by_scenario();

    report.write_json(&out_dir.join("result.json"))?;
    std::fs::write(out_dir.join("summary.md"), report.summary_markdown())?;
    tracing::info!(dir = %out_dir.display(), "result written");
    // Without --out-doc the full report and its plots stay next to the result.
    let (doc_path, images_dir) = match &args.out_doc {
        Some(path) => (path.clone(), args.images_dir.clone()),
        None => (out_dir.join("benchmarks.md"), out_dir.clone()),
    };
    let images = plot::draw_all(&report, &images_dir, "bench")?;
    doc::write(&report, &doc_path, &images)?;
    if let (Some(readme), Some(_)) = (&args.readme, &args.out_doc) {
        let plot = images.iter().find(|p| p.ends_with("bench-latency.png"));
        doc::update_readme(&report, readme, &doc_path, plot.map(PathBuf::as_path))?;
    }
    tracing::info!(doc = %doc_path.display(), plots = images.len(), "report written");
    for line in report.table().lines() {
        tracing::info!("{line}");
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| format!("{} / {}: {:?}", c.scenario, c.label, c.ledger))
        .collect();
    for f in &failed {
        tracing::error!("exactly-once check failed: {f}");
    }
    for e in &report.errors {
        tracing::error!("scenario failed: {e}");
    }
    if !report.all_checks_ok() {
        if tiny {
            bail!(
                "{} exactly-once check(s) failed, {} scenario error(s)",
                failed.len(),
                report.errors.len()
            );
        }
        if !report.errors.is_empty() {
            bail!("{} scenario error(s)", report.errors.len());
        }
    }
    Ok(())
}
