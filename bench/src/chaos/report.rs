//! The figures of a fault run and of a soak: kept as JSON next to the logs, rendered as
//! Markdown tables, and written into the marked sections of docs/reliability.md (the prose
//! around them is maintained by hand; only the tables are generated).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chat_loadgen::table::Table;
use serde::Serialize;

/// What one fault did to the traffic, and what the checks afterwards found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultFigures {
    pub fault: String,
    pub clients: usize,
    /// Distinct messages (client_msg_ids) the clients set out to send.
    pub sent: u64,
    /// Send frames written, retries included.
    pub attempts: u64,
    /// Messages that got a 50004 / 50005 / 200 reply.
    pub acked: u64,
    /// (message, recipient) pairs that should reach a recipient, and those that did: live, or
    /// through the resume after a reconnect.
    pub expected_deliveries: u64,
    pub delivered: u64,
    /// Acked but absent from history.
    pub lost: u64,
    /// Acked and stored, yet a recipient saw it only in the final full-history check: it was
    /// neither pushed to it nor returned by a resume after one of its reconnects.
    pub undelivered: u64,
    /// See docs/reliability.md: the same message pushed twice to one client, one seq holding two
    /// messages, or one client_msg_id stored twice.
    pub duplicates: u64,
    /// Live pushes from one sender in one conversation arriving with a falling seq.
    pub out_of_order: u64,
    /// 50006 replies (anti-spam), nothing stored.
    pub refused: u64,
    /// 50000 replies, each followed by a retry with the same client_msg_id.
    pub failed: u64,
    /// Send attempts that got no reply within the reply timeout, then retried.
    pub timeouts: u64,
    /// Send attempts whose socket closed before the reply, then retried.
    pub dropped: u64,
    /// Replies other than the above (40000 ...): each one is a violation.
    pub unexpected: u64,
    pub reconnects: u64,
    /// Reconnects that needed a new login (the session was gone).
    pub relogins: u64,
    /// Fault end to every server answering /health 200 and every client having a send acked.
    pub recovery_ms: Option<u64>,
    /// Fault end to /health 200 on every server still meant to run.
    pub health_ms: Option<u64>,
    /// Fault-specific observations that held (e.g. "login got 503 unavailable").
    pub checks: Vec<String>,
    pub violations: Vec<String>,
}

impl FaultFigures {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// One RSS reading of the server process during a soak.
#[derive(Debug, Clone, Serialize)]
pub struct RssSample {
    pub label: String,
    pub at_secs: u64,
    pub rss_kib: u64,
    pub connections: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakFigures {
    pub connections: usize,
    pub duration_secs: u64,
    pub rate_per_sec: f64,
    pub sent: u64,
    pub acked: u64,
    pub refused: u64,
    pub errors: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Sockets that closed during the run (none should).
    pub dropped: u64,
    pub ack_p50_ms: u64,
    pub ack_p99_ms: u64,
    pub ack_max_ms: u64,
    pub rss: Vec<RssSample>,
    pub violations: Vec<String>,
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn ms(value: Option<u64>) -> String {
    value.map_or_else(
        || "—".to_owned(),
        |ms| format!("{:.1} s", ms as f64 / 1000.0),
    )
}

pub fn faults_table(runs: &[FaultFigures]) -> String {
    let mut table = Table::new(
        &[
            "fault",
            "clients",
            "sent",
            "acked",
            "delivered",
            "lost",
            "undelivered",
            "duplicates",
            "out of order",
            "50000 / timed out / cut off (retried)",
            "reconnects (re-login)",
            "/health 200 after",
            "time to recover",
            "result",
        ],
        "lrrrrrrrrrrrrl",
    );
    for r in runs {
        table.row([
            format!("`{}`", r.fault),
            r.clients.to_string(),
            r.sent.to_string(),
            r.acked.to_string(),
            format!("{} / {}", r.delivered, r.expected_deliveries),
            r.lost.to_string(),
            r.undelivered.to_string(),
            r.duplicates.to_string(),
            r.out_of_order.to_string(),
            format!("{} / {} / {}", r.failed, r.timeouts, r.dropped),
            format!("{} ({})", r.reconnects, r.relogins),
            ms(r.health_ms),
            ms(r.recovery_ms),
            (if r.passed() { "pass" } else { "**FAIL**" }).to_owned(),
        ]);
    }
    let mut out = table.finish();
    for r in runs {
        if !r.checks.is_empty() {
            let _ = writeln!(out, "\n`{}`: {}.", r.fault, r.checks.join("; "));
        }
        for v in &r.violations {
            let _ = writeln!(out, "\n`{}` violation: {v}", r.fault);
        }
    }
    out
}

pub fn soak_table(soak: &SoakFigures) -> String {
    let mut figures = Table::new(
        &[
            "connections",
            "duration",
            "target rate",
            "sent",
            "acked",
            "refused (50006)",
            "errors",
            "delivered",
            "lost",
            "duplicates",
            "dropped sockets",
            "ack p50 / p99 / max",
        ],
        "rrrrrrrrrrrr",
    );
    figures.row([
        soak.connections.to_string(),
        format!("{} s", soak.duration_secs),
        format!("{:.0}/s", soak.rate_per_sec),
        soak.sent.to_string(),
        soak.acked.to_string(),
        soak.refused.to_string(),
        soak.errors.to_string(),
        format!("{} / {}", soak.delivered, soak.expected_deliveries),
        soak.lost.to_string(),
        soak.duplicates.to_string(),
        soak.dropped.to_string(),
        format!(
            "{} / {} / {} ms",
            soak.ack_p50_ms, soak.ack_p99_ms, soak.ack_max_ms
        ),
    ]);
    let mut samples = Table::new(&["sample", "at", "server RSS", "open sockets"], "lrrr");
    for s in &soak.rss {
        samples.row([
            s.label.clone(),
            format!("{} s", s.at_secs),
            format!("{:.1} MiB", s.rss_kib as f64 / 1024.0),
            s.connections.to_string(),
        ]);
    }
    let mut out = format!("{}\n{}", figures.finish(), samples.finish());
    for v in &soak.violations {
        let _ = writeln!(out, "\nviolation: {v}");
    }
    out
}

/// Replaces what lies between `<!-- BEGIN {section} -->` and `<!-- END {section} -->` in the
/// document with `body` (and a line saying when it was generated).
pub fn update_doc(doc: &Path, section: &str, body: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let begin = format!("<!-- BEGIN {section} -->");
    let end = format!("<!-- END {section} -->");
    let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
        anyhow::bail!("{} has no {begin} ... {end} section", doc.display());
    };
    anyhow::ensure!(start < stop, "{}: {end} before {begin}", doc.display());
    let stamp = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let updated = format!(
        "{}{begin}\n_Generated by `scripts/chaos.sh` on {stamp}._\n\n{}\n{}",
        &text[..start],
        body.trim_end(),
        &text[stop..]
    );
    std::fs::write(doc, updated).with_context(|| format!("writing {}", doc.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_marked_section() {
        let dir = std::env::temp_dir().join(format!("chaos-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("doc.md");
        std::fs::write(
            &doc,
            "intro\n<!-- BEGIN t -->\nold\n<!-- END t -->\noutro\n",
        )
        .unwrap();
        update_doc(&doc, "t", "| new |\n").unwrap();
        let text = std::fs::read_to_string(&doc).unwrap();
        assert!(text.starts_with("intro\n<!-- BEGIN t -->\n_Generated"));
        assert!(text.contains("| new |\n<!-- END t -->\noutro\n"));
        assert!(!text.contains("old"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
