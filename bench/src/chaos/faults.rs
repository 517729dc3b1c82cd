//! The faults, and the run of one: two server processes on the chaos services, fresh users in
//! pairs (1:1) and groups, clients split between the processes, traffic before, during and
//! after the fault, then the checks of [`super::tally`] and the fault's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_loadgen::client::{self, Http, User};
use chat_loadgen::server::Services;
use clap::ValueEnum;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::checks;
use super::nodes::{self, Cluster, SHUTDOWN_TIMEOUT_SECS, StopOutcome};
use super::record::ClientLog;
use super::redis_cluster;
use super::report::FaultFigures;
use super::services::{Service, ServiceControl};
use super::tally::{self, Topology};
use super::traffic::{ChaosClient, Phase, Profile, Shared};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// SIGKILL one of two server processes; its clients move to the other.
    KillNode,
    /// Stop Redis, wait, start it again with its data (AOF).
    RedisRestart,
    /// Stop Redis, delete its data, start it empty: sessions, counters, presence all gone.
    RedisFlush,
    /// Stop the MongoDB server for a few seconds.
    MongoStop,
    /// Stop MariaDB for a few seconds.
    MysqlStop,
    /// SIGTERM one of two server processes: graceful stop.
    Sigterm,
    /// Redis Cluster: SIGKILL the master with the most slots; its replica takes over, the
    /// killed node is started again and rejoins as a replica.
    ClusterFailover,
    /// Redis Cluster: move 1000 slots from one master to another during traffic.
    ClusterReshard,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillNode,
        Fault::RedisRestart,
        Fault::RedisFlush,
        Fault::MongoStop,
        Fault::MysqlStop,
        Fault::Sigterm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::KillNode => "kill-node",
            Self::RedisRestart => "redis-restart",
            Self::RedisFlush => "redis-flush",
            Self::MongoStop => "mongo-stop",
            Self::MysqlStop => "mysql-stop",
            Self::Sigterm => "sigterm",
            Self::ClusterFailover => "cluster-failover",
            Self::ClusterReshard => "cluster-reshard",
        }
    }

    /// Whether the run uses the Redis Cluster (`scripts/services.sh --profile cluster`).
    pub fn on_cluster(self) -> bool {
        matches!(self, Self::ClusterFailover | Self::ClusterReshard)
    }

    /// A short tag for user names and client_msg_ids (which are at most 64 characters).
    fn tag(self) -> &'static str {
        match self {
            Self::KillNode => "kn",
            Self::RedisRestart => "rr",
            Self::RedisFlush => "rf",
            Self::MongoStop => "ms",
            Self::MysqlStop => "my",
            Self::Sigterm => "st",
            Self::ClusterFailover => "cf",
            Self::ClusterReshard => "cr",
        }
    }
}

/// How big and how long each fault run is.
#[derive(Debug, Clone)]
pub struct Size {
    pub clients: usize,
    pub group_size: usize,
    /// Messages per second per client.
    pub rate: f64,
    /// Traffic before the fault.
    pub before: Duration,
    /// How long a stopped service stays down.
    pub hold: Duration,
    /// Traffic after the fault ended.
    pub after: Duration,
    /// Reading on after the last acknowledgement, before the history is checked.
    pub settle: Duration,
}

impl Size {
    pub fn small() -> Self {
        Self {
            clients: 16,
            group_size: 8,
            rate: 3.0,
            before: Duration::from_secs(2),
            hold: Duration::from_secs(3),
            after: Duration::from_secs(3),
            settle: Duration::from_millis(1500),
        }
    }

    /// Sized for the local MongoDB stand-in (nx-27017 answers one query at a time, some tens
    /// of milliseconds each): with 200 clients a reconnect storm outlasts any sensible bound
    /// (docs/reliability.md).
    pub fn full() -> Self {
        Self {
            clients: 100,
            group_size: 20,
            rate: 2.0,
            before: Duration::from_secs(8),
            hold: Duration::from_secs(6),
            after: Duration::from_secs(8),
            settle: Duration::from_secs(3),
        }
    }
}

/// Bounds on the waits of a run; none of them is expected to be reached.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);
const RECOVER_WITHIN: Duration = Duration::from_secs(90);
const FINISH_WITHIN: Duration = Duration::from_secs(30);
/// Joins to one group in flight at once during the set-up.
const JOINS_AT_ONCE: usize = 4;
/// First connects (handshake and resume) in flight at once.
const FIRST_CONNECTS: usize = 32;
const VERIFY_WITHIN: Duration = Duration::from_secs(60);
/// The hard stop of every client loop, past the planned end of the run.
const SLACK: Duration = Duration::from_secs(120);

/// What a fault run needs from its caller.
pub struct Env<'a> {
    pub server_bin: &'a Path,
    pub services: &'a Services,
    pub control: &'a ServiceControl,
    pub out: &'a Path,
}

/// The window in which the fault was in force, and what the fault itself observed.
struct Window {
    start: Instant,
    /// When it ended: the service is back, or (for a process fault) at once.
    end: Instant,
    checks: Vec<String>,
    violations: Vec<String>,
}

/// Runs one fault from start to finish; errors only when the run itself could not be set up.
pub async fn run(fault: Fault, size: &Size, env: &Env<'_>) -> anyhow::Result<FaultFigures> {
    tracing::info!(
        fault = fault.name(),
        clients = size.clients,
        "fault run starting"
    );
    let extra = if fault.on_cluster() {
        redis_cluster::server_env()
    } else {
        Vec::new()
    };
    let mut cluster = Cluster::start(env.server_bin, env.services, 2, &extra)
        .await
        .context("starting two server processes")?;
    let result = drive(fault, size, env, &mut cluster).await;
    write_logs(env.out, fault, &cluster);
    cluster.shutdown().await;
    let mut figures = result?;
    figures.fault = fault.name().to_owned();
    tracing::info!(
        fault = fault.name(),
        sent = figures.sent,
        acked = figures.acked,
        lost = figures.lost,
        duplicates = figures.duplicates,
        violations = figures.violations.len(),
        "fault run done"
    );
    Ok(figures)
}

async fn drive(
    fault: Fault,
    size: &Size,
    env: &Env<'_>,
    cluster: &mut Cluster,
) -> anyhow::Result<FaultFigures> {
    let port = cluster.port(0).context("node 0 is not up")?;
    let http = Http::new(port)?;
    let prefix = client::run_prefix(fault.tag());
    let n = size.clients.max(2) & !1;
    let users = client::create_users(&http, &prefix, n, 16, || {}).await?;
    let (groups, topology) = make_groups(&http, &users, size.group_size).await?;

    let (phase_tx, phase_rx) = watch::channel(Phase::Send);
    let planned = size.before + size.hold + RECOVER_WITHIN + size.after + size.settle;
    let shared = Shared {
        run: prefix.clone(),
        ports: cluster.ports(),
        phase: phase_rx,
        deadline: Instant::now() + planned + SLACK,
        connected: Arc::new(AtomicUsize::new(0)),
        pending: Arc::new(AtomicUsize::new(0)),
        first_connects: Arc::new(Semaphore::new(FIRST_CONNECTS)),
        last_ack_ms: Arc::new((0..n).map(|_| AtomicU64::new(0)).collect()),
        epoch: Instant::now(),
    };
    let mut tasks = JoinSet::new();
    for (idx, user) in users.iter().enumerate() {
        let partner = idx ^ 1;
        let group = idx / size.group_size.max(2);
        let mut verify = Vec::new();
        if idx < partner {
            verify.push(client::dm(&user.id, &users[partner].id));
        }
        if idx % size.group_size.max(2) == 0 {
            verify.push(format!("g:{}", groups[group]));
        }
        let profile = Profile {
            idx,
            user: user.clone(),
            home: idx % 2,
            partner_id: users[partner].id.clone(),
            group_id: groups[group].clone(),
            verify,
            rate: size.rate,
        };
        tasks.spawn(ChaosClient::new(profile, shared.clone()).run());
    }
    let mut early = Vec::new();
    if !wait_for(
        || shared.connected.load(Ordering::SeqCst) >= n,
        CONNECT_WITHIN,
    )
    .await
    {
        early.push(format!(
            "only {} of {n} clients connected within {CONNECT_WITHIN:?}",
            shared.connected.load(Ordering::SeqCst)
        ));
    }

    tokio::time::sleep(size.before).await;
    let mut stop = None;
    let mut window = inject(fault, size, env, cluster, &users[0], &mut stop).await?;
    let healthy_at = cluster.wait_healthy(HEALTHY_WITHIN).await;
    // Traffic goes on until every client is sending successfully again (however long the
    // recovery takes, within a bound), then for the planned time after that.
    let flowing = wait_for(|| shared.all_acked_since(window.end), RECOVER_WITHIN).await;
    if !flowing {
        early.push(format!(
            "traffic was not flowing for every client {RECOVER_WITHIN:?} after the fault ended"
        ));
    }
    tokio::time::sleep(size.after).await;

    if let Some(stop) = stop {
        let stop = stop.await?;
        if let Ok(outcome) = &stop {
            write_log(env.out, fault, "node0-stop", &outcome.log);
        }
        match checks::judge_stop(stop) {
            Ok(check) => window.checks.push(check),
            Err(violation) => window.violations.push(violation),
        }
    }
    let _ = phase_tx.send(Phase::Finish);
    if !wait_for(|| shared.pending.load(Ordering::SeqCst) == 0, FINISH_WITHIN).await {
        early.push(format!(
            "{} clients still had a send unacknowledged {FINISH_WITHIN:?} after the traffic stopped",
            shared.pending.load(Ordering::SeqCst)
        ));
    }
    tokio::time::sleep(size.settle).await;
    let _ = phase_tx.send(Phase::Verify);
    let logs = collect(tasks, VERIFY_WITHIN).await;
    if logs.len() < n {
        early.push(format!(
            "{} of {n} clients did not finish their checks within {VERIFY_WITHIN:?}",
            n - logs.len()
        ));
    }

    let mut figures = tally::tally(&logs, &topology);
    figures.violations.splice(0..0, early);
    figures.health_ms = healthy_at.map(|at| millis(at.saturating_duration_since(window.end)));
    if healthy_at.is_none() {
        figures.violations.push(format!(
            "/health did not answer 200 within {HEALTHY_WITHIN:?} of the fault's end"
        ));
    }
    match (healthy_at, tally::all_acked_after(&logs, window.end)) {
        (Some(healthy), Ok(flowing)) => {
            figures.recovery_ms = Some(millis(
                healthy.max(flowing).saturating_duration_since(window.end),
            ));
        }
        (_, Err(clients)) => figures.violations.push(format!(
            "clients with no send acknowledged after the fault ended: {clients:?}"
        )),
        (None, Ok(_)) => {}
    }
    let times = checks::Times {
        start: window.start,
        end: window.end,
    };
    figures.checks = window.checks;
    figures.violations.extend(window.violations);
    let (checks, violations) = checks::fault_checks(fault, &logs, &times);
    figures.checks.extend(checks);
    figures.violations.extend(violations);
    Ok(figures)
}

/// Groups of `size` consecutive users: the first creates it (open), the others join.
async fn make_groups(
    http: &Http,
    users: &[User],
    size: usize,
) -> anyhow::Result<(Vec<String>, Topology)> {
    let size = size.max(2);
    let mut groups = Vec::new();
    let mut topology = Topology::default();
    for (g, members) in users.chunks(size).enumerate() {
        let id = http
            .create_group(&members[0], &format!("chaos {g}"))
            .await?;
        join_members(http, &members[1..], &id).await?;
        let first = g * size;
        topology
            .participants
            .insert(format!("g:{id}"), (first..first + members.len()).collect());
        groups.push(id);
    }
    for i in (0..users.len()).step_by(2) {
        topology
            .participants
            .insert(client::dm(&users[i].id, &users[i + 1].id), vec![i, i + 1]);
    }
    Ok((groups, topology))
}

/// `users` join the open group `id`, a few at a time: the set-up is not what these runs test
/// (a burst of joins to one group is a defect of its own, listed in docs/reliability.md).
pub async fn join_members(http: &Http, users: &[User], id: &str) -> anyhow::Result<()> {
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(users)
        .map(|u| http.join_group(u, id))
        .buffer_unordered(JOINS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Applies the fault and returns its window (from the first step of the fault to the moment
/// it is over: a stopped service is back up, a process is gone); probes what must hold while
/// it is in force. A graceful stop is left running in `stop`.
async fn inject(
    fault: Fault,
    size: &Size,
    env: &Env<'_>,
    cluster: &mut Cluster,
    probe_user: &User,
    stop: &mut Option<tokio::task::JoinHandle<anyhow::Result<StopOutcome>>>,
) -> anyhow::Result<Window> {
    let mut checks = Vec::new();
    let mut violations = Vec::new();
    let (start, end) = match fault {
        Fault::KillNode => {
            let start = Instant::now();
            cluster.kill(0).await?;
            checks.push("node A SIGKILLed".to_owned());
            (start, start)
        }
        Fault::Sigterm => {
            let start = Instant::now();
            // Watched in the background: the clients' recovery is timed from the signal, not
            // from the process's exit.
            let stopping = cluster.begin_terminate(0).await?;
            let budget = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5);
            *stop = Some(tokio::spawn(nodes::finish_terminate(
                stopping, start, budget,
            )));
            (start, start)
        }
        Fault::RedisRestart | Fault::RedisFlush | Fault::MongoStop => {
            let service = if fault == Fault::MongoStop {
                Service::Mongo
            } else {
                Service::Redis
            };
            let start = Instant::now();
            env.control.down(service).await?;
            if fault == Fault::RedisFlush {
                env.control.wipe_redis_data().await?;
            }
            tokio::time::sleep(size.hold).await;
            env.control.up(service).await?;
            (start, Instant::now())
        }
        Fault::ClusterFailover => {
            let start = Instant::now();
            let dead = redis_cluster::kill_master(env.control.root()).await?;
            match redis_cluster::wait_failover(&dead, RECOVER_WITHIN).await {
                Ok(at) => checks.push(format!(
                    "master {} SIGKILLed; its replica served its {} slots after {} ms",
                    dead.port,
                    dead.slots,
                    millis(at.saturating_duration_since(start))
                )),
                Err(err) => violations.push(format!("{err:#}")),
            }
            let end = Instant::now();
            match redis_cluster::restart_as_replica(env.control.root(), &dead, RECOVER_WITHIN).await
            {
                Ok(()) => checks.push(format!("{} restarted and rejoined as a replica", dead.port)),
                Err(err) => violations.push(format!("{err:#}")),
            }
            (start, end)
        }
        Fault::ClusterReshard => {
            let start = Instant::now();
            let (from, to) = redis_cluster::reshard().await?;
            let end = Instant::now();
            let now = redis_cluster::slots_of(&to).await?;
            let moved = now.saturating_sub(to.slots);
            let line = format!(
                "{moved} slots moved from {} to {} in {} ms during traffic",
                from.port,
                to.port,
                millis(end.saturating_duration_since(start))
            );
            if moved == redis_cluster::RESHARD_SLOTS {
                checks.push(line);
            } else {
                violations.push(line);
            }
            (start, end)
        }
        Fault::MysqlStop => {
            let start = Instant::now();
            env.control.down(Service::Mariadb).await?;
            let down = Instant::now();
            let port = cluster.port(1).context("node B is not up")?;
            checks::probe_mysql_down(port, probe_user, &mut checks, &mut violations).await;
            tokio::time::sleep_until((down + size.hold).into()).await;
            env.control.up(Service::Mariadb).await?;
            (start, Instant::now())
        }
    };
    Ok(Window {
        start,
        end,
        checks,
        violations,
    })
}

async fn wait_for(done: impl Fn() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Every client's log; those that do not finish in time are aborted and left out.
async fn collect(mut tasks: JoinSet<ClientLog>, within: Duration) -> Vec<ClientLog> {
    let deadline = tokio::time::Instant::now() + within;
    let mut logs = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(log))) => logs.push(log),
            Ok(Some(Err(err))) => tracing::error!(error = %err, "a client task failed"),
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                break;
            }
        }
    }
    logs.sort_by_key(|l| l.idx);
    logs
}

fn write_logs(out: &Path, fault: Fault, cluster: &Cluster) {
    for (node, lines) in cluster.logs() {
        write_log(out, fault, &format!("node{node}"), &lines);
    }
}

fn write_log(out: &Path, fault: Fault, name: &str, lines: &[String]) {
    let path: PathBuf = out.join(format!("{}-{name}.log", fault.name()));
    if let Err(err) = std::fs::write(&path, lines.join("\n")) {
        tracing::warn!(path = %path.display(), error = %err, "could not write a node log");
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
