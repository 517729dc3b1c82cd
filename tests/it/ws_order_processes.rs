//! Order across processes: four server processes (this one and three OS processes of the
//! built binary) on the same Redis, MySQL and MongoDB. Many senders on every process send as
//! fast as the pipeline allows; watchers on every process must see each conversation's seqs
//! exactly once and strictly increasing, and a resume after the last seq seen gives nothing
//! more (so nothing was skipped).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ProcessNode, TestApp, spawn_app_with, spawn_process_node};
use crate::ws_client::{ChatMessage, Chatter, DELIVERED, OK, WsClient, dm, group_conv, seqs};

const PROCESSES: usize = 4;
const SENDERS: usize = 40;
const PER_SENDER: usize = 50;
const WATCHERS_PER_PROCESS: usize = 2;

/// The first app and three more processes over its data. The watchers get thousands of events
/// within a second while four servers and the test share two cores: their queues are deeper
/// than the default (whose limit on slow readers is tested in ws_slow_consumer).
async fn four_processes() -> (TestApp, Vec<ProcessNode>) {
    let first = spawn_app_with(|s| {
        s.ws.outbound_queue = nz!(8192);
        s.ws.max_outbound_bytes = 64 << 20;
    })
    .await;
    let mut others = Vec::new();
    for _ in 1..PROCESSES {
        others.push(spawn_process_node(&first).await);
    }
    (first, others)
}

fn process<'a>(first: &'a TestApp, others: &'a [ProcessNode], i: usize) -> &'a TestApp {
    match i % PROCESSES {
        0 => first,
        n => &others[n - 1].app,
    }
}

/// Sends `frames` without waiting (the server reads them as its pipeline allows), then reads
/// every reply; returns the acked messages.
async fn send_all(mut ws: WsClient, frames: Vec<Value>) -> (WsClient, Vec<ChatMessage>) {
    let n = frames.len();
    for frame in &frames {
        ws.send_json(frame).await;
    }
    let mut acked = Vec::with_capacity(n);
    for _ in 0..n {
        let reply = ws.reply_or_end().await.expect("a reply, not the end");
        assert!(
            reply.code == OK || reply.code == DELIVERED || reply.code == 50005,
            "a send is acked: {}",
            reply.raw
        );
        acked.push(reply.message());
    }
    (ws, acked)
}

/// Reads `n` messages of `conversation` and checks they come once each, in increasing seq.
async fn watch(mut ws: WsClient, conversation: String, n: usize) -> (WsClient, Vec<i64>) {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let message = ws.next_message().await;
        if message.conversation == conversation {
            got.push(message.seq);
        }
    }
    (ws, got)
}

fn assert_strictly_increasing(seen: &[i64], who: &str) {
    let bad: Vec<_> = seen.windows(2).filter(|w| w[0] >= w[1]).collect();
    assert!(
        bad.is_empty(),
        "{who}: seqs out of order or repeated at {:?} (of {} seen)",
        bad.iter().take(5).collect::<Vec<_>>(),
        seen.len()
    );
}

/// `who` saw exactly the seqs `expected`, each once, in that order.
fn assert_saw_exactly(seen: &[i64], expected: &[i64], who: &str) {
    assert_strictly_increasing(seen, who);
    assert!(
        seen == expected,
        "{who} saw every seq once ({} seen of {})",
        seen.len(),
        expected.len()
    );
}

/// After a resume with the last seq seen, nothing of the conversation is missing.
async fn assert_resume_gives_nothing_more(ws: &mut WsClient, conversation: &str, last: i64) {
    let reply = ws.resume(json!({ conversation: last })).await;
    reply.expect(OK);
    let more: Vec<ChatMessage> = reply
        .all_messages()
        .into_iter()
        .filter(|m| m.conversation == conversation)
        .collect();
    assert!(
        more.is_empty(),
        "resume after {last} still had {:?}",
        seqs(&more)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_senders_on_four_processes_give_every_watcher_every_seq_once_in_order() {
    let (first, others) = four_processes().await;
    let owner = first.chatter("owner").await;
    let group = first.create_group(&owner, "everyone-at-once").await;
    let conversation = group_conv(&group);

    let mut watchers = Vec::new();
    for p in 0..PROCESSES {
        for w in 0..WATCHERS_PER_PROCESS {
            let watcher = first.chatter(&format!("watch{p}{w}")).await;
            first.add_to_group(&owner, &group, &watcher).await;
            let ws = process(&first, &others, p).connect_ws(&watcher).await;
            watchers.push((format!("watcher {w} on process {p}"), ws));
        }
    }
    let mut senders: Vec<(WsClient, Vec<Value>)> = Vec::new();
    for i in 0..SENDERS {
        let sender: Chatter = first.chatter(&format!("send{i:02}")).await;
        first.add_to_group(&owner, &group, &sender).await;
        let ws = process(&first, &others, i).connect_ws(&sender).await;
        let frames = (0..PER_SENDER)
            .map(|n| {
                json!({"op_type": 6, "to": group, "type": 1,
                       "content": format!("s{i}-{n}"), "client_msg_id": format!("c{i}-{n}")})
            })
            .collect();
        senders.push((ws, frames));
    }

    let total = SENDERS * PER_SENDER;
    let watching: Vec<_> = watchers
        .into_iter()
        .map(|(who, ws)| {
            let conversation = conversation.clone();
            tokio::spawn(async move { (who, watch(ws, conversation, total).await) })
        })
        .collect();
    let sending: Vec<_> = senders
        .into_iter()
        .map(|(ws, frames)| tokio::spawn(send_all(ws, frames)))
        .collect();

    let mut acked = Vec::new();
    let mut keep = Vec::new();
    for task in sending {
        let (ws, mine) = task.await.expect("a sender finishes");
        assert_strictly_increasing(&seqs(&mine), "one sender's acks");
        acked.extend(seqs(&mine));
        keep.push(ws);
    }
    acked.sort_unstable();
    // The group's first seqs are its membership notices.
    let start = acked.first().copied().unwrap_or(0);
    let expected: Vec<i64> = (start..start + total as i64).collect();
    assert!(
        acked == expected,
        "every send acked with its own seq, none lost: {} acks from {start}, first differences {:?}",
        acked.len(),
        acked
            .iter()
            .zip(&expected)
            .filter(|(a, e)| a != e)
            .take(5)
            .collect::<Vec<_>>()
    );

    for task in watching {
        let (who, (mut ws, seen)) = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("every watcher gets every message")
            .expect("a watcher finishes");
        assert_saw_exactly(&seen, &expected, &who);
        ws.expect_no_event_of("message", 200).await;
        assert_resume_gives_nothing_more(&mut ws, &conversation, start + total as i64 - 1).await;
    }
    drop(keep);
    drop(others);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_people_of_a_chat_sending_from_different_processes_keep_one_order_everywhere() {
    const PAIRS: usize = 8;
    let (first, others) = four_processes().await;
    let mut tasks = Vec::new();
    let mut watching = Vec::new();
    for pair in 0..PAIRS {
        let a = first.chatter(&format!("alice{pair}")).await;
        let b = first.chatter(&format!("bob{pair}")).await;
        let conversation = dm(&a.id, &b.id);
        // a sends from one process, b from the next; each has a second device elsewhere.
        let a_ws = process(&first, &others, pair).connect_ws(&a).await;
        let b_ws = process(&first, &others, pair + 1).connect_ws(&b).await;
        let a_watch = process(&first, &others, pair + 2).connect_ws(&a).await;
        let b_watch = process(&first, &others, pair + 3).connect_ws(&b).await;
        let frames = |to: &Chatter, from: &str| -> Vec<Value> {
            (0..PER_SENDER)
                .map(|n| {
                    json!({"op_type": 1, "to": to.id, "type": 1,
                           "content": format!("{from}-{n}"), "client_msg_id": format!("{from}-{n}")})
                })
                .collect()
        };
        tasks.push(tokio::spawn(send_all(a_ws, frames(&b, "a"))));
        tasks.push(tokio::spawn(send_all(b_ws, frames(&a, "b"))));
        for (who, ws) in [
            (format!("a{pair}'s other device"), a_watch),
            (format!("b{pair}'s other device"), b_watch),
        ] {
            let conversation = conversation.clone();
            watching.push(tokio::spawn(async move {
                (
                    who,
                    conversation.clone(),
                    watch(ws, conversation, 2 * PER_SENDER).await,
                )
            }));
        }
    }
    for task in tasks {
        let (_ws, mine) = task.await.expect("a sender finishes");
        assert_strictly_increasing(&seqs(&mine), "one sender's acks");
    }
    let expected: Vec<i64> = (1..=(2 * PER_SENDER) as i64).collect();
    let mut seen_conversations = HashSet::new();
    for task in watching {
        let (who, conversation, (mut ws, seen)) =
            tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .expect("every watcher gets every message")
                .expect("a watcher finishes");
        assert_saw_exactly(&seen, &expected, &who);
        assert_resume_gives_nothing_more(&mut ws, &conversation, expected.len() as i64).await;
        seen_conversations.insert(conversation);
    }
    assert_eq!(seen_conversations.len(), PAIRS);
    drop(others);
}

/// A seq drawn by a process that died before storing or publishing it: the next message waits
/// `messages.order_hold_ms` for it, then comes right after an `event: gap` naming the seq, and
/// the ack never waits for that.
#[tokio::test]
async fn a_seq_whose_process_died_holds_the_next_message_then_a_gap_is_told() {
    let app = spawn_app_with(|s| s.messages.order_hold_ms = nz!(400)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let first = alice_ws
        .send_to(&bob.id, "before")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_ws.next_message().await.seq, first.seq);

    // What a process leaves that drew the next seq and died.
    let conversation = dm(&alice.id, &bob.id);
    let counter = crate::redis_support::conversation_key(&app.settings, "seq", &conversation);
    let mut conn = crate::redis_support::redis_conn(&app.settings).await;
    let drawn: i64 = redis::cmd("INCR")
        .arg(&counter)
        .query_async(&mut conn)
        .await
        .expect("draw a seq");
    assert_eq!(drawn, first.seq + 1);

    let started = std::time::Instant::now();
    let after = alice_ws.send_to(&bob.id, "after").await;
    after.expect(DELIVERED);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the ack does not wait for the hold: {:?}",
        started.elapsed()
    );
    assert_eq!(after.message().seq, drawn + 1);
    let gap = bob_ws.next_event("gap").await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "held for order_hold_ms: {:?}",
        started.elapsed()
    );
    assert_eq!(
        gap,
        json!({"conversation": conversation, "from": drawn, "to": drawn})
    );
    let next = bob_ws.next_message().await;
    assert_eq!(
        next.seq,
        drawn + 1,
        "the held message comes right after the gap"
    );
    bob_ws.expect_no_event_of("message", 200).await;
    // And the conversation goes on in order.
    alice_ws.send_to(&bob.id, "later").await.expect(DELIVERED);
    assert_eq!(bob_ws.next_message().await.seq, drawn + 2);
}
