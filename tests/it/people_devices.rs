//! Devices (docs/people.md, "Devices"): every login is one, and deleting one revokes it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{expect_error, spawn_app};
use crate::people_support::{
    assert_rfc3339, delete, get_list, items, json_with, log_in_with_agent,
};
use crate::ws_client::{CLOSE_POLICY, Ended};

const PHONE: &str = "ChatPhone/1.0 (Android 15)";
const LAPTOP: &str = "ChatDesktop/2.3 (Linux x86_64)";

fn device_id(device: &Value) -> String {
    device["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| device["id"].as_u64().map(|n| n.to_string()))
        .unwrap_or_else(|| panic!("a device id: {device}"))
}

/// An id shaped like `id` that no device has.
fn unknown_like(id: &str) -> String {
    if id.bytes().all(|b| b.is_ascii_digit()) {
        "987654321".to_owned()
    } else {
        id.chars()
            .map(|c| if c.is_ascii_alphanumeric() { 'f' } else { c })
            .collect()
    }
}

#[tokio::test]
async fn people_every_login_is_a_device_and_current_marks_the_callers() {
    let app = spawn_app().await;
    app.register("alice").await;
    let phone = log_in_with_agent(&app, "alice", PHONE).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let laptop = log_in_with_agent(&app, "alice", LAPTOP).await;
    let bob = app.chatter("bob").await;

    let body = json_with(app.get(&laptop.http, "/user/devices").await, StatusCode::OK).await;
    let devices = items(&body, "devices");
    assert_eq!(devices.len(), 2, "two logins, two devices: {body}");
    assert_eq!(body["total"], 2, "{body}");
    for device in &devices {
        let mut fields: Vec<&str> = device
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            vec![
                "created_at",
                "current",
                "id",
                "ip",
                "last_seen",
                "user_agent"
            ],
            "{device}"
        );
        assert_rfc3339(&device["created_at"], "created_at");
        assert_rfc3339(&device["last_seen"], "last_seen");
        assert_eq!(device["ip"], "127.0.0.1", "{device}");
    }
    assert_eq!(devices[0]["user_agent"], LAPTOP, "newest first: {body}");
    assert_eq!(devices[0]["current"], true, "{body}");
    assert_eq!(devices[1]["user_agent"], PHONE, "{body}");
    assert_eq!(devices[1]["current"], false, "{body}");
    assert_ne!(device_id(&devices[0]), device_id(&devices[1]));

    // The same devices seen from the phone: only the flag moves.
    let from_phone = get_list(&app, &phone.http, "/user/devices", "devices").await;
    assert_eq!(from_phone.len(), 2);
    for device in &from_phone {
        assert_eq!(
            device["current"],
            device["user_agent"] == PHONE,
            "current is the caller's own session: {device}"
        );
    }
    // Bob only has his own.
    let bobs = get_list(&app, &bob.http, "/user/devices", "devices").await;
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0]["current"], true);
}

#[tokio::test]
async fn people_deleting_a_device_revokes_its_session_and_closes_its_sockets() {
    let app = spawn_app().await;
    app.register("alice").await;
    let phone = log_in_with_agent(&app, "alice", PHONE).await;
    let laptop = log_in_with_agent(&app, "alice", LAPTOP).await;
    let mut phone_ws = app.connect_ws(&phone).await;
    let mut laptop_ws = app.connect_ws(&laptop).await;

    let devices = get_list(&app, &laptop.http, "/user/devices", "devices").await;
    let phone_device = devices
        .iter()
        .find(|d| d["user_agent"] == PHONE)
        .unwrap_or_else(|| panic!("the phone is a device: {devices:?}"));
    assert_eq!(phone_device["current"], false);

    let resp = delete(
        &app,
        &laptop.http,
        &format!("/user/devices/{}", device_id(phone_device)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let ended = phone_ws.expect_closed(Duration::from_secs(3)).await;
    assert!(
        matches!(ended, Ended::Close(Some(CLOSE_POLICY)) | Ended::Dropped),
        "the phone's socket is closed with 1008: {ended:?}"
    );
    let resp = app.me_with_cookie(&phone.cookie).await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.get(&phone.http, "/user/devices").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // The current session carries on.
    assert_eq!(
        app.me_with_cookie(&laptop.cookie).await.status(),
        StatusCode::OK
    );
    assert_eq!(laptop_ws.ping(b"still here").await, b"still here");
    let left = get_list(&app, &laptop.http, "/user/devices", "devices").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["user_agent"], LAPTOP);
    assert_eq!(left[0]["current"], true);
}

#[tokio::test]
async fn people_unknown_and_foreign_device_ids_are_404() {
    let app = spawn_app().await;
    app.register("alice").await;
    let alice = log_in_with_agent(&app, "alice", LAPTOP).await;
    app.register("bob").await;
    let bob = log_in_with_agent(&app, "bob", PHONE).await;

    let bobs = get_list(&app, &bob.http, "/user/devices", "devices").await;
    let bob_device = device_id(&bobs[0]);
    let resp = delete(&app, &alice.http, &format!("/user/devices/{bob_device}")).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.me_with_cookie(&bob.cookie).await.status(),
        StatusCode::OK,
        "bob's session is untouched"
    );

    let alices = get_list(&app, &alice.http, "/user/devices", "devices").await;
    let unknown = unknown_like(&device_id(&alices[0]));
    assert!(
        unknown != device_id(&alices[0]) && unknown != bob_device,
        "{unknown}"
    );
    let resp = delete(&app, &alice.http, &format!("/user/devices/{unknown}")).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.me_with_cookie(&alice.cookie).await.status(),
        StatusCode::OK
    );
}
