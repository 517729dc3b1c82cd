//! The bookkeeping that proves exactly-once, in-order delivery. Every send gets a unique
//! `client_msg_id` and the set of receivers expected to get it; replies and `event: message`
//! frames are recorded as they arrive; [`Ledger::report`] then counts what was lost (acked but
//! never delivered to an expected receiver), duplicated (delivered twice to one receiver) and
//! reordered (a `seq` not above the last one that receiver saw in that conversation).
//!
//! A receiver is a logical client (one device): it may reconnect and catch up with op 7 under
//! the same [`ReceiverId`]. A message that was never acked (no reply, or a 50000 failure) is not
//! lost when it does not arrive, and not an error when it does (it may have been stored before
//! the failure was reported).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{ChatMessage, Incoming, Reply, code};

/// A logical receiver (one device of one user), as returned by [`Ledger::add_receiver`].
pub type ReceiverId = u32;

/// The receivers expected to get a message; shared between the messages of one group.
pub type Recipients = Arc<[ReceiverId]>;

/// Latencies are recorded in microseconds, up to a minute.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Width of the timeline buckets acks and deliveries are counted in, for rates over a window.
const BUCKET_MS: u128 = 100;

/// What the reply to a send said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// 50004, 50005 or 200: stored.
    Acked,
    /// 50006: refused by anti-spam, nothing stored.
    Refused,
    /// 50000: failed; the sender may retry with the same id.
    Failed,
    /// Any other code.
    Other(i64),
}

impl AckKind {
    pub fn of(code: i64) -> Self {
        match code {
            code::DELIVERED | code::STORED_OFFLINE | code::OK => Self::Acked,
            code::REFUSED => Self::Refused,
            code::FAILED => Self::Failed,
            other => Self::Other(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Acked { seq: Option<i64> },
    Refused,
    Failed,
    Other,
}

struct Msg {
    sent_at: Instant,
    recipients: Recipients,
    status: Status,
    deliveries: u32,
}

#[derive(Default)]
struct Receiver {
    /// Deliveries per message index.
    seen: HashMap<usize, u32>,
    /// Last seq seen per conversation.
    last_seq: HashMap<String, i64>,
}

struct Inner {
    msgs: Vec<Msg>,
    by_id: HashMap<String, usize>,
    receivers: Vec<Receiver>,
    counts: Counts,
    /// Send → receive, every delivery.
    delivery: Histogram<u64>,
    /// Send → reply, every acked send.
    ack: Histogram<u64>,
    /// Send → receive by the last expected receiver, per fully delivered message.
    last_delivery: Histogram<u64>,
    /// Acks and first deliveries per [`BUCKET_MS`] since the ledger was created.
    acks_timeline: Vec<u32>,
    deliveries_timeline: Vec<u32>,
}

impl Inner {
    fn count_at(timeline: &mut Vec<u32>, epoch: Instant, at: Instant) {
        let bucket = (at.saturating_duration_since(epoch).as_millis() / BUCKET_MS) as usize;
        if timeline.len() <= bucket {
            timeline.resize(bucket + 1, 0);
        }
        timeline[bucket] += 1;
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    duplicated: u64,
    reordered: u64,
    misrouted: u64,
    phantom: u64,
    seq_mismatch: u64,
    foreign: u64,
    delivered: u64,
}

/// The ledger of one measurement. Shared between tasks (`Arc<Ledger>`); every method takes
/// `&self`.
pub struct Ledger {
    prefix: String,
    epoch: Instant,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// Throughput over a window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rates {
    /// Sends acked (50004 / 50005 / 200) per second.
    pub acked_per_sec: f64,
    /// First deliveries of this ledger's messages per second (every receiver counted).
    pub delivered_per_sec: f64,
}

/// What a ledger proves, at the moment it is asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerReport {
    /// Sends recorded.
    pub sent: u64,
    /// Replied 50004 / 50005 / 200.
    pub acked: u64,
    /// Replied 50006.
    pub refused: u64,
    /// Replied 50000.
    pub failed: u64,
    /// Replied with another code.
    pub other_code: u64,
    /// No reply (yet).
    pub unanswered: u64,
    /// Deliveries of this ledger's messages (every receiver counted).
    pub delivered: u64,
    /// Deliveries the acked messages owe: acked × their expected receivers.
    pub expected_deliveries: u64,
    /// Acked messages × expected receivers that never got them.
    pub lost: u64,
    /// Deliveries beyond the first of one message to one receiver.
    pub duplicated: u64,
    /// Deliveries whose seq was not above the last one the receiver saw in that conversation.
    pub reordered: u64,
    /// Deliveries to a receiver the message was not meant for.
    pub misrouted: u64,
    /// Deliveries of a message the server refused (50006) or answered with another error.
    pub phantom: u64,
    /// Acked messages delivered with another seq than the ack's, or acked twice with two seqs.
    pub seq_mismatch: u64,
    /// Messages delivered that this ledger did not send (system notices, other runs).
    pub foreign: u64,
    /// Send → receive, every delivery.
    pub latency: Latency,
    /// Send → reply.
    pub ack_latency: Latency,
    /// Send → receive by the last expected receiver.
    pub last_delivery_latency: Latency,
}

impl LedgerReport {
    /// True when nothing was lost, duplicated, reordered, misrouted or delivered after a refusal.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.misrouted == 0
            && self.phantom == 0
            && self.seq_mismatch == 0
    }
}

fn histogram() -> Histogram<u64> {
    // Three significant digits from 1 µs to a minute: always valid bounds.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
        .unwrap_or_else(|e| panic!("hdrhistogram bounds: {e}"))
}

fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros())
        .unwrap_or(LATENCY_MAX_US)
        .clamp(1, LATENCY_MAX_US)
}

impl Ledger {
    /// A ledger whose `client_msg_id`s start with `prefix` (keep it short and unique per run:
    /// ids are at most 64 characters).
    pub fn new(prefix: &str) -> Arc<Self> {
        Arc::new(Self {
            prefix: prefix.to_owned(),
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                msgs: Vec::new(),
                by_id: HashMap::new(),
                receivers: Vec::new(),
                counts: Counts::default(),
                delivery: histogram(),
                ack: histogram(),
                last_delivery: histogram(),
                acks_timeline: Vec::new(),
                deliveries_timeline: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent-enough counts to report.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new logical receiver.
    pub fn add_receiver(&self) -> ReceiverId {
        let mut inner = self.lock();
        inner.receivers.push(Receiver::default());
        ReceiverId::try_from(inner.receivers.len() - 1).unwrap_or(ReceiverId::MAX)
    }

    /// `n` new receivers.
    pub fn add_receivers(&self, n: usize) -> Vec<ReceiverId> {
        (0..n).map(|_| self.add_receiver()).collect()
    }

    /// Records a send about to happen to `recipients`, timestamped now; returns its unique
    /// `client_msg_id`.
    pub fn send(&self, recipients: &Recipients) -> String {
        self.send_at(recipients, Instant::now())
    }

    /// [`Ledger::send`] with an explicit send time (e.g. the intended time of a paced send, so
    /// that a late start counts as latency).
    pub fn send_at(&self, recipients: &Recipients, at: Instant) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", self.prefix);
        let mut inner = self.lock();
        let idx = inner.msgs.len();
        inner.msgs.push(Msg {
            sent_at: at,
            recipients: recipients.clone(),
            status: Status::Pending,
            deliveries: 0,
        });
        inner.by_id.insert(id.clone(), idx);
        id
    }

    /// Records a reply. Returns what it said about a send of this ledger, `None` for a reply to
    /// anything else.
    pub fn reply(&self, reply: &Reply, at: Instant) -> Option<AckKind> {
        let id = reply.client_msg_id.as_deref()?;
        let kind = AckKind::of(reply.code);
        let seq = reply.data.get("seq").and_then(serde_json::Value::as_i64);
        let mut inner = self.lock();
        let idx = *inner.by_id.get(id)?;
        let sent_at = inner.msgs[idx].sent_at;
        let prev = inner.msgs[idx].status;
        let next = match (kind, prev) {
            (AckKind::Acked, Status::Acked { seq: old }) => {
                // A retry answered again: it must be the same stored message.
                if old.is_some() && seq.is_some() && old != seq {
                    inner.counts.seq_mismatch += 1;
                }
                prev
            }
            (AckKind::Acked, _) => {
                inner.ack.saturating_record(micros(sent_at, at));
                Inner::count_at(&mut inner.acks_timeline, self.epoch, at);
                Status::Acked { seq }
            }
            // A stored message stays stored whatever a later retry hears.
            (_, Status::Acked { .. }) => prev,
            (AckKind::Refused, _) => Status::Refused,
            (AckKind::Failed, _) => Status::Failed,
            (AckKind::Other(_), _) => Status::Other,
        };
        inner.msgs[idx].status = next;
        Some(kind)
    }

    /// Records an `event: message` (or a message returned by op 7) received by `receiver`.
    pub fn deliver(&self, receiver: ReceiverId, message: &ChatMessage, at: Instant) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(rx) = inner.receivers.get_mut(receiver as usize) else {
            return;
        };
        let idx = message
            .client_msg_id
            .as_deref()
            .and_then(|id| inner.by_id.get(id).copied());
        let previous = rx.last_seq.get(&message.conversation).copied().unwrap_or(0);
        let duplicate = idx.is_some_and(|i| rx.seen.get(&i).is_some_and(|&n| n > 0));
        if !duplicate && message.seq <= previous {
            inner.counts.reordered += 1;
        }
        if message.seq > previous {
            rx.last_seq
                .insert(message.conversation.clone(), message.seq);
        }
        let Some(idx) = idx else {
            inner.counts.foreign += 1;
            return;
        };
        let count = rx.seen.entry(idx).or_insert(0);
        *count += 1;
        if *count > 1 {
            inner.counts.duplicated += 1;
            return;
        }
        inner.counts.delivered += 1;
        Inner::count_at(&mut inner.deliveries_timeline, self.epoch, at);
        let msg = &mut inner.msgs[idx];
        if !msg.recipients.contains(&receiver) {
            inner.counts.misrouted += 1;
            return;
        }
        match msg.status {
            Status::Refused | Status::Other => inner.counts.phantom += 1,
            Status::Acked { seq: Some(seq) } if seq != message.seq => {
                inner.counts.seq_mismatch += 1;
            }
            _ => {}
        }
        msg.deliveries += 1;
        let latency = micros(msg.sent_at, at);
        let complete = msg.deliveries as usize == msg.recipients.len();
        inner.delivery.saturating_record(latency);
        if complete {
            inner.last_delivery.saturating_record(latency);
        }
    }

    /// Records whatever a connection's reader produced: replies and messages; the rest is
    /// ignored.
    pub fn incoming(&self, receiver: ReceiverId, item: &Incoming) {
        match item {
            Incoming::Reply { reply, at } => {
                self.reply(reply, *at);
            }
            Incoming::Message { message, at } => self.deliver(receiver, message, *at),
            Incoming::Other { .. } | Incoming::Closed { .. } => {}
        }
    }

    /// Sends with no reply yet.
    pub fn unanswered(&self) -> u64 {
        let inner = self.lock();
        inner
            .msgs
            .iter()
            .filter(|m| m.status == Status::Pending)
            .count() as u64
    }

    /// Deliveries acked messages still owe (0 when everything arrived).
    pub fn outstanding(&self) -> u64 {
        let inner = self.lock();
        inner
            .msgs
            .iter()
            .filter(|m| matches!(m.status, Status::Acked { .. }))
            .map(|m| (m.recipients.len() as u64).saturating_sub(u64::from(m.deliveries)))
            .sum()
    }

    /// Waits until nothing is unanswered or outstanding, or the timeout passes; true when
    /// everything settled.
    pub async fn settle(&self, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.unanswered() == 0 && self.outstanding() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Acks and first deliveries per second between two instants (to the timeline's 100 ms).
    pub fn rates_between(&self, from: Instant, to: Instant) -> Rates {
        let inner = self.lock();
        let bucket =
            |t: Instant| (t.saturating_duration_since(self.epoch).as_millis() / BUCKET_MS) as usize;
        let (a, b) = (bucket(from), bucket(to).max(bucket(from) + 1));
        let sum = |timeline: &[u32]| -> u64 {
            timeline
                .iter()
                .skip(a)
                .take(b - a)
                .map(|&n| u64::from(n))
                .sum()
        };
        let secs = ((b - a) as f64 * BUCKET_MS as f64) / 1000.0;
        Rates {
            acked_per_sec: sum(&inner.acks_timeline) as f64 / secs,
            delivered_per_sec: sum(&inner.deliveries_timeline) as f64 / secs,
        }
    }

    /// Send → receive latencies of every delivery so far (µs), e.g. for a plot.
    pub fn delivery_histogram(&self) -> Histogram<u64> {
        self.lock().delivery.clone()
    }

    /// Counts and latencies as of now.
    pub fn report(&self) -> LedgerReport {
        let inner = self.lock();
        let mut r = LedgerReport {
            duplicated: inner.counts.duplicated,
            reordered: inner.counts.reordered,
            misrouted: inner.counts.misrouted,
            phantom: inner.counts.phantom,
            seq_mismatch: inner.counts.seq_mismatch,
            foreign: inner.counts.foreign,
            delivered: inner.counts.delivered,
            latency: Latency::of(&inner.delivery),
            ack_latency: Latency::of(&inner.ack),
            last_delivery_latency: Latency::of(&inner.last_delivery),
            ..LedgerReport::default()
        };
        for (idx, msg) in inner.msgs.iter().enumerate() {
            r.sent += 1;
            match msg.status {
                Status::Pending => r.unanswered += 1,
                Status::Refused => r.refused += 1,
                Status::Failed => r.failed += 1,
                Status::Other => r.other_code += 1,
                Status::Acked { .. } => {
                    r.acked += 1;
                    r.expected_deliveries += msg.recipients.len() as u64;
                    for &rx in msg.recipients.iter() {
                        let got = inner
                            .receivers
                            .get(rx as usize)
                            .and_then(|r| r.seen.get(&idx))
                            .copied()
                            .unwrap_or(0);
                        if got == 0 {
                            r.lost += 1;
                        }
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::op;

    /// A reply of `code` to the send `id`, carrying `seq` when given.
    fn reply(id: &str, code: i64, seq: Option<i64>) -> Reply {
        Reply {
            op_type: op::SEND,
            code,
            msg: String::new(),
            data: seq.map_or(serde_json::Value::Null, |s| serde_json::json!({ "seq": s })),
            client_msg_id: Some(id.to_owned()),
        }
    }

    /// The stored message of send `id` in `conversation` at `seq`.
    fn message(id: Option<&str>, conversation: &str, seq: i64) -> ChatMessage {
        ChatMessage {
            id: format!("m{seq}"),
            conversation: conversation.to_owned(),
            seq,
            from: "1".to_owned(),
            to: "2".to_owned(),
            kind: crate::client::TEXT_TYPE,
            content: "hi".to_owned(),
            client_msg_id: id.map(str::to_owned),
        }
    }

    /// A ledger with `n` receivers, all of them recipients of every message.
    fn ledger(n: usize) -> (Arc<Ledger>, Recipients) {
        let ledger = Ledger::new("t");
        let all: Recipients = ledger.add_receivers(n).into();
        (ledger, all)
    }

    /// Records a reply of `code` (with `seq`) to send `id` now; returns what the ledger made of it.
    fn answer(ledger: &Ledger, id: &str, code: i64, seq: Option<i64>) -> Option<AckKind> {
        ledger.reply(&reply(id, code, seq), Instant::now())
    }

    /// Delivers send `id` at `seq` of the 1:1 conversation to `receiver` now.
    fn deliver(ledger: &Ledger, receiver: ReceiverId, id: &str, seq: i64) {
        ledger.deliver(receiver, &message(Some(id), "u:1:2", seq), Instant::now());
    }

    /// Acks send `id` at `seq` and delivers it to every recipient.
    fn ack_and_deliver(ledger: &Ledger, all: &Recipients, id: &str, seq: i64) {
        assert_eq!(
            answer(ledger, id, code::DELIVERED, Some(seq)),
            Some(AckKind::Acked)
        );
        for &rx in all.iter() {
            deliver(ledger, rx, id, seq);
        }
    }

    /// The verdict of a report: every exactly-once violation it counts, by name (empty for a
    /// clean run), so that a test names the one it expects and no other.
    fn violations(r: &LedgerReport) -> Vec<(&'static str, u64)> {
        [
            ("lost", r.lost),
            ("duplicated", r.duplicated),
            ("reordered", r.reordered),
            ("misrouted", r.misrouted),
            ("phantom", r.phantom),
            ("seq_mismatch", r.seq_mismatch),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect()
    }

    /// Asserts the verdict of a report: exactly the violations `expected` (by name and count),
    /// and exactly-once when there are none.
    #[track_caller]
    fn assert_verdict(r: &LedgerReport, expected: &[(&str, u64)]) {
        assert_eq!(violations(r), expected, "{r:?}");
        assert_eq!(r.exactly_once(), expected.is_empty(), "{r:?}");
    }

    #[test]
    fn a_clean_run_is_exactly_once() {
        let (ledger, all) = ledger(2);
        for seq in 1..=3 {
            let id = ledger.send(&all);
            ack_and_deliver(&ledger, &all, &id, seq);
        }
        let r = ledger.report();
        assert_verdict(&r, &[]);
        assert_eq!((r.sent, r.acked, r.delivered), (3, 3, 6));
        assert_eq!((r.expected_deliveries, r.unanswered, r.foreign), (6, 0, 0));
        assert_eq!((r.latency.count, r.ack_latency.count), (6, 3));
        assert_eq!(r.last_delivery_latency.count, 3);
        assert_eq!((ledger.unanswered(), ledger.outstanding()), (0, 0));
    }

    #[test]
    fn an_acked_message_a_receiver_never_gets_is_lost() {
        let (ledger, all) = ledger(2);
        let id = ledger.send(&all);
        answer(&ledger, &id, code::STORED_OFFLINE, Some(1));
        deliver(&ledger, all[0], &id, 1);
        let r = ledger.report();
        assert_verdict(&r, &[("lost", 1)]);
        assert_eq!((r.acked, r.delivered, r.expected_deliveries), (1, 1, 2));
        assert_eq!(ledger.outstanding(), 1);
    }

    #[test]
    fn a_second_delivery_to_one_receiver_is_a_duplicate() {
        let (ledger, all) = ledger(1);
        let id = ledger.send(&all);
        ack_and_deliver(&ledger, &all, &id, 1);
        deliver(&ledger, all[0], &id, 1);
        let r = ledger.report();
        assert_verdict(&r, &[("duplicated", 1)]);
        // The duplicate is not a second delivery owed or made.
        assert_eq!((r.delivered, r.expected_deliveries), (1, 1));
    }

    #[test]
    fn a_seq_below_the_last_one_seen_in_a_conversation_is_reordered() {
        let (ledger, all) = ledger(1);
        let first = ledger.send(&all);
        let second = ledger.send(&all);
        answer(&ledger, &first, code::DELIVERED, Some(1));
        answer(&ledger, &second, code::DELIVERED, Some(2));
        deliver(&ledger, all[0], &second, 2);
        deliver(&ledger, all[0], &first, 1);
        let r = ledger.report();
        assert_verdict(&r, &[("reordered", 1)]);
        assert_eq!(r.delivered, 2);
        // Seqs are per conversation: another conversation starting at 1 is in order.
        let third = ledger.send(&all);
        answer(&ledger, &third, code::OK, Some(1));
        ledger.deliver(all[0], &message(Some(&third), "g:7", 1), Instant::now());
        assert_verdict(&ledger.report(), &[("reordered", 1)]);
    }

    #[tokio::test]
    async fn an_ack_after_the_deadline_leaves_the_send_unanswered_not_lost() {
        let (ledger, all) = ledger(1);
        // Delivered in time, its ack still on the way when the run ends.
        let id = ledger.send(&all);
        deliver(&ledger, all[0], &id, 1);
        assert!(!ledger.settle(Duration::from_millis(20)).await);
        let at_deadline = ledger.report();
        assert_verdict(&at_deadline, &[]);
        assert_eq!((at_deadline.unanswered, at_deadline.acked), (1, 0));
        assert_eq!(
            (at_deadline.expected_deliveries, at_deadline.delivered),
            (0, 1)
        );
        // The ack arrives after the run's end: the next report counts it acked, still clean.
        assert_eq!(
            answer(&ledger, &id, code::DELIVERED, Some(1)),
            Some(AckKind::Acked)
        );
        assert!(ledger.settle(Duration::ZERO).await);
        let after = ledger.report();
        assert_verdict(&after, &[]);
        assert_eq!(
            (after.unanswered, after.acked, after.expected_deliveries),
            (0, 1, 1)
        );
        assert_eq!(after.ack_latency.count, 1);
    }

    #[tokio::test]
    async fn an_acked_message_still_undelivered_at_the_deadline_is_lost_until_it_arrives() {
        let (ledger, all) = ledger(1);
        let id = ledger.send(&all);
        answer(&ledger, &id, code::DELIVERED, Some(1));
        assert!(!ledger.settle(Duration::from_millis(20)).await);
        assert_eq!((ledger.unanswered(), ledger.outstanding()), (0, 1));
        assert_verdict(&ledger.report(), &[("lost", 1)]);
        deliver(&ledger, all[0], &id, 1);
        assert!(ledger.settle(Duration::ZERO).await);
        assert_verdict(&ledger.report(), &[]);
    }

    #[test]
    fn an_ack_after_its_delivery_or_after_a_failure_still_counts() {
        let (ledger, all) = ledger(1);
        // Delivered before its ack arrives, then acked: in order, nothing lost.
        let early = ledger.send(&all);
        deliver(&ledger, all[0], &early, 1);
        assert_eq!(ledger.unanswered(), 1);
        answer(&ledger, &early, code::DELIVERED, Some(1));
        // Failed (50000), then the retry is acked: the message counts as acked and owed.
        let retried = ledger.send(&all);
        assert_eq!(
            answer(&ledger, &retried, code::FAILED, None),
            Some(AckKind::Failed)
        );
        answer(&ledger, &retried, code::DELIVERED, Some(2));
        assert_eq!(ledger.outstanding(), 1);
        deliver(&ledger, all[0], &retried, 2);
        let r = ledger.report();
        assert_verdict(&r, &[]);
        assert_eq!((r.acked, r.failed, r.unanswered), (2, 0, 0));
        // A later answer to a stored message never unstores it.
        answer(&ledger, &retried, code::FAILED, None);
        assert_eq!((ledger.report().acked, ledger.report().failed), (2, 0));
    }

    #[test]
    fn a_second_ack_or_a_delivery_with_another_seq_is_a_seq_mismatch() {
        let (ledger, all) = ledger(1);
        // Acked twice with two seqs: two stored copies of one send.
        let twice = ledger.send(&all);
        ack_and_deliver(&ledger, &all, &twice, 1);
        answer(&ledger, &twice, code::DELIVERED, Some(2));
        assert_verdict(&ledger.report(), &[("seq_mismatch", 1)]);
        // Delivered under another seq than its ack named.
        let moved = ledger.send(&all);
        answer(&ledger, &moved, code::DELIVERED, Some(3));
        deliver(&ledger, all[0], &moved, 4);
        let r = ledger.report();
        assert_verdict(&r, &[("seq_mismatch", 2)]);
    }

    #[test]
    fn an_unanswered_send_is_not_lost_and_a_refused_one_must_not_arrive() {
        let (ledger, all) = ledger(1);
        let silent = ledger.send(&all);
        let refused = ledger.send(&all);
        assert_eq!(
            answer(&ledger, &refused, code::REFUSED, None),
            Some(AckKind::Refused)
        );
        let r = ledger.report();
        assert_verdict(&r, &[]);
        assert_eq!((r.unanswered, r.refused, r.expected_deliveries), (1, 1, 0));
        deliver(&ledger, all[0], &refused, 1);
        let r = ledger.report();
        assert_verdict(&r, &[("phantom", 1)]);
        // The unanswered one may still arrive: it may have been stored before the failure.
        deliver(&ledger, all[0], &silent, 2);
        assert_verdict(&ledger.report(), &[("phantom", 1)]);
    }

    #[test]
    fn deliveries_to_the_wrong_receiver_or_of_unknown_messages_are_told_apart() {
        let ledger = Ledger::new("t");
        let receivers = ledger.add_receivers(2);
        let only_first: Recipients = vec![receivers[0]].into();
        let id = ledger.send(&only_first);
        answer(&ledger, &id, code::DELIVERED, Some(1));
        deliver(&ledger, receivers[0], &id, 1);
        deliver(&ledger, receivers[1], &id, 1);
        ledger.deliver(receivers[1], &message(None, "g:1", 5), Instant::now());
        let r = ledger.report();
        assert_verdict(&r, &[("misrouted", 1)]);
        // A message this ledger did not send is counted apart, not as a violation.
        assert_eq!(r.foreign, 1);
        // A reply to a send of another ledger is not this ledger's business.
        assert_eq!(answer(&ledger, "other-1", code::OK, Some(1)), None);
    }
}
