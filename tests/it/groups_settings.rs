//! My settings in a group (nickname, dnd, display flags) and the system messages and
//! `event: group` frames of membership changes (docs/groups.md).

use reqwest::StatusCode;
use serde_json::json;

use crate::groups_support::{
    QUIET_MS, SYSTEM, chat_contents, conversations, entry, join, kick, leave, make_admin,
    member_entry, member_list, mute, next_chat_message, next_group_event, next_system_message,
    ok_json, op3_unread, patch_group, raw_history, remove_admin, set_my_settings, system_actions,
    system_content, system_with, transfer, unmute,
};
use crate::helpers::spawn_app;
use crate::ws_client::{OK, group_conv};

#[tokio::test]
async fn groups_settings_nickname_in_member_list_and_on_messages() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;

    let settings = set_my_settings(
        &app,
        &bob,
        &group,
        &json!({"nickname": "Bobby", "remark": "my secret note"}),
    )
    .await;
    assert_eq!(settings["nickname"], "Bobby", "{settings}");
    assert_eq!(settings["remark"], "my secret note", "{settings}");

    let members = member_list(&app, &alice, &group).await;
    let bob_entry = member_entry(&members, &bob.id).expect("bob listed");
    assert_eq!(bob_entry["nickname"], "Bobby", "{bob_entry}");
    assert_eq!(
        bob_entry["nick_name"], "bob",
        "the profile name stays: {bob_entry}"
    );
    let alice_entry = member_entry(&members, &alice.id).expect("alice listed");
    assert!(alice_entry["nickname"].is_null(), "{alice_entry}");
    assert!(
        !serde_json::to_string(&members)
            .expect("json")
            .contains("my secret note"),
        "the remark is private: {members:?}"
    );

    let reply = bob_ws.send_group(&group, "hi, Bobby here").await;
    reply.expect(OK);
    assert_eq!(reply.data["nickname"], "Bobby", "{}", reply.raw);
    let pushed = next_chat_message(&mut alice_ws).await;
    assert_eq!(pushed["content"], "hi, Bobby here");
    assert_eq!(pushed["nickname"], "Bobby", "{pushed}");
    let history = raw_history(&mut alice_ws, &group_conv(&group)).await;
    let stored = history
        .iter()
        .find(|m| m["content"] == "hi, Bobby here")
        .expect("in history");
    assert_eq!(stored["nickname"], "Bobby", "{stored}");

    // Alice has no nickname: her messages carry none.
    let reply = alice_ws.send_group(&group, "hi Bobby").await;
    reply.expect(OK);
    assert!(reply.data["nickname"].is_null(), "{}", reply.raw);
}

#[tokio::test]
async fn groups_settings_dnd_stops_live_pushes_but_counts_unread() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol]).await;
    let conversation = group_conv(&group);

    let settings = set_my_settings(&app, &bob, &group, &json!({"dnd": true})).await;
    assert_eq!(settings["dnd"], true, "{settings}");
    let mut bob_ws = app.connect_ws(&bob).await;
    let mut bob_phone = app.connect_ws(&bob).await;
    let before = op3_unread(&mut bob_ws, &conversation).await;

    alice_ws.send_group(&group, "quiet one").await.expect(OK);
    alice_ws.send_group(&group, "quiet two").await.expect(OK);
    assert_eq!(
        next_chat_message(&mut carol_ws).await["content"],
        "quiet one"
    );
    assert_eq!(
        next_chat_message(&mut carol_ws).await["content"],
        "quiet two"
    );
    bob_ws.expect_no_event_of("message", QUIET_MS).await;
    bob_phone.expect_no_event_of("message", 100).await;

    assert_eq!(op3_unread(&mut bob_ws, &conversation).await, before + 2);
    let reply = bob_ws.unread_in(&conversation).await;
    let unread: Vec<&str> = reply.data["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] != SYSTEM)
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    assert_eq!(unread, vec!["quiet one", "quiet two"]);
    let history = raw_history(&mut bob_ws, &conversation).await;
    assert_eq!(chat_contents(&history), vec!["quiet one", "quiet two"]);

    // Listed with the flag.
    let listed = entry(&conversations(&app, &bob).await, &conversation)
        .expect("the group is in bob's recent chats");
    assert_eq!(listed["dnd"], true, "{listed}");

    // Off again: pushes resume.
    let settings = set_my_settings(&app, &bob, &group, &json!({"dnd": false})).await;
    assert_eq!(settings["dnd"], false);
    alice_ws.send_group(&group, "loud").await.expect(OK);
    assert_eq!(next_chat_message(&mut bob_ws).await["content"], "loud");
}

#[tokio::test]
async fn groups_settings_display_flags_are_private_and_listed() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let group = app.group_with(&alice, "team", &[&bob]).await;
    alice_ws.send_group(&group, "hello").await.expect(OK);

    let settings = set_my_settings(
        &app,
        &bob,
        &group,
        &json!({"folded": true, "show_in_contacts": true}),
    )
    .await;
    assert_eq!(settings["folded"], true, "{settings}");
    assert_eq!(settings["show_in_contacts"], true, "{settings}");

    let conversation = group_conv(&group);
    let mine = entry(&conversations(&app, &bob).await, &conversation).expect("listed for bob");
    assert_eq!(mine["folded"], true, "{mine}");
    let hers = entry(&conversations(&app, &alice).await, &conversation).expect("listed");
    assert_eq!(hers["folded"], false, "private to bob: {hers}");
    assert_eq!(hers["dnd"], false, "{hers}");

    // A non-member has no settings here.
    let carol = app.chatter("carol").await;
    let resp = crate::people_support::patch(
        &app,
        &carol.http,
        &format!("/groups/{group}/me"),
        &json!({"dnd": true}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn groups_system_messages_record_every_membership_change() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let olive = app.chatter("olive").await;
    let (bob, _bob_ws) = app.login_ws("bob").await;
    let carol = app.chatter("carol").await;
    let dave = app.chatter("dave").await;
    let group = app.group_with(&alice, "team", &[&olive]).await;
    let gid = group.as_str();
    // Connected after her own join, so the first change she sees is bob's.
    let mut olive_ws = app.connect_ws(&olive).await;
    olive_ws.keep_system_notices();

    // Olive watches every change live: a system message and an `event: group`.
    async fn observed(ws: &mut crate::ws_client::WsClient, gid: &str, action: &str, user: &str) {
        let content = next_system_message(ws, action).await;
        assert_eq!(content["user_id"], user, "{action}: {content}");
        let event = next_group_event(ws, action).await;
        assert_eq!(event["group_id"], gid, "{action}: {event}");
    }

    assert_eq!(
        join(&app, &bob, gid, &json!({})).await.status(),
        StatusCode::OK
    );
    observed(&mut olive_ws, gid, "join", &bob.id).await;
    app.add_to_group(&alice, gid, &carol).await;
    observed(&mut olive_ws, gid, "join", &carol.id).await;
    make_admin(&app, &alice, gid, &bob).await;
    observed(&mut olive_ws, gid, "admin", &bob.id).await;
    assert_eq!(
        remove_admin(&app, &alice, gid, &bob.id).await.status(),
        StatusCode::OK
    );
    observed(&mut olive_ws, gid, "unadmin", &bob.id).await;
    assert_eq!(
        mute(&app, &alice, gid, &carol.id, 600).await.status(),
        StatusCode::OK
    );
    observed(&mut olive_ws, gid, "mute", &carol.id).await;
    assert_eq!(
        unmute(&app, &alice, gid, &carol.id).await.status(),
        StatusCode::OK
    );
    observed(&mut olive_ws, gid, "unmute", &carol.id).await;
    assert_eq!(
        kick(&app, &alice, gid, &carol.id).await.status(),
        StatusCode::OK
    );
    observed(&mut olive_ws, gid, "kick", &carol.id).await;
    assert_eq!(leave(&app, &bob, gid).await.status(), StatusCode::OK);
    observed(&mut olive_ws, gid, "leave", &bob.id).await;
    app.add_to_group(&alice, gid, &dave).await;
    observed(&mut olive_ws, gid, "join", &dave.id).await;
    assert_eq!(
        transfer(&app, &alice, gid, &dave.id).await.status(),
        StatusCode::OK
    );
    let content = next_system_message(&mut olive_ws, "transfer").await;
    assert!(
        content.to_string().contains(&format!("\"{}\"", dave.id)),
        "the new owner is named: {content}"
    );
    let event = next_group_event(&mut olive_ws, "transfer").await;
    assert_eq!(event["group_id"], gid, "{event}");

    let history = raw_history(&mut olive_ws, &group_conv(gid)).await;
    let actions = system_actions(&history);
    let wanted = [
        "join", "join", "admin", "unadmin", "mute", "unmute", "kick", "leave", "join", "transfer",
    ];
    assert!(
        actions.ends_with(&wanted.map(String::from)),
        "the history holds the changes in order: {actions:?}"
    );
    let kicked = system_with(&history, "kick");
    assert_eq!(kicked.len(), 1);
    assert_eq!(kicked[0]["user_id"], carol.id, "{:?}", kicked[0]);
    assert_eq!(kicked[0]["by"], alice.id, "{:?}", kicked[0]);
    let system = history
        .iter()
        .find(|m| system_content(m).is_some())
        .expect("a system message");
    assert_eq!(system["type"], SYSTEM);
    assert_eq!(system["conversation"], group_conv(gid));
}

#[tokio::test]
async fn groups_notice_change_pushes_group_update() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let admin = app.chatter("admin").await;
    let bob = app.chatter("bob").await;
    let (_dave, mut dave_ws) = app.login_ws("dave").await;
    let group = app.group_with(&alice, "team", &[&admin, &bob]).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    bob_ws.keep_system_notices();
    dave_ws.keep_system_notices();
    make_admin(&app, &alice, &group, &admin).await;

    let body = ok_json(
        patch_group(&app, &admin, &group, &json!({"notice": "Standup at 10"})).await,
        "change the notice",
    )
    .await;
    assert_eq!(body["group"]["notice"], "Standup at 10");

    let event = next_group_event(&mut bob_ws, "update").await;
    assert_eq!(event["group_id"], group, "{event}");
    assert_eq!(event["group"]["notice"], "Standup at 10", "{event}");
    assert_eq!(event["group"]["id"], group, "{event}");
    dave_ws.expect_no_event_of("group", QUIET_MS).await;
}
