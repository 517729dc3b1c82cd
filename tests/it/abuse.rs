//! Abuse of the transport: handshakes dropped halfway by the thousand, clients that only ping
//! or never answer, a 100 MB body, a slowloris request head, and the WebSocket connection caps
//! (`ws.max_connections_per_ip`, `ws.max_connections`). Normal users keep chatting within their
//! latency budget throughout. (A client that never reads while others flood it is
//! ws_slow_consumer.rs.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, new_client, spawn_app, spawn_app_with};
use crate::people_support::eventually;
use crate::ws_client::{Chatter, DELIVERED, Ended, OK, Refusal, WsClient};

/// A message round trip between two users must stay under this, whatever else is going on.
const ROUND_TRIP_BUDGET: Duration = Duration::from_secs(2);

fn port(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in address")
}

async fn tcp(app: &TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port(app)))
        .await
        .expect("tcp connect")
}

/// Two users who chat; `round_trip` sends one message and times its arrival.
struct Pair {
    a: WsClient,
    b_id: String,
    b: WsClient,
    sent: usize,
}

impl Pair {
    async fn new(app: &TestApp) -> Self {
        let (_, a) = app.login_ws("pair_a").await;
        let (b_user, b) = app.login_ws("pair_b").await;
        Self {
            a,
            b_id: b_user.id,
            b,
            sent: 0,
        }
    }

    async fn round_trip(&mut self) -> Duration {
        self.sent += 1;
        let text = format!("ping {}", self.sent);
        let started = Instant::now();
        self.a.send_to(&self.b_id, &text).await.expect(DELIVERED);
        let got = self.b.next_message().await;
        assert_eq!(got.content, text);
        let took = started.elapsed();
        assert!(
            took < ROUND_TRIP_BUDGET,
            "a message round trip took {took:?}"
        );
        took
    }
}

/// The live connection count the process reports on /metrics.
async fn live_connections(app: &TestApp) -> u64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("chat_ws_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("chat_ws_connections in {text}"))
}

/// A socket for this session, retrying while the address's slots are taken (for at most 10 s).
async fn connect_when_a_slot_is_free(app: &TestApp, cookie: &str) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match app.try_connect_ws(Some(cookie), None).await {
            Ok(ws) => return ws,
            Err(refused)
                if Instant::now() < deadline && refused.status == StatusCode::TOO_MANY_REQUESTS =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(refused) => panic!("the slots did not all come back: {refused:?}"),
        }
    }
}

/// The upgrade request head for `/ws` with this cookie; without its final empty line unless
/// `complete`.
fn upgrade_head(app: &TestApp, cookie: &str, complete: bool) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Cookie: {cookie}\r\n{}",
        port(app),
        if complete { "\r\n" } else { "" }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_a_thousand_handshakes_dropped_midway_leave_no_trace_and_chat_stays_fast() {
    let per_ip = 10;
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = nz!(per_ip);
        s.ws.max_connections = 1000;
    })
    .await;
    let dropper = app.chatter("dropper").await;
    let partial = upgrade_head(&app, &dropper.cookie, false);
    let complete = upgrade_head(&app, &dropper.cookie, true);
    let started = Instant::now();
    // 1,000 heads cut off before their end, then 200 complete upgrades dropped before the 101
    // is read (those reach the handler and take a slot, for a moment).
    for (head, count, batch) in [(&partial, 1000, 100), (&complete, 200, 10)] {
        for _ in 0..count / batch {
            let opened = (0..batch).map(|_| async {
                let mut stream = tcp(&app).await;
                let _ = stream.write_all(head.as_bytes()).await;
                drop(stream);
            });
            futures_util::future::join_all(opened).await;
        }
    }
    let flood_took = started.elapsed();

    // Every slot comes back, and the process counts no connection that is gone. (An upgrade
    // whose client left may still be in its handler, holding its slot, when the count is 0:
    // the slots are checked by taking them all.)
    eventually("the dropped upgrades leave no live connection", || async {
        live_connections(&app).await == 0
    })
    .await;
    let a = app.chatter("pair_a").await;
    let b = app.chatter("pair_b").await;
    let mut pair = Pair {
        a: connect_when_a_slot_is_free(&app, &a.cookie).await,
        b_id: b.id.clone(),
        b: connect_when_a_slot_is_free(&app, &b.cookie).await,
        sent: 0,
    };
    pair.round_trip().await;
    let mut held = Vec::new();
    for _ in 0..per_ip - 2 {
        held.push(connect_when_a_slot_is_free(&app, &dropper.cookie).await);
    }
    assert_eq!(live_connections(&app).await, per_ip as u64);
    for _ in 0..5 {
        pair.round_trip().await;
    }
    assert!(
        flood_took < Duration::from_secs(60),
        "1,200 dropped handshakes took {flood_took:?}"
    );
}

#[tokio::test]
async fn abuse_a_client_that_only_pings_gets_its_pongs_and_keeps_its_socket() {
    let app = spawn_app_with(|s| {
        s.ws.heartbeat_secs = nz!(1);
        s.ws.client_timeout_secs = 2;
        s.ws.presence_ttl_secs = 3;
    })
    .await;
    let (_, mut pinger) = app.login_ws("pinger").await;
    let mut pair = Pair::new(&app).await;

    // Only pings, for longer than the silence the server tolerates: a ping is a frame, so the
    // socket stays, and the others are served meanwhile.
    let until = Instant::now() + Duration::from_secs(4);
    let mut n = 0u32;
    while Instant::now() < until {
        n += 1;
        let payload = n.to_be_bytes();
        assert_eq!(pinger.ping(&payload).await, payload, "pong {n}");
        if n.is_multiple_of(5) {
            pair.round_trip().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A burst of pings, read back afterwards: every one is answered, in order.
    let burst = 500u32;
    for i in 0..burst {
        pinger
            .send_raw(tokio_tungstenite::tungstenite::Message::Ping(
                i.to_be_bytes().to_vec().into(),
            ))
            .await;
    }
    for i in 0..burst {
        let got = pinger.next_pong().await;
        assert_eq!(got, i.to_be_bytes(), "pong {i} of the burst");
    }
    pair.round_trip().await;
    pinger.request(json!({"op_type": 3})).await.expect(OK);
}

#[tokio::test]
async fn abuse_a_client_that_never_answers_pings_is_closed_with_1001() {
    let app = spawn_app_with(|s| {
        s.ws.heartbeat_secs = nz!(1);
        s.ws.client_timeout_secs = 2;
        s.ws.presence_ttl_secs = 3;
    })
    .await;
    let (_, mut silent) = app.login_ws("silent").await;
    let mut pair = Pair::new(&app).await;
    // Not reading means not answering the server's pings either; the pair keeps reading (and
    // so answering) meanwhile.
    let until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < until {
        pair.round_trip().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ended = silent.expect_closed(Duration::from_secs(5)).await;
    assert_eq!(ended, Ended::Close(Some(1001)), "closed as gone away");
    pair.round_trip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_a_client_that_pings_but_never_reads_the_pongs_is_disconnected() {
    let app = spawn_app_with(|s| {
        s.ws.heartbeat_secs = nz!(1);
        s.ws.client_timeout_secs = 2;
        s.ws.presence_ttl_secs = 3;
    })
    .await;
    let flooder = app.chatter("flooder").await;
    let mut pair = Pair::new(&app).await;
    let mut ws = app.connect_ws_small_buffer(&flooder).await;
    assert_eq!(live_connections(&app).await, 3);
    // Pings with the largest control payload until the server stops taking them (its pongs
    // have nowhere to go), or 64 MB at most.
    let payload = vec![b'p'; 125];
    let mut sent = 0usize;
    while sent < 64 * 1024 * 1024 {
        let ping = ws.send_raw(tokio_tungstenite::tungstenite::Message::Ping(
            payload.clone().into(),
        ));
        if tokio::time::timeout(Duration::from_secs(1), ping)
            .await
            .is_err()
        {
            break;
        }
        sent += payload.len();
    }
    // Whatever it is stuck on, the server lets go of such a client (like one that never reads
    // its events: docs/protocol.md), and everybody else is served meanwhile.
    let deadline = Instant::now() + Duration::from_secs(15);
    while live_connections(&app).await > 2 {
        assert!(
            Instant::now() < deadline,
            "a client that never reads its pongs still holds its connection after 15 s \
             ({} KB of pings sent)",
            sent / 1024
        );
        pair.round_trip().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pair.round_trip().await;
    drop(ws);
}

// ---- request bodies and heads --------------------------------------------------------------

const HUGE_BODY: usize = 100 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// What came back for a body streamed after `head`.
#[derive(Debug)]
struct Streamed {
    /// The response status line and headers, if any arrived.
    response: Option<String>,
    /// Body bytes written when the response (or the end of the connection) was seen.
    sent_when_answered: usize,
    took: Duration,
}

/// Writes `head`, then streams `HUGE_BODY` bytes (as chunked encoding when `chunked`) while
/// reading; stops at the first response or when the server cuts the connection.
async fn stream_huge_body(app: &TestApp, head: String, chunked: bool) -> Streamed {
    let stream = tcp(app).await;
    let (mut rd, mut wr) = stream.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    wr.write_all(head.as_bytes()).await.expect("head sent");
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let data = vec![b' '; CHUNK];
        let mut frame = Vec::with_capacity(CHUNK + 16);
        if chunked {
            frame.extend_from_slice(format!("{CHUNK:x}\r\n").as_bytes());
            frame.extend_from_slice(&data);
            frame.extend_from_slice(b"\r\n");
        } else {
            frame = data;
        }
        while counter.load(Ordering::SeqCst) < HUGE_BODY {
            let write = tokio::time::timeout(Duration::from_secs(5), wr.write_all(&frame));
            match write.await {
                Ok(Ok(())) => {
                    counter.fetch_add(CHUNK, Ordering::SeqCst);
                }
                _ => break,
            }
        }
        if chunked {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let sent_when_answered = sent.load(Ordering::SeqCst);
    let took = started.elapsed();
    writer.abort();
    assert!(read.is_ok(), "neither a response nor a cut within 30 s");
    Streamed {
        response: (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned()),
        sent_when_answered,
        took,
    }
}

fn assert_refused_early(what: &str, got: &Streamed, status: &str) {
    assert!(
        got.sent_when_answered < HUGE_BODY / 2,
        "{what}: the server read {} MB before answering: {got:?}",
        got.sent_when_answered / CHUNK
    );
    assert!(
        got.took < Duration::from_secs(10),
        "{what}: the answer took {:?}",
        got.took
    );
    // The answer, when it made it through before the cut, is the right one.
    if let Some(response) = &got.response {
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {response}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_a_100_mb_body_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let mut pair = Pair::new(&app).await;
    let host = format!("127.0.0.1:{}", port(&app));
    let declared = format!(
        "POST /user/register HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {HUGE_BODY}\r\n\r\n"
    );
    let got = stream_huge_body(&app, declared, false).await;
    assert_refused_early("declared length", &got, "413");

    let chunked = format!(
        "POST /user/register HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let got = stream_huge_body(&app, chunked, true).await;
    assert_refused_early("chunked", &got, "413");

    // A route that never reads a body answers at once and does not swallow the rest either.
    let unread = format!(
        "POST /user/logout HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {HUGE_BODY}\r\n\r\n"
    );
    let got = stream_huge_body(&app, unread, false).await;
    assert_refused_early("a route without a body", &got, "401");

    pair.round_trip().await;
    let resp = app.get(&app.client, "/ping").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_slowloris_heads_are_timed_out_while_normal_requests_keep_succeeding() {
    let app = spawn_app().await;
    let slow_clients = 20;
    let mut dribblers = Vec::new();
    for i in 0..slow_clients {
        let stream = tcp(&app).await;
        dribblers.push(tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let started = Instant::now();
            let head = format!("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: ");
            let _ = wr.write_all(head.as_bytes()).await;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut buf = [0u8; 1024];
            let mut answer = Vec::new();
            // One more header byte every 200 ms, never the end of the head.
            loop {
                tokio::select! {
                    read = rd.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    _ = tick.tick() => {
                        if wr.write_all(b"x").await.is_err() {
                            break;
                        }
                        if started.elapsed() > Duration::from_secs(20) {
                            break;
                        }
                    }
                }
            }
            (
                started.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        }));
    }
    // Meanwhile every normal request, each on a fresh connection, is quick.
    let until = Instant::now() + Duration::from_secs(6);
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        let resp = app.get(&new_client(), "/ping").await;
        assert_eq!(resp.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        slowest < ROUND_TRIP_BUDGET,
        "a normal request took {slowest:?}"
    );
    for dribbler in dribblers {
        let (lasted, answer) = dribbler.await.expect("dribbler");
        assert!(
            lasted < Duration::from_secs(12),
            "a dribbled head was held for {lasted:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "a dribbled head is answered 408 if at all: {answer}"
        );
    }
}

// ---- connection caps ----------------------------------------------------------------------

#[track_caller]
fn assert_refused(refused: Result<WsClient, Refusal>, status: StatusCode, code: &str) {
    match refused {
        Ok(_) => panic!("the upgrade went through; expected {status} {code}"),
        Err(refusal) => {
            assert_eq!(refusal.status, status, "{refusal:?}");
            let body = refusal.body.expect("a JSON body");
            assert_eq!(body["code"], code, "{body}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
        }
    }
}

/// Connects `who` from 127.0.0.`host`; panics when refused.
async fn connect_from(app: &TestApp, who: &Chatter, host: u8) -> WsClient {
    app.try_connect_ws_from([127, 0, 0, host], &who.cookie, &[])
        .await
        .unwrap_or_else(|refused| panic!("connect from 127.0.0.{host}: {refused:?}"))
}

/// Retries the upgrade until the freed slot shows (a slot is released when the connection task
/// has finished, just after the close).
async fn connects_again(app: &TestApp, who: &Chatter, host: u8) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match app
            .try_connect_ws_from([127, 0, 0, host], &who.cookie, &[])
            .await
        {
            Ok(ws) => return ws,
            Err(refused) if Instant::now() < deadline => {
                assert!(
                    refused.status == StatusCode::TOO_MANY_REQUESTS
                        || refused.status == StatusCode::SERVICE_UNAVAILABLE,
                    "{refused:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(refused) => panic!("the slot was not freed within 5 s: {refused:?}"),
        }
    }
}

#[tokio::test]
async fn abuse_connections_over_the_per_ip_cap_get_429_and_a_closed_one_frees_its_slot() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = nz!(3);
        s.ws.max_connections = 5;
    })
    .await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let mut open = vec![
        connect_from(&app, &alice, 1).await,
        connect_from(&app, &alice, 1).await,
        connect_from(&app, &bob, 1).await,
    ];
    // The cap is per client IP, whoever the user is, and refusals take no slot.
    for who in [&alice, &bob, &alice] {
        let refused = app
            .try_connect_ws_from([127, 0, 0, 1], &who.cookie, &[])
            .await;
        assert_refused(
            refused,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
        );
    }
    // Another client IP has its own budget.
    let mut elsewhere = connect_from(&app, &alice, 2).await;
    elsewhere.request(json!({"op_type": 3})).await.expect(OK);

    // A clean close frees a slot ...
    open.pop().expect("one open").close().await;
    let again = connects_again(&app, &bob, 1).await;
    open.push(again);
    let refused = app
        .try_connect_ws_from([127, 0, 0, 1], &alice.cookie, &[])
        .await;
    assert_refused(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
    );
    // ... and so does a connection that just drops.
    drop(open.pop());
    let mut again = connects_again(&app, &alice, 1).await;
    again.request(json!({"op_type": 3})).await.expect(OK);
    for ws in &mut open {
        ws.request(json!({"op_type": 3})).await.expect(OK);
    }
}

#[tokio::test]
async fn abuse_connections_over_the_global_cap_get_503_until_one_closes() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = nz!(3);
        s.ws.max_connections = 5;
    })
    .await;
    let alice = app.chatter("alice").await;
    let mut from_one = Vec::new();
    for _ in 0..3 {
        from_one.push(connect_from(&app, &alice, 1).await);
    }
    let mut from_two = Vec::new();
    for _ in 0..2 {
        from_two.push(connect_from(&app, &alice, 2).await);
    }
    for host in [3, 2, 1] {
        let refused = app
            .try_connect_ws_from([127, 0, 0, host], &alice.cookie, &[])
            .await;
        assert_refused(refused, StatusCode::SERVICE_UNAVAILABLE, "server_busy");
    }
    // Plain HTTP is not capped.
    assert_eq!(
        app.get(&alice.http, "/user/me").await.status(),
        StatusCode::OK
    );
    from_two.pop().expect("one").close().await;
    let mut third = connects_again(&app, &alice, 3).await;
    third.request(json!({"op_type": 3})).await.expect(OK);
    assert_eq!(live_connections(&app).await, 5);
}

#[tokio::test]
async fn abuse_the_per_ip_cap_follows_x_forwarded_for_only_when_trusted() {
    let trusted = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = nz!(2);
        s.ws.max_connections = 10;
        s.server.trust_forwarded_for = true;
    })
    .await;
    let alice = trusted.chatter("alice").await;
    let via = |ip: &'static str| [("x-forwarded-for", ip)];
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            trusted
                .try_connect_ws_from([127, 0, 0, 1], &alice.cookie, &via("203.0.113.7"))
                .await
                .expect("under the cap"),
        );
    }
    let refused = trusted
        .try_connect_ws_from([127, 0, 0, 1], &alice.cookie, &via("203.0.113.7"))
        .await;
    assert_refused(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
    );
    held.push(
        trusted
            .try_connect_ws_from([127, 0, 0, 1], &alice.cookie, &via("203.0.113.8"))
            .await
            .expect("another client behind the proxy"),
    );

    // Not behind a trusted proxy: an invented X-Forwarded-For does not buy more sockets.
    let direct = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = nz!(2);
        s.ws.max_connections = 10;
    })
    .await;
    let mallory = direct.chatter("mallory").await;
    let mut held = Vec::new();
    for ip in ["198.51.100.1", "198.51.100.2"] {
        held.push(
            direct
                .try_connect_ws_from([127, 0, 0, 1], &mallory.cookie, &via(ip))
                .await
                .expect("under the cap"),
        );
    }
    let refused = direct
        .try_connect_ws_from([127, 0, 0, 1], &mallory.cookie, &via("198.51.100.3"))
        .await;
    assert_refused(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
    );
}
