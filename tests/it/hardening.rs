//! Abuse cases around relations and codes: blocks reach into groups, ignored requests stay
//! quiet, and slow guessing with fresh email codes runs out.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_error, spawn_app, spawn_app_with};
use crate::people_support::{
    decide, json_with, new_request, read_code, send_request, unique_email, wrong_code,
};

#[tokio::test]
async fn a_blocked_user_cannot_pull_the_blocker_into_a_group() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let resp = app
        .post(&bob.http, "/blocks", &json!({ "user_id": alice.id }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let group = app.create_group(&alice, "trap").await;
    let resp = app
        .post(
            &alice.http,
            &format!("/groups/{group}/members"),
            &json!({ "user_id": bob.id }),
        )
        .await;
    expect_error(resp, StatusCode::FORBIDDEN, "blocked").await;
}

#[tokio::test]
async fn asking_again_after_being_ignored_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let request = new_request(&app, &alice, &bob).await;
    let id = request["id"].as_str().unwrap().to_owned();
    json_with(decide(&app, &bob, &id, "ignore").await, StatusCode::OK).await;

    let again = json_with(send_request(&app, &alice, &bob.id).await, StatusCode::OK).await;
    assert_eq!(again["request"]["id"], id.as_str());
    assert_eq!(again["request"]["status"], "pending");
}

#[tokio::test]
async fn wrong_codes_for_one_email_run_out_across_fresh_codes() {
    let app = spawn_app_with(|s| {
        s.mail.code_max_failures_per_day = nz!(2);
        s.mail.code_resend_secs = nz!(1);
    })
    .await;
    let email = unique_email("guess");
    app.post(
        &app.client,
        "/user/email_code",
        &json!({ "email": email, "purpose": "register" }),
    )
    .await;
    let code = read_code(&email).await;
    for _ in 0..2 {
        let resp = app
            .post(
                &app.client,
                "/user/register",
                &json!({"user_name": "guesser", "password": "correct horse", "nick_name": "G",
                        "email": email, "email_code": wrong_code(&code)}),
            )
            .await;
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_email_code").await;
    }
    // The day's failures are used up: even the right code is refused now.
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "guesser", "password": "correct horse", "nick_name": "G",
                    "email": email, "email_code": code}),
        )
        .await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_email_code").await;
}

#[tokio::test]
async fn a_register_code_does_not_hold_back_a_reset_code() {
    let app = spawn_app().await;
    let email = unique_email("both");
    for purpose in ["register", "reset_password"] {
        let resp = app
            .post(
                &app.client,
                "/user/email_code",
                &json!({ "email": email, "purpose": purpose }),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{purpose}");
    }
}
