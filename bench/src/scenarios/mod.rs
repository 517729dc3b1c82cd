//! The six scenarios of the benchmark and what they share: the run's context (services, the
//! server binary, the pool of users, the sizes), progress bars, and the drivers that make peers
//! send as fast as their window allows or at a paced rate.
//!
//! - [`one_to_one`]: 1:1 throughput (window W), latency at fixed rates, their relay and storage
//!   limits (scenarios 1 and 2), and the same load split over two processes (scenario 5).
//! - [`fanout`]: one group of M online members (scenario 3).
//! - [`idle`]: C idle authenticated connections (scenario 4).
//! - [`pairs`]: the sender/receiver pairs and one measurement of them, for [`one_to_one`].
//! - [`uploads`]: upload throughput against the raw GridFS writes, and server memory while
//!   many clients upload at once (scenario 6).

pub mod fanout;
pub mod idle;
pub mod one_to_one;
pub mod pairs;
pub mod uploads;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::User;
use crate::ledger::{Ledger, Recipients};
use crate::peer::{Endpoint, Peer, Target};
use crate::server::{ServerProcess, Services};
use crate::sys::CpuWatch;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub full: bool,
    /// Scenario 1: sender/receiver pairs, unacked window per sender, seconds.
    pub pairs: usize,
    pub window: usize,
    pub throughput_secs: f64,
    /// Scenario 2: fractions of the measured maximum, seconds per rate.
    pub latency_fractions: Vec<f64>,
    pub latency_secs: f64,
    /// Offered rates at and beyond the maximum (fractions of it), half as long each, for the
    /// throughput-vs-offered curve.
    pub overload_fractions: Vec<f64>,
    /// Scenario 3: group sizes, senders, the first offered rate (group messages per second,
    /// doubled each step while the system keeps up), steps at most, seconds per step.
    pub fanout_members: Vec<usize>,
    pub fanout_senders: usize,
    pub fanout_first_rate: Vec<f64>,
    pub fanout_steps: usize,
    pub fanout_step_secs: f64,
    /// Scenario 4: connection counts (cumulative steps), seconds to let them sit.
    pub idle_steps: Vec<usize>,
    pub idle_hold_secs: f64,
    /// Concurrent registrations / handshakes.
    pub concurrency: usize,
    /// How long a measurement may take to deliver everything after its last send.
    pub settle_secs: f64,
    /// Storage limit: concurrent writers, time cap.
    pub storage_writers: usize,
    pub storage_max_secs: f64,
    /// Scenario 6.
    pub uploads: UploadSizes,
}

/// Scenario 6: upload throughput (files of one size through `POST /files` from a few clients,
/// each a user of its own, against the same bytes written straight into GridFS) and memory
/// (clients uploading one large file each, all at once), each repeated over rounds.
#[derive(Debug, Clone)]
pub struct UploadSizes {
    pub files: usize,
    pub file_bytes: u64,
    pub clients: usize,
    pub rounds: usize,
    pub memory_clients: usize,
    pub memory_file_bytes: u64,
    pub memory_rounds: usize,
}

impl UploadSizes {
    /// A few small files over two GridFS chunks each (so the downloads' sha256 checks cross a
    /// chunk boundary), once.
    fn tiny() -> Self {
        Self {
            files: 6,
            file_bytes: 300 * 1024,
            clients: 2,
            rounds: 1,
            memory_clients: 4,
            memory_file_bytes: 1 << 20,
            memory_rounds: 1,
        }
    }

    /// 1 MiB files for throughput (128 per round: a round of a few seconds, long enough that
    /// the spread between rounds is not just start-up); 20 clients × 20 MiB (`files.max_bytes`)
    /// at once for memory.
    fn full() -> Self {
        Self {
            files: 128,
            file_bytes: 1 << 20,
            clients: 4,
            rounds: 3,
            memory_clients: 20,
            memory_file_bytes: 20 << 20,
            memory_rounds: 3,
        }
    }

    /// Users the scenario needs: every client is a user of its own.
    fn users(&self) -> usize {
        self.clients.max(self.memory_clients)
    }
}

impl Sizes {
    pub fn tiny() -> Self {
        Self {
            full: false,
            pairs: 2,
            window: 4,
            throughput_secs: 2.0,
            latency_fractions: vec![0.25, 0.5, 0.75],
            latency_secs: 1.0,
            overload_fractions: vec![1.25],
            fanout_members: vec![5],
            fanout_senders: 2,
            fanout_first_rate: vec![10.0],
            fanout_steps: 2,
            fanout_step_secs: 1.0,
            idle_steps: vec![20],
            idle_hold_secs: 1.0,
            concurrency: 16,
            settle_secs: 20.0,
            storage_writers: 2,
            storage_max_secs: 10.0,
            uploads: UploadSizes::tiny(),
        }
    }

    pub fn full() -> Self {
        Self {
            full: true,
            pairs: 100,
            window: 8,
            throughput_secs: 20.0,
            latency_fractions: vec![0.25, 0.5, 0.75],
            latency_secs: 15.0,
            overload_fractions: vec![1.0, 1.25, 1.5],
            fanout_members: vec![100, 1000],
            fanout_senders: 16,
            fanout_first_rate: vec![50.0, 5.0],
            fanout_steps: 7,
            fanout_step_secs: 8.0,
            idle_steps: vec![1000, 2500, 5000, 10_000],
            idle_hold_secs: 5.0,
            concurrency: 64,
            settle_secs: 60.0,
            storage_writers: 4,
            storage_max_secs: 60.0,
            uploads: UploadSizes::full(),
        }
    }

    /// The sizes by name, for the report.
    pub fn describe(&self) -> std::collections::BTreeMap<String, String> {
        let list = |v: &[usize]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        [
            ("pairs", self.pairs.to_string()),
            ("window", self.window.to_string()),
            ("throughput seconds", self.throughput_secs.to_string()),
            ("latency seconds per rate", self.latency_secs.to_string()),
            ("fan-out members", list(&self.fanout_members)),
            ("fan-out senders", self.fanout_senders.to_string()),
            (
                "fan-out seconds per step",
                self.fanout_step_secs.to_string(),
            ),
            ("idle connections", list(&self.idle_steps)),
            ("storage limit writers", self.storage_writers.to_string()),
            (
                "upload files per round",
                format!(
                    "{} × {} from {} clients",
                    self.uploads.files,
                    crate::report::size(self.uploads.file_bytes),
                    self.uploads.clients
                ),
            ),
            (
                "upload memory clients",
                format!(
                    "{} × {} at once",
                    self.uploads.memory_clients,
                    crate::report::size(self.uploads.memory_file_bytes)
                ),
            ),
            (
                "upload rounds",
                format!(
                    "{} (throughput), {} (memory)",
                    self.uploads.rounds, self.uploads.memory_rounds
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Users the run needs (they are shared between scenarios).
    pub fn users_needed(&self, scenarios: &[Scenario]) -> usize {
        let mut n = 0;
        for s in scenarios {
            n = n.max(match s {
                Scenario::Throughput | Scenario::Latency | Scenario::TwoProcesses => 2 * self.pairs,
                Scenario::Fanout => self.fanout_members.iter().copied().max().unwrap_or(0),
                Scenario::Idle => self.idle_steps.iter().copied().max().unwrap_or(0),
                Scenario::Uploads => self.uploads.users(),
            });
        }
        n
    }
}

/// The scenarios, by the names the command line takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Throughput,
    Latency,
    Fanout,
    Idle,
    TwoProcesses,
    Uploads,
}

/// What every scenario needs.
pub struct Ctx {
    pub sizes: Sizes,
    pub services: Services,
    pub server_bin: PathBuf,
    pub users: Vec<User>,
    /// Unique per run: user names and client_msg_ids start with it.
    pub prefix: String,
    pub cpu: CpuWatch,
    /// Relay worker threads (0 = one per core, as the server).
    pub relay_workers: usize,
    /// Seed nodes of a Redis Cluster for the cluster-mode steps, when given.
    pub cluster_seeds: Option<String>,
}

impl Ctx {
    pub async fn spawn_server(&self) -> Result<ServerProcess> {
        ServerProcess::spawn(&self.server_bin, &self.services, &[]).await
    }

    /// A server in Redis Cluster mode on the given seed nodes.
    pub async fn spawn_cluster_server(&self, seeds: &str) -> Result<ServerProcess> {
        let env = [
            ("CHAT__REDIS__MODE".to_owned(), "cluster".to_owned()),
            ("CHAT__REDIS__URLS".to_owned(), seeds.to_owned()),
        ];
        ServerProcess::spawn(&self.server_bin, &self.services, &env).await
    }

    /// A CPU watch over the services, the load generator and these extra processes.
    pub fn cpu_with(&self, extra: &[(&str, u32)]) -> CpuWatch {
        let mut watch = self.cpu.clone();
        for (name, pid) in extra {
            watch.add(name, *pid);
        }
        watch
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {elapsed_precise}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A bar that fills over `secs` seconds while a timed phase runs.
pub fn timed(secs: f64, what: &str) -> ProgressBar {
    let bar = progress(secs.ceil() as u64, what);
    let ticker = bar.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while !ticker.is_finished() && ticker.position() < ticker.length().unwrap_or(0) {
            tick.tick().await;
            ticker.inc(1);
        }
    });
    bar
}

/// One sending peer and what it sends to.
#[derive(Clone)]
pub struct Flow {
    pub peer: Arc<Peer>,
    pub target: Target,
    pub recipients: Recipients,
}

/// Every flow sends as fast as its window allows until `until`.
pub async fn run_windowed(flows: &[Flow], until: Instant) {
    let tasks: Vec<_> = flows
        .iter()
        .cloned()
        .map(|flow| {
            tokio::spawn(async move {
                while Instant::now() < until && !flow.peer.is_gone() {
                    let deadline = tokio::time::Instant::from_std(until);
                    match tokio::time::timeout_at(
                        deadline,
                        flow.peer.send_windowed(&flow.target, &flow.recipients),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// The flows send `rate` messages per second in total, evenly spread, until `until`. Each send
/// is stamped with its scheduled time, so a late send counts as latency (no coordinated
/// omission).
pub async fn run_paced(flows: &[Flow], rate: f64, until: Instant) {
    if flows.is_empty() || rate <= 0.0 {
        return;
    }
    let per_flow = rate / flows.len() as f64;
    let period = Duration::from_secs_f64(1.0 / per_flow);
    let start = Instant::now();
    let tasks: Vec<_> = flows
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, flow)| {
            // Stagger the flows over one period so their sends do not arrive in lockstep.
            let offset = period.mul_f64(i as f64 / flows.len() as f64);
            tokio::spawn(async move {
                let mut k: u32 = 0;
                loop {
                    let at = start + offset + period * k;
                    if at >= until || flow.peer.is_gone() {
                        break;
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    let _ = flow.peer.send_at(&flow.target, &flow.recipients, at).await;
                    k += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Waits for a ledger to settle; returns false (and logs) when it did not in time.
pub async fn settle(ledger: &Ledger, secs: f64, what: &str) -> bool {
    let settled = ledger.settle(Duration::from_secs_f64(secs)).await;
    if !settled {
        tracing::warn!(
            what,
            unanswered = ledger.unanswered(),
            outstanding = ledger.outstanding(),
            "did not settle in time"
        );
    }
    settled
}

/// Total reconnects of these peers.
pub fn reconnects(peers: &[Arc<Peer>]) -> u64 {
    peers.iter().map(|p| p.reconnects()).sum()
}

/// Closes every peer.
/// Connects one peer per endpoint (`concurrency` at a time, with a progress bar), each
/// recording into one ledger of its own tag (replace it with `Peer::use_ledger` per measurement).
pub async fn connect_peers(
    ctx: &Ctx,
    endpoints: Vec<(String, Endpoint)>,
    tag: &str,
) -> Result<Vec<Arc<Peer>>> {
    let ledger = Ledger::new(&format!("{}{tag}", ctx.prefix));
    let receivers = ledger.add_receivers(endpoints.len());
    let bar = progress(endpoints.len() as u64, &format!("{tag}: connecting"));
    let peers = stream::iter(endpoints.into_iter().zip(receivers))
        .map(|((id, endpoint), rx)| {
            let (ledger, bar) = (ledger.clone(), bar.clone());
            async move {
                let peer = Peer::connect(&id, endpoint, ledger, rx).await?;
                bar.inc(1);
                Ok::<_, anyhow::Error>(peer)
            }
        })
        .buffered(ctx.sizes.concurrency)
        .try_collect()
        .await;
    bar.finish_and_clear();
    peers
}

pub async fn close_all(peers: &[Arc<Peer>]) {
    for peer in peers {
        peer.close().await;
    }
}
