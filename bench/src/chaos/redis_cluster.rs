//! Faults of a Redis Cluster (`scripts/services.sh --profile cluster`: three masters and three
//! replicas on 127.0.0.1:7101-7106): SIGKILL a master and watch its replica take over and the
//! killed node come back as a replica; move a range of slots from one master to another with
//! `redis-cli --cluster reshard` while traffic flows. The servers of these runs use cluster
//! mode (`redis.mode = "cluster"`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

/// The cluster's nodes, and the seed nodes the servers are given.
pub const PORTS: [u16; 6] = [7101, 7102, 7103, 7104, 7105, 7106];
const SEEDS: &str = "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103";
/// Slots moved by the reshard fault (of 16384).
pub const RESHARD_SLOTS: u32 = 1000;
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// What makes a server process use the cluster.
pub fn server_env() -> Vec<(String, String)> {
    vec![
        ("CHAT__REDIS__MODE".to_owned(), "cluster".to_owned()),
        ("CHAT__REDIS__URLS".to_owned(), SEEDS.to_owned()),
    ]
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// Slots it serves (masters).
    pub slots: u32,
}

async fn cli(args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("redis-cli");
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
        .await
        .with_context(|| format!("redis-cli {args:?} timed out"))?
        .context("running redis-cli")?;
    if !output.status.success() {
        bail!(
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The cluster as the first answering node (other than `skip`) sees it.
pub async fn nodes(skip: Option<u16>) -> anyhow::Result<Vec<Node>> {
    for port in PORTS.iter().filter(|p| Some(**p) != skip) {
        let Ok(text) = cli(&["-p", &port.to_string(), "cluster", "nodes"]).await else {
            continue;
        };
        return Ok(parse_nodes(&text));
    }
    bail!("no cluster node answers")
}

fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (id, addr, flags) = (fields.first()?, fields.get(1)?, fields.get(2)?);
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let slots = fields
                .iter()
                .skip(8)
                .filter(|range| !range.starts_with('['))
                .map(|range| match range.split_once('-') {
                    Some((a, b)) => {
                        b.parse::<u32>().unwrap_or(0) - a.parse::<u32>().unwrap_or(0) + 1
                    }
                    None => 1,
                })
                .sum();
            Some(Node {
                id: (*id).to_owned(),
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail") && !flags.contains("pfail"),
                slots,
            })
        })
        .collect()
}

/// Whether every node but `skip` says the cluster is ok.
async fn healthy(skip: Option<u16>) -> bool {
    for port in PORTS.iter().filter(|p| Some(**p) != skip) {
        match cli(&["-p", &port.to_string(), "cluster", "info"]).await {
            Ok(info) if info.lines().any(|l| l.trim() == "cluster_state:ok") => {}
            _ => return false,
        }
    }
    true
}

/// SIGKILLs the master with the most slots; returns it.
pub async fn kill_master(root: &Path) -> anyhow::Result<Node> {
    let victim = nodes(None)
        .await?
        .into_iter()
        .filter(|n| n.master && !n.failed && n.slots > 0)
        .max_by_key(|n| n.slots)
        .context("no master serves slots")?;
    let pid_file = root.join(format!("var/cluster/pids/redis-{}.pid", victim.port));
    let pid = tokio::fs::read_to_string(&pid_file)
        .await
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let status = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .await
        .context("running kill")?;
    if !status.success() {
        bail!("kill -KILL {} failed", pid.trim());
    }
    tracing::info!(port = victim.port, "Redis Cluster master SIGKILLed");
    Ok(victim)
}

/// Waits until the killed master's slots are served by another master and the cluster is ok.
pub async fn wait_failover(dead: &Node, within: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(now) = nodes(Some(dead.port)).await {
            let taken_over = now
                .iter()
                .any(|n| n.master && !n.failed && n.id != dead.id && n.port != dead.port)
                && now
                    .iter()
                    .filter(|n| n.master && !n.failed && n.slots > 0)
                    .map(|n| n.slots)
                    .sum::<u32>()
                    == 16384
                && now.iter().all(|n| n.id != dead.id || !n.master || n.failed);
            if taken_over && healthy(Some(dead.port)).await {
                return Ok(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no replica took over the slots of {} within {within:?}",
                dead.port
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the killed node again (it rejoins with its nodes.conf) and waits until it is a
/// healthy replica.
pub async fn restart_as_replica(root: &Path, node: &Node, within: Duration) -> anyhow::Result<()> {
    let status = Command::new(root.join("scripts/services.sh"))
        .args(["--profile", "cluster", "up", "redis"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("running services.sh --profile cluster up")?;
    if !status.success() {
        bail!("services.sh --profile cluster up failed");
    }
    let deadline = Instant::now() + within;
    loop {
        if let Ok(now) = nodes(None).await
            && now
                .iter()
                .any(|n| n.id == node.id && !n.master && !n.failed)
            && healthy(None).await
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not rejoin as a replica within {within:?}",
                node.port
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves [`RESHARD_SLOTS`] slots from the master with the most to the one with the fewest;
/// returns (from, to).
pub async fn reshard() -> anyhow::Result<(Node, Node)> {
    let masters: Vec<Node> = nodes(None)
        .await?
        .into_iter()
        .filter(|n| n.master && !n.failed)
        .collect();
    let from = masters
        .iter()
        .max_by_key(|n| n.slots)
        .context("no master")?
        .clone();
    let to = masters
        .iter()
        .filter(|n| n.id != from.id)
        .min_by_key(|n| n.slots)
        .context("a single master")?
        .clone();
    let slots = RESHARD_SLOTS.to_string();
    cli(&[
        "--cluster",
        "reshard",
        &format!("127.0.0.1:{}", from.port),
        "--cluster-from",
        &from.id,
        "--cluster-to",
        &to.id,
        "--cluster-slots",
        &slots,
        "--cluster-yes",
    ])
    .await?;
    Ok((from, to))
}

/// The slots `node` serves now.
pub async fn slots_of(node: &Node) -> anyhow::Result<u32> {
    Ok(nodes(None)
        .await?
        .into_iter()
        .find(|n| n.id == node.id)
        .map_or(0, |n| n.slots))
}

#[cfg(test)]
mod tests {
    use super::parse_nodes;

    #[test]
    fn cluster_nodes_lines_are_read_with_their_slots() {
        let text = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460\n\
b2 127.0.0.1:7102@17102 master - 0 0 2 connected 5461-10922 12000 [123->-x]\n\
c3 127.0.0.1:7104@17104 slave a1 0 0 1 connected\n\
d4 127.0.0.1:7103@17103 master,fail - 0 0 3 disconnected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 4);
        assert_eq!(
            (nodes[0].port, nodes[0].master, nodes[0].slots),
            (7101, true, 5461)
        );
        assert_eq!(nodes[1].slots, 5463);
        assert!(!nodes[2].master);
        assert!(nodes[3].failed);
    }
}
