//! Several server processes over one Redis, MySQL and MongoDB are one service.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_sharing, spawn_process_node};
use crate::ws_client::{
    CLOSE_POLICY, DELIVERED, Ended, OK, STORED_OFFLINE, dm, group_conv, ids, seqs,
};

const QUIET_MS: u64 = 500;

#[tokio::test]
async fn ws_cluster_users_on_different_processes_exchange_direct_messages() {
    let app = spawn_app().await;
    let node_a = spawn_process_node(&app).await;
    let node_b = spawn_process_node(&app).await;
    assert_ne!(node_a.app.address, node_b.app.address);

    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let mut alice_on_a = node_a.app.connect_ws(&alice).await;
    let mut alice_on_b = node_b.app.connect_ws(&alice).await;
    let mut bob_on_b = node_b.app.connect_ws(&bob).await;

    let sent = alice_on_a
        .send_to_with_id(&bob.id, "across processes", "x-1")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(bob_on_b.next_message().await, sent);
    assert_eq!(
        alice_on_b.next_message().await,
        sent,
        "my device on the other process"
    );
    alice_on_a.expect_no_event(QUIET_MS).await;

    let reply = bob_on_b
        .send_to(&alice.id, "and back")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(reply.seq, sent.seq + 1);
    assert_eq!(alice_on_a.next_message().await, reply);
    assert_eq!(alice_on_b.next_message().await, reply);

    // Nobody connected anywhere: stored for later.
    let offline = alice_on_a
        .send_to(&carol.id, "you are offline")
        .await
        .expect(STORED_OFFLINE)
        .message();
    let mut carol_on_b = node_b.app.connect_ws(&carol).await;
    let unread = carol_on_b.unread_in(&dm(&alice.id, &carol.id)).await;
    assert_eq!(ids(&unread.messages()), vec![offline.id]);

    // A retry on the other process finds the stored message.
    let retry = alice_on_b
        .send_to_with_id(&bob.id, "across processes", "x-1")
        .await
        .expect(DELIVERED)
        .message();
    assert_eq!(retry, sent);
    bob_on_b.expect_no_event(QUIET_MS).await;
}

#[tokio::test]
async fn ws_cluster_group_messages_reach_members_on_every_process() {
    let node_1 = spawn_app().await;
    let node_2 = spawn_app_sharing(&node_1).await;

    let alice = node_1.chatter("alice").await;
    let bob = node_1.chatter("bob").await;
    let carol = node_2.chatter("carol").await;
    let group = node_2.group_with(&alice, "team", &[&bob, &carol]).await;
    let mut alice_ws = node_1.connect_ws(&alice).await;
    let mut bob_ws = node_2.connect_ws(&bob).await;
    let mut carol_ws = node_2.connect_ws(&carol).await;
    let mut alice_on_2 = node_2.connect_ws(&alice).await;

    let sent = alice_ws
        .send_group(&group, "hello team")
        .await
        .expect(OK)
        .message();
    assert_eq!(bob_ws.next_message().await, sent);
    assert_eq!(carol_ws.next_message().await, sent);
    assert_eq!(alice_on_2.next_message().await, sent);
    alice_ws.expect_no_event(QUIET_MS).await;

    let answer = carol_ws
        .send_group(&group, "hi alice")
        .await
        .expect(OK)
        .message();
    assert_eq!(answer.seq, sent.seq + 1);
    assert_eq!(alice_ws.next_message().await, answer);
    assert_eq!(bob_ws.next_message().await, answer);

    // 1:1 across the in-process nodes too, with the right ack.
    alice_ws.send_to(&bob.id, "direct").await.expect(DELIVERED);
    assert_eq!(bob_ws.next_message().await.content, "direct");

    // The lobby spans both processes.
    let lobby = bob_ws
        .send_group("", "lobby hello")
        .await
        .expect(OK)
        .message();
    assert_eq!(alice_ws.next_message().await, lobby);
    assert_eq!(carol_ws.next_message().await, lobby);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_cluster_seq_never_repeats_across_processes() {
    let node_1 = spawn_app().await;
    let node_2 = spawn_app_sharing(&node_1).await;
    let alice = node_1.chatter("alice").await;
    let bob = node_1.chatter("bob").await;
    let group = node_1.group_with(&alice, "team", &[&bob]).await;
    let mut alice_ws = node_1.connect_ws(&alice).await;
    let mut bob_ws = node_2.connect_ws(&bob).await;

    const EACH: usize = 15;
    let group_a = group.clone();
    let from_alice = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..EACH {
            sent.push(
                alice_ws
                    .send_group(&group_a, &format!("a{i}"))
                    .await
                    .expect(OK)
                    .message(),
            );
        }
        sent
    });
    let group_b = group.clone();
    let from_bob = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..EACH {
            sent.push(
                bob_ws
                    .send_group(&group_b, &format!("b{i}"))
                    .await
                    .expect(OK)
                    .message(),
            );
        }
        sent
    });
    let mut sent = from_alice.await.unwrap();
    sent.extend(from_bob.await.unwrap());

    let unique: HashSet<i64> = seqs(&sent).into_iter().collect();
    assert_eq!(unique.len(), 2 * EACH, "seqs are unique: {:?}", seqs(&sent));
    let mut acked = sent.clone();
    acked.sort_by_key(|m| m.seq);
    let mut reader = node_2.connect_ws(&alice).await;
    let history = reader.history_of(&group_conv(&group)).await;
    assert_eq!(
        ids(&history),
        ids(&acked),
        "history is every ack, ascending by seq"
    );
}

#[tokio::test]
async fn ws_cluster_logout_on_one_process_closes_the_socket_on_another() {
    let node_1 = spawn_app().await;
    let node_2 = spawn_app_sharing(&node_1).await;
    let alice = node_1.chatter("alice").await;
    let mut alice_on_2 = node_2.connect_ws(&alice).await;

    let resp = node_1.post(&alice.http, "/user/logout", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let ended = alice_on_2.expect_closed(Duration::from_secs(5)).await;
    assert!(
        matches!(ended, Ended::Close(Some(CLOSE_POLICY)) | Ended::Dropped),
        "closed with 1008 (or at least closed): {ended:?}"
    );
}

/// Each process caches groups and relations for its send path; a change made through another
/// process must reach that cache before the change's HTTP answer is used.
#[tokio::test]
async fn ws_cluster_changes_on_one_process_reach_the_send_path_of_the_other_at_once() {
    use crate::groups_support::{group_in_mode, kick, mute, unmute};
    use crate::ws_client::FORBIDDEN;

    let node_a = spawn_app().await;
    let node_b = spawn_app_sharing(&node_a).await;
    let owner = node_a.chatter("owner").await;
    let member = node_a.chatter("member").await;
    let group = group_in_mode(&node_a, &owner, "open").await;
    node_a.add_to_group(&owner, &group, &member).await;

    // The member chats through B, so B has the group cached.
    let mut member_on_b = node_b.connect_ws(&member).await;
    member_on_b.send_group(&group, "warm").await.expect(OK);
    member_on_b
        .send_to(&owner.id, "hi")
        .await
        .expect(STORED_OFFLINE);

    let muted = mute(&node_a, &owner, &group, &member.id, 600).await;
    assert_eq!(muted.status(), StatusCode::OK, "mute through A");
    member_on_b
        .send_group(&group, "muted on A")
        .await
        .expect(FORBIDDEN);
    let unmuted = unmute(&node_a, &owner, &group, &member.id).await;
    assert_eq!(unmuted.status(), StatusCode::OK, "unmute through A");
    member_on_b.send_group(&group, "unmuted").await.expect(OK);

    let kicked = kick(&node_a, &owner, &group, &member.id).await;
    assert_eq!(kicked.status(), StatusCode::OK, "kick through A");
    member_on_b
        .send_group(&group, "kicked on A")
        .await
        .expect(FORBIDDEN);

    let blocked = node_a
        .post(&owner.http, "/blocks", &json!({ "user_id": member.id }))
        .await;
    assert_eq!(blocked.status(), StatusCode::CREATED, "block through A");
    member_on_b
        .send_to(&owner.id, "blocked on A")
        .await
        .expect(FORBIDDEN);
}

/// A change is answered only once every process has forgotten what it touches, so the very
/// next send through another process sees it, every time (not only when that process's relay
/// happened to run first).
#[tokio::test]
async fn ws_cluster_a_block_through_one_process_refuses_the_next_send_through_another_every_time() {
    use crate::people_support::delete;
    use crate::ws_client::FORBIDDEN;

    let node_a = spawn_app().await;
    let node_b = spawn_app_sharing(&node_a).await;
    let owner = node_a.chatter("blocker").await;
    let other = node_a.chatter("sender").await;
    let mut other_on_b = node_b.connect_ws(&other).await;
    for round in 0..15 {
        other_on_b
            .send_to(&owner.id, &format!("before {round}"))
            .await
            .expect(STORED_OFFLINE);
        let blocked = node_a
            .post(&owner.http, "/blocks", &json!({ "user_id": other.id }))
            .await;
        assert_eq!(
            blocked.status(),
            StatusCode::CREATED,
            "block, round {round}"
        );
        other_on_b
            .send_to(&owner.id, &format!("blocked {round}"))
            .await
            .expect(FORBIDDEN);
        let unblocked = delete(&node_a, &owner.http, &format!("/blocks/{}", other.id)).await;
        assert!(
            unblocked.status().is_success(),
            "unblock, round {round}: {}",
            unblocked.status()
        );
    }
}

/// A process that never confirms an invalidation (its relay is stuck) delays a change's
/// answer by `cache.invalidation_wait_ms`, never hangs it.
#[tokio::test]
async fn ws_cluster_a_process_that_never_confirms_does_not_hang_changes() {
    let app = crate::helpers::spawn_app_with(|s| s.cache.invalidation_wait_ms = nz!(300)).await;
    let owner = app.chatter("owner").await;
    let other = app.chatter("other").await;

    // A subscriber of the broadcast channel that reads nothing and confirms nothing.
    let silent = crate::redis_support::BroadcastTap::start(&app.settings).await;

    let started = std::time::Instant::now();
    let blocked = tokio::time::timeout(
        Duration::from_secs(10),
        app.post(&owner.http, "/blocks", &json!({ "user_id": other.id })),
    )
    .await
    .expect("the block is answered although one subscriber never confirms");
    assert_eq!(blocked.status(), StatusCode::CREATED);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the answer waited for the silent subscriber: {:?}",
        started.elapsed()
    );
    drop(silent);
}

/// Processes of a rolling deploy may start at the same moment on an empty database: one
/// applies the migrations while the others wait, and all of them start.
#[tokio::test]
async fn ws_cluster_processes_starting_together_on_an_empty_database_all_start() {
    let first = spawn_app().await;
    let mut settings = first.settings.clone();
    let empty = format!("chat_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(
        secrecy::ExposeSecret::expose_secret(&settings.mysql.url),
    )
    .await
    .expect("the test MariaDB answers");
    sqlx::query(&format!("CREATE DATABASE `{empty}` CHARACTER SET utf8mb4"))
        .execute(&mut admin)
        .await
        .expect("create an empty database");
    let url = secrecy::ExposeSecret::expose_secret(&settings.mysql.url).to_owned();
    let (server, _) = url.rsplit_once('/').expect("mysql url has a database");
    settings.mysql.url = format!("{server}/{empty}").into();

    let starts = (0..4).map(|_| chat_server::startup::Application::build(settings.clone()));
    for (n, started) in futures_util::future::join_all(starts)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err(err) = started {
            panic!("process {n} did not start: {err:?}");
        }
    }
}
