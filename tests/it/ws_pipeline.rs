//! Pipelined requests on one connection: sends in flight together keep their order, replies
//! come in request order, and any other op sees every send before it and none after.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::ws_client::{DELIVERED, OK, TOO_LONG, WsClient, contents, dm, group_conv, seqs};

const BEFORE: usize = 25;
const AFTER: usize = 15;

fn send_frame(to: &str, n: usize) -> serde_json::Value {
    json!({"op_type": 1, "to": to, "type": 1, "content": format!("m{n}"), "client_msg_id": format!("p-{n}")})
}

/// Reads `n` replies, in the order they come.
async fn replies(ws: &mut WsClient, n: usize) -> Vec<crate::ws_client::Reply> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ws.reply_or_end().await.expect("a reply, not the end"));
    }
    out
}

#[tokio::test]
async fn ws_sends_sent_without_waiting_are_stored_and_answered_in_the_order_they_were_sent() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);

    // 25 sends, a history request, 15 more sends: all written before any reply is read.
    for n in 0..BEFORE {
        alice_ws.send_json(&send_frame(&bob.id, n)).await;
    }
    alice_ws
        .send_json(&json!({"op_type": 2, "conversation": conversation, "limit": 100}))
        .await;
    for n in BEFORE..BEFORE + AFTER {
        alice_ws.send_json(&send_frame(&bob.id, n)).await;
    }

    let got = replies(&mut alice_ws, BEFORE + 1 + AFTER).await;
    let (before, rest) = got.split_at(BEFORE);
    let (history, after) = rest.split_at(1);
    let sends: Vec<_> = before.iter().chain(after).collect();
    for (n, reply) in sends.iter().enumerate() {
        reply.expect(DELIVERED);
        assert_eq!(reply.op_type, 1);
        assert_eq!(
            reply.client_msg_id,
            format!("p-{n}"),
            "replies in request order"
        );
        assert_eq!(reply.message().seq, n as i64 + 1, "seqs in the order sent");
    }
    let history = &history[0];
    history.expect(OK);
    assert_eq!(history.op_type, 2);
    let seen = history.messages();
    assert_eq!(
        contents(&seen),
        (0..BEFORE).map(|n| format!("m{n}")).collect::<Vec<_>>(),
        "the history request sees every send before it and none after"
    );

    let delivered = bob_ws.next_messages(BEFORE + AFTER).await;
    assert_eq!(
        seqs(&delivered),
        (1..=(BEFORE + AFTER) as i64).collect::<Vec<_>>(),
        "the recipient gets them once, in order"
    );
    assert_eq!(
        contents(&delivered),
        (0..BEFORE + AFTER)
            .map(|n| format!("m{n}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn ws_a_pipeline_deeper_than_the_limit_is_read_as_the_replies_go_out() {
    let app = spawn_app_with(|s| s.ws.pipeline_depth = nz!(2)).await;
    let owner = app.chatter("owner").await;
    let member = app.chatter("member").await;
    let group = app.group_with(&owner, "pipes", &[&member]).await;
    let mut owner_ws = app.connect_ws(&owner).await;
    let mut member_ws = app.connect_ws(&member).await;

    // Group sends (op 6) pipeline like op 1; ten of them through a pipeline two deep.
    for n in 0..10 {
        owner_ws
            .send_json(&json!({"op_type": 6, "to": group, "type": 1, "content": format!("g{n}"), "client_msg_id": format!("g-{n}")}))
            .await;
    }
    let got = replies(&mut owner_ws, 10).await;
    for (n, reply) in got.iter().enumerate() {
        reply.expect(OK);
        assert_eq!(reply.client_msg_id, format!("g-{n}"));
    }
    let acked: Vec<i64> = got.iter().map(|r| r.message().seq).collect();
    assert!(
        acked.windows(2).all(|w| w[0] < w[1]),
        "seqs follow the order sent: {acked:?}"
    );
    let delivered = member_ws.next_messages(10).await;
    assert_eq!(seqs(&delivered), acked);
    assert_eq!(delivered[0].conversation, group_conv(&group));
}

#[tokio::test]
async fn ws_a_refused_send_in_the_middle_of_a_pipeline_does_not_stop_the_others() {
    let app = spawn_app().await;
    let (_alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    alice_ws.send_json(&send_frame(&bob.id, 0)).await;
    // Too long: refused with its own reply, in its place; the sends around it are stored.
    let too_long = "x".repeat(app.settings.messages.max_content_chars.get() + 1);
    alice_ws
        .send_json(&json!({"op_type": 1, "to": bob.id, "type": 1, "content": too_long, "client_msg_id": "p-1"}))
        .await;
    alice_ws.send_json(&send_frame(&bob.id, 2)).await;

    let got = replies(&mut alice_ws, 3).await;
    got[0].expect(DELIVERED);
    got[1].expect(TOO_LONG);
    assert_eq!(got[1].client_msg_id, "p-1");
    got[2].expect(DELIVERED);
    assert_eq!(got[0].message().seq, 1);
    assert_eq!(got[2].message().seq, 2);
    assert_eq!(contents(&bob_ws.next_messages(2).await), ["m0", "m2"]);
}
