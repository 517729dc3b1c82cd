//! Per-conversation order under concurrent senders: every receiver sees one sequence.

use std::collections::HashSet;

use crate::helpers::spawn_app;
use crate::ws_client::{ChatMessage, OK, group_conv, ids, seqs};

const SENDERS: usize = 20;
const PER_SENDER: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_twenty_concurrent_senders_into_one_group_give_every_receiver_the_same_order() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let group = app.create_group(&owner, "busy").await;
    let first_reader = app.chatter("reader1").await;
    let second_reader = app.chatter("reader2").await;
    app.add_to_group(&owner, &group, &first_reader).await;
    app.add_to_group(&owner, &group, &second_reader).await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let sender = app.chatter(&format!("sender{i:02}")).await;
        app.add_to_group(&owner, &group, &sender).await;
        senders.push(app.connect_ws(&sender).await);
    }
    let mut first = app.connect_ws(&first_reader).await;
    let mut second = app.connect_ws(&second_reader).await;

    // Everybody sends at once; each sender's own sends are sequential.
    let mut tasks = Vec::new();
    for (i, mut ws) in senders.into_iter().enumerate() {
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<ChatMessage> = Vec::new();
            for n in 0..PER_SENDER {
                let reply = ws.send_group(&group, &format!("s{i}-{n}")).await;
                reply.expect(OK);
                acked.push(reply.message());
            }
            (ws, acked)
        }));
    }
    let mut acked = Vec::new();
    let mut keep_open = Vec::new();
    for task in tasks {
        let (ws, mine) = task.await.unwrap();
        assert!(
            seqs(&mine).windows(2).all(|w| w[0] < w[1]),
            "one sender's sequential sends get increasing seqs: {:?}",
            seqs(&mine)
        );
        acked.extend(mine);
        keep_open.push(ws);
    }
    let total = SENDERS * PER_SENDER;
    assert_eq!(acked.len(), total);
    let unique_seqs: HashSet<i64> = seqs(&acked).into_iter().collect();
    assert_eq!(unique_seqs.len(), total, "seqs never repeat");

    let seen_first = first.next_messages(total).await;
    let seen_second = second.next_messages(total).await;
    first.expect_no_event(300).await;
    second.expect_no_event(300).await;

    assert_eq!(
        ids(&seen_first),
        ids(&seen_second),
        "both receivers see one sequence"
    );
    assert!(
        seqs(&seen_first).windows(2).all(|w| w[0] < w[1]),
        "one process pushes in seq order: {:?}",
        seqs(&seen_first)
    );
    let acked_ids: HashSet<String> = ids(&acked).into_iter().collect();
    let seen_ids: HashSet<String> = ids(&seen_first).into_iter().collect();
    assert_eq!(
        seen_ids, acked_ids,
        "every acked message was pushed, nothing else"
    );

    let mut by_seq = acked.clone();
    by_seq.sort_by_key(|m| m.seq);
    let history = first.history_of(&group_conv(&group)).await;
    assert_eq!(
        seqs(&history),
        seqs(&by_seq),
        "history is ascending and has exactly the acked seqs"
    );
    assert_eq!(ids(&history), ids(&by_seq));
    assert_eq!(
        ids(&history),
        ids(&seen_first),
        "history order is the pushed order"
    );
}
