//! Every error leaves as `{"code","message"}`, whoever produced it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_error, spawn_app};

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let resp = app.get(&app.client, "/no/such/route").await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let app = spawn_app().await;
    let resp = app.get(&app.client, "/user/login").await;
    expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let resp = app.post(&app.client, "/user/me", &json!({})).await;
    expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/user/register"))
        .header("content-type", "application/json")
        .body("{\"user_name\": ")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_json").await;
}

#[tokio::test]
async fn a_non_json_or_missing_content_type_is_a_415() {
    let app = spawn_app().await;
    let body = r#"{"user_name":"alice","password":"correct horse"}"#;
    let resp = app
        .client
        .post(app.url("/user/login"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let resp = app
        .client
        .post(app.url("/user/login"))
        .body(body)
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = spawn_app().await;
    let huge = "x".repeat(app.settings.server.max_body_bytes + 1);
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "alice", "password": huge, "nick_name": "A"}),
        )
        .await;
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_named() {
    let app = spawn_app().await;
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": 42, "password": "correct horse", "nick_name": "A"}),
        )
        .await;
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(body["field"], "user_name");
}

#[tokio::test]
async fn a_missing_field_is_named() {
    let app = spawn_app().await;
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "alice", "password": "correct horse"}),
        )
        .await;
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(body["field"], "nick_name");
}
