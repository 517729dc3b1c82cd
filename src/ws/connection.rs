//! One task per socket. It selects over: a kick (slow consumer, revoked session, shutdown; the op
//! in flight is still finished and answered before the close), the reply of the op in flight, events queued by the hub, the next frame (read only while no op is
//! in flight: ops of one connection run in order, which keeps a user's messages in the order
//! they were typed), and the heartbeat.

use std::time::Duration;

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use futures_util::future::LocalBoxFuture;
use tokio::time::{Instant, interval_at};

use crate::antispam::local::{LocalLimiter, Verdict};
use crate::error::AppError;
use crate::hub::{Attached, Kick};
use crate::ws::ops::{self, OpCtx};
use crate::ws::protocol::{self, Limits, Reply};
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
    let mut inflight: Option<LocalBoxFuture<'static, Reply>> = None;
    let mut local_limit =
        LocalLimiter::new(&settings.antispam, ctx.state.antispam.is_exempt(ctx.user));
    tracing::debug!("connected");

    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            kick = kicks.recv() => break kick.map(kick_reason),
            reply = next_reply(&mut inflight), if inflight.is_some() => {
                inflight = None;
                // Frames (pongs too) are not read while an op runs; a slow backend is not the
                // client's silence.
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
            frame = stream.recv(), if inflight.is_none() => {
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
                                inflight = Some(Box::pin(ops::execute(ctx.clone(), request)));
                                continue;
                            }
                            (Verdict::Pass, Err(bad)) => Reply::error(bad.op_type, bad.client_msg_id, &bad.error),
                        };
                        if let Err(stop) = write(&mut kicks, timeout, socket.text(reply.to_text())).await {
                            break stop;
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let error = match local_limit.check() {
                            Verdict::Close => break Some(abuse_reason()),
                            Verdict::Refuse { retry_after_secs } => AppError::Throttled { rule: "local".into(), retry_after_secs },
                            Verdict::Pass => AppError::BadRequest("binary frames are not supported; send JSON text frames".into()),
                        };
                        if let Err(stop) = write(&mut kicks, timeout, socket.text(Reply::error(0, None, &error).to_text())).await {
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
                // Frames are not read while an op runs: a slow backend is not the client's silence.
                if inflight.is_none() && last_heard.elapsed() > timeout {
                    break Some(CloseReason { code: CloseCode::Away, description: Some("heartbeat timeout".into()) });
                }
                if let Err(stop) = write(&mut kicks, timeout, socket.ping(b"")).await {
                    break stop;
                }
            }
        }
    };
    ctx.state.hub.detach(ctx.user, &conn_id);
    if close.is_some()
        && let Some(op) = inflight.take()
    {
        // The op in flight (a send being stored, say) finishes and is answered before the close,
        // so the client knows whether it went through instead of having to guess.
        let grace = Duration::from_secs(settings.server.shutdown_timeout_secs);
        if let Ok(reply) = tokio::time::timeout(grace, op).await {
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.text(reply.to_text())).await;
        }
    }
    if let Some(reason) = close {
        tracing::debug!(code = ?reason.code, "closing");
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(Some(reason))).await;
    }
}

async fn next_reply(inflight: &mut Option<LocalBoxFuture<'static, Reply>>) -> Reply {
    match inflight {
        Some(op) => op.await,
        None => std::future::pending().await,
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
