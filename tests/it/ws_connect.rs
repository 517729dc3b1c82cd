//! Opening, using and losing a WebSocket: the upgrade checks, bad frames, limits, revocation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};
use crate::ws_client::{BAD_FRAME, CLOSE_POLICY, CLOSE_TOO_BIG, DELIVERED, Ended, OK, dm};

/// Revocation closes sockets "within a second or so"; this only bounds the wait.
const REVOCATION_WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn ws_upgrade_without_a_session_is_401() {
    let app = spawn_app().await;

    let refused = app.try_connect_ws(None, None).await.err().expect("refused");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body.expect("a JSON body")["code"], "unauthorized");

    let refused = app
        .try_connect_ws(Some("chat_session=forged-value"), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ws_upgrade_from_a_foreign_origin_is_403() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;

    let refused = app
        .try_connect_ws(Some(&alice.cookie), Some("http://evil.example"))
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body.expect("a JSON body")["code"],
        "forbidden_origin"
    );
}

#[tokio::test]
async fn ws_upgrade_from_the_same_host_origin_is_allowed() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;

    let mut ws = match app
        .try_connect_ws(Some(&alice.cookie), Some(&app.address))
        .await
    {
        Ok(ws) => ws,
        Err(refused) => panic!("same-host origin {} refused: {refused:?}", app.address),
    };
    ws.request(json!({"op_type": 3})).await.expect(OK);
}

#[tokio::test]
async fn ws_a_binary_frame_gets_40000_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let (alice, mut ws) = app.login_ws("alice").await;

    let reply = ws.request_raw(Frame::binary(vec![1u8, 2, 3])).await;
    reply.expect(BAD_FRAME);
    assert_eq!(reply.op_type, 0, "a binary frame cannot be read: op_type 0");
    assert!(reply.client_msg_id.is_null());

    ws.send_to(&alice.id, "still here").await.expect(DELIVERED);
}

#[tokio::test]
async fn ws_unreadable_frames_get_40000_and_the_connection_keeps_working() {
    let app = spawn_app().await;
    let (alice, mut ws) = app.login_ws("alice").await;

    for garbage in ["not json", "{\"op_type\": 1,", "[1, 2, 3]", "42", "null"] {
        let reply = ws.request_raw(Frame::text(garbage)).await;
        reply.expect(BAD_FRAME);
        assert_eq!(
            reply.op_type, 0,
            "op_type 0 when the frame cannot be read: {garbage}"
        );
        assert!(reply.client_msg_id.is_null(), "{}", reply.raw);
        assert!(reply.data.is_null(), "{}", reply.raw);
    }

    let reply = ws
        .request(json!({"op_type": 99, "client_msg_id": "x-1"}))
        .await;
    reply.expect(BAD_FRAME);
    assert_eq!(reply.client_msg_id, "x-1");

    let reply = ws.request(json!({"to": alice.id, "content": "hi"})).await;
    reply.expect(BAD_FRAME);
    assert_eq!(reply.op_type, 0, "no op_type: {}", reply.raw);

    ws.send_to(&alice.id, "still here").await.expect(DELIVERED);
}

#[tokio::test]
async fn ws_missing_or_invalid_fields_get_40000_with_the_request_echoed() {
    let app = spawn_app().await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;

    let bad_frames = [
        // no recipient
        json!({"op_type": 1, "type": 1, "content": "hi", "client_msg_id": "m-1"}),
        // no content
        json!({"op_type": 1, "to": bob.id, "type": 1, "client_msg_id": "m-3"}),
        // a JSON number in `to` must be a positive integer
        json!({"op_type": 1, "to": -5, "type": 1, "content": "hi", "client_msg_id": "m-4"}),
        json!({"op_type": 1, "to": 1.5, "type": 1, "content": "hi", "client_msg_id": "m-5"}),
        // type must be an int in 1..=5
        json!({"op_type": 1, "to": bob.id, "type": "1", "content": "hi", "client_msg_id": "m-6"}),
        // mark read without a message id or position
        json!({"op_type": 4, "client_msg_id": "m-7"}),
        // delete without a message id
        json!({"op_type": 5, "client_msg_id": "m-8"}),
    ];
    for frame in bad_frames {
        let reply = ws.request(frame.clone()).await;
        reply.expect(BAD_FRAME);
        assert_eq!(
            reply.op_type, frame["op_type"],
            "op_type echoed for {frame}"
        );
        assert_eq!(reply.client_msg_id, frame["client_msg_id"], "{}", reply.raw);
    }

    // client_msg_id is 1-64 characters.
    for client_msg_id in [String::new(), "x".repeat(65)] {
        let reply = ws
            .request(json!({
                "op_type": 1, "to": bob.id, "type": 1, "content": "hi",
                "client_msg_id": client_msg_id
            }))
            .await;
        reply.expect(BAD_FRAME);
    }
    let reply = ws
        .send_to_with_id(&bob.id, "sixty-four", &"x".repeat(64))
        .await;
    assert_eq!(
        reply.code,
        crate::ws_client::STORED_OFFLINE,
        "{}",
        reply.raw
    );

    // None of the refused frames stored anything.
    let history = ws.history_of(&dm(&alice.id, &bob.id)).await;
    assert_eq!(history.len(), 1, "{history:?}");

    ws.send_to(&alice.id, "still here").await.expect(DELIVERED);
}

#[tokio::test]
async fn ws_the_server_answers_a_ping_with_a_pong() {
    let app = spawn_app().await;
    let (_alice, mut ws) = app.login_ws("alice").await;
    assert_eq!(ws.ping(b"are you there").await, b"are you there");
}

#[tokio::test]
async fn ws_a_frame_over_max_frame_bytes_closes_with_1009() {
    let app = spawn_app_with(|s| {
        s.ws.max_frame_bytes = 1024;
        s.messages.max_content_chars = nz!(100_000);
    })
    .await;
    let (alice, mut ws) = app.login_ws("alice").await;

    // Just under the limit is fine.
    ws.send_to(&alice.id, &"a".repeat(900))
        .await
        .expect(DELIVERED);

    ws.send_json(&json!({"op_type": 1, "to": alice.id, "type": 1, "content": "b".repeat(2000)}))
        .await;
    assert_eq!(
        ws.expect_closed(Duration::from_secs(10)).await,
        Ended::Close(Some(CLOSE_TOO_BIG))
    );
}

#[tokio::test]
async fn ws_logout_closes_that_sessions_socket_with_1008() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let alice_phone = app.log_in("alice").await;
    let mut laptop = app.connect_ws(&alice).await;
    let mut phone = app.connect_ws(&alice_phone).await;

    let resp = app.post(&alice.http, "/user/logout", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let ended = laptop.expect_closed(REVOCATION_WAIT).await;
    assert!(
        matches!(ended, Ended::Close(Some(CLOSE_POLICY)) | Ended::Dropped),
        "closed with 1008 (or at least closed): {ended:?}"
    );
    // The other session lives on, and the dead cookie cannot reconnect.
    phone
        .send_to(&alice.id, "phone still works")
        .await
        .expect(DELIVERED);
    let refused = app
        .try_connect_ws(Some(&alice.cookie), None)
        .await
        .err()
        .expect("a revoked session cannot connect");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ws_a_password_change_closes_the_other_sessions_sockets_with_1008() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let alice_phone = app.log_in("alice").await;
    let mut laptop = app.connect_ws(&alice).await;
    let mut phone = app.connect_ws(&alice_phone).await;

    let resp = app
        .post(
            &alice.http,
            "/user/set_password",
            &json!({"old_password": PASSWORD, "new_password": "another long password"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The phone's session is revoked ...
    let resp = app.me_with_cookie(&alice_phone.cookie).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the phone's session is revoked"
    );
    // ... so its socket closes too.
    let ended = phone.expect_closed(REVOCATION_WAIT).await;
    assert!(
        matches!(ended, Ended::Close(Some(CLOSE_POLICY)) | Ended::Dropped),
        "closed with 1008 (or at least closed): {ended:?}"
    );
    // The session that changed the password keeps its socket.
    laptop
        .send_to(&alice.id, "laptop still works")
        .await
        .expect(DELIVERED);
}

#[tokio::test]
async fn ws_a_send_without_type_is_40000() {
    let app = spawn_app().await;
    let (alice, mut ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;

    for op_type in [1, 6] {
        let to = if op_type == 1 {
            bob.id.clone()
        } else {
            String::new()
        };
        let reply = ws
            .request(
                json!({"op_type": op_type, "to": to, "content": "hi", "client_msg_id": "no-type"}),
            )
            .await;
        reply.expect(BAD_FRAME);
        assert_eq!(reply.client_msg_id, "no-type");
    }
    assert!(ws.history_of(&dm(&alice.id, &bob.id)).await.is_empty());
    assert!(ws.history_of("g:0").await.is_empty());
}
