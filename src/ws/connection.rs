//! One task per socket. It selects over: a kick (slow consumer, revoked session, shutdown; the ops
//! in flight are still finished and answered before the close), the next reply, the next frame,
//! and the heartbeat. Everything it sends, and every event the hub delivers, goes through the
//! connection's bounded outbound queue (hub::outbound), which never makes anybody wait: a
//! client that lets it fill is disconnected with 1013.
//!
//! Ops in flight ([`Pipeline`]): up to `ws.pipeline_depth` sends (op 1, 6) at once, checked and
//! queued for storage in the order they arrived (ws::order), so a user's messages keep the order
//! they were typed in while their storage overlaps. Any other op waits until the ops before it
//! are answered and runs alone. Replies always go out in request order.

use std::time::Duration;

use std::sync::Arc;

use actix_web::body::BodyStream;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, MessageStream, ProtocolError};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use tokio::time::{Instant, interval_at};

use crate::antispam::local::{LocalLimiter, Verdict};
use crate::config::WsSettings;
use crate::error::{AppError, AppResult};
use crate::hub::outbound::{Frame, Outbound, Refused};
use crate::hub::{Attached, Kick};
use crate::peer::slots::Slot;
use crate::ws::ops::{self, OpCtx};
use crate::ws::order::Order;
use crate::ws::protocol::{self, Limits, Reply, Request};

/// The WebSocket handshake: the 101 response, whose body sends the frames of the returned
/// outbound queue (bounded by `ws.outbound_queue` frames and `ws.max_outbound_bytes` bytes),
/// and the client's frames.
pub(crate) fn handle(
    req: &HttpRequest,
    body: web::Payload,
    settings: &WsSettings,
) -> AppResult<(HttpResponse, Arc<Outbound>, MessageStream)> {
    let (response, _unbounded, stream) = actix_ws::handle(req, body)
        .map_err(|e| AppError::BadRequest(format!("expected a WebSocket upgrade: {e}").into()))?;
    let outbound = Outbound::new(settings.outbound_queue.get(), settings.max_outbound_bytes);
    let response = response
        .set_body(BodyStream::new(outbound.body()))
        .map_into_boxed_body();
    Ok((response, outbound, stream))
}

/// Ends the outbound queue however the task ends (a panic included), so the registry can
/// tell a dead connection and the client's response ends.
struct EndOnDrop(Arc<Outbound>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[tracing::instrument(name = "ws", skip_all, fields(user_id = %ctx.user, conn = %ctx.conn_id))]
pub(crate) async fn run(
    ctx: OpCtx,
    outbound: Arc<Outbound>,
    stream: MessageStream,
    attached: Attached,
    // Held for as long as the socket lives: its place under the connection caps.
    _slot: Slot,
) {
    let _end = EndOnDrop(outbound.clone());
    let settings = ctx.state.settings.clone();
    let max_frame = settings.ws.max_frame_bytes;
    let mut stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let limits = Limits::from_settings(&settings);
    let Attached { conn_id, mut kicks } = attached;
    let beat = Duration::from_secs(settings.ws.heartbeat_secs.get());
    let timeout = Duration::from_secs(settings.ws.client_timeout_secs);
    let mut heartbeat = interval_at(Instant::now() + beat, beat);
    let mut last_heard = Instant::now();
    let mut inflight = Pipeline::new(settings.ws.pipeline_depth.get());
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
                if let Err(stop) = send(&outbound, Frame::Reply(reply.to_text())) {
                    break stop;
                }
            }
            // The queue is full of frames: the client reads more slowly than it sends.
            () = outbound.taken(), if !outbound.has_room() => {}
            frame = stream.recv(), if inflight.reading() && outbound.has_room() => {
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
                            && let Err(stop) = send(&outbound, Frame::Reply(reply.to_text()))
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
                            && let Err(stop) = send(&outbound, Frame::Reply(reply.to_text()))
                        {
                            break stop;
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if let Err(stop) = send(&outbound, Frame::Pong(bytes)) {
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
                if let Err(stop) = send(&outbound, Frame::Ping(Bytes::new())) {
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
            // A client too slow for these too just does not get them: the close follows.
            if outbound.push(Frame::Reply(reply.to_text())).is_err() {
                break;
            }
        }
    }
    match close {
        Some(reason) => {
            tracing::debug!(code = ?reason.code, "closing");
            outbound.close(Some(reason));
        }
        None => outbound.end(),
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

/// Queues a frame for the socket. Err carries the close reason: the queue is full (the client
/// reads too slowly: 1013, as for events), or none when the connection is already gone.
fn send(outbound: &Outbound, frame: Frame) -> Result<(), Option<CloseReason>> {
    match outbound.push(frame) {
        Ok(()) => Ok(()),
        Err(Refused::Full) => Err(Some(kick_reason(Kick::SlowConsumer))),
        Err(Refused::Closed) => Err(None),
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
