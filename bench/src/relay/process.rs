//! The relay as a child process of the load generator (`<this binary> relay`), so its CPU and
//! memory are measured apart from the load generator's, as the server's are.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A relay running as a child process of the load generator (`<this binary> relay`).
pub struct RelayProcess {
    child: Child,
    port: u16,
}

impl RelayProcess {
    pub async fn spawn(workers: usize) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the loadgen binary")?;
        let port_file =
            std::env::temp_dir().join(format!("loadgen-relay-{}.port", std::process::id()));
        let _ = std::fs::remove_file(&port_file);
        let mut child = Command::new(exe)
            .arg("relay")
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--port-file")
            .arg(&port_file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the relay")?;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse::<u16>()
            {
                let _ = std::fs::remove_file(&port_file);
                return Ok(Self { child, port });
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the relay exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the relay did not start listening within 10 s")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `ws://127.0.0.1:<port>/ws?id=<id>`
    pub fn url(&self, id: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?id={id}", self.port)
    }

    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
