//! Friend requests, friendships, remarks, their WebSocket events, and what friendship changes
//! for messaging (docs/people.md, "Friends").

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_error, spawn_app, spawn_app_with};
use crate::people_support::{
    assert_profile_shape, assert_rfc3339, decide, delete, expect_validation, friend_ids, get_list,
    ids_of, is_friend, items, json_with, make_friends, new_request, patch, profile, send_request,
};
use crate::ws_client::{DELIVERED, FORBIDDEN, STORED_OFFLINE, dm};

const QUIET_MS: u64 = 500;

fn id_of(request: &Value) -> String {
    request["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a request id is a string: {request}"))
        .to_owned()
}

#[track_caller]
fn assert_request_shape(request: &Value) {
    let mut fields: Vec<&str> = request
        .as_object()
        .unwrap_or_else(|| panic!("a request is an object: {request}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec!["created_at", "from", "id", "message", "status", "to"],
        "the documented request fields: {request}"
    );
    assert_rfc3339(&request["created_at"], "created_at");
}

/// A friend list entry: a profile plus `since`.
#[track_caller]
fn assert_friend_shape(friend: &Value) {
    let mut without_since = friend.clone();
    let since = without_since
        .as_object_mut()
        .and_then(|o| o.remove("since"))
        .unwrap_or_else(|| panic!("a friend has `since`: {friend}"));
    assert_rfc3339(&since, "since");
    assert_profile_shape(&without_since);
    assert_eq!(friend["is_friend"], true, "{friend}");
}

#[tokio::test]
async fn people_a_friend_request_is_created_and_pushed_to_the_recipient() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;

    let resp = app
        .post(
            &alice.http,
            "/friends/requests",
            &json!({"user_id": bob.id, "message": "hi, it's Alice"}),
        )
        .await;
    let request = json_with(resp, StatusCode::CREATED).await["request"].clone();
    assert_request_shape(&request);
    assert_eq!(request["from"], alice.id);
    assert_eq!(request["to"], bob.id);
    assert_eq!(request["message"], "hi, it's Alice");
    assert_eq!(request["status"], "pending");

    let pushed = bob_ws.next_event("friend_request").await;
    assert_eq!(pushed["request"]["id"], request["id"], "{pushed}");
    assert_eq!(pushed["request"]["status"], "pending", "{pushed}");
    assert_eq!(pushed["request"]["from"], alice.id, "{pushed}");
    alice_ws
        .expect_no_event_of("friend_request", QUIET_MS)
        .await;

    let incoming = get_list(&app, &bob.http, "/friends/requests", "requests").await;
    assert_eq!(incoming, vec![request.clone()], "incoming is the default");
    let outgoing = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=outgoing",
        "requests",
    )
    .await;
    assert_eq!(outgoing, vec![request.clone()]);
    assert!(
        get_list(&app, &alice.http, "/friends/requests", "requests")
            .await
            .is_empty()
    );
    assert!(!is_friend(&app, &alice, &bob.id).await, "not yet friends");
}

#[tokio::test]
async fn people_friend_request_errors() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;

    expect_validation(send_request(&app, &alice, &alice.id).await, "user_id").await;
    let resp = send_request(&app, &alice, "987654321").await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    let resp = app
        .post(
            &alice.http,
            "/friends/requests",
            &json!({"user_id": bob.id, "message": "m".repeat(201)}),
        )
        .await;
    expect_validation(resp, "message").await;

    let longest = "é".repeat(200);
    let resp = app
        .post(
            &alice.http,
            "/friends/requests",
            &json!({"user_id": bob.id, "message": longest}),
        )
        .await;
    let request = json_with(resp, StatusCode::CREATED).await["request"].clone();
    assert_eq!(request["message"], longest.as_str(), "200 characters fit");
}

#[tokio::test]
async fn people_a_second_pending_request_returns_the_first() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let first = new_request(&app, &alice, &bob).await;
    let body = json_with(send_request(&app, &alice, &bob.id).await, StatusCode::OK).await;
    assert_eq!(body["request"]["id"], first["id"], "{body}");
    assert_eq!(body["request"]["status"], "pending", "{body}");
    let incoming = get_list(&app, &bob.http, "/friends/requests", "requests").await;
    assert_eq!(incoming.len(), 1, "{incoming:?}");
}

#[tokio::test]
async fn people_asking_someone_who_already_asked_you_accepts_their_request() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let theirs = new_request(&app, &bob, &alice).await;

    let body = json_with(send_request(&app, &alice, &bob.id).await, StatusCode::OK).await;
    assert_eq!(body["request"]["id"], theirs["id"], "their request: {body}");
    assert_eq!(body["request"]["from"], bob.id, "{body}");
    assert_eq!(body["request"]["status"], "accepted", "{body}");

    assert!(is_friend(&app, &alice, &bob.id).await);
    assert!(is_friend(&app, &bob, &alice.id).await);
    let pushed = bob_ws.next_event("friend_request").await;
    assert_eq!(pushed["request"]["id"], theirs["id"], "{pushed}");
    assert_eq!(pushed["request"]["status"], "accepted", "{pushed}");
    let added = bob_ws.next_event("friend").await;
    assert_eq!(added["action"], "added", "{added}");
    assert_eq!(added["user"]["id"], alice.id, "{added}");
    let added = alice_ws.next_event("friend").await;
    assert_eq!(added["action"], "added", "{added}");
    assert_eq!(added["user"]["id"], bob.id, "{added}");
    let outgoing = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=outgoing",
        "requests",
    )
    .await;
    assert!(outgoing.is_empty(), "no second request: {outgoing:?}");
}

#[tokio::test]
async fn people_a_request_to_a_friend_is_a_conflict() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    make_friends(&app, &alice, &bob).await;
    let resp = send_request(&app, &alice, &bob.id).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    let resp = send_request(&app, &bob, &alice.id).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn people_accepting_makes_both_friends_at_once_and_tells_both() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let request = new_request(&app, &alice, &bob).await;
    bob_ws.next_event("friend_request").await;

    let body = json_with(
        decide(&app, &bob, &id_of(&request), "accept").await,
        StatusCode::OK,
    )
    .await;
    assert_request_shape(&body["request"]);
    assert_eq!(body["request"]["id"], request["id"]);
    assert_eq!(body["request"]["status"], "accepted");

    // The requester hears about it, and both get the new friend's profile.
    let pushed = alice_ws.next_event("friend_request").await;
    assert_eq!(pushed["request"]["id"], request["id"], "{pushed}");
    assert_eq!(pushed["request"]["status"], "accepted", "{pushed}");
    let added = alice_ws.next_event("friend").await;
    assert_eq!(added["action"], "added", "{added}");
    assert_eq!(added["user"]["id"], bob.id, "{added}");
    assert_eq!(added["user"]["user_name"], "bob", "{added}");
    assert!(added["user"].get("email").is_none(), "a profile: {added}");
    let added = bob_ws.next_event("friend").await;
    assert_eq!(added["action"], "added", "{added}");
    assert_eq!(added["user"]["id"], alice.id, "{added}");
    assert!(added["user"].get("email").is_none(), "a profile: {added}");

    assert!(is_friend(&app, &alice, &bob.id).await);
    assert!(is_friend(&app, &bob, &alice.id).await);
    let alice_friends = get_list(&app, &alice.http, "/friends", "friends").await;
    assert_eq!(alice_friends.len(), 1, "{alice_friends:?}");
    assert_friend_shape(&alice_friends[0]);
    assert_eq!(alice_friends[0]["id"], bob.id);
    let bob_friends = get_list(&app, &bob.http, "/friends", "friends").await;
    assert_eq!(bob_friends.len(), 1, "{bob_friends:?}");
    assert_friend_shape(&bob_friends[0]);
    assert_eq!(bob_friends[0]["id"], alice.id);

    let incoming = get_list(&app, &bob.http, "/friends/requests", "requests").await;
    assert_eq!(incoming[0]["status"], "accepted", "{incoming:?}");
}

#[tokio::test]
async fn people_rejecting_tells_the_requester_and_makes_no_friendship() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let request = new_request(&app, &alice, &bob).await;

    let body = json_with(
        decide(&app, &bob, &id_of(&request), "reject").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["request"]["id"], request["id"]);
    assert_eq!(body["request"]["status"], "rejected");

    let pushed = alice_ws.next_event("friend_request").await;
    assert_eq!(pushed["request"]["id"], request["id"], "{pushed}");
    assert_eq!(pushed["request"]["status"], "rejected", "{pushed}");
    alice_ws.expect_no_event_of("friend", QUIET_MS).await;
    bob_ws.expect_no_event_of("friend", 0).await;
    assert!(!is_friend(&app, &alice, &bob.id).await);
    assert!(!is_friend(&app, &bob, &alice.id).await);
    assert!(friend_ids(&app, &alice).await.is_empty());

    let outgoing = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=outgoing",
        "requests",
    )
    .await;
    assert_eq!(outgoing[0]["status"], "rejected", "{outgoing:?}");

    // Nothing is pending any more, so a new request is a new one.
    let again = new_request(&app, &alice, &bob).await;
    assert_ne!(again["id"], request["id"]);
}

#[tokio::test]
async fn people_ignoring_is_silent_and_the_requester_still_sees_it_pending() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let request = new_request(&app, &alice, &bob).await;

    let body = json_with(
        decide(&app, &bob, &id_of(&request), "ignore").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["request"]["id"], request["id"]);
    assert_eq!(body["request"]["status"], "ignored");

    alice_ws
        .expect_no_event_of("friend_request", QUIET_MS)
        .await;
    alice_ws.expect_no_event_of("friend", 0).await;
    let outgoing = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=outgoing",
        "requests",
    )
    .await;
    assert_eq!(outgoing.len(), 1, "{outgoing:?}");
    assert_eq!(
        outgoing[0]["status"], "pending",
        "the requester keeps seeing it pending: {outgoing:?}"
    );
    let incoming = get_list(&app, &bob.http, "/friends/requests", "requests").await;
    assert_eq!(incoming[0]["status"], "ignored", "{incoming:?}");
    assert!(!is_friend(&app, &alice, &bob.id).await);
}

#[tokio::test]
async fn people_only_the_recipient_decides_and_only_once() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let request = id_of(&new_request(&app, &alice, &bob).await);

    for action in ["accept", "reject", "ignore"] {
        let resp = decide(&app, &alice, &request, action).await;
        expect_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
        let resp = decide(&app, &carol, &request, action).await;
        expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
        let resp = decide(&app, &bob, "987654321", action).await;
        expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert!(
        !is_friend(&app, &alice, &bob.id).await,
        "nothing decided yet"
    );

    assert_eq!(
        decide(&app, &bob, &request, "accept").await.status(),
        StatusCode::OK
    );
    for action in ["accept", "reject", "ignore"] {
        let resp = decide(&app, &bob, &request, action).await;
        expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    }

    // Rejected and ignored requests are decided too.
    for (first, name) in [("reject", "dave"), ("ignore", "erin")] {
        let asker = app.chatter(name).await;
        let request = id_of(&new_request(&app, &asker, &bob).await);
        assert_eq!(
            decide(&app, &bob, &request, first).await.status(),
            StatusCode::OK
        );
        for action in ["accept", "reject", "ignore"] {
            let resp = decide(&app, &bob, &request, action).await;
            expect_error(resp, StatusCode::CONFLICT, "conflict").await;
        }
        assert!(!is_friend(&app, &bob, &asker.id).await);
    }
}

#[tokio::test]
async fn people_request_lists_filter_by_direction_and_status_newest_first() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let dave = app.chatter("dave").await;
    let erin = app.chatter("erin").await;
    let from_bob = new_request(&app, &bob, &alice).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from_carol = new_request(&app, &carol, &alice).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let to_dave = new_request(&app, &alice, &dave).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let to_erin = new_request(&app, &alice, &erin).await;

    let body = json_with(
        app.get(&alice.http, "/friends/requests").await,
        StatusCode::OK,
    )
    .await;
    let incoming = items(&body, "requests");
    assert_eq!(
        ids_of(&incoming, "id"),
        vec![id_of(&from_carol), id_of(&from_bob)],
        "incoming, newest first"
    );
    assert_eq!(body["total"], 2, "{body}");
    for request in &incoming {
        assert_request_shape(request);
    }
    let explicit = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=incoming",
        "requests",
    )
    .await;
    assert_eq!(explicit, incoming);
    let outgoing = get_list(
        &app,
        &alice.http,
        "/friends/requests?direction=outgoing",
        "requests",
    )
    .await;
    assert_eq!(
        ids_of(&outgoing, "id"),
        vec![id_of(&to_erin), id_of(&to_dave)],
        "outgoing, newest first"
    );

    assert_eq!(
        decide(&app, &alice, &id_of(&from_bob), "accept")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        decide(&app, &dave, &id_of(&to_dave), "reject")
            .await
            .status(),
        StatusCode::OK
    );
    let list = |query: &'static str| {
        let app = &app;
        let alice = &alice;
        async move { ids_of(&get_list(app, &alice.http, query, "requests").await, "id") }
    };
    assert_eq!(
        list("/friends/requests?status=pending").await,
        vec![id_of(&from_carol)]
    );
    assert_eq!(
        list("/friends/requests?direction=incoming&status=accepted").await,
        vec![id_of(&from_bob)]
    );
    assert!(list("/friends/requests?status=rejected").await.is_empty());
    assert_eq!(
        list("/friends/requests?direction=outgoing&status=pending").await,
        vec![id_of(&to_erin)]
    );
    assert_eq!(
        list("/friends/requests?direction=outgoing&status=rejected").await,
        vec![id_of(&to_dave)]
    );
    assert_eq!(
        list("/friends/requests?direction=outgoing&limit=1").await,
        vec![id_of(&to_erin)]
    );
    // Bob's request is outgoing for him.
    let bobs = get_list(&app, &bob.http, "/friends/requests", "requests").await;
    assert!(bobs.is_empty(), "{bobs:?}");
}

#[tokio::test]
async fn people_friends_are_listed_by_name_with_since() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let dave = app.chatter("dave").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let stranger = app.chatter("aaron").await;
    make_friends(&app, &alice, &dave).await;
    make_friends(&app, &bob, &alice).await;
    make_friends(&app, &alice, &carol).await;

    let body = json_with(app.get(&alice.http, "/friends").await, StatusCode::OK).await;
    let friends = items(&body, "friends");
    for friend in &friends {
        assert_friend_shape(friend);
    }
    assert_eq!(
        ids_of(&friends, "user_name"),
        vec!["bob", "carol", "dave"],
        "ordered by name"
    );
    assert_eq!(body["total"], 3);

    let body = json_with(
        app.get(&alice.http, "/friends?limit=2&offset=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ids_of(&items(&body, "friends"), "user_name"),
        vec!["carol", "dave"]
    );
    assert_eq!(body["has_more"], false, "{body}");
    let body = json_with(
        app.get(&alice.http, "/friends?limit=2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["has_more"], true, "{body}");

    assert!(!is_friend(&app, &alice, &stranger.id).await);
    assert!(!is_friend(&app, &bob, &carol.id).await, "not transitive");
}

#[tokio::test]
async fn people_a_remark_is_private_to_the_one_who_wrote_it() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    make_friends(&app, &alice, &bob).await;
    let path = format!("/friends/{}", bob.id);

    let body = json_with(
        patch(&app, &alice.http, &path, &json!({"remark": "Bobby"})).await,
        StatusCode::OK,
    )
    .await;
    assert_friend_shape(&body["friend"]);
    assert_eq!(body["friend"]["id"], bob.id);
    assert_eq!(body["friend"]["remark"], "Bobby");

    let alice_friends = get_list(&app, &alice.http, "/friends", "friends").await;
    assert_eq!(alice_friends[0]["remark"], "Bobby");
    let bob_friends = get_list(&app, &bob.http, "/friends", "friends").await;
    assert_eq!(bob_friends[0]["remark"], Value::Null, "private to alice");
    assert_eq!(profile(&app, &bob, &alice.id).await["remark"], Value::Null);
    assert_eq!(profile(&app, &carol, &bob.id).await["remark"], Value::Null);

    let longest = "r".repeat(64);
    let body = json_with(
        patch(&app, &alice.http, &path, &json!({ "remark": longest })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["friend"]["remark"], longest.as_str());
    let resp = patch(&app, &alice.http, &path, &json!({"remark": "r".repeat(65)})).await;
    expect_validation(resp, "remark").await;
    assert_eq!(
        profile(&app, &alice, &bob.id).await["remark"],
        longest.as_str(),
        "unchanged by the refused one"
    );

    for clear in [json!(""), Value::Null] {
        patch(&app, &alice.http, &path, &json!({"remark": "again"})).await;
        let body = json_with(
            patch(&app, &alice.http, &path, &json!({ "remark": clear })).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body["friend"]["remark"], Value::Null, "{clear} clears");
        assert_eq!(profile(&app, &alice, &bob.id).await["remark"], Value::Null);
    }

    let resp = patch(
        &app,
        &alice.http,
        &format!("/friends/{}", carol.id),
        &json!({"remark": "x"}),
    )
    .await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = patch(
        &app,
        &alice.http,
        "/friends/987654321",
        &json!({"remark": "x"}),
    )
    .await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn people_deleting_a_friend_ends_it_on_both_sides_and_tells_both() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let carol = app.chatter("carol").await;
    make_friends(&app, &alice, &bob).await;
    make_friends(&app, &alice, &carol).await;
    alice_ws.next_event("friend").await;
    alice_ws.next_event("friend").await;
    bob_ws.next_event("friend").await;

    let resp = delete(&app, &alice.http, &format!("/friends/{}", bob.id)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let removed = alice_ws.next_event("friend").await;
    assert_eq!(removed["action"], "removed", "{removed}");
    assert_eq!(removed["user_id"], bob.id, "{removed}");
    let removed = bob_ws.next_event("friend").await;
    assert_eq!(removed["action"], "removed", "{removed}");
    assert_eq!(removed["user_id"], alice.id, "{removed}");

    assert!(!is_friend(&app, &alice, &bob.id).await);
    assert!(!is_friend(&app, &bob, &alice.id).await);
    assert_eq!(friend_ids(&app, &alice).await, vec![carol.id.clone()]);
    assert!(friend_ids(&app, &bob).await.is_empty());
    assert_eq!(profile(&app, &bob, &alice.id).await["is_friend"], false);

    for (by, other) in [(&alice, &bob), (&bob, &alice)] {
        let resp = delete(&app, &by.http, &format!("/friends/{}", other.id)).await;
        expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    let resp = delete(&app, &alice.http, "/friends/987654321").await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    // They can become friends again.
    make_friends(&app, &bob, &alice).await;
    assert!(is_friend(&app, &alice, &bob.id).await);
}

#[tokio::test]
async fn people_friends_are_exempt_from_the_unanswered_rule() {
    let app = spawn_app_with(|s| s.antispam.unanswered_limit = nz!(1)).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;
    let bob = app.chatter("bob").await;
    make_friends(&app, &alice, &bob).await;

    for n in 1..=3 {
        alice_ws
            .send_to(&bob.id, &format!("friendly note {n}"))
            .await
            .expect(STORED_OFFLINE);
    }
    carol_ws
        .send_to(&bob.id, "hello stranger")
        .await
        .expect(STORED_OFFLINE);
    let reply = carol_ws.send_to(&bob.id, "hello again").await;
    assert_eq!(reply.code, 50006, "a stranger is refused: {}", reply.raw);
    assert_eq!(reply.data["rule"], "unanswered", "{}", reply.raw);

    let mut bob_ws = app.connect_ws(&bob).await;
    assert_eq!(bob_ws.history_of(&dm(&alice.id, &bob.id)).await.len(), 3);
}

#[tokio::test]
async fn people_require_friendship_limits_direct_messages_to_friends_and_yourself() {
    let app = spawn_app_with(|s| s.messaging.require_friendship = true).await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    make_friends(&app, &alice, &bob).await;

    alice_ws
        .send_to(&carol.id, "hi stranger")
        .await
        .expect(FORBIDDEN);
    carol_ws
        .send_to(&alice.id, "hi alice")
        .await
        .expect(FORBIDDEN);
    alice_ws
        .send_to(&bob.id, "hi friend")
        .await
        .expect(DELIVERED);
    assert_eq!(bob_ws.next_message().await.content, "hi friend");
    bob_ws.send_to(&alice.id, "hi back").await.expect(DELIVERED);
    alice_ws
        .send_to(&alice.id, "note to self")
        .await
        .expect(DELIVERED);

    carol_ws.expect_no_event_of("message", QUIET_MS).await;
    assert!(
        alice_ws
            .history_of(&dm(&alice.id, &carol.id))
            .await
            .is_empty(),
        "nothing stored"
    );
}
