//! op 2 (history): both paging forms, has_more, ascending pages, limits, who may read.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::ws_client::{
    BAD_FRAME, Chatter, FORBIDDEN, NOT_FOUND, OK, WsClient, dm, group_conv, seqs,
};

/// alice sends `n` numbered messages to bob (offline); returns alice, her socket and bob.
async fn alice_wrote_to_bob(app: &TestApp, n: i64) -> (Chatter, WsClient, Chatter) {
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    for i in 1..=n {
        let sent = alice_ws.send_to(&bob.id, &format!("m{i}")).await.message();
        assert_eq!(sent.seq, i);
    }
    (alice, alice_ws, bob)
}

#[tokio::test]
async fn ws_history_without_paging_is_the_newest_default_limit_ascending() {
    let app = spawn_app().await;
    let (_alice, mut alice_ws, bob) = alice_wrote_to_bob(&app, 25).await;

    let reply = alice_ws.request(json!({"op_type": 2, "to": bob.id})).await;
    reply.expect(OK);
    assert_eq!(reply.op_type, 2);
    let page = reply.messages();
    assert_eq!(
        seqs(&page),
        (6..=25).collect::<Vec<_>>(),
        "the newest 20, ascending"
    );
    assert_eq!(page[0].content, "m6");
    assert!(reply.has_more(), "m1..m5 are older");
    for message in &page {
        message.assert_well_formed();
    }
}

#[tokio::test]
async fn ws_history_pages_with_skip_limit() {
    let app = spawn_app().await;
    let (alice, mut alice_ws, bob) = alice_wrote_to_bob(&app, 25).await;
    let conversation = dm(&alice.id, &bob.id);

    let cases: [(&str, Vec<i64>, bool); 5] = [
        ("0-10", (16..=25).collect(), true),
        ("10-10", (6..=15).collect(), true),
        ("20-10", (1..=5).collect(), false),
        ("15-10", (1..=10).collect(), false),
        ("25-10", vec![], false),
    ];
    for (content, expected, has_more) in cases {
        let reply = alice_ws
            .request(json!({"op_type": 2, "conversation": conversation, "content": content}))
            .await;
        reply.expect(OK);
        assert_eq!(seqs(&reply.messages()), expected, "page {content}");
        assert_eq!(reply.has_more(), has_more, "has_more of page {content}");
    }
}

#[tokio::test]
async fn ws_history_pages_with_before_seq_and_limit() {
    let app = spawn_app().await;
    let (alice, mut alice_ws, bob) = alice_wrote_to_bob(&app, 25).await;

    // Walking back from the newest page by page covers everything exactly once.
    let mut before = 26;
    let mut seen = Vec::new();
    loop {
        let reply = alice_ws
            .request(json!({"op_type": 2, "to": bob.id, "before_seq": before, "limit": 7}))
            .await;
        reply.expect(OK);
        let page = seqs(&reply.messages());
        assert!(page.windows(2).all(|w| w[0] < w[1]), "ascending: {page:?}");
        assert!(page.iter().all(|s| *s < before), "{page:?} before {before}");
        seen.splice(0..0, page.iter().copied());
        if !reply.has_more() {
            break;
        }
        before = page[0];
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());

    let reply = alice_ws
        .request(json!({"op_type": 2, "to": bob.id, "before_seq": 6, "limit": 5}))
        .await;
    assert_eq!(seqs(&reply.messages()), vec![1, 2, 3, 4, 5]);
    assert!(!reply.has_more());

    // The peer sees the same conversation, named from their side.
    let mut bob_ws = app.connect_ws(&bob).await;
    let reply = bob_ws
        .request(json!({"op_type": 2, "to": alice.id, "before_seq": 11, "limit": 5}))
        .await;
    reply.expect(OK);
    assert_eq!(seqs(&reply.messages()), vec![6, 7, 8, 9, 10]);
    assert!(reply.has_more());
}

#[tokio::test]
async fn ws_history_limit_is_capped_and_must_be_positive() {
    let app = spawn_app_with(|s| {
        s.messages.history_default_limit = 4;
        s.messages.history_max_limit = nz!(6);
    })
    .await;
    let (alice, mut alice_ws, bob) = alice_wrote_to_bob(&app, 10).await;
    let conversation = dm(&alice.id, &bob.id);

    let reply = alice_ws
        .request(json!({"op_type": 2, "conversation": conversation}))
        .await;
    assert_eq!(
        seqs(&reply.messages()),
        vec![7, 8, 9, 10],
        "the default limit"
    );

    let reply = alice_ws
        .request(json!({"op_type": 2, "conversation": conversation, "limit": 50}))
        .await;
    reply.expect(OK);
    assert_eq!(
        seqs(&reply.messages()),
        (5..=10).collect::<Vec<_>>(),
        "capped"
    );
    assert!(reply.has_more());

    let reply = alice_ws
        .request(json!({"op_type": 2, "conversation": conversation, "content": "0-50"}))
        .await;
    assert_eq!(
        seqs(&reply.messages()),
        (5..=10).collect::<Vec<_>>(),
        "capped"
    );

    let bad_requests = [
        json!({"op_type": 2, "conversation": conversation, "limit": 0}),
        json!({"op_type": 2, "conversation": conversation, "limit": -3}),
        json!({"op_type": 2, "conversation": conversation, "before_seq": 5, "limit": 0}),
        json!({"op_type": 2, "conversation": conversation, "content": "0-0"}),
        json!({"op_type": 2, "conversation": conversation, "content": "abc"}),
        json!({"op_type": 2, "conversation": conversation, "content": "5"}),
        json!({"op_type": 2, "conversation": conversation, "content": "x-5"}),
    ];
    for frame in bad_requests {
        let reply = alice_ws.request(frame.clone()).await;
        assert_eq!(reply.code, BAD_FRAME, "{frame} -> {}", reply.raw);
        assert_eq!(reply.op_type, 2);
    }
}

#[tokio::test]
async fn ws_history_of_an_empty_conversation_is_empty() {
    let app = spawn_app().await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;

    let reply = alice_ws.request(json!({"op_type": 2, "to": bob.id})).await;
    reply.expect(OK);
    assert!(reply.messages().is_empty());
    assert!(!reply.has_more());
}

#[tokio::test]
async fn ws_history_is_only_for_participants() {
    let app = spawn_app().await;
    let (alice, _alice_ws, bob) = alice_wrote_to_bob(&app, 2).await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;

    let reply = carol_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    reply.expect(FORBIDDEN);

    // A group: members only; an unknown group is 40004.
    let group = app.create_group(&alice, "private").await;
    let mut alice_ws = app.connect_ws(&alice).await;
    alice_ws.send_group(&group, "members only").await.expect(OK);
    carol_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await
        .expect(FORBIDDEN);
    carol_ws
        .request(json!({"op_type": 2, "conversation": group_conv("999999")}))
        .await
        .expect(NOT_FOUND);

    app.add_to_group(&alice, &group, &carol).await;
    let history = carol_ws.history_of(&group_conv(&group)).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].content, "members only");
}
