//! P sender/receiver pairs over one server (or two, or the relay): connecting them, a fresh
//! ledger per measurement, the warm-up, and one measurement (windowed or paced) with its
//! throughput, latency, CPU use and exactly-once check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::ledger::{Ledger, LedgerReport, Recipients};
use crate::peer::{Endpoint, Peer, Target};
use crate::report::{LatencyRecord, Report};
use crate::scenarios::{
    Ctx, Flow, close_all, connect_peers, reconnects, run_paced, run_windowed, settle, timed,
};
use crate::sys::{CpuUse, CpuWatch};

/// The pairs: peers 2i (sender) and 2i+1 (receiver), and their flows.
pub struct Pairs {
    peers: Vec<Arc<Peer>>,
    ledger: Arc<Ledger>,
    flows: Vec<Flow>,
    /// Short tag of these pairs and the number of ledgers so far: client_msg_id prefixes.
    tag: String,
    round: u32,
}

impl Pairs {
    pub async fn connect(ctx: &Ctx, endpoints: Vec<(String, Endpoint)>, tag: &str) -> Result<Self> {
        let peers = connect_peers(ctx, endpoints, tag).await?;
        // Replaced at once by the first measurement's own (fresh_ledger).
        let ledger = Ledger::new(&format!("{}{tag}", ctx.prefix));
        let mut pairs = Self {
            peers,
            ledger,
            flows: Vec::new(),
            tag: tag.to_owned(),
            round: 0,
        };
        pairs.fresh_ledger(ctx);
        Ok(pairs)
    }

    /// One message per pair before measuring: the first message of a conversation seeds its
    /// seq counter and read positions, work a steady stream does not repeat.
    pub async fn warm_up(&mut self, ctx: &Ctx, report: &mut Report, scenario: &str, system: &str) {
        self.fresh_ledger(ctx);
        self.set_window(1);
        let start = Instant::now();
        for flow in &self.flows {
            let _ = flow
                .peer
                .send_windowed(&flow.target, &flow.recipients)
                .await;
        }
        let settled = settle(&self.ledger, ctx.sizes.settle_secs, "warm-up").await;
        let secs = start.elapsed().as_secs_f64();
        report.check(
            scenario,
            &format!("{system}, warm-up"),
            self.ledger.report(),
            0,
        );
        report.notes.push(format!(
            "{scenario} / {system}: warm-up (the first message of each of the {} conversations) \
             took {secs:.1} s{}.",
            self.flows.len(),
            if settled { "" } else { ", and did not settle" }
        ));
    }

    /// A new ledger for the next measurement (the previous one has settled).
    fn fresh_ledger(&mut self, ctx: &Ctx) {
        self.round += 1;
        self.ledger = Ledger::new(&format!("{}{}r{}", ctx.prefix, self.tag, self.round));
        let receivers = self.ledger.add_receivers(self.peers.len());
        for (peer, rx) in self.peers.iter().zip(&receivers) {
            peer.use_ledger(self.ledger.clone(), *rx);
        }
        self.flows = self
            .peers
            .chunks(2)
            .zip(receivers.chunks(2))
            .filter_map(|(pair, rx)| match (pair, rx) {
                ([sender, receiver], [_, receiver_rx]) => Some(Flow {
                    peer: sender.clone(),
                    target: Target::User(receiver.user_id.clone()),
                    recipients: Recipients::from(vec![*receiver_rx]),
                }),
                _ => None,
            })
            .collect();
    }

    fn set_window(&self, window: usize) {
        for flow in &self.flows {
            flow.peer.set_window(window);
        }
    }

    pub async fn close(&self) {
        close_all(&self.peers).await;
    }
}

/// What one windowed or paced measurement gave.
pub struct Measured {
    pub ledger: LedgerReport,
    pub acked_per_sec: f64,
    pub delivered_per_sec: f64,
    pub settled: bool,
    pub reconnects: u64,
    pub distribution: Vec<(f64, f64)>,
    /// CPU use of the watched processes while sending.
    pub cpu: CpuUse,
}

/// Runs the pairs windowed (`rate` None) or paced for `secs`, then lets them settle.
pub async fn measure(
    ctx: &Ctx,
    pairs: &mut Pairs,
    cpu: &CpuWatch,
    label: &str,
    rate: Option<f64>,
    secs: f64,
) -> Measured {
    pairs.fresh_ledger(ctx);
    pairs.set_window(ctx.sizes.window);
    let reconnects_before = reconnects(&pairs.peers);
    let bar = timed(secs, label);
    let cpu_start = cpu.sample();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    match rate {
        None => run_windowed(&pairs.flows, until).await,
        Some(rate) => run_paced(&pairs.flows, rate, until).await,
    }
    let end = Instant::now().min(until);
    let cpu = cpu_start.since();
    bar.finish_and_clear();
    let settled = settle(&pairs.ledger, ctx.sizes.settle_secs, label).await;
    let rates = pairs.ledger.rates_between(start, end);
    let histogram = pairs.ledger.delivery_histogram();
    let distribution = [
        50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .iter()
    .map(|&p| (p, histogram.value_at_percentile(p) as f64 / 1000.0))
    .collect();
    Measured {
        ledger: pairs.ledger.report(),
        acked_per_sec: rates.acked_per_sec,
        delivered_per_sec: rates.delivered_per_sec,
        settled,
        reconnects: reconnects(&pairs.peers) - reconnects_before,
        distribution,
        cpu,
    }
}

pub fn record(report: &mut Report, scenario: &str, system: &str, m: &Measured, offered: f64) {
    report.check(scenario, system, m.ledger.clone(), m.reconnects);
    report.latencies.push(LatencyRecord {
        scenario: scenario.to_owned(),
        system: system.to_owned(),
        offered,
        achieved: m.acked_per_sec,
        latency: m.ledger.latency,
    });
    if !m.settled {
        report.notes.push(format!(
            "{scenario} / {system}: not everything was acked and delivered within the settle time \
             ({} unanswered sends at the end)",
            m.ledger.unanswered
        ));
    }
}

pub fn server_endpoints(ctx: &Ctx, ports: (u16, u16)) -> Vec<(String, Endpoint)> {
    ctx.users
        .iter()
        .take(2 * ctx.sizes.pairs)
        .enumerate()
        .map(|(i, user)| {
            // Senders (even) on the first process, receivers on the second; alternate pairs
            // swap, so both processes send and receive.
            let pair = i / 2;
            let on_first = (i % 2 == 0) == (pair % 2 == 0);
            let port = if on_first { ports.0 } else { ports.1 };
            let endpoint = Endpoint::Server {
                port,
                cookie: user.cookie.clone(),
            };
            (user.id.clone(), endpoint)
        })
        .collect()
}
