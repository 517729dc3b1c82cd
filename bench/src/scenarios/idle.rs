//! Scenario 4: C idle authenticated connections, one per user, opened step by step on a fresh
//! server process: the server's resident memory per connection (RSS delta / C), the time to open
//! them, and whether they all stay open through a heartbeat. The bare relay holding the same
//! number of connections shows what the transport alone costs.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::client::{self, Http, Incoming, WsConn};
use crate::relay::RelayProcess;
use crate::report::{Report, Row};
use crate::scenarios::{Ctx, progress};
use crate::server;

const SCENARIO: &str = "idle connections";
/// Let the process settle after start and after each step before reading its RSS.
const QUIET: Duration = Duration::from_secs(2);

/// Connections still open (nothing but events in their queue, no close).
fn still_open(conns: &mut [WsConn]) -> usize {
    let mut open = 0;
    for conn in conns.iter_mut() {
        let mut closed = false;
        while let Ok(item) = conn.incoming.try_recv() {
            closed |= matches!(item, Incoming::Closed { .. });
        }
        if !closed && !conn.sender.is_closed() {
            open += 1;
        }
    }
    open
}

/// `chat_ws_connections` from the server's /metrics.
async fn live_connections(http: &Http, token: &str) -> Option<u64> {
    let text = http.metrics(token).await.ok()?;
    text.lines()
        .filter(|l| l.starts_with("chat_ws_connections"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .next()
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let judge = ctx.sizes.full;
    let server = ctx.spawn_server().await?;
    let http = Http::new(server.port())?;
    tokio::time::sleep(QUIET).await;
    let base = server.rss_bytes()?;
    let mut conns: Vec<WsConn> = Vec::new();
    let mut last = (0usize, 0.0f64);
    for &target in &ctx.sizes.idle_steps {
        let from = conns.len();
        let bar = progress(
            (target - from) as u64,
            &format!("idle: {target} connections"),
        );
        let start = Instant::now();
        let opened: Vec<WsConn> = stream::iter(&ctx.users[from..target])
            .map(|user| {
                let bar = bar.clone();
                let port = server.port();
                async move {
                    let conn = client::connect(port, &user.cookie).await?;
                    bar.inc(1);
                    Ok::<_, anyhow::Error>(conn)
                }
            })
            .buffer_unordered(ctx.sizes.concurrency)
            .try_collect()
            .await?;
        let open_secs = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        conns.extend(opened);
        tokio::time::sleep(QUIET.max(Duration::from_secs_f64(ctx.sizes.idle_hold_secs))).await;
        let rss = server.rss_bytes()?;
        let per_conn = rss.saturating_sub(base) as f64 / conns.len() as f64 / 1024.0;
        let live = live_connections(&http, server.metrics_token()).await;
        let open = still_open(&mut conns);
        tracing::info!(
            connections = conns.len(),
            open,
            ?live,
            rss_mib = rss / 1024 / 1024,
            per_conn_kib = per_conn,
            open_secs,
            "idle step"
        );
        if open != conns.len() {
            bail!(
                "{} of {} idle connections were closed",
                conns.len() - open,
                conns.len()
            );
        }
        report.rows.push(Row::new(
            SCENARIO,
            &format!("opening {from} → {target} connections ({open_secs:.1} s)"),
            (target - from) as f64 / open_secs.max(1e-9),
            "conn/s",
        ));
        report.notes.push(format!(
            "Idle step C={}: server RSS {:.1} MiB (started at {:.1} MiB), {} live connections by /metrics.",
            conns.len(),
            rss as f64 / 1048576.0,
            base as f64 / 1048576.0,
            live.map_or("?".to_owned(), |n| n.to_string())
        ));
        last = (conns.len(), per_conn);
    }
    for conn in &conns {
        conn.sender.close().await;
    }
    drop(conns);
    server.terminate().await?;
    // Let the sockets finish closing: the relay's connections need the descriptors.
    tokio::time::sleep(QUIET).await;

    // The relay with the same number of connections.
    let relay = RelayProcess::spawn(ctx.relay_workers).await?;
    let pid = relay.pid().unwrap_or(0);
    tokio::time::sleep(QUIET).await;
    let base = server::rss_bytes(pid)?;
    let relay_conns: Vec<WsConn> = stream::iter(1..=last.0)
        .map(|i| {
            let url = relay.url(&i.to_string());
            async move { client::connect_url(&url, None).await }
        })
        .buffer_unordered(ctx.sizes.concurrency)
        .try_collect()
        .await?;
    tokio::time::sleep(QUIET).await;
    let relay_per_conn = server::rss_bytes(pid)?.saturating_sub(base) as f64
        / relay_conns.len().max(1) as f64
        / 1024.0;
    drop(relay_conns);
    relay.stop().await?;

    report.rows.push(
        Row::new(
            SCENARIO,
            &format!("server RSS per idle connection at C={}", last.0),
            last.1,
            "KiB",
        )
        .limit("relay, same C", relay_per_conn)
        .target(
            "≤ 10 KB",
            last.1 * 1024.0 <= 10_000.0,
            judge && last.0 >= 10_000,
        ),
    );
    Ok(())
}
