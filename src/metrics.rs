//! Process counters for `/metrics` (Prometheus text format): messages sent, refusals per
//! anti-spam rule, live connections.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every rule a refusal can name, in the order they are reported.
pub const RULES: [&str; 7] = [
    "unanswered",
    "rate",
    "duplicate",
    "group_rate",
    "muted",
    "local",
    "unavailable",
];

#[derive(Default)]
pub struct Metrics {
    sent_direct: AtomicU64,
    sent_group: AtomicU64,
    refused: [AtomicU64; RULES.len()],
}

impl Metrics {
    pub fn sent(&self, group: bool) {
        let counter = if group {
            &self.sent_group
        } else {
            &self.sent_direct
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, rule: &str) {
        if let Some(i) = RULES.iter().position(|r| *r == rule) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, connections: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP chat_messages_sent_total Messages stored and delivered."
        );
        let _ = writeln!(out, "# TYPE chat_messages_sent_total counter");
        for (kind, counter) in [("direct", &self.sent_direct), ("group", &self.sent_group)] {
            let _ = writeln!(
                out,
                "chat_messages_sent_total{{kind=\"{kind}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP chat_messages_refused_total Sends refused by anti-spam, per rule."
        );
        let _ = writeln!(out, "# TYPE chat_messages_refused_total counter");
        for (rule, counter) in RULES.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "chat_messages_refused_total{{rule=\"{rule}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
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
