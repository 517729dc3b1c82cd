//! Spawning `chat-server` processes for a run: the backing services they share, the environment
//! they get (port 0, JSON logs, one session secret for the whole run, anti-spam limits raised out
//! of the way), reading the real port from the "listening" log line, and stopping them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a server may take from spawn to its "listening" line (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Log lines kept per process, for diagnostics when something goes wrong.
const RECENT_LINES: usize = 200;
/// Every per-user, per-IP and per-connection limit of the server, raised so the load generator
/// measures the server rather than its anti-spam rules.
const RAISED: &str = "1000000";
const RAISED_LIMITS: &[&str] = &[
    "CHAT__AUTH__LOGIN_PER_IP_PER_MINUTE",
    "CHAT__AUTH__REGISTER_PER_IP_PER_MINUTE",
    "CHAT__ANTISPAM__RATE_LIMIT",
    "CHAT__ANTISPAM__DUPLICATE_LIMIT",
    "CHAT__ANTISPAM__GROUP_RATE_LIMIT",
    "CHAT__ANTISPAM__UNANSWERED_LIMIT",
    "CHAT__ANTISPAM__UPLOADS_LIMIT",
    "CHAT__ANTISPAM__LOCAL_PER_SEC",
    "CHAT__ANTISPAM__LOCAL_BURST",
    "CHAT__WS__MAX_CONNECTIONS_PER_IP",
    "CHAT__WS__MAX_CONNECTIONS",
];

/// The backing services every server process of a run shares, and the run's session secret.
#[derive(Debug, Clone)]
pub struct Services {
    pub redis_url: String,
    pub mysql_url: String,
    pub mongodb_uri: String,
    pub smtp_url: String,
    /// The configuration file the servers read (`CHAT_CONFIG`), absolute so the server's working
    /// directory does not matter.
    pub config_file: PathBuf,
    /// At least 64 characters; the same for every process, so a session is valid on all of them.
    pub session_secret: String,
    /// The bearer token `GET /metrics` wants (`metrics.token`), the same for every process.
    pub metrics_token: String,
}

impl Services {
    /// The services at these URLs, with a fresh random session secret. `config_file` is made
    /// absolute against the current directory.
    pub fn new(
        redis_url: impl Into<String>,
        mysql_url: impl Into<String>,
        mongodb_uri: impl Into<String>,
        smtp_url: impl Into<String>,
        config_file: &Path,
    ) -> Result<Self> {
        let config_file = std::path::absolute(config_file)
            .with_context(|| format!("resolving {}", config_file.display()))?;
        Ok(Self {
            redis_url: redis_url.into(),
            mysql_url: mysql_url.into(),
            mongodb_uri: mongodb_uri.into(),
            smtp_url: smtp_url.into(),
            config_file,
            session_secret: random_secret(),
            metrics_token: random_secret(),
        })
    }

    /// The services of `scripts/services.sh --profile bench`.
    pub fn bench_profile() -> Result<Self> {
        Self::new(
            "redis://127.0.0.1:16382",
            "mysql://chat:chat@127.0.0.1:13309/chat",
            "mongodb://127.0.0.1:17020",
            "smtp://127.0.0.1:2528",
            Path::new("conf/config.toml"),
        )
    }
}

fn random_secret() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(96)
        .map(char::from)
        .collect()
}

/// A running `chat-server` child process. Dropping it kills the process.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    port: u16,
    metrics_token: String,
    recent: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts `bin` against `services` on a free port and waits for it to listen. `extra_env`
    /// is applied last, so it can override any of the defaults (e.g. `CHAT__MESSAGES__BATCH_MAX`).
    pub async fn spawn(
        bin: &Path,
        services: &Services,
        extra_env: &[(String, String)],
    ) -> Result<ServerProcess> {
        let mut cmd = Command::new(bin);
        cmd.env("CHAT_CONFIG", &services.config_file)
            .env("CHAT__SERVER__ADDR", "127.0.0.1:0")
            .env("CHAT__LOG__FORMAT", "json")
            .env("CHAT__LOG__FILTER", "info")
            .env("CHAT__SESSION__SECRET", &services.session_secret)
            .env("CHAT__METRICS__TOKEN", &services.metrics_token)
            .env("CHAT__REDIS__URL", &services.redis_url)
            .env("CHAT__MYSQL__URL", &services.mysql_url)
            .env("CHAT__MONGODB__URI", &services.mongodb_uri)
            .env("CHAT__MAIL__SMTP_URL", &services.smtp_url)
            .env("CHAT__AUTH__BCRYPT_COST", "4")
            .env_remove("RUST_LOG");
        for key in RAISED_LIMITS {
            cmd.env(key, RAISED);
        }
        for (key, value) in extra_env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} exited at once", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_LINES)));
        let mut lines = BufReader::new(stdout).lines();
        let port =
            match tokio::time::timeout(START_TIMEOUT, wait_listening(&mut lines, &recent)).await {
                Ok(Ok(port)) => port,
                Ok(Err(err)) => {
                    let _ = child.start_kill();
                    return Err(err.context(tail(&recent)));
                }
                Err(_) => {
                    let _ = child.start_kill();
                    bail!(
                        "chat-server (pid {pid}) did not listen within {START_TIMEOUT:?}\n{}",
                        tail(&recent)
                    );
                }
            };
        tokio::spawn(drain(lines, recent.clone(), pid));
        tracing::debug!(pid, port, "chat-server started");
        Ok(ServerProcess {
            child,
            pid,
            port,
            metrics_token: services.metrics_token.clone(),
            recent,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bearer token of this process's `/metrics`.
    pub fn metrics_token(&self) -> &str {
        &self.metrics_token
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resident memory of the process now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid)
    }

    /// The last log lines the process wrote (JSON), oldest first.
    pub fn recent_log(&self) -> Vec<String> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (graceful stop: sockets closed with 1012), then waits; kills it when it takes
    /// longer than the stop budget.
    pub async fn terminate(mut self) -> Result<()> {
        signal(self.pid, "-TERM").await?;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                tracing::warn!(pid = self.pid, "chat-server ignored SIGTERM; killing it");
                self.child.kill().await?;
                Ok(())
            }
        }
    }

    /// SIGTERM without waiting, for a caller that watches the stop itself ([`Self::wait_exit`]).
    pub async fn send_sigterm(&self) -> Result<()> {
        signal(self.pid, "-TERM").await
    }

    /// Waits up to `timeout` for the process to exit: its exit status, or None while it runs.
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => Ok(None),
        }
    }

    /// SIGKILL (a crash: no goodbye to anybody), and reaps the process.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Resident memory of any process (VmRSS from /proc/<pid>/status), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    vm_rss_bytes(&status).ok_or_else(|| anyhow!("no readable VmRSS line for pid {pid}"))
}

/// The `VmRSS:` line of a /proc/<pid>/status text (`VmRSS:   12345 kB`), in bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .await
        .context("running kill")?;
    if !status.success() {
        bail!("kill {sig} {pid} failed: {status}");
    }
    Ok(())
}

async fn wait_listening(
    lines: &mut Lines<BufReader<ChildStdout>>,
    recent: &Mutex<VecDeque<String>>,
) -> Result<u16> {
    while let Some(line) = lines.next_line().await? {
        remember(recent, &line);
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["message"] == "chat-server listening" {
            let port = fields["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| anyhow!("no port in the listening line: {line}"))?;
            return Ok(port);
        }
    }
    bail!("chat-server exited before listening")
}

/// Keeps reading stdout so the pipe never fills (a full pipe would block the server's logging),
/// remembering recent lines and passing warnings and errors on.
async fn drain(
    mut lines: Lines<BufReader<ChildStdout>>,
    recent: Arc<Mutex<VecDeque<String>>>,
    pid: u32,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(entry) = serde_json::from_str::<Value>(&line)
            && matches!(entry["level"].as_str(), Some("WARN" | "ERROR"))
        {
            tracing::debug!(pid, log = %line, "chat-server logged");
        }
        remember(&recent, &line);
    }
}

fn remember(recent: &Mutex<VecDeque<String>>, line: &str) {
    if let Ok(mut recent) = recent.lock() {
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line.to_owned());
    }
}

fn tail(recent: &Mutex<VecDeque<String>>) -> String {
    let lines: Vec<String> = recent
        .lock()
        .map(|r| r.iter().rev().take(20).rev().cloned().collect())
        .unwrap_or_default();
    format!("last log lines:\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::vm_rss_bytes;

    #[test]
    fn the_resident_size_is_read_from_the_vmrss_line() {
        let status = "Name:\tchat-server\nVmPeak:\t  900 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(20480 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\tmany kB\n"), None);
    }
}
