//! Anti-spam: each rule trips at exactly the message the configuration says, refuses with 50006
//! and the wait, stores and delivers nothing, and lets normal conversations through.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chat_server::config::{AntispamSettings, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{json_of, spawn_app_sharing, spawn_app_with};
use crate::ws_client::{DELIVERED, OK, STORED_OFFLINE, WsClient, dm, group_conv};

const REFUSED: i64 = 50006;

/// The anti-spam settings of conf/config.toml as shipped (conf/test.toml raises them).
fn shipped_antispam() -> AntispamSettings {
    let overlay = Path::new(env!("CARGO_TARGET_TMPDIR")).join("antispam-secret-overlay.toml");
    let mut file = std::fs::File::create(&overlay).unwrap();
    writeln!(file, "[session]\nsecret = \"{}\"", "s".repeat(64)).unwrap();
    Settings::load_from(&[Path::new("conf/config.toml"), &overlay])
        .unwrap()
        .antispam
}

/// Shipped rules with the given changes; the local limiter out of the way unless a test sets it.
fn rules(change: impl FnOnce(&mut AntispamSettings)) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        let mut antispam = shipped_antispam();
        antispam.local_per_sec = nz!(1_000_000);
        antispam.local_burst = nz!(1_000_000);
        change(&mut antispam);
        settings.antispam = antispam;
    }
}

/// Asserts a 50006 refusal for `rule` and returns its retry_after.
#[track_caller]
fn refused(reply: &crate::ws_client::Reply, rule: &str) -> u64 {
    assert_eq!(reply.code, REFUSED, "a refusal: {}", reply.raw);
    assert_eq!(reply.data["rule"], rule, "rule in {}", reply.raw);
    let retry_after = reply.data["retry_after"]
        .as_u64()
        .unwrap_or_else(|| panic!("retry_after is whole seconds: {}", reply.raw));
    assert!(retry_after >= 1, "retry_after is at least 1: {}", reply.raw);
    retry_after
}

fn text(n: usize) -> String {
    format!("message number {n}")
}

#[tokio::test]
async fn unanswered_first_contact_trips_after_the_limit_and_a_reply_lifts_it() {
    let app = spawn_app_with(rules(|a| a.unanswered_limit = nz!(3))).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    for n in 1..=3 {
        alice_ws.send_to(&bob.id, &text(n)).await.expect(DELIVERED);
        bob_ws.next_message().await;
    }
    let reply = alice_ws.send_to(&bob.id, "are you there?").await;
    let retry_after = refused(&reply, "unanswered");
    assert!(
        retry_after > 2_000_000 && retry_after <= 2_592_000,
        "the block lasts unanswered_block_secs: {retry_after}"
    );
    bob_ws.expect_no_event_of("message", 300).await;
    let history = bob_ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history.len(), 3, "the refused message was not stored");
    let unread = bob_ws.unread_in(&dm(&alice.id, &bob.id)).await;
    assert_eq!(
        unread.data["unread"], 3,
        "nor counted as unread: {}",
        unread.raw
    );

    // Still blocked on the next try, then one reply from bob lifts it at once.
    refused(&alice_ws.send_to(&bob.id, "hello??").await, "unanswered");
    bob_ws
        .send_to(&alice.id, "hi alice")
        .await
        .expect(DELIVERED);
    alice_ws
        .send_to(&bob.id, "finally!")
        .await
        .expect(DELIVERED);
    // Answered pairs are no longer counted.
    for n in 4..=8 {
        alice_ws.send_to(&bob.id, &text(n)).await.expect(DELIVERED);
    }
}

#[tokio::test]
async fn an_unanswered_block_expires() {
    let app = spawn_app_with(rules(|a| {
        a.unanswered_limit = nz!(1);
        a.unanswered_block_secs = nz!(1);
    }))
    .await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    alice_ws
        .send_to(&bob.id, "hello")
        .await
        .expect(STORED_OFFLINE);
    assert_eq!(
        refused(&alice_ws.send_to(&bob.id, "hello?").await, "unanswered"),
        1
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    alice_ws
        .send_to(&bob.id, "hello again")
        .await
        .expect(STORED_OFFLINE);
    refused(&alice_ws.send_to(&bob.id, "and again").await, "unanswered");
}

#[tokio::test]
async fn notes_to_self_are_not_first_contact_but_count_towards_the_rate() {
    let app = spawn_app_with(rules(|a| {
        a.unanswered_limit = nz!(1);
        a.rate_limit = nz!(3);
    }))
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;
    for n in 1..=3 {
        ws.send_to(&alice.id, &text(n)).await.expect(DELIVERED);
    }
    refused(&ws.send_to(&alice.id, &text(4)).await, "rate");
}

#[tokio::test]
async fn the_sender_rate_counts_direct_and_group_messages_together() {
    let app = spawn_app_with(rules(|a| a.rate_limit = nz!(4))).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    alice_ws.send_to(&bob.id, &text(1)).await.expect(DELIVERED);
    alice_ws.send_group(&group, &text(2)).await.expect(OK);
    alice_ws.send_to(&bob.id, &text(3)).await.expect(DELIVERED);
    alice_ws.send_group(&group, &text(4)).await.expect(OK);
    let retry_after = refused(&alice_ws.send_group(&group, &text(5)).await, "rate");
    assert!(retry_after <= 10, "at most the window: {retry_after}");
    refused(&alice_ws.send_to(&bob.id, &text(6)).await, "muted");

    let got = bob_ws.next_messages(4).await;
    assert_eq!(got.len(), 4);
    bob_ws.expect_no_event_of("message", 300).await;
    assert_eq!(alice_ws.history_of(&group_conv(&group)).await.len(), 2);
    assert_eq!(alice_ws.history_of(&dm(&alice.id, &bob.id)).await.len(), 2);
    // Other senders are not affected.
    bob_ws
        .send_to(&alice.id, "all good?")
        .await
        .expect(DELIVERED);
}

#[tokio::test]
async fn duplicate_content_is_refused_after_the_limit_whoever_it_goes_to() {
    let app = spawn_app_with(rules(|a| a.duplicate_limit = nz!(2))).await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    alice_ws
        .send_to(&bob.id, "Buy cheap watches")
        .await
        .expect(STORED_OFFLINE);
    alice_ws
        .send_to(&carol.id, "buy CHEAP   watches ")
        .await
        .expect(STORED_OFFLINE);
    refused(
        &alice_ws.send_to(&carol.id, "  BUY cheap watches").await,
        "duplicate",
    );
    // Different content still goes through.
    alice_ws
        .send_to(&carol.id, "sorry about that")
        .await
        .expect(STORED_OFFLINE);
}

#[tokio::test]
async fn group_flood_is_limited_per_group() {
    let app = spawn_app_with(rules(|a| a.group_rate_limit = nz!(2))).await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let one = app.create_group(&alice, "one").await;
    let two = app.create_group(&alice, "two").await;
    ws.send_group(&one, &text(1)).await.expect(OK);
    ws.send_group(&one, &text(2)).await.expect(OK);
    refused(&ws.send_group(&one, &text(3)).await, "group_rate");
    ws.send_group(&two, &text(4)).await.expect(OK);
    assert_eq!(ws.history_of(&group_conv(&one)).await.len(), 2);
}

#[tokio::test]
async fn repeated_refusals_mute_for_growing_durations() {
    let app = spawn_app_with(rules(|a| {
        a.rate_limit = nz!(1);
        a.rate_window_secs = nz!(1);
        a.mute_steps_secs = vec![1, 3];
    }))
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    ws.send_to(&bob.id, &text(1)).await.expect(STORED_OFFLINE);
    refused(&ws.send_to(&bob.id, &text(2)).await, "rate");
    assert_eq!(refused(&ws.send_to(&bob.id, &text(3)).await, "muted"), 1);
    refused(&ws.send_to(&bob.id, &text(4)).await, "muted");

    tokio::time::sleep(Duration::from_millis(1300)).await;
    ws.send_to(&bob.id, &text(5)).await.expect(STORED_OFFLINE);
    // Refused again within the strike window: the next, longer step.
    assert_eq!(refused(&ws.send_to(&bob.id, &text(6)).await, "muted"), 3);

    let standing = json_of(app.get(&alice.http, "/user/me/limits").await).await;
    assert!(standing["limits"]["muted_until"].is_string(), "{standing}");
    assert_eq!(standing["limits"]["mutes_so_far"], 2, "{standing}");
}

#[tokio::test]
async fn exempt_users_are_never_throttled() {
    // The first user registered in a fresh database gets id 1.
    let app = spawn_app_with(rules(|a| {
        a.rate_limit = nz!(1);
        a.duplicate_limit = nz!(1);
        a.unanswered_limit = nz!(1);
        a.exempt_user_ids = vec![1];
    }))
    .await;
    let (bot, mut bot_ws) = app.login_ws("bot").await;
    assert_eq!(bot.id, "1");
    let (user, mut user_ws) = app.login_ws("user").await;
    for _ in 0..5 {
        bot_ws
            .send_to(&user.id, "same announcement")
            .await
            .expect(DELIVERED);
    }
    user_ws.send_to(&bot.id, &text(1)).await.expect(DELIVERED);
    refused(&user_ws.send_to(&bot.id, &text(2)).await, "rate");
}

#[tokio::test]
async fn a_retry_of_a_passed_send_is_not_counted_again() {
    let app = spawn_app_with(rules(|a| a.rate_limit = nz!(2))).await;
    let (_alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let first = ws.send_to_with_id(&bob.id, "one", "c-1").await;
    first.expect(STORED_OFFLINE);
    let retry = ws.send_to_with_id(&bob.id, "one", "c-1").await;
    retry.expect(STORED_OFFLINE);
    assert_eq!(retry.message().id, first.message().id);
    ws.send_to_with_id(&bob.id, "two", "c-2")
        .await
        .expect(STORED_OFFLINE);
    refused(&ws.send_to_with_id(&bob.id, "three", "c-3").await, "rate");
}

#[tokio::test]
async fn the_rate_is_exact_across_connections_and_processes() {
    let app = spawn_app_with(rules(|a| {
        a.rate_limit = nz!(10);
        a.rate_window_secs = nz!(60);
        a.unanswered_limit = nz!(1000);
    }))
    .await;
    let second = spawn_app_sharing(&app).await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let mut sockets: Vec<WsClient> = Vec::new();
    for node in [&app, &second, &app, &second] {
        sockets.push(node.connect_ws(&alice).await);
    }
    let sends = sockets.into_iter().enumerate().map(|(c, mut ws)| {
        let to = bob.id.clone();
        async move {
            let mut codes = Vec::new();
            for n in 0..25 {
                let reply = ws
                    .send_to(&to, &format!("connection {c} message {n}"))
                    .await;
                codes.push(reply.code);
            }
            codes
        }
    });
    let codes: Vec<i64> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(codes.len(), 100);
    let passed = codes.iter().filter(|c| **c == STORED_OFFLINE).count();
    let refused = codes.iter().filter(|c| **c == REFUSED).count();
    assert_eq!((passed, refused), (10, 90), "{codes:?}");
    let mut bob_ws = app.connect_ws(&bob).await;
    assert_eq!(
        bob_ws.history_of(&dm(&alice.id, &bob.id)).await.len(),
        10,
        "exactly 10 stored"
    );
}

#[tokio::test]
async fn the_local_first_line_limits_every_op_and_closes_abusive_sockets() {
    let app = spawn_app_with(rules(|a| {
        a.local_per_sec = nz!(1);
        a.local_burst = nz!(3);
        a.local_close_after = nz!(5);
    }))
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let history = json!({"op_type": 2, "to": alice.id});
    for _ in 0..3 {
        ws.request(history.clone()).await.expect(OK);
    }
    let reply = ws.request(history.clone()).await;
    assert_eq!(refused(&reply, "local"), 1);
    assert_eq!(reply.op_type, 2);
    for _ in 0..3 {
        refused(&ws.request(history.clone()).await, "local");
    }
    // The fifth refusal in a row closes the socket with 1008.
    ws.send_json(&history).await;
    assert_eq!(
        ws.expect_closed(Duration::from_secs(5)).await,
        crate::ws_client::Ended::Close(Some(crate::ws_client::CLOSE_POLICY))
    );
}

#[tokio::test]
async fn normal_conversations_at_the_default_limits_are_never_refused() {
    let app = spawn_app_with(|s| s.antispam = shipped_antispam()).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "friends", &[&bob]).await;
    for n in 0..12 {
        alice_ws
            .send_to(&bob.id, &format!("alice says {n}"))
            .await
            .expect(DELIVERED);
        bob_ws.next_message().await;
        bob_ws
            .send_to(&alice.id, &format!("bob answers {n}"))
            .await
            .expect(DELIVERED);
        alice_ws.next_message().await;
        if n % 3 == 0 {
            alice_ws
                .send_group(&group, &format!("group note {n}"))
                .await
                .expect(OK);
            bob_ws.next_message().await;
            alice_ws
                .request(json!({"op_type": 2, "to": bob.id}))
                .await
                .expect(OK);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test]
async fn standing_and_metrics_show_the_counters() {
    let app = spawn_app_with(rules(|a| a.rate_limit = nz!(2))).await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    ws.send_to(&bob.id, &text(1)).await.expect(STORED_OFFLINE);
    let standing = json_of(app.get(&alice.http, "/user/me/limits").await).await;
    let limits = &standing["limits"];
    assert_eq!(limits["rate"]["sent"], 1, "{standing}");
    assert_eq!(limits["rate"]["limit"], 2, "{standing}");
    assert_eq!(limits["muted_until"], Value::Null, "{standing}");
    assert_eq!(limits["unanswered"][0]["user_id"], bob.id, "{standing}");
    assert_eq!(limits["unanswered"][0]["sent"], 1, "{standing}");

    ws.send_to(&bob.id, &text(2)).await.expect(STORED_OFFLINE);
    refused(&ws.send_to(&bob.id, &text(3)).await, "rate");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("chat_messages_sent_total{kind=\"direct\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("chat_messages_refused_total{rule=\"rate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("chat_ws_connections 1"), "{metrics}");

    let resp = app.get(&app.client, "/user/me/limits").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// A Redis of this test's own, so the test can stop it.
struct OwnRedis {
    url: String,
    child: tokio::process::Child,
}

async fn own_redis() -> OwnRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (installed by scripts/services.sh) starts");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..100 {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            if pong.is_ok() {
                return OwnRedis { url, child };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the test's own redis-server did not answer");
}

/// A server on a Redis of the test's own, which the test may kill.
async fn app_on_own_redis() -> (OwnRedis, crate::helpers::TestApp) {
    let redis = own_redis().await;
    let url = redis.url.clone();
    let app = spawn_app_with(move |s| {
        // A standalone server of the test's own, whatever mode the suite runs in (outages of
        // a cluster node are scripts/chaos.sh --cluster's).
        s.redis.mode = chat_server::config::RedisMode::Standalone;
        s.redis.url = url.into();
        s.redis.timeout_ms = 500;
    })
    .await;
    (redis, app)
}

#[tokio::test]
async fn without_redis_sends_fail_closed_and_nothing_is_stored() {
    let (mut redis, app) = app_on_own_redis().await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    ws.send_to(&bob.id, "before the outage")
        .await
        .expect(STORED_OFFLINE);

    redis.child.kill().await.unwrap();
    for n in 0..3 {
        let reply = ws.send_to(&bob.id, &format!("during the outage {n}")).await;
        assert_eq!(reply.code, 50000, "fail closed: {}", reply.raw);
    }
    let history = ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history.len(), 1, "nothing was stored unchecked");
}

#[tokio::test]
async fn without_redis_routes_behind_the_session_answer_503_unavailable() {
    let (mut redis, app) = app_on_own_redis().await;
    let alice = app.chatter("alice").await;
    let me = app.get(&alice.http, "/user/me").await;
    assert_eq!(me.status(), StatusCode::OK);

    redis.child.kill().await.unwrap();
    // The session cannot be read: not a 500 with an empty body, and not a 401 either (the
    // session may well be valid), but the backend-down answer every route gives.
    let me = app.get(&alice.http, "/user/me").await;
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(me).await["code"], "unavailable");
    match app.try_connect_ws(Some(&alice.cookie), None).await {
        Err(refusal) => {
            assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                refusal.body.map(|b| b["code"].clone()),
                Some(json!("unavailable"))
            );
        }
        Ok(_) => panic!("a WebSocket opened without its session store"),
    }
}

#[tokio::test]
async fn a_sender_muted_by_anti_spam_neither_edits_nor_reacts() {
    let app = spawn_app_with(rules(|a| {
        a.rate_limit = nz!(1);
        a.rate_window_secs = nz!(60);
        a.mute_steps_secs = vec![60];
    }))
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let sent = ws.send_to(&bob.id, &text(1)).await;
    sent.expect(DELIVERED);
    let id = sent.data["id"].as_str().unwrap().to_owned();
    refused(&ws.send_to(&bob.id, &text(2)).await, "rate");
    refused(&ws.send_to(&bob.id, &text(3)).await, "muted");

    let edited = ws
        .request(json!({"op_type": 9, "message_id": id, "content": "buy now"}))
        .await;
    refused(&edited, "muted");
    let reacted = ws
        .request(json!({"op_type": 10, "message_id": id, "emoji": "🔥", "action": "add"}))
        .await;
    refused(&reacted, "muted");
    let pinned = app
        .post(
            &alice.http,
            &format!("/conversations/{}/pins", dm(&alice.id, &bob.id)),
            &json!({"message_id": id}),
        )
        .await;
    assert_eq!(pinned.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = json_of(pinned).await;
    assert_eq!(body["rule"], "muted", "{body}");
    bob_ws.expect_no_event_of("edited", 300).await;
    bob_ws.expect_no_event_of("reaction", 100).await;
    bob_ws.expect_no_event_of("pinned", 100).await;
    // The one who is not muted reacts as ever.
    bob_ws
        .request(json!({"op_type": 10, "message_id": id, "emoji": "👍", "action": "add"}))
        .await
        .expect(OK);
}
