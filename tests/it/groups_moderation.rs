//! Moderation (docs/groups.md, "Moderation"): the whole-group mute, member mutes with expiry,
//! dissolving a group, and the owner who cannot leave before handing over.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::groups_support::{
    cast, chat_contents, dissolve, expect_bad_request, expect_status, get_group, leave,
    member_entry, member_list, mute, my_group_ids, next_chat_message, ok_json, patch_group,
    raw_history, role_of, system_with, transfer, unmute,
};
use crate::helpers::spawn_app;
use crate::ws_client::{FORBIDDEN, NOT_FOUND, OK, Reply, group_conv};

/// The reply's `msg`.
fn msg(reply: &Reply) -> String {
    reply.raw["msg"]
        .as_str()
        .unwrap_or_else(|| panic!("msg is a string: {}", reply.raw))
        .to_owned()
}

#[tokio::test]
async fn groups_whole_group_mute_only_managers_may_send() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let mut owner_ws = app.connect_ws(&c.owner).await;
    let mut admin_ws = app.connect_ws(&c.admin).await;
    let mut member_ws = app.connect_ws(&c.member).await;

    let body = ok_json(
        patch_group(&app, &c.admin, &c.group, &json!({"muted": true})).await,
        "admin mutes the group",
    )
    .await;
    assert_eq!(body["group"]["muted"], true, "{body}");

    let reply = member_ws.send_group(&c.group, "can I?").await;
    reply.expect(FORBIDDEN);
    assert_eq!(msg(&reply), "the group is muted");
    admin_ws
        .send_group(&c.group, "admin speaks")
        .await
        .expect(OK);
    owner_ws
        .send_group(&c.group, "owner speaks")
        .await
        .expect(OK);
    let got = next_chat_message(&mut member_ws).await;
    assert_eq!(got["content"], "admin speaks");
    let got = next_chat_message(&mut member_ws).await;
    assert_eq!(got["content"], "owner speaks");

    let body = ok_json(get_group(&app, &c.member, &c.group).await, "GET group").await;
    assert_eq!(body["group"]["muted"], true);

    ok_json(
        patch_group(&app, &c.owner, &c.group, &json!({"muted": false})).await,
        "unmute the group",
    )
    .await;
    member_ws.send_group(&c.group, "finally").await.expect(OK);
    let history = raw_history(&mut owner_ws, &group_conv(&c.group)).await;
    assert_eq!(
        chat_contents(&history),
        vec!["admin speaks", "owner speaks", "finally"],
        "the refused message was not stored"
    );
}

#[tokio::test]
async fn groups_member_mute_expires_by_itself() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let mut member_ws = app.connect_ws(&c.member).await;
    let mut admin_ws = app.connect_ws(&c.admin).await;

    let resp = mute(&app, &c.admin, &c.group, &c.member.id, 1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let reply = member_ws.send_group(&c.group, "muted?").await;
    reply.expect(FORBIDDEN);
    assert!(
        msg(&reply).starts_with("you are muted in this group until"),
        "{}",
        reply.raw
    );
    // Others still talk.
    admin_ws.send_group(&c.group, "we talk").await.expect(OK);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    member_ws.send_group(&c.group, "back").await.expect(OK);
    let history = raw_history(&mut admin_ws, &group_conv(&c.group)).await;
    assert_eq!(chat_contents(&history), vec!["we talk", "back"]);
}

#[tokio::test]
async fn groups_member_mute_until_unmuted() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let mut member_ws = app.connect_ws(&c.member).await;

    let resp = mute(&app, &c.owner, &c.group, &c.member.id, 3600).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let entry =
        member_entry(&member_list(&app, &c.owner, &c.group).await, &c.member.id).expect("listed");
    let until = entry["muted_until"]
        .as_str()
        .unwrap_or_else(|| panic!("muted_until is set: {entry}"));
    let until = chrono::DateTime::parse_from_rfc3339(until).expect("RFC 3339");
    let left = until.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::minutes(55) && left <= chrono::Duration::minutes(61),
        "about an hour left: {entry}"
    );
    member_ws
        .send_group(&c.group, "one")
        .await
        .expect(FORBIDDEN);
    member_ws
        .send_group(&c.group, "two")
        .await
        .expect(FORBIDDEN);

    assert_eq!(
        unmute(&app, &c.admin, &c.group, &c.member.id)
            .await
            .status(),
        StatusCode::OK
    );
    member_ws.send_group(&c.group, "three").await.expect(OK);
    let entry =
        member_entry(&member_list(&app, &c.owner, &c.group).await, &c.member.id).expect("listed");
    assert!(entry["muted_until"].is_null(), "{entry}");
}

#[tokio::test]
async fn groups_member_mute_duration_is_1s_to_30_days() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    for secs in [0, 30 * 86_400 + 1] {
        let resp = mute(&app, &c.owner, &c.group, &c.member.id, secs).await;
        expect_bad_request(resp, "duration_secs").await;
    }
    let resp = mute(&app, &c.owner, &c.group, &c.member.id, 30 * 86_400).await;
    assert_eq!(resp.status(), StatusCode::OK, "30 days is allowed");
    let resp = mute(&app, &c.owner, &c.group, &c.outsider.id, 60).await;
    assert!(
        resp.status().is_client_error(),
        "only members are muted: {}",
        resp.status()
    );
}

#[tokio::test]
async fn groups_dissolve_ends_sending_keeps_history() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    let conversation = group_conv(&group);
    alice_ws.send_group(&group, "before").await.expect(OK);
    bob_ws.send_group(&group, "reply").await.expect(OK);

    assert_eq!(
        dissolve(&app, &alice, &group).await.status(),
        StatusCode::OK
    );

    bob_ws.send_group(&group, "hello?").await.expect(NOT_FOUND);
    alice_ws
        .send_group(&group, "hello?")
        .await
        .expect(NOT_FOUND);
    assert!(my_group_ids(&app, &alice).await.is_empty());
    assert!(my_group_ids(&app, &bob).await.is_empty());

    let history = raw_history(&mut bob_ws, &conversation).await;
    assert_eq!(chat_contents(&history), vec!["before", "reply"]);
    assert_eq!(
        system_with(&history, "dissolve").len(),
        1,
        "the dissolution is in the history: {history:?}"
    );
    let history = raw_history(&mut alice_ws, &conversation).await;
    assert_eq!(chat_contents(&history), vec!["before", "reply"]);

    // Nothing is left to manage.
    let resp = dissolve(&app, &alice, &group).await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let resp = patch_group(&app, &alice, &group, &json!({"name": "again"})).await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

#[tokio::test]
async fn groups_dissolved_history_is_not_for_outsiders() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let (_carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.create_group(&alice, "team").await;
    assert_eq!(
        dissolve(&app, &alice, &group).await.status(),
        StatusCode::OK
    );
    let reply = carol_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await;
    assert!(
        reply.code == FORBIDDEN || reply.code == NOT_FOUND,
        "{}",
        reply.raw
    );
}

#[tokio::test]
async fn groups_owner_cannot_leave_until_transfer() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    expect_status(leave(&app, &alice, &group).await, StatusCode::CONFLICT).await;
    assert_eq!(my_group_ids(&app, &alice).await, vec![group.clone()]);

    assert_eq!(
        transfer(&app, &alice, &group, &bob.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(leave(&app, &alice, &group).await.status(), StatusCode::OK);
    assert!(my_group_ids(&app, &alice).await.is_empty());
    assert_eq!(
        role_of(&app, &bob, &group, &bob.id).await.as_deref(),
        Some("owner")
    );
    assert_eq!(member_list(&app, &bob, &group).await.len(), 1);
    expect_status(leave(&app, &bob, &group).await, StatusCode::CONFLICT).await;

    let history = raw_history(&mut bob_ws, &group_conv(&group)).await;
    assert_eq!(system_with(&history, "transfer").len(), 1, "{history:?}");
    let left = system_with(&history, "leave");
    assert_eq!(left.len(), 1, "{history:?}");
    assert_eq!(left[0]["user_id"], alice.id);
}
