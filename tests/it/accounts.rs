//! Registration and login.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, expect_error, json_of, new_client, spawn_app, spawn_app_with};

fn register_body(user_name: &str) -> Value {
    json!({"user_name": user_name, "password": PASSWORD, "nick_name": "  Alice A.  ", "email": "alice@example.com"})
}

#[tokio::test]
async fn register_returns_the_user_without_any_password_field() {
    let app = spawn_app().await;
    let resp = app
        .post(&app.client, "/user/register", &register_body("alice"))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let user = json_of(resp).await["user"].clone();
    let mut fields: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut expected = vec![
        "avatar",
        "created_at",
        "email",
        "id",
        "nick_name",
        "sex",
        "user_name",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected, "exactly the documented fields: {user}");
    assert!(
        user["id"].as_str().unwrap().parse::<u64>().is_ok(),
        "id is a numeric string"
    );
    assert_eq!(user["user_name"], "alice");
    assert_eq!(user["nick_name"], "Alice A.", "nick_name is trimmed");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["avatar"], "");
    assert_eq!(user["sex"], 0);
    let created_at = user["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && created_at.ends_with('Z'),
        "RFC 3339 UTC: {created_at}"
    );
}

#[tokio::test]
async fn email_is_optional() {
    let app = spawn_app().await;
    let resp = app.register("bob").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(json_of(resp).await["user"]["email"], Value::Null);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"user_name": "ab", "password": PASSWORD, "nick_name": "A"}),
            "user_name",
        ),
        (
            json!({"user_name": "a".repeat(33), "password": PASSWORD, "nick_name": "A"}),
            "user_name",
        ),
        (
            json!({"user_name": "bad name", "password": PASSWORD, "nick_name": "A"}),
            "user_name",
        ),
        (
            json!({"user_name": "alice", "password": "short", "nick_name": "A"}),
            "password",
        ),
        (
            json!({"user_name": "alice", "password": "p".repeat(73), "nick_name": "A"}),
            "password",
        ),
        (
            json!({"user_name": "alice", "password": PASSWORD, "nick_name": "   "}),
            "nick_name",
        ),
        (
            json!({"user_name": "alice", "password": PASSWORD, "nick_name": "n".repeat(33)}),
            "nick_name",
        ),
        (
            json!({"user_name": "alice", "password": PASSWORD, "nick_name": "A", "email": "not-an-email"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post(&app.client, "/user/register", &body).await;
        let err = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(err["field"], field, "for {body}");
    }
    // Nothing was stored by the failed attempts.
    let resp = app.register("alice").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_longest_password_bcrypt_can_use_is_accepted() {
    let app = spawn_app().await;
    let password = "p".repeat(72);
    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "carol", "password": password, "nick_name": "C"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = app.login_with(&app.client, "carol", &password).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_taken_user_name_or_email_is_a_409() {
    let app = spawn_app().await;
    let resp = app
        .post(&app.client, "/user/register", &register_body("alice"))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "ALICE", "password": PASSWORD, "nick_name": "x"}),
        )
        .await;
    let err = expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        err["field"], "user_name",
        "names are unique regardless of case"
    );

    let resp = app
        .post(
            &app.client,
            "/user/register",
            &json!({"user_name": "alice2", "password": PASSWORD, "nick_name": "x", "email": "Alice@Example.com"}),
        )
        .await;
    let err = expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(err["field"], "email");
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_exactly_one_account() {
    let app = spawn_app().await;
    let attempts = (0..8).map(|_| {
        let client = new_client();
        let url = app.url("/user/register");
        async move {
            client
                .post(url)
                .json(&json!({"user_name": "racer", "password": PASSWORD, "nick_name": "R"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 7), "{statuses:?}");
}

#[tokio::test]
async fn login_returns_the_user_and_sets_an_http_only_lax_cookie() {
    let app = spawn_app().await;
    app.register("dave").await;
    let resp = app.login_with(&app.client, "dave", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{}=", app.settings.session.cookie_name)))
        .expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert_eq!(json_of(resp).await["user"]["user_name"], "dave");

    let resp = app.get(&app.client, "/user/me").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json_of(resp).await["user"]["user_name"], "dave");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.register("erin").await;
    let wrong_password = app
        .login_with(&app.client, "erin", "not the password")
        .await;
    let wrong_password = expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown_user = app.login_with(&app.client, "nobody", PASSWORD).await;
    let unknown_user = expect_error(
        unknown_user,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong_password, unknown_user);
    let resp = app.get(&app.client, "/user/me").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_with_retry_after() {
    let app = spawn_app_with(|s| s.auth.login_per_ip_per_minute = nz!(3)).await;
    app.register("frank").await;
    for _ in 0..3 {
        let resp = app.login_with(&app.client, "frank", "wrong password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // The limit holds for correct credentials and for other clients from the same IP.
    let resp = app.login_with(&new_client(), "frank", PASSWORD).await;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "retry after {retry_after}s"
    );
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn register_is_rate_limited_per_ip() {
    let app = spawn_app_with(|s| s.auth.register_per_ip_per_minute = nz!(2)).await;
    assert_eq!(app.register("gina1").await.status(), StatusCode::CREATED);
    assert_eq!(app.register("gina2").await.status(), StatusCode::CREATED);
    let resp = app.register("gina3").await;
    assert!(resp.headers().contains_key("retry-after"));
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Logins have their own budget.
    let resp = app.login_with(&app.client, "gina1", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
