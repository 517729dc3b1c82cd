//! Scenario 3: one group of M online members; a few of them send at a fixed total rate, doubled
//! step by step while the system keeps up (every message reaches every other member within the
//! step). Deliveries per second and the latency to the last member, on the server and, as the
//! transport's ceiling, on the bare relay under the same ladder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::client::{Http, User};
use crate::ledger::{Ledger, Recipients};
use crate::peer::{Endpoint, Peer, Target};
use crate::redis_stats;
use crate::relay::RelayProcess;
use crate::report::{LatencyRecord, RedisRecord, Report, Row};
use crate::scenarios::{
    Ctx, Flow, close_all, connect_peers, progress, reconnects, run_paced, settle, timed,
};
use crate::sys::{CpuUse, CpuWatch};

/// A step keeps up when it delivers at least this share of what was offered.
const KEEPS_UP: f64 = 0.9;
/// Joins at a time (each one writes the membership and announces it in the group).
const JOIN_CONCURRENCY: usize = 16;
const JOIN_ATTEMPTS: u32 = 20;

/// Joins the group, retrying while the server answers 503 (busy backends).
async fn join(http: &Http, user: &User, group_id: &str, retries: &AtomicU64) -> Result<()> {
    let mut attempt = 1;
    loop {
        match http.join_group(user, group_id).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < JOIN_ATTEMPTS && err.to_string().contains("503") => {
                retries.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

struct Group {
    peers: Vec<Arc<Peer>>,
    group_id: String,
    senders: usize,
}

/// The best a system did on the ladder.
#[derive(Default)]
struct Ladder {
    max_delivered_per_sec: f64,
    /// Offered group messages per second and last-member p99 at the highest step that kept up.
    kept_up_rate: f64,
    kept_up_p99_ms: f64,
    saturated: bool,
    /// CPU use while sending, in the step with the most deliveries.
    cpu: CpuUse,
}

async fn ladder(
    ctx: &Ctx,
    report: &mut Report,
    cpu: &CpuWatch,
    group: &Group,
    system: &str,
    first_rate: f64,
    scenario: &str,
) -> Ladder {
    let members = group.peers.len();
    let mut best = Ladder::default();
    let mut rate = first_rate;
    for step in 0..ctx.sizes.fanout_steps {
        let ledger = Ledger::new(&format!("{}f{members}{}{step}", ctx.prefix, &system[..1]));
        let receivers = ledger.add_receivers(members);
        for (peer, rx) in group.peers.iter().zip(&receivers) {
            peer.use_ledger(ledger.clone(), *rx);
        }
        let flows: Vec<Flow> = (0..group.senders)
            .map(|s| {
                let others: Vec<_> = receivers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != s)
                    .map(|(_, rx)| *rx)
                    .collect();
                Flow {
                    peer: group.peers[s].clone(),
                    target: Target::Group(group.group_id.clone()),
                    recipients: Recipients::from(others),
                }
            })
            .collect();
        let before = reconnects(&group.peers);
        let label = format!("M={members} {system} {rate:.0}/s");
        let bar = timed(ctx.sizes.fanout_step_secs, &label);
        let cpu_start = cpu.sample();
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(ctx.sizes.fanout_step_secs);
        run_paced(&flows, rate, until).await;
        let cores = cpu_start.since();
        bar.finish_and_clear();
        let settled = settle(&ledger, ctx.sizes.settle_secs, &label).await;
        let rates = ledger.rates_between(start, until);
        let r = ledger.report();
        let offered = rate * (members as f64 - 1.0);
        report.check(
            scenario,
            &format!("{system}, {rate:.0} msg/s"),
            r.clone(),
            reconnects(&group.peers) - before,
        );
        report.latencies.push(LatencyRecord {
            scenario: scenario.to_owned(),
            system: format!("{system} (to the last member)"),
            offered: rate,
            achieved: rates.acked_per_sec,
            latency: r.last_delivery_latency,
        });
        report.curve_point(
            &format!("{system}, M={members} (deliveries)"),
            offered,
            rates.delivered_per_sec,
        );
        if rates.delivered_per_sec > best.max_delivered_per_sec {
            best.max_delivered_per_sec = rates.delivered_per_sec;
            best.cpu = cores;
        }
        let kept_up = settled && rates.delivered_per_sec >= KEEPS_UP * offered;
        tracing::info!(
            members,
            system,
            rate,
            offered,
            delivered_per_sec = rates.delivered_per_sec,
            last_p99_ms = r.last_delivery_latency.p99_ms,
            kept_up,
            "fan-out step"
        );
        if !kept_up {
            best.saturated = true;
            break;
        }
        best.kept_up_rate = rate;
        best.kept_up_p99_ms = r.last_delivery_latency.p99_ms;
        rate *= 2.0;
    }
    best
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    for (k, &members) in ctx.sizes.fanout_members.iter().enumerate() {
        let scenario = format!("fan-out M={members}");
        let first_rate = ctx.sizes.fanout_first_rate.get(k).copied().unwrap_or(10.0);
        let senders = ctx.sizes.fanout_senders.min(members);
        let users = &ctx.users[..members];

        // The server: a group of every member, joined before anybody connects (each join is
        // announced to the members online).
        let server = ctx.spawn_server().await?;
        let http = Http::new(server.port())?;
        let group_id = http
            .create_group(&users[0], &format!("bench {members}"))
            .await?;
        let bar = progress(members as u64 - 1, &format!("M={members}: joining"));
        let retries = AtomicU64::new(0);
        stream::iter(&users[1..])
            .map(|user| {
                let (http, group_id, bar, retries) = (&http, &group_id, &bar, &retries);
                async move {
                    join(http, user, group_id, retries).await?;
                    bar.inc(1);
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(JOIN_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let retries = retries.into_inner();
        if retries > 0 {
            let cause = server
                .recent_log()
                .into_iter()
                .find(|l| l.contains("\"level\":\"ERROR\""))
                .unwrap_or_default();
            report.notes.push(format!(
                "{scenario}: {retries} joins answered 503 and were retried \
                 ({JOIN_CONCURRENCY} joins at a time); the server logged: `{cause}`"
            ));
        }
        bar.finish_and_clear();
        let endpoints = users
            .iter()
            .map(|u| {
                let endpoint = Endpoint::Server {
                    port: server.port(),
                    cookie: u.cookie.clone(),
                };
                (u.id.clone(), endpoint)
            })
            .collect();
        let peers = connect_peers(ctx, endpoints, &format!("f{members}")).await?;
        let group = Group {
            peers,
            group_id,
            senders,
        };
        let cpu = ctx.cpu_with(&[("chat-server", server.pid())]);
        let redis_before = redis_stats::snapshot(&ctx.services.redis_url).await?;
        let served = ladder(
            ctx,
            report,
            &cpu,
            &group,
            "chat-server",
            first_rate,
            &scenario,
        )
        .await;
        report.cpu(&scenario, "chat-server, best step", served.cpu.clone());
        let redis_after = redis_stats::snapshot(&ctx.services.redis_url).await?;
        let sent: u64 = report
            .checks
            .iter()
            .filter(|c| c.scenario == scenario && c.label.starts_with("chat-server"))
            .map(|c| c.ledger.acked)
            .sum();
        report.redis.push(RedisRecord {
            scenario: scenario.clone(),
            label: "chat-server, per group message".into(),
            work: redis_stats::diff(&redis_before, &redis_after, sent),
        });
        close_all(&group.peers).await;
        server.terminate().await?;

        // The relay under the same ladder.
        let relay = RelayProcess::spawn(ctx.relay_workers).await?;
        let relay_group = "1";
        let endpoints = (1..=members)
            .map(|i| {
                let id = i.to_string();
                let url = format!("{}&group={relay_group}", relay.url(&id));
                (id, Endpoint::Relay { url })
            })
            .collect();
        let peers = connect_peers(ctx, endpoints, &format!("g{members}")).await?;
        let group = Group {
            peers,
            group_id: relay_group.to_owned(),
            senders,
        };
        let cpu = ctx.cpu_with(&[("relay", relay.pid().unwrap_or(0))]);
        let relayed = ladder(ctx, report, &cpu, &group, "relay", first_rate, &scenario).await;
        report.cpu(&scenario, "relay, best step", relayed.cpu.clone());
        close_all(&group.peers).await;
        relay.stop().await?;

        if !relayed.saturated {
            report.notes.push(format!(
                "{scenario}: the relay kept up with the whole ladder; its figure is a lower bound"
            ));
        }
        let row = Row::new(
            &scenario,
            "deliveries/s (best step)",
            served.max_delivered_per_sec,
            "deliveries/s",
        )
        .limit("relay limit", relayed.max_delivered_per_sec);
        let row = if members >= 1000 || !ctx.sizes.full {
            let met = served.max_delivered_per_sec >= 0.5 * relayed.max_delivered_per_sec;
            row.target("≥ 0.5 × relay", met, ctx.sizes.full && members >= 1000)
        } else {
            row
        };
        report.rows.push(row);
        report.rows.push(
            Row::new(
                &scenario,
                &format!(
                    "p99 to the last member at {:.0} msg/s (highest rate kept up)",
                    served.kept_up_rate
                ),
                served.kept_up_p99_ms,
                "ms",
            )
            .limit(
                &format!("relay at {:.0} msg/s", relayed.kept_up_rate),
                relayed.kept_up_p99_ms,
            ),
        );
    }
    Ok(())
}
