//! A simulated device: one WebSocket that sends with a window of unacked messages (or at a paced
//! rate), feeds everything it receives into the current [`Ledger`], and behaves like a real
//! client when the server closes it (slow reader 1013, restart 1012): it reconnects, resumes with
//! op 7 from the last seq it saw per conversation, and resends its unanswered sends with their
//! original `client_msg_id`. Live events that arrive while the resume is in flight are held back
//! and only those past the resumed seq are kept, as a client ordering by seq would.
//!
//! Against the bare relay (no resume) a closed socket simply ends the peer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use crate::client::{self, ChatMessage, Incoming, WsConn, WsSender, op};
use crate::ledger::{Ledger, ReceiverId, Recipients};

/// How often a reconnect is attempted before the peer gives up.
const RECONNECT_ATTEMPTS: u32 = 20;
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// Where a peer connects.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A chat-server process, as this user (session cookie).
    Server { port: u16, cookie: String },
    /// The bare relay, as this id.
    Relay { url: String },
}

impl Endpoint {
    async fn connect(&self) -> Result<WsConn> {
        match self {
            Endpoint::Server { port, cookie } => client::connect(*port, cookie).await,
            Endpoint::Relay { url } => client::connect_url(url, None).await,
        }
    }

    fn resumes(&self) -> bool {
        matches!(self, Endpoint::Server { .. })
    }
}

struct State {
    ledger: Arc<Ledger>,
    receiver: ReceiverId,
    /// Sends without a reply: their frames, to resend after a reconnect.
    inflight: HashMap<String, Value>,
    /// Last seq seen per conversation, for op 7.
    since: BTreeMap<String, i64>,
}

/// One simulated device. Cheap to share (`Arc<Peer>`).
pub struct Peer {
    /// The user id (server) or relay id.
    pub user_id: String,
    endpoint: Endpoint,
    state: Mutex<State>,
    sender: watch::Sender<Option<WsSender>>,
    window: Semaphore,
    closing: AtomicBool,
    reconnects: AtomicU64,
    gone: AtomicBool,
}

impl Peer {
    /// Connects and starts the reader. `receiver` is this device in `ledger`.
    pub async fn connect(
        user_id: &str,
        endpoint: Endpoint,
        ledger: Arc<Ledger>,
        receiver: ReceiverId,
    ) -> Result<Arc<Peer>> {
        let conn = endpoint.connect().await?;
        let (sender, _) = watch::channel(Some(conn.sender.clone()));
        let peer = Arc::new(Peer {
            user_id: user_id.to_owned(),
            endpoint,
            state: Mutex::new(State {
                ledger,
                receiver,
                inflight: HashMap::new(),
                since: BTreeMap::new(),
            }),
            sender,
            window: Semaphore::new(0),
            closing: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        });
        tokio::spawn(read_loop(peer.clone(), conn));
        Ok(peer)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points the peer at another ledger (a new measurement) as this receiver.
    pub fn use_ledger(&self, ledger: Arc<Ledger>, receiver: ReceiverId) {
        let mut state = self.state();
        state.ledger = ledger;
        state.receiver = receiver;
        state.inflight.clear();
    }

    /// Sets the window of unacked sends for [`Peer::send_windowed`].
    pub fn set_window(&self, window: usize) {
        let available = self.window.available_permits();
        if window > available {
            self.window.add_permits(window - available);
        } else {
            let _ = self
                .window
                .try_acquire_many((available - window) as u32)
                .map(|p| p.forget());
        }
    }

    /// How often the socket was reopened.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// True once the peer gave up (or, on the relay, its socket closed).
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Sends a text message (op 1 to a user, or op 6 to a group) once a window slot is free.
    pub async fn send_windowed(&self, target: &Target, recipients: &Recipients) -> Result<()> {
        let permit = self
            .window
            .acquire()
            .await
            .map_err(|_| anyhow!("window closed"))?;
        permit.forget();
        self.send_at(target, recipients, Instant::now()).await
    }

    /// Sends now, recording `at` as the send time (the intended time of a paced send).
    pub async fn send_at(
        &self,
        target: &Target,
        recipients: &Recipients,
        at: Instant,
    ) -> Result<()> {
        let frame = {
            let mut state = self.state();
            let id = state.ledger.send_at(recipients, at);
            // The send time travels in the content too, for anybody reading the stored messages.
            let content = format!("bench {id} t={}", chrono::Utc::now().timestamp_micros());
            let frame = match target {
                Target::User(to) => client::send_frame(op::SEND, to, &content, &id),
                Target::Group(group) => client::send_frame(op::GROUP_SEND, group, &content, &id),
            };
            state.inflight.insert(id, frame.clone());
            frame
        };
        let sender = self.sender.borrow().clone();
        if let Some(sender) = sender {
            // A closed socket is fine: the reader reconnects and resends what is in flight.
            let _ = sender.send_json(&frame).await;
        }
        Ok(())
    }

    /// Sends any frame (not recorded in the ledger).
    pub async fn send_raw(&self, frame: &Value) -> Result<()> {
        let sender = self.sender.borrow().clone();
        match sender {
            Some(sender) => sender.send_json(frame).await,
            None => Err(anyhow!("not connected")),
        }
    }

    /// Closes the socket for good.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let sender = self.sender.borrow().clone();
        if let Some(sender) = sender {
            sender.close().await;
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum Target {
    User(String),
    Group(String),
}

async fn read_loop(peer: Arc<Peer>, mut conn: WsConn) {
    // While a resume is in flight: its id, and the live messages held back meanwhile.
    let mut resuming: Option<(String, Vec<(ChatMessage, Instant)>)> = None;
    let mut resume_count = 0u64;
    loop {
        let Some(item) = conn.incoming.recv().await else {
            break;
        };
        match item {
            Incoming::Message { message, at } => match &mut resuming {
                Some((_, held)) => held.push((message, at)),
                None => deliver(&peer, &message, at),
            },
            Incoming::Reply { reply, at } => {
                let resumed = resuming
                    .as_ref()
                    .is_some_and(|(id, _)| reply.client_msg_id.as_deref() == Some(id.as_str()));
                if resumed {
                    for message in reply.messages() {
                        deliver(&peer, &message, at);
                    }
                    if reply.data["has_more"].as_bool() == Some(true) {
                        resume_count += 1;
                        let id = format!("resume-{resume_count}");
                        let since = peer.state().since.clone();
                        let _ = conn.sender.resume(&since, &id).await;
                        if let Some((pending, _)) = &mut resuming {
                            *pending = id;
                        }
                        continue;
                    }
                    if let Some((_, held)) = resuming.take() {
                        for (message, at) in held {
                            let seen = peer.state().since.get(&message.conversation).copied();
                            if seen.is_none_or(|seq| message.seq > seq) {
                                deliver(&peer, &message, at);
                            }
                        }
                    }
                    continue;
                }
                let answered = {
                    let mut state = peer.state();
                    state.ledger.reply(&reply, at);
                    reply
                        .client_msg_id
                        .as_deref()
                        .and_then(|id| state.inflight.remove(id))
                        .is_some()
                };
                if answered {
                    peer.window.add_permits(1);
                }
            }
            Incoming::Other { .. } => {}
            Incoming::Closed { code, reason } => {
                if peer.closing.load(Ordering::Relaxed) || !peer.endpoint.resumes() {
                    break;
                }
                tracing::debug!(user = %peer.user_id, ?code, %reason, "peer reconnecting");
                let _ = peer.sender.send(None);
                match reconnect(&peer).await {
                    Some(new) => conn = new,
                    None => break,
                }
                peer.reconnects.fetch_add(1, Ordering::Relaxed);
                resume_count += 1;
                let id = format!("resume-{resume_count}");
                let (since, frames): (BTreeMap<String, i64>, Vec<Value>) = {
                    let state = peer.state();
                    (
                        state.since.clone(),
                        state.inflight.values().cloned().collect(),
                    )
                };
                let _ = conn.sender.resume(&since, &id).await;
                resuming = Some((id, Vec::new()));
                for frame in frames {
                    let _ = conn.sender.send_json(&frame).await;
                }
                let _ = peer.sender.send(Some(conn.sender.clone()));
            }
        }
    }
    peer.gone.store(true, Ordering::Relaxed);
    // Unblock a sender waiting for a window slot.
    peer.window.close();
}

async fn reconnect(peer: &Peer) -> Option<WsConn> {
    for attempt in 1..=RECONNECT_ATTEMPTS {
        if peer.closing.load(Ordering::Relaxed) {
            return None;
        }
        match peer.endpoint.connect().await {
            Ok(conn) => return Some(conn),
            Err(err) => {
                tracing::debug!(user = %peer.user_id, attempt, error = %err, "reconnect failed");
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    tracing::warn!(user = %peer.user_id, "peer gave up reconnecting");
    None
}

fn deliver(peer: &Peer, message: &ChatMessage, at: Instant) {
    let mut state = peer.state();
    let last = state.since.get(&message.conversation).copied().unwrap_or(0);
    if message.seq > last {
        state
            .since
            .insert(message.conversation.clone(), message.seq);
    }
    let receiver = state.receiver;
    state.ledger.deliver(receiver, message, at);
}
