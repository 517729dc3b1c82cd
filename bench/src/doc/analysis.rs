//! "What bounds the results": for each target, the figure, its limit and what the run measured
//! about the processes involved (CPU, Redis calls, batch sizes), tied to how the server works
//! (src/messaging/writer.rs, src/hub/relay.rs, src/ws/connection.rs). Only figures the run
//! produced are used; a paragraph whose figures are missing is left out.

use std::fmt::Write as _;

use crate::redis_stats::RedisWork;
use crate::report::{LatencyRecord, Report, Row, num};
use crate::sys::{CpuUse, MACHINE};

fn row<'a>(report: &'a Report, scenario: &str, figure: &str) -> Option<&'a Row> {
    report
        .rows
        .iter()
        .find(|r| r.scenario.starts_with(scenario) && r.figure.starts_with(figure))
}

fn cpu<'a>(report: &'a Report, scenario: &str, label: &str) -> Option<&'a CpuUse> {
    report
        .cpu
        .iter()
        .find(|c| c.scenario == scenario && c.label.starts_with(label))
        .map(|c| &c.cores)
}

fn redis<'a>(report: &'a Report, scenario: &str) -> Option<&'a RedisWork> {
    report
        .redis
        .iter()
        .find(|r| r.scenario == scenario)
        .map(|r| &r.work)
}

fn latency<'a>(report: &'a Report, scenario: &str, system: &str) -> Option<&'a LatencyRecord> {
    report
        .latencies
        .iter()
        .find(|l| l.scenario == scenario && l.system.starts_with(system))
}

fn cores(c: &CpuUse, name: &str) -> String {
    c.get(name).map_or("?".into(), |v| format!("{v:.2}"))
}

/// Cores the whole machine was busy beyond this run's processes (other work on the machine).
fn other_work(c: &CpuUse) -> f64 {
    let ours: f64 = c
        .iter()
        .filter(|(n, _)| n.as_str() != MACHINE)
        .map(|(_, v)| v)
        .sum();
    (c.get(MACHINE).copied().unwrap_or(0.0) - ours).max(0.0)
}

fn verdict(r: &Row) -> &'static str {
    match r.pass {
        Some(true) => "target met",
        Some(false) => "target missed",
        None => "not judged at this size",
    }
}

/// Mean group-commit batch implied by script calls per 1:1 message (2 + 2/B).
fn batch(work: &RedisWork) -> Option<f64> {
    let x = work.script_invocations_per_message;
    (x > 2.0).then(|| 2.0 / (x - 2.0))
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let machine_cores = report.machine.cores;
    throughput(report, &mut out, machine_cores);
    latency_at_half(report, &mut out);
    fanout(report, &mut out);
    idle(report, &mut out);
    two_processes(report, &mut out);
    uploads(report, &mut out);
    checks(report, &mut out);
    out
}

fn throughput(report: &Report, out: &mut String, machine_cores: usize) {
    let (Some(acked), Some(c)) = (
        row(report, "1:1 throughput", "acked (stored)"),
        cpu(report, "1:1 throughput", "chat-server, window"),
    ) else {
        return;
    };
    let _ = write!(
        out,
        "**Persisted 1:1 throughput** ({}): {} msg/s stored, {} of the storage limit ({} docs/s). \
         While it ran: the MongoDB stand-in {} cores, the server {}, Redis {}, the load generator \
         {}; the whole machine {} of {machine_cores}. ",
        verdict(acked),
        num(acked.value),
        acked.ratio.map_or("?".into(), |r| format!("{r:.2}")),
        num(acked.limit.unwrap_or(0.0)),
        cores(c, "mongo"),
        cores(c, "chat-server"),
        cores(c, "redis"),
        cores(c, "loadgen"),
        cores(c, MACHINE),
    );
    let work = redis(report, "1:1 throughput");
    let b = work.and_then(batch);
    let _ = write!(
        out,
        "The server writes through one group-commit writer per process. Each connection has \
         up to `ws.pipeline_depth` sends in flight (the load generator keeps {} unacked per \
         sender), checked and queued in order; sends arriving while a batch is stored wait and \
         form the next one, and up to `messages.write_concurrency` batches are stored at once \
         when at least `messages.write_overlap_min` sends wait. Seqs are drawn and batches \
         published in order. With {} senders the mean batch was {} messages. ",
        report.params.get("window").map_or("W", String::as_str),
        report.params.get("pairs").map_or("the", String::as_str),
        b.map_or("?".into(), num),
    );
    if let Some(seq) = row(report, "1:1 throughput", "acked msgs/s vs one sequential") {
        let _ = write!(
            out,
            "The same MongoDB written by one writer in batches of that size, one after another, \
             took {} docs/s; the server reached {} of that. The storage limit itself writes full \
             batches of {} from several writers at once, with nothing else running on the \
             machine.",
            num(seq.limit.unwrap_or(0.0)),
            seq.ratio.map_or("?".into(), |r| format!("{r:.2}")),
            super::full_batch(),
        );
        if let (Some(b), Some(limit)) = (b, seq.limit.filter(|l| *l > 0.0))
            && acked.value > 0.0
        {
            let _ = write!(
                out,
                " Per batch: {} ms for the `insert_many` alone, {} ms for the server's whole \
                 cycle.",
                num(b / limit * 1000.0),
                num(b / acked.value * 1000.0)
            );
        }
    }
    if let Some(w) = work {
        let _ = write!(
            out,
            " Redis: {:.2} script calls per message, the design's 2 + 2/B at that batch size \
             ({} with full batches of {}), plus {:.2} connection checks by the pool (the hot \
             paths share one multiplexed connection, so the pool's `PING` per checkout is off the \
             send path): {:.2} round trips per message in all.",
            w.script_invocations_per_message,
            super::full_batch_script_calls(),
            super::full_batch(),
            w.pool_checks_per_message,
            w.round_trips_per_message
        );
    }
    out.push_str("\n\n");
}

fn latency_at_half(report: &Report, out: &mut String) {
    let Some(r) = row(report, "1:1 latency", "p99 at 50%") else {
        return;
    };
    let server = latency(report, "1:1 latency", "chat-server at 50%");
    let c = cpu(report, "1:1 latency", "chat-server at 50%");
    let _ = write!(
        out,
        "**1:1 latency at 50 % of the maximum** ({}): at {} msg/s offered, p99 {} ms (p50 {} \
         ms); the relay at the same rate: p99 {} ms, so the transport is a small part. A message \
         waits for the batch being stored and then for its own: each is an `insert_many` into \
         the stand-in (single-threaded, with a fixed cost per call that small batches pay per \
         message) between two Redis scripts, with the server, Redis, the stand-in and \
         the load generator competing for the two cores.",
        verdict(r),
        server.map_or("?".into(), |l| num(l.offered)),
        num(r.value),
        server.map_or("?".into(), |l| num(l.latency.p50_ms)),
        num(r.limit.unwrap_or(0.0)),
    );
    if let Some(c) = c {
        let _ = write!(
            out,
            " At that rate the stand-in used {} cores and the whole machine {}.",
            cores(c, "mongo"),
            cores(c, MACHINE)
        );
    }
    out.push_str("\n\n");
}

fn fanout(report: &Report, out: &mut String) {
    let Some(r) = row(report, "fan-out M=1000", "deliveries/s") else {
        return;
    };
    let c = cpu(report, "fan-out M=1000", "chat-server, best step");
    let relay_c = cpu(report, "fan-out M=1000", "relay, best step");
    let work = redis(report, "fan-out M=1000");
    let _ = write!(
        out,
        "**Fan-out to 1000 members** ({}): {} deliveries/s, {} of the relay's {}. ",
        verdict(r),
        num(r.value),
        r.ratio.map_or("?".into(), |x| format!("{x:.2}")),
        num(r.limit.unwrap_or(0.0)),
    );
    if let Some(w) = work {
        let _ = write!(
            out,
            "Each group message reads every member's presence in one pipeline (one ZRANGE \
             BYSCORE per member) to find the processes to publish to, then runs the delivery \
             script: {} Redis calls per message, all on Redis's single thread. ",
            num(w.calls_per_message)
        );
    }
    if let Some(c) = c {
        let _ = write!(
            out,
            "In the best step the server used {} cores, Redis {}, the load generator (which \
             receives and checks every delivery) {}, the whole machine {}. ",
            cores(c, "chat-server"),
            cores(c, "redis"),
            cores(c, "loadgen"),
            cores(c, MACHINE)
        );
    }
    if let Some(c) = relay_c {
        let _ = write!(
            out,
            "The relay's best step: relay {} cores, load generator {}, machine {}: its ceiling \
             is as much the load generator's as its own, on the same two cores.",
            cores(c, "relay"),
            cores(c, "loadgen"),
            cores(c, MACHINE)
        );
    }
    out.push_str("\n\n");
}

fn idle(report: &Report, out: &mut String) {
    let Some(r) = row(report, "idle connections", "server RSS per idle") else {
        return;
    };
    let relay = r.limit.unwrap_or(0.0);
    let _ = write!(
        out,
        "**Memory per idle connection** ({}): {} KiB of server RSS per connection ({}). The bare \
         relay, the same actix-web and actix-ws stack with nothing else, holds a connection for \
         {} KiB: the transport's per-connection buffers and task alone are above the 10 KB \
         target. The server adds {} KiB (its connection task with heartbeat and bounded \
         outgoing queue, the registry and presence entries, the per-connection rate limiter, \
         the session and tracing span).",
        verdict(r),
        num(r.value),
        r.figure,
        num(relay),
        num((r.value - relay).max(0.0)),
    );
    let opens: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.scenario == "idle connections" && r.unit == "conn/s")
        .collect();
    if let (Some(first), Some(last)) = (opens.first(), opens.last())
        && opens.len() > 1
    {
        let _ = write!(
            out,
            " Opening slowed from {} to {} connections/s as C grew: a user's first socket on a \
             process upserts their read position in the lobby, which the MongoDB stand-in \
             answers by scanning its collection (it does not use the indexes the server creates; \
             a real MongoDB does), so the cost per connection grows with the users stored. The \
             same scans make the first message of a new conversation slow (the warm-up notes \
             below).",
            num(first.value),
            num(last.value)
        );
    }
    out.push_str("\n\n");
}

fn two_processes(report: &Report, out: &mut String) {
    let Some(r) = row(report, "two processes", "acked msgs/s, delivery") else {
        return;
    };
    let _ = write!(
        out,
        "**Two processes**: {} msg/s with every delivery crossing Redis pub/sub, {} of one \
         process in the same run. Each process has its own writer, but both write into the one \
         stand-in, which stays the bottleneck.\n\n",
        num(r.value),
        r.ratio.map_or("?".into(), |x| format!("{x:.2}")),
    );
}

fn uploads(report: &Report, out: &mut String) {
    if let Some(r) = row(report, "uploads", "upload throughput") {
        let c = cpu(report, "uploads", "POST /files, round 1");
        let raw_c = cpu(report, "uploads", "raw GridFS writes, round 1");
        let _ = write!(
            out,
            "**Upload throughput**: {} MiB/s through `POST /files`, {} of the {} MiB/s the same \
             bytes take written straight into the bucket. An upload does what the raw write \
             does (the crate's upload stream cuts `files.chunk_bytes` chunks and inserts them) \
             and, on top, parses the multipart stream, hashes the bytes, checks the anti-spam \
             rule and the quota in Redis and MySQL, and records the file in MySQL. ",
            num(r.value),
            r.ratio.map_or("?".into(), |x| format!("{x:.2}")),
            num(r.limit.unwrap_or(0.0)),
        );
        if let (Some(c), Some(raw_c)) = (c, raw_c) {
            let _ = write!(
                out,
                "In round 1 the uploads kept the MongoDB stand-in {} cores busy, the server {}, \
                 the load generator {}, the whole machine {} (work of other processes: {:.2}); \
                 the raw writes: the stand-in {}, the load generator {}, the machine {} (other \
                 processes: {:.2}).",
                cores(c, "mongo"),
                cores(c, "chat-server"),
                cores(c, "loadgen"),
                cores(c, MACHINE),
                other_work(c),
                cores(raw_c, "mongo"),
                cores(raw_c, "loadgen"),
                cores(raw_c, MACHINE),
                other_work(raw_c),
            );
        }
        out.push_str("\n\n");
    }
    if let Some(r) = row(report, "uploads", "server RSS peak") {
        let ratio = r.ratio.unwrap_or(0.0);
        let in_flight = r.limit.unwrap_or(0.0);
        let reading = if in_flight < 100.0 {
            "too few bytes in flight at this size to tell streaming from buffering"
        } else if ratio < 0.25 {
            "the uploads are streamed: each holds its current multipart piece and the GridFS \
             chunk being filled (`files.chunk_bytes`), not the file"
        } else {
            "a large share of the bytes in flight, so something holds uploads in memory"
        };
        let _ = write!(
            out,
            "**Memory while uploading** ({}): the server's RSS rose at most {} MB above idle \
             while {} MB were uploaded at once ({:.3} of them); {reading}.\n\n",
            verdict(r),
            num(r.value),
            num(in_flight),
            ratio,
        );
    }
}

fn checks(report: &Report, out: &mut String) {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| format!("{} / {}", c.scenario, c.label))
        .collect();
    let deliveries: u64 = report.checks.iter().map(|c| c.ledger.delivered).sum();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "**Exactly once, in order** (target met): {} measurements, {} deliveries checked; \
             nothing lost, duplicated or reordered.",
            report.checks.len(),
            deliveries
        );
    } else {
        let _ = writeln!(
            out,
            "**Exactly once, in order** (target missed): violations in {}.",
            failed.join(", ")
        );
    }
}
