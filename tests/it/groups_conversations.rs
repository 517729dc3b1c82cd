//! Recent chats and contacts (docs/groups.md, "Recent chats"): GET /conversations, pinning,
//! hiding, reading everything, unread that always equals op 3 (also across server nodes), and
//! GET /contacts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::groups_support::{
    assert_unread_matches_op3, conversations, entry, expect_status, ok_json, op3_unread,
    order_among, patch_conversation, raw_history, read_conversation, set_my_settings,
};
use crate::helpers::{expect_error, spawn_app, spawn_app_sharing};
use crate::people_support::{assert_profile_shape, items, make_friends};
use crate::ws_client::{DELIVERED, OK, dm, group_conv};

/// Lets the clock move on, so "the time of the last message" orders sends made one after another.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn groups_conversations_list_both_kinds() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;

    bob_ws.send_to(&alice.id, "one").await.expect(DELIVERED);
    bob_ws.send_to(&alice.id, "two").await.expect(DELIVERED);
    tick().await;
    let last = carol_ws.send_group(&group, "group hello").await;
    last.expect(OK);

    let body = ok_json(
        app.get(&alice.http, "/conversations").await,
        "GET /conversations",
    )
    .await;
    let list = items(&body, "conversations");
    let direct = entry(&list, &dm(&alice.id, &bob.id)).expect("the 1:1 chat is listed");
    assert_eq!(direct["kind"], "user", "{direct}");
    assert_profile_shape(&direct["peer"]);
    assert_eq!(direct["peer"]["id"], bob.id);
    assert_eq!(direct["peer"]["user_name"], "bob");
    assert_eq!(direct["last_message"]["content"], "two", "{direct}");
    assert_eq!(direct["last_message"]["from"], bob.id);
    assert_eq!(direct["unread"], 2, "{direct}");
    for flag in ["pinned", "dnd", "folded", "hidden"] {
        assert_eq!(direct[flag], false, "{flag} in {direct}");
    }

    let conversation = group_conv(&group);
    let grouped = entry(&list, &conversation).expect("the group chat is listed");
    assert_eq!(grouped["kind"], "group", "{grouped}");
    assert_eq!(grouped["group"]["id"], group, "{grouped}");
    assert_eq!(grouped["group"]["name"], "team");
    assert!(grouped["group"].get("avatar").is_some(), "{grouped}");
    assert_eq!(grouped["group"]["member_count"], 3);
    assert!(grouped["peer"].is_null(), "a group has no peer: {grouped}");
    assert_eq!(grouped["last_message"]["content"], "group hello");
    assert_eq!(grouped["last_message"]["id"], last.data["id"]);
    for flag in ["pinned", "dnd", "folded", "hidden"] {
        assert_eq!(grouped[flag], false, "{flag} in {grouped}");
    }
    assert_unread_matches_op3(&list, &mut alice_ws).await;

    // Newest first: the group message came last.
    assert_eq!(
        order_among(&list, &[&conversation, &dm(&alice.id, &bob.id)]),
        vec![conversation.clone(), dm(&alice.id, &bob.id)]
    );

    // Paginated.
    let body = ok_json(
        app.get(&alice.http, "/conversations?limit=1").await,
        "a page",
    )
    .await;
    assert_eq!(items(&body, "conversations").len(), 1);
    assert_eq!(body["has_more"], true, "{body}");
    let body = ok_json(
        app.get(&alice.http, "/conversations?limit=1&offset=1")
            .await,
        "the next page",
    )
    .await;
    assert_eq!(body["offset"], 1, "{body}");
    assert_eq!(items(&body, "conversations").len(), 1);

    // Carol never talked to Bob: she has no 1:1 with him.
    let hers = conversations(&app, &carol).await;
    assert!(entry(&hers, &dm(&bob.id, &carol.id)).is_none(), "{hers:?}");
    assert!(entry(&hers, &conversation).is_some(), "{hers:?}");
}

#[tokio::test]
async fn groups_conversations_pinned_first_then_newest_last_message() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let (dave, mut dave_ws) = app.login_ws("dave").await;
    let group = app.group_with(&alice, "team", &[&dave]).await;
    let with_bob = dm(&alice.id, &bob.id);
    let with_carol = dm(&alice.id, &carol.id);
    let in_group = group_conv(&group);
    let all = [with_bob.as_str(), with_carol.as_str(), in_group.as_str()];
    tick().await;

    bob_ws
        .send_to(&alice.id, "from bob")
        .await
        .expect(DELIVERED);
    tick().await;
    dave_ws.send_group(&group, "from dave").await.expect(OK);
    tick().await;
    carol_ws
        .send_to(&alice.id, "from carol")
        .await
        .expect(DELIVERED);

    let list = conversations(&app, &alice).await;
    assert_eq!(
        order_among(&list, &all),
        vec![with_carol.clone(), in_group.clone(), with_bob.clone()]
    );

    let body = ok_json(
        patch_conversation(&app, &alice, &with_bob, &json!({"pinned": true})).await,
        "pin",
    )
    .await;
    assert_eq!(
        body,
        json!({"conversation": with_bob, "pinned": true, "hidden": false})
    );
    let list = conversations(&app, &alice).await;
    assert_eq!(
        order_among(&list, &all),
        vec![with_bob.clone(), with_carol.clone(), in_group.clone()]
    );
    assert_eq!(list[0]["conversation"], with_bob, "pinned first of all");
    assert_eq!(list[0]["pinned"], true);

    tick().await;
    dave_ws.send_group(&group, "dave again").await.expect(OK);
    let list = conversations(&app, &alice).await;
    assert_eq!(
        order_among(&list, &all),
        vec![with_bob.clone(), in_group.clone(), with_carol.clone()]
    );

    // Two pinned: by their last message among themselves.
    ok_json(
        patch_conversation(&app, &alice, &in_group, &json!({"pinned": true})).await,
        "pin the group",
    )
    .await;
    let list = conversations(&app, &alice).await;
    assert_eq!(
        order_among(&list, &all),
        vec![in_group.clone(), with_bob.clone(), with_carol.clone()]
    );

    for c in [&with_bob, &in_group] {
        ok_json(
            patch_conversation(&app, &alice, c, &json!({"pinned": false})).await,
            "unpin",
        )
        .await;
    }
    let list = conversations(&app, &alice).await;
    assert_eq!(
        order_among(&list, &all),
        vec![in_group.clone(), with_carol.clone(), with_bob.clone()]
    );
    // Pinning is the caller's own: bob's view has no pin.
    let his = entry(&conversations(&app, &bob).await, &with_bob).expect("listed for bob");
    assert_eq!(his["pinned"], false, "{his}");
    assert_unread_matches_op3(&list, &mut alice_ws).await;
}

#[tokio::test]
async fn groups_conversations_unread_equals_op3_after_delete_and_recall() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    let with_alice = dm(&alice.id, &bob.id);
    let in_group = group_conv(&group);

    let mut sent = Vec::new();
    for text in ["d1", "d2", "d3"] {
        let reply = alice_ws.send_to(&bob.id, text).await;
        reply.expect(DELIVERED);
        sent.push(reply.message());
    }
    let group_before = op3_unread(&mut bob_ws, &in_group).await;
    let mut group_sent = Vec::new();
    for text in ["g1", "g2", "g3"] {
        let reply = carol_ws.send_group(&group, text).await;
        reply.expect(OK);
        group_sent.push(reply.message());
    }

    let check = |expected_dm: i64, expected_group: i64| {
        let app = &app;
        let bob = &bob;
        let with_alice = with_alice.clone();
        let in_group = in_group.clone();
        async move {
            let list = conversations(app, bob).await;
            let direct = entry(&list, &with_alice).expect("dm listed");
            assert_eq!(direct["unread"], expected_dm, "{direct}");
            let grouped = entry(&list, &in_group).expect("group listed");
            assert_eq!(grouped["unread"], expected_group, "{grouped}");
            list
        }
    };

    let list = check(3, group_before + 3).await;
    assert_unread_matches_op3(&list, &mut bob_ws).await;

    // Deleted for bob: no longer unread for him.
    bob_ws.delete_for_me(&sent[0].id).await.expect(OK);
    bob_ws.delete_for_me(&group_sent[0].id).await.expect(OK);
    let list = check(2, group_before + 2).await;
    assert_unread_matches_op3(&list, &mut bob_ws).await;

    // Recalled by the sender: unread for nobody.
    alice_ws.recall(&sent[2].id).await.expect(OK);
    carol_ws.recall(&group_sent[2].id).await.expect(OK);
    let list = check(1, group_before + 1).await;
    assert_unread_matches_op3(&list, &mut bob_ws).await;
    let direct = entry(&list, &with_alice).expect("dm listed");
    assert_ne!(
        direct["last_message"]["id"], sent[2].id,
        "a recalled message is not the last message: {direct}"
    );

    // Carol's own group messages are never unread for her.
    let hers = conversations(&app, &carol).await;
    assert_unread_matches_op3(&hers, &mut carol_ws).await;
}

#[tokio::test]
async fn groups_conversations_hidden_until_a_new_message_arrives() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&carol]).await;
    let with_bob = dm(&alice.id, &bob.id);
    let in_group = group_conv(&group);

    bob_ws.send_to(&alice.id, "hello").await.expect(DELIVERED);
    carol_ws.send_group(&group, "team hello").await.expect(OK);

    for c in [&with_bob, &in_group] {
        let body = ok_json(
            patch_conversation(&app, &alice, c, &json!({"hidden": true})).await,
            "hide",
        )
        .await;
        assert_eq!(body["conversation"], **c);
        assert_eq!(body["hidden"], true, "{body}");
        assert_eq!(body["pinned"], false, "{body}");
    }
    let list = conversations(&app, &alice).await;
    assert!(entry(&list, &with_bob).is_none(), "hidden: {list:?}");
    assert!(entry(&list, &in_group).is_none(), "hidden: {list:?}");
    // Only for alice.
    assert!(entry(&conversations(&app, &bob).await, &with_bob).is_some());

    // Hiding keeps the history.
    let history = raw_history(&mut alice_ws, &with_bob).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["content"], "hello");

    bob_ws
        .send_to(&alice.id, "still there?")
        .await
        .expect(DELIVERED);
    let list = conversations(&app, &alice).await;
    let back = entry(&list, &with_bob).expect("back after a new message");
    assert_eq!(back["hidden"], false, "{back}");
    assert_eq!(back["last_message"]["content"], "still there?");
    assert_eq!(back["unread"], 2, "{back}");
    assert!(entry(&list, &in_group).is_none(), "the group stays hidden");

    carol_ws.send_group(&group, "ping").await.expect(OK);
    let list = conversations(&app, &alice).await;
    let back = entry(&list, &in_group).expect("the group is back");
    assert_eq!(back["last_message"]["content"], "ping");
    assert_unread_matches_op3(&list, &mut alice_ws).await;
}

#[tokio::test]
async fn groups_conversations_patch_errors() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let theirs = app.group_with(&bob, "theirs", &[&carol]).await;

    for malformed in ["nonsense", "u:abc:1", "g:x", "x:1:2"] {
        let resp = patch_conversation(&app, &alice, malformed, &json!({"pinned": true})).await;
        expect_status(resp, StatusCode::BAD_REQUEST).await;
    }
    for foreign in [dm(&bob.id, &carol.id), group_conv(&theirs)] {
        let resp = patch_conversation(&app, &alice, &foreign, &json!({"hidden": true})).await;
        expect_status(resp, StatusCode::FORBIDDEN).await;
        let resp = read_conversation(&app, &alice, &foreign).await;
        expect_status(resp, StatusCode::FORBIDDEN).await;
    }
    let resp = read_conversation(&app, &alice, "nonsense").await;
    expect_status(resp, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn groups_conversations_need_a_session() {
    let app = spawn_app().await;
    let anonymous = &app.client;
    for path in [
        "/conversations",
        "/contacts",
        "/groups/1",
        "/groups/1/members",
    ] {
        let resp = app.get(anonymous, path).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    for path in [
        "/groups/1/join",
        "/groups/1/transfer",
        "/groups/1/mutes",
        "/conversations/u:1:2/read",
    ] {
        let resp = app.post(anonymous, path, &json!({"user_id": "1"})).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn groups_conversations_read_zeroes_unread_and_sends_the_receipt() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    let with_alice = dm(&alice.id, &bob.id);
    let in_group = group_conv(&group);

    alice_ws.send_to(&bob.id, "one").await.expect(DELIVERED);
    let last = alice_ws.send_to(&bob.id, "two").await.message();
    carol_ws.send_group(&group, "g").await.expect(OK);
    let group_last = carol_ws.send_group(&group, "g2").await.message();
    assert_eq!(op3_unread(&mut bob_ws, &with_alice).await, 2);

    let body = ok_json(read_conversation(&app, &bob, &with_alice).await, "read").await;
    assert_eq!(body, json!({"conversation": with_alice, "seq": last.seq}));
    assert_eq!(
        alice_ws.next_event("read").await,
        json!({"conversation": with_alice, "user_id": bob.id, "seq": last.seq})
    );
    assert_eq!(op3_unread(&mut bob_ws, &with_alice).await, 0);
    let list = conversations(&app, &bob).await;
    assert_eq!(entry(&list, &with_alice).expect("listed")["unread"], 0);

    let body = ok_json(read_conversation(&app, &bob, &in_group).await, "read group").await;
    assert_eq!(body["conversation"], in_group);
    assert!(
        body["seq"].as_i64().expect("seq") >= group_last.seq,
        "read up to the last message: {body}"
    );
    let receipt = carol_ws.next_event("read").await;
    assert_eq!(receipt["conversation"], in_group);
    assert_eq!(receipt["user_id"], bob.id);
    assert_eq!(op3_unread(&mut bob_ws, &in_group).await, 0);
    let list = conversations(&app, &bob).await;
    assert_eq!(entry(&list, &in_group).expect("listed")["unread"], 0);
    let overview = bob_ws.unread_overview().await;
    assert!(
        overview
            .iter()
            .all(|(c, _, _)| *c != with_alice && *c != in_group),
        "{overview:?}"
    );
    assert_unread_matches_op3(&list, &mut bob_ws).await;
}

#[tokio::test]
async fn groups_conversations_unread_is_consistent_across_nodes() {
    let app = spawn_app().await;
    let node2 = spawn_app_sharing(&app).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    // Bob lives on the second node: his socket and a session made there.
    let bob2 = node2.log_in("bob").await;
    let mut bob_ws = node2.connect_ws(&bob2).await;
    let with_alice = dm(&alice.id, &bob.id);
    let in_group = group_conv(&group);

    for text in ["a", "b", "c"] {
        alice_ws.send_to(&bob.id, text).await.expect(DELIVERED);
    }
    for text in ["x", "y"] {
        carol_ws.send_group(&group, text).await.expect(OK);
    }

    let on_node1 = conversations(&app, &bob).await;
    let on_node2 = conversations(&node2, &bob2).await;
    assert_eq!(entry(&on_node1, &with_alice).expect("listed")["unread"], 3);
    assert_unread_matches_op3(&on_node1, &mut bob_ws).await;
    assert_unread_matches_op3(&on_node2, &mut bob_ws).await;
    let mut bob_ws1 = app.connect_ws(&bob).await;
    assert_unread_matches_op3(&on_node2, &mut bob_ws1).await;

    // Read on node 1 over HTTP: node 2 agrees at once, and alice (node 1) gets the receipt.
    ok_json(read_conversation(&app, &bob, &with_alice).await, "read").await;
    assert_eq!(alice_ws.next_event("read").await["user_id"], bob.id);
    assert_eq!(op3_unread(&mut bob_ws, &with_alice).await, 0);
    let on_node2 = conversations(&node2, &bob2).await;
    assert_eq!(entry(&on_node2, &with_alice).expect("listed")["unread"], 0);

    // Read the group with op 4 on node 2: node 1's list agrees.
    let last = bob_ws
        .request(json!({"op_type": 4, "conversation": in_group, "seq": 1_000_000}))
        .await;
    last.expect(OK);
    let on_node1 = conversations(&app, &bob).await;
    assert_eq!(entry(&on_node1, &in_group).expect("listed")["unread"], 0);
    assert_unread_matches_op3(&on_node1, &mut bob_ws).await;

    // A new message counted the same everywhere.
    alice_ws.send_to(&bob.id, "d").await.expect(DELIVERED);
    let on_node1 = conversations(&app, &bob).await;
    let on_node2 = conversations(&node2, &bob2).await;
    assert_eq!(entry(&on_node1, &with_alice).expect("listed")["unread"], 1);
    assert_eq!(entry(&on_node2, &with_alice).expect("listed")["unread"], 1);
    assert_unread_matches_op3(&on_node2, &mut bob_ws1).await;
}

#[tokio::test]
async fn groups_contacts_are_friends_and_groups_shown_in_contacts() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let dave = app.chatter("dave").await;
    make_friends(&app, &alice, &bob).await;
    make_friends(&app, &dave, &alice).await;
    let shown = app.group_with(&carol, "shown", &[&alice, &bob]).await;
    let _quiet = app.group_with(&alice, "quiet", &[&carol]).await;
    let settings = set_my_settings(&app, &alice, &shown, &json!({"show_in_contacts": true})).await;
    assert_eq!(settings["show_in_contacts"], true);

    let contacts = ok_json(app.get(&alice.http, "/contacts").await, "contacts").await;
    let mut friends: Vec<String> = contacts["friends"]
        .as_array()
        .unwrap_or_else(|| panic!("friends is an array: {contacts}"))
        .iter()
        .map(|f| {
            assert_profile_shape(f);
            f["id"].as_str().expect("id").to_owned()
        })
        .collect();
    friends.sort();
    let mut expected = vec![bob.id.clone(), dave.id.clone()];
    expected.sort();
    assert_eq!(friends, expected, "{contacts}");
    let groups: Vec<&Value> = contacts["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("groups is an array: {contacts}"))
        .iter()
        .collect();
    assert_eq!(groups.len(), 1, "{contacts}");
    assert_eq!(groups[0]["id"], shown);
    assert_eq!(groups[0]["name"], "shown");

    // Per member: bob did not turn it on; carol has no friends.
    let his = ok_json(app.get(&bob.http, "/contacts").await, "bob's contacts").await;
    assert_eq!(his["friends"].as_array().map(Vec::len), Some(1), "{his}");
    assert_eq!(his["friends"][0]["id"], alice.id);
    assert_eq!(his["groups"], json!([]), "{his}");
    let hers = ok_json(app.get(&carol.http, "/contacts").await, "carol's").await;
    assert_eq!(hers["friends"], json!([]), "{hers}");
    assert_eq!(hers["groups"], json!([]), "{hers}");

    // Turned off again.
    set_my_settings(&app, &alice, &shown, &json!({"show_in_contacts": false})).await;
    let contacts = ok_json(app.get(&alice.http, "/contacts").await, "contacts").await;
    assert_eq!(contacts["groups"], json!([]), "{contacts}");
}
