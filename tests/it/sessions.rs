//! Sessions: who is logged in, and how sessions end.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, expect_error, json_of, new_client, spawn_app};

#[tokio::test]
async fn me_needs_a_session() {
    let app = spawn_app().await;
    let resp = app.get(&app.client, "/user/me").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.me_with_cookie("chat_session=forged-value").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn logout_deletes_the_session() {
    let app = spawn_app().await;
    app.register("alice").await;
    let resp = app.login_with(&app.client, "alice", PASSWORD).await;
    let cookie = app.session_cookie(&resp);
    assert_eq!(app.me_with_cookie(&cookie).await.status(), StatusCode::OK);

    let resp = app.post(&app.client, "/user/logout", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Neither the client's jar nor a saved copy of the cookie works any more.
    expect_error(
        app.get(&app.client, "/user/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        app.me_with_cookie(&cookie).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Logging out again needs a session.
    let resp = app.post(&app.client, "/user/logout", &json!({})).await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn login_renews_the_session_key() {
    let app = spawn_app().await;
    app.register("bob").await;
    app.register("mallory").await;
    // A cookie the attacker holds (here: their own session) planted in the victim's browser.
    let resp = app.login_with(&app.client, "mallory", PASSWORD).await;
    let planted = app.session_cookie(&resp);
    // The victim logs in from that browser: a new key is issued ...
    let resp = app.login_with(&app.client, "bob", PASSWORD).await;
    let fresh = app.session_cookie(&resp);
    assert_ne!(planted, fresh);
    // ... and the planted one is dead, not bob's session.
    let resp = app.me_with_cookie(&planted).await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.me_with_cookie(&fresh).await;
    assert_eq!(json_of(resp).await["user"]["user_name"], "bob");
}

#[tokio::test]
async fn set_password_needs_a_session() {
    let app = spawn_app().await;
    let resp = app
        .post(
            &app.client,
            "/user/set_password",
            &json!({"old_password": PASSWORD, "new_password": "another password"}),
        )
        .await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_wrong_old_password_changes_nothing() {
    let app = spawn_app().await;
    let other_device = new_client();
    app.register_and_login(&app.client, "carol").await;
    app.login_with(&other_device, "carol", PASSWORD).await;

    let resp = app
        .post(
            &app.client,
            "/user/set_password",
            &json!({"old_password": "not it at all", "new_password": "another password"}),
        )
        .await;
    expect_error(resp, StatusCode::FORBIDDEN, "wrong_password").await;

    assert_eq!(
        app.get(&other_device, "/user/me").await.status(),
        StatusCode::OK,
        "other sessions live on"
    );
    assert_eq!(
        app.login_with(&new_client(), "carol", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_with(&new_client(), "carol", "another password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_too_short_new_password_is_named() {
    let app = spawn_app().await;
    app.register_and_login(&app.client, "dan").await;
    let resp = app
        .post(
            &app.client,
            "/user/set_password",
            &json!({"old_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    let err = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(err["field"], "new_password");
}

#[tokio::test]
async fn changing_the_password_revokes_every_other_session() {
    let app = spawn_app().await;
    let phone = new_client();
    let laptop = new_client();
    app.register_and_login(&app.client, "erin").await;
    let resp = app.login_with(&phone, "erin", PASSWORD).await;
    let phone_cookie = app.session_cookie(&resp);
    app.login_with(&laptop, "erin", PASSWORD).await;
    // Another user's session must not be touched.
    let bystander = new_client();
    app.register_and_login(&bystander, "frank").await;

    let resp = app
        .post(
            &app.client,
            "/user/set_password",
            &json!({"old_password": PASSWORD, "new_password": "a new password"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    assert_eq!(
        app.get(&app.client, "/user/me").await.status(),
        StatusCode::OK,
        "the current session stays"
    );
    expect_error(
        app.get(&phone, "/user/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        app.get(&laptop, "/user/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        app.me_with_cookie(&phone_cookie).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.get(&bystander, "/user/me").await.status(),
        StatusCode::OK
    );

    assert_eq!(
        app.login_with(&new_client(), "erin", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_with(&new_client(), "erin", "a new password")
            .await
            .status(),
        StatusCode::OK
    );
}
