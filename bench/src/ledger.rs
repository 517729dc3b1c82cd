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
