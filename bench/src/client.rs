//! The chat client the load generator drives: HTTP (register, login, groups) with an explicit
//! session cookie, and WebSocket connections split into a cloneable sender and a reader task that
//! turns every frame into an [`Incoming`] on an unbounded channel (so the load generator never
//! becomes the slow consumer the server disconnects).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::{SinkExt, stream::SplitSink};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The password of every user the load generator creates.
pub const PASSWORD: &str = "bench-password-1";

/// Reply codes (docs/protocol.md, "Replies").
pub mod code {
    use chat_server::ws::wire::{
        CODE_BAD_FRAME, CODE_DELIVERED, CODE_FAILED, CODE_OK, CODE_REFUSED, CODE_STORED_OFFLINE,
    };

    pub const OK: i64 = CODE_OK as i64;
    pub const DELIVERED: i64 = CODE_DELIVERED as i64;
    pub const STORED_OFFLINE: i64 = CODE_STORED_OFFLINE as i64;
    pub const REFUSED: i64 = CODE_REFUSED as i64;
    pub const FAILED: i64 = CODE_FAILED as i64;
    pub const BAD_FRAME: i64 = CODE_BAD_FRAME as i64;
    /// No such thing (the relay's answer to a send to an unknown group). Mirrors the WebSocket
    /// code of `AppError::NotFound` in the server's src/error.rs, which the crate does not export.
    pub const NOT_FOUND: i64 = 40004;
}

/// Ops (docs/protocol.md, "Frames from the client").
pub mod op {
    pub use chat_server::ws::wire::{
        OP_GROUP_SEND as GROUP_SEND, OP_HISTORY as HISTORY, OP_RESUME as RESUME, OP_SEND as SEND,
    };
}

/// The `type` of every message the load generator sends: a text message (the server gives
/// types no names; any type but its system notices' `ws::wire::SYSTEM_TYPE` is a user's).
pub const TEXT_TYPE: i64 = 1;

/// The frame of a text message send: op 1 ([`op::SEND`]) to a user id or op 6
/// ([`op::GROUP_SEND`]) to a group id.
pub fn send_frame(op_type: i64, to: &str, content: &str, client_msg_id: &str) -> Value {
    json!({"op_type": op_type, "to": to, "type": TEXT_TYPE, "content": content,
        "client_msg_id": client_msg_id})
}

/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one upload or download may take (20 clients × 20 MiB share the machine).
const FILE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued towards one socket's writer task.
const OUTBOUND_QUEUE: usize = 1024;

/// A stored upload, as `POST /files` answers it (the fields the benchmark checks).
#[derive(Debug, Clone, Deserialize)]
pub struct UploadedFile {
    pub id: String,
    pub size: u64,
    pub sha256: String,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    /// The session cookie as a `Cookie` header value (`chat_session=...`).
    pub cookie: String,
}

/// HTTP access to one server process. Cheap to clone. No cookie jar: each call names the user.
#[derive(Debug, Clone)]
pub struct Http {
    base: String,
    client: reqwest::Client,
    cookie_name: String,
}

impl Http {
    /// A client for `http://127.0.0.1:<port>` with the session cookie name of the shipped
    /// conf/config.toml.
    pub fn new(port: u16) -> Result<Self> {
        Self::with_base(
            &format!("http://127.0.0.1:{port}"),
            crate::server_conf::cookie_name()?,
        )
    }

    /// A client for any base URL (no trailing slash) and session cookie name.
    pub fn with_base(base: &str, cookie_name: &str) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .pool_max_idle_per_host(128)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            cookie_name: cookie_name.to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client against another process (a user logged in on one process is logged in on
    /// every process of the run: the session lives in Redis).
    pub fn at_port(&self, port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: self.client.clone(),
            cookie_name: self.cookie_name.clone(),
        }
    }

    /// `POST <path>` with a JSON body, no session.
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))
    }

    /// `POST /user/register`; returns the new user's id.
    pub async fn register(&self, user_name: &str, password: &str) -> Result<String> {
        let body = json!({"user_name": user_name, "password": password, "nick_name": user_name});
        let resp = self.post("/user/register", &body).await?;
        let value = expect_status(resp, StatusCode::CREATED, "register").await?;
        user_id(&value)
    }

    /// `POST /user/login`; returns the user with their session cookie.
    pub async fn login(&self, user_name: &str, password: &str) -> Result<User> {
        let body = json!({"user_name": user_name, "password": password});
        let resp = self.post("/user/login", &body).await?;
        let cookie = resp
            .cookies()
            .find(|c| c.name() == self.cookie_name)
            .map(|c| format!("{}={}", c.name(), c.value()));
        let value = expect_status(resp, StatusCode::OK, "login").await?;
        let cookie = cookie.ok_or_else(|| anyhow!("login set no {} cookie", self.cookie_name))?;
        Ok(User {
            id: user_id(&value)?,
            name: user_name.to_owned(),
            cookie,
        })
    }

    /// Registers `user_name` with [`PASSWORD`] and logs in.
    pub async fn register_and_login(&self, user_name: &str) -> Result<User> {
        self.register(user_name, PASSWORD).await?;
        self.login(user_name, PASSWORD).await
    }

    /// `POST /groups` as `owner` (an open group); returns the group id.
    pub async fn create_group(&self, owner: &User, name: &str) -> Result<String> {
        let resp = self
            .client
            .post(format!("{}/groups", self.base))
            .header("cookie", &owner.cookie)
            .json(&json!({"name": name, "join_mode": "open"}))
            .send()
            .await
            .context("POST /groups")?;
        let value = expect_status(resp, StatusCode::CREATED, "create group").await?;
        value["group"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no group id in {value}"))
    }

    /// `POST /groups/{id}/join` as `user` (open groups).
    pub async fn join_group(&self, user: &User, group_id: &str) -> Result<()> {
        let resp = self
            .client
            .post(format!("{}/groups/{group_id}/join", self.base))
            .header("cookie", &user.cookie)
            .json(&json!({}))
            .send()
            .await
            .context("POST /groups/{id}/join")?;
        expect_status(resp, StatusCode::OK, "join group").await?;
        Ok(())
    }

    /// `POST /files` as `user`: a multipart body whose one part `file`, named `file_name`, is
    /// `len` bytes taken from `body` as the request goes out (a stream is never held whole).
    pub async fn upload(
        &self,
        user: &User,
        file_name: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<UploadedFile> {
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(file_name.to_owned())
            .mime_str("application/octet-stream")?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .client
            .post(format!("{}/files", self.base))
            .header("cookie", &user.cookie)
            .multipart(form)
            .timeout(FILE_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("POST /files ({file_name})"))?;
        let value = expect_status(resp, StatusCode::CREATED, "upload").await?;
        serde_json::from_value(value["file"].clone())
            .with_context(|| format!("upload: no file in {value}"))
    }

    /// `GET /files/{id}` as `user`: the sha256 (lowercase hex) and the length of the bytes
    /// read, hashed as they arrive.
    pub async fn download_sha256(&self, user: &User, id: &str) -> Result<(String, u64)> {
        use sha2::{Digest, Sha256};
        let resp = self
            .client
            .get(format!("{}/files/{id}", self.base))
            .header("cookie", &user.cookie)
            .timeout(FILE_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET /files/{id}"))?;
        let status = resp.status();
        if status != StatusCode::OK {
            let text = resp.text().await.unwrap_or_default();
            bail!("download {id}: expected 200, got {status}: {text}");
        }
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.with_context(|| format!("reading GET /files/{id}"))?;
            len += piece.len() as u64;
            hasher.update(&piece);
        }
        Ok((crate::payload::hex(&hasher.finalize()), len))
    }

    /// `DELETE /files/{id}` as `user` (its owner).
    pub async fn delete_file(&self, user: &User, id: &str) -> Result<()> {
        let resp = self
            .client
            .delete(format!("{}/files/{id}", self.base))
            .header("cookie", &user.cookie)
            .send()
            .await
            .with_context(|| format!("DELETE /files/{id}"))?;
        expect_status(resp, StatusCode::OK, "delete file").await?;
        Ok(())
    }

    /// `GET /files` as `user`: the bytes of the quota they use.
    pub async fn used_bytes(&self, user: &User) -> Result<u64> {
        let resp = self
            .client
            .get(format!("{}/files", self.base))
            .header("cookie", &user.cookie)
            .send()
            .await
            .context("GET /files")?;
        let value = expect_status(resp, StatusCode::OK, "list files").await?;
        value["used_bytes"]
            .as_u64()
            .ok_or_else(|| anyhow!("no used_bytes in {value}"))
    }

    /// `GET /metrics` (Prometheus text) with the server's `metrics.token`.
    pub async fn metrics(&self, token: &str) -> Result<String> {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /metrics")?;
        Ok(resp.error_for_status()?.text().await?)
    }
}

async fn expect_status(resp: reqwest::Response, want: StatusCode, what: &str) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != want {
        bail!("{what}: expected {want}, got {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
}

fn user_id(value: &Value) -> Result<String> {
    value["user"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no user id in {value}"))
}

/// Registers and logs in `n` users named `<prefix>-<i>`, `concurrency` at a time; calls `done`
/// after each one (e.g. to advance a progress bar). Returns them in order of `i`.
pub async fn create_users(
    http: &Http,
    prefix: &str,
    n: usize,
    concurrency: usize,
    done: impl Fn() + Sync,
) -> Result<Vec<User>> {
    let done = &done;
    stream::iter(0..n)
        .map(|i| async move {
            let user = http
                .register_and_login(&format!("{prefix}-{i}"))
                .await
                .with_context(|| format!("user {prefix}-{i}"))?;
            done();
            Ok::<_, anyhow::Error>(user)
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// A short prefix unique to this run, so user names never collide with an earlier run's.
pub fn run_prefix(label: &str) -> String {
    let millis = chrono::Utc::now().timestamp_millis() % 100_000_000;
    format!("{label}{millis}")
}

/// A stored message, as replies and `event: message` carry it.
#[derive(Debug, Clone, Deserialize)]
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
}

/// The reply to a request frame.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub op_type: i64,
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub data: Value,
    pub client_msg_id: Option<String>,
}

impl Reply {
    /// The stored message of a send reply (50004 / 50005 / 200).
    pub fn message(&self) -> Option<ChatMessage> {
        serde_json::from_value(self.data.clone()).ok()
    }

    /// The messages of a resume (op 7) reply.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.data["messages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| serde_json::from_value(m.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What a connection's reader saw, stamped with the time it arrived.
#[derive(Debug, Clone)]
pub enum Incoming {
    Reply {
        reply: Reply,
        at: Instant,
    },
    /// `event: message`.
    Message {
        message: ChatMessage,
        at: Instant,
    },
    /// Any other event (read, deleted, typing, group ...) or an unparsable frame.
    Other {
        frame: Value,
        at: Instant,
    },
    /// The socket closed (by the server: with its close code) or failed. Always the last item.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The writing half of a connection. Cheap to clone; frames are written in the order sent.
#[derive(Debug, Clone)]
pub struct WsSender {
    tx: mpsc::Sender<Frame>,
}

impl WsSender {
    /// Sends any JSON frame.
    pub async fn send_json(&self, frame: &Value) -> Result<()> {
        self.tx
            .send(Frame::text(frame.to_string()))
            .await
            .map_err(|_| anyhow!("the connection is closed"))
    }

    /// op 1: a text message to a user.
    pub async fn send_direct(&self, to: &str, client_msg_id: &str, content: &str) -> Result<()> {
        self.send_json(&send_frame(op::SEND, to, content, client_msg_id))
            .await
    }

    /// op 6: a text message to a group.
    pub async fn send_group(&self, group: &str, client_msg_id: &str, content: &str) -> Result<()> {
        self.send_json(&send_frame(op::GROUP_SEND, group, content, client_msg_id))
            .await
    }

    /// op 7: resume; `since` maps conversation ids to the last seq seen.
    pub async fn resume(&self, since: &BTreeMap<String, i64>, client_msg_id: &str) -> Result<()> {
        self.send_json(
            &json!({"op_type": op::RESUME, "since": since, "client_msg_id": client_msg_id}),
        )
        .await
    }

    /// Closes the socket normally (1000). The reader then reports [`Incoming::Closed`].
    pub async fn close(&self) {
        let _ = self.tx.send(Frame::Close(None)).await;
    }

    /// True once the writer task has stopped (the socket is closed or failed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One open WebSocket: the sender, and everything that arrives, in order.
#[derive(Debug)]
pub struct WsConn {
    pub sender: WsSender,
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
}

impl WsConn {
    /// Waits for the next item; `None` after [`Incoming::Closed`] was taken or on timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Incoming> {
        tokio::time::timeout(timeout, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the reply carrying `client_msg_id`, handing everything else that arrives
    /// meanwhile to `other`.
    pub async fn reply_to(
        &mut self,
        client_msg_id: &str,
        timeout: Duration,
        mut other: impl FnMut(Incoming),
    ) -> Result<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let item = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .map_err(|_| anyhow!("no reply to {client_msg_id} within {timeout:?}"))?
                .ok_or_else(|| anyhow!("connection gone before the reply to {client_msg_id}"))?;
            match item {
                Incoming::Reply { reply, .. }
                    if reply.client_msg_id.as_deref() == Some(client_msg_id) =>
                {
                    return Ok(reply);
                }
                Incoming::Closed { code, reason } => {
                    bail!("closed ({code:?} {reason}) before the reply to {client_msg_id}")
                }
                item => other(item),
            }
        }
    }
}

/// Opens `GET /ws` on `127.0.0.1:<port>` with the session cookie.
pub async fn connect(port: u16, cookie: &str) -> Result<WsConn> {
    connect_url(&format!("ws://127.0.0.1:{port}/ws"), Some(cookie)).await
}

/// Opens a WebSocket at any URL (the bare relay takes no cookie).
pub async fn connect_url(url: &str, cookie: Option<&str>) -> Result<WsConn> {
    let mut request = url.into_client_request()?;
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", HeaderValue::from_str(cookie)?);
    }
    let (ws, _response) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| anyhow!("WebSocket handshake with {url} timed out"))?
            .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(start(ws))
}

fn start(ws: WsStream) -> WsConn {
    let (sink, mut source) = ws.split();
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(sink, rx));
    tokio::spawn(async move {
        let closed = loop {
            match source.next().await {
                Some(Ok(Frame::Text(text))) => {
                    let _ = in_tx.send(classify(text.as_str(), Instant::now()));
                }
                Some(Ok(Frame::Close(frame))) => {
                    break Incoming::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    break Incoming::Closed {
                        code: None,
                        reason: err.to_string(),
                    };
                }
                None => {
                    break Incoming::Closed {
                        code: None,
                        reason: "end of stream".into(),
                    };
                }
            }
        };
        let _ = in_tx.send(closed);
    });
    WsConn {
        sender: WsSender { tx },
        incoming: in_rx,
    }
}

async fn write_loop(mut sink: SplitSink<WsStream, Frame>, mut rx: mpsc::Receiver<Frame>) {
    while let Some(frame) = rx.recv().await {
        let closing = matches!(frame, Frame::Close(_));
        if sink.send(frame).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Sorts one text frame into a reply, a message event or anything else.
pub fn classify(text: &str, at: Instant) -> Incoming {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return Incoming::Other {
            frame: Value::String(text.to_owned()),
            at,
        };
    };
    if frame.get("event").is_some() {
        if frame["event"] == "message"
            && let Ok(message) = serde_json::from_value(frame["data"].clone())
        {
            return Incoming::Message { message, at };
        }
        return Incoming::Other { frame, at };
    }
    if frame.get("code").is_some()
        && let Ok(reply) = serde_json::from_value::<Reply>(frame.clone())
    {
        return Incoming::Reply { reply, at };
    }
    Incoming::Other { frame, at }
}

/// Connects every user once, `concurrency` handshakes at a time, each to the port `port_of`
/// picks for its index; returns the connections in order.
pub async fn connect_all(
    users: &[User],
    port_of: impl Fn(usize) -> u16,
    concurrency: usize,
    done: impl Fn() + Sync,
) -> Result<Vec<WsConn>> {
    let done = &done;
    let port_of = &port_of;
    stream::iter(users.iter().enumerate())
        .map(|(i, user)| async move {
            let conn = connect(port_of(i), &user.cookie)
                .await
                .with_context(|| format!("connecting user {}", user.name))?;
            done();
            Ok::<_, anyhow::Error>(conn)
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// The 1:1 conversation id of two users: `u:<smaller>:<larger>` by numeric order.
pub fn dm(a: &str, b: &str) -> String {
    let (x, y) = (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0));
    format!("u:{}:{}", x.min(y), x.max(y))
}
