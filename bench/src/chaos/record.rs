//! What a chaos client records: its sends and every attempt of each, every message it was
//! shown and how (pushed live, returned by a resume, or its own acknowledged send), its
//! reconnects, and the history it read at the end. [`super::tally`] and [`super::checks`] judge
//! the run from these.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chat_loadgen::client::ChatMessage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Pushed as `event: message`.
    Live,
    /// Returned by op 7 after a (re)connect.
    Resume,
    /// The client's own send, known from its acknowledgement.
    Own,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    Group,
}

#[derive(Debug, Clone)]
pub struct Ack {
    pub id: String,
    pub seq: i64,
    pub at: Instant,
}

/// The outcome of one attempt of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Acked,
    Failed,
    Refused,
    Unexpected(i64),
    /// No reply within [`super::traffic::REPLY_TIMEOUT`]; the socket is still open.
    TimedOut,
    /// The socket went away before the reply.
    Dropped,
}

impl Attempt {
    pub fn unanswered(self) -> bool {
        matches!(self, Self::TimedOut | Self::Dropped)
    }
}

/// One attempt of a send: when it was written, when it was answered (or given up), and what
/// came of it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    pub sent: Instant,
    pub ended: Instant,
    pub outcome: Attempt,
}

#[derive(Debug, Clone)]
pub struct SendRecord {
    pub client_msg_id: String,
    pub target: Target,
    pub conversation: String,
    pub attempts: Vec<AttemptRecord>,
    pub ack: Option<Ack>,
    /// Acknowledged with a message stored before this attempt was written, the attempt before
    /// having lost its socket before any reply: that one was stored, its reply never sent.
    pub stored_by_earlier_attempt: bool,
}

impl SendRecord {
    pub fn refused(&self) -> bool {
        self.attempts.iter().any(|a| a.outcome == Attempt::Refused)
    }
}

/// Everything one client saw; handed to the checks when it stops.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub idx: usize,
    pub sends: Vec<SendRecord>,
    /// conversation → seq → message, whichever way it first arrived.
    pub seen: HashMap<String, BTreeMap<i64, Seen>>,
    /// Message ids pushed live more than once.
    pub live_duplicates: Vec<String>,
    /// The same (conversation, seq) seen holding two different message ids.
    pub seq_conflicts: Vec<String>,
    /// Live pushes from one sender in one conversation with a seq not above the previous one.
    pub out_of_order: Vec<String>,
    /// Live pushes in one conversation below an earlier push from another sender (allowed
    /// across processes, see docs/protocol.md; reported only).
    pub interleaved: u64,
    pub reconnects: u64,
    pub relogins: u64,
    /// Close codes (or "none" for a dropped socket) that ended a connection.
    pub closes: BTreeMap<String, u64>,
    /// Times a connection ended, with the close code if any.
    pub drops: Vec<(Instant, Option<u16>)>,
    /// When each (re)connect completed its resume.
    pub resumed_at: Vec<Instant>,
    /// Replies that were neither expected nor understood.
    pub anomalies: Vec<String>,
    /// History fetched in the verify phase (op 2), per conversation assigned, ascending.
    pub history: HashMap<String, Vec<ChatMessage>>,
    pub connected: bool,
}
