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
use crate::scenarios::pairs::{Pairs, measure, record, server_endpoints};
use crate::scenarios::{Ctx, Scenario};
use crate::storage;
use crate::sys::CpuWatch;

const S1: &str = "1:1 throughput";
const S2: &str = "1:1 latency";
const S5: &str = "two processes";

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
    let m = measure(
        ctx,
        &mut pairs,
        &cpu,
        "1:1 max (server)",
        None,
        ctx.sizes.throughput_secs,
    )
    .await;
    report.cpu(S1, "chat-server, window", m.cpu.clone());
    let redis_after = redis_stats::snapshot(&ctx.services.redis_url).await?;
    let work = redis_stats::diff(&redis_before, &redis_after, m.ledger.acked);
    // Script calls per message are 1 + 2/B for batches of B (docs/benchmarks.md).
    let scripts = work.script_invocations_per_message;
    let mean_batch = if scripts > 1.0 {
        (2.0 / (scripts - 1.0))
            .round()
            .clamp(1.0, storage::SERVER_BATCH_MAX as f64) as usize
    } else {
        storage::SERVER_BATCH_MAX
    };
    report.redis.push(crate::report::RedisRecord {
        scenario: S1.into(),
        label: "chat-server, 1 process".into(),
        work,
    });
    record(report, S1, "chat-server", &m, 0.0);
    report.latency_distributions.push(Distribution {
        name: "chat-server, max rate".into(),
        percentiles: m.distribution.clone(),
    });
    server1.acked_per_sec = m.acked_per_sec;
    server1.delivered_per_sec = m.delivered_per_sec;
    server1.p99_ms = m.ledger.latency.p99_ms;
    report.curve_point("chat-server (window)", m.acked_per_sec, m.acked_per_sec);
    let acked_total = m.ledger.acked;

    // Scenario 2 on the same process and connections.
    if want(Scenario::Latency) {
        for &fraction in &ctx.sizes.latency_fractions {
            let rate = (fraction * server1.acked_per_sec).max(1.0);
            let label = format!("1:1 at {:.0}% (server)", fraction * 100.0);
            let m = measure(
                ctx,
                &mut pairs,
                &cpu,
                &label,
                Some(rate),
                ctx.sizes.latency_secs,
            )
            .await;
            record(
                report,
                S2,
                &format!("chat-server at {:.0}%", fraction * 100.0),
                &m,
                rate,
            );
            report.cpu(
                S2,
                &format!("chat-server at {:.0}%", fraction * 100.0),
                m.cpu.clone(),
            );
            report.curve_point("chat-server", rate, m.acked_per_sec);
            report.latency_distributions.push(Distribution {
                name: format!("chat-server, {:.0}% of max", fraction * 100.0),
                percentiles: m.distribution.clone(),
            });
            server1.latency_at.push((fraction, rate, m.ledger.latency));
        }
        // Offered at and beyond the maximum, for the throughput-vs-offered curve: where the
        // server stops keeping up.
        for &fraction in &ctx.sizes.overload_fractions {
            let rate = (fraction * server1.acked_per_sec).max(1.0);
            let label = format!("1:1 at {:.0}% (server)", fraction * 100.0);
            let secs = ctx.sizes.latency_secs / 2.0;
            let m = measure(ctx, &mut pairs, &cpu, &label, Some(rate), secs).await;
            record(
                report,
                S2,
                &format!("chat-server at {:.0}%", fraction * 100.0),
                &m,
                rate,
            );
            report.curve_point("chat-server", rate, m.acked_per_sec);
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
    // As long as the load generator's contents: "bench <client_msg_id> t=<micros>".
    let content_len = 40;
    let storage_cpu = ctx.cpu.sample();
    let limit = storage::measure(
        &ctx.services.mongodb_uri,
        acked_total.max(1),
        ctx.sizes.pairs as u64,
        content_len,
        storage::SERVER_BATCH_MAX,
        ctx.sizes.storage_writers,
        Duration::from_secs_f64(ctx.sizes.storage_max_secs),
    )
    .await?;
    report.cpu(S1, "storage limit (insert_many)", storage_cpu.since());
    report.notes.push(format!(
        "Storage limit: {} documents in {:.1} s, insert_many of {} with {} concurrent writers.",
        limit.documents, limit.secs, limit.batch, limit.writers
    ));
    // The same documents as the server writes them: one writer, batches of the mean size
    // scenario 1 reached, one after another.
    let storage_cpu = ctx.cpu.sample();
    let sequential = storage::measure(
        &ctx.services.mongodb_uri,
        acked_total.max(1),
        ctx.sizes.pairs as u64,
        content_len,
        mean_batch,
        1,
        Duration::from_secs_f64(ctx.sizes.storage_max_secs),
    )
    .await?;
    report.cpu(
        S1,
        &format!("storage, 1 writer × {mean_batch}"),
        storage_cpu.since(),
    );

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
    let r = measure(
        ctx,
        &mut relay_pairs,
        &cpu,
        "1:1 max (relay)",
        None,
        ctx.sizes.throughput_secs,
    )
    .await;
    report.cpu(S1, "relay, window", r.cpu.clone());
    record(report, S1, "relay", &r, 0.0);
    report.latency_distributions.push(Distribution {
        name: "relay, max rate".into(),
        percentiles: r.distribution.clone(),
    });
    report.curve_point("relay (window)", r.acked_per_sec, r.acked_per_sec);
    let mut relay_latency_at = Vec::new();
    for &(fraction, rate, _) in &server1.latency_at {
        let label = format!("1:1 at {:.0}% (relay)", fraction * 100.0);
        let m = measure(
            ctx,
            &mut relay_pairs,
            &cpu,
            &label,
            Some(rate),
            ctx.sizes.latency_secs,
        )
        .await;
        record(
            report,
            S2,
            &format!("relay at the server's {:.0}%", fraction * 100.0),
            &m,
            rate,
        );
        report.curve_point("relay", rate, m.acked_per_sec);
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
        let m = measure(
            ctx,
            &mut pairs,
            &cpu,
            "1:1 max (2 processes)",
            None,
            ctx.sizes.throughput_secs,
        )
        .await;
        report.cpu(S5, "2 × chat-server, window", m.cpu.clone());
        let redis_after = redis_stats::snapshot(&ctx.services.redis_url).await?;
        report.redis.push(crate::report::RedisRecord {
            scenario: S5.into(),
            label: "chat-server, 2 processes".into(),
            work: redis_stats::diff(&redis_before, &redis_after, m.ledger.acked),
        });
        record(report, S5, "2 × chat-server", &m, 0.0);
        report.rows.push(
            Row::new(
                S5,
                "acked msgs/s, delivery across processes",
                m.acked_per_sec,
                "msg/s",
            )
            .limit("1 process, same run", server1.acked_per_sec),
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
    }
    Ok(())
}
