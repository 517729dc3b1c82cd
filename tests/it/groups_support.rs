//! Shared helpers for the group, moderation and recent-chats tests (docs/groups.md): the routes
//! as typed calls, a cast of owner / admin / member / outsider, and readers for the system
//! messages (`type` 10) and `event: group` frames a membership change produces.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_of};
use crate::people_support::{delete, items, json_with, patch};
use crate::ws_client::{Chatter, OK, WsClient};

/// The message `type` of a system message.
pub const SYSTEM: i64 = 10;

/// How long a test makes sure nothing arrives.
pub const QUIET_MS: u64 = 500;

// ---- errors -----------------------------------------------------------------------------------

/// Asserts a JSON error body with this status and a non-empty code and message; returns it.
pub async fn expect_status(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let text = resp.text().await.expect("response body");
    assert_eq!(got, status, "status, body {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{got}: error body is not JSON ({e}): {text}"));
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "a code in {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
    body
}

/// A 403 for somebody who is not in the group (the docs name `not_a_member`; a route that
/// only managers may use may also answer `forbidden`).
pub async fn expect_outsider_refused(resp: Response, what: &str) {
    let body = expect_status(resp, StatusCode::FORBIDDEN).await;
    assert!(
        body["code"] == "not_a_member" || body["code"] == "forbidden",
        "{what}: code in {body}"
    );
}

/// A 403 for a member whose role does not allow the action.
pub async fn expect_role_refused(resp: Response, what: &str) {
    let body = expect_status(resp, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], "forbidden", "{what}: code in {body}");
}

/// A 400 (a validation error names its field).
pub async fn expect_bad_request(resp: Response, field: &str) {
    let body = expect_status(resp, StatusCode::BAD_REQUEST).await;
    if body["code"] == "validation_failed" {
        assert_eq!(body["field"], field, "field in {body}");
    }
}

/// Asserts 200 and returns the JSON body.
pub async fn ok_json(resp: Response, what: &str) -> Value {
    let status = resp.status();
    let body = json_of(resp).await;
    assert_eq!(status, StatusCode::OK, "{what}: body {body}");
    body
}

// ---- groups -----------------------------------------------------------------------------------

/// POST /groups with this body as `owner`; asserts 201 and returns the group object.
pub async fn create_group_with(app: &TestApp, owner: &Chatter, body: &Value) -> Value {
    let resp = app.post(&owner.http, "/groups", body).await;
    json_with(resp, StatusCode::CREATED).await["group"].clone()
}

/// A group in this join mode owned by `owner`; returns its id.
pub async fn group_in_mode(app: &TestApp, owner: &Chatter, mode: &str) -> String {
    let group = create_group_with(app, owner, &json!({"name": "team", "join_mode": mode})).await;
    assert_eq!(group["join_mode"], mode, "{group}");
    group["id"].as_str().expect("group id").to_owned()
}

pub async fn get_group(app: &TestApp, who: &Chatter, group: &str) -> Response {
    app.get(&who.http, &format!("/groups/{group}")).await
}

pub async fn patch_group(app: &TestApp, who: &Chatter, group: &str, body: &Value) -> Response {
    patch(app, &who.http, &format!("/groups/{group}"), body).await
}

pub async fn dissolve(app: &TestApp, who: &Chatter, group: &str) -> Response {
    delete(app, &who.http, &format!("/groups/{group}")).await
}

pub async fn join(app: &TestApp, who: &Chatter, group: &str, body: &Value) -> Response {
    app.post(&who.http, &format!("/groups/{group}/join"), body)
        .await
}

/// POST /groups/{id}/members `{"user_id"}` as `by`.
pub async fn invite(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    app.post(
        &by.http,
        &format!("/groups/{group}/members"),
        &json!({ "user_id": user_id }),
    )
    .await
}

pub async fn requests_of(app: &TestApp, who: &Chatter, group: &str) -> Response {
    app.get(&who.http, &format!("/groups/{group}/requests"))
        .await
}

/// The requests of a group as a manager sees them; asserts 200 and the list envelope.
pub async fn request_list(app: &TestApp, who: &Chatter, group: &str) -> Vec<Value> {
    let body = ok_json(requests_of(app, who, group).await, "list requests").await;
    items(&body, "requests")
}

/// POST /groups/{id}/requests/{rid}/{accept|reject} as `who`.
pub async fn decide_request(
    app: &TestApp,
    who: &Chatter,
    group: &str,
    request_id: &str,
    action: &str,
) -> Response {
    app.post(
        &who.http,
        &format!("/groups/{group}/requests/{request_id}/{action}"),
        &json!({}),
    )
    .await
}

pub async fn members_of(app: &TestApp, who: &Chatter, group: &str) -> Response {
    app.get(&who.http, &format!("/groups/{group}/members?limit=100"))
        .await
}

/// The member list as `who` sees it; asserts 200 and the list envelope.
pub async fn member_list(app: &TestApp, who: &Chatter, group: &str) -> Vec<Value> {
    let body = ok_json(members_of(app, who, group).await, "list members").await;
    items(&body, "members")
}

/// The member entry of `user_id`, if they are a member.
pub fn member_entry(members: &[Value], user_id: &str) -> Option<Value> {
    members.iter().find(|m| m["user_id"] == user_id).cloned()
}

/// The role of `user_id` in the group as `viewer` sees it (`None`: not a member).
pub async fn role_of(
    app: &TestApp,
    viewer: &Chatter,
    group: &str,
    user_id: &str,
) -> Option<String> {
    member_entry(&member_list(app, viewer, group).await, user_id)
        .map(|m| m["role"].as_str().expect("role is a string").to_owned())
}

pub async fn kick(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    delete(app, &by.http, &format!("/groups/{group}/members/{user_id}")).await
}

pub async fn leave(app: &TestApp, who: &Chatter, group: &str) -> Response {
    delete(app, &who.http, &format!("/groups/{group}/members/me")).await
}

pub async fn transfer(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    app.post(
        &by.http,
        &format!("/groups/{group}/transfer"),
        &json!({ "user_id": user_id }),
    )
    .await
}

pub async fn add_admin(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    app.post(
        &by.http,
        &format!("/groups/{group}/admins"),
        &json!({ "user_id": user_id }),
    )
    .await
}

pub async fn remove_admin(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    delete(app, &by.http, &format!("/groups/{group}/admins/{user_id}")).await
}

pub async fn mute(
    app: &TestApp,
    by: &Chatter,
    group: &str,
    user_id: &str,
    duration_secs: u64,
) -> Response {
    app.post(
        &by.http,
        &format!("/groups/{group}/mutes"),
        &json!({ "user_id": user_id, "duration_secs": duration_secs }),
    )
    .await
}

pub async fn unmute(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    delete(app, &by.http, &format!("/groups/{group}/mutes/{user_id}")).await
}

/// PATCH /groups/{id}/me as `who`; asserts 200 and returns `settings`.
pub async fn set_my_settings(app: &TestApp, who: &Chatter, group: &str, body: &Value) -> Value {
    let resp = patch(app, &who.http, &format!("/groups/{group}/me"), body).await;
    ok_json(resp, "PATCH /groups/{id}/me").await["settings"].clone()
}

/// Makes `user` an admin of `group` (as its owner); asserts 200.
pub async fn make_admin(app: &TestApp, owner: &Chatter, group: &str, user: &Chatter) {
    let resp = add_admin(app, owner, group, &user.id).await;
    assert_eq!(resp.status(), StatusCode::OK, "make {} admin", user.name);
}

/// The ids in GET /groups of `who`.
pub async fn my_group_ids(app: &TestApp, who: &Chatter) -> Vec<String> {
    let body = ok_json(app.get(&who.http, "/groups").await, "GET /groups").await;
    let mut ids: Vec<String> = body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("groups is an array: {body}"))
        .iter()
        .map(|g| g["id"].as_str().expect("group id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Owner, an admin, a member and somebody outside, around one group in this join mode.
pub struct Cast {
    pub group: String,
    pub owner: Chatter,
    pub admin: Chatter,
    pub member: Chatter,
    pub outsider: Chatter,
}

pub async fn cast(app: &TestApp, mode: &str) -> Cast {
    let owner = app.chatter("owner").await;
    let admin = app.chatter("admin").await;
    let member = app.chatter("member").await;
    let outsider = app.chatter("outsider").await;
    let group = group_in_mode(app, &owner, mode).await;
    // The owner's invitation adds at once in every mode.
    app.add_to_group(&owner, &group, &admin).await;
    app.add_to_group(&owner, &group, &member).await;
    make_admin(app, &owner, &group, &admin).await;
    Cast {
        group,
        owner,
        admin,
        member,
        outsider,
    }
}

// ---- messages -----------------------------------------------------------------------------------

/// The JSON description of a system message (`content` as a JSON text, or already an object);
/// `None` for any other message.
pub fn system_content(message: &Value) -> Option<Value> {
    if message["type"] != SYSTEM {
        return None;
    }
    match &message["content"] {
        Value::String(text) => Some(
            serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("system content is JSON ({e}): {message}")),
        ),
        Value::Object(_) => Some(message["content"].clone()),
        other => panic!("system content is a JSON description, got {other}"),
    }
}

/// The actions of the system messages among these messages, in order.
pub fn system_actions(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter_map(system_content)
        .map(|c| {
            c["action"]
                .as_str()
                .unwrap_or_else(|| panic!("an action in {c}"))
                .to_owned()
        })
        .collect()
}

/// The system descriptions with this action.
pub fn system_with(messages: &[Value], action: &str) -> Vec<Value> {
    messages
        .iter()
        .filter_map(system_content)
        .filter(|c| c["action"] == action)
        .collect()
}

/// The messages that are not system messages.
pub fn chat_only(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m["type"] != SYSTEM)
        .cloned()
        .collect()
}

/// op 2 (newest 100) as raw message objects; asserts 200.
pub async fn raw_history(ws: &mut WsClient, conversation: &str) -> Vec<Value> {
    let reply = ws
        .request(json!({"op_type": 2, "conversation": conversation, "limit": 100}))
        .await;
    reply.expect(OK);
    reply.data["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("data.messages is an array: {}", reply.raw))
        .clone()
}

/// The contents of the non-system messages of a raw history.
pub fn chat_contents(messages: &[Value]) -> Vec<String> {
    chat_only(messages)
        .iter()
        .map(|m| m["content"].as_str().expect("text content").to_owned())
        .collect()
}

/// The next `event: message` that is not a system message, raw.
pub async fn next_chat_message(ws: &mut WsClient) -> Value {
    loop {
        let message = ws.next_event("message").await;
        if message["type"] != SYSTEM {
            return message;
        }
    }
}

/// The description of the next system message pushed with this action (others are skipped).
pub async fn next_system_message(ws: &mut WsClient, action: &str) -> Value {
    loop {
        let message = ws.next_event("message").await;
        if let Some(content) = system_content(&message)
            && content["action"] == action
        {
            return content;
        }
    }
}

/// The data of the next `event: group` with this action (others are skipped).
pub async fn next_group_event(ws: &mut WsClient, action: &str) -> Value {
    loop {
        let data = ws.next_event("group").await;
        if data["action"] == action {
            return data;
        }
    }
}

/// op 3 for one conversation: its `unread` count; asserts 200.
pub async fn op3_unread(ws: &mut WsClient, conversation: &str) -> i64 {
    let reply = ws.unread_in(conversation).await;
    reply.expect(OK);
    reply.data["unread"]
        .as_i64()
        .unwrap_or_else(|| panic!("data.unread is a count: {}", reply.raw))
}

// ---- recent chats -------------------------------------------------------------------------------

/// GET /conversations?limit=100 on `app` as `who`: the entries; asserts 200 and the envelope.
pub async fn conversations(app: &TestApp, who: &Chatter) -> Vec<Value> {
    let body = ok_json(
        app.get(&who.http, "/conversations?limit=100").await,
        "GET /conversations",
    )
    .await;
    items(&body, "conversations")
}

/// The entry of one conversation, if listed.
pub fn entry(list: &[Value], conversation: &str) -> Option<Value> {
    list.iter()
        .find(|c| c["conversation"] == conversation)
        .cloned()
}

/// The conversation ids of a list, in its order, keeping only those in `among`.
pub fn order_among(list: &[Value], among: &[&str]) -> Vec<String> {
    list.iter()
        .filter_map(|c| c["conversation"].as_str())
        .filter(|c| among.contains(c))
        .map(str::to_owned)
        .collect()
}

pub async fn patch_conversation(
    app: &TestApp,
    who: &Chatter,
    conversation: &str,
    body: &Value,
) -> Response {
    patch(
        app,
        &who.http,
        &format!("/conversations/{conversation}"),
        body,
    )
    .await
}

pub async fn read_conversation(app: &TestApp, who: &Chatter, conversation: &str) -> Response {
    app.post(
        &who.http,
        &format!("/conversations/{conversation}/read"),
        &json!({}),
    )
    .await
}

/// Asserts that every listed conversation's `unread` is what op 3 says for it.
pub async fn assert_unread_matches_op3(list: &[Value], ws: &mut WsClient) {
    for c in list {
        let id = c["conversation"].as_str().expect("conversation id");
        let listed = c["unread"]
            .as_i64()
            .unwrap_or_else(|| panic!("unread is a count: {c}"));
        assert_eq!(listed, op3_unread(ws, id).await, "unread of {id} in {c}");
    }
}
