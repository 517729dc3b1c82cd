//! Regression tests of docs/reliability.md's attack table: see the tests below.
//!
//! A socket that never reads cannot pin server memory; content carries no control characters;
//! a reused `client_msg_id` is refused instead of acked and lost; system messages stay;
//! `GET /user/me/limits` costs one Redis round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{json_of, spawn_app, spawn_app_with, spawn_process_node};
use crate::ws_client::{
    BAD_FRAME, DELIVERED, FORBIDDEN, OK, STORED_OFFLINE, SYSTEM_TYPE, dm, group_conv,
};

/// Reply code of a send whose `client_msg_id` the sender already used for another message.
const CLIENT_MSG_ID_REUSED: i64 = 40009;

#[tokio::test]
async fn control_characters_in_content_are_refused() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    for bad in [
        "nul \u{0}",
        "bell \u{7}",
        "clear \u{1b}[2J",
        "cr \r",
        "del \u{7f}",
    ] {
        for frame in [
            json!({"op_type": 1, "to": bob.id, "type": 1, "content": bad, "client_msg_id": "c"}),
            json!({"op_type": 6, "to": group, "type": 1, "content": bad, "client_msg_id": "c"}),
        ] {
            let reply = alice_ws.request(frame.clone()).await;
            reply.expect(BAD_FRAME);
            assert_eq!(reply.data["field"], "content", "{}", reply.raw);
            assert_eq!(reply.client_msg_id, "c", "{}", reply.raw);
        }
    }
    // Line breaks and tabs are content.
    let sent = alice_ws
        .send_to(&bob.id, "two\nlines\tand a tab")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_ws.next_message().await.id, sent.id);
    // Nothing refused was stored.
    let history = alice_ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(alice_ws.history_of(&group_conv(&group)).await.is_empty());
}

#[tokio::test]
async fn reused_client_msg_id_for_other_message_is_refused() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    let first = alice_ws.send_to_with_id(&bob.id, "hello", "m-1").await;
    first.expect(STORED_OFFLINE);
    let first = first.message();

    // The same id for another content, another recipient, another type, a group: refused.
    for frame in [
        json!({"op_type": 1, "to": bob.id, "type": 1, "content": "hello again"}),
        json!({"op_type": 1, "to": carol.id, "type": 1, "content": "hello"}),
        json!({"op_type": 1, "to": bob.id, "type": 5, "content": "hello", "location": {"lat": 1, "lon": 2}}),
        json!({"op_type": 6, "to": group, "type": 1, "content": "hello"}),
    ] {
        let mut frame = frame;
        frame["client_msg_id"] = json!("m-1");
        let reply = alice_ws.request(frame.clone()).await;
        reply.expect(CLIENT_MSG_ID_REUSED);
        assert_eq!(
            reply.raw["msg"], "client_msg_id already used for another message",
            "{}",
            reply.raw
        );
        assert_eq!(reply.client_msg_id, "m-1");
        assert!(reply.data.is_null(), "nothing acked: {}", reply.raw);
    }

    // The exact retry still gets the first ack: same id, same seq.
    let retry = alice_ws.send_to_with_id(&bob.id, "hello", "m-1").await;
    retry.expect(STORED_OFFLINE);
    assert_eq!(retry.message(), first);

    // Only the first message exists anywhere.
    let history = alice_ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history, vec![first]);
    assert!(
        alice_ws
            .history_of(&dm(&alice.id, &carol.id))
            .await
            .is_empty()
    );
    assert!(alice_ws.history_of(&group_conv(&group)).await.is_empty());

    // A fresh id for the other message goes through.
    alice_ws
        .send_to_with_id(&bob.id, "hello again", "m-2")
        .await
        .expect(STORED_OFFLINE);
}

#[tokio::test]
async fn system_message_cannot_be_recalled() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    alice_ws.keep_system_notices();
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.create_group(&alice, "team").await;
    // Alice adds Bob: a system message whose stored sender is Alice.
    app.add_to_group(&alice, &group, &bob).await;
    let notice = alice_ws.next_message().await;
    assert_eq!(notice.kind, SYSTEM_TYPE);
    assert_eq!(notice.from, alice.id, "the actor is the stored sender");

    // Neither its actor nor anybody else may recall it (delete it for everyone).
    alice_ws.recall(&notice.id).await.expect(FORBIDDEN);
    bob_ws.recall(&notice.id).await.expect(FORBIDDEN);

    let all = alice_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await;
    all.expect(OK);
    assert!(
        all.all_messages().iter().any(|m| m.id == notice.id),
        "the notice is still there: {}",
        all.raw
    );
    // Hiding it from oneself stays allowed, and is for oneself only.
    alice_ws.delete_for_me(&notice.id).await.expect(OK);
    let bobs: Value = bob_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await
        .raw;
    assert!(
        bobs["data"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == notice.id.as_str()),
        "{bobs}"
    );
}

/// Messages in the lobby that each non-reading connection asks for, again and again.
const LOBBY_MESSAGES: usize = 100;
/// Characters of each: 4-byte characters, so a page of 100 is about 1.6 MB of JSON.
const FAT_CHARS: usize = 3990;
const NON_READERS: usize = 50;
const REQUESTS_EACH: usize = 8;
/// What the server may keep of the non-readers' replies: each socket's queue is cut off at
/// `ws.max_outbound_bytes`, so at most that much per socket, plus a quarter for what the
/// allocator keeps of freed memory. Without the cap the replies asked for come to
/// NON_READERS × REQUESTS_EACH pages of about 1.6 MB: 640 MB, far above.
fn rss_growth_max_kb(max_outbound_bytes: usize) -> u64 {
    (NON_READERS * max_outbound_bytes / 1024) as u64 * 5 / 4
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("VmRSS in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_reading_sockets_cannot_pin_memory() {
    // The server under attack is the real binary in its own process (conf/config.toml, with the
    // default ws.max_outbound_bytes), so its RSS is its own; this process seeds the data.
    let app = spawn_app().await;
    let node = spawn_process_node(&app).await;
    let server = &node.app;
    let (_writer, mut writer_ws) = app.login_ws("writer").await;
    let fat = "\u{1F600}".repeat(FAT_CHARS);
    for i in 0..LOBBY_MESSAGES {
        writer_ws
            .send_group("", &format!("{i} {fat}"))
            .await
            .expect(OK);
    }
    let lobby_page = json!({"op_type": 2, "conversation": "g:0", "limit": 100});
    let (alice, mut alice_ws) = {
        let alice = app.chatter("alice").await;
        let ws = server.connect_ws(&alice).await;
        (alice, ws)
    };
    let bob = app.chatter("bob").await;
    let mut bob_ws = server.connect_ws(&bob).await;
    // Warm up: the server has answered a big page once before it is measured.
    alice_ws.request(lobby_page.clone()).await.expect(OK);
    let mut non_readers = Vec::new();
    for i in 0..NON_READERS {
        let chatter = app.chatter(&format!("sink{i}")).await;
        non_readers.push(server.connect_ws_small_buffer(&chatter).await);
    }
    let before = rss_kb(node.pid());

    for _ in 0..REQUESTS_EACH {
        for ws in &mut non_readers {
            ws.send_json(&lobby_page).await;
        }
    }
    // The server works through the requests (the test MongoDB answers one big page at a
    // time) and cuts every non-reading socket off as its queue outgrows ws.max_outbound_bytes.
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        peak = peak.max(rss_kb(node.pid()));
        let metrics = reqwest::Client::new()
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap();
        let open = metrics
            .lines()
            .find_map(|l| l.strip_prefix("chat_ws_connections "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        if open == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the non-reading sockets are still open: {open:?} connections (RSS {} kB, was \
             {before} kB)",
            rss_kb(node.pid())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Everybody else was served all along and still is: a 1:1 message both ways, a big page.
    for round in 0..3 {
        let sent = alice_ws
            .send_to(&bob.id, &format!("still here {round}"))
            .await
            .expect(DELIVERED)
            .message();
        assert_eq!(bob_ws.next_message().await.id, sent.id);
        let page = alice_ws.request(lobby_page.clone()).await;
        page.expect(OK);
        assert!(!page.messages().is_empty());
    }
    let after = rss_kb(node.pid());
    let max_growth = rss_growth_max_kb(app.settings.ws.max_outbound_bytes);
    assert!(
        after.saturating_sub(before) < max_growth,
        "the server's RSS grew from {before} kB to {after} kB (peak {peak} kB, bound \
         {max_growth} kB) with {NON_READERS} sockets that never read"
    );
    drop(non_readers);
    drop(alice);
}

/// A TCP proxy to the test Redis that holds every chunk the server sends for `delay_ms`
/// (0 while the scenario is set up): each Redis round trip then costs at least that long, so
/// the clock counts round trips whatever else the test Redis is doing.
struct SlowRedis {
    url: String,
    delay_ms: Arc<AtomicU64>,
}

impl SlowRedis {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let delay = delay.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let ms = delay.load(Ordering::Relaxed);
                        if ms > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        Self { url, delay_ms }
    }
}

/// Milliseconds one Redis round trip costs through the slow proxy.
const ROUND_TRIP_MS: u64 = 100;
const PENDING_PEERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_cost_one_redis_round_trip_whatever_the_number_of_peers() {
    let upstream = crate::helpers::test_settings()
        .redis
        .url
        .expose_secret()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let redis = SlowRedis::start(upstream).await;
    let app = spawn_app_with(|s| {
        // The counting proxy stands before one standalone server, whatever the suite's mode.
        s.redis.mode = chat_server::config::RedisMode::Standalone;
        s.redis.url = redis.url.clone().into();
        s.antispam.unanswered_limit = nz!(2);
    })
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let mut peers = Vec::new();
    for i in 0..PENDING_PEERS {
        peers.push(app.chatter(&format!("peer{i}")).await);
    }
    for peer in &peers {
        ws.send_to(&peer.id, "hi").await.expect(STORED_OFFLINE);
    }
    ws.send_to(&peers[0].id, "hello?")
        .await
        .expect(STORED_OFFLINE);
    let refused = ws.send_to(&peers[0].id, "anyone?").await;
    assert_eq!(refused.data["rule"], "unanswered", "{}", refused.raw);

    // The figures per peer are right.
    let standing = json_of(app.get(&alice.http, "/user/me/limits").await).await;
    let limits = &standing["limits"];
    assert_eq!(limits["rate"]["sent"], PENDING_PEERS + 1, "{standing}");
    let unanswered = limits["unanswered"].as_array().unwrap();
    assert_eq!(unanswered.len(), PENDING_PEERS, "{standing}");
    for peer in &peers {
        let entry = unanswered
            .iter()
            .find(|u| u["user_id"] == peer.id.as_str())
            .unwrap_or_else(|| panic!("{} in {standing}", peer.id));
        assert_eq!(entry["limit"], 2, "{entry}");
        if peer.id == peers[0].id {
            assert_eq!(
                entry["sent"], 0,
                "the count restarts after the block: {entry}"
            );
            assert!(entry["blocked_for_secs"].as_u64().unwrap() > 0, "{entry}");
        } else {
            assert_eq!(entry["sent"], 1, "{entry}");
            assert!(entry["blocked_for_secs"].is_null(), "{entry}");
        }
    }

    // Timed with every Redis round trip slowed down: the limits cost no more than GET
    // /user/me (the session's own round trips) plus one, not one or two per peer.
    redis.delay_ms.store(ROUND_TRIP_MS, Ordering::Relaxed);
    let time = |path: &'static str| {
        let (app, http) = (&app, &alice.http);
        async move {
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let started = Instant::now();
                let resp = app.get(http, path).await;
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                best = best.min(started.elapsed());
            }
            best
        }
    };
    let me = time("/user/me").await;
    let limits = time("/user/me/limits").await;
    redis.delay_ms.store(0, Ordering::Relaxed);
    let extra_round_trips = limits.saturating_sub(me).as_millis() / u128::from(ROUND_TRIP_MS);
    assert!(
        extra_round_trips <= 2,
        "GET /user/me/limits took {limits:?} against {me:?} for GET /user/me: about \
         {extra_round_trips} more Redis round trips with {PENDING_PEERS} pending peers"
    );
}
