//! The `chaos` profile's backing services, stopped and started one at a time through
//! `scripts/services.sh --profile chaos`, the same script that set them up, so a fault is a
//! real process going away (and its data kept, or deleted for a Redis that lost everything).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use chat_loadgen::server::Services;
use tokio::process::Command;

/// Addresses of the chaos profile (see scripts/services.sh).
const REDIS_URL: &str = "redis://127.0.0.1:16381";
const MYSQL_URL: &str = "mysql://chat:chat@127.0.0.1:13308/chat";
const MONGODB_URI: &str = "mongodb://127.0.0.1:17019";
const SMTP_URL: &str = "smtp://127.0.0.1:2527";

/// MariaDB may flush InnoDB for a while on stop; services.sh itself waits up to 120 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The environment variables that make services.sh leave a service alone; never passed on.
const SKIP_VARS: [&str; 4] = [
    "CHAT__REDIS__URL",
    "CHAT__MYSQL__URL",
    "CHAT__MONGODB__URI",
    "CHAT__MAIL__SMTP_URL",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Redis,
    Mariadb,
    Mongo,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Mariadb => "mariadb",
            Self::Mongo => "mongo",
        }
    }
}

/// The repository whose scripts/services.sh and var/chaos the faults act on.
#[derive(Debug, Clone)]
pub struct ServiceControl {
    root: PathBuf,
}

impl ServiceControl {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The repository the services belong to.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// What the server processes of a run share: this profile's services, the repository's
    /// conf/config.toml, one session secret.
    pub fn services(&self) -> anyhow::Result<Services> {
        Services::new(
            REDIS_URL,
            MYSQL_URL,
            MONGODB_URI,
            SMTP_URL,
            &self.root.join("conf/config.toml"),
        )
    }

    pub async fn down(&self, service: Service) -> anyhow::Result<()> {
        self.script("down", Some(service)).await
    }

    /// Every service of the profile stopped, its data deleted, started again.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.script("reset", None).await
    }

    pub async fn up(&self, service: Service) -> anyhow::Result<()> {
        self.script("up", Some(service)).await
    }

    /// Deletes Redis's data directory (AOF and snapshot) while it is stopped: the next start
    /// is a Redis that lost everything, sessions, counters and presence included.
    pub async fn wipe_redis_data(&self) -> anyhow::Result<()> {
        let dir = self.root.join("var/chaos/redis");
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("deleting {}", dir.display())),
        }
    }

    async fn script(&self, action: &str, service: Option<Service>) -> anyhow::Result<()> {
        let script = self.root.join("scripts/services.sh");
        let name = service.map_or("all", Service::name);
        let mut command = Command::new(&script);
        command.args(["--profile", "chaos", action]);
        if let Some(service) = service {
            command.arg(service.name());
        }
        command
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in SKIP_VARS {
            command.env_remove(var);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("services.sh {action} {name} timed out"))??;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            bail!(
                "services.sh {action} {name} failed ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        tracing::info!(service = name, action, "service changed");
        Ok(())
    }
}
