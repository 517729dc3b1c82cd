//! Regression tests of docs/reliability.md's attack table: see the tests below.
//!
//! Read access follows the current membership, never a stored read position; reads are bounded
//! in work and bytes; read receipts and typing notices are throttled, only move forward and never
//! cross a block or a mute.

use std::collections::HashSet;
use std::time::Duration;

use chat_server::domain::UserId;
use chat_server::store::mongo::reads::{self, Advanced};
use mongodb::bson::doc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::groups_support::{
    QUIET_MS, conversations, entry, expect_status, join, kick, leave, mute, ok_json,
    patch_conversation, patch_group, read_conversation,
};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::people_support::items;
use crate::ws_client::{
    BAD_FRAME, Chatter, DELIVERED, FORBIDDEN, NOT_FOUND, OK, WsClient, dm, group_conv, seqs,
};

// ---- support ------------------------------------------------------------------------------------

/// The test's own MongoDB database (the one the app under test writes).
async fn mongo(app: &TestApp) -> mongodb::Database {
    use secrecy::ExposeSecret;
    let client = mongodb::Client::with_uri_str(app.settings.mongodb.uri.expose_secret())
        .await
        .expect("the test MongoDB answers");
    client.database(&app.settings.mongodb.database)
}

fn user_id(chatter: &Chatter) -> UserId {
    UserId(chatter.id.parse().expect("numeric user id"))
}

/// How many read positions `who` has, per the database.
async fn positions_of(app: &TestApp, who: &Chatter) -> Vec<String> {
    let db = mongo(app).await;
    reads::list(&db, user_id(who))
        .await
        .expect("list read positions")
        .into_iter()
        .map(|p| p.conversation)
        .collect()
}

/// What a leave whose MongoDB delete failed leaves behind (or a resurrecting upsert makes): the
/// ex-member's position document, written straight into the collection.
async fn plant_position(app: &TestApp, who: &Chatter, conversation: &str, read_seq: i64) {
    mongo(app)
        .await
        .collection::<mongodb::bson::Document>(reads::COLLECTION)
        .insert_one(doc! {
            "user_id": i64::try_from(user_id(who).0).expect("small id"),
            "conversation": conversation,
            "read_seq": read_seq,
        })
        .await
        .expect("insert the stale position");
}

/// An open group of `owner` that `members` joined themselves; returns its id.
async fn open_group(app: &TestApp, owner: &Chatter, members: &[&Chatter]) -> String {
    let group = app.create_group(owner, "team").await;
    for member in members {
        let resp = join(app, member, &group, &json!({})).await;
        ok_json(resp, "join the open group").await;
    }
    group
}

/// Everything an ex-member of `group` tries must show nothing of it, even with a position
/// document of theirs still stored.
async fn assert_group_unreadable(
    app: &TestApp,
    who: &Chatter,
    ws: &mut WsClient,
    group: &str,
    old_seq: i64,
) {
    let conversation = group_conv(group);
    // op 7 naming it.
    ws.resume(json!({ conversation.as_str(): old_seq }))
        .await
        .expect(FORBIDDEN);
    // op 7 from the stored positions.
    let reply = ws.resume(json!({})).await;
    reply.expect(OK);
    assert!(
        reply
            .all_messages()
            .iter()
            .all(|m| m.conversation != conversation),
        "resume brought the group: {}",
        reply.raw
    );
    assert!(
        reply.data["since"].get(&conversation).is_none(),
        "{}",
        reply.raw
    );
    // op 3, summary and single.
    let summary = ws.unread_overview().await;
    assert!(
        summary.iter().all(|(c, _, _)| *c != conversation),
        "op 3 lists the group: {summary:?}"
    );
    ws.unread_in(&conversation).await.expect(FORBIDDEN);
    // op 2.
    ws.request(json!({"op_type": 2, "conversation": conversation}))
        .await
        .expect(FORBIDDEN);
    // op 4 and the HTTP reads.
    ws.mark_read_at(&conversation, old_seq + 1)
        .await
        .expect(FORBIDDEN);
    let list = conversations(app, who).await;
    assert!(entry(&list, &conversation).is_none(), "{list:?}");
    expect_status(
        read_conversation(app, who, &conversation).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_status(
        patch_conversation(app, who, &conversation, &json!({"pinned": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// The ex-member scenario: `who` reads the group, is removed by `remove`, another member sends,
/// and the position is planted back as a failed delete would have left it.
async fn removed_member_scenario(kicked: bool) {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = open_group(&app, &alice, &[&bob]).await;
    let conversation = group_conv(&group);
    let seen = alice_ws.send_group(&group, "before").await;
    seen.expect(OK);
    let old_seq = seen.message().seq;
    bob_ws.mark_read_at(&conversation, old_seq).await.expect(OK);

    if kicked {
        ok_json(kick(&app, &alice, &group, &bob.id).await, "kick").await;
    } else {
        ok_json(leave(&app, &bob, &group).await, "leave").await;
    }
    alice_ws
        .send_group(&group, "after, not for bob")
        .await
        .expect(OK);

    assert_group_unreadable(&app, &bob, &mut bob_ws, &group, old_seq).await;
    // The same with the position document back, as after a failed delete.
    plant_position(&app, &bob, &conversation, old_seq).await;
    assert_group_unreadable(&app, &bob, &mut bob_ws, &group, old_seq).await;
}

// ---- item 1: read access follows membership -----------------------------------------------------

#[tokio::test]
async fn ex_member_cannot_resume_group() {
    removed_member_scenario(false).await;
}

#[tokio::test]
async fn kicked_member_cannot_read_group() {
    removed_member_scenario(true).await;
}

#[tokio::test]
async fn stale_read_position_is_not_resurrected() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = open_group(&app, &alice, &[&bob]).await;
    let conversation = group_conv(&group);
    let sent = alice_ws.send_group(&group, "hello").await;
    sent.expect(OK);
    ok_json(leave(&app, &bob, &group).await, "leave").await;
    assert!(
        !positions_of(&app, &bob).await.contains(&conversation),
        "the leave removed the position"
    );

    // A mark that passed its check just before the leave reaches the store after it: it must
    // not make the position again.
    let db = mongo(&app).await;
    let late = reads::advance(&db, user_id(&bob), &conversation, sent.message().seq)
        .await
        .expect("advance");
    assert_eq!(late, Advanced::Missing);
    // Nor do the ex-member's own requests.
    bob_ws
        .mark_read_at(&conversation, sent.message().seq)
        .await
        .expect(FORBIDDEN);
    bob_ws.mark_read(&sent.message().id).await.expect(NOT_FOUND);
    expect_status(
        patch_conversation(&app, &bob, &conversation, &json!({"hidden": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        !positions_of(&app, &bob).await.contains(&conversation),
        "no position was made again"
    );
}

// ---- item 6: bounded rows and queries -----------------------------------------------------------

#[tokio::test]
async fn mark_read_of_unknown_conversation_creates_nothing() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let before = positions_of(&app, &alice).await;
    let ghost = dm(&alice.id, "987654321");
    let no_group = group_conv("987654321");

    for conversation in [&ghost, &no_group] {
        alice_ws
            .mark_read_at(conversation, 5)
            .await
            .expect(NOT_FOUND);
        expect_status(
            read_conversation(&app, &alice, conversation).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_status(
            patch_conversation(&app, &alice, conversation, &json!({"pinned": true})).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    // Somebody else's 1:1: not allowed.
    let others = dm("987654320", "987654321");
    alice_ws.mark_read_at(&others, 1).await.expect(FORBIDDEN);
    expect_status(
        patch_conversation(&app, &alice, &others, &json!({"pinned": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(positions_of(&app, &alice).await, before, "no row was made");
}

#[tokio::test]
async fn conversations_page_for_member_of_many_groups() {
    const GROUPS: usize = 70;
    let app = spawn_app_with(|s| s.groups.max_owned_per_user = nz!(1000)).await;
    let (alice, _alice_ws) = app.login_ws("alice").await;
    let mut made = HashSet::new();
    for _ in 0..GROUPS {
        made.insert(group_conv(&app.create_group(&alice, "g").await));
    }

    // Default page: conversations.page_default_limit (50), with a cursor to go on.
    let first = ok_json(app.get(&alice.http, "/conversations").await, "first page").await;
    let page = items(&first, "conversations");
    assert_eq!(page.len(), 50, "{first}");
    assert_eq!(first["has_more"], true);
    let cursor = first["next_before"]
        .as_str()
        .unwrap_or_else(|| panic!("next_before on a full page: {first}"))
        .to_owned();
    let second = ok_json(
        app.get(
            &alice.http,
            &format!("/conversations?before={}&limit=200", urlencode(&cursor)),
        )
        .await,
        "second page",
    )
    .await;
    let rest = items(&second, "conversations");
    assert_eq!(second["has_more"], false, "{second}");
    assert!(second["next_before"].is_null(), "{second}");

    let listed: Vec<String> = page
        .iter()
        .chain(rest.iter())
        .map(|c| c["conversation"].as_str().expect("id").to_owned())
        .collect();
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "no conversation twice: {listed:?}"
    );
    assert!(made.is_subset(&unique), "every group is listed once");
    // Newest activity first across both pages (every group has its "created" notice).
    let times: Vec<String> = page
        .iter()
        .chain(rest.iter())
        .filter(|c| c["kind"] == "group" && c["group"]["name"] == "g")
        .map(|c| {
            c["last_message"]["created_at"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "ordered by last activity");

    // Over the maximum, or a made-up cursor: 400.
    expect_status(
        app.get(&alice.http, "/conversations?limit=201").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_status(
        app.get(&alice.http, "/conversations?before=garbage").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

fn urlencode(raw: &str) -> String {
    crate::people_support::enc(raw)
}

#[tokio::test]
async fn history_skip_is_bounded() {
    let app = spawn_app().await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, _bob_ws) = app.login_ws("bob").await;
    alice_ws.send_to(&bob.id, "hi").await.expect(DELIVERED);
    let max = app.settings.messages.max_history_skip;
    let reply = alice_ws
        .request(json!({"op_type": 2, "to": bob.id, "content": format!("{}-10", max + 1)}))
        .await;
    reply.expect(BAD_FRAME);
    assert!(
        reply.raw["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("content:") && m.contains("before_seq")),
        "{}",
        reply.raw
    );
    let reply = alice_ws
        .request(json!({"op_type": 2, "to": bob.id, "content": format!("{max}-10")}))
        .await;
    reply.expect(OK);
    assert!(reply.messages().is_empty());
}

#[tokio::test]
async fn resume_since_is_bounded() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let max = app.settings.ws.max_resume_conversations.get();
    let since = |n: usize| -> Value {
        let map: serde_json::Map<String, Value> = (0..n)
            .map(|i| (dm(&alice.id, &(1_000_000 + i).to_string()), json!(0)))
            .collect();
        Value::Object(map)
    };
    let reply = alice_ws.resume(since(max + 1)).await;
    reply.expect(BAD_FRAME);
    assert!(
        reply.raw["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("since:")),
        "{}",
        reply.raw
    );
    alice_ws.resume(since(max)).await.expect(OK);
}

// ---- item 5: replies bounded in bytes -----------------------------------------------------------

#[tokio::test]
async fn history_reply_is_bounded_in_bytes() {
    const MAX: usize = 16 * 1024;
    const SENT: usize = 20;
    let app = spawn_app_with(|s| s.ws.max_reply_bytes = MAX).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let big = "x".repeat(3000);
    let mut sent = Vec::new();
    for _ in 0..SENT {
        let reply = alice_ws.send_to(&bob.id, &big).await;
        reply.expect(DELIVERED);
        sent.push(reply.message().seq);
    }
    let bytes_of = |data: &Value| data["messages"].to_string().len();

    // op 2: newest first, page by page through before_seq.
    let mut got = Vec::new();
    let mut frame = json!({"op_type": 2, "conversation": conversation, "limit": 100});
    for _ in 0..SENT {
        let reply = bob_ws.request(frame.clone()).await;
        reply.expect(OK);
        assert!(
            bytes_of(&reply.data) <= MAX,
            "{} bytes",
            bytes_of(&reply.data)
        );
        let page = seqs(&reply.messages());
        assert!(!page.is_empty());
        got.splice(0..0, page.clone());
        if !reply.has_more() {
            break;
        }
        assert!(page.len() < SENT, "a cut page");
        assert_eq!(reply.data["before_seq"], page[0], "{}", reply.raw);
        frame = json!({"op_type": 2, "conversation": conversation, "limit": 100,
                       "before_seq": page[0]});
    }
    assert_eq!(got, sent, "every message once, in order");

    // op 7: continue with the returned `since`.
    let mut got = Vec::new();
    let mut since = json!({ conversation.as_str(): 0 });
    for _ in 0..SENT {
        let reply = bob_ws.resume(since.clone()).await;
        reply.expect(OK);
        assert!(
            bytes_of(&reply.data) <= MAX,
            "{} bytes",
            bytes_of(&reply.data)
        );
        got.extend(
            reply
                .messages()
                .iter()
                .filter(|m| m.conversation == conversation)
                .map(|m| m.seq),
        );
        since = reply.data["since"].clone();
        if !reply.has_more() {
            break;
        }
    }
    assert_eq!(got, sent, "every message once, in order");
}

// ---- item 16: clamped mark ----------------------------------------------------------------------

#[tokio::test]
async fn mark_read_beyond_last_seq_is_clamped() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    alice_ws.send_to(&bob.id, "one").await.expect(DELIVERED);
    let last = alice_ws.send_to(&bob.id, "two").await;
    last.expect(DELIVERED);
    let stored = last.message().seq;
    // Seqs drawn but never stored (a failed write) put the counter ahead of what is stored.
    let mut conn = crate::redis_support::redis_conn(&app.settings).await;
    let key = crate::redis_support::conversation_key(&app.settings, "seq", &conversation);
    let before: Option<i64> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("read the counter");
    assert_eq!(before, Some(stored), "the counter is {key}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(stored + 50)
        .query_async(&mut conn)
        .await
        .expect("move the counter");

    let reply = bob_ws.mark_read_at(&conversation, 1_000_000).await;
    reply.expect(OK);
    assert_eq!(
        reply.data["seq"], stored,
        "clamped to the last stored: {}",
        reply.raw
    );
    let reply = bob_ws.mark_read_at(&conversation, stored + 10).await;
    assert_eq!(reply.data["seq"], stored, "{}", reply.raw);

    let later = alice_ws.send_to(&bob.id, "three").await;
    later.expect(DELIVERED);
    let unread = bob_ws.unread_in(&conversation).await;
    unread.expect(OK);
    assert_eq!(unread.data["unread"], 1, "{}", unread.raw);
    assert_eq!(seqs(&unread.messages()), vec![later.message().seq]);
}

// ---- item 10: receipts forward only, coalesced; nothing across a block or a mute ----------------

#[tokio::test]
async fn read_events_only_forward() {
    let app = spawn_app_with(|s| s.antispam.read_event_interval_ms = 0).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    alice_ws.send_to(&bob.id, "one").await.expect(DELIVERED);
    alice_ws.send_to(&bob.id, "two").await.expect(DELIVERED);

    bob_ws.mark_read_at(&conversation, 2).await.expect(OK);
    let event = alice_ws.next_event("read").await;
    assert_eq!(event["seq"], 2, "{event}");
    // Backwards or the same: answered with the position in force, nothing pushed.
    let reply = bob_ws.mark_read_at(&conversation, 1).await;
    assert_eq!(reply.data["seq"], 2, "{}", reply.raw);
    bob_ws.mark_read_at(&conversation, 2).await.expect(OK);
    ok_json(
        read_conversation(&app, &bob, &conversation).await,
        "read all",
    )
    .await;
    alice_ws.expect_no_event_of("read", QUIET_MS).await;
}

#[tokio::test]
async fn read_burst_is_coalesced() {
    let app = spawn_app_with(|s| s.antispam.read_event_interval_ms = 1500).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    for n in 0..10 {
        alice_ws
            .send_to(&bob.id, &format!("m{n}"))
            .await
            .expect(DELIVERED);
    }
    for seq in 1..=10 {
        bob_ws.mark_read_at(&conversation, seq).await.expect(OK);
    }
    let first = alice_ws.next_event("read").await;
    assert_eq!(first["seq"], 1, "the first mark goes out at once: {first}");
    let last = alice_ws.next_event("read").await;
    assert_eq!(last["seq"], 10, "the burst ends with the newest: {last}");
    alice_ws.expect_no_event_of("read", 2000).await;
}

#[tokio::test]
async fn typing_not_pushed_across_block() {
    let app = spawn_app_with(|s| {
        s.antispam.typing_interval_secs = nz!(1);
        s.antispam.read_event_interval_ms = 0;
    })
    .await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let from_bob = bob_ws.send_to(&alice.id, "hi").await;
    from_bob.expect(DELIVERED);
    let from_alice = alice_ws.send_to(&bob.id, "hi back").await;
    from_alice.expect(DELIVERED);
    let resp = app
        .post(&alice.http, "/blocks", &json!({ "user_id": bob.id }))
        .await;
    assert!(resp.status().is_success(), "block: {}", resp.status());

    // The blocker's typing and receipts do not reach whom they blocked ...
    alice_ws
        .request(json!({"op_type": 8, "to": bob.id}))
        .await
        .expect(OK);
    alice_ws.mark_read(&from_bob.message().id).await.expect(OK);
    // ... and the blocked one's do not reach the blocker.
    bob_ws
        .request(json!({"op_type": 8, "conversation": conversation}))
        .await
        .expect(FORBIDDEN);
    bob_ws.mark_read(&from_alice.message().id).await.expect(OK);
    bob_ws.expect_no_event_of("typing", QUIET_MS).await;
    bob_ws.expect_no_event_of("read", 0).await;
    alice_ws.expect_no_event_of("typing", 0).await;
    alice_ws.expect_no_event_of("read", 0).await;
}

#[tokio::test]
async fn muted_member_cannot_type() {
    let app = spawn_app_with(|s| s.antispam.typing_interval_secs = nz!(1)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = open_group(&app, &alice, &[&bob]).await;
    let conversation = group_conv(&group);
    let typing = |c: &str| json!({"op_type": 8, "conversation": c});

    // A member mute.
    ok_json(mute(&app, &alice, &group, &bob.id, 600).await, "mute bob").await;
    bob_ws
        .request(typing(&conversation))
        .await
        .expect(FORBIDDEN);
    alice_ws.expect_no_event_of("typing", QUIET_MS).await;
    ok_json(
        crate::groups_support::unmute(&app, &alice, &group, &bob.id).await,
        "unmute",
    )
    .await;
    // A muted group: members stay quiet, managers may still type.
    ok_json(
        patch_group(&app, &alice, &group, &json!({"muted": true})).await,
        "mute the group",
    )
    .await;
    bob_ws
        .request(typing(&conversation))
        .await
        .expect(FORBIDDEN);
    alice_ws.expect_no_event_of("typing", QUIET_MS).await;
    alice_ws.request(typing(&conversation)).await.expect(OK);
    let event = bob_ws.next_event("typing").await;
    assert_eq!(event["user_id"], alice.id, "{event}");
}

#[tokio::test]
async fn typing_flood_is_coalesced() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    for _ in 0..20 {
        alice_ws
            .request(json!({"op_type": 8, "to": bob.id}))
            .await
            .expect(OK);
    }
    let event = bob_ws.next_event("typing").await;
    assert_eq!(event["user_id"], alice.id, "{event}");
    bob_ws.expect_no_event_of("typing", QUIET_MS).await;
    // After the interval, one more gets through.
    tokio::time::sleep(Duration::from_secs(
        app.settings.antispam.typing_interval_secs.get(),
    ))
    .await;
    alice_ws
        .request(json!({"op_type": 8, "to": bob.id}))
        .await
        .expect(OK);
    bob_ws.next_event("typing").await;
}

#[tokio::test]
async fn receipt_flood_is_throttled() {
    let app = spawn_app_with(|s| {
        s.antispam.receipts_limit = nz!(3);
        s.antispam.receipts_window_secs = nz!(60);
    })
    .await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    for n in 0..5 {
        alice_ws
            .send_to(&bob.id, &format!("m{n}"))
            .await
            .expect(DELIVERED);
    }
    for seq in 1..=3 {
        bob_ws.mark_read_at(&conversation, seq).await.expect(OK);
    }
    let refused = bob_ws.mark_read_at(&conversation, 4).await;
    refused.expect(50006);
    assert_eq!(refused.data["rule"], "receipts", "{}", refused.raw);
    let body = expect_status(
        read_conversation(&app, &bob, &conversation).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(body["rule"], "receipts", "{body}");
    // Nothing moved past the last accepted mark.
    let unread = bob_ws.unread_in(&conversation).await;
    assert_eq!(unread.data["unread"], 2, "{}", unread.raw);
}
