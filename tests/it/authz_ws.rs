//! The authorization matrix over the WebSocket: every op (1 send, 2 history, 3 unread, 4 mark
//! read, 5 delete for me / recall, 6 group send, 7 resume, 8 typing) against the participants
//! of a conversation, an outsider, a user the owner blocked, group members and an admin, and a
//! member who was removed. Each row names who sends which frame and the reply code they must
//! get; no reply to somebody outside may carry the content of the conversations they are not in.

use serde_json::{Value, json};

use crate::authz_support::marker;
use crate::groups_support::{QUIET_MS, kick, ok_json};
use crate::helpers::{TestApp, spawn_app};
use crate::people_support::json_with;
use crate::ws_client::{ChatMessage, Chatter, FORBIDDEN, NOT_FOUND, OK, WsClient, dm, group_conv};

/// A reply code that is one of the send acknowledgements (50004 or 50005).
const SENT: i64 = -1;

struct Room {
    alice: (Chatter, WsClient),
    bob: (Chatter, WsClient),
    carol: (Chatter, WsClient),
    dave: (Chatter, WsClient),
    eve: (Chatter, WsClient),
    mallory: (Chatter, WsClient),
    group: String,
    /// alice → bob
    direct: ChatMessage,
    /// alice in the group
    alice_in_group: ChatMessage,
    /// carol in the group
    carol_in_group: ChatMessage,
    /// Text only alice, bob and the group members may ever see.
    private_texts: Vec<String>,
}

/// Alice writes to bob; alice owns a group with carol (member) and dave (admin); eve is
/// nobody's; alice blocked mallory after they had talked.
async fn room(app: &TestApp) -> Room {
    let mut alice = app.login_ws("alice").await;
    let bob = app.login_ws("bob").await;
    let mut carol = app.login_ws("carol").await;
    let dave = app.login_ws("dave").await;
    let eve = app.login_ws("eve").await;
    let mut mallory = app.login_ws("mallory").await;
    let group = app
        .group_with(&alice.0, "private", &[&carol.0, &dave.0])
        .await;
    crate::groups_support::make_admin(app, &alice.0, &group, &dave.0).await;

    let direct_text = marker("direct-secret");
    let group_text = marker("group-secret");
    let carol_text = marker("carol-secret");
    let direct = alice.1.send_to(&bob.0.id, &direct_text).await;
    assert!(matches!(direct.code, 50004 | 50005), "{}", direct.raw);
    let alice_in_group = alice.1.send_group(&group, &group_text).await;
    alice_in_group.expect(OK);
    let carol_in_group = carol.1.send_group(&group, &carol_text).await;
    carol_in_group.expect(OK);
    mallory
        .1
        .send_to(&alice.0.id, "before the block")
        .await
        .expect(crate::ws_client::DELIVERED);
    let resp = app
        .post(
            &alice.0.http,
            "/blocks",
            &json!({ "user_id": mallory.0.id }),
        )
        .await;
    json_with(resp, reqwest::StatusCode::CREATED).await;
    Room {
        direct: direct.message(),
        alice_in_group: alice_in_group.message(),
        carol_in_group: carol_in_group.message(),
        private_texts: vec![direct_text, group_text, carol_text],
        alice,
        bob,
        carol,
        dave,
        eve,
        mallory,
        group,
    }
}

impl Room {
    fn ws(&mut self, who: &str) -> &mut WsClient {
        match who {
            "alice" => &mut self.alice.1,
            "bob" => &mut self.bob.1,
            "carol" => &mut self.carol.1,
            "dave" => &mut self.dave.1,
            "eve" => &mut self.eve.1,
            "mallory" => &mut self.mallory.1,
            other => panic!("no actor {other}"),
        }
    }

    /// Who may see which private text: alice and bob the direct one, members the group ones.
    fn may_see(&self, who: &str, text: &str) -> bool {
        let direct = &self.private_texts[0];
        match who {
            "alice" => true,
            "bob" => text == direct,
            "carol" | "dave" => text != direct,
            _ => false,
        }
    }
}

/// Sends every frame as its actor and checks the reply code; fails at the end with every row
/// that got something else, or whose reply carried text the actor may not see.
async fn run_rows(room: &mut Room, rows: &[(&'static str, Value, i64)]) {
    let mut failures = Vec::new();
    for (i, (who, frame, expected)) in rows.iter().enumerate() {
        let reply = room.ws(who).request(frame.clone()).await;
        let ok = if *expected == SENT {
            matches!(reply.code, 50004 | 50005)
        } else {
            reply.code == *expected
        };
        if !ok {
            failures.push(format!(
                "row {i}: {who} {frame}: expected {expected}, got {}",
                reply.raw
            ));
        }
        let raw = reply.raw.to_string();
        for text in &room.private_texts {
            if raw.contains(text.as_str()) && !room.may_see(who, text) {
                failures.push(format!("row {i}: {who} {frame}: leaks `{text}` in {raw}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn authz_ws_every_op_by_participant_outsider_blocked_member_and_admin() {
    let app = spawn_app().await;
    let mut room = room(&app).await;
    let (alice, bob) = (room.alice.0.id.clone(), room.bob.0.id.clone());
    let ab = dm(&alice, &bob);
    let g = group_conv(&room.group);
    let group = room.group.clone();
    let direct = room.direct.id.clone();
    let in_group = room.alice_in_group.id.clone();
    let carols = room.carol_in_group.id.clone();
    let rows: Vec<(&'static str, Value, i64)> = vec![
        // eve is in none of it.
        ("eve", json!({"op_type": 2, "conversation": ab}), FORBIDDEN),
        ("eve", json!({"op_type": 2, "conversation": g}), FORBIDDEN),
        (
            "eve",
            json!({"op_type": 2, "conversation": "g:987654321"}),
            NOT_FOUND,
        ),
        ("eve", json!({"op_type": 3, "conversation": ab}), FORBIDDEN),
        ("eve", json!({"op_type": 3, "conversation": g}), FORBIDDEN),
        ("eve", json!({"op_type": 4, "content": direct}), NOT_FOUND),
        ("eve", json!({"op_type": 4, "content": in_group}), NOT_FOUND),
        (
            "eve",
            json!({"op_type": 4, "conversation": ab, "seq": 1}),
            FORBIDDEN,
        ),
        (
            "eve",
            json!({"op_type": 4, "conversation": g, "seq": 1}),
            FORBIDDEN,
        ),
        ("eve", json!({"op_type": 5, "content": direct}), NOT_FOUND),
        (
            "eve",
            json!({"op_type": 5, "content": direct, "scope": "all"}),
            NOT_FOUND,
        ),
        (
            "eve",
            json!({"op_type": 5, "content": in_group, "scope": "all"}),
            NOT_FOUND,
        ),
        (
            "eve",
            json!({"op_type": 6, "to": group, "type": 1, "content": "let me in"}),
            FORBIDDEN,
        ),
        (
            "eve",
            json!({"op_type": 6, "to": "987654321", "type": 1, "content": "x"}),
            NOT_FOUND,
        ),
        (
            "eve",
            json!({"op_type": 7, "since": {ab.as_str(): 0}}),
            FORBIDDEN,
        ),
        (
            "eve",
            json!({"op_type": 7, "since": {g.as_str(): 0}}),
            FORBIDDEN,
        ),
        ("eve", json!({"op_type": 8, "conversation": ab}), FORBIDDEN),
        ("eve", json!({"op_type": 8, "conversation": g}), FORBIDDEN),
        ("eve", json!({"op_type": 3}), OK),
        ("eve", json!({"op_type": 7, "since": {}}), OK),
        // A `from` is ignored: eve's message is eve's (checked below).
        (
            "eve",
            json!({"op_type": 1, "to": bob, "type": 1, "content": "from eve", "from": alice}),
            SENT,
        ),
        // bob: a participant of the direct conversation only.
        ("bob", json!({"op_type": 2, "conversation": ab}), OK),
        ("bob", json!({"op_type": 3, "conversation": ab}), OK),
        (
            "bob",
            json!({"op_type": 5, "content": direct, "scope": "all"}),
            FORBIDDEN,
        ),
        ("bob", json!({"op_type": 2, "conversation": g}), FORBIDDEN),
        ("bob", json!({"op_type": 5, "content": in_group}), NOT_FOUND),
        ("bob", json!({"op_type": 4, "content": direct}), OK),
        // carol: a member, not a manager and not the sender of alice's message.
        ("carol", json!({"op_type": 2, "conversation": g}), OK),
        ("carol", json!({"op_type": 3, "conversation": g}), OK),
        ("carol", json!({"op_type": 7, "since": {g.as_str(): 0}}), OK),
        (
            "carol",
            json!({"op_type": 5, "content": in_group, "scope": "all"}),
            FORBIDDEN,
        ),
        (
            "carol",
            json!({"op_type": 2, "conversation": ab}),
            FORBIDDEN,
        ),
        ("carol", json!({"op_type": 4, "content": direct}), NOT_FOUND),
        ("carol", json!({"op_type": 8, "conversation": g}), OK),
        // dave: an admin moderates members but recalls only his own messages.
        (
            "dave",
            json!({"op_type": 5, "content": carols, "scope": "all"}),
            FORBIDDEN,
        ),
        (
            "dave",
            json!({"op_type": 5, "content": in_group, "scope": "all"}),
            FORBIDDEN,
        ),
        (
            "dave",
            json!({"op_type": 5, "content": direct, "scope": "all"}),
            NOT_FOUND,
        ),
        // mallory, blocked by alice: nothing reaches alice; their own past stays theirs.
        (
            "mallory",
            json!({"op_type": 1, "to": alice, "type": 1, "content": "let me talk"}),
            FORBIDDEN,
        ),
        ("mallory", json!({"op_type": 2, "to": alice}), OK),
        (
            "mallory",
            json!({"op_type": 2, "conversation": ab}),
            FORBIDDEN,
        ),
        (
            "mallory",
            json!({"op_type": 6, "to": group, "type": 1, "content": "x"}),
            FORBIDDEN,
        ),
        // Deleting for oneself is the participant's right, recalling the sender's.
        ("bob", json!({"op_type": 5, "content": direct}), OK),
        ("carol", json!({"op_type": 5, "content": in_group}), OK),
        (
            "carol",
            json!({"op_type": 5, "content": carols, "scope": "all"}),
            OK,
        ),
        (
            "alice",
            json!({"op_type": 5, "content": direct, "scope": "all"}),
            OK,
        ),
    ];
    run_rows(&mut room, &rows).await;

    // eve's `from` was ignored.
    let history = room.bob.1.history_of(&dm(&room.eve.0.id, &bob)).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        history[0].from, room.eve.0.id,
        "the sender is the session user"
    );
    // Nothing of mallory's reached alice after the block.
    let mallory_id = room.mallory.0.id.clone();
    let texts: Vec<String> = room
        .alice
        .1
        .history_of(&dm(&alice, &mallory_id))
        .await
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(texts, vec!["before the block".to_owned()]);
    // eve's refused read and typing frames told nobody anything (bob's own receipt went to
    // alice, carol's typing to the group: those two are not checked here).
    for who in ["bob", "carol", "dave"] {
        room.ws(who).expect_no_event_of("read", QUIET_MS).await;
    }
    room.bob.1.expect_no_event_of("typing", 0).await;
}

#[tokio::test]
async fn authz_ws_a_blocked_user_cannot_reach_the_blocker_with_typing_notices() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (mallory, mut mallory_ws) = app.login_ws("mallory").await;
    let resp = app
        .post(&alice.http, "/blocks", &json!({ "user_id": mallory.id }))
        .await;
    json_with(resp, reqwest::StatusCode::CREATED).await;

    for frame in [
        json!({"op_type": 8, "to": alice.id}),
        json!({"op_type": 8, "conversation": dm(&alice.id, &mallory.id)}),
    ] {
        let reply = mallory_ws.request(frame.clone()).await;
        assert!(
            reply.code == OK || reply.code == FORBIDDEN,
            "{frame}: {}",
            reply.raw
        );
    }
    // docs/people.md: the blocker never sees anything a blocked user sends them.
    alice_ws.expect_no_event_of("typing", QUIET_MS).await;
}

#[tokio::test]
async fn authz_ws_a_removed_member_loses_every_op_on_the_group() {
    let app = spawn_app().await;
    let mut room = room(&app).await;
    let g = group_conv(&room.group);
    let group = room.group.clone();
    let in_group = room.alice_in_group.id.clone();
    let carols = room.carol_in_group.id.clone();
    ok_json(
        kick(&app, &room.alice.0, &room.group, &room.carol.0.id).await,
        "kick carol",
    )
    .await;
    // carol may no longer see the group's text, not even her own message's.
    room.private_texts
        .retain(|t| !t.starts_with("group-secret"));
    let rows: Vec<(&'static str, Value, i64)> = vec![
        ("carol", json!({"op_type": 2, "conversation": g}), FORBIDDEN),
        ("carol", json!({"op_type": 3, "conversation": g}), FORBIDDEN),
        (
            "carol",
            json!({"op_type": 4, "conversation": g, "seq": 1}),
            FORBIDDEN,
        ),
        (
            "carol",
            json!({"op_type": 4, "content": in_group}),
            NOT_FOUND,
        ),
        (
            "carol",
            json!({"op_type": 5, "content": in_group}),
            NOT_FOUND,
        ),
        (
            "carol",
            json!({"op_type": 5, "content": carols, "scope": "all"}),
            NOT_FOUND,
        ),
        (
            "carol",
            json!({"op_type": 6, "to": group, "type": 1, "content": "still here?"}),
            FORBIDDEN,
        ),
        (
            "carol",
            json!({"op_type": 7, "since": {g.as_str(): 0}}),
            FORBIDDEN,
        ),
        ("carol", json!({"op_type": 8, "conversation": g}), FORBIDDEN),
    ];
    run_rows(&mut room, &rows).await;
    // A resume without `since` no longer brings the group either.
    let reply = room.carol.1.resume(json!({})).await;
    reply.expect(OK);
    assert!(
        reply
            .all_messages()
            .iter()
            .all(|m| m.conversation != g || m.kind == crate::ws_client::SYSTEM_TYPE),
        "{}",
        reply.raw
    );
}
