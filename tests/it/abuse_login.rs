//! Attacks on logins and client addresses: sidestepping the per-account failure limit with other
//! spellings of a name, locking the owner out as a stranger, guessing passwords through
//! `POST /user/set_password`, and escaping per-IP limits with IPv6 addresses of one /64 or an
//! invented `X-Forwarded-For`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, expect_error, json_of, new_client, spawn_app_with};

/// The failures an account (or a device cookie) is allowed per window by default.
const DEFAULT_FAILURES: u32 = 5;

/// A browser of its own (its own cookie jar) whose connections come from `local`.
fn browser_from(local: [u8; 4]) -> Client {
    Client::builder()
        .cookie_store(true)
        .local_address(IpAddr::from(local))
        .build()
        .expect("reqwest client")
}

/// One login attempt from `client`, with `X-Forwarded-For: forwarded` when given.
async fn login(
    app: &TestApp,
    client: &Client,
    forwarded: Option<&str>,
    user_name: &str,
    password: &str,
) -> (StatusCode, Value) {
    let mut request = client
        .post(app.url("/user/login"))
        .json(&json!({"user_name": user_name, "password": password}));
    if let Some(chain) = forwarded {
        request = request.header("x-forwarded-for", chain);
    }
    let resp = request.send().await.expect("login sent");
    let status = resp.status();
    (status, json_of(resp).await)
}

fn assert_locked(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{what}: {body}");
    assert_eq!(body["code"], "rate_limited", "{what}: {body}");
    assert!(
        body["retry_after"].as_u64().is_some_and(|s| s >= 1),
        "{what}: {body}"
    );
}

/// Wrong passwords from fresh browsers (no device cookie) until the account is locked: the
/// first `DEFAULT_FAILURES` are 401, the next is 429.
async fn lock_out(app: &TestApp, spellings: &[&str]) {
    for (i, name) in spellings.iter().enumerate() {
        let (status, body) = login(app, &new_client(), None, name, "wrong password").await;
        if i < DEFAULT_FAILURES as usize {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "attempt {i} `{name}`: {body}"
            );
            assert_eq!(body["code"], "invalid_credentials", "{body}");
        } else {
            assert_locked(status, &body, &format!("attempt {i} `{name}`"));
        }
    }
}

/// Spellings the users table's case- and accent-insensitive collation (utf8mb4_unicode_ci)
/// equates with `alice`, each a separate failure bucket when failures were keyed on the
/// lowercased input.
const LOOKALIKES: [&str; 6] = [
    "Álice",
    "ALİCE",
    "alice\u{200b}",
    "\u{200b}alice",
    "alicé",
    "ａlice",
];

#[tokio::test]
async fn login_failures_through_other_spellings_lock_the_one_account() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(
        app.settings.auth.login_failures_per_account,
        nz!(DEFAULT_FAILURES),
        "the shipped default"
    );
    app.register("alice").await;
    // Six spellings of one account name, one wrong password each, each from a new browser.
    lock_out(
        &app,
        &["Alice", "ALICE", "aLice", "alIce", "aliCE", "ALICe"],
    )
    .await;
    // Guessing on through spellings of other buckets reaches no account: not even the right
    // password gets in.
    for name in LOOKALIKES {
        let (status, body) = login(&app, &new_client(), None, name, PASSWORD).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "`{name}` after the lockout: {body}"
        );
        assert_eq!(body["code"], "invalid_credentials", "{body}");
    }
    let (status, body) = login(&app, &new_client(), None, "alice", PASSWORD).await;
    assert_locked(status, &body, "the right password after six spellings");
}

#[tokio::test]
async fn lookalike_spellings_of_a_name_reach_no_account() {
    let app = spawn_app_with(|_| {}).await;
    app.register("alice").await;
    // They are not names registration accepts, so they are nobody's, even with the right
    // password.
    for name in LOOKALIKES {
        let (status, body) = login(&app, &new_client(), None, name, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "`{name}`: {body}");
        assert_eq!(body["code"], "invalid_credentials", "`{name}`: {body}");
    }
    // Nor do wrong passwords through them count against the account.
    for name in LOOKALIKES {
        let (status, _) = login(&app, &new_client(), None, name, "wrong password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "`{name}`");
    }
    let (status, body) = login(&app, &new_client(), None, "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The device cookie a login response set, as its `Set-Cookie` header.
fn device_set_cookie(app: &TestApp, resp: &reqwest::Response) -> String {
    let name = &app.settings.auth.device_cookie_name;
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("the login sets the `{name}` cookie"))
        .to_owned()
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_of_a_known_browser() {
    let app = spawn_app_with(|_| {}).await;
    app.register("alice").await;
    let owner = new_client();
    let resp = owner
        .post(app.url("/user/login"))
        .json(&json!({"user_name": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::OK);
    let set = device_set_cookie(&app, &resp);
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(
        !set.contains("Secure"),
        "no Secure without server.secure_cookies: {set}"
    );
    assert!(
        set.contains(&format!(
            "Max-Age={}",
            app.settings.auth.device_cookie_ttl_secs
        )),
        "{set}"
    );
    let device_value = set
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("a value");

    // A stranger locks the account.
    lock_out(&app, &["alice"; 6]).await;
    let (status, body) = login(&app, &new_client(), None, "alice", PASSWORD).await;
    assert_locked(status, &body, "a new browser with the right password");

    // The owner's browser still gets in.
    let (status, body) = login(&app, &owner, None, "alice", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the browser with the device cookie: {body}"
    );

    // A forged or altered device cookie is no device cookie.
    let name = app.settings.auth.device_cookie_name.clone();
    let id: u64 = body["user"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("user id");
    let tampered = device_value.replacen(&id.to_string(), &(id + 1).to_string(), 1);
    for forged in [
        format!("{name}={id}.{}.{}", chrono_now_ms(), "00".repeat(32)),
        format!("{name}={tampered}"),
    ] {
        let resp = Client::new()
            .post(app.url("/user/login"))
            .header("cookie", &forged)
            .json(&json!({"user_name": "alice", "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        let status = resp.status();
        assert_locked(status, &json_of(resp).await, &forged);
    }

    // The known browser's own wrong passwords count against it, with the same limit.
    for i in 0..DEFAULT_FAILURES {
        let (status, body) = login(&app, &owner, None, "alice", "wrong password").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "device failure {i}: {body}"
        );
    }
    let (status, body) = login(&app, &owner, None, "alice", PASSWORD).await;
    assert_locked(status, &body, "the device cookie after its own failures");
}

fn chrono_now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

#[tokio::test]
async fn one_browser_stays_known_to_each_account_it_logged_into() {
    let app = spawn_app_with(|_| {}).await;
    let names = ["alice", "bob", "carol"];
    let browser = new_client();
    for name in names {
        app.register(name).await;
        let (status, body) = login(&app, &browser, None, name, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    for name in names {
        lock_out(&app, &[name; 6]).await;
    }
    for name in names {
        let (status, body) = login(&app, &browser, None, name, PASSWORD).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name} from the shared browser: {body}"
        );
    }
}

#[tokio::test]
async fn the_device_cookie_is_secure_when_cookies_are() {
    let app = spawn_app_with(|s| s.server.secure_cookies = true).await;
    app.register("alice").await;
    let resp = app.login_with(&new_client(), "alice", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = device_set_cookie(&app, &resp);
    assert!(set.contains("Secure"), "{set}");
}

/// `POST /user/set_password` with exactly this session cookie; the answer and its time.
async fn set_password(
    app: &TestApp,
    session: &str,
    old_password: &str,
) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let resp = Client::new()
        .post(app.url("/user/set_password"))
        .header("cookie", session)
        .json(&json!({"old_password": old_password, "new_password": "a brand new password"}))
        .send()
        .await
        .expect("set_password sent");
    (resp, started.elapsed())
}

#[tokio::test]
async fn set_password_cannot_be_used_to_guess_the_password() {
    // A real work factor, so a bcrypt run shows in the response time.
    let app = spawn_app_with(|s| s.auth.bcrypt_cost = 12).await;
    app.register("alice").await;
    let resp = app.login_with(&new_client(), "alice", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The session alone, as a thief would replay it (no device cookie).
    let session = app.session_cookie(&resp);

    // Wrong logins and wrong old passwords share one count: 3 + 2 = the limit.
    for _ in 0..3 {
        let (status, _) = login(&app, &new_client(), None, "alice", "wrong password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut bcrypt_took = Duration::MAX;
    for _ in 0..2 {
        let (resp, took) = set_password(&app, &session, "wrong password").await;
        expect_error(resp, StatusCode::FORBIDDEN, "wrong_password").await;
        bcrypt_took = bcrypt_took.min(took);
    }
    // The sixth attempt is refused, with the right old password too, and nothing changes.
    let (resp, took) = set_password(&app, &session, PASSWORD).await;
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(
        body["retry_after"].as_u64().is_some_and(|s| s >= 1),
        "{body}"
    );
    assert!(
        took < bcrypt_took / 2,
        "the refusal took {took:?}, a bcrypt check {bcrypt_took:?}: bcrypt ran"
    );
    let (status, body) = login(&app, &new_client(), None, "alice", PASSWORD).await;
    assert_locked(status, &body, "the account after set_password guesses");
}

#[tokio::test]
async fn set_password_guesses_alone_are_limited() {
    let app = spawn_app_with(|_| {}).await;
    app.register("alice").await;
    let resp = app.login_with(&new_client(), "alice", PASSWORD).await;
    let session = app.session_cookie(&resp);
    let mut statuses = Vec::new();
    for old in ["w1", "w2", "w3", "w4", "w5", PASSWORD] {
        let (resp, _) = set_password(&app, &session, old).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![403, 403, 403, 403, 403, 429]);
}

/// The server trusts the proxy on 127.0.0.1 only.
fn behind_a_loopback_proxy(s: &mut chat_server::config::Settings) {
    s.server.trusted_proxies = vec!["127.0.0.1".into()];
}

#[tokio::test]
async fn ipv6_addresses_of_one_64_share_every_per_ip_limit() {
    let app = spawn_app_with(|s| {
        behind_a_loopback_proxy(s);
        s.auth.login_per_ip_per_minute = nz!(3);
        s.auth.register_per_ip_per_minute = nz!(2);
        s.ws.max_connections_per_ip = nz!(2);
        s.ws.max_connections = 20;
    })
    .await;
    let proxy = browser_from([127, 0, 0, 1]);

    // Registration: two addresses of 2001:db8:a:b::/64 use its budget up; another /64 has its own.
    let mut statuses = Vec::new();
    for (name, ip) in [
        ("bob1", "2001:db8:a:b::1"),
        ("bob2", "2001:db8:a:b:ffff:ffff:ffff:ffff"),
        ("bob3", "2001:db8:a:b:1234::3"),
        ("bob4", "2001:db8:a:c::1"),
    ] {
        let resp = proxy
            .post(app.url("/user/register"))
            .header("x-forwarded-for", ip)
            .json(&json!({"user_name": name, "password": PASSWORD, "nick_name": name}))
            .send()
            .await
            .expect("register");
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![201, 201, 429, 201], "registrations");

    // Logins likewise.
    let mut statuses = Vec::new();
    for ip in [
        "2001:db8:a:b::10",
        "2001:db8:a:b::11",
        "2001:db8:a:b:8000::12",
        "2001:db8:a:b::13",
        "2001:db8:a:c::10",
    ] {
        let (status, _) = login(&app, &new_client(), Some(ip), "bob1", "wrong password").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 401], "logins");

    // WebSocket connections per client.
    let bob = app.log_in("bob4").await;
    let via = |ip: &'static str| [("x-forwarded-for", ip)];
    let mut held = Vec::new();
    for ip in ["2001:db8:e:f::1", "2001:db8:e:f::2"] {
        held.push(
            app.try_connect_ws_from([127, 0, 0, 1], &bob.cookie, &via(ip))
                .await
                .expect("under the cap"),
        );
    }
    let refused = app
        .try_connect_ws_from([127, 0, 0, 1], &bob.cookie, &via("2001:db8:e:f:9::3"))
        .await
        .err()
        .expect("a third socket from the same /64 is refused");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    held.push(
        app.try_connect_ws_from([127, 0, 0, 1], &bob.cookie, &via("2001:db8:e:10::1"))
            .await
            .expect("another /64 has its own cap"),
    );
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let app = spawn_app_with(|s| {
        behind_a_loopback_proxy(s);
        s.auth.login_per_ip_per_minute = nz!(2);
    })
    .await;

    // Behind the trusted proxy, each client has its own budget.
    let proxy = browser_from([127, 0, 0, 1]);
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let ip = format!("198.51.100.{i}");
        let name = format!("nobody{i}");
        let (status, _) = login(&app, &proxy, Some(&ip), &name, "wrong password").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, vec![401; 4], "clients behind the trusted proxy");

    // A peer that is no trusted proxy invents addresses in vain: its own address counts.
    let stranger = browser_from([127, 0, 0, 2]);
    let mut statuses = Vec::new();
    for i in 1..=3 {
        let ip = format!("192.0.2.{i}");
        let name = format!("stranger{i}");
        let (status, _) = login(&app, &stranger, Some(&ip), &name, "wrong password").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        vec![401, 401, 429],
        "an untrusted peer's X-Forwarded-For"
    );

    // Through the proxy, the client can only prepend: the entry the proxy appended counts, and
    // hops of trusted proxies are skipped from the right.
    let mut statuses = Vec::new();
    for i in 1..=3 {
        let chain = format!("10.0.0.{i}, 203.0.113.9, 127.0.0.1");
        let name = format!("chained{i}");
        let (status, _) = login(&app, &proxy, Some(&chain), &name, "wrong password").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        vec![401, 401, 429],
        "invented entries left of the proxy's"
    );
}

#[test]
fn a_bad_trusted_proxy_stops_startup_naming_the_key() {
    for bad in ["10.0.0.0/33", "not-an-address", "10.0.0.1/8/8", ""] {
        let mut settings = crate::helpers::test_settings();
        settings.server.trusted_proxies = vec![bad.to_owned()];
        let err = settings.validate().expect_err(bad).to_string();
        assert!(err.contains("server.trusted_proxies"), "{bad}: {err}");
    }
    let mut settings = crate::helpers::test_settings();
    settings.server.trusted_proxies = ["10.0.0.0/8", "::1", "2001:db8::/32", "192.0.2.7"]
        .map(str::to_owned)
        .to_vec();
    settings.validate().expect("valid proxies");
}
