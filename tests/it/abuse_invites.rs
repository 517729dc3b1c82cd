//! Regression tests of docs/reliability.md's attack table: nobody is put into a group without
//! consent. A member adding somebody who is not their friend makes an invitation the invitee
//! decides (`GET /user/invitations`, `POST /user/invitations/{id}/accept|reject`); invitations
//! obey blocks and the `invites` rule.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::groups_support::{
    QUIET_MS, conversations, dissolve, entry, expect_status, group_in_mode, invite, join, leave,
    member_entry, member_list, my_group_ids, ok_json, request_list,
};
use crate::helpers::{TestApp, expect_error, spawn_app, spawn_app_with};
use crate::people_support::{items, json_with, make_friends};
use crate::ws_client::{Chatter, group_conv};

/// An open group of a fresh owner, which `stranger` joined on their own: any member of an
/// open group can try to add people.
async fn open_group_with_stranger(app: &TestApp, stranger: &Chatter) -> (Chatter, String) {
    let owner = app.chatter("owner").await;
    let group = group_in_mode(app, &owner, "open").await;
    let body = ok_json(join(app, stranger, &group, &json!({})).await, "join").await;
    assert_eq!(body["status"], "joined", "{body}");
    (owner, group)
}

/// POST /groups/{id}/members of a non-friend: asserts 202 `invited`; returns the invitation.
async fn invite_stranger(app: &TestApp, by: &Chatter, group: &str, user: &Chatter) -> Value {
    let body = json_with(invite(app, by, group, &user.id).await, StatusCode::ACCEPTED).await;
    assert_eq!(body["status"], "invited", "{body}");
    body["invitation"].clone()
}

fn id_of(invitation: &Value) -> String {
    invitation["id"]
        .as_str()
        .unwrap_or_else(|| panic!("invitation id is a string: {invitation}"))
        .to_owned()
}

/// The caller's pending invitations (GET /user/invitations); asserts 200 and the envelope.
async fn my_invitations(app: &TestApp, who: &Chatter) -> Vec<Value> {
    let body = ok_json(
        app.get(&who.http, "/user/invitations?limit=100").await,
        "GET /user/invitations",
    )
    .await;
    items(&body, "invitations")
}

/// POST /user/invitations/{id}/{accept|reject} as `who`.
async fn decide(app: &TestApp, who: &Chatter, invitation: &str, action: &str) -> Response {
    app.post(
        &who.http,
        &format!("/user/invitations/{invitation}/{action}"),
        &json!({}),
    )
    .await
}

async fn is_member(app: &TestApp, viewer: &Chatter, group: &str, user: &Chatter) -> bool {
    member_entry(&member_list(app, viewer, group).await, &user.id).is_some()
}

#[tokio::test]
async fn stranger_cannot_add_non_friend_without_consent() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let victim = app.chatter("victim").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;

    let invitation = invite_stranger(&app, &stranger, &group, &victim).await;
    assert_eq!(invitation["status"], "pending", "{invitation}");
    assert_eq!(invitation["group"]["id"], group, "{invitation}");
    assert_eq!(invitation["group"]["name"], "team", "{invitation}");
    assert_eq!(invitation["inviter"]["id"], stranger.id, "{invitation}");
    assert_eq!(
        invitation["inviter"]["user_name"], stranger.name,
        "{invitation}"
    );
    assert!(
        invitation["inviter"]["nick_name"].is_string(),
        "{invitation}"
    );
    assert!(invitation["created_at"].is_string(), "{invitation}");

    // Not a member, and nothing of the group reaches the victim's lists.
    assert!(!is_member(&app, &owner, &group, &victim).await);
    assert!(!my_group_ids(&app, &victim).await.contains(&group));
    let listed = conversations(&app, &victim).await;
    assert!(entry(&listed, &group_conv(&group)).is_none(), "{listed:?}");

    // Asking again returns the same invitation, not a second one.
    let again = invite_stranger(&app, &stranger, &group, &victim).await;
    assert_eq!(id_of(&again), id_of(&invitation), "{again}");
    let pending = my_invitations(&app, &victim).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["id"], invitation["id"], "{pending:?}");

    // The victim consents: now a member, as if added.
    let body = ok_json(
        decide(&app, &victim, &id_of(&invitation), "accept").await,
        "accept",
    )
    .await;
    assert_eq!(body["status"], "joined", "{body}");
    assert_eq!(body["invitation"]["status"], "accepted", "{body}");
    let member = member_entry(&member_list(&app, &owner, &group).await, &victim.id)
        .expect("the victim is a member after accepting");
    assert_eq!(member["role"], "member", "{member}");
    assert!(my_group_ids(&app, &victim).await.contains(&group));
    assert!(my_invitations(&app, &victim).await.is_empty());

    // Decided once.
    expect_error(
        decide(&app, &victim, &id_of(&invitation), "accept").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn friend_is_still_added_at_once() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let friend = app.chatter("friend").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;
    make_friends(&app, &stranger, &friend).await;

    let body = ok_json(invite(&app, &stranger, &group, &friend.id).await, "add").await;
    assert_eq!(body["status"], "joined", "{body}");
    assert!(is_member(&app, &owner, &group, &friend).await);
    assert!(my_invitations(&app, &friend).await.is_empty());
}

#[tokio::test]
async fn invitation_can_be_rejected() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let victim = app.chatter("victim").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;
    let invitation = id_of(&invite_stranger(&app, &stranger, &group, &victim).await);

    let body = ok_json(decide(&app, &victim, &invitation, "reject").await, "reject").await;
    assert_eq!(body["invitation"]["status"], "rejected", "{body}");
    assert!(!is_member(&app, &owner, &group, &victim).await);
    assert!(my_invitations(&app, &victim).await.is_empty());

    for action in ["accept", "reject"] {
        expect_error(
            decide(&app, &victim, &invitation, action).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }
    assert!(!is_member(&app, &owner, &group, &victim).await);

    // A rejection is not for good: a new invitation can be made (and decided) later.
    let second = id_of(&invite_stranger(&app, &stranger, &group, &victim).await);
    assert_ne!(second, invitation);
}

#[tokio::test]
async fn invitee_sees_invited_event() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let (victim, mut victim_ws) = app.login_ws("victim").await;
    victim_ws.keep_system_notices();
    let (_owner, group) = open_group_with_stranger(&app, &stranger).await;

    let invitation = invite_stranger(&app, &stranger, &group, &victim).await;
    let event = victim_ws.next_event("group").await;
    assert_eq!(event["kind"], "invited", "{event}");
    assert_eq!(event["group_id"], group, "{event}");
    assert_eq!(event["invitation"]["id"], invitation["id"], "{event}");
    assert_eq!(event["invitation"]["inviter"]["id"], stranger.id, "{event}");

    // The same invitation again is not pushed again.
    invite_stranger(&app, &stranger, &group, &victim).await;
    victim_ws.expect_no_event_of("group", QUIET_MS).await;
}

#[tokio::test]
async fn invitation_obeys_blocks() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let victim = app.chatter("victim").await;
    let blocked = app.chatter("blocked").await;
    let later = app.chatter("later").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;

    // The invitee blocked the inviter, or the inviter the invitee: refused either way.
    let resp = app
        .post(&victim.http, "/blocks", &json!({ "user_id": stranger.id }))
        .await;
    assert!(resp.status().is_success(), "block: {}", resp.status());
    expect_error(
        invite(&app, &stranger, &group, &victim.id).await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;
    let resp = app
        .post(&stranger.http, "/blocks", &json!({ "user_id": blocked.id }))
        .await;
    assert!(resp.status().is_success(), "block: {}", resp.status());
    expect_error(
        invite(&app, &stranger, &group, &blocked.id).await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;
    assert!(my_invitations(&app, &victim).await.is_empty());
    assert!(my_invitations(&app, &blocked).await.is_empty());

    // A block made after the invitation takes it away.
    let invitation = id_of(&invite_stranger(&app, &stranger, &group, &later).await);
    let resp = app
        .post(&later.http, "/blocks", &json!({ "user_id": stranger.id }))
        .await;
    assert!(resp.status().is_success(), "block: {}", resp.status());
    assert!(my_invitations(&app, &later).await.is_empty());
    expect_error(
        decide(&app, &later, &invitation, "accept").await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;
    assert!(!is_member(&app, &owner, &group, &later).await);
}

#[tokio::test]
async fn invitation_flood_is_throttled() {
    const LIMIT: u64 = 3;
    let app = spawn_app_with(|s| s.antispam.invites_limit = nz!(LIMIT)).await;
    let stranger = app.chatter("stranger").await;
    let friend = app.chatter("friend").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;
    make_friends(&app, &stranger, &friend).await;

    // A direct addition of a friend counts as much as an invitation.
    let body = ok_json(invite(&app, &stranger, &group, &friend.id).await, "add").await;
    assert_eq!(body["status"], "joined", "{body}");
    for i in 1..LIMIT {
        let victim = app.chatter(&format!("victim{i}")).await;
        invite_stranger(&app, &stranger, &group, &victim).await;
    }

    let next = app.chatter("next").await;
    let body = expect_error(
        invite(&app, &stranger, &group, &next.id).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(body["rule"], "invites", "{body}");
    assert!(
        body["retry_after"].as_u64().is_some_and(|s| s > 0),
        "{body}"
    );
    assert!(my_invitations(&app, &next).await.is_empty());

    // Another member's invitations are their own budget.
    invite_stranger(&app, &owner, &group, &next).await;
}

#[tokio::test]
async fn cannot_accept_someone_elses_invitation() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let victim = app.chatter("victim").await;
    let intruder = app.chatter("intruder").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;
    let invitation = id_of(&invite_stranger(&app, &stranger, &group, &victim).await);

    for who in [&intruder, &stranger, &owner] {
        for action in ["accept", "reject"] {
            expect_error(
                decide(&app, who, &invitation, action).await,
                StatusCode::NOT_FOUND,
                "not_found",
            )
            .await;
        }
        assert!(my_invitations(&app, who).await.is_empty());
    }
    for unknown in ["999999999", "abc", "-1"] {
        expect_error(
            decide(&app, &victim, unknown, "accept").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    assert!(!is_member(&app, &owner, &group, &intruder).await);

    // Still the victim's to decide.
    let body = ok_json(decide(&app, &victim, &invitation, "accept").await, "accept").await;
    assert_eq!(body["status"], "joined", "{body}");
}

#[tokio::test]
async fn invitation_to_dissolved_group_cannot_be_accepted() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let victim = app.chatter("victim").await;
    let group = group_in_mode(&app, &owner, "open").await;
    let invitation = id_of(&invite_stranger(&app, &owner, &group, &victim).await);

    ok_json(dissolve(&app, &owner, &group).await, "dissolve").await;
    assert!(my_invitations(&app, &victim).await.is_empty());
    let body = expect_status(
        decide(&app, &victim, &invitation, "accept").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("dissolved")),
        "{body}"
    );
    assert!(!my_group_ids(&app, &victim).await.contains(&group));
}

#[tokio::test]
async fn invitation_of_a_member_who_left_cannot_be_accepted() {
    let app = spawn_app().await;
    let stranger = app.chatter("stranger").await;
    let victim = app.chatter("victim").await;
    let (owner, group) = open_group_with_stranger(&app, &stranger).await;
    let invitation = id_of(&invite_stranger(&app, &stranger, &group, &victim).await);

    ok_json(leave(&app, &stranger, &group).await, "leave").await;
    assert!(my_invitations(&app, &victim).await.is_empty());
    expect_error(
        decide(&app, &victim, &invitation, "accept").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(!is_member(&app, &owner, &group, &victim).await);
}

#[tokio::test]
async fn accepted_invitation_still_needs_approval() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let member = app.chatter("member").await;
    let victim = app.chatter("victim").await;
    let group = group_in_mode(&app, &owner, "approval").await;
    app.add_to_group(&owner, &group, &member).await;

    // A member (not a manager) of an approval group: the invitee's consent first, then the
    // managers' approval, as a member's addition was before.
    let invitation = id_of(&invite_stranger(&app, &member, &group, &victim).await);
    let body = json_with(
        decide(&app, &victim, &invitation, "accept").await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(body["status"], "pending", "{body}");
    assert_eq!(body["request"]["user_id"], victim.id, "{body}");
    assert_eq!(body["request"]["inviter_id"], member.id, "{body}");
    assert!(!is_member(&app, &owner, &group, &victim).await);
    let requests = request_list(&app, &owner, &group).await;
    assert!(
        requests
            .iter()
            .any(|r| r["user_id"] == victim.id && r["status"] == "pending"),
        "{requests:?}"
    );
}
