//! The exactly-once checks after a fault, from what every client recorded and the full history
//! of every conversation (op 2, read after the traffic settled). The definitions are those of
//! docs/reliability.md:
//!
//! - lost: acknowledged (50004 / 50005 / 200) but not in history at the acknowledged seq;
//! - undelivered: acknowledged and stored, but some recipient got it neither live nor through
//!   the op 7 resume after one of its reconnects (the clients do not sweep history themselves:
//!   what they saw is what a user would have seen);
//! - duplicate: one message pushed live twice to one client, one seq holding two messages
//!   (in history or as seen by a client), one `client_msg_id` of one sender stored twice, or a
//!   retry acknowledged with another message than the first acknowledgement. A resume returning
//!   messages the client already had is not a duplicate: the client keeps one entry per seq;
//! - out of order: a live push from one sender in one conversation whose seq is not above that
//!   sender's previous push there. (Pushes from different senders on different processes may
//!   swap, docs/protocol.md; clients order by seq.)
//!
//! This is not the load generator's ledger: that one counts every overlap of a resume as a
//! duplicate and every cross-process swap as a reorder, which is right for a benchmark without
//! faults and wrong here.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chat_loadgen::client::ChatMessage;

use super::record::{Attempt, ClientLog, Via};
use super::report::FaultFigures;

/// Who takes part in each conversation of the run (client indexes).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub participants: HashMap<String, Vec<usize>>,
}

/// At most this many examples of one kind of violation are listed.
const EXAMPLES: usize = 5;

struct Violations {
    list: Vec<String>,
    counts: HashMap<&'static str, usize>,
}

impl Violations {
    fn new() -> Self {
        Self {
            list: Vec::new(),
            counts: HashMap::new(),
        }
    }

    fn add(&mut self, kind: &'static str, detail: String) {
        let n = self.counts.entry(kind).or_default();
        *n += 1;
        if *n <= EXAMPLES {
            self.list.push(format!("{kind}: {detail}"));
        }
    }

    fn finish(mut self) -> Vec<String> {
        let mut more: Vec<_> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > EXAMPLES)
            .map(|(k, n)| format!("{k}: {} more", n - EXAMPLES))
            .collect();
        more.sort();
        self.list.extend(more);
        self.list
    }
}

/// Counts and checks everything; `figures.fault` and the timing fields are left to the caller.
pub fn tally(logs: &[ClientLog], topology: &Topology) -> FaultFigures {
    let mut f = FaultFigures {
        clients: logs.len(),
        ..FaultFigures::default()
    };
    let mut v = Violations::new();
    let by_idx: HashMap<usize, &ClientLog> = logs.iter().map(|l| (l.idx, l)).collect();

    // The history of every conversation, as its verifying client read it.
    let mut history: HashMap<&str, HashMap<i64, &ChatMessage>> = HashMap::new();
    for log in logs {
        for (conversation, messages) in &log.history {
            let mut by_seq: HashMap<i64, &ChatMessage> = HashMap::new();
            let mut cmids: HashSet<(&str, &str)> = HashSet::new();
            let mut previous = 0;
            for m in messages {
                if m.seq <= previous {
                    f.duplicates += 1;
                    v.add(
                        "duplicate seq in history",
                        format!("{conversation} seq {}", m.seq),
                    );
                }
                previous = m.seq;
                by_seq.insert(m.seq, m);
                if let Some(cmid) = m.client_msg_id.as_deref()
                    && !cmids.insert((m.from.as_str(), cmid))
                {
                    f.duplicates += 1;
                    v.add(
                        "stored twice",
                        format!("{conversation}: client_msg_id {cmid} of user {}", m.from),
                    );
                }
            }
            history.insert(conversation.as_str(), by_seq);
        }
    }
    for conversation in topology.participants.keys() {
        if !history.contains_key(conversation.as_str()) {
            v.add(
                "history not read",
                format!("{conversation}: no verifying client got it"),
            );
        }
    }

    for log in logs {
        for send in &log.sends {
            f.sent += 1;
            f.attempts += send.attempts.len() as u64;
            for attempt in &send.attempts {
                match attempt.outcome {
                    Attempt::Failed => f.failed += 1,
                    Attempt::TimedOut => f.timeouts += 1,
                    Attempt::Dropped => f.dropped += 1,
                    Attempt::Refused => f.refused += 1,
                    Attempt::Unexpected(code) => {
                        f.unexpected += 1;
                        v.add(
                            "unexpected reply",
                            format!("{} answered {code}", send.client_msg_id),
                        );
                    }
                    Attempt::Acked => {}
                }
            }
            let Some(ack) = &send.ack else {
                if !send.refused()
                    && !send
                        .attempts
                        .iter()
                        .any(|a| matches!(a.outcome, Attempt::Unexpected(_)))
                {
                    v.add(
                        "never acknowledged",
                        format!(
                            "{} after {} attempts",
                            send.client_msg_id,
                            send.attempts.len()
                        ),
                    );
                }
                continue;
            };
            f.acked += 1;
            let Some(stored) = history.get(send.conversation.as_str()) else {
                continue;
            };
            match stored.get(&ack.seq) {
                Some(m)
                    if m.id == ack.id
                        && m.client_msg_id.as_deref() == Some(&send.client_msg_id) => {}
                Some(m) => {
                    f.lost += 1;
                    v.add(
                        "lost",
                        format!(
                            "{} acked as {} seq {} but that seq holds {} ({:?})",
                            send.client_msg_id, ack.id, ack.seq, m.id, m.client_msg_id
                        ),
                    );
                    continue;
                }
                None => {
                    f.lost += 1;
                    v.add(
                        "lost",
                        format!(
                            "{} acked as {} seq {} in {}, not in history",
                            send.client_msg_id, ack.id, ack.seq, send.conversation
                        ),
                    );
                    continue;
                }
            }
            let recipients = topology
                .participants
                .get(&send.conversation)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for r in recipients.iter().filter(|r| **r != log.idx) {
                f.expected_deliveries += 1;
                let got = by_idx
                    .get(r)
                    .and_then(|rl| rl.seen.get(&send.conversation))
                    .and_then(|s| s.get(&ack.seq))
                    .is_some_and(|s| s.id == ack.id && matches!(s.via, Via::Live | Via::Resume));
                if got {
                    f.delivered += 1;
                } else {
                    f.undelivered += 1;
                    let outcomes: Vec<String> = send
                        .attempts
                        .iter()
                        .map(|a| format!("{:?}", a.outcome))
                        .collect();
                    v.add(
                        "undelivered",
                        format!(
                            "{} ({} seq {}) never reached client {r}; sender attempts {}{}",
                            send.client_msg_id,
                            send.conversation,
                            ack.seq,
                            outcomes.join(", "),
                            if send.stored_by_earlier_attempt {
                                ", the acknowledged message was stored by an earlier attempt"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
        }
    }

    for log in logs {
        f.reconnects += log.reconnects;
        f.relogins += log.relogins;
        f.out_of_order += log.out_of_order.len() as u64;
        for o in &log.out_of_order {
            v.add("out of order", format!("client {}: {o}", log.idx));
        }
        f.duplicates += (log.live_duplicates.len() + log.seq_conflicts.len()) as u64;
        for d in log.live_duplicates.iter().chain(&log.seq_conflicts) {
            v.add("duplicate", format!("client {}: {d}", log.idx));
        }
        for a in &log.anomalies {
            v.add("anomaly", format!("client {}: {a}", log.idx));
        }
        // Whatever a client was shown must be what was stored.
        for (conversation, seen) in &log.seen {
            let Some(stored) = history.get(conversation.as_str()) else {
                continue;
            };
            for (seq, s) in seen {
                match stored.get(seq) {
                    Some(m) if m.id == s.id => {}
                    Some(m) => v.add(
                        "shown differently",
                        format!(
                            "client {} saw {} at {conversation} seq {seq}, history has {}",
                            log.idx, s.id, m.id
                        ),
                    ),
                    None => v.add(
                        "shown but not stored",
                        format!(
                            "client {} saw {} at {conversation} seq {seq}",
                            log.idx, s.id
                        ),
                    ),
                }
            }
        }
    }
    f.violations = v.finish();
    f
}

/// When every client had a send acknowledged at or after `since`; Err lists the clients that
/// had none.
pub fn all_acked_after(logs: &[ClientLog], since: Instant) -> Result<Instant, Vec<usize>> {
    let mut latest = since;
    let mut missing = Vec::new();
    for log in logs {
        let first = log
            .sends
            .iter()
            .filter_map(|s| s.ack.as_ref().map(|a| a.at))
            .filter(|at| *at >= since)
            .min();
        match first {
            Some(first) => latest = latest.max(first),
            None => missing.push(log.idx),
        }
    }
    if missing.is_empty() {
        Ok(latest)
    } else {
        Err(missing)
    }
}
