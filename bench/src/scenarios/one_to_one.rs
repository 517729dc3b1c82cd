//! Scenarios 1, 2 and 5: P pairs, each a sender streaming 1:1 messages to its receiver.
//!
//! 1. Throughput: every sender keeps W sends unacked; acked and delivered messages per second,
//!    latency. Compared with the storage limit (the same number of documents written straight
//!    into MongoDB) and the relay limit (the same load on the bare relay).
//! 2. Latency at fixed offered rates (fractions of the maximum measured in 1), paced, on the
//!    server and on the relay.
//! 5. Two processes: the same load, each pair's sender on one process and receiver on the other.

use std::time::Duration;

use anyhow::Result;

use crate::ledger::Latency;
use crate::peer::Endpoint;
use crate::redis_stats;
use crate::relay::RelayProcess;
use crate::report::{Distribution, Report, Row};
use crate::scenarios::pairs::{Measured, Pairs, measure, record, server_endpoints};
use crate::scenarios::{Ctx, Scenario};
use crate::server_conf;
use crate::storage::{self, StorageLimit};
use crate::sys::CpuWatch;

const S1: &str = "1:1 throughput";
const S2: &str = "1:1 latency";
const S5: &str = "two processes";

/// As long as the load generator's contents: "bench <client_msg_id> t=<micros>".
const CONTENT_LEN: usize = 40;

/// Results of the single-process server runs the other parts compare with.
#[derive(Default)]
struct Server1 {
    acked_per_sec: f64,
    delivered_per_sec: f64,
    p99_ms: f64,
    latency_at: Vec<(f64, f64, Latency)>,
}

pub async fn run(ctx: &Ctx, report: &mut Report, selected: &[Scenario]) -> Result<()> {
    let want = |s: Scenario| selected.contains(&s);
    let judge = ctx.sizes.full;
    let mut server1 = Server1::default();

    // Scenario 1 (always: scenario 2 needs its maximum), on one process.
    let server = ctx.spawn_server().await?;
    let mut pairs = Pairs::connect(
        ctx,
        server_endpoints(ctx, (server.port(), server.port())),
        "s1",
    )
    .await?;
    pairs.warm_up(ctx, report, S1, "chat-server").await;
    let cpu: CpuWatch = ctx.cpu_with(&[("chat-server", server.pid())]);
    let redis_before = redis_stats::snapshot(&ctx.services.redis_url).await?;
    let m = Step::window(S1, "chat-server", "server", ctx)
        .plotted()
        .run(ctx, report, &mut pairs, &cpu)
        .await;
    let redis_after = redis_stats::snapshot(&ctx.services.redis_url).await?;
    let work = redis_stats::diff(&redis_before, &redis_after, m.ledger.acked);
    // Script calls per 1:1 message are 2 + 2/B for batches of B (docs/benchmarks.md).
    let scripts = work.script_invocations_per_message;
    let batch_max = server_conf::batch_max()?;
    let mean_batch = if scripts > 2.0 {
        (2.0 / (scripts - 2.0)).round().clamp(1.0, batch_max as f64) as usize
    } else {
        batch_max
    };
    report.redis.push(crate::report::RedisRecord {
        scenario: S1.into(),
        label: "chat-server, 1 process".into(),
        work,
    });
    server1.acked_per_sec = m.acked_per_sec;
    server1.delivered_per_sec = m.delivered_per_sec;
    server1.p99_ms = m.ledger.latency.p99_ms;
    let acked_total = m.ledger.acked;

    // Scenario 2 on the same process and connections.
    if want(Scenario::Latency) {
        for &fraction in &ctx.sizes.latency_fractions {
            let rate = (fraction * server1.acked_per_sec).max(1.0);
            let percent = fraction * 100.0;
            let system = format!("chat-server at {percent:.0}%");
            let m = Step::paced(S2, &system, "server", percent, rate, ctx.sizes.latency_secs)
                .cpu(&system)
                .curve("chat-server")
                .distribution(&format!("chat-server, {percent:.0}% of max"))
                .run(ctx, report, &mut pairs, &cpu)
                .await;
            server1.latency_at.push((fraction, rate, m.ledger.latency));
        }
        // Offered at and beyond the maximum, for the throughput-vs-offered curve: where the
        // server stops keeping up.
        for &fraction in &ctx.sizes.overload_fractions {
            let rate = (fraction * server1.acked_per_sec).max(1.0);
            let percent = fraction * 100.0;
            let system = format!("chat-server at {percent:.0}%");
            let secs = ctx.sizes.latency_secs / 2.0;
            Step::paced(S2, &system, "server", percent, rate, secs)
                .curve("chat-server")
                .run(ctx, report, &mut pairs, &cpu)
                .await;
        }
    }
    pairs.close().await;
    let server_log_errors = server
        .recent_log()
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .count();
    if server_log_errors > 0 {
        report.notes.push(format!(
            "{S1}: the server logged {server_log_errors} errors (see its log)"
        ));
    }
    server.terminate().await?;

    // The storage limit: as many documents as scenario 1 stored.
    let documents = acked_total.max(1);
    let limit = storage_limit(
        ctx,
        report,
        documents,
        batch_max,
        ctx.sizes.storage_writers,
        "storage limit (insert_many)",
    )
    .await?;
    report.notes.push(format!(
        "Storage limit: {} documents in {:.1} s, insert_many of {} with {} concurrent writers.",
        limit.documents, limit.secs, limit.batch, limit.writers
    ));
    // The same documents as the server writes them: one writer, batches of the mean size
    // scenario 1 reached, one after another.
    let sequential = storage_limit(
        ctx,
        report,
        documents,
        mean_batch,
        1,
        &format!("storage, 1 writer × {mean_batch}"),
    )
    .await?;

    // The relay limit: the same pairs and window on the bare relay.
    let relay = RelayProcess::spawn(ctx.relay_workers).await?;
    let endpoints: Vec<(String, Endpoint)> = (1..=2 * ctx.sizes.pairs)
        .map(|i| {
            let id = i.to_string();
            let url = relay.url(&id);
            (id, Endpoint::Relay { url })
        })
        .collect();
    let mut relay_pairs = Pairs::connect(ctx, endpoints, "r1").await?;
    relay_pairs.warm_up(ctx, report, S1, "relay").await;
    let cpu = ctx.cpu_with(&[("relay", relay.pid().unwrap_or(0))]);
    let r = Step::window(S1, "relay", "relay", ctx)
        .plotted()
        .run(ctx, report, &mut relay_pairs, &cpu)
        .await;
    let mut relay_latency_at = Vec::new();
    for &(fraction, rate, _) in &server1.latency_at {
        let percent = fraction * 100.0;
        let system = format!("relay at the server's {percent:.0}%");
        let m = Step::paced(S2, &system, "relay", percent, rate, ctx.sizes.latency_secs)
            .curve("relay")
            .run(ctx, report, &mut relay_pairs, &cpu)
            .await;
        relay_latency_at.push(m.ledger.latency);
    }
    relay_pairs.close().await;
    relay.stop().await?;

    report.rows.push(
        Row::new(S1, "acked (stored) msgs/s", server1.acked_per_sec, "msg/s")
            .limit("storage limit", limit.docs_per_sec)
            .target(
                "≥ 0.8 × storage limit",
                server1.acked_per_sec >= 0.8 * limit.docs_per_sec,
                judge,
            ),
    );
    report.rows.push(
        Row::new(
            S1,
            "acked msgs/s vs one sequential writer",
            server1.acked_per_sec,
            "msg/s",
        )
        .limit(
            &format!("storage, 1 writer, batches of {mean_batch}"),
            sequential.docs_per_sec,
        ),
    );
    report.rows.push(
        Row::new(S1, "delivered msgs/s", server1.delivered_per_sec, "msg/s")
            .limit("relay limit", r.delivered_per_sec),
    );
    report.rows.push(
        Row::new(S1, "p99 latency at max rate", server1.p99_ms, "ms")
            .limit("relay at its max", r.ledger.latency.p99_ms),
    );
    for ((fraction, rate, latency), relay) in server1.latency_at.iter().zip(&relay_latency_at) {
        let row = Row::new(
            S2,
            &format!("p99 at {:.0}% of max ({rate:.0} msg/s)", fraction * 100.0),
            latency.p99_ms,
            "ms",
        )
        .limit("relay, same rate", relay.p99_ms);
        let row = if (*fraction - 0.5).abs() < 1e-9 {
            row.target("≤ 25 ms", latency.p99_ms <= 25.0, judge)
        } else {
            row
        };
        report.rows.push(row);
    }

    // Scenario 5: two processes sharing Redis.
    if want(Scenario::TwoProcesses) {
        let a = ctx.spawn_server().await?;
        let b = ctx.spawn_server().await?;
        let mut pairs =
            Pairs::connect(ctx, server_endpoints(ctx, (a.port(), b.port())), "s5").await?;
        pairs.warm_up(ctx, report, S5, "2 × chat-server").await;
        let cpu = ctx.cpu_with(&[("chat-server", a.pid()), ("chat-server 2", b.pid())]);
        let redis_before = redis_stats::snapshot(&ctx.services.redis_url).await?;
        let m = Step::window(S5, "2 × chat-server", "2 processes", ctx)
            .run(ctx, report, &mut pairs, &cpu)
            .await;
        let redis_after = redis_stats::snapshot(&ctx.services.redis_url).await?;
        report.redis.push(crate::report::RedisRecord {
            scenario: S5.into(),
            label: "chat-server, 2 processes".into(),
            work: redis_stats::diff(&redis_before, &redis_after, m.ledger.acked),
        });
        report.rows.push(
            Row::new(
                S5,
                "acked msgs/s, delivery across processes",
                m.acked_per_sec,
                "msg/s",
            )
            .limit("1 process, same run", server1.acked_per_sec)
            .target(
                "≥ 0.9 × 1 process",
                m.acked_per_sec >= 0.9 * server1.acked_per_sec,
                judge,
            ),
        );
        report.rows.push(
            Row::new(S5, "acked msgs/s vs storage", m.acked_per_sec, "msg/s")
                .limit("storage limit", limit.docs_per_sec),
        );
        report.rows.push(
            Row::new(S5, "p99 latency at max rate", m.ledger.latency.p99_ms, "ms")
                .limit("1 process, same run", server1.p99_ms),
        );
        pairs.close().await;
        a.terminate().await?;
        b.terminate().await?;
        if let Some(seeds) = ctx.cluster_seeds.clone() {
            on_cluster(ctx, report, &seeds, judge).await?;
        }
    }
    Ok(())
}

/// The pairs' endpoints of [`server_endpoints`], with sessions made through the server on
/// `login_port` (its Redis holds them).
async fn relogged_endpoints(
    ctx: &Ctx,
    login_port: u16,
    ports: (u16, u16),
) -> Result<Vec<(String, crate::peer::Endpoint)>> {
    use futures_util::{StreamExt, TryStreamExt};
    let http = crate::client::Http::new(login_port)?;
    let users = ctx.users.iter().take(2 * ctx.sizes.pairs);
    let cookies: Vec<String> = futures_util::stream::iter(users)
        .map(|user| {
            let http = http.clone();
            async move {
                http.login(&user.name, crate::client::PASSWORD)
                    .await
                    .map(|u| u.cookie)
            }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let mut endpoints = server_endpoints(ctx, ports);
    for ((_, endpoint), cookie) in endpoints.iter_mut().zip(cookies) {
        if let crate::peer::Endpoint::Server { cookie: old, .. } = endpoint {
            *old = cookie;
        }
    }
    Ok(endpoints)
}

/// Scenario 5 on a Redis Cluster: one process, then two (each pair's sender on one, its
/// receiver on the other), with the Redis commands per message summed over the masters.
async fn on_cluster(ctx: &Ctx, report: &mut Report, seeds: &str, judge: bool) -> Result<()> {
    let mut acked = Vec::new();
    for processes in [1, 2] {
        let a = ctx.spawn_cluster_server(seeds).await?;
        let b = if processes == 2 {
            Some(ctx.spawn_cluster_server(seeds).await?)
        } else {
            None
        };
        let ports = (
            a.port(),
            b.as_ref()
                .map_or(a.port(), crate::server::ServerProcess::port),
        );
        let system = format!("{processes} × chat-server, Redis Cluster");
        let tag = format!("s5c{processes}");
        // Sessions live in Redis: the users log in again, into the cluster.
        let endpoints = relogged_endpoints(ctx, a.port(), ports).await?;
        let mut pairs = Pairs::connect(ctx, endpoints, &tag).await?;
        pairs.warm_up(ctx, report, S5, &system).await;
        let mut watched = vec![("chat-server", a.pid())];
        if let Some(b) = &b {
            watched.push(("chat-server 2", b.pid()));
        }
        let cpu = ctx.cpu_with(&watched);
        let before = redis_stats::snapshot_cluster(seeds).await?;
        let label = format!("{processes} on a Redis Cluster");
        let m = Step::window(S5, &system, &label, ctx)
            .run(ctx, report, &mut pairs, &cpu)
            .await;
        let after = redis_stats::snapshot_cluster(seeds).await?;
        report.redis.push(crate::report::RedisRecord {
            scenario: S5.into(),
            label: format!("chat-server, {processes} on a Redis Cluster"),
            work: redis_stats::diff(&before, &after, m.ledger.acked),
        });
        acked.push(m.acked_per_sec);
        pairs.close().await;
        a.terminate().await?;
        if let Some(b) = b {
            b.terminate().await?;
        }
    }
    report.rows.push(
        Row::new(
            S5,
            "acked msgs/s, 2 processes on a Redis Cluster",
            acked[1],
            "msg/s",
        )
        .limit("1 process on the cluster, same run", acked[0])
        .target("≥ 0.9 × 1 process", acked[1] >= 0.9 * acked[0], judge),
    );
    Ok(())
}

/// Writes `documents` message documents of the pairs' conversations straight into MongoDB in
/// batches of `batch` from `writers` concurrent writers, and records the machine's CPU use
/// meanwhile as `cpu_label`.
async fn storage_limit(
    ctx: &Ctx,
    report: &mut Report,
    documents: u64,
    batch: usize,
    writers: usize,
    cpu_label: &str,
) -> Result<StorageLimit> {
    let cpu = ctx.cpu.sample();
    let limit = storage::measure(
        &ctx.services.mongodb_uri,
        documents,
        ctx.sizes.pairs as u64,
        CONTENT_LEN,
        batch,
        writers,
        Duration::from_secs_f64(ctx.sizes.storage_max_secs),
    )
    .await?;
    report.cpu(S1, cpu_label, cpu.since());
    Ok(limit)
}

/// One measurement of the pairs, windowed (the maximum rate) or paced, and what the report
/// keeps of it: always its checks and latencies; its CPU use, its point on a throughput curve
/// (x: the offered rate, or the acked one for a window) and its latency distribution when
/// asked for.
struct Step {
    scenario: &'static str,
    /// The system as the report's tables name it.
    system: String,
    /// What the progress bar says while it runs.
    label: String,
    rate: Option<f64>,
    secs: f64,
    cpu: Option<String>,
    curve: Option<String>,
    distribution: Option<String>,
}

impl Step {
    /// At the maximum rate the window allows on `on` (server, relay, 2 processes), for
    /// `sizes.throughput_secs`; its CPU use is recorded as "<system>, window".
    fn window(scenario: &'static str, system: &str, on: &str, ctx: &Ctx) -> Self {
        let label = format!("1:1 max ({on})");
        Self::new(scenario, system, label, None, ctx.sizes.throughput_secs)
            .cpu(&format!("{system}, window"))
    }

    /// A window step's point on the throughput curve ("<system> (window)") and its latency
    /// distribution ("<system>, max rate").
    fn plotted(self) -> Self {
        let curve = format!("{} (window)", self.system);
        let distribution = format!("{}, max rate", self.system);
        self.curve(&curve).distribution(&distribution)
    }

    /// Paced at `rate` (`percent` of the server's maximum) on `on` (server, relay).
    fn paced(
        scenario: &'static str,
        system: &str,
        on: &str,
        percent: f64,
        rate: f64,
        secs: f64,
    ) -> Self {
        let label = format!("1:1 at {percent:.0}% ({on})");
        Self::new(scenario, system, label, Some(rate), secs)
    }

    fn new(
        scenario: &'static str,
        system: &str,
        label: String,
        rate: Option<f64>,
        secs: f64,
    ) -> Self {
        Self {
            scenario,
            system: system.to_owned(),
            label,
            rate,
            secs,
            cpu: None,
            curve: None,
            distribution: None,
        }
    }

    fn cpu(mut self, label: &str) -> Self {
        self.cpu = Some(label.to_owned());
        self
    }

    fn curve(mut self, name: &str) -> Self {
        self.curve = Some(name.to_owned());
        self
    }

    fn distribution(mut self, name: &str) -> Self {
        self.distribution = Some(name.to_owned());
        self
    }

    async fn run(
        self,
        ctx: &Ctx,
        report: &mut Report,
        pairs: &mut Pairs,
        cpu: &CpuWatch,
    ) -> Measured {
        let m = measure(ctx, pairs, cpu, &self.label, self.rate, self.secs).await;
        record(
            report,
            self.scenario,
            &self.system,
            &m,
            self.rate.unwrap_or(0.0),
        );
        if let Some(label) = &self.cpu {
            report.cpu(self.scenario, label, m.cpu.clone());
        }
        if let Some(name) = &self.curve {
            report.curve_point(name, self.rate.unwrap_or(m.acked_per_sec), m.acked_per_sec);
        }
        if let Some(name) = self.distribution {
            report.latency_distributions.push(Distribution {
                name,
                percentiles: m.distribution.clone(),
            });
        }
        m
    }
}
