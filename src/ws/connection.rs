//! One task per socket. It selects over: a kick (slow consumer, revoked session, shutdown; the ops
//! in flight are still finished and answered before the close), the next reply, events queued by
//! the hub, the next frame, and the heartbeat.
//!
//! Ops in flight ([`Pipeline`]): up to `ws.pipeline_depth` sends (op 1, 6) at once, checked and
//! queued for storage in the order they arrived (ws::order), so a user's messages keep the order
//! they were typed in while their storage overlaps. Any other op waits until the ops before it
//! are answered and runs alone. Replies always go out in request order.

use std::time::Duration;

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use tokio::time::{Instant, interval_at};

use crate::antispam::local::{LocalLimiter, Verdict};
use crate::error::AppError;
use crate::hub::{Attached, Kick};
use crate::ws::ops::{self, OpCtx};
use crate::ws::order::Order;
use crate::ws::protocol::{self, Limits, Reply, Request};
use crate::ws::slots::Slot;

/// How long a close frame may take to go out before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[tracing::instrument(name = "ws", skip_all, fields(user_id = %ctx.user, conn = %ctx.conn_id))]
pub async fn run(
    ctx: OpCtx,
    mut socket: Session,
    stream: actix_ws::MessageStream,
    attached: Attached,
    // Held for as long as the socket lives: its place under the connection caps.
    _slot: Slot,
) {
    let settings = ctx.state.settings.clone();
    let max_frame = settings.ws.max_frame_bytes;
    let mut stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let limits = Limits {
        max_content_chars: settings.messages.max_content_chars,
        history_default_limit: i64::from(settings.messages.history_default_limit),
        history_max_limit: i64::from(settings.messages.history_max_limit),
    };
    let Attached {
        conn_id,
        mut events,
        mut kicks,
    } = attached;
    let beat = Duration::from_secs(settings.ws.heartbeat_secs);
    let timeout = Duration::from_secs(settings.ws.client_timeout_secs);
    let mut heartbeat = interval_at(Instant::now() + beat, beat);
    let mut last_heard = Instant::now();
    let mut inflight = Pipeline::new(settings.ws.pipeline_depth);
    let mut local_limit =
        LocalLimiter::new(&settings.antispam, ctx.state.antispam.is_exempt(ctx.user));
    tracing::debug!("connected");

    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            kick = kicks.recv() => break kick.map(kick_reason),
            Some(reply) = inflight.running.next(), if !inflight.running.is_empty() => {
                inflight.answered(&ctx);
                // Frames (pongs too) are not read while the pipeline is full; a slow backend is
                // not the client's silence.
                last_heard = Instant::now();
                if let Err(stop) = write(&mut kicks, timeout, socket.text(reply.to_text())).await {
                    break stop;
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break None };
                if let Err(stop) = write(&mut kicks, timeout, socket.text(event.to_string())).await {
                    break stop;
                }
            }
            frame = stream.recv(), if inflight.reading() => {
                last_heard = Instant::now();
                match frame {
                    None => break None,
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        let parsed = protocol::parse(&text, &limits);
                        let (op_type, client_msg_id) = match &parsed {
                            Ok(r) => (r.op_type, r.client_msg_id.clone()),
                            Err(bad) => (bad.op_type, bad.client_msg_id.clone()),
                        };
                        // The local first line comes before any backend work.
                        let reply = match (local_limit.check(), parsed) {
                            (Verdict::Close, _) => break Some(abuse_reason()),
                            (Verdict::Refuse { retry_after_secs }, _) => {
                                ctx.state.metrics.refused("local");
                                let error = AppError::Throttled { rule: "local".into(), retry_after_secs };
                                Reply::error(op_type, client_msg_id, &error)
                            }
                            (Verdict::Pass, Ok(request)) => {
                                inflight.start(&ctx, request);
                                continue;
                            }
                            (Verdict::Pass, Err(bad)) => Reply::error(bad.op_type, bad.client_msg_id, &bad.error),
                        };
                        if let Some(reply) = inflight.in_turn(reply)
                            && let Err(stop) = write(&mut kicks, timeout, socket.text(reply.to_text())).await
                        {
                            break stop;
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let error = match local_limit.check() {
                            Verdict::Close => break Some(abuse_reason()),
                            Verdict::Refuse { retry_after_secs } => AppError::Throttled { rule: "local".into(), retry_after_secs },
                            Verdict::Pass => AppError::BadRequest("binary frames are not supported; send JSON text frames".into()),
                        };
                        if let Some(reply) = inflight.in_turn(Reply::error(0, None, &error))
                            && let Err(stop) = write(&mut kicks, timeout, socket.text(reply.to_text())).await
                        {
                            break stop;
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if let Err(stop) = write(&mut kicks, timeout, socket.pong(&bytes)).await {
                            break stop;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(reason))) => {
                        tracing::debug!(?reason, "client closed");
                        break Some(CloseReason { code: CloseCode::Normal, description: None });
                    }
                    Some(Err(err)) => break Some(protocol_error_reason(&err)),
                }
            }
            _ = heartbeat.tick() => {
                // A slow backend is not the client's silence.
                if inflight.running.is_empty() && last_heard.elapsed() > timeout {
                    break Some(CloseReason { code: CloseCode::Away, description: Some("heartbeat timeout".into()) });
                }
                if let Err(stop) = write(&mut kicks, timeout, socket.ping(b"")).await {
                    break stop;
                }
            }
        }
    };
    ctx.state.hub.detach(ctx.user, &conn_id);
    if close.is_some() && !inflight.running.is_empty() {
        // The ops in flight (sends being stored, say) finish and are answered before the close,
        // so the client knows whether they went through instead of having to guess. A parked op
        // never started: the client gets no reply for it.
        let grace = tokio::time::sleep(Duration::from_secs(settings.server.shutdown_timeout_secs));
        tokio::pin!(grace);
        loop {
            let reply = tokio::select! {
                reply = inflight.running.next() => reply,
                () = &mut grace => None,
            };
            let Some(reply) = reply else { break };
            if tokio::time::timeout(CLOSE_GRACE, socket.text(reply.to_text()))
                .await
                .is_err()
            {
                break;
            }
        }
    }
    if let Some(reason) = close {
        tracing::debug!(code = ?reason.code, "closing");
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(Some(reason))).await;
    }
}

/// The ops of one connection in flight, answered in request order.
struct Pipeline {
    running: FuturesOrdered<LocalBoxFuture<'static, Reply>>,
    /// The op running is not a send: nothing starts beside it.
    exclusive: bool,
    /// An op that is not a send, read while sends were in flight: it starts once they are
    /// answered (no frame is read meanwhile).
    parked: Option<Request>,
    depth: usize,
    /// Made on the connection's first send.
    order: Option<Order>,
}

impl Pipeline {
    fn new(depth: usize) -> Self {
        Self {
            running: FuturesOrdered::new(),
            exclusive: false,
            parked: None,
            depth,
            order: None,
        }
    }

    /// Whether the next frame may be read.
    fn reading(&self) -> bool {
        !self.exclusive && self.parked.is_none() && self.running.len() < self.depth
    }

    fn start(&mut self, ctx: &OpCtx, request: Request) {
        if request.op.is_send() {
            let ticket = self.order.get_or_insert_with(Order::default).ticket();
            self.running
                .push_back(Box::pin(ops::execute(ctx.clone(), request, Some(ticket))));
        } else if self.running.is_empty() {
            self.exclusive = true;
            self.running
                .push_back(Box::pin(ops::execute(ctx.clone(), request, None)));
        } else {
            self.parked = Some(request);
        }
    }

    /// A reply known at once (a bad frame, a refusal): it goes out now if nothing is in flight,
    /// otherwise it waits for the replies before it (`None`).
    fn in_turn(&mut self, reply: Reply) -> Option<Reply> {
        if self.running.is_empty() {
            return Some(reply);
        }
        self.running.push_back(Box::pin(std::future::ready(reply)));
        None
    }

    /// After a reply: a parked op starts once everything before it is answered.
    fn answered(&mut self, ctx: &OpCtx) {
        if self.running.is_empty() {
            self.exclusive = false;
            if let Some(request) = self.parked.take() {
                self.start(ctx, request);
            }
        }
    }
}

/// Sends a frame, giving up when a kick arrives meanwhile or when the client has not taken it
/// within `timeout` (a client that does not read would otherwise hold this task, its queue and
/// its connection slot forever). Err carries the close reason, if any.
async fn write(
    kicks: &mut tokio::sync::mpsc::Receiver<Kick>,
    timeout: Duration,
    send: impl Future<Output = Result<(), actix_ws::Closed>>,
) -> Result<(), Option<CloseReason>> {
    tokio::select! {
        sent = tokio::time::timeout(timeout, send) => match sent {
            Ok(sent) => sent.map_err(|_| None),
            Err(_) => Err(Some(CloseReason {
                code: CloseCode::Away,
                description: Some("not reading".into()),
            })),
        },
        kick = kicks.recv() => Err(kick.map(kick_reason)),
    }
}

/// Too many frames refused in a row by the local limiter.
fn abuse_reason() -> CloseReason {
    CloseReason {
        code: CloseCode::Policy,
        description: Some("too many requests".into()),
    }
}

fn kick_reason(kick: Kick) -> CloseReason {
    let (code, text) = match kick {
        Kick::SlowConsumer => (CloseCode::Again, "too slow to read; reconnect and resume"),
        Kick::Revoked => (CloseCode::Policy, "session revoked"),
        Kick::Restart => (
            CloseCode::Restart,
            "server restarting; reconnect and resume",
        ),
    };
    CloseReason {
        code,
        description: Some(text.into()),
    }
}

fn protocol_error_reason(err: &ProtocolError) -> CloseReason {
    let too_big = match err {
        ProtocolError::Overflow => true,
        ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    };
    // actix-ws reports a text frame that is not UTF-8 as invalid data; RFC 6455 closes with 1007.
    let not_utf8 =
        matches!(err, ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData);
    if too_big {
        CloseReason {
            code: CloseCode::Size,
            description: Some("frame too large".into()),
        }
    } else if not_utf8 {
        CloseReason {
            code: CloseCode::Invalid,
            description: Some("text frames must be UTF-8".into()),
        }
    } else {
        tracing::debug!(error = %err, "protocol error");
        CloseReason {
            code: CloseCode::Protocol,
            description: Some("protocol error".into()),
        }
    }
}
