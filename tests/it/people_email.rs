//! Email codes, verified registration and password reset (docs/people.md, "Email codes ...").
//! The test SMTP server stores every mail under var/test/mail/new/; each test uses its own
//! addresses, and fails when a mail it waits for does not arrive.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, expect_error, json_of, new_client, spawn_app, spawn_app_with};
use crate::people_support::{
    code_sent, json_with, log_in_with_password, mails_to, patch, read_code, read_mail,
    register_user, request_code, unique_email, wrong_code,
};
use crate::ws_client::{CLOSE_POLICY, Ended};

const NEW_PASSWORD: &str = "a brand new password";

fn registration(user_name: &str, email: &str, code: Option<&str>) -> Value {
    let mut body = json!({
        "user_name": user_name, "password": PASSWORD, "nick_name": user_name, "email": email
    });
    if let Some(code) = code {
        body["email_code"] = json!(code);
    }
    body
}

async fn reset(app: &crate::helpers::TestApp, email: &str, code: &str) -> reqwest::Response {
    app.post(
        &new_client(),
        "/user/reset_password",
        &json!({"email": email, "email_code": code, "new_password": NEW_PASSWORD}),
    )
    .await
}

/// A registration refused for its code: 400 `invalid_email_code`, field `email_code`.
async fn invalid_code(resp: reqwest::Response) {
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_email_code").await;
    assert_eq!(body["field"], "email_code", "{body}");
}

/// A password reset refused for its code: 400 `invalid_email_code`.
async fn invalid_reset(resp: reqwest::Response) {
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_email_code").await;
}

async fn login_status(
    app: &crate::helpers::TestApp,
    user_name: &str,
    password: &str,
) -> StatusCode {
    app.login_with(&new_client(), user_name, password)
        .await
        .status()
}

#[tokio::test]
async fn people_an_email_code_is_mailed_and_the_answer_is_202_whether_or_not_registered() {
    let app = spawn_app().await;
    let registered = unique_email("registered");
    register_user(&app, "alice", "Alice", Some(&registered)).await;
    let fresh = unique_email("fresh");
    let unknown = unique_email("unknown");
    let other = unique_email("other");

    code_sent(&app, &fresh, "register").await;
    code_sent(&app, &registered, "reset_password").await;
    // No account enumeration: the same answer for the other two combinations.
    code_sent(&app, &unknown, "reset_password").await;
    register_user(&app, "bob", "Bob", Some(&other)).await;
    code_sent(&app, &other, "register").await;

    for email in [&fresh, &registered] {
        let mail = read_mail(email).await;
        assert_eq!(
            mail.header("subject"),
            Some("Your chat-server code"),
            "{mail:?}"
        );
        let code = mail
            .code()
            .unwrap_or_else(|| panic!("a 6-digit code in {mail:?}"));
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        let from = mail.header("from").unwrap_or_default().to_ascii_lowercase();
        assert!(
            from.contains("no-reply@chat.localhost"),
            "sent from mail.from: {mail:?}"
        );
    }
}

#[tokio::test]
async fn people_a_new_code_within_the_resend_window_is_429_with_retry_after() {
    let app = spawn_app().await;
    let email = unique_email("resend");
    code_sent(&app, &email, "register").await;
    read_code(&email).await;

    // The window is per purpose: a register code never holds back a reset code.
    let resp = request_code(&app, &email, "reset_password").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    for purpose in ["register", "reset_password"] {
        let resp = request_code(&app, &email, purpose).await;
        let retry_after: u64 = resp
            .headers()
            .get("retry-after")
            .unwrap_or_else(|| panic!("a Retry-After header ({purpose})"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "retry after {retry_after}");
        expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
    // (No reset mail goes to an unregistered address.)
    assert_eq!(mails_to(&email).len(), 1, "no second mail");
    // Other addresses are not held back.
    let other = unique_email("other");
    code_sent(&app, &other, "register").await;
}

#[tokio::test]
async fn people_an_invalid_email_or_purpose_is_400() {
    let app = spawn_app().await;
    let email = unique_email("valid");
    let cases = [
        json!({"email": "not-an-email", "purpose": "register"}),
        json!({"email": "", "purpose": "register"}),
        json!({"email": email, "purpose": "login"}),
        json!({"email": email, "purpose": ""}),
        json!({"email": email}),
    ];
    for body in cases {
        let resp = app.post(&new_client(), "/user/email_code", &body).await;
        let status = resp.status();
        let err = json_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err["code"].is_string(), "{body}: {err}");
    }
    // Nothing was sent, so a valid request for that email still goes out at once.
    code_sent(&app, &email, "register").await;
}

#[tokio::test]
async fn people_verified_registration_needs_the_right_code_once() {
    let app = spawn_app_with(|s| s.mail.require_email_verification = true).await;
    let email = unique_email("verify");

    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &email, None),
        )
        .await;
    invalid_code(resp).await;

    code_sent(&app, &email, "register").await;
    let code = read_code(&email).await;
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &email, Some(&wrong_code(&code))),
        )
        .await;
    invalid_code(resp).await;
    // A code for another address does not do either.
    let other = unique_email("other");
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &other, Some(&code)),
        )
        .await;
    invalid_code(resp).await;

    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &email, Some(&code)),
        )
        .await;
    let user = json_with(resp, StatusCode::CREATED).await["user"].clone();
    assert_eq!(user["email"], email.as_str());

    // Free the address again: the used code is gone all the same.
    let alice = app.log_in("alice").await;
    let resp = patch(&app, &alice.http, "/user/me", &json!({"email": null})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice2", &email, Some(&code)),
        )
        .await;
    invalid_code(resp).await;
}

#[tokio::test]
async fn people_a_given_code_is_checked_even_when_verification_is_optional() {
    let app = spawn_app().await;
    assert!(!app.settings.mail.require_email_verification, "the default");
    let email = unique_email("optional");
    code_sent(&app, &email, "register").await;
    let code = read_code(&email).await;

    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &email, Some(&wrong_code(&code))),
        )
        .await;
    invalid_code(resp).await;
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("alice", &email, Some(&code)),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // Without a code, registering with an email needs none.
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &registration("bob", &unique_email("bob"), None),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn people_reset_password_with_the_right_code_revokes_every_session() {
    let app = spawn_app().await;
    let email = unique_email("reset");
    register_user(&app, "alice", "Alice", Some(&email)).await;
    let phone = log_in_with_password(&app, "alice", PASSWORD, "phone").await;
    let laptop = log_in_with_password(&app, "alice", PASSWORD, "laptop").await;
    let mut phone_ws = app.connect_ws(&phone).await;
    let bob = app.chatter("bob").await;

    code_sent(&app, &email, "reset_password").await;
    let code = read_code(&email).await;
    let resp = reset(&app, &email, &code).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", json_of(resp).await);

    let ended = phone_ws.expect_closed(Duration::from_secs(3)).await;
    assert!(
        matches!(ended, Ended::Close(Some(CLOSE_POLICY)) | Ended::Dropped),
        "the live socket is closed: {ended:?}"
    );
    for cookie in [&phone.cookie, &laptop.cookie] {
        let resp = app.me_with_cookie(cookie).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    assert_eq!(
        app.me_with_cookie(&bob.cookie).await.status(),
        StatusCode::OK,
        "other users keep their sessions"
    );
    assert_eq!(
        login_status(&app, "alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "alice", NEW_PASSWORD).await,
        StatusCode::OK
    );

    // The code is used up.
    invalid_reset(reset(&app, &email, &code).await).await;
}

#[tokio::test]
async fn people_reset_password_with_a_wrong_code_changes_nothing() {
    let app = spawn_app().await;
    let email = unique_email("wrong");
    register_user(&app, "alice", "Alice", Some(&email)).await;
    let alice = app.log_in("alice").await;

    code_sent(&app, &email, "reset_password").await;
    let code = read_code(&email).await;
    invalid_reset(reset(&app, &email, &wrong_code(&code)).await).await;
    // A code for an address nobody has.
    let nobody = unique_email("nobody");
    invalid_reset(reset(&app, &nobody, &code).await).await;

    assert_eq!(
        app.me_with_cookie(&alice.cookie).await.status(),
        StatusCode::OK
    );
    assert_eq!(login_status(&app, "alice", PASSWORD).await, StatusCode::OK);
    assert_eq!(
        login_status(&app, "alice", NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    // The code still works after one wrong try.
    assert_eq!(reset(&app, &email, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn people_five_wrong_tries_use_up_a_code() {
    let app = spawn_app().await;
    assert_eq!(app.settings.mail.code_max_attempts, nz!(5), "the default");
    let email = unique_email("attempts");
    register_user(&app, "alice", "Alice", Some(&email)).await;
    code_sent(&app, &email, "reset_password").await;
    let code = read_code(&email).await;

    let wrong = wrong_code(&code);
    for _ in 0..5 {
        invalid_reset(reset(&app, &email, &wrong).await).await;
    }
    invalid_reset(reset(&app, &email, &code).await).await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, StatusCode::OK);
    assert_eq!(
        login_status(&app, "alice", NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn people_a_code_expires_after_its_ttl() {
    let app = spawn_app_with(|s| s.mail.code_ttl_secs = nz!(1)).await;
    let email = unique_email("expiry");
    register_user(&app, "alice", "Alice", Some(&email)).await;
    code_sent(&app, &email, "reset_password").await;
    let code = read_code(&email).await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    invalid_reset(reset(&app, &email, &code).await).await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, StatusCode::OK);
}
