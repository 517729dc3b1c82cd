//! Message actions under the product's rules: across two processes, in groups (mentions, pins
//! by admins, forwarded authors), after a leave, across a block, within the edit and reaction
//! limits, each anti-spam rule, and search paging, filtering and forgetting.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::groups_support::{
    QUIET_MS, cast, conversations, entry, expect_status, leave, next_chat_message, set_my_settings,
};
use crate::helpers::{TestApp, json_of, spawn_app, spawn_app_sharing, spawn_app_with};
use crate::ws_client::{
    BAD_FRAME, Chatter, DELIVERED, FORBIDDEN, NOT_FOUND, OK, WsClient, dm, group_conv,
};

/// The reply code of a refusal by a named anti-spam rule over the WebSocket.
const REFUSED: i64 = 50006;

fn edit(id: &str, content: &str) -> Value {
    json!({"op_type": 9, "message_id": id, "content": content})
}

fn react(id: &str, emoji: &str, action: &str) -> Value {
    json!({"op_type": 10, "message_id": id, "emoji": emoji, "action": action})
}

fn id_of(reply: &crate::ws_client::Reply) -> String {
    reply.data["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a message id in {}", reply.raw))
        .to_owned()
}

async fn search(app: &TestApp, who: &Chatter, query: &str) -> reqwest::Response {
    app.get(&who.http, &format!("/search/messages?{query}"))
        .await
}

async fn hits(app: &TestApp, who: &Chatter, query: &str) -> Value {
    let resp = search(app, who, query).await;
    assert_eq!(resp.status(), StatusCode::OK, "search {query}");
    json_of(resp).await
}

fn hit_contents(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results in {body}"))
        .iter()
        .map(|r| {
            r["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn pin(app: &TestApp, who: &Chatter, conversation: &str, id: &str) -> reqwest::Response {
    app.post(
        &who.http,
        &format!("/conversations/{conversation}/pins"),
        &json!({"message_id": id}),
    )
    .await
}

async fn pins_of(app: &TestApp, who: &Chatter, conversation: &str) -> reqwest::Response {
    app.get(&who.http, &format!("/conversations/{conversation}/pins"))
        .await
}

async fn group_send(
    ws: &mut WsClient,
    group: &str,
    content: &str,
    extra: Value,
) -> crate::ws_client::Reply {
    let mut frame = json!({"op_type": 6, "to": group, "type": 1, "content": content});
    if let (Some(frame), Some(extra)) = (frame.as_object_mut(), extra.as_object()) {
        frame.extend(extra.clone());
    }
    ws.request(frame).await
}

#[tokio::test]
async fn edits_and_reactions_on_one_process_reach_every_socket_on_another() {
    let a = spawn_app().await;
    let b = spawn_app_sharing(&a).await;
    let (alice, mut alice_ws) = a.login_ws("alice").await;
    let (bob, _) = a.login_ws("bob").await;
    let mut bob_on_b = b.connect_ws(&bob).await;
    let mut alice_on_b = b.connect_ws(&alice).await;

    let sent = alice_ws.send_to(&bob.id, "see you at 5").await;
    sent.expect(DELIVERED);
    let id = id_of(&sent);
    bob_on_b.next_message().await;
    alice_on_b.next_message().await;

    alice_ws.request(edit(&id, "see you at 6")).await.expect(OK);
    for (who, ws) in [
        ("bob", &mut bob_on_b),
        ("alice's other socket", &mut alice_on_b),
    ] {
        let event = ws.next_event("edited").await;
        assert_eq!(event["id"], id.as_str(), "{who}: {event}");
        assert_eq!(event["content"], "see you at 6", "{who}: {event}");
        assert!(event["edited_at"].is_string(), "{who}: {event}");
    }
    // The editing socket gets its reply, not the event as well.
    alice_ws.expect_no_event_of("edited", QUIET_MS).await;

    bob_on_b.request(react(&id, "👍", "add")).await.expect(OK);
    let event = alice_ws.next_event("reaction").await;
    assert_eq!(
        (
            event["message_id"].as_str(),
            event["user_id"].as_str(),
            event["emoji"].as_str()
        ),
        (Some(id.as_str()), Some(bob.id.as_str()), Some("👍"))
    );
    assert_eq!(event["conversation"], dm(&alice.id, &bob.id).as_str());
    // Resume on the other process returns the new text and the counts.
    let resumed = alice_on_b
        .resume(json!({ dm(&alice.id, &bob.id): 0 }))
        .await;
    resumed.expect(OK);
    let message = resumed.data["messages"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["id"] == id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("the edited message in {}", resumed.raw));
    assert_eq!(message["content"], "see you at 6");
    assert_eq!(
        message["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": false}])
    );
}

#[tokio::test]
async fn mentions_reach_members_through_do_not_disturb_and_all_is_for_admins() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let conversation = group_conv(&c.group);
    set_my_settings(&app, &c.member, &c.group, &json!({"dnd": true})).await;
    let mut owner_ws = app.connect_ws(&c.owner).await;
    let mut admin_ws = app.connect_ws(&c.admin).await;
    let mut member_ws = app.connect_ws(&c.member).await;

    // A plain member may not mention everybody; nothing is stored.
    group_send(
        &mut member_ws,
        &c.group,
        "wake up",
        json!({"mentions": ["all"]}),
    )
    .await
    .expect(FORBIDDEN);

    // Outsiders are dropped, repeats folded.
    let sent = group_send(
        &mut owner_ws,
        &c.group,
        "@member look",
        json!({"mentions": [c.member.id, c.outsider.id, c.member.id]}),
    )
    .await;
    sent.expect(OK);
    assert_eq!(sent.data["mentions"], json!([c.member.id]), "{}", sent.raw);
    // On do-not-disturb, only the mention comes through, flagged.
    let pushed = next_chat_message(&mut member_ws).await;
    assert_eq!(pushed["content"], "@member look");
    assert_eq!(pushed["mentioned"], true, "{pushed}");
    let seen_by_admin = next_chat_message(&mut admin_ws).await;
    assert!(seen_by_admin.get("mentioned").is_none(), "{seen_by_admin}");
    group_send(&mut owner_ws, &c.group, "no mention", json!({}))
        .await
        .expect(OK);
    member_ws.expect_no_event_of("message", QUIET_MS).await;

    let listed = entry(&conversations(&app, &c.member).await, &conversation)
        .expect("the group in the member's recent chats");
    assert_eq!(listed["mentions_unread"], 1, "{listed}");
    let summary = member_ws.unread_in(&conversation).await;
    assert_eq!(summary.data["mentions_unread"], 1, "{}", summary.raw);
    let overview = member_ws.request(json!({"op_type": 3})).await;
    let mine = overview.data["conversations"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["conversation"] == conversation.as_str())
        })
        .cloned()
        .unwrap_or_else(|| panic!("the group in {}", overview.raw));
    assert_eq!(mine["mentions_unread"], 1, "{mine}");

    // An admin may mention everybody; reading past it clears the count.
    let all = group_send(
        &mut admin_ws,
        &c.group,
        "everyone: release",
        json!({"mentions": ["all"]}),
    )
    .await;
    all.expect(OK);
    assert_eq!(all.data["mentions"], json!(["all"]));
    let pushed = next_chat_message(&mut member_ws).await;
    assert_eq!(pushed["mentioned"], true, "{pushed}");
    let listed = entry(&conversations(&app, &c.member).await, &conversation).unwrap();
    assert_eq!(listed["mentions_unread"], 2, "{listed}");
    member_ws.mark_read(&id_of(&all)).await.expect(OK);
    let listed = entry(&conversations(&app, &c.member).await, &conversation).unwrap();
    assert_eq!(listed["mentions_unread"], 0, "{listed}");

    // A retry of a sent client_msg_id with other mentions is another message: refused, and
    // nobody is pushed to.
    let first = owner_ws
        .request(json!({"op_type": 6, "to": c.group, "type": 1, "content": "lunch?", "client_msg_id": "lunch-1"}))
        .await;
    first.expect(OK);
    next_chat_message(&mut admin_ws).await;
    let retried = owner_ws
        .request(json!({"op_type": 6, "to": c.group, "type": 1, "content": "lunch?", "client_msg_id": "lunch-1", "mentions": [c.member.id]}))
        .await;
    retried.expect(40009);
    member_ws.expect_no_event_of("message", QUIET_MS).await;
    // The same frame again is the same message.
    owner_ws
        .request(json!({"op_type": 6, "to": c.group, "type": 1, "content": "lunch?", "client_msg_id": "lunch-1"}))
        .await
        .expect(OK);

    // A mentions list only fits a group send; too many is a bad frame.
    let many: Vec<String> = (1..=60).map(|n| n.to_string()).collect();
    group_send(&mut owner_ws, &c.group, "crowd", json!({"mentions": many}))
        .await
        .expect(BAD_FRAME);
}

#[tokio::test]
async fn a_forward_names_the_author_only_to_who_reads_the_original() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let (dave, mut dave_ws) = app.login_ws("dave").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    let original = group_send(&mut alice_ws, &group, "minutes of the meeting", json!({})).await;
    original.expect(OK);
    let id = id_of(&original);

    // Carol is in the group: she sees who wrote it.
    let to_carol = bob_ws
        .request(json!({"op_type": 1, "to": carol.id, "forward_of": id}))
        .await;
    assert_eq!(to_carol.data["forwarded"], true, "{}", to_carol.raw);
    assert_eq!(
        to_carol.data["forwarded_from"],
        json!({"user_id": alice.id})
    );
    assert_eq!(to_carol.data["content"], "minutes of the meeting");
    let got = loop {
        let got = carol_ws.next_event("message").await;
        if got["conversation"] == dm(&bob.id, &carol.id).as_str() {
            break got;
        }
    };
    assert_eq!(got["forwarded_from"]["user_id"], alice.id.as_str(), "{got}");

    // Dave is not: a copy without its author.
    let to_dave = bob_ws
        .request(json!({"op_type": 1, "to": dave.id, "forward_of": id}))
        .await;
    assert_eq!(to_dave.data["forwarded"], true, "{}", to_dave.raw);
    assert!(
        to_dave.data.get("forwarded_from").is_none(),
        "{}",
        to_dave.raw
    );
    let got = dave_ws.next_event("message").await;
    assert!(got.get("forwarded_from").is_none(), "{got}");

    // Dave cannot forward what he cannot read; an unknown id reads the same.
    let unreadable = dave_ws
        .request(json!({"op_type": 1, "to": bob.id, "forward_of": id}))
        .await;
    unreadable.expect(NOT_FOUND);
    let unknown = dave_ws
        .request(
            json!({"op_type": 1, "to": bob.id, "forward_of": crate::ws_client::UNKNOWN_MESSAGE_ID}),
        )
        .await;
    unknown.expect(NOT_FOUND);
    assert_eq!(unreadable.raw["msg"], unknown.raw["msg"]);
    // A copy speaks in its author's name: the forwarder cannot edit it.
    let copy = id_of(&to_carol);
    bob_ws
        .request(edit(&copy, "minutes: the meeting is cancelled"))
        .await
        .expect(FORBIDDEN);
    // A forward carries nothing of its own.
    bob_ws
        .request(json!({"op_type": 1, "to": carol.id, "forward_of": id, "content": "extra"}))
        .await
        .expect(BAD_FRAME);
    // A reply must quote a message of the same conversation.
    bob_ws
        .request(json!({"op_type": 1, "to": alice.id, "type": 1, "content": "re", "reply_to": id}))
        .await
        .expect(NOT_FOUND);
}

#[tokio::test]
async fn group_pins_are_for_admins_and_an_ex_member_gets_nothing_new() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let conversation = group_conv(&c.group);
    let mut owner_ws = app.connect_ws(&c.owner).await;
    let mut member_ws = app.connect_ws(&c.member).await;
    let own = group_send(&mut member_ws, &c.group, "pineapple pizza vote", json!({})).await;
    own.expect(OK);
    let own_id = id_of(&own);
    let by_owner = group_send(&mut owner_ws, &c.group, "pineapple is banned", json!({})).await;
    let owner_id = id_of(&by_owner);

    let refused = pin(&app, &c.member, &conversation, &owner_id).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let pinned = pin(&app, &c.admin, &conversation, &owner_id).await;
    assert_eq!(pinned.status(), StatusCode::CREATED);
    let event = member_ws.next_event("pinned").await;
    assert_eq!(event["by"], c.admin.id.as_str(), "{event}");
    assert_eq!(event["message"]["id"], owner_id.as_str(), "{event}");
    assert_eq!(
        event["message"]["content"], "pineapple is banned",
        "{event}"
    );
    let list = json_of(pins_of(&app, &c.member, &conversation).await).await;
    assert_eq!(
        list["pins"][0]["message"]["id"],
        owner_id.as_str(),
        "{list}"
    );
    assert_eq!(
        pins_of(&app, &c.outsider, &conversation).await.status(),
        StatusCode::FORBIDDEN
    );

    let left = leave(&app, &c.member, &c.group).await;
    assert!(left.status().is_success(), "leave: {}", left.status());
    // Nothing of the group any more: pins, reactions, edits, search.
    assert_eq!(
        pins_of(&app, &c.member, &conversation).await.status(),
        StatusCode::FORBIDDEN
    );
    member_ws
        .request(react(&owner_id, "👍", "add"))
        .await
        .expect(NOT_FOUND);
    member_ws
        .request(edit(&own_id, "pineapple pizza vote (closed)"))
        .await
        .expect(NOT_FOUND);
    let found = hits(&app, &c.member, "q=pineapple").await;
    assert_eq!(found["results"], json!([]), "{found}");
    // The member's own message kept its text; the others still find both.
    let found = hits(&app, &c.owner, "q=pineapple").await;
    assert_eq!(
        hit_contents(&found),
        vec!["pineapple is banned", "pineapple pizza vote"]
    );
    // Edits and reactions after the leave reach nobody from the ex-member.
    owner_ws.expect_no_event_of("edited", 100).await;
    owner_ws.expect_no_event_of("reaction", 100).await;

    // An admin unpins; a recalled message leaves the pins by itself.
    let gone = app
        .delete(
            &c.admin.http,
            &format!("/conversations/{conversation}/pins/{owner_id}"),
        )
        .await;
    assert_eq!(gone.status(), StatusCode::OK);
    assert_eq!(
        pin(&app, &c.owner, &conversation, &owner_id).await.status(),
        StatusCode::CREATED
    );
    owner_ws.recall(&owner_id).await.expect(OK);
    let list = json_of(pins_of(&app, &c.owner, &conversation).await).await;
    assert_eq!(list["pins"], json!([]), "{list}");
}

#[tokio::test]
async fn a_block_stops_reactions_and_edits_toward_the_blocker() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let from_alice = alice_ws.send_to(&bob.id, "hello bob").await;
    let alice_id = id_of(&from_alice);
    let from_bob = bob_ws.send_to(&alice.id, "hello alice").await;
    let bob_id = id_of(&from_bob);

    let blocked = app
        .post(&bob.http, "/blocks", &json!({ "user_id": alice.id }))
        .await;
    assert!(blocked.status().is_success(), "{}", blocked.status());

    alice_ws
        .request(react(&bob_id, "❤️", "add"))
        .await
        .expect(FORBIDDEN);
    alice_ws
        .request(edit(&alice_id, "hello bob, please answer"))
        .await
        .expect(FORBIDDEN);
    alice_ws
        .request(
            json!({"op_type": 1, "to": bob.id, "type": 1, "content": "re", "reply_to": bob_id}),
        )
        .await
        .expect(FORBIDDEN);
    // Not even to her own message: bob would be told.
    alice_ws
        .request(react(&alice_id, "👍", "add"))
        .await
        .expect(FORBIDDEN);
    bob_ws.expect_no_event_of("reaction", QUIET_MS).await;
    bob_ws.expect_no_event_of("edited", 100).await;
    // The blocker still reacts to what he received.
    bob_ws
        .request(react(&alice_id, "👎", "add"))
        .await
        .expect(OK);
    let history = bob_ws.history_of(&dm(&alice.id, &bob.id)).await;
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert!(texts.contains(&"hello bob"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.contains("please answer")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn edits_end_with_the_window_the_count_a_recall_or_a_system_message() {
    let app = spawn_app_with(|s| s.messages.max_edits = 2).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let id = id_of(&alice_ws.send_to(&bob.id, "v1").await);
    alice_ws.request(edit(&id, "v2")).await.expect(OK);
    alice_ws.request(edit(&id, "v3")).await.expect(OK);
    alice_ws.request(edit(&id, "v4")).await.expect(FORBIDDEN);
    let page = bob_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    assert_eq!(page.data["messages"][0]["content"], "v3", "{}", page.raw);
    // Content rules as for a send.
    let long = "x".repeat(app.settings.messages.max_content_chars.get() + 1);
    alice_ws
        .request(edit(&id, &long))
        .await
        .expect(crate::ws_client::TOO_LONG);
    alice_ws
        .request(edit(&id, "bell\u{7}"))
        .await
        .expect(BAD_FRAME);

    let recalled = id_of(&alice_ws.send_to(&bob.id, "oops").await);
    alice_ws.recall(&recalled).await.expect(OK);
    alice_ws
        .request(edit(&recalled, "fixed"))
        .await
        .expect(FORBIDDEN);

    // A pin notice is a system message: nobody edits or reacts to it.
    let conversation = dm(&alice.id, &bob.id);
    assert_eq!(
        pin(&app, &alice, &conversation, &id).await.status(),
        StatusCode::CREATED
    );
    alice_ws.keep_system_notices();
    let notice = alice_ws.next_event("message").await;
    assert_eq!(notice["type"], crate::ws_client::SYSTEM_TYPE, "{notice}");
    let described = crate::groups_support::system_content(&notice).expect("a system notice");
    assert_eq!(
        described,
        json!({"action": "pinned", "message_id": id, "by": alice.id}),
        "{notice}"
    );
    let notice_id = notice["id"].as_str().unwrap();
    alice_ws
        .request(edit(notice_id, "mine"))
        .await
        .expect(FORBIDDEN);
    alice_ws
        .request(json!({"op_type": 1, "to": bob.id, "type": 1, "content": "why?", "reply_to": notice_id}))
        .await
        .expect(FORBIDDEN);
    alice_ws
        .request(react(notice_id, "👍", "add"))
        .await
        .expect(FORBIDDEN);

    // Past the window nothing is editable.
    let closed = spawn_app_with(|s| s.messages.edit_window_secs = 0).await;
    let (_, mut carol_ws) = closed.login_ws("carol").await;
    let (dave, _) = closed.login_ws("dave").await;
    let id = id_of(&carol_ws.send_to(&dave.id, "final").await);
    carol_ws
        .request(edit(&id, "not final"))
        .await
        .expect(FORBIDDEN);
}

#[tokio::test]
async fn reactions_hold_one_of_each_and_a_bounded_set_of_emoji() {
    let app = spawn_app_with(|s| s.messages.max_reaction_emoji = nz!(3)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let id = id_of(&alice_ws.send_to(&bob.id, "vote").await);

    alice_ws.request(react(&id, "👍", "add")).await.expect(OK);
    let second = bob_ws.request(react(&id, "👍", "add")).await;
    assert_eq!(
        second.data["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}])
    );
    // Again: nothing changes and nobody is told.
    let again = bob_ws.request(react(&id, "👍", "add")).await;
    assert_eq!(again.data["reactions"][0]["count"], 2, "{}", again.raw);
    alice_ws.next_event("reaction").await;
    alice_ws.expect_no_event_of("reaction", QUIET_MS).await;
    // A skin-tone variant is one grapheme; a text pair is not an emoji.
    bob_ws.request(react(&id, "👋🏽", "add")).await.expect(OK);
    bob_ws
        .request(react(&id, "👍👍", "add"))
        .await
        .expect(BAD_FRAME);
    alice_ws.request(react(&id, "🎉", "add")).await.expect(OK);
    // Three distinct emoji on the message: a fourth is refused for anybody.
    let over = alice_ws.request(react(&id, "🚀", "add")).await;
    over.expect(BAD_FRAME);
    assert_eq!(over.data["code"], "limit_reached", "{}", over.raw);
    let page = bob_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    let emoji: Vec<&str> = page.data["messages"][0]["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["emoji"].as_str().unwrap())
        .collect();
    assert_eq!(emoji.len(), 3, "{emoji:?}");
    assert!(!emoji.contains(&"🚀"), "{emoji:?}");
    // Removing what was never there is a no-op.
    bob_ws.request(react(&id, "🎉", "remove")).await.expect(OK);
    bob_ws
        .request(json!({"op_type": 10, "message_id": id, "emoji": "👍", "action": "toggle"}))
        .await
        .expect(BAD_FRAME);
}

#[tokio::test]
async fn each_new_anti_spam_rule_refuses_past_its_limit() {
    let app = spawn_app_with(|s| {
        s.antispam.edits_limit = nz!(2);
        s.antispam.reactions_limit = nz!(2);
        s.antispam.pins_limit = nz!(2);
        s.antispam.search_per_minute = nz!(2);
    })
    .await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let id = id_of(&alice_ws.send_to(&bob.id, "draft 0").await);

    for n in 1..=2 {
        alice_ws
            .request(edit(&id, &format!("draft {n}")))
            .await
            .expect(OK);
    }
    let refused = alice_ws.request(edit(&id, "draft 3")).await;
    refused.expect(REFUSED);
    assert_eq!(refused.data["rule"], "edits", "{}", refused.raw);

    for emoji in ["👍", "🎉"] {
        bob_ws.request(react(&id, emoji, "add")).await.expect(OK);
    }
    let refused = bob_ws.request(react(&id, "👍", "remove")).await;
    refused.expect(REFUSED);
    assert_eq!(refused.data["rule"], "reactions", "{}", refused.raw);

    let other = id_of(&alice_ws.send_to(&bob.id, "second").await);
    for target in [&id, &other] {
        assert_eq!(
            pin(&app, &alice, &conversation, target).await.status(),
            StatusCode::CREATED
        );
    }
    let third = id_of(&alice_ws.send_to(&bob.id, "third").await);
    let body = expect_status(
        pin(&app, &alice, &conversation, &third).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["rule"], "pins", "{body}");

    for _ in 0..2 {
        hits(&app, &bob, "q=draft").await;
    }
    let body = expect_status(
        search(&app, &bob, "q=draft").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["rule"], "search", "{body}");
    // Somebody else is not slowed by bob's searches.
    hits(&app, &alice, "q=draft").await;
}

#[tokio::test]
async fn search_pages_filters_and_forgets_edited_and_recalled_text() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, _) = app.login_ws("bob").await;
    let (carol, _) = app.login_ws("carol").await;
    let with_bob = dm(&alice.id, &bob.id);
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(id_of(
            &alice_ws
                .send_to(&bob.id, &format!("Kiwi harvest {n}"))
                .await,
        ));
    }
    let to_carol = alice_ws.send_to(&carol.id, "kiwi for carol").await;
    assert!(
        [DELIVERED, 50005].contains(&to_carol.code),
        "{}",
        to_carol.raw
    );

    // Newest first, two by two, through `before`.
    let first = hits(&app, &alice, "q=KIWI&limit=2").await;
    assert_eq!(
        hit_contents(&first),
        vec!["kiwi for carol", "Kiwi harvest 5"]
    );
    assert_eq!(first["has_more"], true, "{first}");
    let before = first["next_before"].as_str().expect("a cursor").to_owned();
    let second = hits(&app, &alice, &format!("q=kiwi&limit=2&before={before}")).await;
    assert_eq!(
        hit_contents(&second),
        vec!["Kiwi harvest 4", "Kiwi harvest 3"]
    );
    assert_eq!(second["results"][0]["conversation"], with_bob.as_str());

    // One conversation only; all words must match.
    let only_bob = hits(
        &app,
        &alice,
        &format!("q=kiwi&conversation={with_bob}&limit=50"),
    )
    .await;
    assert_eq!(hit_contents(&only_bob).len(), 5, "{only_bob}");
    let both_words = hits(&app, &alice, "q=harvest%202").await;
    assert_eq!(hit_contents(&both_words), vec!["Kiwi harvest 2"]);
    // Carol reads only her own conversation with alice.
    let carols = hits(&app, &carol, "q=kiwi").await;
    assert_eq!(hit_contents(&carols), vec!["kiwi for carol"]);
    let not_hers = search(&app, &carol, &format!("q=kiwi&conversation={with_bob}")).await;
    assert_eq!(not_hers.status(), StatusCode::FORBIDDEN);

    // An edit moves the terms; a recall removes the message.
    alice_ws
        .request(edit(&ids[0], "mango harvest 1"))
        .await
        .expect(OK);
    alice_ws.recall(&ids[4]).await.expect(OK);
    let after = hits(&app, &alice, &format!("q=kiwi&conversation={with_bob}")).await;
    assert_eq!(
        hit_contents(&after),
        vec!["Kiwi harvest 4", "Kiwi harvest 3", "Kiwi harvest 2"]
    );
    let mango = hits(&app, &bob, "q=mango").await;
    assert_eq!(hit_contents(&mango), vec!["mango harvest 1"]);

    // Bad queries: clear errors.
    for query in [
        "q=k",
        "q=",
        "q=kiwi&limit=0",
        "q=kiwi&limit=51",
        "q=kiwi&before=nope",
    ] {
        let resp = search(&app, &alice, query).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn a_client_back_from_offline_gets_what_changed_in_what_it_holds() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(id_of(&alice_ws.send_to(&bob.id, text).await));
    }
    let first = bob_ws
        .request(json!({"op_type": 7, "since": {conversation.as_str(): 3}, "changed_since": 0}))
        .await;
    first.expect(OK);
    assert_eq!(
        (
            first.data["changed"].clone(),
            first.data["recalled"].clone()
        ),
        (json!([]), json!([])),
        "{}",
        first.raw
    );
    assert_eq!(first.data["changed_more"], false, "{}", first.raw);
    let until = first.data["changed_until"]
        .as_str()
        .unwrap_or_else(|| panic!("changed_until in {}", first.raw))
        .to_owned();
    bob_ws.close().await;

    // While bob is away: an edit, a reaction, a recall and a new message.
    alice_ws
        .request(edit(&ids[0], "one, edited"))
        .await
        .expect(OK);
    alice_ws
        .request(react(&ids[1], "🎉", "add"))
        .await
        .expect(OK);
    alice_ws.recall(&ids[2]).await.expect(OK);
    alice_ws.send_to(&bob.id, "four").await;

    let mut bob_ws = app.connect_ws(&bob).await;
    let back = bob_ws
        .request(json!({"op_type": 7, "since": {conversation.as_str(): 3}, "changed_since": until}))
        .await;
    back.expect(OK);
    let contents = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        contents(&back.data["messages"]),
        vec!["four"],
        "{}",
        back.raw
    );
    assert_eq!(
        contents(&back.data["changed"]),
        vec!["one, edited", "two"],
        "{}",
        back.raw
    );
    assert_eq!(
        back.data["changed"][1]["reactions"],
        json!([{"emoji": "🎉", "count": 1, "me": false}])
    );
    assert_eq!(
        back.data["recalled"],
        json!([{"conversation": conversation, "id": ids[2], "seq": 3}])
    );
    assert_eq!(back.data["changed_more"], false);
    // Without changed_since the answer is as before.
    let plain = bob_ws
        .request(json!({"op_type": 7, "since": {conversation.as_str(): 4}}))
        .await;
    assert!(plain.data.get("changed").is_none(), "{}", plain.raw);
    bob_ws
        .request(json!({"op_type": 7, "changed_since": "last week"}))
        .await
        .expect(BAD_FRAME);
}

#[tokio::test]
async fn a_muted_member_neither_edits_nor_reacts_and_the_lobby_has_no_pins() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let mut member_ws = app.connect_ws(&c.member).await;
    let mut owner_ws = app.connect_ws(&c.owner).await;
    let own = id_of(&group_send(&mut member_ws, &c.group, "first draft", json!({})).await);
    let owners = id_of(&group_send(&mut owner_ws, &c.group, "the rules", json!({})).await);
    let muted = crate::groups_support::mute(&app, &c.admin, &c.group, &c.member.id, 600).await;
    assert!(muted.status().is_success(), "mute: {}", muted.status());

    member_ws
        .request(edit(&own, "second draft"))
        .await
        .expect(FORBIDDEN);
    member_ws
        .request(react(&owners, "👍", "add"))
        .await
        .expect(FORBIDDEN);
    owner_ws.expect_no_event_of("reaction", QUIET_MS).await;
    owner_ws.expect_no_event_of("edited", 100).await;

    // Everyone reads the lobby; nobody manages it, so nobody pins there.
    let lobby = id_of(&group_send(&mut owner_ws, "", "hello lobby", json!({})).await);
    let refused = pin(&app, &c.owner, &group_conv("0"), &lobby).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let listed = json_of(pins_of(&app, &c.member, &group_conv("0")).await).await;
    assert_eq!(listed["pins"], json!([]), "{listed}");
}

#[tokio::test]
async fn a_forwarded_file_is_downloadable_through_the_copy_only() {
    use crate::files_support::{download, file_id, png, send_file_to, upload_ok};
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, _) = app.login_ws("carol").await;
    let (dave, _) = app.login_ws("dave").await;
    let file = file_id(&upload_ok(&app, &alice, png(16, 12), "photo.png").await);
    let sent = send_file_to(&mut alice_ws, &bob.id, 2, &file).await;
    let original = id_of(&sent);
    assert_eq!(
        download(&app, &carol.http, &file, None).await.status(),
        StatusCode::NOT_FOUND,
        "carol sees nothing before the forward"
    );

    let copy = bob_ws
        .request(json!({"op_type": 1, "to": carol.id, "forward_of": original}))
        .await;
    assert!([DELIVERED, 50005].contains(&copy.code), "{}", copy.raw);
    assert_eq!(copy.data["type"], 2, "{}", copy.raw);
    assert_eq!(
        copy.data["attachment"]["file_id"],
        file.as_str(),
        "{}",
        copy.raw
    );
    assert_eq!(
        download(&app, &carol.http, &file, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        download(&app, &dave.http, &file, None).await.status(),
        StatusCode::NOT_FOUND,
        "nobody else"
    );
    // Bob recalls his copy: carol's access went with it.
    bob_ws.recall(&id_of(&copy)).await.expect(OK);
    assert_eq!(
        download(&app, &carol.http, &file, None).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn changes_of_one_millisecond_are_paged_without_losing_any() {
    let app = spawn_app_with(|s| s.messages.resume_max = nz!(3)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let original = id_of(&alice_ws.send_to(&bob.id, "the original").await);
    let mut replies = Vec::new();
    for n in 0..4 {
        let reply = bob_ws
            .request(json!({"op_type": 1, "to": alice.id, "type": 1, "content": format!("re {n}"), "reply_to": original}))
            .await;
        replies.push(id_of(&reply));
    }
    // One recall stamps the original and its four replies with the same millisecond.
    alice_ws.recall(&original).await.expect(OK);

    let mut cursor = json!(0);
    let (mut changed, mut recalled) = (Vec::new(), Vec::new());
    for page in 0.. {
        assert!(page < 10, "the changes end");
        let reply = bob_ws
            .request(
                json!({"op_type": 7, "since": {conversation.as_str(): 5}, "changed_since": cursor}),
            )
            .await;
        reply.expect(OK);
        for m in reply.data["changed"].as_array().unwrap() {
            changed.push(m["id"].as_str().unwrap().to_owned());
            assert_eq!(m["reply_to"]["recalled"], true, "{m}");
        }
        for r in reply.data["recalled"].as_array().unwrap() {
            recalled.push(r["id"].as_str().unwrap().to_owned());
        }
        cursor = reply.data["changed_until"].clone();
        if reply.data["changed_more"] == false {
            break;
        }
    }
    changed.sort();
    changed.dedup();
    let mut expected = replies.clone();
    expected.sort();
    assert_eq!(changed, expected, "every reply's quote change");
    assert!(recalled.contains(&original), "{recalled:?}");
}
