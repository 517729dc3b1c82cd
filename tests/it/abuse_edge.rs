//! Regression tests of docs/reliability.md's attack table: see the tests below.
//! At the edge: user search and email lookups that cannot scan or harvest, friend-request
//! floods, requests forged by another site's page, `/metrics` and presence exposure.

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Row};

use crate::groups_support::{group_in_mode, join, leave, member_entry, member_list};
use crate::helpers::{TestApp, expect_error, json_of, new_client, spawn_app, spawn_app_with};
use crate::people_support::{
    enc, eventually, expect_validation, get_list, json_with, make_friends, profile, register_user,
    send_request,
};
use crate::ws_client::Chatter;

/// Asserts 429 `rate_limited` naming `rule`, with a positive `retry_after` (body and header).
async fn expect_rule_limited(resp: Response, rule: &str) -> Value {
    let header = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["rule"], rule, "{body}");
    let retry_after = body["retry_after"].as_u64().expect("retry_after");
    assert!(retry_after >= 1, "{body}");
    assert_eq!(header, Some(retry_after), "Retry-After header of {body}");
    body
}

// ---- item 6: user search and email lookups ----------------------------------------------------

#[tokio::test]
async fn user_search_needs_two_chars() {
    let app = spawn_app().await;
    register_user(&app, "alice", "Alice", None).await;
    let bob = app.chatter("bob").await;

    for q in ["a", " a ", "%", "é"] {
        expect_validation(
            app.get(&bob.http, &format!("/users?q={}", enc(q))).await,
            "q",
        )
        .await;
    }
    let found = get_list(&app, &bob.http, "/users?q=al", "users").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["user_name"], "alice");
}

#[tokio::test]
async fn user_search_is_bounded() {
    const MAX: u32 = 4;
    let app = spawn_app_with(|s| s.people.search_max_results = nz!(MAX)).await;
    for n in 0..7 {
        register_user(&app, &format!("bulk{n}"), &format!("Bulk {n}"), None).await;
    }
    // Nick name prefixes match too; a match inside a name does not.
    register_user(&app, "zoe", "Bulky", None).await;
    register_user(&app, "abulk", "A", None).await;
    let searcher = app.chatter("searcher").await;

    let body = json_with(
        app.get(&searcher.http, "/users?q=BULK&limit=100").await,
        StatusCode::OK,
    )
    .await;
    let users = body["users"].as_array().expect("users");
    assert_eq!(users.len(), MAX as usize, "{body}");
    assert_eq!(
        body["total"], MAX,
        "the count stops at the bound too: {body}"
    );
    assert_eq!(body["has_more"], false, "{body}");
    let found = get_list(&app, &searcher.http, "/users?q=bulky", "users").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["user_name"], "zoe");
    assert!(
        get_list(&app, &searcher.http, "/users?q=ulk", "users")
            .await
            .is_empty(),
        "no infix match"
    );

    // Both halves of the search are index range scans, never a table scan.
    let mut conn = sqlx::MySqlConnection::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.mysql.url,
    ))
    .await
    .expect("the test database");
    let plan = sqlx::query(&format!("EXPLAIN {}", chat_server::store::USER_SEARCH_SQL))
        .bind("bulk%")
        .bind(MAX)
        .bind("bulk%")
        .bind(MAX)
        .bind(MAX)
        .fetch_all(&mut conn)
        .await
        .expect("EXPLAIN the search");
    let scans: Vec<(String, String)> = plan
        .iter()
        .filter(|row| text(row, "table").as_deref() == Some("users"))
        .map(|row| {
            (
                text(row, "type").unwrap_or_default(),
                text(row, "key").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        scans,
        vec![
            ("range".to_owned(), "uq_users_user_name".to_owned()),
            ("range".to_owned(), "ix_users_nick_name".to_owned()),
        ],
        "the plan reads users by index ranges only"
    );
}

/// A text column of an `EXPLAIN` row (MariaDB sends some of them as binary strings).
fn text(row: &sqlx::mysql::MySqlRow, column: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(column)
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<Vec<u8>>, _>(column)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
}

#[tokio::test]
async fn email_lookup_is_rate_limited() {
    const LIMIT: u64 = 3;
    let app = spawn_app_with(|s| s.people.email_lookups_per_hour = nz!(LIMIT)).await;
    register_user(&app, "alice", "Alice", Some("alice@example.com")).await;
    let harvester = app.chatter("harvester").await;
    let other = app.chatter("other").await;
    let lookup = |email: &str| format!("/users?email={}", enc(email));

    for n in 0..LIMIT {
        let found = get_list(
            &app,
            &harvester.http,
            &lookup(&format!("guess{n}@example.com")),
            "users",
        )
        .await;
        assert!(found.is_empty(), "{found:?}");
    }
    let refused = expect_rule_limited(
        app.get(&harvester.http, &lookup("alice@example.com")).await,
        "email_lookups",
    )
    .await;
    assert!(
        refused["retry_after"].as_u64().unwrap() <= 3600,
        "{refused}"
    );
    // The limit is the caller's: someone else still finds the address.
    let found = get_list(&app, &other.http, &lookup("alice@example.com"), "users").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["user_name"], "alice");
}

// ---- item 9: friend requests ------------------------------------------------------------------

async fn request_with(app: &TestApp, from: &Chatter, to: &Chatter, message: &str) -> Response {
    app.post(
        &from.http,
        "/friends/requests",
        &json!({"user_id": to.id, "message": message}),
    )
    .await
}

async fn incoming_requests(app: &TestApp, who: &Chatter) -> Vec<Value> {
    get_list(app, &who.http, "/friends/requests", "requests").await
}

#[tokio::test]
async fn friend_request_flood_is_throttled() {
    const LIMIT: u64 = 3;
    let app = spawn_app_with(|s| s.antispam.friend_requests_limit = nz!(LIMIT)).await;
    let spammer = app.chatter("spammer").await;
    let mut targets = Vec::new();
    for n in 0..=LIMIT {
        targets.push(app.chatter(&format!("target{n}")).await);
    }

    for target in &targets[..LIMIT as usize] {
        let resp = send_request(&app, &spammer, &target.id).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{}",
            json_of(resp).await
        );
    }
    let last = &targets[LIMIT as usize];
    expect_rule_limited(
        send_request(&app, &spammer, &last.id).await,
        "friend_requests",
    )
    .await;
    assert!(
        incoming_requests(&app, last).await.is_empty(),
        "a refused request is not stored"
    );
    // The limit is the sender's: another user still asks the same person.
    let resp = send_request(&app, &targets[0], &last.id).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn duplicate_friend_request_text_counts() {
    const DUPLICATES: u64 = 2;
    let app = spawn_app_with(|s| s.antispam.duplicate_limit = nz!(DUPLICATES)).await;
    let spammer = app.chatter("spammer").await;
    let mut targets = Vec::new();
    for n in 0..=DUPLICATES {
        targets.push(app.chatter(&format!("target{n}")).await);
    }
    let pitch = "Cheap followers at example.invalid";

    for target in &targets[..DUPLICATES as usize] {
        let resp = request_with(&app, &spammer, target, pitch).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let last = &targets[DUPLICATES as usize];
    // The same text in other case and spacing is the same text.
    expect_rule_limited(
        request_with(
            &app,
            &spammer,
            last,
            "  cheap FOLLOWERS at   example.invalid ",
        )
        .await,
        "duplicate",
    )
    .await;
    assert!(incoming_requests(&app, last).await.is_empty());
    let resp = request_with(&app, &spammer, last, "Hi, we met at the meetup").await;
    assert_eq!(resp.status(), StatusCode::CREATED, "another text passes");
}

// ---- item 18: requests forged by another site's page -----------------------------------------

/// `method path` as `who` with these extra headers (and a JSON body when given).
async fn forged(
    app: &TestApp,
    who: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let mut request = who.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

async fn expect_forbidden_origin(resp: Response) {
    expect_error(resp, StatusCode::FORBIDDEN, "forbidden_origin").await;
}

#[tokio::test]
async fn cross_site_delete_is_refused() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    make_friends(&app, &alice, &bob).await;
    let path = format!("/friends/{}", bob.id);

    for origin in ["http://evil.example", "null"] {
        expect_forbidden_origin(
            forged(
                &app,
                &alice.http,
                Method::DELETE,
                &path,
                &[("origin", origin)],
                None,
            )
            .await,
        )
        .await;
    }
    let still = json_with(app.get(&alice.http, &path).await, StatusCode::OK).await;
    assert_eq!(still["is_friend"], true, "the friendship stands");

    // The server's own page (same origin) still may.
    let resp = forged(
        &app,
        &alice.http,
        Method::DELETE,
        &path,
        &[("origin", &app.address)],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", json_of(resp).await);
}

#[tokio::test]
async fn cross_site_bodyless_post_is_refused() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let victim = app.chatter("victim").await;
    let group = group_in_mode(&app, &owner, "open").await;
    let path = format!("/groups/{group}/join");

    // A form or `fetch` with no body and no content type, from another site.
    expect_forbidden_origin(
        forged(
            &app,
            &victim.http,
            Method::POST,
            &path,
            &[("origin", "https://evil.example")],
            None,
        )
        .await,
    )
    .await;
    assert!(
        member_entry(&member_list(&app, &owner, &group).await, &victim.id).is_none(),
        "the victim was not made to join"
    );
    // A body that is not JSON is refused, never read as "no body".
    let resp = victim
        .http
        .post(app.url(&path))
        .header("content-type", "text/plain")
        .body("message=hi")
        .send()
        .await
        .expect("request sent");
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Without a body at all, from the same origin, the join works.
    let resp = forged(
        &app,
        &victim.http,
        Method::POST,
        &path,
        &[("origin", &app.address)],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", json_of(resp).await);
}

#[tokio::test]
async fn cross_scheme_origin_is_refused() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    // Same host and port, other scheme: another origin (an http page can't speak for https).
    let other_scheme = app.address.replacen("http://", "https://", 1);
    let body = json!({"user_id": bob.id});

    expect_forbidden_origin(
        forged(
            &app,
            &alice.http,
            Method::POST,
            "/friends/requests",
            &[("origin", &other_scheme)],
            Some(&body),
        )
        .await,
    )
    .await;
    assert!(incoming_requests(&app, &bob).await.is_empty());
    let resp = forged(
        &app,
        &alice.http,
        Method::POST,
        "/friends/requests",
        &[("origin", &app.address)],
        Some(&body),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn sec_fetch_site_cross_site_refused() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let remark = json!({"remark": "forged"});
    make_friends(&app, &alice, &bob).await;
    let friend_path = format!("/friends/{}", bob.id);

    for method in [Method::PATCH, Method::DELETE, Method::PUT] {
        expect_forbidden_origin(
            forged(
                &app,
                &alice.http,
                method,
                &friend_path,
                &[("sec-fetch-site", "cross-site")],
                Some(&remark),
            )
            .await,
        )
        .await;
    }
    let still = json_with(app.get(&alice.http, &friend_path).await, StatusCode::OK).await;
    assert_eq!(still["is_friend"], true);

    let carol = app.chatter("carol").await;
    let ask_carol = json!({"user_id": carol.id});
    expect_forbidden_origin(
        forged(
            &app,
            &alice.http,
            Method::POST,
            "/friends/requests",
            &[("sec-fetch-site", "cross-site")],
            Some(&ask_carol),
        )
        .await,
    )
    .await;
    assert!(incoming_requests(&app, &carol).await.is_empty());
    // The browser's own page says same-origin, and passes; safe methods are never refused.
    let resp = forged(
        &app,
        &alice.http,
        Method::POST,
        "/friends/requests",
        &[("sec-fetch-site", "same-origin")],
        Some(&ask_carol),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = forged(
        &app,
        &alice.http,
        Method::GET,
        "/user/me",
        &[("sec-fetch-site", "cross-site")],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A listed origin is allowed whatever the browser calls the site.
    let listed = spawn_app_with(|s| {
        s.server.allowed_origins = vec!["https://chat.example.com".to_owned()];
    })
    .await;
    let dave = listed.chatter("dave").await;
    let erin = listed.chatter("erin").await;
    let resp = forged(
        &listed,
        &dave.http,
        Method::POST,
        "/friends/requests",
        &[
            ("origin", "https://chat.example.com"),
            ("sec-fetch-site", "cross-site"),
        ],
        Some(&json!({"user_id": erin.id})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

// ---- item 20: /metrics and presence -----------------------------------------------------------

#[tokio::test]
async fn metrics_needs_token() {
    let app = spawn_app().await;
    let get = |token: Option<&str>| {
        let mut request = new_client().get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    for token in [None, Some("wrong"), Some("test-metrics-tokeN"), Some("")] {
        let resp = get(token).await.expect("request sent");
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "token {token:?}"
        );
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let resp = get(Some("test-metrics-token")).await.expect("request sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("chat_ws_connections"));
    // A session is not a token.
    let alice = app.chatter("alice").await;
    let resp = app.get(&alice.http, "/metrics").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Without a configured token /metrics stays open (loopback development).
    let open = spawn_app_with(|s| s.metrics.token = String::new().into()).await;
    let resp = open.get(&new_client(), "/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn online_in_profile(app: &TestApp, viewer: &Chatter, user: &Chatter) -> bool {
    let profile = profile(app, viewer, &user.id).await;
    profile["online"]
        .as_bool()
        .unwrap_or_else(|| panic!("online is a bool: {profile}"))
}

#[tokio::test]
async fn online_hidden_from_strangers() {
    let app = spawn_app().await;
    let (alice, _ws) = app.login_ws("alice").await;
    let friend = app.chatter("friend").await;
    let member = app.chatter("member").await;
    let stranger = app.chatter("stranger").await;
    make_friends(&app, &alice, &friend).await;
    let group = group_in_mode(&app, &alice, "open").await;
    let resp = join(&app, &member, &group, &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    eventually("the friend sees alice online", || {
        online_in_profile(&app, &friend, &alice)
    })
    .await;
    assert!(online_in_profile(&app, &member, &alice).await, "co-member");
    assert!(online_in_profile(&app, &alice, &alice).await, "herself");
    let entry = member_entry(&member_list(&app, &member, &group).await, &alice.id)
        .expect("alice is listed");
    assert_eq!(entry["online"], true, "{entry}");

    assert!(
        !online_in_profile(&app, &stranger, &alice).await,
        "a stranger does not see presence"
    );
    let found = get_list(&app, &stranger.http, "/users?q=alice", "users").await;
    assert_eq!(found[0]["online"], false, "{found:?}");
    let found = get_list(&app, &friend.http, "/users?q=alice", "users").await;
    assert_eq!(found[0]["online"], true, "{found:?}");

    // Someone who left the group is a stranger again.
    let resp = leave(&app, &member, &group).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!online_in_profile(&app, &member, &alice).await, "ex-member");

    // "everyone" shows presence to all.
    let open = spawn_app_with(|s| {
        s.privacy.online_visible_to = chat_server::config::OnlineVisibility::Everyone;
    })
    .await;
    let (bob, _bob_ws) = open.login_ws("bob").await;
    let anyone = open.chatter("anyone").await;
    eventually("anyone sees bob online", || {
        online_in_profile(&open, &anyone, &bob)
    })
    .await;
}
