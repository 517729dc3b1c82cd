//! A typed WebSocket client for the chat protocol (docs/protocol.md), and the people who use it.
//!
//! `WsClient::request` sends one frame and returns its reply; every `event` frame that arrives
//! meanwhile is kept in a buffer, so `next_event` never misses one.

use std::collections::VecDeque;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{PASSWORD, TestApp, json_of, new_client};

/// How long a reply or an expected event may take before the test fails instead of hanging:
/// generous, since only a failing test waits it out, and a loaded machine may take seconds.
pub const WAIT: Duration = Duration::from_secs(30);

/// Reply codes (docs/protocol.md, "Replies").
pub const OK: i64 = 200;
pub const DELIVERED: i64 = 50004;
pub const STORED_OFFLINE: i64 = 50005;
pub const BAD_FRAME: i64 = 40000;
pub const FORBIDDEN: i64 = 40003;
pub const NOT_FOUND: i64 = 40004;
pub const TOO_LONG: i64 = 40013;

/// The `type` of the system notices the server writes into groups (joins, kicks, ...).
pub const SYSTEM_TYPE: i64 = 10;

/// Close codes.
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// A 24-hex-digit message id nobody has.
pub const UNKNOWN_MESSAGE_ID: &str = "ffffffffffffffffffffffff";

/// The 1:1 conversation id of two users: `u:<smaller>:<larger>` by numeric order.
pub fn dm(a: &str, b: &str) -> String {
    let (x, y): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    format!("u:{}:{}", x.min(y), x.max(y))
}

/// The conversation id of a group.
pub fn group_conv(group_id: &str) -> String {
    format!("g:{group_id}")
}

/// A registered, logged-in user: their id, session cookie and an HTTP client holding it.
pub struct Chatter {
    pub id: String,
    pub name: String,
    /// The session cookie as a `Cookie` header value.
    pub cookie: String,
    /// An HTTP client whose jar holds that session.
    pub http: Client,
}

/// A stored message, as replies and `event: message` carry it. Unknown fields fail the parse
/// only if a documented one is missing or mistyped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub conversation: String,
    pub seq: i64,
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: i64,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: String,
}

impl ChatMessage {
    /// Checks the documented formats: a 24-hex-digit id, RFC 3339 UTC with milliseconds.
    pub fn assert_well_formed(&self) {
        assert_eq!(self.id.len(), 24, "message id is 24 characters: {self:?}");
        assert!(
            self.id.bytes().all(|b| b.is_ascii_hexdigit()),
            "message id is hex: {self:?}"
        );
        assert!(self.seq >= 1, "seq starts at 1: {self:?}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(&self.created_at).is_ok(),
            "created_at is RFC 3339: {self:?}"
        );
        assert!(
            self.created_at.ends_with('Z') && self.created_at.len() == 24,
            "created_at is UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ): {self:?}"
        );
    }
}

fn parse_message(value: &Value) -> ChatMessage {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a message object ({e}): {value}"))
}

fn parse_messages(value: &Value) -> Vec<ChatMessage> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array of messages: {value}"))
        .iter()
        .map(parse_message)
        .collect()
}

pub fn ids(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

pub fn seqs(messages: &[ChatMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

pub fn contents(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

/// One reply frame: `{"op_type","code","msg","data","client_msg_id"}`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub op_type: i64,
    pub code: i64,
    pub data: Value,
    pub client_msg_id: Value,
    pub raw: Value,
}

impl Reply {
    fn from_frame(raw: Value) -> Self {
        Self {
            op_type: raw["op_type"]
                .as_i64()
                .unwrap_or_else(|| panic!("reply op_type is an integer: {raw}")),
            code: raw["code"]
                .as_i64()
                .unwrap_or_else(|| panic!("reply code is an integer: {raw}")),
            data: raw.get("data").cloned().unwrap_or(Value::Null),
            client_msg_id: raw.get("client_msg_id").cloned().unwrap_or(Value::Null),
            raw,
        }
    }

    /// Asserts the code; returns the reply for chaining.
    #[track_caller]
    pub fn expect(&self, code: i64) -> &Self {
        assert_eq!(self.code, code, "reply code in {}", self.raw);
        self
    }

    /// The stored message of a send reply.
    pub fn message(&self) -> ChatMessage {
        parse_message(&self.data)
    }

    /// `data.messages` of a history, unread or resume reply, without the group system notices
    /// (type 10): the chat content.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.all_messages()
            .into_iter()
            .filter(|m| m.kind != SYSTEM_TYPE)
            .collect()
    }

    /// `data.messages` including system notices.
    pub fn all_messages(&self) -> Vec<ChatMessage> {
        parse_messages(&self.data["messages"])
    }

    pub fn has_more(&self) -> bool {
        self.data["has_more"]
            .as_bool()
            .unwrap_or_else(|| panic!("has_more is a bool: {}", self.raw))
    }
}

/// What the server said when it refused the upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub body: Option<Value>,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame, with its code (if it had one).
    Close(Option<u16>),
    /// The stream ended or broke without a close frame.
    Dropped,
}

enum Incoming {
    Json(Value),
    Pong(Vec<u8>),
    Ended(Ended),
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClient {
    ws: Stream,
    events: VecDeque<Value>,
    /// Whether group notices (`event: group`, and `event: message` of type 10) are kept; by
    /// default they are dropped on arrival, so chat-content tests only see chat content.
    system_notices: bool,
}

impl WsClient {
    fn new(ws: Stream) -> Self {
        Self {
            ws,
            events: VecDeque::new(),
            system_notices: false,
        }
    }

    /// Keeps the system notices (type 10 `event: message`s) from now on.
    pub fn keep_system_notices(&mut self) {
        self.system_notices = true;
    }

    /// Sends one JSON frame without waiting for anything.
    pub async fn send_json(&mut self, frame: &Value) {
        self.send_raw(Frame::text(frame.to_string())).await;
    }

    /// Sends any frame (text that is not JSON, binary, ping ...).
    pub async fn send_raw(&mut self, frame: Frame) {
        use futures_util::SinkExt;
        self.ws.send(frame).await.expect("frame sent");
    }

    /// Sends a frame and returns its reply, keeping events that arrive meanwhile.
    pub async fn request(&mut self, frame: Value) -> Reply {
        self.send_json(&frame).await;
        self.next_reply(&frame.to_string()).await
    }

    /// Sends a raw frame (e.g. not JSON, binary) and returns its reply.
    pub async fn request_raw(&mut self, frame: Frame) -> Reply {
        let what = format!("{frame:?}");
        self.send_raw(frame).await;
        self.next_reply(&what).await
    }

    async fn next_reply(&mut self, request: &str) -> Reply {
        loop {
            match self.next_incoming(WAIT).await {
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(Incoming::Json(value))
                    if value.get("op_type").is_some() && value.get("code").is_some() =>
                {
                    return Reply::from_frame(value);
                }
                Some(Incoming::Json(value)) => {
                    panic!("a frame that is neither a reply nor an event: {value}")
                }
                Some(Incoming::Pong(_)) => {}
                Some(Incoming::Ended(how)) => {
                    panic!("the connection ended ({how:?}) before the reply to {request}")
                }
                None => panic!("no reply within {WAIT:?} to {request}"),
            }
        }
    }

    /// The reply to a frame already sent, or how the connection ended instead (for frames the
    /// server may answer either way).
    pub async fn reply_or_end(&mut self) -> Result<Reply, Ended> {
        loop {
            match self.next_incoming(WAIT).await {
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(Incoming::Json(value)) => return Ok(Reply::from_frame(value)),
                Some(Incoming::Pong(_)) => {}
                Some(Incoming::Ended(how)) => return Err(how),
                None => panic!("neither a reply nor the end of the connection within {WAIT:?}"),
            }
        }
    }

    /// The `data` of the next event of this kind (`message`, `read`, `deleted`, `typing`),
    /// from the buffer or the socket. Events of other kinds stay buffered.
    pub async fn next_event(&mut self, kind: &str) -> Value {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == kind) {
            let event = self.events.remove(pos).expect("position is in range");
            return event["data"].clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await {
                Some(Incoming::Json(value)) if value["event"] == kind => {
                    return value["data"].clone();
                }
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(Incoming::Json(value)) => {
                    panic!("waiting for event {kind}, got a frame that is no event: {value}")
                }
                Some(Incoming::Pong(_)) => {}
                Some(Incoming::Ended(how)) => {
                    panic!("the connection ended ({how:?}) while waiting for event {kind}")
                }
                None => panic!(
                    "no event {kind} within {WAIT:?} (buffered: {:?})",
                    self.events
                ),
            }
        }
    }

    /// The next `event: message`, parsed.
    pub async fn next_message(&mut self) -> ChatMessage {
        let data = self.next_event("message").await;
        parse_message(&data)
    }

    /// The next `n` `event: message`s, in arrival order.
    pub async fn next_messages(&mut self, n: usize) -> Vec<ChatMessage> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.next_message().await);
        }
        got
    }

    /// Asserts that no event at all is buffered or arrives within `ms` milliseconds.
    pub async fn expect_no_event(&mut self, ms: u64) {
        assert!(
            self.events.is_empty(),
            "expected no event, but these arrived: {:?}",
            self.events
        );
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_incoming(left).await {
                None => return,
                Some(Incoming::Pong(_)) => {}
                Some(Incoming::Json(value)) => panic!("expected no event, got {value}"),
                Some(Incoming::Ended(how)) => {
                    panic!("expected no event, but the connection ended ({how:?})")
                }
            }
        }
    }

    /// Asserts that no event of this kind is buffered or arrives within `ms` milliseconds;
    /// events of other kinds stay buffered.
    pub async fn expect_no_event_of(&mut self, kind: &str, ms: u64) {
        if let Some(event) = self.events.iter().find(|e| e["event"] == kind) {
            panic!("expected no event {kind}, got {event}");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_incoming(left).await {
                None => return,
                Some(Incoming::Pong(_)) => {}
                Some(Incoming::Json(value)) if value["event"] == kind => {
                    panic!("expected no event {kind}, got {value}")
                }
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(Incoming::Json(value)) => panic!("expected no frame, got {value}"),
                Some(Incoming::Ended(how)) => {
                    panic!("expected no event {kind}, but the connection ended ({how:?})")
                }
            }
        }
    }

    /// Reads (buffering events) until the connection ends; fails if it is still open after
    /// `within`.
    pub async fn expect_closed(&mut self, within: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await {
                Some(Incoming::Ended(how)) => return how,
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(_) => {}
                None => panic!("the connection is still open after {within:?}"),
            }
        }
    }

    /// Sends a ping and returns the payload of the pong that answers it.
    pub async fn ping(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send_raw(Frame::Ping(payload.to_vec().into())).await;
        self.next_pong().await
    }

    /// The payload of the next pong (events arriving meanwhile are kept).
    pub async fn next_pong(&mut self) -> Vec<u8> {
        loop {
            match self.next_incoming(WAIT).await {
                Some(Incoming::Pong(got)) => return got,
                Some(Incoming::Json(value)) if value.get("event").is_some() => {
                    self.events.push_back(value);
                }
                Some(Incoming::Json(value)) => panic!("waiting for a pong, got {value}"),
                Some(Incoming::Ended(how)) => {
                    panic!("waiting for a pong, the connection ended ({how:?})")
                }
                None => panic!("no pong within {WAIT:?}"),
            }
        }
    }

    /// Closes the connection cleanly (close handshake), ignoring what is still in flight.
    pub async fn close(mut self) {
        use futures_util::StreamExt;
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// The next frame that matters, or `None` when nothing arrived within `wait`.
    async fn next_incoming(&mut self, wait: Duration) -> Option<Incoming> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_elapsed) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Incoming::Ended(Ended::Dropped)),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("a text frame that is not JSON ({e}): {text}"));
                    assert!(value.is_object(), "every frame is a JSON object: {value}");
                    let notice = value["event"] == "group"
                        || (value["event"] == "message" && value["data"]["type"] == SYSTEM_TYPE);
                    if notice && !self.system_notices {
                        continue;
                    }
                    return Some(Incoming::Json(value));
                }
                Frame::Binary(bytes) => panic!("the server sent a binary frame: {bytes:?}"),
                Frame::Pong(payload) => return Some(Incoming::Pong(payload.to_vec())),
                Frame::Close(close) => {
                    return Some(Incoming::Ended(Ended::Close(
                        close.map(|c| u16::from(c.code)),
                    )));
                }
                Frame::Ping(_) | Frame::Frame(_) => {}
            }
        }
    }

    // ---- the operations, typed -------------------------------------------------------------

    /// op 1: a text message to a user.
    pub async fn send_to(&mut self, to: &str, content: &str) -> Reply {
        self.request(json!({"op_type": 1, "to": to, "type": 1, "content": content}))
            .await
    }

    /// op 1 with a `client_msg_id`.
    pub async fn send_to_with_id(&mut self, to: &str, content: &str, client_msg_id: &str) -> Reply {
        self.request(json!({
            "op_type": 1, "to": to, "type": 1, "content": content, "client_msg_id": client_msg_id
        }))
        .await
    }

    /// op 6: a text message to a group (`""` is the lobby).
    pub async fn send_group(&mut self, group: &str, content: &str) -> Reply {
        self.request(json!({"op_type": 6, "to": group, "type": 1, "content": content}))
            .await
    }

    /// op 6 with a `client_msg_id`.
    pub async fn send_group_with_id(
        &mut self,
        group: &str,
        content: &str,
        client_msg_id: &str,
    ) -> Reply {
        self.request(json!({
            "op_type": 6, "to": group, "type": 1, "content": content, "client_msg_id": client_msg_id
        }))
        .await
    }

    /// op 2 of a whole (short) conversation: the newest 100, ascending; asserts 200.
    pub async fn history_of(&mut self, conversation: &str) -> Vec<ChatMessage> {
        let reply = self
            .request(json!({"op_type": 2, "conversation": conversation, "limit": 100}))
            .await;
        reply.expect(OK);
        reply.messages()
    }

    /// op 3 for one conversation.
    pub async fn unread_in(&mut self, conversation: &str) -> Reply {
        self.request(json!({"op_type": 3, "conversation": conversation}))
            .await
    }

    /// op 3 without a conversation: `conversation id -> (unread, last_seq)`; asserts 200.
    pub async fn unread_overview(&mut self) -> Vec<(String, i64, i64)> {
        let reply = self.request(json!({"op_type": 3})).await;
        reply.expect(OK);
        let list = reply.data["conversations"]
            .as_array()
            .unwrap_or_else(|| panic!("data.conversations is an array: {}", reply.raw));
        let mut out: Vec<(String, i64, i64)> = list
            .iter()
            .map(|c| {
                (
                    c["conversation"].as_str().expect("conversation").to_owned(),
                    c["unread"].as_i64().expect("unread"),
                    c["last_seq"].as_i64().expect("last_seq"),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// op 4 by message id.
    pub async fn mark_read(&mut self, message_id: &str) -> Reply {
        self.request(json!({"op_type": 4, "content": message_id}))
            .await
    }

    /// op 4 by position.
    pub async fn mark_read_at(&mut self, conversation: &str, seq: i64) -> Reply {
        self.request(json!({"op_type": 4, "conversation": conversation, "seq": seq}))
            .await
    }

    /// op 5 with the default scope (`me`).
    pub async fn delete_for_me(&mut self, message_id: &str) -> Reply {
        self.request(json!({"op_type": 5, "content": message_id}))
            .await
    }

    /// op 5 with `scope: "all"` (recall).
    pub async fn recall(&mut self, message_id: &str) -> Reply {
        self.request(json!({"op_type": 5, "content": message_id, "scope": "all"}))
            .await
    }

    /// op 7.
    pub async fn resume(&mut self, since: Value) -> Reply {
        self.request(json!({"op_type": 7, "since": since})).await
    }
}

// ---- connecting --------------------------------------------------------------------------

fn ws_url(app: &TestApp) -> String {
    format!("{}/ws", app.address.replacen("http://", "ws://", 1))
}

fn upgrade_request(app: &TestApp, cookie: Option<&str>, origin: Option<&str>) -> Request {
    let mut request = ws_url(app).into_client_request().expect("ws url");
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(cookie).expect("cookie header"),
        );
    }
    if let Some(origin) = origin {
        request.headers_mut().insert(
            "origin",
            HeaderValue::from_str(origin).expect("origin header"),
        );
    }
    request
}

fn refusal(err: tokio_tungstenite::tungstenite::Error) -> Refusal {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => Refusal {
            status: StatusCode::from_u16(response.status().as_u16()).expect("status"),
            body: response
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok()),
        },
        other => panic!("the upgrade failed without an HTTP answer: {other}"),
    }
}

impl TestApp {
    /// Registers `name` and logs them in with a fresh HTTP client (its own session).
    pub async fn chatter(&self, name: &str) -> Chatter {
        let resp = self.register(name).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "register {name}");
        self.log_in(name).await
    }

    /// Logs an existing user in once more: a new, separate session.
    pub async fn log_in(&self, name: &str) -> Chatter {
        let http = new_client();
        let resp = self.login_with(&http, name, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK, "login {name}");
        let cookie = self.session_cookie(&resp);
        let user = json_of(resp).await["user"].clone();
        Chatter {
            id: user["id"].as_str().expect("user id is a string").to_owned(),
            name: name.to_owned(),
            cookie,
            http,
        }
    }

    /// Registers, logs in and connects `name`.
    pub async fn login_ws(&self, name: &str) -> (Chatter, WsClient) {
        let chatter = self.chatter(name).await;
        let ws = self.connect_ws(&chatter).await;
        (chatter, ws)
    }

    /// Opens one more WebSocket with the chatter's session (another device or tab).
    pub async fn connect_ws(&self, chatter: &Chatter) -> WsClient {
        self.connect_ws_with_cookie(&chatter.cookie).await
    }

    pub async fn connect_ws_with_cookie(&self, cookie: &str) -> WsClient {
        match self.try_connect_ws(Some(cookie), None).await {
            Ok(ws) => ws,
            Err(refused) => panic!("the upgrade was refused: {refused:?}"),
        }
    }

    /// The upgrade with exactly these headers: the client, or the refusal.
    pub async fn try_connect_ws(
        &self,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<WsClient, Refusal> {
        let request = upgrade_request(self, cookie, origin);
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await {
            Err(_) => panic!("the upgrade did not finish within {WAIT:?}"),
            Ok(Ok((ws, _response))) => Ok(WsClient::new(ws)),
            Ok(Err(err)) => Err(refusal(err)),
        }
    }

    /// The upgrade from another loopback address (127.0.0.x: another client IP to the server),
    /// with extra headers: the client, or the refusal.
    pub async fn try_connect_ws_from(
        &self,
        local_ip: [u8; 4],
        cookie: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, Refusal> {
        let port: u16 = self
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in address");
        let socket = TcpSocket::new_v4().expect("tcp socket");
        socket
            .bind((local_ip, 0).into())
            .expect("bind a loopback address");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("tcp connect");
        let mut request = upgrade_request(self, Some(cookie), None);
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let upgrade = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
        match tokio::time::timeout(WAIT, upgrade).await {
            Err(_) => panic!("the upgrade did not finish within {WAIT:?}"),
            Ok(Ok((ws, _response))) => Ok(WsClient::new(ws)),
            Ok(Err(err)) => Err(refusal(err)),
        }
    }

    /// A connection over a TCP socket with a tiny receive buffer, for a client that never reads.
    pub async fn connect_ws_small_buffer(&self, chatter: &Chatter) -> WsClient {
        let port: u16 = self
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in address");
        let socket = TcpSocket::new_v4().expect("tcp socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("tcp connect");
        let request = upgrade_request(self, Some(&chatter.cookie), None);
        let (ws, _response) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
                .await
                .expect("upgrade over the small-buffer socket");
        WsClient::new(ws)
    }

    // ---- groups over HTTP ----------------------------------------------------------------

    pub async fn delete(&self, client: &Client, path: &str) -> reqwest::Response {
        client
            .delete(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// POST /groups as `owner`; returns the group id.
    pub async fn create_group(&self, owner: &Chatter, name: &str) -> String {
        let resp = self
            .post(&owner.http, "/groups", &json!({ "name": name }))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create group {name}");
        let body = json_of(resp).await;
        body["group"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("group id is a string: {body}"))
            .to_owned()
    }

    /// POST /groups/{id}/members as `by`, adding `user`: a friend of `by` is added at once
    /// (200), anybody else is invited (202) and accepts the invitation (200). Asserts both.
    pub async fn add_to_group(&self, by: &Chatter, group: &str, user: &Chatter) {
        let resp = self
            .post(
                &by.http,
                &format!("/groups/{group}/members"),
                &json!({ "user_id": user.id }),
            )
            .await;
        let status = resp.status();
        let body = json_of(resp).await;
        if status == StatusCode::ACCEPTED && body["status"] == "invited" {
            let invitation = body["invitation"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("invitation id is a string: {body}"));
            let resp = self
                .post(
                    &user.http,
                    &format!("/user/invitations/{invitation}/accept"),
                    &json!({}),
                )
                .await;
            let accepted = resp.status();
            let body = json_of(resp).await;
            assert_eq!(
                accepted,
                StatusCode::OK,
                "{} accepts the invitation to {group}: {body}",
                user.name
            );
            return;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "add {} to {group}: {body}",
            user.name
        );
    }

    /// A group owned by `owner` with these other members; returns its id.
    pub async fn group_with(&self, owner: &Chatter, name: &str, members: &[&Chatter]) -> String {
        let group = self.create_group(owner, name).await;
        for member in members {
            self.add_to_group(owner, &group, member).await;
        }
        group
    }
}
