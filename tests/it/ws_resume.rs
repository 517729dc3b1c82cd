//! Reconnecting: client_msg_id retries store once, op 7 returns exactly what was missed.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};
use crate::ws_client::{BAD_FRAME, ChatMessage, DELIVERED, FORBIDDEN, OK, dm, group_conv, ids};

const QUIET_MS: u64 = 500;

/// What a client remembers: the last seq it saw in each conversation.
#[derive(Default)]
struct Seen(BTreeMap<String, i64>);

impl Seen {
    fn note(&mut self, message: &ChatMessage) {
        let last = self.0.entry(message.conversation.clone()).or_insert(0);
        *last = (*last).max(message.seq);
    }

    fn as_since(&self) -> Value {
        json!(self.0)
    }
}

#[tokio::test]
async fn ws_a_retried_send_after_a_reconnect_is_stored_once() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    let first = alice_ws
        .send_to_with_id(&bob.id, "only once", "retry-1")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_ws.next_message().await, first);

    // The ack was "lost": alice reconnects and sends the same request again.
    alice_ws.close().await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let retry = alice_ws
        .send_to_with_id(&bob.id, "only once", "retry-1")
        .await;
    retry.expect(DELIVERED);
    assert_eq!(retry.client_msg_id, "retry-1");
    let again = retry.message();
    assert_eq!((again.id.clone(), again.seq), (first.id.clone(), first.seq));
    assert_eq!(again, first);

    bob_ws.expect_no_event(QUIET_MS).await;
    let history = bob_ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(ids(&history), vec![first.id.clone()]);

    // A new client_msg_id is a new message.
    let next = alice_ws
        .send_to_with_id(&bob.id, "only once", "retry-2")
        .await
        .message();
    assert_ne!(next.id, first.id);
    assert!(
        next.seq > first.seq,
        "seq strictly increases (gaps allowed)"
    );
    assert_eq!(
        ids(&bob_ws.history_of(&dm(&alice.id, &bob.id)).await),
        vec![first.id, next.id]
    );
}

#[tokio::test]
async fn ws_a_retried_group_send_is_stored_once() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    let first = alice_ws
        .send_group_with_id(&group, "once", "g-retry")
        .await
        .expect(OK)
        .message();
    bob_ws.next_message().await;
    let mut alice_other = app.connect_ws(&alice).await;
    let again = alice_other
        .send_group_with_id(&group, "once", "g-retry")
        .await
        .expect(OK)
        .message();
    assert_eq!(again, first);
    bob_ws.expect_no_event(QUIET_MS).await;
    alice_ws.expect_no_event(QUIET_MS).await;
    assert_eq!(
        ids(&bob_ws.history_of(&group_conv(&group)).await),
        vec![first.id]
    );
}

#[tokio::test]
async fn ws_resume_returns_exactly_what_was_missed() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let mut bob_phone = app.connect_ws(&bob).await;
    let carol = app.chatter("carol").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    let with_alice = dm(&alice.id, &bob.id);

    // Bob's laptop sees some traffic live and remembers where it is.
    let mut seen = Seen::default();
    for text in ["m1", "m2"] {
        alice_ws.send_to(&bob.id, text).await.expect(DELIVERED);
        seen.note(&bob_ws.next_message().await);
    }
    alice_ws.send_group(&group, "g1").await.expect(OK);
    seen.note(&bob_ws.next_message().await);
    bob_ws.close().await;

    // While the laptop is away: more from alice, bob's own message from his phone, a group
    // message, and a conversation carol starts.
    let mut missed = Vec::new();
    for text in ["m3", "m4"] {
        missed.push(alice_ws.send_to(&bob.id, text).await.message());
    }
    missed.push(
        bob_phone
            .send_to(&alice.id, "m5 from the phone")
            .await
            .message(),
    );
    missed.push(alice_ws.send_group(&group, "g2").await.message());
    let mut carol_ws = app.connect_ws(&carol).await;
    missed.push(carol_ws.send_to(&bob.id, "c1").await.message());

    let mut bob_ws = app.connect_ws(&bob).await;
    let reply = bob_ws.resume(seen.as_since()).await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 7);
    assert!(!reply.has_more());
    let got = reply.messages();

    let mut got_ids: Vec<String> = ids(&got);
    let mut missed_ids: Vec<String> = ids(&missed);
    got_ids.sort();
    missed_ids.sort();
    assert_eq!(got_ids, missed_ids, "exactly the missed messages: {got:?}");
    assert_ascending_per_conversation(&got);

    let group_last = missed
        .iter()
        .filter(|m| m.conversation == group_conv(&group))
        .map(|m| m.seq)
        .max()
        .unwrap();
    let expected_since = json!({
        with_alice.clone(): 5,
        group_conv(&group): group_last,
        dm(&carol.id, &bob.id): 1,
    });
    assert_eq!(since_with_progress(&reply.data["since"]), expected_since);

    // Nothing more to fetch from there.
    let reply = bob_ws.resume(reply.data["since"].clone()).await;
    reply.expect(OK);
    assert!(reply.messages().is_empty(), "{}", reply.raw);
    assert!(!reply.has_more());
}

#[tokio::test]
async fn ws_live_events_and_resume_together_cover_the_history_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);

    let mut received: Vec<ChatMessage> = Vec::new();
    let mut seen = Seen::default();
    for round in 0..3 {
        for i in 0..4 {
            alice_ws
                .send_to(&bob.id, &format!("r{round}-{i}"))
                .await
                .expect(DELIVERED);
            let live = bob_ws.next_message().await;
            seen.note(&live);
            received.push(live);
        }
        bob_ws.close().await;
        for i in 4..7 {
            alice_ws.send_to(&bob.id, &format!("r{round}-{i}")).await;
        }
        bob_ws = app.connect_ws(&bob).await;
        let reply = bob_ws.resume(seen.as_since()).await;
        reply.expect(OK);
        for message in reply.messages() {
            seen.note(&message);
            received.push(message);
        }
    }

    let history = bob_ws.history_of(&conversation).await;
    assert_eq!(history.len(), 21);
    assert_eq!(
        ids(&received),
        ids(&history),
        "no gap, no duplicate, in order"
    );
}

#[tokio::test]
async fn ws_resume_pages_with_has_more_and_since() {
    let app = spawn_app_with(|s| s.messages.resume_max = nz!(3)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let bob = app.chatter("bob").await;

    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(alice_ws.send_to(&bob.id, &format!("a{i}")).await.message());
    }
    for i in 0..2 {
        sent.push(carol_ws.send_to(&bob.id, &format!("c{i}")).await.message());
    }

    let mut bob_ws = app.connect_ws(&bob).await;
    let mut since = json!({});
    let mut got = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 10, "resume does not converge");
        let reply = bob_ws.resume(since).await;
        reply.expect(OK);
        let page = reply.messages();
        assert!(page.len() <= 3, "at most resume_max per reply: {page:?}");
        got.extend(page);
        since = reply.data["since"].clone();
        if !reply.has_more() {
            break;
        }
    }
    assert!(rounds >= 3, "7 messages need at least 3 pages of 3");

    let unique: HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(unique.len(), got.len(), "no duplicates: {got:?}");
    let mut got_ids = ids(&got);
    let mut sent_ids = ids(&sent);
    got_ids.sort();
    sent_ids.sort();
    assert_eq!(got_ids, sent_ids);
    assert_ascending_per_conversation(&got);
    assert_eq!(
        since_with_progress(&since),
        json!({dm(&alice.id, &bob.id): 5, dm(&carol.id, &bob.id): 2})
    );
}

#[tokio::test]
async fn ws_resume_refuses_foreign_and_malformed_conversations() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    alice_ws.send_to(&bob.id, "private").await;
    let group = app.create_group(&alice, "team").await;

    carol_ws
        .resume(json!({dm(&alice.id, &bob.id): 0}))
        .await
        .expect(FORBIDDEN);
    carol_ws
        .resume(json!({group_conv(&group): 0}))
        .await
        .expect(FORBIDDEN);
    for since in [
        json!({"nonsense": 1}),
        json!({"u:x:y": 1}),
        json!({dm(&carol.id, &bob.id): "five"}),
        json!({dm(&carol.id, &bob.id): 1.5}),
        json!("not an object"),
    ] {
        let reply = carol_ws.resume(since.clone()).await;
        assert_eq!(reply.code, BAD_FRAME, "{since} -> {}", reply.raw);
    }
}

fn assert_ascending_per_conversation(messages: &[ChatMessage]) {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for message in messages {
        if let Some(previous) = last.insert(&message.conversation, message.seq) {
            assert!(
                previous < message.seq,
                "ascending by seq within {}: {messages:?}",
                message.conversation
            );
        }
    }
}

/// The `since` of a resume reply without the entries at 0 (conversations of the caller with
/// nothing in them, such as the lobby, may be listed or not).
fn since_with_progress(since: &Value) -> Value {
    let map = since
        .as_object()
        .unwrap_or_else(|| panic!("since is an object: {since}"));
    for (conversation, seq) in map {
        assert!(
            seq.as_i64().is_some_and(|s| s >= 0),
            "since[{conversation}] is a seq: {since}"
        );
    }
    Value::Object(
        map.iter()
            .filter(|(_, seq)| seq.as_i64() != Some(0))
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect(),
    )
}

/// A process that dies between storing a message and publishing it leaves the conversation's
/// publication watermark behind the message; the client's retry (on any process) must then
/// push the stored message to the live recipients, once.
#[tokio::test]
async fn ws_a_retry_publishes_a_stored_message_whose_first_publication_never_happened() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let first = alice_ws
        .send_to_with_id(&bob.id, "stored, then the process died", "crash-1")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_ws.next_message().await, first);

    // What a process that died after storing leaves: the watermark one below the message.
    let conversation = dm(&alice.id, &bob.id);
    let watermark = crate::redis_support::conversation_key(&app.settings, "pub", &conversation);
    let mut conn = crate::redis_support::redis_conn(&app.settings).await;
    let before: Option<i64> = redis::cmd("GET")
        .arg(&watermark)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        before,
        Some(first.seq),
        "a published message moves the watermark"
    );
    let _: () = redis::cmd("SET")
        .arg(&watermark)
        .arg(first.seq - 1)
        .query_async(&mut conn)
        .await
        .unwrap();

    let retry = alice_ws
        .send_to_with_id(&bob.id, "stored, then the process died", "crash-1")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(retry, first, "the retry answers with the stored message");
    assert_eq!(bob_ws.next_message().await, first, "published by the retry");
    let _ = alice_ws
        .send_to_with_id(&bob.id, "stored, then the process died", "crash-1")
        .await;
    bob_ws.expect_no_event(QUIET_MS).await;
}
