//! Who may download an upload (the uploader, and whoever may read a conversation with a
//! message carrying it, until that message is recalled), and the typed messages that carry
//! uploads and places over ops 1 and 6.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::files_support::{
    binary, download, file_id, png, send_file_to, send_file_to_group, upload_ok,
};
use crate::groups_support::{kick, leave};
use crate::helpers::{TestApp, expect_error, json_of, new_client, spawn_app, spawn_app_with};
use crate::ws_client::{BAD_FRAME, Chatter, DELIVERED, NOT_FOUND, OK, dm, group_conv};

async fn may_download(app: &TestApp, who: &Chatter, id: &str) -> bool {
    let resp = download(app, &who.http, id, None).await;
    match resp.status() {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => {
            expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
            false
        }
        other => panic!("download answered {other}"),
    }
}

async fn thumbnail_status(app: &TestApp, who: &Chatter, id: &str) -> StatusCode {
    who.http
        .get(app.url(&format!("/files/{id}/thumbnail")))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn files_access_follows_the_conversation_in_a_direct_chat_until_a_recall() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    let id = file_id(&upload_ok(&app, &alice, png(64, 64), "p.png").await);

    assert!(may_download(&app, &alice, &id).await, "the uploader");
    assert!(!may_download(&app, &bob, &id).await, "not sent yet");
    let anonymous = new_client();
    let resp = download(&app, &anonymous, &id, None).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = download(&app, &anonymous, "ffffffffffffffffffffffff", None).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = download(&app, &alice.http, "not-an-id", None).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    let mut alice_ws = app.connect_ws(&alice).await;
    let sent = send_file_to(&mut alice_ws, &bob.id, 2, &id).await;
    sent.expect(crate::ws_client::STORED_OFFLINE);
    assert!(may_download(&app, &bob, &id).await, "the other participant");
    assert_eq!(thumbnail_status(&app, &bob, &id).await, StatusCode::OK);
    assert!(!may_download(&app, &carol, &id).await, "a stranger");
    assert_eq!(
        thumbnail_status(&app, &carol, &id).await,
        StatusCode::NOT_FOUND
    );

    alice_ws.recall(&sent.message().id).await.expect(OK);
    assert!(
        !may_download(&app, &bob, &id).await,
        "recalled for all: gone for bob"
    );
    assert_eq!(
        thumbnail_status(&app, &bob, &id).await,
        StatusCode::NOT_FOUND
    );
    assert!(
        may_download(&app, &alice, &id).await,
        "still the uploader's"
    );
    // Deleted for oneself only: access stays.
    let id2 = file_id(&upload_ok(&app, &alice, binary(30), "b.bin").await);
    let sent = send_file_to(&mut alice_ws, &bob.id, 6, &id2).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    bob_ws.delete_for_me(&sent.message().id).await.expect(OK);
    assert!(may_download(&app, &bob, &id2).await);
}

#[tokio::test]
async fn files_access_ends_for_ex_members_of_a_group() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let leaver = app.chatter("leaver").await;
    let kicked = app.chatter("kicked").await;
    let outsider = app.chatter("outsider").await;
    let group = app.group_with(&owner, "photos", &[&leaver, &kicked]).await;
    let id = file_id(&upload_ok(&app, &owner, png(32, 32), "g.png").await);
    let mut ws = app.connect_ws(&owner).await;
    send_file_to_group(&mut ws, &group, 2, &id).await.expect(OK);

    for member in [&leaver, &kicked] {
        assert!(
            may_download(&app, member, &id).await,
            "{} is a member",
            member.name
        );
    }
    assert!(!may_download(&app, &outsider, &id).await);
    assert_eq!(leave(&app, &leaver, &group).await.status(), StatusCode::OK);
    assert!(!may_download(&app, &leaver, &id).await, "left: no more");
    assert_eq!(
        kick(&app, &owner, &group, &kicked.id).await.status(),
        StatusCode::OK
    );
    assert!(!may_download(&app, &kicked, &id).await, "kicked: no more");
    assert!(may_download(&app, &owner, &id).await);
}

#[tokio::test]
async fn files_typed_messages_carry_their_attachment_everywhere() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let file = upload_ok(&app, &alice, png(640, 320), "wide.png").await;
    let id = file_id(&file);
    let mut alice_ws = app.connect_ws(&alice).await;
    let mut bob_ws = app.connect_ws(&bob).await;

    let reply = alice_ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 2, "attachment": { "file_id": id },
            "client_msg_id": "img-1"
        }))
        .await;
    reply.expect(DELIVERED);
    let expected = json!({
        "file_id": id, "mime": "image/png", "size": file["size"], "name": "wide.png",
        "width": 640, "height": 320, "duration_ms": null,
        "thumbnail": format!("/files/{id}/thumbnail"),
    });
    assert_eq!(reply.data["attachment"], expected, "{}", reply.raw);
    assert_eq!(reply.data["location"], Value::Null);
    assert_eq!(reply.data["content"], "");
    assert_eq!(reply.data["type"], 2);
    let event = bob_ws.next_event("message").await;
    assert_eq!(event["attachment"], expected, "the event: {event}");

    // A retry with the same client_msg_id is the same message.
    let again = alice_ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 2, "attachment": { "file_id": id },
            "client_msg_id": "img-1"
        }))
        .await;
    assert_eq!(again.data["id"], reply.data["id"]);

    let history = bob_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    assert_eq!(history.data["messages"][0]["attachment"], expected);
    let unread = bob_ws
        .request(json!({"op_type": 3, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    assert_eq!(
        unread.data["messages"][0]["attachment"], expected,
        "{}",
        unread.raw
    );
    let resumed = bob_ws
        .request(json!({"op_type": 7, "since": { dm(&alice.id, &bob.id): 0 }}))
        .await;
    assert_eq!(
        resumed.data["messages"][0]["attachment"], expected,
        "{}",
        resumed.raw
    );
    let list = json_of(app.get(&bob.http, "/conversations").await).await;
    let item = &list["conversations"][0];
    assert_eq!(item["preview"], "[image]", "{item}");
    assert_eq!(item["last_message"]["attachment"], expected);

    // A caption, a voice message with its length, a file of any type.
    let voice = file_id(
        &upload_ok(
            &app,
            &alice,
            b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec(),
            "v.ogg",
        )
        .await,
    );
    let reply = alice_ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 3, "content": "listen",
            "attachment": { "file_id": voice, "duration_ms": 4200 }
        }))
        .await;
    reply.expect(DELIVERED);
    assert_eq!(reply.data["attachment"]["mime"], "audio/ogg");
    assert_eq!(reply.data["attachment"]["duration_ms"], 4200);
    assert_eq!(reply.data["content"], "listen");
    let list = json_of(app.get(&bob.http, "/conversations").await).await;
    assert_eq!(list["conversations"][0]["preview"], "listen");
    send_file_to(&mut alice_ws, &bob.id, 6, &id)
        .await
        .expect(DELIVERED);
}

#[tokio::test]
async fn files_a_message_may_carry_only_the_senders_own_upload_of_a_fitting_type() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let bobs = file_id(&upload_ok(&app, &bob, png(8, 8), "bobs.png").await);
    let image = file_id(&upload_ok(&app, &alice, png(8, 8), "a.png").await);
    let text = file_id(&upload_ok(&app, &alice, b"just words".to_vec(), "a.txt").await);
    let mut ws = app.connect_ws(&alice).await;

    let reply = send_file_to(&mut ws, &bob.id, 2, &bobs).await;
    reply.expect(NOT_FOUND);
    let reply = send_file_to(&mut ws, &bob.id, 2, "ffffffffffffffffffffffff").await;
    reply.expect(NOT_FOUND);
    for (kind, file) in [(3, &image), (4, &image), (2, &text)] {
        let reply = send_file_to(&mut ws, &bob.id, kind, file).await;
        reply.expect(BAD_FRAME);
        assert_eq!(reply.data["field"], "attachment", "{}", reply.raw);
    }
    let reply = ws
        .request(json!({"op_type": 1, "to": bob.id, "type": 2, "content": "no file"}))
        .await;
    reply.expect(BAD_FRAME);
    assert_eq!(reply.data["field"], "attachment");
    let reply = ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 1, "content": "x",
            "attachment": { "file_id": image }
        }))
        .await;
    reply.expect(BAD_FRAME);
    let reply = ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 2,
            "attachment": { "file_id": image, "duration_ms": 10 }
        }))
        .await;
    assert_eq!(reply.data["field"], "attachment.duration_ms");
    // Nothing of these was stored.
    assert!(ws.history_of(&dm(&alice.id, &bob.id)).await.is_empty());
}

#[tokio::test]
async fn files_locations_are_checked_and_carried() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let group = app.group_with(&alice, "trip", &[&bob]).await;
    let mut ws = app.connect_ws(&alice).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let reply = ws
        .request(json!({
            "op_type": 6, "to": group, "type": 5,
            "location": { "lat": 52.5163, "lon": 13.3777, "address": "Pariser Platz" }
        }))
        .await;
    reply.expect(OK);
    let place = json!({ "lat": 52.5163, "lon": 13.3777, "address": "Pariser Platz" });
    assert_eq!(reply.data["location"], place, "{}", reply.raw);
    assert_eq!(reply.data["attachment"], Value::Null);
    let event = loop {
        let event = bob_ws.next_event("message").await;
        if event["type"] == 5 {
            break event;
        }
    };
    assert_eq!(event["location"], place);
    let history = bob_ws
        .request(json!({"op_type": 2, "conversation": group_conv(&group)}))
        .await;
    let stored: Vec<&Value> = history.data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == 5)
        .collect();
    assert_eq!(stored[0]["location"], place);
    let list = json_of(app.get(&bob.http, "/conversations").await).await;
    let item = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == group_conv(&group))
        .unwrap()
        .clone();
    assert_eq!(item["preview"], "[location]");

    for (location, field) in [
        (json!({ "lat": 90.01, "lon": 0 }), "location.lat"),
        (json!({ "lat": 0, "lon": 180.5 }), "location.lon"),
        (json!({ "lat": "1", "lon": 0 }), "location.lat"),
        (
            json!({ "lat": 1, "lon": 1, "address": "x".repeat(201) }),
            "location.address",
        ),
        (json!("52,13"), "location"),
    ] {
        let reply = ws
            .request(json!({"op_type": 6, "to": group, "type": 5, "location": location}))
            .await;
        reply.expect(BAD_FRAME);
        assert_eq!(reply.data["field"], field, "{}", reply.raw);
    }
}

#[tokio::test]
async fn files_the_duplicate_rule_counts_the_same_file_sent_again() {
    let app = spawn_app_with(|s| s.antispam.duplicate_limit = nz!(2)).await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let bytes = png(16, 16);
    // Two uploads of the same bytes are the same file to the rule (its sha256).
    let first = file_id(&upload_ok(&app, &alice, bytes.clone(), "a.png").await);
    let second = file_id(&upload_ok(&app, &alice, bytes, "b.png").await);
    let mut ws = app.connect_ws(&alice).await;
    send_file_to(&mut ws, &bob.id, 2, &first)
        .await
        .expect(crate::ws_client::STORED_OFFLINE);
    send_file_to(&mut ws, &bob.id, 2, &second)
        .await
        .expect(crate::ws_client::STORED_OFFLINE);
    let refused = send_file_to(&mut ws, &bob.id, 2, &first).await;
    refused.expect(50006);
    assert_eq!(refused.data["rule"], "duplicate", "{}", refused.raw);
    // Another file passes.
    let other = file_id(&upload_ok(&app, &alice, png(17, 16), "c.png").await);
    send_file_to(&mut ws, &bob.id, 2, &other)
        .await
        .expect(crate::ws_client::STORED_OFFLINE);
}

#[tokio::test]
async fn files_a_file_sent_often_elsewhere_still_downloads_for_a_later_recipient() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let member = app.chatter("member").await;
    let bob = app.chatter("bob").await;
    let group = app.group_with(&alice, "stickers", &[&member]).await;
    let id = file_id(&upload_ok(&app, &alice, png(12, 12), "sticker.png").await);
    let mut ws = app.connect_ws(&alice).await;
    for _ in 0..25 {
        send_file_to_group(&mut ws, &group, 2, &id).await.expect(OK);
    }
    assert!(!may_download(&app, &bob, &id).await, "not in the group");
    send_file_to(&mut ws, &bob.id, 2, &id).await;
    assert!(may_download(&app, &bob, &id).await, "sent to bob too");
}

#[tokio::test]
async fn files_a_voice_recording_in_a_webm_or_mp4_container_is_a_voice_message() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    // What a browser's MediaRecorder and a phone write: sniffed as video containers.
    let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02".to_vec();
    let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    let mut ws = app.connect_ws(&alice).await;
    for (bytes, name) in [(webm, "voice.webm"), (mp4, "voice.m4a")] {
        let file = upload_ok(&app, &alice, bytes, name).await;
        assert!(
            file["mime"].as_str().unwrap().starts_with("video/"),
            "{file}"
        );
        let reply = ws
            .request(json!({
                "op_type": 1, "to": bob.id, "type": 3,
                "attachment": { "file_id": file_id(&file), "duration_ms": 2500 }
            }))
            .await;
        reply.expect(crate::ws_client::STORED_OFFLINE);
        assert_eq!(reply.data["attachment"]["duration_ms"], 2500);
    }
}
