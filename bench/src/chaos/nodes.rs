//! The server processes of one fault run, spawned with the load generator's spawner, and the
//! view of them the clients share: which ports are up. Killing a node takes it out of that view
//! at once, as a load balancer's health check would a moment later; clients whose node died
//! move to the next live one.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use chat_loadgen::server::{ServerProcess, Services};

/// The graceful stop budget given to every chaos node (`server.shutdown_timeout_secs`).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// Per /health request; a backend the server cannot reach makes it answer within its own
/// `health_timeout_ms` (2 s).
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The live ports, shared with every client. Index = node number.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    inner: Arc<RwLock<Vec<(u16, bool)>>>,
}

impl Ports {
    /// The port a client should try for its `attempt`-th connection: its own node while that is
    /// up, else the next live one (attempts rotate, so a node that refuses is not retried
    /// forever). None when no node is up.
    pub fn pick(&self, home: usize, attempt: usize) -> Option<(usize, u16)> {
        let nodes = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let live: Vec<(usize, u16)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, up))| *up)
            .map(|(i, (port, _))| (i, *port))
            .collect();
        if live.is_empty() {
            return None;
        }
        let start = live.iter().position(|(i, _)| *i >= home % nodes.len());
        let start = start.unwrap_or(0);
        Some(live[(start + attempt) % live.len()])
    }

    pub fn live_ports(&self) -> Vec<u16> {
        let nodes = self.inner.read().unwrap_or_else(|e| e.into_inner());
        nodes
            .iter()
            .filter(|(_, up)| *up)
            .map(|(p, _)| *p)
            .collect()
    }

    fn push(&self, port: u16) {
        let mut nodes = self.inner.write().unwrap_or_else(|e| e.into_inner());
        nodes.push((port, true));
    }

    fn mark_down(&self, node: usize) {
        let mut nodes = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = nodes.get_mut(node) {
            entry.1 = false;
        }
    }
}

/// How a gracefully stopped node went away.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    pub exit_code: Option<i32>,
    /// SIGTERM to exit; None when it had to be killed.
    pub took: Option<Duration>,
    /// Its last log lines, the shutdown included.
    pub log: Vec<String>,
}

pub struct Cluster {
    nodes: Vec<Option<ServerProcess>>,
    /// The last log lines of nodes taken out (killed or stopping), as they were then.
    departed: Vec<(usize, Vec<String>)>,
    ports: Ports,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts `count` server processes on the same services.
    pub async fn start(
        bin: &Path,
        services: &Services,
        count: usize,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut env = vec![(
            "CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS".to_owned(),
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        )];
        env.extend_from_slice(extra_env);
        // One after the other: the first applies the migrations to a fresh database, the
        // others find them applied (concurrent start-up is not what these runs test).
        let mut spawned = Vec::with_capacity(count);
        for _ in 0..count {
            spawned.push(ServerProcess::spawn(bin, services, &env).await?);
        }
        let ports = Ports::default();
        for node in &spawned {
            ports.push(node.port());
        }
        let http = reqwest::Client::builder()
            .timeout(HEALTH_REQUEST_TIMEOUT)
            .build()
            .context("building the health-check client")?;
        Ok(Self {
            nodes: spawned.into_iter().map(Some).collect(),
            departed: Vec::new(),
            ports,
            http,
        })
    }

    pub fn ports(&self) -> Ports {
        self.ports.clone()
    }

    pub fn port(&self, node: usize) -> Option<u16> {
        self.nodes.get(node)?.as_ref().map(ServerProcess::port)
    }

    /// SIGKILL: the process vanishes without closing anything.
    pub async fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        let process = self.take(node)?;
        self.ports.mark_down(node);
        process.kill().await
    }

    /// SIGTERM; the node leaves the live ports at once (a load balancer stops routing to a
    /// node as soon as it is told to drain). Finish with [`finish_terminate`].
    pub async fn begin_terminate(&mut self, node: usize) -> anyhow::Result<ServerProcess> {
        let process = self.take(node)?;
        self.ports.mark_down(node);
        process.send_sigterm().await?;
        Ok(process)
    }

    fn take(&mut self, node: usize) -> anyhow::Result<ServerProcess> {
        let process = self
            .nodes
            .get_mut(node)
            .and_then(Option::take)
            .ok_or_else(|| anyhow!("node {node} is not running"))?;
        self.departed.push((node, process.recent_log()));
        Ok(process)
    }

    /// Polls `/health` on every node still up until all answer 200 or `within` passes;
    /// returns when that happened.
    pub async fn wait_healthy(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            let ports = self.ports.live_ports();
            let checks = ports.iter().map(|port| self.healthy(*port));
            let all = futures_util::future::join_all(checks).await;
            if !ports.is_empty() && all.into_iter().all(|ok| ok) {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn healthy(&self, port: u16) -> bool {
        let url = format!("http://127.0.0.1:{port}/health");
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// The recent log lines of every node: as they are now, or as they were when it was taken
    /// out. For the run's output directory.
    pub fn logs(&self) -> Vec<(usize, Vec<String>)> {
        let mut logs = self.departed.clone();
        logs.extend(
            self.nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.as_ref().map(|n| (i, n.recent_log()))),
        );
        logs
    }

    /// Stops every node still running (gracefully, killing stragglers).
    pub async fn shutdown(mut self) {
        for node in 0..self.nodes.len() {
            if self.nodes[node].is_none() {
                continue;
            }
            let stopped = match self.begin_terminate(node).await {
                Ok(process) => {
                    finish_terminate(process, Instant::now(), Duration::from_secs(15)).await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = stopped {
                tracing::warn!(node, error = %err, "stopping a node failed");
            }
        }
    }
}

/// Waits for a node sent SIGTERM at `since` to exit; kills it after `budget`.
pub async fn finish_terminate(
    mut process: ServerProcess,
    since: Instant,
    budget: Duration,
) -> anyhow::Result<StopOutcome> {
    let left = budget.saturating_sub(since.elapsed());
    match process.wait_exit(left).await? {
        Some(status) => Ok(StopOutcome {
            exit_code: status.code(),
            took: Some(since.elapsed()),
            log: process.recent_log(),
        }),
        None => {
            tracing::warn!(
                pid = process.pid(),
                "still running after the stop budget; killing it"
            );
            let log = process.recent_log();
            process.kill().await?;
            Ok(StopOutcome {
                exit_code: None,
                took: None,
                log,
            })
        }
    }
}
