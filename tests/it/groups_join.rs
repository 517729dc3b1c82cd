//! Joining (docs/groups.md, "Joining and members"): the three join modes, join requests and their
//! approval, invitations.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::groups_support::{
    decide_request, expect_status, get_group, group_in_mode, invite, join, my_group_ids,
    next_chat_message, ok_json, request_list, role_of,
};
use crate::helpers::{expect_error, json_of, spawn_app};
use crate::people_support::{assert_rfc3339, json_with, make_friends};
use crate::ws_client::{FORBIDDEN, OK};

#[track_caller]
fn assert_request_shape(request: &Value) {
    for field in [
        "id",
        "group_id",
        "user_id",
        "inviter_id",
        "message",
        "status",
        "created_at",
    ] {
        assert!(request.get(field).is_some(), "`{field}` in {request}");
    }
    assert!(
        request["id"].is_string(),
        "request id is a string: {request}"
    );
    assert_rfc3339(&request["created_at"], "created_at");
}

fn request_id(request: &Value) -> String {
    request["id"]
        .as_str()
        .unwrap_or_else(|| panic!("request id is a string: {request}"))
        .to_owned()
}

#[tokio::test]
async fn groups_join_open_group_joins_at_once() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = group_in_mode(&app, &alice, "open").await;

    let resp = join(&app, &bob, &group, &json!({})).await;
    let body = json_with(resp, StatusCode::OK).await;
    assert_eq!(body["status"], "joined", "{body}");
    assert_eq!(my_group_ids(&app, &bob).await, vec![group.clone()]);
    let body = ok_json(get_group(&app, &bob, &group).await, "GET group").await;
    assert_eq!(body["my_role"], "member");
    assert_eq!(body["group"]["member_count"], 2);

    let sent = bob_ws.send_group(&group, "hi all").await;
    sent.expect(OK);
    let got = next_chat_message(&mut alice_ws).await;
    assert_eq!(got["content"], "hi all");
    assert_eq!(got["from"], bob.id);

    let resp = join(&app, &bob, &group, &json!({})).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    let resp = join(&app, &alice, &group, &json!({})).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn groups_join_unknown_group_is_404() {
    let app = spawn_app().await;
    let bob = app.chatter("bob").await;
    let resp = join(&app, &bob, "999999", &json!({})).await;
    expect_status(resp, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn groups_join_invite_only_is_forbidden() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = group_in_mode(&app, &alice, "invite_only").await;

    // A stranger knocking learns nothing: 404, as for an unknown id.
    let resp = join(&app, &bob, &group, &json!({"message": "let me in"})).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert!(my_group_ids(&app, &bob).await.is_empty());
    bob_ws
        .send_group(&group, "hello?")
        .await
        .expect(crate::ws_client::NOT_FOUND);
}

#[tokio::test]
async fn groups_join_approval_flow_request_list_accept_then_send() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let admin = app.chatter("admin").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = group_in_mode(&app, &alice, "approval").await;
    app.add_to_group(&alice, &group, &admin).await;
    crate::groups_support::make_admin(&app, &alice, &group, &admin).await;

    let resp = join(&app, &bob, &group, &json!({"message": "I'm Bob"})).await;
    let body = json_with(resp, StatusCode::ACCEPTED).await;
    assert_eq!(body["status"], "pending", "{body}");
    let request = body["request"].clone();
    assert_request_shape(&request);
    assert_eq!(request["group_id"], group);
    assert_eq!(request["user_id"], bob.id);
    assert!(request["inviter_id"].is_null(), "nobody invited: {request}");
    assert_eq!(request["message"], "I'm Bob");
    assert_eq!(request["status"], "pending");

    // Pending is not membership.
    assert!(my_group_ids(&app, &bob).await.is_empty());
    bob_ws.send_group(&group, "early").await.expect(FORBIDDEN);
    let resp = get_group(&app, &bob, &group).await;
    expect_error(resp, StatusCode::FORBIDDEN, "not_a_member").await;

    // The managers see it.
    let listed = request_list(&app, &admin, &group).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_request_shape(&listed[0]);
    assert_eq!(listed[0]["id"], request["id"]);
    assert_eq!(listed[0]["user_id"], bob.id);
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["message"], "I'm Bob");

    let rid = request_id(&request);
    let resp = decide_request(&app, &admin, &group, &rid, "accept").await;
    let body = json_with(resp, StatusCode::OK).await;
    assert_eq!(body["request"]["status"], "accepted", "{body}");
    assert_eq!(body["request"]["user_id"], bob.id);

    assert_eq!(my_group_ids(&app, &bob).await, vec![group.clone()]);
    assert_eq!(
        role_of(&app, &alice, &group, &bob.id).await.as_deref(),
        Some("member")
    );
    bob_ws.send_group(&group, "thanks").await.expect(OK);
    let got = next_chat_message(&mut alice_ws).await;
    assert_eq!(got["content"], "thanks");

    // Already decided.
    for action in ["accept", "reject"] {
        let resp = decide_request(&app, &alice, &group, &rid, action).await;
        expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    }
    // Now a member: joining again is a conflict.
    let resp = join(&app, &bob, &group, &json!({})).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn groups_join_approval_rejected_request_does_not_add() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = group_in_mode(&app, &alice, "approval").await;

    let body = json_with(
        join(&app, &bob, &group, &json!({})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let rid = request_id(&body["request"]);
    let resp = decide_request(&app, &alice, &group, &rid, "reject").await;
    let body = json_with(resp, StatusCode::OK).await;
    assert_eq!(body["request"]["status"], "rejected", "{body}");

    assert!(my_group_ids(&app, &bob).await.is_empty());
    assert_eq!(role_of(&app, &alice, &group, &bob.id).await, None);
    // Rejected, bob is a stranger again: the private group answers as an unknown one.
    bob_ws
        .send_group(&group, "please")
        .await
        .expect(crate::ws_client::NOT_FOUND);
    let resp = decide_request(&app, &alice, &group, &rid, "accept").await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;

    // The decided request stays listed, after any pending one.
    let carol = app.chatter("carol").await;
    let body = json_with(
        join(&app, &carol, &group, &json!({"message": "me too"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let listed = request_list(&app, &alice, &group).await;
    assert_eq!(
        listed[0]["id"], body["request"]["id"],
        "pending first: {listed:?}"
    );
    let first_decided = listed
        .iter()
        .position(|r| r["status"] != "pending")
        .unwrap_or(listed.len());
    assert!(
        listed[first_decided..]
            .iter()
            .all(|r| r["status"] != "pending"),
        "pending first: {listed:?}"
    );
}

#[tokio::test]
async fn groups_join_unknown_request_is_404() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let group = group_in_mode(&app, &alice, "approval").await;
    let resp = decide_request(&app, &alice, &group, "999999", "accept").await;
    expect_status(resp, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn groups_invitation_in_approval_mode_by_a_member_creates_a_request() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let admin = app.chatter("admin").await;
    let member = app.chatter("member").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let carol = app.chatter("carol").await;
    let group = group_in_mode(&app, &alice, "approval").await;
    app.add_to_group(&alice, &group, &admin).await;
    app.add_to_group(&alice, &group, &member).await;
    crate::groups_support::make_admin(&app, &alice, &group, &admin).await;
    // Friends are added without an invitation of their own to accept.
    make_friends(&app, &member, &bob).await;
    make_friends(&app, &admin, &carol).await;

    let resp = invite(&app, &member, &group, &bob.id).await;
    let body = json_with(resp, StatusCode::ACCEPTED).await;
    assert_eq!(body["status"], "pending", "{body}");
    let request = body["request"].clone();
    assert_request_shape(&request);
    assert_eq!(request["user_id"], bob.id);
    assert_eq!(request["inviter_id"], member.id);
    assert_eq!(request["group_id"], group);
    assert_eq!(request["status"], "pending");
    assert!(my_group_ids(&app, &bob).await.is_empty(), "not yet");
    bob_ws
        .send_group(&group, "am I in?")
        .await
        .expect(FORBIDDEN);

    let listed = request_list(&app, &alice, &group).await;
    let listed = listed
        .iter()
        .find(|r| r["id"] == request["id"])
        .unwrap_or_else(|| panic!("the invitation is listed: {listed:?}"));
    assert_eq!(listed["inviter_id"], member.id);

    let resp = decide_request(&app, &alice, &group, &request_id(&request), "accept").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(my_group_ids(&app, &bob).await, vec![group.clone()]);
    bob_ws.send_group(&group, "in").await.expect(OK);

    // A manager's invitation adds at once.
    let body = ok_json(
        invite(&app, &admin, &group, &carol.id).await,
        "admin invites",
    )
    .await;
    assert_eq!(body["status"], "joined", "{body}");
    assert_eq!(my_group_ids(&app, &carol).await, vec![group.clone()]);

    // Inviting a member again.
    let body = ok_json(
        invite(&app, &member, &group, &carol.id).await,
        "invite a member",
    )
    .await;
    assert_eq!(body["status"], "member", "{body}");
}

#[tokio::test]
async fn groups_invitation_in_open_mode_joins_and_repeats_say_member() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    make_friends(&app, &bob, &carol).await;

    let resp = invite(&app, &bob, &group, &carol.id).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["status"], "joined", "{body}");
    let body = ok_json(invite(&app, &alice, &group, &carol.id).await, "again").await;
    assert_eq!(body["status"], "member", "{body}");
    let body = ok_json(invite(&app, &bob, &group, &alice.id).await, "the owner").await;
    assert_eq!(body["status"], "member", "{body}");
}
