//! Process counters for `/metrics` (Prometheus text format): messages sent, refusals per
//! anti-spam rule, live connections.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every rule a refusal can name, in the order they are reported.
pub(crate) const RULES: [&str; 13] = [
    "unanswered",
    "rate",
    "duplicate",
    "group_rate",
    "muted",
    "local",
    "unavailable",
    "friend_requests",
    "group_edits",
    "moderation",
    "invites",
    "receipts",
    "uploads",
];

#[derive(Default)]
pub(crate) struct Metrics {
    sent_direct: AtomicU64,
    sent_group: AtomicU64,
    refused: [AtomicU64; RULES.len()],
    uploads: AtomicU64,
    uploaded_bytes: AtomicU64,
}

impl Metrics {
    pub(crate) fn sent(&self, group: bool) {
        let counter = if group {
            &self.sent_group
        } else {
            &self.sent_direct
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, rule: &str) {
        if let Some(i) = RULES.iter().position(|r| *r == rule) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A file stored (`POST /files`).
    pub(crate) fn uploaded(&self, bytes: u64) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.uploaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, connections: usize) -> String {
        let mut out = String::new();
        counters(
            &mut out,
            "chat_messages_sent_total",
            "Messages stored and delivered.",
            "kind",
            [("direct", &self.sent_direct), ("group", &self.sent_group)],
        );
        counters(
            &mut out,
            "chat_messages_refused_total",
            "Sends refused by anti-spam, per rule.",
            "rule",
            RULES.iter().copied().zip(&self.refused),
        );
        for (name, help, counter) in [
            (
                "chat_uploads_total",
                "Files stored through POST /files.",
                &self.uploads,
            ),
            (
                "chat_uploaded_bytes_total",
                "Bytes of the files stored.",
                &self.uploaded_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP chat_ws_connections Live WebSocket connections on this process."
        );
        let _ = writeln!(out, "# TYPE chat_ws_connections gauge");
        let _ = writeln!(out, "chat_ws_connections {connections}");
        out
    }
}

/// A counter family in the text exposition format: its HELP and TYPE lines, then one line per
/// `label` value.
fn counters<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (value, counter) in values {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{value}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        m.sent(false);
        m.refused("rate");
        m.refused("rate");
        let text = m.render(3);
        assert!(text.contains("chat_messages_sent_total{kind=\"direct\"} 1"));
        assert!(text.contains("chat_messages_refused_total{rule=\"rate\"} 2"));
        assert!(text.contains("chat_messages_refused_total{rule=\"muted\"} 0"));
        assert!(text.contains("chat_ws_connections 3"));
    }
}
