//! The authorization matrix over HTTP: every route of the README table against anonymous, the
//! owner of a resource, another user, a blocked user, group members, admins and outsiders.
//! Each row names who asks, what, and the exact status and code they must get; every response
//! body is scanned for password fields and for other users' private strings (email, remarks,
//! devices).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authz_support::{
    Actors, Row, approval_group_with_request, call, marker, row, run_matrix,
};
use crate::groups_support::ok_json;
use crate::helpers::{PASSWORD, TestApp, spawn_app};
use crate::people_support::{
    get_list, ids_of, json_with, log_in_with_agent, make_friends, new_request, patch, register_user,
};
use crate::ws_client::{Chatter, dm, group_conv};

/// Alice and the people around her: a friend (`member`, also in her group), a group admin, an
/// outsider with a pending friend request to her, and a user she blocked who asked to join her
/// group. Alice's email, remarks, user agent and device id are hers alone.
struct World {
    alice: Chatter,
    admin: Chatter,
    member: Chatter,
    outsider: Chatter,
    blocked: Chatter,
    group: String,
    friend_request: String,
    join_request: String,
    alice_device: String,
    secrets: Vec<(&'static str, String)>,
}

async fn world(app: &TestApp) -> World {
    let alice_email = format!("{}@example.com", marker("alice"));
    let alice_agent = marker("AliceAgent");
    register_user(app, "alice", "Alice", Some(&alice_email)).await;
    let alice = log_in_with_agent(app, "alice", &alice_agent).await;
    let member_email = format!("{}@example.com", marker("member"));
    register_user(app, "member", "Member", Some(&member_email)).await;
    let member = app.log_in("member").await;
    let admin = app.chatter("admin").await;
    let outsider = app.chatter("outsider").await;
    let blocked = app.chatter("blocked").await;

    make_friends(app, &alice, &member).await;
    let alice_remark = marker("alice-remark");
    let member_remark = marker("member-remark");
    for (by, on, remark) in [
        (&alice, &member, &alice_remark),
        (&member, &alice, &member_remark),
    ] {
        let resp = patch(
            app,
            &by.http,
            &format!("/friends/{}", on.id),
            &json!({ "remark": remark }),
        )
        .await;
        json_with(resp, StatusCode::OK).await;
    }
    let friend_request = new_request(app, &outsider, &alice).await["id"]
        .as_str()
        .expect("request id")
        .to_owned();
    let resp = app
        .post(&alice.http, "/blocks", &json!({ "user_id": blocked.id }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED, "alice blocks");

    let (group, alice_group_remark, join_request) =
        approval_group_with_request(app, &alice, &admin, &member, &blocked, "alice-group-remark")
            .await;

    let devices = get_list(app, &alice.http, "/user/devices", "devices").await;
    let alice_device = devices
        .iter()
        .find(|d| d["current"] == true)
        .and_then(|d| d["id"].as_str())
        .expect("alice's current device")
        .to_owned();

    World {
        secrets: vec![
            ("alice", alice_email),
            ("alice", alice_agent),
            ("alice", alice_remark),
            ("alice", alice_group_remark),
            ("alice", alice_device.clone()),
            ("member", member_email),
            ("member", member_remark),
        ],
        alice,
        admin,
        member,
        outsider,
        blocked,
        group,
        friend_request,
        join_request,
        alice_device,
    }
}

impl World {
    fn actors(&self) -> Actors<'_> {
        Actors {
            cast: vec![
                ("alice", &self.alice),
                ("admin", &self.admin),
                ("member", &self.member),
                ("outsider", &self.outsider),
                ("blocked", &self.blocked),
            ],
            secrets: self.secrets.clone(),
        }
    }
}

#[tokio::test]
async fn authz_http_anonymous_gets_401_on_every_session_route_and_the_open_routes_answer() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let g = &w.group;
    let a = &w.alice.id;
    let c = dm(&w.alice.id, &w.member.id);
    let user = json!({ "user_id": w.member.id });
    let session_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/user/me".into(), None),
        (
            Method::PATCH,
            "/user/me".into(),
            Some(json!({"nick_name": "x"})),
        ),
        (
            Method::POST,
            "/user/set_password".into(),
            Some(json!({"old_password": PASSWORD, "new_password": "another password"})),
        ),
        (Method::POST, "/user/logout".into(), Some(json!({}))),
        (Method::GET, "/user/me/limits".into(), None),
        (Method::GET, "/ws".into(), None),
        (Method::POST, "/groups".into(), Some(json!({"name": "x"}))),
        (Method::GET, "/groups".into(), None),
        (Method::GET, format!("/groups/{g}"), None),
        (
            Method::PATCH,
            format!("/groups/{g}"),
            Some(json!({"notice": "x"})),
        ),
        (Method::DELETE, format!("/groups/{g}"), None),
        (Method::POST, format!("/groups/{g}/join"), Some(json!({}))),
        (
            Method::POST,
            format!("/groups/{g}/members"),
            Some(user.clone()),
        ),
        (Method::GET, format!("/groups/{g}/members"), None),
        (
            Method::DELETE,
            format!("/groups/{g}/members/{}", w.member.id),
            None,
        ),
        (Method::DELETE, format!("/groups/{g}/members/me"), None),
        (Method::GET, format!("/groups/{g}/requests"), None),
        (
            Method::POST,
            format!("/groups/{g}/requests/{}/accept", w.join_request),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/groups/{g}/requests/{}/reject", w.join_request),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/groups/{g}/transfer"),
            Some(user.clone()),
        ),
        (
            Method::POST,
            format!("/groups/{g}/admins"),
            Some(user.clone()),
        ),
        (
            Method::DELETE,
            format!("/groups/{g}/admins/{}", w.admin.id),
            None,
        ),
        (
            Method::POST,
            format!("/groups/{g}/mutes"),
            Some(json!({"user_id": w.member.id, "duration_secs": 60})),
        ),
        (
            Method::DELETE,
            format!("/groups/{g}/mutes/{}", w.member.id),
            None,
        ),
        (
            Method::PATCH,
            format!("/groups/{g}/me"),
            Some(json!({"dnd": true})),
        ),
        (Method::GET, "/conversations".into(), None),
        (
            Method::PATCH,
            format!("/conversations/{c}"),
            Some(json!({"pinned": true})),
        ),
        (
            Method::POST,
            format!("/conversations/{c}/read"),
            Some(json!({})),
        ),
        (Method::GET, "/contacts".into(), None),
        (Method::GET, format!("/users/{a}"), None),
        (Method::GET, "/users?q=ali".into(), None),
        (
            Method::POST,
            "/friends/requests".into(),
            Some(json!({"user_id": a})),
        ),
        (Method::GET, "/friends/requests".into(), None),
        (
            Method::POST,
            format!("/friends/requests/{}/accept", w.friend_request),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/friends/requests/{}/reject", w.friend_request),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/friends/requests/{}/ignore", w.friend_request),
            Some(json!({})),
        ),
        (Method::GET, "/friends".into(), None),
        (Method::GET, format!("/friends/{}", w.member.id), None),
        (
            Method::PATCH,
            format!("/friends/{}", w.member.id),
            Some(json!({"remark": "x"})),
        ),
        (Method::DELETE, format!("/friends/{}", w.member.id), None),
        (Method::POST, "/blocks".into(), Some(json!({"user_id": a}))),
        (Method::GET, "/blocks".into(), None),
        (Method::DELETE, format!("/blocks/{}", w.blocked.id), None),
        (Method::GET, "/user/devices".into(), None),
        (
            Method::DELETE,
            format!("/user/devices/{}", w.alice_device),
            None,
        ),
    ];
    let mut rows: Vec<Row> = session_routes
        .into_iter()
        .map(|(method, path, body)| {
            let r = row("anonymous", method, path, 401).code("unauthorized");
            match body {
                Some(body) => r.body(body),
                None => r,
            }
        })
        .collect();
    // /metrics wants the operator's bearer token (metrics.token), not a session.
    rows.push(row("anonymous", Method::GET, "/metrics", 401).code("unauthorized"));
    // The routes without a session answer anybody, and never with a 401 `unauthorized`.
    rows.extend([
        row("anonymous", Method::GET, "/ping", 200),
        row("anonymous", Method::GET, "/health", 200),
        row("anonymous", Method::GET, "/", 200),
        row("anonymous", Method::POST, "/user/register", 400)
            .body(json!({}))
            .code("validation_failed"),
        row("anonymous", Method::POST, "/user/login", 401)
            .body(json!({"user_name": "alice", "password": "not the password"}))
            .code("invalid_credentials"),
        row("anonymous", Method::POST, "/user/email_code", 400)
            .body(json!({"email": "nope", "purpose": "register"}))
            .code("validation_failed"),
        row("anonymous", Method::POST, "/user/reset_password", 400)
            .body(json!({"email": "x@example.com", "email_code": "000000", "new_password": "a new password"}))
            .code("invalid_email_code"),
    ]);
    run_matrix(&app, &w.actors(), &rows).await;

    // Nothing the anonymous rows asked for happened.
    let me = ok_json(
        app.get(&w.alice.http, "/user/me").await,
        "alice is still logged in",
    )
    .await;
    assert_eq!(me["user"]["user_name"], "alice");
    let friends = get_list(&app, &w.alice.http, "/friends", "friends").await;
    assert_eq!(
        ids_of(&friends, "id"),
        vec![w.member.id.clone()],
        "friends unchanged"
    );
    let blocks = ok_json(app.get(&w.alice.http, "/blocks").await, "blocks").await;
    assert_eq!(
        blocks["blocks"][0]["user_id"], w.blocked.id,
        "the block stands: {blocks}"
    );
}

#[tokio::test]
async fn authz_http_account_resources_belong_to_their_owner_only() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let a = &w.alice.id;
    let m = &w.member.id;
    let r = &w.friend_request;
    let rows = vec![
        // Profiles: public fields only, whoever asks.
        row("outsider", Method::GET, format!("/users/{a}"), 200),
        row("blocked", Method::GET, format!("/users/{a}"), 200),
        row("member", Method::GET, format!("/users/{a}"), 200),
        row("alice", Method::GET, format!("/users/{m}"), 200),
        row("outsider", Method::GET, "/users?q=ali", 200),
        row("outsider", Method::GET, "/users?user_name=alice", 200),
        row("outsider", Method::GET, "/users/987654321", 404).code("not_found"),
        // My own account only: the routes act on the caller, never on an id in the body.
        row("outsider", Method::GET, "/user/me", 200),
        row("outsider", Method::PATCH, "/user/me", 400)
            .body(json!({"id": a, "user_id": a, "nick_name": "Hijacked"})),
        row("outsider", Method::PATCH, "/user/me", 200).body(json!({"nick_name": "Outsider"})),
        row("outsider", Method::GET, "/user/me/limits", 200),
        // Devices: each user sees and revokes only their own.
        row("outsider", Method::GET, "/user/devices", 200),
        row(
            "outsider",
            Method::DELETE,
            format!("/user/devices/{}", w.alice_device),
            404,
        )
        .code("not_found"),
        row(
            "member",
            Method::DELETE,
            format!("/user/devices/{}", w.alice_device),
            404,
        )
        .code("not_found"),
        // Friend requests: only the recipient decides; the sender 403, anybody else 404.
        row(
            "member",
            Method::POST,
            format!("/friends/requests/{r}/accept"),
            404,
        )
        .body(json!({}))
        .code("not_found"),
        row(
            "blocked",
            Method::POST,
            format!("/friends/requests/{r}/reject"),
            404,
        )
        .body(json!({}))
        .code("not_found"),
        row(
            "outsider",
            Method::POST,
            format!("/friends/requests/{r}/accept"),
            403,
        )
        .body(json!({}))
        .code("forbidden"),
        row(
            "outsider",
            Method::POST,
            format!("/friends/requests/{r}/ignore"),
            403,
        )
        .body(json!({}))
        .code("forbidden"),
        row(
            "member",
            Method::GET,
            "/friends/requests?direction=incoming",
            200,
        ),
        row(
            "member",
            Method::GET,
            "/friends/requests?direction=outgoing",
            200,
        ),
        // A block stops friend requests either way.
        row("blocked", Method::POST, "/friends/requests", 403)
            .body(json!({"user_id": a}))
            .code("blocked"),
        row("alice", Method::POST, "/friends/requests", 403)
            .body(json!({"user_id": w.blocked.id}))
            .code("blocked"),
        // Remarks and friendships: not a friend → 404, whoever's friend the target is.
        row("outsider", Method::PATCH, format!("/friends/{a}"), 404)
            .body(json!({"remark": "mine now"}))
            .code("not_found"),
        row("outsider", Method::PATCH, format!("/friends/{m}"), 404)
            .body(json!({"remark": "mine now"}))
            .code("not_found"),
        row("outsider", Method::DELETE, format!("/friends/{m}"), 404).code("not_found"),
        row("blocked", Method::DELETE, format!("/friends/{a}"), 404).code("not_found"),
        row("member", Method::GET, "/friends", 200),
        row("outsider", Method::GET, format!("/friends/{m}"), 200),
        // Blocks are the blocker's: the blocked user cannot lift or see them.
        row("blocked", Method::DELETE, format!("/blocks/{a}"), 404).code("not_found"),
        row("blocked", Method::GET, "/blocks", 200),
        row("outsider", Method::GET, "/blocks", 200),
        // Conversations: only participants pin, hide or read.
        row(
            "outsider",
            Method::PATCH,
            format!("/conversations/{}", dm(a, m)),
            403,
        )
        .body(json!({"pinned": true})),
        row(
            "outsider",
            Method::POST,
            format!("/conversations/{}/read", dm(a, m)),
            403,
        )
        .body(json!({})),
        // The group is an approval group: to a stranger its conversation answers as an unknown
        // one does (a private group's existence is not revealed).
        row(
            "outsider",
            Method::PATCH,
            format!("/conversations/{}", group_conv(&w.group)),
            404,
        )
        .body(json!({"hidden": true})),
        // `blocked` has a pending request to join: they know the group exists.
        row(
            "blocked",
            Method::POST,
            format!("/conversations/{}/read", group_conv(&w.group)),
            403,
        )
        .body(json!({})),
        row("outsider", Method::PATCH, "/conversations/g:987654321", 404)
            .body(json!({"pinned": true})),
        row(
            "outsider",
            Method::PATCH,
            "/conversations/not-a-conversation",
            400,
        )
        .body(json!({"pinned": true})),
        row(
            "member",
            Method::PATCH,
            format!("/conversations/{}", dm(a, m)),
            200,
        )
        .body(json!({"pinned": true})),
        row(
            "blocked",
            Method::PATCH,
            format!("/conversations/{}", dm(a, &w.blocked.id)),
            200,
        )
        .body(json!({"pinned": true})),
        row("outsider", Method::GET, "/conversations", 200),
        row("member", Method::GET, "/conversations", 200),
        row("outsider", Method::GET, "/contacts", 200),
        row("member", Method::GET, "/contacts", 200),
        // The owner: the request to her is hers to decide.
        row(
            "alice",
            Method::POST,
            format!("/friends/requests/{r}/reject"),
            200,
        )
        .body(json!({})),
    ];
    run_matrix(&app, &w.actors(), &rows).await;

    // Alice's account is as it was: nick, session, device, friend and remark, block.
    let me = ok_json(app.get(&w.alice.http, "/user/me").await, "alice").await;
    assert_eq!(me["user"]["nick_name"], "Alice", "{me}");
    let outsider_me = ok_json(app.get(&w.outsider.http, "/user/me").await, "outsider").await;
    assert_eq!(outsider_me["user"]["id"], w.outsider.id, "{outsider_me}");
    assert_eq!(outsider_me["user"]["nick_name"], "Outsider");
    let devices = get_list(&app, &w.alice.http, "/user/devices", "devices").await;
    assert!(
        ids_of(&devices, "id").contains(&w.alice_device),
        "alice's device survives: {devices:?}"
    );
    let friends = get_list(&app, &w.alice.http, "/friends", "friends").await;
    assert_eq!(ids_of(&friends, "id"), vec![w.member.id.clone()]);
    assert!(
        friends[0]["remark"]
            .as_str()
            .is_some_and(|r| r.starts_with("alice-remark")),
        "alice's remark stands: {friends:?}"
    );
    let blocks = ok_json(app.get(&w.alice.http, "/blocks").await, "blocks").await;
    assert_eq!(blocks["blocks"][0]["user_id"], w.blocked.id, "{blocks}");
    // Alice's blocks and her conversations are in nobody else's lists.
    for viewer in [&w.blocked, &w.outsider] {
        let blocks = ok_json(app.get(&viewer.http, "/blocks").await, "blocks").await;
        assert_eq!(blocks["blocks"], json!([]), "{}: {blocks}", viewer.name);
    }
    let listed = get_list(
        &app,
        &w.outsider.http,
        "/conversations?limit=100",
        "conversations",
    )
    .await;
    let convs = ids_of(&listed, "conversation");
    assert!(
        !convs.contains(&dm(a, m)) && !convs.contains(&group_conv(&w.group)),
        "the outsider lists none of alice's conversations: {convs:?}"
    );
    // The pending request shows to its two parties only.
    for viewer in [&w.member, &w.admin, &w.blocked] {
        for direction in ["incoming", "outgoing"] {
            let list = get_list(
                &app,
                &viewer.http,
                &format!("/friends/requests?direction={direction}"),
                "requests",
            )
            .await;
            assert!(
                !ids_of(&list, "id").contains(&w.friend_request),
                "{} sees the request in {direction}: {list:?}",
                viewer.name
            );
        }
    }
}

#[tokio::test]
async fn authz_http_own_responses_never_carry_a_password_or_hash() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let actors = w.actors();
    // The owner's own routes: her email is fine here, any password or hash is not.
    let own = [
        (Method::GET, "/user/me".to_owned(), None),
        (
            Method::PATCH,
            "/user/me".to_owned(),
            Some(json!({"nick_name": "Alice A"})),
        ),
        (Method::GET, "/user/devices".to_owned(), None),
        (Method::GET, "/friends".to_owned(), None),
        (Method::GET, "/contacts".to_owned(), None),
        (Method::GET, "/conversations".to_owned(), None),
        (Method::GET, format!("/groups/{}/members", w.group), None),
        (Method::GET, format!("/groups/{}/requests", w.group), None),
        (Method::GET, "/friends/requests".to_owned(), None),
        (Method::GET, "/blocks".to_owned(), None),
        (
            Method::POST,
            "/user/set_password".to_owned(),
            Some(json!({"old_password": PASSWORD, "new_password": PASSWORD})),
        ),
    ];
    for (method, path, body) in own {
        let answer = call(&app, &w.alice.http, method.clone(), &path, body.as_ref()).await;
        assert!(
            answer.status.is_success(),
            "{method} {path}: {}",
            answer.text
        );
        let body = answer.body.expect("a JSON body");
        crate::authz_support::scan(&body, "alice", &actors.secrets)
            .unwrap_or_else(|leak| panic!("{method} {path}: {leak}"));
    }
    // Login and registration answer with the user object, never a password.
    let resp = app
        .login_with(&crate::helpers::new_client(), "alice", PASSWORD)
        .await;
    let body = json_with(resp, StatusCode::OK).await;
    crate::authz_support::scan(&body, "alice", &actors.secrets)
        .unwrap_or_else(|leak| panic!("login: {leak}"));
}
