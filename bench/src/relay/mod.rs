//! The bare relay: the transport ceiling the server is compared with. A minimal actix-ws
//! forwarder with no authentication, storage, Redis or anti-spam, speaking the server's JSON
//! shapes so the same client code drives both:
//!
//! - `GET /ws?id=<user id>[&group=<group id>]` connects as that user (and joins that group);
//!   `{"op_type": 100, "to": "<group id>"}` joins a group later (reply 200).
//! - op 1 to a user id: forwarded as `event: message` to that user's connection and acked at
//!   once, 50004 (50005 when the user is not connected).
//! - op 6 to a group: handed to the group's task, which numbers it, queues it for every other
//!   member and then acks it (200): one task per group keeps every member's view of the group
//!   in one order, as the server's single writer does.
//!
//! Like the server, each socket has one task and a bounded outgoing queue. A group's task waits
//! for room in a member's queue (backpressure: the relay slows down rather than dropping); a
//! 1:1 forward never waits, and a reader too slow for it loses the event (counted, logged once).
//! Messages get a process-wide increasing `seq`, so a conversation's seq increases at every
//! receiver.

mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::AggregatedMessage;
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::client::{code, op};

pub use process::RelayProcess;

/// The op that joins a group (not a server op).
const OP_JOIN: i64 = 100;

#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: String,
    /// Worker threads, 0 = one per core (as the server's default).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Writes the bound port into this file once listening.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
}

type Outbox = mpsc::Sender<String>;

/// A group send waiting for the group's task.
struct GroupJob {
    from: String,
    frame: Frame,
}

struct Group {
    members: Arc<RwLock<Vec<String>>>,
    jobs: mpsc::UnboundedSender<GroupJob>,
}

#[derive(Default)]
struct Hub {
    users: RwLock<HashMap<String, Outbox>>,
    groups: RwLock<HashMap<String, Group>>,
    seq: AtomicU64,
    dropped: AtomicU64,
    /// Events queued per connection: the server's `ws.outbound_queue`.
    outbound_queue: usize,
}

impl Hub {
    fn outbox(&self, user: &str) -> Option<Outbox> {
        self.users.read().ok()?.get(user).cloned()
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn join(self: &Arc<Self>, user: &str, group: &str) {
        let Ok(mut groups) = self.groups.write() else {
            return;
        };
        let entry = groups.entry(group.to_owned()).or_insert_with(|| {
            let (jobs, rx) = mpsc::unbounded_channel();
            let members = Arc::new(RwLock::new(Vec::new()));
            tokio::spawn(group_task(
                self.clone(),
                group.to_owned(),
                members.clone(),
                rx,
            ));
            Group { members, jobs }
        });
        if let Ok(mut members) = entry.members.write()
            && !members.iter().any(|m| m == user)
        {
            members.push(user.to_owned());
        }
    }

    fn group_jobs(&self, group: &str) -> Option<mpsc::UnboundedSender<GroupJob>> {
        Some(self.groups.read().ok()?.get(group)?.jobs.clone())
    }

    /// Queues an event without waiting; false when the reader is gone or too slow.
    fn push_now(&self, outbox: &Outbox, event: String) -> bool {
        match outbox.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("relay: a reader is too slow for its 1:1 traffic; dropping");
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Deserialize)]
struct ConnectQuery {
    id: String,
    group: Option<String>,
}

#[derive(Deserialize)]
struct Frame {
    op_type: i64,
    #[serde(default)]
    to: Value,
    #[serde(default, rename = "type")]
    kind: Option<i64>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}

impl Frame {
    fn to(&self) -> String {
        match &self.to {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    }

    fn reply(&self, code: i64, msg: &str, data: Value) -> String {
        json!({"op_type": self.op_type, "code": code, "msg": msg, "data": data,
            "client_msg_id": self.client_msg_id})
        .to_string()
    }

    /// The message object, as the server's.
    fn message(&self, seq: u64, from: &str, conversation: String) -> Value {
        json!({"id": format!("{seq:024x}"), "conversation": conversation, "seq": seq,
            "from": from, "to": self.to(), "type": self.kind.unwrap_or(1),
            "content": self.content, "client_msg_id": self.client_msg_id})
    }
}

/// Serves until Ctrl-C.
pub async fn serve(args: RelayArgs) -> Result<()> {
    let hub = web::Data::new(Hub {
        outbound_queue: crate::server_conf::outbound_queue()?,
        ..Hub::default()
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(hub.clone())
            .route("/ws", web::get().to(upgrade))
    })
    .disable_signals()
    .shutdown_timeout(1);
    if args.workers > 0 {
        server = server.workers(args.workers);
    }
    let server = server
        .bind(&args.addr)
        .with_context(|| format!("binding {}", args.addr))?;
    let port = server
        .addrs()
        .first()
        .map(|a| a.port())
        .ok_or_else(|| anyhow!("the relay bound no address"))?;
    tracing::info!(port, "relay listening");
    if let Some(file) = &args.port_file {
        std::fs::write(file, port.to_string())
            .with_context(|| format!("writing {}", file.display()))?;
    }
    let running = server.run();
    let handle = running.handle();
    tokio::select! {
        res = running => res?,
        _ = tokio::signal::ctrl_c() => handle.stop(false).await,
    }
    Ok(())
}

/// `loadgen relay`: serves until Ctrl-C.
pub async fn run_standalone(args: RelayArgs) -> Result<()> {
    serve(args).await
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<ConnectQuery>,
    hub: web::Data<Hub>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let ConnectQuery { id, group } = query.into_inner();
    let hub = hub.into_inner();
    let (tx, rx) = mpsc::channel(hub.outbound_queue);
    if let Ok(mut users) = hub.users.write() {
        users.insert(id.clone(), tx.clone());
    }
    if let Some(group) = group {
        hub.join(&id, &group);
    }
    actix_web::rt::spawn(connection(hub, id, session, stream, tx, rx));
    Ok(response)
}

async fn connection(
    hub: Arc<Hub>,
    me: String,
    mut session: actix_ws::Session,
    stream: actix_ws::MessageStream,
    mine: Outbox,
    mut outbox: mpsc::Receiver<String>,
) {
    let mut stream = stream.aggregate_continuations();
    loop {
        tokio::select! {
            event = outbox.recv() => {
                let Some(event) = event else { break };
                if session.text(event).await.is_err() {
                    break;
                }
            }
            frame = stream.recv() => match frame {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    if let Some(reply) = handle(&hub, &me, &text)
                        && session.text(reply).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    if let Ok(mut users) = hub.users.write()
        && users.get(&me).is_some_and(|o| o.same_channel(&mine))
    {
        users.remove(&me);
    }
    outbox.close();
    let _ = session.close(None).await;
}

/// Handles one frame; returns the reply to write now (group sends are acked by their group's
/// task, through the sender's queue).
fn handle(hub: &Arc<Hub>, me: &str, text: &str) -> Option<String> {
    let frame: Frame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(err) => {
            return Some(
                json!({"op_type": 0, "code": code::BAD_FRAME, "msg": err.to_string(),
                "data": null, "client_msg_id": null})
                .to_string(),
            );
        }
    };
    let to = frame.to();
    match frame.op_type {
        op::SEND => {
            let message = frame.message(hub.next_seq(), me, crate::client::dm(me, &to));
            let event = json!({"event": "message", "data": &message}).to_string();
            let online = hub.outbox(&to).is_some_and(|o| hub.push_now(&o, event));
            Some(if online {
                frame.reply(code::DELIVERED, "delivered", message)
            } else {
                frame.reply(code::STORED_OFFLINE, "stored; recipient offline", message)
            })
        }
        op::GROUP_SEND => match hub.group_jobs(&to) {
            Some(jobs) => {
                let job = GroupJob {
                    from: me.to_owned(),
                    frame,
                };
                // Unbounded: a connection never waits for a group (the group may be waiting
                // for this connection's own queue).
                jobs.send(job).ok().map(|()| None).unwrap_or_else(|| {
                    Some(json!({"op_type": op::GROUP_SEND, "code": code::FAILED, "msg": "group gone"}).to_string())
                })
            }
            None => Some(frame.reply(code::NOT_FOUND, "no such group", Value::Null)),
        },
        OP_JOIN => {
            hub.join(me, &to);
            Some(frame.reply(code::OK, "ok", Value::Null))
        }
        _ => Some(frame.reply(code::BAD_FRAME, "unknown op_type", Value::Null)),
    }
}

/// One per group: numbers its messages, queues each for every member but the sender (waiting
/// for room), then acks it to the sender.
async fn group_task(
    hub: Arc<Hub>,
    group: String,
    members: Arc<RwLock<Vec<String>>>,
    mut jobs: mpsc::UnboundedReceiver<GroupJob>,
) {
    while let Some(GroupJob { from, frame }) = jobs.recv().await {
        let message = frame.message(hub.next_seq(), &from, format!("g:{group}"));
        let event = json!({"event": "message", "data": &message}).to_string();
        let outboxes: Vec<Outbox> = {
            let members = members.read().map(|m| m.clone()).unwrap_or_default();
            let users = hub.users.read();
            match users {
                Ok(users) => members
                    .iter()
                    .filter(|m| **m != from)
                    .filter_map(|m| users.get(m).cloned())
                    .collect(),
                Err(_) => Vec::new(),
            }
        };
        for outbox in outboxes {
            // A closed queue is a member who left: nothing to wait for.
            let _ = outbox.send(event.clone()).await;
        }
        if let Some(sender) = hub.outbox(&from) {
            let _ = sender.send(frame.reply(code::OK, "ok", message)).await;
        }
    }
}
