//! Groups over HTTP and op 6 (group send).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_error, json_of, spawn_app};
use crate::people_support::make_friends;
use crate::ws_client::{FORBIDDEN, NOT_FOUND, OK, dm, group_conv, ids};

const QUIET_MS: u64 = 400;

fn group_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("groups is an array: {body}"))
        .iter()
        .map(|g| g["id"].as_str().expect("group id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn groups_creating_one_makes_me_its_owner_and_member() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;

    let resp = app
        .post(&alice.http, "/groups", &json!({"name": "Rustaceans"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let group = json_of(resp).await["group"].clone();
    let id = group["id"].as_str().expect("id is a string").to_owned();
    assert!(
        id.bytes().all(|b| b.is_ascii_digit()) && id != "0",
        "{group}"
    );
    assert_eq!(group["name"], "Rustaceans");
    assert_eq!(group["owner_id"], alice.id);

    let listed = json_of(app.get(&alice.http, "/groups").await).await;
    assert_eq!(
        group_ids(&listed),
        vec![id.clone()],
        "the lobby is not listed"
    );
    let listed = &listed["groups"][0];
    assert_eq!(listed["name"], "Rustaceans");
    assert_eq!(listed["owner_id"], alice.id);

    let resp = app.get(&bob.http, "/groups").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(group_ids(&json_of(resp).await).is_empty());
}

#[tokio::test]
async fn groups_names_are_1_to_64_characters_after_trimming() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;

    for bad in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(65)}),
        json!({}),
    ] {
        let resp = app.post(&alice.http, "/groups", &bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    for good in ["x".repeat(64), "  padded  ".to_owned(), "ü".repeat(64)] {
        let resp = app
            .post(&alice.http, "/groups", &json!({ "name": good }))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{good:?}");
    }
}

#[tokio::test]
async fn groups_any_member_may_add_and_adding_twice_is_a_no_op() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let group = app.create_group(&alice, "team").await;
    let path = format!("/groups/{group}/members");
    // Friends are added at once (anybody else is invited: see abuse_invites.rs).
    make_friends(&app, &alice, &bob).await;
    make_friends(&app, &bob, &carol).await;

    let resp = app
        .post(&alice.http, &path, &json!({"user_id": bob.id}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["group_id"], group, "{body}");
    assert_eq!(body["user_id"], bob.id, "{body}");
    assert_eq!(body["status"], "joined", "{body}");
    let resp = app
        .post(&alice.http, &path, &json!({"user_id": bob.id}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "adding again is a no-op");

    // bob is a member now, not the owner, and may add too.
    let resp = app
        .post(&bob.http, &path, &json!({"user_id": carol.id}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for member in [&bob, &carol] {
        let listed = json_of(app.get(&member.http, "/groups").await).await;
        assert_eq!(group_ids(&listed), vec![group.clone()], "{}", member.name);
    }
}

#[tokio::test]
async fn groups_adding_needs_membership_a_known_group_and_a_known_user() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let mallory = app.chatter("mallory").await;
    let group = app.create_group(&alice, "team").await;

    let resp = app
        .post(
            &mallory.http,
            &format!("/groups/{group}/members"),
            &json!({"user_id": mallory.id}),
        )
        .await;
    expect_error(resp, StatusCode::FORBIDDEN, "not_a_member").await;

    let resp = app
        .post(
            &alice.http,
            "/groups/999999/members",
            &json!({"user_id": bob.id}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "unknown group");
    let resp = app
        .post(
            &alice.http,
            &format!("/groups/{group}/members"),
            &json!({"user_id": "999999"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "unknown user");

    // The lobby cannot be joined.
    let resp = app
        .post(
            &alice.http,
            "/groups/0/members",
            &json!({"user_id": bob.id}),
        )
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

#[tokio::test]
async fn groups_members_may_leave_but_the_owner_may_not() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    let leave = format!("/groups/{group}/members/me");

    assert_eq!(app.delete(&bob.http, &leave).await.status(), StatusCode::OK);
    assert!(group_ids(&json_of(app.get(&bob.http, "/groups").await).await).is_empty());
    assert_eq!(
        app.delete(&bob.http, &leave).await.status(),
        StatusCode::NOT_FOUND,
        "not a member any more"
    );
    assert_eq!(
        app.delete(&carol.http, &leave).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&alice.http, &leave).await.status(),
        StatusCode::CONFLICT,
        "the owner cannot leave"
    );
    assert!(
        app.delete(&alice.http, "/groups/0/members/me")
            .await
            .status()
            .is_client_error(),
        "the lobby cannot be left"
    );
}

#[tokio::test]
async fn groups_every_endpoint_needs_a_session() {
    let app = spawn_app().await;
    let anonymous = &app.client;
    let resp = app.post(anonymous, "/groups", &json!({"name": "x"})).await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.get(anonymous, "/groups").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app
        .post(anonymous, "/groups/1/members", &json!({"user_id": "1"}))
        .await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.delete(anonymous, "/groups/1/members/me").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn ws_a_group_message_reaches_every_live_connection_of_every_member() {
    let app = spawn_app().await;
    let (alice, mut alice_laptop) = app.login_ws("alice").await;
    let mut alice_phone = app.connect_ws(&alice).await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let (_dave, mut dave_ws) = app.login_ws("dave").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;

    let reply = alice_laptop
        .send_group_with_id(&group, "hello team", "g-1")
        .await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 6);
    assert_eq!(reply.client_msg_id, "g-1");
    let sent = reply.message();
    sent.assert_well_formed();
    assert_eq!(sent.conversation, group_conv(&group));
    assert_eq!(sent.to, group);
    assert_eq!(sent.from, alice.id);
    // The members' joins were announced in the group first (system notices take seqs too).
    assert!(sent.seq >= 1);

    assert_eq!(bob_ws.next_message().await, sent);
    assert_eq!(carol_ws.next_message().await, sent);
    assert_eq!(
        alice_phone.next_message().await,
        sent,
        "the sender's other device"
    );
    alice_laptop.expect_no_event(QUIET_MS).await;
    dave_ws.expect_no_event(QUIET_MS).await;

    // The group counts its own seq.
    let next = carol_ws.send_group(&group, "hi").await.expect(OK).message();
    assert_eq!(next.seq, sent.seq + 1);
    assert_eq!(alice_laptop.next_message().await, next);
    assert_eq!(
        ids(&bob_ws.history_of(&group_conv(&group)).await),
        vec![sent.id, next.id]
    );
}

#[tokio::test]
async fn ws_only_members_may_send_to_a_group_and_unknown_groups_are_40004() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (_dave, mut dave_ws) = app.login_ws("dave").await;
    let group = app.create_group(&alice, "team").await;

    let reply = dave_ws.send_group_with_id(&group, "let me in", "d-1").await;
    reply.expect(FORBIDDEN);
    assert_eq!(reply.client_msg_id, "d-1");
    dave_ws
        .send_group("999999", "anyone?")
        .await
        .expect(NOT_FOUND);
    alice_ws
        .send_group("999999", "anyone?")
        .await
        .expect(NOT_FOUND);

    alice_ws.expect_no_event(QUIET_MS).await;
    assert!(alice_ws.history_of(&group_conv(&group)).await.is_empty());
}

#[tokio::test]
async fn ws_membership_changes_take_effect_at_once() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    // A member added while connected gets the next message.
    app.add_to_group(&bob, &group, &carol).await;
    let sent = alice_ws.send_group(&group, "welcome carol").await.message();
    assert_eq!(carol_ws.next_message().await, sent);
    assert_eq!(bob_ws.next_message().await, sent);

    // A member who left gets nothing more and may not send.
    let resp = app
        .delete(&bob.http, &format!("/groups/{group}/members/me"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sent = alice_ws.send_group(&group, "bye bob").await.message();
    assert_eq!(carol_ws.next_message().await, sent);
    bob_ws.expect_no_event(QUIET_MS).await;
    bob_ws.send_group(&group, "wait").await.expect(FORBIDDEN);
    bob_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await
        .expect(FORBIDDEN);
}

#[tokio::test]
async fn ws_group_unread_read_receipts_and_recall_reach_the_members() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    let conversation = group_conv(&group);

    let first = alice_ws.send_group(&group, "first").await.message();
    let second = alice_ws.send_group(&group, "second").await.message();
    bob_ws.next_messages(2).await;
    carol_ws.next_messages(2).await;

    let unread = bob_ws.unread_in(&conversation).await;
    unread.expect(OK);
    assert_eq!(
        ids(&unread.messages()),
        vec![first.id.clone(), second.id.clone()]
    );

    bob_ws.mark_read(&first.id).await.expect(OK);
    let receipt = json!({"conversation": conversation, "user_id": bob.id, "seq": first.seq});
    assert_eq!(alice_ws.next_event("read").await, receipt);
    assert_eq!(carol_ws.next_event("read").await, receipt);

    let reply = alice_ws.recall(&second.id).await;
    reply.expect(OK);
    let deleted = json!({"conversation": conversation, "id": second.id, "scope": "all"});
    assert_eq!(bob_ws.next_event("deleted").await, deleted);
    assert_eq!(carol_ws.next_event("deleted").await, deleted);
    assert_eq!(
        ids(&carol_ws.history_of(&conversation).await),
        vec![first.id]
    );
    let unread = bob_ws.unread_in(&conversation).await;
    assert!(unread.messages().is_empty(), "{}", unread.raw);

    // A 1:1 conversation of two members is no business of the third.
    carol_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await
        .expect(FORBIDDEN);
}

#[tokio::test]
async fn ws_a_new_member_is_announced_in_the_group_and_not_counted_unread() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    alice_ws.keep_system_notices();
    let bob = app.chatter("bob").await;
    let group = app.create_group(&alice, "team").await;
    app.add_to_group(&alice, &group, &bob).await;

    let notice = alice_ws.next_message().await;
    assert_eq!(notice.kind, crate::ws_client::SYSTEM_TYPE);
    assert_eq!(notice.conversation, group_conv(&group));
    let content: Value = serde_json::from_str(&notice.content).unwrap();
    assert_eq!(
        content,
        json!({"action": "join", "user_id": bob.id, "by": alice.id})
    );
    let event = alice_ws.next_event("group").await;
    assert_eq!(event["action"], "join");
    assert_eq!(event["group_id"], group);

    // History shows it; nobody has it as unread.
    let history = alice_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await;
    assert_eq!(ids(&history.all_messages()), vec![notice.id.clone()]);
    let mut bob_ws = app.connect_ws(&bob).await;
    let unread = bob_ws.unread_in(&group_conv(&group)).await;
    assert_eq!(unread.data["unread"], 0, "{}", unread.raw);
}
