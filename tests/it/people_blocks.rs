//! Blocking (docs/people.md, "Blocking"): the routes, and what a block ends and refuses.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_error, json_of, spawn_app};
use crate::people_support::{
    assert_rfc3339, decide, delete, friend_ids, get_list, ids_of, is_friend, items, json_with,
    make_friends, new_request, send_request,
};
use crate::ws_client::{Chatter, DELIVERED, FORBIDDEN, dm};

use crate::helpers::TestApp;

const QUIET_MS: u64 = 500;

async fn block(app: &TestApp, by: &Chatter, user_id: &str) -> reqwest::Response {
    app.post(&by.http, "/blocks", &json!({ "user_id": user_id }))
        .await
}

async fn unblock(app: &TestApp, by: &Chatter, user_id: &str) -> reqwest::Response {
    delete(app, &by.http, &format!("/blocks/{user_id}")).await
}

#[tokio::test]
async fn people_blocking_is_201_then_200_listed_and_undone() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let dave = app.chatter("dave").await;

    let body = json_with(block(&app, &alice, &bob.id).await, StatusCode::CREATED).await;
    let mut fields: Vec<&str> = body["block"]
        .as_object()
        .unwrap_or_else(|| panic!("a block object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["created_at", "user_id"], "{body}");
    assert_eq!(body["block"]["user_id"], bob.id);
    assert_rfc3339(&body["block"]["created_at"], "created_at");

    let again = json_with(block(&app, &alice, &bob.id).await, StatusCode::OK).await;
    assert_eq!(again["block"]["user_id"], bob.id, "{again}");

    let resp = block(&app, &alice, &alice.id).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "blocking yourself");
    let err = json_of(resp).await;
    assert!(err["code"].is_string(), "the usual error body: {err}");
    let resp = block(&app, &alice, "987654321").await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    block(&app, &alice, &carol.id).await;
    let body = json_with(app.get(&alice.http, "/blocks").await, StatusCode::OK).await;
    let blocks = items(&body, "blocks");
    assert_eq!(body["total"], 2, "{body}");
    let blocked: BTreeSet<String> = ids_of(&blocks, "user_id").into_iter().collect();
    assert_eq!(blocked, [bob.id.clone(), carol.id.clone()].into());
    for entry in &blocks {
        let mut fields: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            vec!["created_at", "nick_name", "user_id", "user_name"],
            "{entry}"
        );
        assert_rfc3339(&entry["created_at"], "created_at");
        let expected = if entry["user_id"] == bob.id {
            "bob"
        } else {
            "carol"
        };
        assert_eq!(entry["user_name"], expected, "{entry}");
        assert_eq!(entry["nick_name"], expected, "{entry}");
    }
    assert!(
        get_list(&app, &bob.http, "/blocks", "blocks")
            .await
            .is_empty(),
        "a block is one-way"
    );

    assert_eq!(
        unblock(&app, &alice, &bob.id).await.status(),
        StatusCode::OK
    );
    let resp = unblock(&app, &alice, &bob.id).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = unblock(&app, &alice, &dave.id).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let blocks = get_list(&app, &alice.http, "/blocks", "blocks").await;
    assert_eq!(ids_of(&blocks, "user_id"), vec![carol.id.clone()]);
}

#[tokio::test]
async fn people_a_block_ends_a_friendship_on_both_sides() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    make_friends(&app, &alice, &bob).await;
    alice_ws.next_event("friend").await;
    bob_ws.next_event("friend").await;

    assert_eq!(
        block(&app, &alice, &bob.id).await.status(),
        StatusCode::CREATED
    );
    let removed = alice_ws.next_event("friend").await;
    assert_eq!(removed["action"], "removed", "{removed}");
    assert_eq!(removed["user_id"], bob.id, "{removed}");
    let removed = bob_ws.next_event("friend").await;
    assert_eq!(removed["action"], "removed", "{removed}");
    assert_eq!(removed["user_id"], alice.id, "{removed}");

    assert!(!is_friend(&app, &alice, &bob.id).await);
    assert!(!is_friend(&app, &bob, &alice.id).await);
    assert!(friend_ids(&app, &alice).await.is_empty());
    assert!(friend_ids(&app, &bob).await.is_empty());

    // Unblocking does not bring the friendship back.
    assert_eq!(
        unblock(&app, &alice, &bob.id).await.status(),
        StatusCode::OK
    );
    assert!(!is_friend(&app, &alice, &bob.id).await);
    assert!(!is_friend(&app, &bob, &alice.id).await);
}

#[tokio::test]
async fn people_a_block_declines_pending_requests_between_the_two() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let from_bob = new_request(&app, &bob, &alice).await;
    let to_carol = new_request(&app, &alice, &carol).await;

    assert_eq!(
        block(&app, &alice, &bob.id).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        block(&app, &alice, &carol.id).await.status(),
        StatusCode::CREATED
    );

    let incoming = get_list(&app, &alice.http, "/friends/requests", "requests").await;
    assert_eq!(incoming.len(), 1, "{incoming:?}");
    assert_eq!(incoming[0]["id"], from_bob["id"]);
    assert_ne!(incoming[0]["status"], "pending", "declined: {incoming:?}");
    let pending = get_list(
        &app,
        &alice.http,
        "/friends/requests?status=pending",
        "requests",
    )
    .await;
    assert!(pending.is_empty(), "{pending:?}");
    let carols = get_list(&app, &carol.http, "/friends/requests", "requests").await;
    assert_eq!(carols.len(), 1, "{carols:?}");
    assert_eq!(carols[0]["id"], to_carol["id"]);
    assert_ne!(carols[0]["status"], "pending", "declined: {carols:?}");

    // A declined request is decided.
    let id = from_bob["id"].as_str().unwrap();
    let resp = decide(&app, &alice, id, "accept").await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert!(!is_friend(&app, &alice, &bob.id).await);
}

#[tokio::test]
async fn people_a_blocked_users_messages_are_refused_and_never_seen() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    assert_eq!(
        block(&app, &alice, &bob.id).await.status(),
        StatusCode::CREATED
    );

    bob_ws
        .send_to(&alice.id, "you can't block me")
        .await
        .expect(FORBIDDEN);
    bob_ws
        .send_to_with_id(&alice.id, "or can you", "c-1")
        .await
        .expect(FORBIDDEN);
    alice_ws.expect_no_event_of("message", QUIET_MS).await;
    let conversation = dm(&alice.id, &bob.id);
    assert!(
        alice_ws.history_of(&conversation).await.is_empty(),
        "nothing stored"
    );
    assert!(bob_ws.history_of(&conversation).await.is_empty());
    assert!(
        alice_ws.unread_overview().await.is_empty(),
        "nothing unread for the blocker"
    );

    // Unblocked, bob's messages go through again.
    assert_eq!(
        unblock(&app, &alice, &bob.id).await.status(),
        StatusCode::OK
    );
    bob_ws
        .send_to(&alice.id, "hello again")
        .await
        .expect(DELIVERED);
    assert_eq!(alice_ws.next_message().await.content, "hello again");
    let history = alice_ws.history_of(&conversation).await;
    assert_eq!(history.len(), 1, "{history:?}");
}

#[tokio::test]
async fn people_friend_requests_across_a_block_are_refused_either_way() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    assert_eq!(
        block(&app, &alice, &bob.id).await.status(),
        StatusCode::CREATED
    );

    let resp = send_request(&app, &bob, &alice.id).await;
    expect_error(resp, StatusCode::FORBIDDEN, "blocked").await;
    let resp = send_request(&app, &alice, &bob.id).await;
    expect_error(resp, StatusCode::FORBIDDEN, "blocked").await;
    let incoming: Vec<Value> = get_list(&app, &alice.http, "/friends/requests", "requests").await;
    assert!(incoming.is_empty(), "nothing stored: {incoming:?}");

    assert_eq!(
        unblock(&app, &alice, &bob.id).await.status(),
        StatusCode::OK
    );
    let request = new_request(&app, &bob, &alice).await;
    assert_eq!(request["status"], "pending");
}
