//! The soak: one server process, many connections (pairs for 1:1, groups of twenty), steady
//! traffic for a while. Nothing may fail but anti-spam refusals (counted apart), nothing may be
//! lost or duplicated (the load generator's ledger: no faults here, so every overlap or reorder
//! it sees is a real one), and the server's resident memory, sampled after the warm-up, in the
//! middle and at the end, must stay flat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_loadgen::client::{self, Http, Incoming, WsConn};
use chat_loadgen::ledger::{Ledger, ReceiverId, Recipients};
use chat_loadgen::server::ServerProcess;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::report::{RssSample, SoakFigures};
use super::services::ServiceControl;

const GROUP_SIZE: usize = 20;
/// One client in this many has a 1:1 partner.
const PAIRED_EVERY: usize = 10;
/// Warm-up messages per second.
const WARM_UP_RATE: f64 = 20.0;
/// Handshakes and registrations in flight at once.
const CONCURRENCY: usize = 64;
/// After the last send, how long deliveries may take to arrive.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// How long the warm-up messages may take to be delivered.
const WARM_UP_WITHIN: Duration = Duration::from_secs(600);
/// Memory is "flat" when it grows by at most this share of the first sample...
const RSS_GROWTH_SHARE: f64 = 0.25;
/// ...or this much, whichever is larger (allocator arenas settle in steps).
const RSS_GROWTH_FLOOR_KIB: u64 = 32 * 1024;

#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub duration: Duration,
    /// Messages per second over all connections.
    pub rate: f64,
}

pub async fn run(
    plan: &Plan,
    server_bin: &std::path::Path,
    control: &ServiceControl,
) -> anyhow::Result<SoakFigures> {
    let services = control.services()?;
    let server = ServerProcess::spawn(server_bin, &services, &[])
        .await
        .context("starting the soak server")?;
    let result = drive(plan, &server).await;
    if let Err(err) = server.terminate().await {
        tracing::warn!(error = %err, "stopping the soak server failed");
    }
    result
}

async fn drive(plan: &Plan, server: &ServerProcess) -> anyhow::Result<SoakFigures> {
    let n = plan.connections.max(2) & !1;
    let http = Http::new(server.port())?;
    let prefix = client::run_prefix("sk");
    tracing::info!(connections = n, "soak: creating users");
    let users = client::create_users(&http, &prefix, n, CONCURRENCY, || {}).await?;
    let mut groups = Vec::new();
    for (g, members) in users.chunks(GROUP_SIZE).enumerate() {
        let id = http.create_group(&members[0], &format!("soak {g}")).await?;
        super::faults::join_members(&http, &members[1..], &id).await?;
        groups.push(id);
    }
    tracing::info!(connections = n, "soak: connecting");
    let conns = client::connect_all(&users, |_| server.port(), CONCURRENCY, || {}).await?;

    let ledger = Ledger::new(&prefix);
    let receivers: Vec<ReceiverId> = ledger.add_receivers(n);
    // The warm-up's own ledger, so the figures and latencies are those of the steady run.
    let warm = Ledger::new(&format!("{prefix}w"));
    warm.add_receivers(n);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(None);
    let per_client = plan.rate / n as f64;
    let mut tasks = JoinSet::new();
    // One client in ten has a 1:1 partner: every 1:1 conversation costs the server a first
    // message that sets up read positions, and the groups already reach every connection.
    let paired = (n / PAIRED_EVERY).max(2) & !1;
    let mut warm_slot = 0u32;
    for (idx, conn) in conns.into_iter().enumerate() {
        let g = idx / GROUP_SIZE;
        let members: Vec<ReceiverId> = (g * GROUP_SIZE..((g + 1) * GROUP_SIZE).min(n))
            .filter(|m| *m != idx)
            .map(|m| receivers[m])
            .collect();
        let partner = (idx < paired).then(|| {
            let p = idx ^ 1;
            (users[p].id.clone(), Recipients::from(vec![receivers[p]]))
        });
        let warm_direct = idx < paired && idx % 2 == 0;
        let warm_group = idx % GROUP_SIZE == 0;
        // The warm-up messages go out at a pace the writer can take: a burst of first
        // messages would queue for minutes behind their read-position set-up.
        let warm_at = Duration::from_secs_f64(f64::from(warm_slot) / WARM_UP_RATE);
        warm_slot += u32::from(warm_direct) + u32::from(warm_group);
        let client = SoakClient {
            me: receivers[idx],
            conn,
            ledger: ledger.clone(),
            warm: warm.clone(),
            partner,
            group_id: groups[g].clone(),
            group: Arc::from(members),
            interval: Duration::from_secs_f64(1.0 / per_client.max(0.001)),
            // Spread the first sends over one interval.
            offset: Duration::from_secs_f64((idx as f64 / n as f64) / per_client.max(0.001)),
            duration: plan.duration,
            warm_at,
            warm_direct,
            warm_group,
        };
        tasks.spawn(client.run(stop_rx.clone(), go_rx.clone()));
    }

    // Warm-up: one message in every conversation (the first one of a conversation sets up its
    // read positions), all delivered, before the clock starts.
    tracing::info!(connections = n, "soak: warming up");
    let warm_sends = u64::from(warm_slot);
    let deadline = Instant::now() + WARM_UP_WITHIN;
    while warm.report().sent < warm_sends && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !warm
        .settle(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        tracing::warn!("soak: the warm-up did not settle in time");
    }
    let started = Instant::now();
    let _ = go_tx.send(Some(started));
    tracing::info!(connections = n, "soak: running");
    let mut rss = Vec::new();
    // The start sample comes a little into the steady traffic (at most 30 s).
    let settle_in = (plan.duration / 10).min(Duration::from_secs(30));
    for (label, at) in [
        ("start (after warm-up)", settle_in),
        ("middle", plan.duration / 2),
        ("end", plan.duration),
    ] {
        tokio::time::sleep_until((started + at).into()).await;
        rss.push(RssSample {
            label: label.to_owned(),
            at_secs: at.as_secs(),
            rss_kib: server.rss_bytes().unwrap_or(0) / 1024,
            connections: live_connections(&http, server.metrics_token()).await,
        });
        tracing::info!(
            label,
            rss_kib = rss.last().map_or(0, |s| s.rss_kib),
            "soak: RSS"
        );
    }
    let settled = ledger.settle(SETTLE_WITHIN).await;
    let _ = stop_tx.send(true);
    let mut dropped = 0;
    while let Some(done) = tasks.join_next().await {
        dropped += done.unwrap_or(1);
    }

    let report = ledger.report();
    let mut f = SoakFigures {
        connections: n,
        duration_secs: plan.duration.as_secs(),
        rate_per_sec: plan.rate,
        sent: report.sent,
        acked: report.acked,
        refused: report.refused,
        errors: dropped + report.failed + report.other_code + report.unanswered,
        expected_deliveries: report.expected_deliveries,
        delivered: report.delivered,
        lost: report.lost,
        duplicates: report.duplicated + report.seq_mismatch,
        dropped,
        ack_p50_ms: report.ack_latency.p50_ms.round() as u64,
        ack_p99_ms: report.ack_latency.p99_ms.round() as u64,
        ack_max_ms: report.ack_latency.max_ms.round() as u64,
        rss,
        violations: Vec::new(),
    };
    if !settled {
        f.violations.push(format!(
            "deliveries still outstanding {SETTLE_WITHIN:?} after the last send"
        ));
    }
    if f.errors > 0 {
        f.violations.push(format!(
            "{} errors: {} answered 50000, {} other codes, {} unanswered, {} dropped sockets",
            f.errors, report.failed, report.other_code, report.unanswered, f.dropped
        ));
    }
    if report.lost > 0 {
        f.violations
            .push(format!("{} deliveries lost", report.lost));
    }
    if f.duplicates > 0 || report.reordered > 0 || report.misrouted > 0 || report.phantom > 0 {
        f.violations.push(format!(
            "{} duplicated, {} reordered, {} misrouted, {} delivered after a refusal, {} seq mismatches",
            report.duplicated, report.reordered, report.misrouted, report.phantom, report.seq_mismatch
        ));
    }
    if let (Some(first), Some(last)) = (f.rss.first(), f.rss.last()) {
        let allowed = ((first.rss_kib as f64 * RSS_GROWTH_SHARE) as u64).max(RSS_GROWTH_FLOOR_KIB);
        if last.rss_kib > first.rss_kib + allowed {
            f.violations.push(format!(
                "server memory grew from {} KiB to {} KiB after the warm-up (allowed: +{allowed} KiB)",
                first.rss_kib, last.rss_kib
            ));
        }
    }
    Ok(f)
}

/// `chat_ws_connections` from `/metrics` (0 when it cannot be read).
async fn live_connections(http: &Http, token: &str) -> usize {
    let Ok(text) = http.metrics(token).await else {
        return 0;
    };
    text.lines()
        .find(|l| l.starts_with("chat_ws_connections"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as usize)
}

struct SoakClient {
    me: ReceiverId,
    conn: WsConn,
    ledger: Arc<Ledger>,
    warm: Arc<Ledger>,
    /// The 1:1 partner's user id and receiver, for the clients that have one.
    partner: Option<(String, Recipients)>,
    group_id: String,
    group: Recipients,
    interval: Duration,
    offset: Duration,
    duration: Duration,
    /// When (from its start) it sends its warm-up messages, if any.
    warm_at: Duration,
    /// Sends the warm-up message of its 1:1 conversation / of its group.
    warm_direct: bool,
    warm_group: bool,
}

impl SoakClient {
    /// Sends the warm-up messages at once, then, from the start signal, on schedule for the
    /// run's duration (replies are not awaited: the server answers one connection's frames in
    /// order and the ledger matches them by client_msg_id); reads until told to stop. Returns 1
    /// when its socket dropped (an error in a soak), else 0.
    async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut go: watch::Receiver<Option<Instant>>,
    ) -> u64 {
        let warm = self.warm.clone();
        if self.warm_direct || self.warm_group {
            tokio::time::sleep(self.warm_at).await;
        }
        if (self.warm_direct && !self.send(&warm, true).await)
            || (self.warm_group && !self.send(&warm, false).await)
        {
            return 1;
        }
        // (next send, end of sending) once started.
        let mut schedule: Option<(Instant, Instant)> = None;
        let mut turn = 0u64;
        loop {
            let wake = match schedule {
                Some((next, until)) if next < until => next,
                _ => Instant::now() + Duration::from_secs(3600),
            };
            tokio::select! {
                item = self.conn.incoming.recv() => match item {
                    Some(Incoming::Closed { code, reason }) => {
                        tracing::warn!(?code, reason, "soak: a socket closed");
                        return 1;
                    }
                    Some(item) => {
                        self.warm.incoming(self.me, &item);
                        self.ledger.incoming(self.me, &item);
                    }
                    None => return 1,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let direct = self.partner.is_some() && turn.is_multiple_of(2);
                    if !self.send(&self.ledger, direct).await {
                        return 1;
                    }
                    turn += 1;
                    if let Some((next, _)) = &mut schedule {
                        *next += self.interval;
                    }
                }
                changed = go.changed(), if schedule.is_none() => {
                    if changed.is_err() {
                        return 0;
                    }
                    if let Some(start) = *go.borrow_and_update() {
                        schedule = Some((start + self.offset, start + self.duration));
                    }
                }
                _ = stop.changed() => {
                    self.conn.sender.close().await;
                    return 0;
                }
            }
        }
    }

    /// One message, 1:1 (when it has a partner) or to the group, recorded in `ledger`; false
    /// when the socket is gone.
    async fn send(&self, ledger: &Ledger, direct: bool) -> bool {
        let sent = match (&self.partner, direct) {
            (Some((partner_id, to)), true) => {
                let cmid = ledger.send(to);
                self.conn
                    .sender
                    .send_direct(partner_id, &cmid, &format!("{cmid} soak"))
                    .await
            }
            _ => {
                let cmid = ledger.send(&self.group);
                self.conn
                    .sender
                    .send_group(&self.group_id, &cmid, &format!("{cmid} soak"))
                    .await
            }
        };
        sent.is_ok()
    }
}
