//! One chaos client: a user who keeps chatting through every fault the way a well-behaved app
//! would. It sends 1:1 (to its partner) and group messages in turn, each with a unique
//! `client_msg_id`, and retries a send that got 50000 or no reply with the same id until it is
//! acknowledged. Any dropped socket (close 1012 / 1008 / 1013, a reset, a refused connect) is
//! followed by a reconnect to a live node, a new login when the session is gone (401 on `/ws`),
//! and op 7 resume from the highest contiguous seq it holds per conversation. Everything it
//! sees is recorded ([`super::record`]) for the checks; the socket itself is the load
//! generator's [`chat_loadgen::client`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite;

use chat_loadgen::client::{
    self, ChatMessage, Http, Incoming, PASSWORD, Reply, User, WsConn, code, op,
};

use super::nodes::Ports;
use super::record::{Ack, Attempt, AttemptRecord, ClientLog, Seen, SendRecord, Target, Via};

/// How long a send waits for its reply before it is sent again (MongoDB's server selection
/// alone may take 3 s while it is down).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(8);
/// Pause after a 50000 before the retry.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// op 2 page size: as many as the server gives (it answers at most its
/// `messages.history_max_limit` per page).
const HISTORY_PAGE: u64 = u32::MAX as u64;
/// Bound on resume / history pages for one request chain.
const MAX_PAGES: usize = 1000;
/// Message type of group system notices (joins ...), never sent by clients.
const SYSTEM_TYPE: i64 = chat_server::ws::wire::SYSTEM_TYPE as i64;

/// What the run asks of its clients; moves forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connect, then send at the planned rate.
    Send,
    /// No new sends; finish (retry) the pending one, keep reading.
    Finish,
    /// Traffic has settled: fetch the history of the conversations assigned, then stop.
    Verify,
}

/// The fixed facts about one client.
#[derive(Debug, Clone)]
pub struct Profile {
    pub idx: usize,
    pub user: User,
    /// The node it connects to while that one is up.
    pub home: usize,
    pub partner_id: String,
    pub group_id: String,
    /// Conversations whose history this client fetches in the verify phase.
    pub verify: Vec<String>,
    /// Messages per second.
    pub rate: f64,
}

/// Shared by the clients of one run.
#[derive(Debug, Clone)]
pub struct Shared {
    pub run: String,
    pub ports: Ports,
    pub phase: watch::Receiver<Phase>,
    /// No loop runs past this.
    pub deadline: Instant,
    /// Clients currently connected (resumed) — the orchestrator waits for all at start.
    pub connected: Arc<AtomicUsize>,
    /// Clients with a send not yet acknowledged.
    pub pending: Arc<AtomicUsize>,
    /// Bounds the first connects in flight: the start of a run is not a fault, and a storm of
    /// handshakes there would only measure the set-up. Reconnects do not take a permit.
    pub first_connects: Arc<Semaphore>,
    /// Per client, when its latest send was acknowledged, in ms since `epoch` (0: never), so
    /// the orchestrator sees when traffic flows again for everybody.
    pub last_ack_ms: Arc<Vec<AtomicU64>>,
    pub epoch: Instant,
}

impl Shared {
    /// Whether every client has had a send acknowledged at or after `since`.
    pub fn all_acked_since(&self, since: Instant) -> bool {
        let mark = ms_since(self.epoch, since);
        self.last_ack_ms
            .iter()
            .all(|at| at.load(Ordering::SeqCst) >= mark.max(1))
    }
}

fn ms_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

pub struct ChaosClient {
    profile: Profile,
    shared: Shared,
    conn: Option<WsConn>,
    log: ClientLog,
    /// Highest seq per conversation below which everything has been seen.
    contiguous: BTreeMap<String, i64>,
    live_ids: HashSet<String>,
    last_live_from: HashMap<(String, String), i64>,
    last_live: HashMap<String, i64>,
    /// client_msg_id → index in `log.sends`.
    by_cmid: HashMap<String, usize>,
    requests: u64,
    counted_pending: bool,
    /// An `event: gap` came (seqs the server gave up publishing live): resume before going on.
    gap_told: bool,
}

impl ChaosClient {
    pub fn new(profile: Profile, shared: Shared) -> Self {
        let dm = client::dm(&profile.user.id, &profile.partner_id);
        let group = format!("g:{}", profile.group_id);
        let contiguous = [(dm, 0), (group, 0)].into_iter().collect();
        let log = ClientLog {
            idx: profile.idx,
            ..ClientLog::default()
        };
        Self {
            profile,
            shared,
            conn: None,
            log,
            contiguous,
            live_ids: HashSet::new(),
            last_live_from: HashMap::new(),
            last_live: HashMap::new(),
            by_cmid: HashMap::new(),
            requests: 0,
            counted_pending: false,
            gap_told: false,
        }
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.shared.deadline
    }

    /// The current phase, marked as seen so that `read_until` wakes only on the next change.
    fn phase(&mut self) -> Phase {
        *self.shared.phase.borrow_and_update()
    }

    /// Runs until the verify phase is over (or the deadline); returns what it saw.
    pub async fn run(mut self) -> ClientLog {
        let interval = Duration::from_secs_f64(1.0 / self.profile.rate.max(0.01));
        // Spread the clients' sends over the interval rather than all at once.
        let offset = interval.mul_f64((self.profile.idx % 97) as f64 / 97.0);
        let mut next_send = Instant::now() + offset;
        let mut pending: Option<usize> = None;
        let mut turn = 0u64;
        while !self.past_deadline() {
            let phase = self.phase();
            if pending.is_none() && phase >= Phase::Verify {
                break;
            }
            if self.conn.is_none() {
                self.connect().await;
                continue;
            }
            if self.gap_told {
                // As a client should: what was not pushed live is fetched with op 7.
                self.gap_told = false;
                self.resume().await;
                continue;
            }
            if let Some(p) = pending {
                match self.attempt(p).await {
                    Attempt::Acked | Attempt::Refused | Attempt::Unexpected(_) => {
                        pending = None;
                        self.set_pending(false);
                    }
                    Attempt::Failed => tokio::time::sleep(RETRY_PAUSE).await,
                    Attempt::TimedOut | Attempt::Dropped => {}
                }
                continue;
            }
            if phase == Phase::Send && Instant::now() >= next_send {
                pending = Some(self.new_send(turn));
                self.set_pending(true);
                turn += 1;
                // Keep the planned pace; after a long outage, do not burst to catch up.
                next_send = (next_send + interval).max(Instant::now());
                continue;
            }
            let wake = if phase == Phase::Send {
                next_send
            } else {
                Instant::now() + Duration::from_millis(100)
            };
            self.read_until(wake).await;
        }
        if self.phase() >= Phase::Verify && !self.profile.verify.is_empty() {
            self.verify().await;
        }
        if let Some(conn) = self.conn.take() {
            conn.sender.close().await;
        }
        self.set_pending(false);
        self.log
    }

    fn set_pending(&mut self, on: bool) {
        if on != self.counted_pending {
            if on {
                self.shared.pending.fetch_add(1, Ordering::SeqCst);
            } else {
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
            }
            self.counted_pending = on;
        }
    }

    fn new_send(&mut self, turn: u64) -> usize {
        let (target, conversation) = if turn.is_multiple_of(2) {
            (
                Target::Direct,
                client::dm(&self.profile.user.id, &self.profile.partner_id),
            )
        } else {
            (Target::Group, format!("g:{}", self.profile.group_id))
        };
        let client_msg_id = format!("{}-{}-{turn}", self.shared.run, self.profile.idx);
        let index = self.log.sends.len();
        self.log.sends.push(SendRecord {
            client_msg_id: client_msg_id.clone(),
            target,
            conversation,
            attempts: Vec::new(),
            ack: None,
            stored_by_earlier_attempt: false,
        });
        self.by_cmid.insert(client_msg_id, index);
        index
    }

    /// Writes the send and waits for its reply, reading everything else meanwhile.
    async fn attempt(&mut self, index: usize) -> Attempt {
        let record = &self.log.sends[index];
        let cmid = record.client_msg_id.clone();
        let content = format!("{cmid} chaos");
        let frame = match record.target {
            Target::Direct => {
                client::send_frame(op::SEND, &self.profile.partner_id, &content, &cmid)
            }
            Target::Group => {
                client::send_frame(op::GROUP_SEND, &self.profile.group_id, &content, &cmid)
            }
        };
        let sent_at = Instant::now();
        let sent_wall = chrono::Utc::now();
        let result = match self.request(&frame, &cmid, REPLY_TIMEOUT).await {
            Some(reply) => self.on_send_reply(index, &reply, sent_wall),
            None if self.conn.is_none() => Attempt::Dropped,
            None => Attempt::TimedOut,
        };
        self.log.sends[index].attempts.push(AttemptRecord {
            sent: sent_at,
            ended: Instant::now(),
            outcome: result,
        });
        result
    }

    fn on_send_reply(
        &mut self,
        index: usize,
        reply: &Reply,
        sent_wall: chrono::DateTime<chrono::Utc>,
    ) -> Attempt {
        match reply.code {
            code::DELIVERED | code::STORED_OFFLINE | code::OK => {
                let Some(message) = reply.message() else {
                    self.log
                        .anomalies
                        .push(format!("ack without a message: {reply:?}"));
                    return Attempt::Unexpected(reply.code);
                };
                let record = &mut self.log.sends[index];
                // Only an attempt whose socket closed before its reply counts: after a 50000 the
                // message may have been stored anyway (the server said "retry", not "nothing
                // stored"), and an attempt that timed out may simply have been slow.
                let unanswered =
                    record.attempts.last().map(|a| a.outcome) == Some(Attempt::Dropped);
                record.stored_by_earlier_attempt |=
                    unanswered && stored_before(&reply.data, sent_wall);
                let now = Instant::now();
                record.ack = Some(Ack {
                    id: message.id.clone(),
                    seq: message.seq,
                    at: now,
                });
                if let Some(slot) = self.shared.last_ack_ms.get(self.profile.idx) {
                    slot.store(ms_since(self.shared.epoch, now).max(1), Ordering::SeqCst);
                }
                self.record(&message, Via::Own);
                Attempt::Acked
            }
            code::FAILED => Attempt::Failed,
            code::REFUSED => Attempt::Refused,
            other => {
                self.log
                    .anomalies
                    .push(format!("send answered {other}: {}", reply.msg));
                Attempt::Unexpected(other)
            }
        }
    }

    /// Sends a request frame and waits for the reply carrying `cmid`. None when the socket went
    /// away (then `self.conn` is None) or nothing came in time.
    async fn request(&mut self, frame: &Value, cmid: &str, timeout: Duration) -> Option<Reply> {
        let conn = self.conn.as_ref()?;
        if conn.sender.send_json(frame).await.is_err() {
            self.lost_connection(None);
            return None;
        }
        let until = (Instant::now() + timeout).min(self.shared.deadline);
        loop {
            let item = self.next_item(until).await?;
            match item {
                Incoming::Reply { reply, .. } if reply.client_msg_id.as_deref() == Some(cmid) => {
                    return Some(reply);
                }
                other => self.handle(other),
            }
            self.conn.as_ref()?;
        }
    }

    /// The next item of the current connection, or None on timeout / no connection.
    async fn next_item(&mut self, until: Instant) -> Option<Incoming> {
        let conn = self.conn.as_mut()?;
        let wait = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, conn.incoming.recv()).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => {
                self.lost_connection(None);
                None
            }
            Err(_) => None,
        }
    }

    /// Reads (and records) whatever arrives until `until`, the connection drops, or the phase
    /// changes.
    async fn read_until(&mut self, until: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let phase = &mut self.shared.phase;
        let wait = until.saturating_duration_since(Instant::now());
        let item = tokio::select! {
            item = conn.incoming.recv() => Some(item),
            _ = tokio::time::sleep(wait) => None,
            _ = phase.changed() => None,
        };
        match item {
            Some(Some(item)) => self.handle(item),
            Some(None) => self.lost_connection(None),
            None => {}
        }
    }

    fn handle(&mut self, item: Incoming) {
        match item {
            Incoming::Message { message, .. } => self.record(&message, Via::Live),
            Incoming::Reply { reply, .. } => self.late_reply(&reply),
            Incoming::Other { frame, .. } if frame["event"] == "gap" => {
                tracing::debug!(idx = self.profile.idx, gap = %frame["data"], "told of a gap");
                self.gap_told = true;
            }
            Incoming::Other { .. } => {}
            Incoming::Closed { code, reason } => {
                tracing::debug!(idx = self.profile.idx, ?code, reason, "connection closed");
                self.lost_connection(code);
            }
        }
    }

    /// A reply to an earlier attempt that arrived after its retry was already answered (or
    /// after it timed out): it must name the same stored message.
    fn late_reply(&mut self, reply: &Reply) {
        let Some(index) = reply
            .client_msg_id
            .as_deref()
            .and_then(|c| self.by_cmid.get(c).copied())
        else {
            return;
        };
        if let (Some(ack), Some(message)) = (&self.log.sends[index].ack, reply.message())
            && (ack.id != message.id || ack.seq != message.seq)
        {
            let cmid = &self.log.sends[index].client_msg_id;
            self.log.seq_conflicts.push(format!(
                "{cmid} acknowledged as {} (seq {}) and again as {} (seq {})",
                ack.id, ack.seq, message.id, message.seq
            ));
        }
    }

    fn lost_connection(&mut self, code: Option<u16>) {
        if self.conn.take().is_some() {
            let key = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
            *self.log.closes.entry(key).or_default() += 1;
            self.log.drops.push((Instant::now(), code));
            if self.log.connected {
                self.log.connected = false;
                self.shared.connected.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Records a message however it arrived; tracks duplicates, order and contiguity.
    fn record(&mut self, message: &ChatMessage, via: Via) {
        let conversation = message.conversation.clone();
        let by_seq = self.log.seen.entry(conversation.clone()).or_default();
        match by_seq.get(&message.seq) {
            Some(existing) if existing.id != message.id => {
                self.log.seq_conflicts.push(format!(
                    "{conversation} seq {} holds {} and {}",
                    message.seq, existing.id, message.id
                ));
            }
            Some(_) => {}
            None => {
                by_seq.insert(
                    message.seq,
                    Seen {
                        id: message.id.clone(),
                        via,
                    },
                );
            }
        }
        if via == Via::Live {
            if !self.live_ids.insert(message.id.clone()) {
                self.log.live_duplicates.push(format!(
                    "{} ({conversation} seq {}) pushed live twice",
                    message.id, message.seq
                ));
            } else if message.kind != SYSTEM_TYPE {
                let key = (conversation.clone(), message.from.clone());
                let last = self.last_live_from.get(&key).copied().unwrap_or(0);
                if message.seq <= last {
                    self.log.out_of_order.push(format!(
                        "{conversation}: seq {} from user {} pushed after seq {last}",
                        message.seq, message.from
                    ));
                } else {
                    self.last_live_from.insert(key, message.seq);
                }
                let newest = self.last_live.entry(conversation.clone()).or_insert(0);
                if message.seq < *newest {
                    self.log.interleaved += 1;
                } else {
                    *newest = message.seq;
                }
            }
        }
        self.advance(&conversation);
    }

    fn advance(&mut self, conversation: &str) {
        let Some(by_seq) = self.log.seen.get(conversation) else {
            return;
        };
        let mark = self.contiguous.entry(conversation.to_owned()).or_insert(0);
        while by_seq.contains_key(&(*mark + 1)) {
            *mark += 1;
        }
    }

    /// Connects (or reconnects) to a live node and resumes; retries until it works or the
    /// deadline passes.
    async fn connect(&mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0usize;
        while !self.past_deadline() {
            let Some((_, port)) = self.shared.ports.pick(self.profile.home, attempt) else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            attempt += 1;
            let first = self.log.resumed_at.is_empty();
            let mut permit = if first {
                self.shared
                    .first_connects
                    .clone()
                    .acquire_owned()
                    .await
                    .ok()
            } else {
                None
            };
            let connected = client::connect(port, &self.profile.user.cookie).await;
            match connected {
                Ok(conn) => {
                    self.conn = Some(conn);
                    let resumed = self.resume().await;
                    permit = None;
                    if resumed {
                        self.log.resumed_at.push(Instant::now());
                        if !first {
                            self.log.reconnects += 1;
                        }
                        self.log.connected = true;
                        self.shared.connected.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    // The socket dropped or resume kept failing: start over.
                    if let Some(conn) = self.conn.take() {
                        conn.sender.close().await;
                    }
                }
                Err(err) if is_unauthorized(&err) => {
                    if self.login(port).await {
                        backoff = BACKOFF_MIN;
                        continue;
                    }
                }
                Err(err) => {
                    tracing::debug!(idx = self.profile.idx, port, error = %err, "connect failed");
                }
            }
            drop(permit);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A new login after the session was lost (a Redis that forgot everything).
    async fn login(&mut self, port: u16) -> bool {
        let http = match Http::new(port) {
            Ok(http) => http,
            Err(_) => return false,
        };
        match http.login(&self.profile.user.name, PASSWORD).await {
            Ok(user) => {
                self.profile.user.cookie = user.cookie;
                self.log.relogins += 1;
                true
            }
            Err(err) => {
                tracing::debug!(idx = self.profile.idx, error = %err, "login failed");
                false
            }
        }
    }

    /// op 7 from the contiguous marks, page after page. False when the connection dropped or
    /// the server kept failing until the deadline.
    async fn resume(&mut self) -> bool {
        let mut since = self.contiguous.clone();
        let mut pages = 0;
        while pages < MAX_PAGES && !self.past_deadline() {
            self.requests += 1;
            let cmid = format!("r{}-{}", self.profile.idx, self.requests);
            let frame = json!({"op_type": op::RESUME, "since": since, "client_msg_id": cmid});
            let Some(reply) = self.request(&frame, &cmid, REPLY_TIMEOUT).await else {
                return false;
            };
            if reply.code != code::OK {
                // A backend still down: the socket stays usable, ask again shortly.
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            pages += 1;
            for message in reply.messages() {
                self.record(&message, Via::Resume);
            }
            // The reply covers everything up to its `since` per conversation.
            let covered: BTreeMap<String, i64> =
                serde_json::from_value(reply.data["since"].clone()).unwrap_or_default();
            for (conversation, seq) in &covered {
                let mark = self.contiguous.entry(conversation.clone()).or_insert(0);
                *mark = (*mark).max(*seq);
                self.advance(conversation);
            }
            if reply.data["has_more"].as_bool() != Some(true) {
                return true;
            }
            since = covered;
        }
        false
    }

    /// op 2, newest page first, for every conversation assigned to this client.
    async fn verify(&mut self) {
        for conversation in self.profile.verify.clone() {
            let mut messages: Vec<ChatMessage> = Vec::new();
            let mut before: Option<i64> = None;
            let mut pages = 0;
            let mut complete = false;
            while pages < MAX_PAGES && !self.past_deadline() {
                if self.conn.is_none() {
                    self.connect().await;
                    continue;
                }
                self.requests += 1;
                let cmid = format!("h{}-{}", self.profile.idx, self.requests);
                let mut frame = json!({"op_type": op::HISTORY, "conversation": conversation,
                    "limit": HISTORY_PAGE, "client_msg_id": cmid});
                if let Some(before) = before {
                    frame["before_seq"] = json!(before);
                }
                let Some(reply) = self.request(&frame, &cmid, REPLY_TIMEOUT).await else {
                    continue;
                };
                if reply.code != code::OK {
                    self.log
                        .anomalies
                        .push(format!("history of {conversation}: {}", reply.code));
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                pages += 1;
                let page = reply.messages();
                let oldest = page.first().map(|m| m.seq);
                messages.extend(page);
                match (reply.data["has_more"].as_bool(), oldest) {
                    (Some(true), Some(oldest)) => before = Some(oldest),
                    _ => {
                        complete = true;
                        break;
                    }
                }
            }
            if complete {
                messages.sort_by_key(|m| m.seq);
                self.log.history.insert(conversation, messages);
            } else {
                // Left out: the checks then report it as not read, rather than finding every
                // message of a missing page "lost".
                self.log.anomalies.push(format!(
                    "history of {conversation} could not be read in full"
                ));
            }
        }
    }
}

/// Whether the acknowledged message was created before this attempt was written (with a few
/// milliseconds for the rounding of `created_at`).
fn stored_before(data: &Value, sent: chrono::DateTime<chrono::Utc>) -> bool {
    data["created_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|created| {
            created.with_timezone(&chrono::Utc) + chrono::Duration::milliseconds(5) < sent
        })
}

/// True when the WebSocket handshake was refused with 401 (the session is gone).
fn is_unauthorized(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<tungstenite::Error>(),
            Some(tungstenite::Error::Http(response)) if response.status().as_u16() == 401
        )
    })
}
