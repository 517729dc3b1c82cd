//! op 3 (unread), op 4 (mark read, read receipts) and op 5 (delete for me, recall for all).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::ws_client::{
    DELIVERED, FORBIDDEN, NOT_FOUND, OK, UNKNOWN_MESSAGE_ID, contents, dm, group_conv, ids, seqs,
};

const QUIET_MS: u64 = 400;

#[tokio::test]
async fn ws_unread_lists_messages_from_others_above_my_read_position() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);

    for text in ["one", "two", "three"] {
        alice_ws.send_to(&bob.id, text).await.expect(DELIVERED);
    }
    // Bob's own message is never unread for him.
    bob_ws.send_to(&alice.id, "mine").await.expect(DELIVERED);

    let reply = bob_ws.request(json!({"op_type": 3, "to": alice.id})).await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 3);
    assert_eq!(reply.data["conversation"], conversation);
    assert_eq!(contents(&reply.messages()), vec!["one", "two", "three"]);
    assert_eq!(seqs(&reply.messages()), vec![1, 2, 3]);
    assert_eq!(reply.data["unread"], 3);
    assert!(!reply.has_more());

    // The same by conversation id; alice has bob's one message unread.
    let reply = alice_ws.unread_in(&conversation).await;
    reply.expect(OK);
    assert_eq!(contents(&reply.messages()), vec!["mine"]);
    assert_eq!(reply.data["unread"], 1);
}

#[tokio::test]
async fn ws_unread_is_capped_at_unread_max() {
    let app = spawn_app_with(|s| s.messages.unread_max = nz!(2)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    for text in ["one", "two", "three"] {
        alice_ws.send_to(&bob.id, text).await.expect(DELIVERED);
    }
    let reply = bob_ws.unread_in(&dm(&alice.id, &bob.id)).await;
    reply.expect(OK);
    assert_eq!(
        contents(&reply.messages()),
        vec!["one", "two"],
        "the oldest first"
    );
    assert!(reply.has_more());
}

#[tokio::test]
async fn ws_unread_without_a_conversation_summarises_every_conversation() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let (dave, mut dave_ws) = app.login_ws("dave").await;

    for text in ["a1", "a2", "a3"] {
        alice_ws.send_to(&bob.id, text).await.expect(DELIVERED);
    }
    for text in ["c1", "c2"] {
        carol_ws.send_to(&bob.id, text).await.expect(DELIVERED);
    }
    // A conversation where bob only wrote himself has nothing unread for him.
    bob_ws
        .send_to(&dave.id, "hello dave")
        .await
        .expect(DELIVERED);
    // A group with one message from alice.
    let group = app.group_with(&alice, "team", &[&bob]).await;
    let g1 = alice_ws.send_group(&group, "g1").await.expect(OK).message();

    // The group's last seq counts its system notices (bob's join) too; unread does not.
    let mut expected = vec![
        (dm(&alice.id, &bob.id), 3, 3),
        (dm(&carol.id, &bob.id), 2, 2),
        (group_conv(&group), 1, g1.seq),
    ];
    expected.sort();
    assert_eq!(bob_ws.unread_overview().await, expected);

    // Reading one conversation removes it from the summary.
    bob_ws
        .mark_read_at(&dm(&carol.id, &bob.id), 2)
        .await
        .expect(OK);
    let overview = bob_ws.unread_overview().await;
    assert!(
        !overview.iter().any(|(c, ..)| *c == dm(&carol.id, &bob.id)),
        "{overview:?}"
    );
    assert_eq!(
        dave_ws.unread_overview().await,
        vec![(dm(&bob.id, &dave.id), 1, 1)]
    );
}

#[tokio::test]
async fn ws_mark_read_by_id_sends_a_receipt_to_the_sender_and_my_other_devices() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_phone) = app.login_ws("bob").await;
    let mut bob_laptop = app.connect_ws(&bob).await;
    let conversation = dm(&alice.id, &bob.id);

    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(alice_ws.send_to(&bob.id, text).await.message());
    }

    let reply = bob_phone.mark_read(&sent[1].id).await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 4);
    assert_eq!(reply.data, json!({"conversation": conversation, "seq": 2}));

    let receipt = json!({"conversation": conversation, "user_id": bob.id, "seq": 2});
    assert_eq!(alice_ws.next_event("read").await, receipt);
    assert_eq!(bob_laptop.next_event("read").await, receipt);

    let unread = bob_laptop.unread_in(&conversation).await;
    assert_eq!(contents(&unread.messages()), vec!["three"]);
    assert_eq!(unread.data["unread"], 1);
}

#[tokio::test]
async fn ws_mark_read_by_position_never_moves_backwards() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(alice_ws.send_to(&bob.id, text).await.message());
    }

    let reply = bob_ws.mark_read_at(&conversation, 3).await;
    reply.expect(OK);
    assert_eq!(reply.data, json!({"conversation": conversation, "seq": 3}));
    assert_eq!(
        alice_ws.next_event("read").await,
        json!({"conversation": conversation, "user_id": bob.id, "seq": 3})
    );

    // Older positions are a no-op: the reply names the position in force.
    let reply = bob_ws.mark_read_at(&conversation, 1).await;
    reply.expect(OK);
    assert_eq!(reply.data, json!({"conversation": conversation, "seq": 3}));
    let reply = bob_ws.mark_read(&sent[0].id).await;
    reply.expect(OK);
    assert_eq!(reply.data, json!({"conversation": conversation, "seq": 3}));

    let unread = bob_ws.unread_in(&conversation).await;
    assert!(unread.messages().is_empty());
    assert_eq!(unread.data["unread"], 0);
    assert!(bob_ws.unread_overview().await.is_empty());
}

#[tokio::test]
async fn ws_mark_read_refuses_unknown_messages_and_outsiders() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;
    let conversation = dm(&alice.id, &bob.id);
    let sent = alice_ws.send_to(&bob.id, "private").await.message();

    alice_ws
        .mark_read(UNKNOWN_MESSAGE_ID)
        .await
        .expect(NOT_FOUND);
    carol_ws.mark_read(&sent.id).await.expect(NOT_FOUND);
    carol_ws
        .mark_read_at(&conversation, 1)
        .await
        .expect(FORBIDDEN);
    alice_ws.expect_no_event_of("read", QUIET_MS).await;
}

#[tokio::test]
async fn ws_delete_for_me_hides_the_message_only_from_me() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_phone) = app.login_ws("bob").await;
    let mut bob_laptop = app.connect_ws(&bob).await;
    let conversation = dm(&alice.id, &bob.id);

    let first = alice_ws.send_to(&bob.id, "first").await.message();
    let second = alice_ws.send_to(&bob.id, "second").await.message();
    bob_phone.next_messages(2).await;
    bob_laptop.next_messages(2).await;

    let reply = bob_phone.delete_for_me(&first.id).await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 5);
    assert_eq!(
        reply.data,
        json!({"conversation": conversation, "id": first.id, "scope": "me"})
    );
    assert_eq!(
        bob_laptop.next_event("deleted").await,
        json!({"conversation": conversation, "id": first.id, "scope": "me"})
    );
    alice_ws.expect_no_event_of("deleted", QUIET_MS).await;

    assert_eq!(
        ids(&bob_phone.history_of(&conversation).await),
        vec![second.id.clone()]
    );
    assert_eq!(
        ids(&alice_ws.history_of(&conversation).await),
        vec![first.id.clone(), second.id.clone()],
        "the other side keeps it"
    );
    let unread = bob_phone.unread_in(&conversation).await;
    assert_eq!(ids(&unread.messages()), vec![second.id]);
    assert_eq!(unread.data["unread"], 1);
    assert_eq!(
        bob_phone.unread_overview().await,
        vec![(conversation, 1, 2)]
    );
}

#[tokio::test]
async fn ws_recall_within_the_window_removes_the_message_for_everyone() {
    let app = spawn_app().await;
    let (alice, mut alice_laptop) = app.login_ws("alice").await;
    let mut alice_phone = app.connect_ws(&alice).await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);

    let oops = alice_laptop.send_to(&bob.id, "oops").await.message();
    let fine = alice_laptop.send_to(&bob.id, "fine").await.message();
    bob_ws.next_messages(2).await;
    alice_phone.next_messages(2).await;

    let reply = alice_laptop.recall(&oops.id).await;
    reply.expect(OK);
    let deleted = json!({"conversation": conversation, "id": oops.id, "scope": "all"});
    assert_eq!(reply.data, deleted);
    assert_eq!(bob_ws.next_event("deleted").await, deleted);
    assert_eq!(alice_phone.next_event("deleted").await, deleted);

    assert_eq!(
        ids(&bob_ws.history_of(&conversation).await),
        vec![fine.id.clone()]
    );
    assert_eq!(
        ids(&alice_laptop.history_of(&conversation).await),
        vec![fine.id.clone()]
    );
    let unread = bob_ws.unread_in(&conversation).await;
    assert_eq!(ids(&unread.messages()), vec![fine.id]);
    assert_eq!(unread.data["unread"], 1);
}

#[tokio::test]
async fn ws_recall_after_the_window_is_40003() {
    let app = spawn_app_with(|s| s.messages.recall_window_secs = 1).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let old = alice_ws.send_to(&bob.id, "too late").await.message();
    bob_ws.next_message().await;

    // The window is a wall-clock rule: only passing time can close it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    alice_ws.recall(&old.id).await.expect(FORBIDDEN);
    bob_ws.expect_no_event_of("deleted", QUIET_MS).await;
    assert_eq!(
        ids(&bob_ws.history_of(&conversation).await),
        vec![old.id.clone()]
    );
    // Deleting it for oneself is still allowed.
    alice_ws.delete_for_me(&old.id).await.expect(OK);
}

#[tokio::test]
async fn ws_recalling_someone_elses_message_is_40003() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let theirs = alice_ws.send_to(&bob.id, "mine to recall").await.message();
    bob_ws.next_message().await;

    bob_ws.recall(&theirs.id).await.expect(FORBIDDEN);
    alice_ws.expect_no_event_of("deleted", QUIET_MS).await;
    assert_eq!(
        ids(&alice_ws.history_of(&conversation).await),
        vec![theirs.id]
    );
}

#[tokio::test]
async fn ws_deleting_an_unknown_or_foreign_message_is_40004() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;
    let sent = alice_ws.send_to(&bob.id, "between us").await.message();

    alice_ws
        .delete_for_me(UNKNOWN_MESSAGE_ID)
        .await
        .expect(NOT_FOUND);
    alice_ws.recall(UNKNOWN_MESSAGE_ID).await.expect(NOT_FOUND);
    carol_ws.delete_for_me(&sent.id).await.expect(NOT_FOUND);
    carol_ws.recall(&sent.id).await.expect(NOT_FOUND);
    assert_eq!(
        ids(&alice_ws.history_of(&dm(&alice.id, &bob.id)).await),
        vec![sent.id]
    );
}

#[tokio::test]
async fn ws_a_recalled_message_can_still_be_looked_up_by_id() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let sent = alice_ws.send_to(&bob.id, "oops").await.message();
    bob_ws.next_message().await;
    alice_ws.recall(&sent.id).await.expect(OK);
    // Reading and deleting it again go through the stored, recalled document.
    bob_ws.mark_read(&sent.id).await.expect(OK);
    alice_ws.recall(&sent.id).await.expect(OK);
    alice_ws.delete_for_me(&sent.id).await.expect(OK);
    assert!(
        alice_ws
            .history_of(&dm(&alice.id, &bob.id))
            .await
            .is_empty()
    );
}
