//! One connection's outbound queue: the replies and events waiting to go out on its socket,
//! bounded in frames (`ws.outbound_queue`) and in bytes (`ws.max_outbound_bytes`). A frame's
//! bytes count from when it is queued until the socket's response body has handed the last of
//! it to the HTTP layer, in chunks of [`CHUNK_BYTES`] that layer takes only as its write buffer
//! goes out to the socket. A
//! frame that would exceed either bound is refused ([`Refused::Full`]): the client reads too
//! slowly and is disconnected (1013), so a socket that never reads pins at most the bound.
//! Closing empties the queue at once, whether or not the client ever reads again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use actix_codec::Encoder;
use actix_http::ws::{CloseReason, Codec, Message};
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;

/// The most of an encoded frame handed to the HTTP layer at once. It takes more only while its
/// write buffer (32 KiB by default) is below its limit, so a frame's bytes are released about
/// as fast as they reach the socket, whatever the size of the frame.
const CHUNK_BYTES: usize = 16 * 1024;

/// The longest header of a frame the server sends (unmasked, 64-bit length): counted with
/// each frame's payload, so even empty frames are not free.
const FRAME_HEADER_MAX: usize = 10;

/// One frame to send.
#[derive(Debug)]
pub(crate) enum Frame {
    /// An event, shared by every connection it goes to.
    Event(Arc<str>),
    /// A reply, this connection's own.
    Reply(String),
    Ping(Bytes),
    Pong(Bytes),
}

impl Frame {
    fn cost(&self) -> usize {
        FRAME_HEADER_MAX
            + match self {
                Self::Event(text) => text.len(),
                Self::Reply(text) => text.len(),
                Self::Ping(bytes) | Self::Pong(bytes) => bytes.len(),
            }
    }

    fn into_message(self) -> Message {
        match self {
            Self::Event(text) => Message::Text((*text).into()),
            Self::Reply(text) => Message::Text(text.into()),
            Self::Ping(bytes) => Message::Ping(bytes),
            Self::Pong(bytes) => Message::Pong(bytes),
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over `ws.outbound_queue` frames or `ws.max_outbound_bytes` bytes.
    Full,
    /// The connection is closing or gone.
    Closed,
}

pub(crate) struct Outbound {
    max_frames: usize,
    max_bytes: usize,
    state: Mutex<State>,
    /// Signalled whenever the body takes a frame.
    taken: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// The cost of `frames` and of the frame the body is sending.
    bytes: usize,
    /// Goes out after the frames; nothing is queued after it.
    close: Option<Option<CloseReason>>,
    /// No frame is queued any more: the body ends once the queue is empty.
    ended: bool,
    /// The body is gone (the client disconnected): nothing will be sent.
    body_gone: bool,
    /// The body, waiting for a frame.
    waker: Option<Waker>,
}

impl Outbound {
    pub(crate) fn new(max_frames: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            max_frames,
            max_bytes,
            state: Mutex::new(State::default()),
            taken: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change keeps `bytes` equal to the cost of `frames` with nothing that can panic
        // in between, so a poisoned lock still holds a consistent queue.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a frame, unless that would exceed a bound or the connection is closing.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Refused> {
        let cost = frame.cost();
        let mut state = self.lock();
        if state.ended || state.body_gone {
            return Err(Refused::Closed);
        }
        if state.frames.len() >= self.max_frames || state.bytes + cost > self.max_bytes {
            return Err(Refused::Full);
        }
        state.bytes += cost;
        state.frames.push_back(frame);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// Drops whatever is still queued, sends the close frame (with `reason`, if any) and ends.
    pub(crate) fn close(&self, reason: Option<CloseReason>) {
        let mut state = self.lock();
        if state.ended {
            return;
        }
        state.frames.clear();
        state.bytes = 0;
        state.close = Some(reason);
        state.ended = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Ends the body without a close frame (the client is gone, or the task died), dropping
    /// whatever is still queued.
    pub(crate) fn end(&self) {
        let mut state = self.lock();
        state.frames.clear();
        state.bytes = 0;
        state.ended = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Whether the connection has stopped queueing (closed, or its task is gone).
    pub(crate) fn is_ended(&self) -> bool {
        let state = self.lock();
        state.ended || state.body_gone
    }

    /// Whether one more frame fits under the frame bound. The connection reads the client's
    /// next frame (whose answer is a reply or a pong) only then: a client that sends without
    /// reading is slowed down to its own pace, not disconnected for tiny frames.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().frames.len() < self.max_frames
    }

    /// Resolves once the body has taken a frame (at once if it did since the last call).
    pub(crate) async fn taken(&self) {
        self.taken.notified().await;
    }

    /// Bytes queued now.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The response body that sends the queued frames.
    pub(crate) fn body(self: &Arc<Self>) -> Body {
        Body {
            outbound: self.clone(),
            codec: Codec::new(),
            buf: BytesMut::new(),
            sending: None,
            done: false,
        }
    }
}

/// The WebSocket response body: the queued frames, encoded one at a time as the HTTP layer
/// asks for them.
pub(crate) struct Body {
    outbound: Arc<Outbound>,
    codec: Codec,
    buf: BytesMut,
    /// The rest of the encoded frame being sent, and its cost (released with its last chunk).
    sending: Option<(Bytes, usize)>,
    done: bool,
}

impl Body {
    /// The next chunk of the frame being sent.
    fn next_chunk(&mut self) -> Option<Bytes> {
        let (rest, cost) = self.sending.as_mut()?;
        let chunk = rest.split_to(rest.len().min(CHUNK_BYTES));
        if rest.is_empty() {
            let cost = *cost;
            self.sending = None;
            let mut state = self.outbound.lock();
            state.bytes = state.bytes.saturating_sub(cost);
        }
        Some(chunk)
    }
}

impl Stream for Body {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(chunk) = this.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let (message, cost) = {
            let mut state = this.outbound.lock();
            if let Some(frame) = state.frames.pop_front() {
                this.outbound.taken.notify_one();
                let cost = frame.cost();
                (frame.into_message(), cost)
            } else if let Some(reason) = state.close.take() {
                this.done = true;
                (Message::Close(reason), 0)
            } else if state.ended {
                this.done = true;
                return Poll::Ready(None);
            } else {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        };
        if let Err(err) = this.codec.encode(message, &mut this.buf) {
            this.done = true;
            return Poll::Ready(Some(Err(err.into())));
        }
        this.sending = Some((this.buf.split().freeze(), cost));
        Poll::Ready(this.next_chunk().map(Ok))
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.sending = None;
        let mut state = self.outbound.lock();
        state.body_gone = true;
        state.frames.clear();
        state.bytes = 0;
        state.close = None;
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn reply(bytes: usize) -> Frame {
        Frame::Reply("x".repeat(bytes))
    }

    #[tokio::test]
    async fn bytes_count_until_the_body_takes_the_frame() {
        let outbound = Outbound::new(10, 3 * (100 + FRAME_HEADER_MAX));
        for _ in 0..3 {
            outbound.push(reply(100)).unwrap();
        }
        assert_eq!(outbound.push(reply(1)), Err(Refused::Full));
        let mut body = outbound.body();
        let chunk = body.next().await.unwrap().unwrap();
        // Header (2 bytes for a payload under 126) + payload.
        assert_eq!(chunk.len(), 102);
        assert_eq!(outbound.queued_bytes(), 2 * (100 + FRAME_HEADER_MAX));
        outbound.push(reply(100)).unwrap();
    }

    #[tokio::test]
    async fn a_big_frame_counts_until_its_last_chunk_is_taken() {
        let size = 3 * CHUNK_BYTES;
        let outbound = Outbound::new(10, 10 * size);
        outbound.push(reply(size)).unwrap();
        let mut body = outbound.body();
        let mut sent = 0;
        for _ in 0..3 {
            assert!(outbound.queued_bytes() >= size, "released early");
            sent += body.next().await.unwrap().unwrap().len();
        }
        // The rest of the payload and its 4-byte header (16-bit length).
        sent += body.next().await.unwrap().unwrap().len();
        assert_eq!(sent, size + 4);
        assert_eq!(outbound.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn frames_are_bounded_in_number_too() {
        let outbound = Outbound::new(2, usize::MAX);
        outbound.push(Frame::Ping(Bytes::new())).unwrap();
        outbound.push(Frame::Ping(Bytes::new())).unwrap();
        assert_eq!(outbound.push(Frame::Ping(Bytes::new())), Err(Refused::Full));
    }

    #[tokio::test]
    async fn closing_drops_the_queue_and_ends_after_the_close_frame() {
        let outbound = Outbound::new(10, 10_000);
        outbound.push(reply(1000)).unwrap();
        outbound.close(None);
        assert_eq!(outbound.queued_bytes(), 0);
        assert_eq!(outbound.push(reply(1)), Err(Refused::Closed));
        let mut body = outbound.body();
        // The close frame without a reason: opcode 8, length 0.
        assert_eq!(&body.next().await.unwrap().unwrap()[..], &[0x88, 0x00]);
        assert!(body.next().await.is_none());
        assert!(outbound.is_ended());
    }

    #[tokio::test]
    async fn a_gone_body_refuses_and_frees() {
        let outbound = Outbound::new(10, 10_000);
        let body = outbound.body();
        outbound.push(reply(1000)).unwrap();
        drop(body);
        assert_eq!(outbound.queued_bytes(), 0);
        assert_eq!(outbound.push(reply(1)), Err(Refused::Closed));
        assert!(outbound.is_ended());
    }
}
