//! Roles (docs/groups.md): who may fetch, change, moderate and dissolve a group, member lists,
//! ownership transfer and admins. Every route against owner / admin / member / non-member.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::groups_support::{
    Cast, add_admin, cast, create_group_with, decide_request, dissolve, expect_bad_request,
    expect_outsider_refused, expect_role_refused, expect_status, get_group, invite, join, kick,
    leave, make_admin, member_entry, member_list, members_of, mute, my_group_ids, ok_json,
    patch_group, remove_admin, request_list, requests_of, role_of, transfer, unmute,
};
use crate::helpers::{expect_error, spawn_app};
use crate::people_support::{assert_rfc3339, json_with, make_friends};
use crate::ws_client::{FORBIDDEN, OK};

#[track_caller]
fn assert_group_shape(group: &Value) {
    let mut fields: Vec<&str> = group
        .as_object()
        .unwrap_or_else(|| panic!("a group is an object: {group}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    for field in [
        "avatar",
        "created_at",
        "id",
        "join_mode",
        "member_count",
        "muted",
        "name",
        "notice",
        "owner_id",
    ] {
        assert!(fields.contains(&field), "`{field}` in the group {group}");
    }
    assert!(group["id"].is_string(), "id is a string: {group}");
    assert!(
        group["owner_id"].is_string(),
        "owner_id is a string: {group}"
    );
    assert!(group["muted"].is_boolean(), "muted is a bool: {group}");
    assert!(group["member_count"].is_u64(), "member_count: {group}");
    assert_rfc3339(&group["created_at"], "created_at");
}

#[tokio::test]
async fn groups_create_takes_notice_avatar_and_join_mode() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;

    let group = create_group_with(&app, &alice, &json!({"name": "Plain"})).await;
    assert_group_shape(&group);
    assert_eq!(group["join_mode"], "open", "open is the default: {group}");
    assert_eq!(group["muted"], false);
    assert_eq!(group["member_count"], 1);
    assert_eq!(group["owner_id"], alice.id);

    let group = create_group_with(
        &app,
        &alice,
        &json!({
            "name": "Team",
            "notice": "Standup at 10",
            "avatar": "https://example.com/team.png",
            "join_mode": "approval",
        }),
    )
    .await;
    assert_group_shape(&group);
    assert_eq!(group["notice"], "Standup at 10");
    assert_eq!(group["avatar"], "https://example.com/team.png");
    assert_eq!(group["join_mode"], "approval");
    let group = create_group_with(
        &app,
        &alice,
        &json!({"name": "Closed", "join_mode": "invite_only", "notice": "n".repeat(1000)}),
    )
    .await;
    assert_eq!(group["join_mode"], "invite_only");

    let resp = app
        .post(
            &alice.http,
            "/groups",
            &json!({"name": "x", "join_mode": "secret"}),
        )
        .await;
    expect_bad_request(resp, "join_mode").await;
    let resp = app
        .post(
            &alice.http,
            "/groups",
            &json!({"name": "x", "avatar": "ftp://example.com/a.png"}),
        )
        .await;
    expect_bad_request(resp, "avatar").await;
    let resp = app
        .post(
            &alice.http,
            "/groups",
            &json!({"name": "x", "notice": "n".repeat(1001)}),
        )
        .await;
    expect_bad_request(resp, "notice").await;
}

#[tokio::test]
async fn groups_get_group_members_see_it_with_their_role() {
    let app = spawn_app().await;
    let Cast {
        group,
        owner,
        admin,
        member,
        outsider,
    } = cast(&app, "approval").await;
    for (who, role) in [(&owner, "owner"), (&admin, "admin"), (&member, "member")] {
        let body = ok_json(get_group(&app, who, &group).await, "GET group").await;
        assert_group_shape(&body["group"]);
        assert_eq!(body["group"]["id"], group);
        assert_eq!(body["group"]["join_mode"], "approval");
        assert_eq!(body["group"]["member_count"], 3, "{body}");
        assert_eq!(body["my_role"], role, "{body}");
    }
    // A private group is not revealed to a stranger: 404, as for an unknown id.
    let resp = get_group(&app, &outsider, &group).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn groups_get_group_invite_only_hides_it_from_outsiders() {
    let app = spawn_app().await;
    let c = cast(&app, "invite_only").await;
    let body = ok_json(get_group(&app, &c.member, &c.group).await, "GET group").await;
    assert_eq!(body["my_role"], "member");
    let resp = get_group(&app, &c.outsider, &c.group).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn groups_get_group_open_is_visible_to_anyone_unknown_is_404() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let body = ok_json(
        get_group(&app, &c.outsider, &c.group).await,
        "GET open group",
    )
    .await;
    assert_group_shape(&body["group"]);
    assert!(
        body["my_role"].is_null(),
        "a non-member has no role: {body}"
    );
    let body = ok_json(get_group(&app, &c.admin, &c.group).await, "GET group").await;
    assert_eq!(body["my_role"], "admin");

    expect_status(
        get_group(&app, &c.owner, "999999").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(get_group(&app, &c.owner, "0").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn groups_lobby_cannot_be_fetched_changed_joined_or_moderated() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    expect_status(get_group(&app, &alice, "0").await, StatusCode::NOT_FOUND).await;
    let resp = patch_group(&app, &alice, "0", &json!({"name": "mine"})).await;
    expect_status(resp, StatusCode::NOT_FOUND).await;
    expect_status(
        join(&app, &alice, "0", &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(leave(&app, &alice, "0").await, StatusCode::NOT_FOUND).await;
    expect_status(dissolve(&app, &alice, "0").await, StatusCode::NOT_FOUND).await;
    expect_status(
        mute(&app, &alice, "0", &bob.id, 60).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(
        kick(&app, &alice, "0", &bob.id).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_status(members_of(&app, &alice, "0").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn groups_patch_managers_only() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;

    let body = ok_json(
        patch_group(&app, &c.owner, &c.group, &json!({"name": "Renamed"})).await,
        "owner renames",
    )
    .await;
    assert_eq!(body["group"]["name"], "Renamed");
    let body = ok_json(
        patch_group(
            &app,
            &c.admin,
            &c.group,
            &json!({"notice": "Standup at 10", "avatar": "https://example.com/a.png",
                    "join_mode": "approval"}),
        )
        .await,
        "admin changes notice",
    )
    .await;
    assert_eq!(body["group"]["notice"], "Standup at 10");
    assert_eq!(body["group"]["avatar"], "https://example.com/a.png");
    assert_eq!(body["group"]["join_mode"], "approval");
    assert_eq!(body["group"]["name"], "Renamed", "untouched fields stay");

    let resp = patch_group(&app, &c.member, &c.group, &json!({"name": "Mine"})).await;
    expect_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    // Now an approval group: hidden from a stranger.
    let resp = patch_group(&app, &c.outsider, &c.group, &json!({"name": "Mine"})).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    let body = ok_json(get_group(&app, &c.member, &c.group).await, "GET group").await;
    assert_eq!(body["group"]["name"], "Renamed");
    assert_eq!(body["group"]["notice"], "Standup at 10");
    assert_eq!(body["group"]["join_mode"], "approval");

    let resp = patch_group(&app, &c.owner, "999999", &json!({"name": "x"})).await;
    expect_status(resp, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn groups_patch_validates_its_fields() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({"notice": "n".repeat(1001)}), "notice"),
        (json!({"avatar": "not a url"}), "avatar"),
        (json!({"join_mode": "everyone"}), "join_mode"),
    ] {
        let resp = patch_group(&app, &c.owner, &c.group, &body).await;
        expect_bad_request(resp, field).await;
    }
    let body = ok_json(get_group(&app, &c.owner, &c.group).await, "GET group").await;
    assert_eq!(body["group"]["name"], "team", "nothing changed: {body}");
    assert_eq!(body["group"]["join_mode"], "open");
}

#[tokio::test]
async fn groups_members_list_owner_first_then_admins_then_members() {
    let app = spawn_app().await;
    let (alice, _alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let dave = app.chatter("dave").await;
    let outsider = app.chatter("outsider").await;
    let group = app.group_with(&alice, "team", &[&bob, &carol, &dave]).await;
    make_admin(&app, &alice, &group, &dave).await;

    let resp = members_of(&app, &carol, &group).await;
    let body = json_with(resp, StatusCode::OK).await;
    let members = crate::people_support::items(&body, "members");
    assert_eq!(body["total"], 4, "{body}");
    let roles: Vec<&str> = members
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, vec!["owner", "admin", "member", "member"], "{body}");
    assert_eq!(members[0]["user_id"], alice.id);
    assert_eq!(members[1]["user_id"], dave.id);
    let rest: Vec<&Value> = vec![&members[2]["user_id"], &members[3]["user_id"]];
    assert!(rest.contains(&&json!(bob.id)) && rest.contains(&&json!(carol.id)));
    for m in &members {
        for field in [
            "user_id",
            "user_name",
            "nick_name",
            "nickname",
            "role",
            "muted_until",
            "online",
            "joined_at",
        ] {
            assert!(m.get(field).is_some(), "`{field}` in {m}");
        }
        assert!(m["muted_until"].is_null(), "nobody is muted: {m}");
        assert_rfc3339(&m["joined_at"], "joined_at");
    }
    let alice_entry = member_entry(&members, &alice.id).expect("alice listed");
    assert_eq!(alice_entry["user_name"], "alice");
    assert_eq!(alice_entry["online"], true, "alice has a live socket");
    let carol_entry = member_entry(&members, &carol.id).expect("carol listed");
    assert_eq!(carol_entry["online"], false, "carol has no socket");

    // Paginated like every list.
    let body = ok_json(
        app.get(&bob.http, &format!("/groups/{group}/members?limit=2"))
            .await,
        "a page of members",
    )
    .await;
    assert_eq!(crate::people_support::items(&body, "members").len(), 2);
    assert_eq!(body["has_more"], true, "{body}");
    assert_eq!(body["total"], 4, "{body}");

    let resp = members_of(&app, &outsider, &group).await;
    expect_outsider_refused(resp, "outsider lists members").await;
}

#[tokio::test]
async fn groups_kick_owner_anyone_admin_members_only() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let admin1 = app.chatter("admin1").await;
    let admin2 = app.chatter("admin2").await;
    let m1 = app.chatter("user_m1").await;
    let m2 = app.chatter("user_m2").await;
    let m3 = app.chatter("user_m3").await;
    let outsider = app.chatter("outsider").await;
    let group = app
        .group_with(&owner, "team", &[&admin1, &admin2, &m1, &m2, &m3])
        .await;
    make_admin(&app, &owner, &group, &admin1).await;
    make_admin(&app, &owner, &group, &admin2).await;

    expect_role_refused(kick(&app, &m1, &group, &m2.id).await, "member kicks member").await;
    expect_outsider_refused(
        kick(&app, &outsider, &group, &m2.id).await,
        "outsider kicks",
    )
    .await;
    expect_role_refused(
        kick(&app, &admin1, &group, &admin2.id).await,
        "admin kicks admin",
    )
    .await;
    expect_role_refused(
        kick(&app, &admin1, &group, &owner.id).await,
        "admin kicks owner",
    )
    .await;
    assert_eq!(
        member_list(&app, &owner, &group).await.len(),
        6,
        "nobody left"
    );

    assert_eq!(
        kick(&app, &admin1, &group, &m2.id).await.status(),
        StatusCode::OK,
        "admin kicks member"
    );
    assert_eq!(
        kick(&app, &owner, &group, &admin2.id).await.status(),
        StatusCode::OK,
        "owner kicks admin"
    );
    assert_eq!(
        kick(&app, &owner, &group, &m3.id).await.status(),
        StatusCode::OK,
        "owner kicks member"
    );
    let members = member_list(&app, &owner, &group).await;
    let mut left: Vec<String> = members
        .iter()
        .map(|m| m["user_id"].as_str().expect("user_id").to_owned())
        .collect();
    left.sort();
    let mut expected = vec![owner.id.clone(), admin1.id.clone(), m1.id.clone()];
    expected.sort();
    assert_eq!(left, expected);
    for gone in [&m2, &admin2, &m3] {
        assert!(my_group_ids(&app, gone).await.is_empty(), "{}", gone.name);
        let mut ws = app.connect_ws(gone).await;
        ws.send_group(&group, "still here?").await.expect(FORBIDDEN);
    }
    let body = ok_json(get_group(&app, &owner, &group).await, "GET group").await;
    assert_eq!(body["group"]["member_count"], 3, "{body}");
}

#[tokio::test]
async fn groups_transfer_owner_only_old_owner_becomes_admin() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let other = app.chatter("other").await;
    app.add_to_group(&c.owner, &c.group, &other).await;

    expect_role_refused(
        transfer(&app, &c.admin, &c.group, &c.admin.id).await,
        "admin takes over",
    )
    .await;
    expect_role_refused(
        transfer(&app, &c.member, &c.group, &c.member.id).await,
        "member takes over",
    )
    .await;
    expect_outsider_refused(
        transfer(&app, &c.outsider, &c.group, &c.outsider.id).await,
        "outsider takes over",
    )
    .await;
    let resp = transfer(&app, &c.owner, &c.group, &c.outsider.id).await;
    assert!(
        resp.status().is_client_error(),
        "only to a member: {}",
        resp.status()
    );

    assert_eq!(
        transfer(&app, &c.owner, &c.group, &c.member.id)
            .await
            .status(),
        StatusCode::OK
    );
    let members = member_list(&app, &c.admin, &c.group).await;
    assert_eq!(members[0]["user_id"], c.member.id, "the new owner first");
    assert_eq!(members[0]["role"], "owner");
    assert_eq!(
        role_of(&app, &c.admin, &c.group, &c.owner.id)
            .await
            .as_deref(),
        Some("admin"),
        "the old owner is an admin"
    );
    assert_eq!(
        members.iter().filter(|m| m["role"] == "owner").count(),
        1,
        "exactly one owner: {members:?}"
    );
    let body = ok_json(get_group(&app, &c.owner, &c.group).await, "GET group").await;
    assert_eq!(body["group"]["owner_id"], c.member.id);
    assert_eq!(body["my_role"], "admin");

    // The old owner lost the owner's rights; the new owner has them.
    expect_role_refused(
        dissolve(&app, &c.owner, &c.group).await,
        "old owner dissolves",
    )
    .await;
    expect_role_refused(
        transfer(&app, &c.owner, &c.group, &c.owner.id).await,
        "old owner transfers",
    )
    .await;
    assert_eq!(
        add_admin(&app, &c.member, &c.group, &other.id)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn groups_admins_owner_only() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let m2 = app.chatter("user_m2").await;
    app.add_to_group(&c.owner, &c.group, &m2).await;

    expect_role_refused(
        add_admin(&app, &c.admin, &c.group, &m2.id).await,
        "admin adds",
    )
    .await;
    expect_role_refused(
        add_admin(&app, &c.member, &c.group, &m2.id).await,
        "member adds",
    )
    .await;
    expect_outsider_refused(
        add_admin(&app, &c.outsider, &c.group, &m2.id).await,
        "outsider adds",
    )
    .await;
    assert_eq!(
        role_of(&app, &c.owner, &c.group, &m2.id).await.as_deref(),
        Some("member")
    );

    assert_eq!(
        add_admin(&app, &c.owner, &c.group, &m2.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        role_of(&app, &c.owner, &c.group, &m2.id).await.as_deref(),
        Some("admin")
    );

    expect_role_refused(
        remove_admin(&app, &c.admin, &c.group, &m2.id).await,
        "admin demotes admin",
    )
    .await;
    expect_role_refused(
        remove_admin(&app, &c.member, &c.group, &m2.id).await,
        "member demotes admin",
    )
    .await;
    expect_outsider_refused(
        remove_admin(&app, &c.outsider, &c.group, &m2.id).await,
        "outsider demotes",
    )
    .await;
    assert_eq!(
        role_of(&app, &c.owner, &c.group, &m2.id).await.as_deref(),
        Some("admin")
    );

    assert_eq!(
        remove_admin(&app, &c.owner, &c.group, &c.admin.id)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        role_of(&app, &c.owner, &c.group, &c.admin.id)
            .await
            .as_deref(),
        Some("member")
    );
    // A demoted admin lost the managers' rights.
    let resp = patch_group(&app, &c.admin, &c.group, &json!({"notice": "mine"})).await;
    expect_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn groups_mutes_admins_mute_members_owner_anyone_but_themself() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    let admin2 = app.chatter("admin2").await;
    let m2 = app.chatter("user_m2").await;
    app.add_to_group(&c.owner, &c.group, &admin2).await;
    app.add_to_group(&c.owner, &c.group, &m2).await;
    make_admin(&app, &c.owner, &c.group, &admin2).await;

    expect_role_refused(
        mute(&app, &c.member, &c.group, &m2.id, 60).await,
        "member mutes",
    )
    .await;
    expect_outsider_refused(
        mute(&app, &c.outsider, &c.group, &m2.id, 60).await,
        "outsider mutes",
    )
    .await;
    expect_role_refused(
        mute(&app, &c.admin, &c.group, &admin2.id, 60).await,
        "admin mutes admin",
    )
    .await;
    expect_role_refused(
        mute(&app, &c.admin, &c.group, &c.owner.id, 60).await,
        "admin mutes owner",
    )
    .await;
    let resp = mute(&app, &c.owner, &c.group, &c.owner.id, 60).await;
    assert!(
        resp.status().is_client_error(),
        "the owner cannot mute themself: {}",
        resp.status()
    );

    let resp = mute(&app, &c.admin, &c.group, &m2.id, 60).await;
    assert_eq!(resp.status(), StatusCode::OK, "admin mutes member");
    let resp = mute(&app, &c.owner, &c.group, &admin2.id, 60).await;
    assert_eq!(resp.status(), StatusCode::OK, "owner mutes admin");
    let members = member_list(&app, &c.member, &c.group).await;
    for muted in [&m2, &admin2] {
        let m = member_entry(&members, &muted.id).expect("listed");
        assert!(m["muted_until"].is_string(), "{} muted: {m}", muted.name);
    }

    expect_role_refused(
        unmute(&app, &c.member, &c.group, &m2.id).await,
        "member unmutes",
    )
    .await;
    expect_outsider_refused(
        unmute(&app, &c.outsider, &c.group, &m2.id).await,
        "outsider unmutes",
    )
    .await;
    expect_role_refused(
        unmute(&app, &c.admin, &c.group, &admin2.id).await,
        "admin unmutes admin",
    )
    .await;
    assert_eq!(
        unmute(&app, &c.admin, &c.group, &m2.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        unmute(&app, &c.owner, &c.group, &admin2.id).await.status(),
        StatusCode::OK
    );
    let members = member_list(&app, &c.member, &c.group).await;
    for unmuted in [&m2, &admin2] {
        let m = member_entry(&members, &unmuted.id).expect("listed");
        assert!(m["muted_until"].is_null(), "{} unmuted: {m}", unmuted.name);
    }
}

#[tokio::test]
async fn groups_requests_list_accept_reject_managers_only() {
    let app = spawn_app().await;
    let c = cast(&app, "approval").await;
    let x = app.chatter("user_x").await;
    let y = app.chatter("user_y").await;
    assert_eq!(
        join(&app, &x, &c.group, &json!({})).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        join(&app, &y, &c.group, &json!({})).await.status(),
        StatusCode::ACCEPTED
    );

    expect_role_refused(requests_of(&app, &c.member, &c.group).await, "member lists").await;
    // The group is private: hidden from a stranger.
    expect_error(
        requests_of(&app, &c.outsider, &c.group).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let by_owner = request_list(&app, &c.owner, &c.group).await;
    let by_admin = request_list(&app, &c.admin, &c.group).await;
    assert_eq!(by_owner.len(), 2, "{by_owner:?}");
    assert_eq!(by_admin.len(), 2, "{by_admin:?}");
    let rid = |user: &str| {
        by_owner
            .iter()
            .find(|r| r["user_id"] == user)
            .unwrap_or_else(|| panic!("a request of {user}: {by_owner:?}"))["id"]
            .as_str()
            .expect("request id")
            .to_owned()
    };
    let (x_rid, y_rid) = (rid(&x.id), rid(&y.id));

    for action in ["accept", "reject"] {
        let resp = decide_request(&app, &c.member, &c.group, &x_rid, action).await;
        expect_role_refused(resp, "member decides").await;
        let resp = decide_request(&app, &c.outsider, &c.group, &x_rid, action).await;
        expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(
        decide_request(&app, &c.admin, &c.group, &x_rid, "accept")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        decide_request(&app, &c.owner, &c.group, &y_rid, "reject")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        role_of(&app, &c.owner, &c.group, &x.id).await.as_deref(),
        Some("member")
    );
    assert_eq!(role_of(&app, &c.owner, &c.group, &y.id).await, None);
}

#[tokio::test]
async fn groups_invite_only_managers_invite_members_cannot() {
    let app = spawn_app().await;
    let c = cast(&app, "invite_only").await;
    let x = app.chatter("user_x").await;
    let y = app.chatter("user_y").await;
    let z = app.chatter("user_z").await;
    // Friends of the inviters: added at once, without an invitation to accept.
    for (inviter, user) in [(&c.member, &x), (&c.admin, &x), (&c.owner, &y)] {
        make_friends(&app, inviter, user).await;
    }

    let resp = invite(&app, &c.member, &c.group, &x.id).await;
    expect_status(resp, StatusCode::FORBIDDEN).await;
    // Hidden from a stranger.
    expect_error(
        invite(&app, &c.outsider, &c.group, &x.id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(role_of(&app, &c.owner, &c.group, &x.id).await, None);

    let body = ok_json(
        invite(&app, &c.admin, &c.group, &x.id).await,
        "admin invites",
    )
    .await;
    assert_eq!(body["status"], "joined", "{body}");
    let body = ok_json(
        invite(&app, &c.owner, &c.group, &y.id).await,
        "owner invites",
    )
    .await;
    assert_eq!(body["status"], "joined", "{body}");
    for user in [&x, &y] {
        assert_eq!(
            role_of(&app, &c.owner, &c.group, &user.id).await.as_deref(),
            Some("member")
        );
    }
    // Joining by oneself stays closed (and a stranger is not told the group exists).
    let resp = join(&app, &z, &c.group, &json!({})).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn groups_dissolve_owner_only() {
    let app = spawn_app().await;
    let c = cast(&app, "open").await;
    expect_role_refused(dissolve(&app, &c.admin, &c.group).await, "admin dissolves").await;
    expect_role_refused(
        dissolve(&app, &c.member, &c.group).await,
        "member dissolves",
    )
    .await;
    expect_outsider_refused(dissolve(&app, &c.outsider, &c.group).await, "outsider").await;
    assert_eq!(my_group_ids(&app, &c.member).await, vec![c.group.clone()]);

    let mut member_ws = app.connect_ws(&c.member).await;
    member_ws
        .send_group(&c.group, "still alive")
        .await
        .expect(OK);
    assert_eq!(
        dissolve(&app, &c.owner, &c.group).await.status(),
        StatusCode::OK
    );
    for who in [&c.owner, &c.admin, &c.member] {
        assert!(my_group_ids(&app, who).await.is_empty(), "{}", who.name);
    }
}
