//! op 1 (send to a user), op 8 (typing) and the lobby: acks, pushes and refusals.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::ws_client::{
    BAD_FRAME, DELIVERED, FORBIDDEN, NOT_FOUND, OK, STORED_OFFLINE, TOO_LONG, dm, group_conv, ids,
};

const QUIET_MS: u64 = 400;

#[tokio::test]
async fn ws_a_message_to_an_online_user_is_acked_50004_and_pushed_to_them_and_my_other_devices() {
    let app = spawn_app().await;
    let (alice, mut alice_laptop) = app.login_ws("alice").await;
    let mut alice_phone = app.connect_ws(&alice).await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    let reply = alice_laptop.send_to_with_id(&bob.id, "hi bob", "c-1").await;
    reply.expect(DELIVERED);
    assert_eq!(reply.op_type, 1);
    assert_eq!(reply.client_msg_id, "c-1");
    let sent = reply.message();
    sent.assert_well_formed();
    assert_eq!(sent.conversation, dm(&alice.id, &bob.id));
    assert_eq!(sent.seq, 1);
    assert_eq!(sent.from, alice.id);
    assert_eq!(sent.to, bob.id);
    assert_eq!(sent.kind, 1);
    assert_eq!(sent.content, "hi bob");
    assert_eq!(sent.client_msg_id.as_deref(), Some("c-1"));

    assert_eq!(bob_ws.next_message().await, sent, "the recipient gets it");
    assert_eq!(
        alice_phone.next_message().await,
        sent,
        "my other device gets it"
    );
    alice_laptop.expect_no_event(QUIET_MS).await;
    bob_ws.expect_no_event(QUIET_MS).await;
}

#[tokio::test]
async fn ws_a_message_to_an_offline_user_is_acked_50005_and_waits_as_unread() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;

    let reply = alice_ws.send_to(&bob.id, "are you there?").await;
    reply.expect(STORED_OFFLINE);
    let sent = reply.message();
    assert!(reply.client_msg_id.is_null());
    assert_eq!(sent.client_msg_id, None);

    let mut bob_ws = app.connect_ws(&bob).await;
    bob_ws.expect_no_event(QUIET_MS).await;
    let unread = bob_ws.unread_in(&dm(&alice.id, &bob.id)).await;
    unread.expect(OK);
    assert_eq!(unread.messages(), vec![sent]);
}

#[tokio::test]
async fn ws_seq_counts_per_conversation() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let carol = app.chatter("carol").await;

    for expected in 1..=3 {
        let sent = alice_ws.send_to(&bob.id, "to bob").await.message();
        assert_eq!(sent.seq, expected);
    }
    let reply = bob_ws.send_to(&alice.id, "back to alice").await;
    assert_eq!(
        reply.message().seq,
        4,
        "both directions share one conversation"
    );
    assert_eq!(
        alice_ws.send_to(&carol.id, "to carol").await.message().seq,
        1,
        "another conversation counts on its own"
    );
}

#[tokio::test]
async fn ws_a_note_to_self_is_50004_and_synced_to_my_other_devices() {
    let app = spawn_app().await;
    let (alice, mut laptop) = app.login_ws("alice").await;
    let mut phone = app.connect_ws(&alice).await;

    let reply = laptop.send_to(&alice.id, "buy milk").await;
    reply.expect(DELIVERED);
    let note = reply.message();
    assert_eq!(note.conversation, format!("u:{0}:{0}", alice.id));
    assert_eq!(note.from, alice.id);
    assert_eq!(note.to, alice.id);

    assert_eq!(phone.next_message().await, note);
    laptop.expect_no_event(QUIET_MS).await;
    phone.expect_no_event(QUIET_MS).await;
}

#[tokio::test]
async fn ws_two_connections_of_the_recipient_both_receive() {
    let app = spawn_app().await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_phone) = app.login_ws("bob").await;
    let mut bob_laptop = app.connect_ws(&bob).await;

    let sent = alice_ws
        .send_to(&bob.id, "to every device")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_phone.next_message().await, sent);
    assert_eq!(bob_laptop.next_message().await, sent);
}

#[tokio::test]
async fn ws_an_unknown_recipient_is_40004() {
    let app = spawn_app().await;
    let (alice, mut ws) = app.login_ws("alice").await;

    let reply = ws.send_to_with_id("999999", "anyone?", "c-9").await;
    reply.expect(NOT_FOUND);
    assert_eq!(reply.client_msg_id, "c-9");
    ws.expect_no_event(QUIET_MS).await;
    // A send to nobody leaves no unread trace anywhere.
    assert!(ws.unread_overview().await.is_empty());
    ws.send_to(&alice.id, "still here").await.expect(DELIVERED);
}

#[tokio::test]
async fn ws_a_bad_type_or_empty_content_is_40000_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    for kind in [0, 7, 10, -1] {
        let reply = alice_ws
            .request(json!({"op_type": 1, "to": bob.id, "type": kind, "content": "x"}))
            .await;
        reply.expect(BAD_FRAME);
    }
    let reply = alice_ws
        .request(json!({"op_type": 1, "to": bob.id, "type": 1, "content": ""}))
        .await;
    reply.expect(BAD_FRAME);

    bob_ws.expect_no_event(QUIET_MS).await;
    assert!(
        alice_ws
            .history_of(&dm(&alice.id, &bob.id))
            .await
            .is_empty()
    );

    // Every documented type is accepted, with what it carries.
    let image = crate::files_support::png(4, 4);
    let voice = b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec();
    let video = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    let mut carried = Vec::new();
    for (bytes, name) in [(image, "i.png"), (voice, "v.ogg"), (video, "v.mp4")] {
        let file = crate::files_support::upload_ok(&app, &alice, bytes, name).await;
        carried.push(crate::files_support::file_id(&file));
    }
    for kind in 1..=6 {
        let mut frame = json!({"op_type": 1, "to": bob.id, "type": kind, "content": "payload"});
        match kind {
            2..=4 => frame["attachment"] = json!({ "file_id": carried[kind as usize - 2] }),
            5 => frame["location"] = json!({ "lat": 48.85, "lon": 2.35 }),
            6 => frame["attachment"] = json!({ "file_id": carried[0] }),
            _ => {}
        }
        let reply = alice_ws.request(frame).await;
        reply.expect(DELIVERED);
        assert_eq!(reply.message().kind, kind);
    }
}

#[tokio::test]
async fn ws_content_over_max_content_chars_is_40013() {
    let app = spawn_app_with(|s| s.messages.max_content_chars = nz!(10)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;

    // The limit counts characters, not bytes.
    let ten = "é".repeat(10);
    let reply = alice_ws.send_to(&bob.id, &ten).await;
    reply.expect(STORED_OFFLINE);
    assert_eq!(reply.message().content, ten);

    let reply = alice_ws
        .send_to_with_id(&bob.id, &"é".repeat(11), "long-1")
        .await;
    reply.expect(TOO_LONG);
    assert_eq!(reply.client_msg_id, "long-1");

    let history = alice_ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history.len(), 1, "the long one was not stored: {history:?}");
}

#[tokio::test]
async fn ws_to_as_a_json_number_is_accepted_and_from_is_ignored() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let bob_number: u64 = bob.id.parse().unwrap();

    let reply = alice_ws
        .request(json!({
            "op_type": 1, "to": bob_number, "from": bob.id, "type": 1, "content": "numeric"
        }))
        .await;
    reply.expect(DELIVERED);
    let sent = reply.message();
    assert_eq!(sent.to, bob.id, "to is a string on the wire");
    assert_eq!(sent.from, alice.id, "the sender is always the session user");
    assert_eq!(bob_ws.next_message().await, sent);
}

#[tokio::test]
async fn ws_the_lobby_reaches_every_connected_user() {
    let app = spawn_app().await;
    let (alice, mut alice_laptop) = app.login_ws("alice").await;
    let mut alice_phone = app.connect_ws(&alice).await;
    let (_bob, mut bob_ws) = app.login_ws("bob").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;

    let reply = alice_laptop
        .send_group_with_id("", "hello lobby", "l-1")
        .await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 6);
    assert_eq!(reply.client_msg_id, "l-1");
    let sent = reply.message();
    sent.assert_well_formed();
    assert_eq!(sent.conversation, group_conv("0"));
    assert_eq!(sent.to, "0");
    assert_eq!(sent.from, alice.id);

    assert_eq!(bob_ws.next_message().await, sent);
    assert_eq!(carol_ws.next_message().await, sent);
    assert_eq!(alice_phone.next_message().await, sent);
    alice_laptop.expect_no_event(QUIET_MS).await;

    // "0" names the lobby too.
    let second = carol_ws
        .send_group("0", "hello again")
        .await
        .expect(OK)
        .message();
    assert_eq!(second.conversation, group_conv("0"));
    assert_eq!(second.seq, sent.seq + 1);
    assert_eq!(bob_ws.next_message().await, second);

    let history = bob_ws.history_of(&group_conv("0")).await;
    assert_eq!(ids(&history), vec![sent.id, second.id]);
}

#[tokio::test]
async fn ws_typing_reaches_the_peer_and_stores_nothing() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;
    let conversation = dm(&alice.id, &bob.id);

    alice_ws
        .request(json!({"op_type": 8, "to": bob.id}))
        .await
        .expect(OK);
    let typing = bob_ws.next_event("typing").await;
    assert_eq!(
        typing,
        json!({"conversation": conversation, "user_id": alice.id})
    );

    bob_ws
        .request(json!({"op_type": 8, "conversation": conversation}))
        .await
        .expect(OK);
    let typing = alice_ws.next_event("typing").await;
    assert_eq!(
        typing,
        json!({"conversation": conversation, "user_id": bob.id})
    );

    // An outsider may not type into it.
    carol_ws
        .request(json!({"op_type": 8, "conversation": conversation}))
        .await
        .expect(FORBIDDEN);
    carol_ws.expect_no_event(QUIET_MS).await;

    assert!(alice_ws.history_of(&conversation).await.is_empty());
    let unread = bob_ws.unread_overview().await;
    assert!(unread.is_empty(), "{unread:?}");
}
