//! Sessions and the browser's side of security: no session fixation, revocations that reach
//! every process, cookie flags, cross-site WebSocket upgrades, login brute force (per IP and
//! per account, with one answer for unknown users and wrong passwords), and the page's headers.
//! What sessions.rs, accounts.rs, ws_connect.rs and page.rs already check is not repeated.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    PASSWORD, TestApp, expect_error, json_of, new_client, spawn_app, spawn_app_sharing,
    spawn_app_with,
};
use crate::people_support::{get_list, json_with};
use crate::ws_client::{CLOSE_POLICY, Ended, OK};

/// The session cookies a response sets, as `name=value` with their attributes.
fn session_set_cookies(app: &TestApp, resp: &reqwest::Response) -> Vec<String> {
    let prefix = format!("{}=", app.settings.session.cookie_name);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| c.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// The `name=value` part of a Set-Cookie line.
fn pair_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").trim().to_owned()
}

/// A client without a cookie jar: every cookie is sent by hand.
fn bare_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

#[tokio::test]
async fn security_a_cookie_held_before_login_is_useless_after_it() {
    let app = spawn_app().await;
    app.register("victim").await;
    let name = app.settings.session.cookie_name.clone();
    let client = bare_client();

    // Every session cookie an anonymous visitor can come by: whatever anonymous responses set,
    // a forged value, and the cookie of a session that was logged out.
    let mut pre_login: Vec<String> = vec![
        format!("{name}=forged-value"),
        format!("{name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ];
    let anonymous = [
        client.get(app.url("/")),
        client.get(app.url("/ping")),
        client.get(app.url("/user/me")),
        client
            .get(app.url("/user/me"))
            .header("cookie", format!("{name}=forged-value")),
        client
            .post(app.url("/user/login"))
            .json(&json!({"user_name": "victim", "password": "wrong password"})),
    ];
    for request in anonymous {
        let resp = request.send().await.expect("request sent");
        for set in session_set_cookies(&app, &resp) {
            let pair = pair_of(&set);
            if pair.len() > name.len() + 1 {
                pre_login.push(pair);
            }
        }
    }
    let resp = app.login_with(&new_client(), "victim", PASSWORD).await;
    let logged_out = app.session_cookie(&resp);
    let resp = client
        .post(app.url("/user/logout"))
        .header("cookie", &logged_out)
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::OK);
    pre_login.push(logged_out);

    for planted in pre_login {
        // The victim logs in carrying the planted cookie ...
        let resp = client
            .post(app.url("/user/login"))
            .header("cookie", &planted)
            .json(&json!({"user_name": "victim", "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), StatusCode::OK, "login with {planted}");
        let issued: Vec<String> = session_set_cookies(&app, &resp)
            .iter()
            .map(|c| pair_of(c))
            .collect();
        assert_eq!(issued.len(), 1, "one new session cookie: {issued:?}");
        assert_ne!(issued[0], planted, "login issues a new key");
        // ... and whoever holds the planted cookie has nothing.
        expect_error(
            app.me_with_cookie(&planted).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        let me = json_of(app.me_with_cookie(&issued[0]).await).await;
        assert_eq!(me["user"]["user_name"], "victim", "{me}");
        let refused = app.try_connect_ws(Some(&planted), None).await;
        assert!(
            refused.is_err_and(|r| r.status == StatusCode::UNAUTHORIZED),
            "no socket with {planted}"
        );
    }
}

#[tokio::test]
async fn security_the_session_cookie_is_http_only_lax_and_secure_when_configured() {
    for secure in [false, true] {
        let app = spawn_app_with(|s| s.server.secure_cookies = secure).await;
        app.register("alice").await;
        let resp = app.login_with(&bare_client(), "alice", PASSWORD).await;
        let cookies = session_set_cookies(&app, &resp);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let cookie = &cookies[0];
        let attributes: Vec<String> = cookie
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        assert!(attributes.contains(&"httponly".to_owned()), "{cookie}");
        assert!(attributes.contains(&"samesite=lax".to_owned()), "{cookie}");
        assert_eq!(
            attributes.contains(&"secure".to_owned()),
            secure,
            "Secure exactly when server.secure_cookies = {secure}: {cookie}"
        );
        assert!(
            !attributes.iter().any(|a| a.starts_with("domain=")),
            "a host-only cookie: {cookie}"
        );
        // The value is an opaque key: no user id, login id or session state in clear.
        let value = pair_of(cookie);
        let user = json_of(resp).await["user"].clone();
        for clear in ["uid", "lid", "alice"] {
            assert!(!value.contains(clear), "`{clear}` in the cookie {value}");
        }
        let id = user["id"].as_str().expect("id");
        assert!(
            !value.ends_with(&format!("={id}")),
            "the user id as the cookie: {value}"
        );
    }
}

#[tokio::test]
async fn security_password_change_and_device_revocation_reach_sockets_on_another_process() {
    let node_a = spawn_app().await;
    let node_b = spawn_app_sharing(&node_a).await;
    let laptop = node_a.chatter("alice").await;
    let phone = node_a.log_in("alice").await;
    let tablet = node_a.log_in("alice").await;
    let mut phone_on_b = node_b.connect_ws(&phone).await;
    let mut tablet_on_b = node_b.connect_ws(&tablet).await;
    let mut laptop_on_b = node_b.connect_ws(&laptop).await;

    // The tablet is revoked as a device through A: its socket on B closes.
    let devices = get_list(&node_a, &laptop.http, "/user/devices", "devices").await;
    assert_eq!(devices.len(), 3, "{devices:?}");
    let tablet_device = devices[0]["id"].as_str().expect("device id").to_owned();
    let resp = crate::people_support::delete(
        &node_a,
        &laptop.http,
        &format!("/user/devices/{tablet_device}"),
    )
    .await;
    json_with(resp, StatusCode::OK).await;
    let ended = tablet_on_b.expect_closed(Duration::from_secs(5)).await;
    assert_eq!(ended, Ended::Close(Some(CLOSE_POLICY)), "tablet");
    assert_eq!(
        node_b.me_with_cookie(&tablet.cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A password change through A revokes the phone everywhere.
    let resp = node_a
        .post(
            &laptop.http,
            "/user/set_password",
            &json!({"old_password": PASSWORD, "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ended = phone_on_b.expect_closed(Duration::from_secs(5)).await;
    assert_eq!(ended, Ended::Close(Some(CLOSE_POLICY)), "phone");
    for node in [&node_a, &node_b] {
        assert_eq!(
            node.me_with_cookie(&phone.cookie).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            node.me_with_cookie(&laptop.cookie).await.status(),
            StatusCode::OK,
            "the session that changed the password stays"
        );
    }
    laptop_on_b.request(json!({"op_type": 3})).await.expect(OK);
}

#[tokio::test]
async fn security_cross_site_websocket_upgrades_are_refused_whatever_the_origin_looks_like() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let port = host.rsplit(':').next().expect("port").to_owned();
    let foreign = [
        "null".to_owned(),
        format!("http://{host}.evil.example"),
        format!("http://evil.example/{host}"),
        format!("http://{host}@evil.example"),
        format!("http://evil.example#{host}"),
        "http://127.0.0.1:1".to_owned(),
        format!("http://localhost:{port}"),
        format!("ftp://{host}"),
        host.clone(),
        String::new(),
    ];
    for origin in &foreign {
        let refused = app
            .try_connect_ws(Some(&alice.cookie), Some(origin))
            .await
            .err()
            .unwrap_or_else(|| panic!("Origin `{origin}` was let in"));
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "Origin `{origin}`");
        assert_eq!(
            refused.body.expect("a JSON body")["code"],
            "forbidden_origin",
            "Origin `{origin}`"
        );
    }

    // With an explicit list only its exact entries pass, not the server's own host any more.
    let app = spawn_app_with(|s| {
        s.server.allowed_origins = vec!["https://chat.example.com".to_owned()];
    })
    .await;
    let alice = app.chatter("alice").await;
    let host = app.address.clone();
    for origin in [
        "https://chat.example.com.evil.io",
        "https://evil.io/https://chat.example.com",
        "http://chat.example.com",
        "https://chat.example.co",
        host.as_str(),
    ] {
        let refused = app
            .try_connect_ws(Some(&alice.cookie), Some(origin))
            .await
            .err()
            .unwrap_or_else(|| panic!("Origin `{origin}` was let in"));
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "Origin `{origin}`");
    }
    let mut ws = app
        .try_connect_ws(Some(&alice.cookie), Some("https://chat.example.com"))
        .await
        .unwrap_or_else(|r| panic!("the listed origin: {r:?}"));
    ws.request(json!({"op_type": 3})).await.expect(OK);
}

/// One login attempt from the client IP `ip` (the server trusts `X-Forwarded-For`).
async fn login_from(app: &TestApp, ip: &str, user_name: &str, password: &str) -> (u16, Value) {
    let resp = bare_client()
        .post(app.url("/user/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"user_name": user_name, "password": password}))
        .send()
        .await
        .expect("login sent");
    let status = resp.status().as_u16();
    (status, json_of(resp).await)
}

/// Most wrong passwords one account may be tried with, from any number of IPs, before the
/// server refuses further attempts for it.
const ACCOUNT_ATTEMPTS_BOUND: usize = 60;

/// The name with its letters' case changed in a way that depends on `i` (names are unique
/// regardless of case, so these all name the same account).
fn case_variant(name: &str, i: usize) -> String {
    name.chars()
        .enumerate()
        .map(|(j, c)| {
            if (i >> (j % 8)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[tokio::test]
async fn security_login_guessing_is_limited_per_account_across_ips_and_alike_for_unknown_users() {
    let app = spawn_app_with(|s| {
        s.server.trust_forwarded_for = true;
        s.auth.login_per_ip_per_minute = nz!(5);
    })
    .await;
    app.register("victim").await;

    // One guess per client IP, so the per-IP limit never applies; the account's must.
    let mut statuses = Vec::new();
    for i in 0..ACCOUNT_ATTEMPTS_BOUND {
        let ip = format!("10.1.{}.{}", i / 200, i % 200 + 1);
        let (status, body) =
            login_from(&app, &ip, &case_variant("victim", i), "wrong password").await;
        match status {
            401 => assert_eq!(body["code"], "invalid_credentials", "{body}"),
            429 => {
                assert_eq!(body["code"], "rate_limited", "{body}");
                assert!(
                    body["retry_after"].as_u64().is_some_and(|s| s >= 1),
                    "{body}"
                );
            }
            other => panic!("attempt {i}: {other} {body}"),
        }
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "{ACCOUNT_ATTEMPTS_BOUND} wrong passwords for one account from as many IPs were all \
         answered 401: there is no per-account limit"
    );
    // Once limited, the account refuses from a fresh IP too, even the right password.
    let (status, body) = login_from(&app, "10.200.0.1", "victim", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");

    // An unknown user name is answered exactly alike, attempt by attempt: no enumeration.
    let mut unknown = Vec::new();
    for i in 0..statuses.len() {
        let ip = format!("10.2.{}.{}", i / 200, i % 200 + 1);
        let (status, _) = login_from(&app, &ip, &case_variant("nobody", i), "wrong password").await;
        unknown.push(status);
    }
    assert_eq!(unknown, statuses, "unknown user vs existing account");
}

#[tokio::test]
async fn security_the_per_ip_login_limit_counts_the_proxys_address_not_the_clients_claims() {
    let app = spawn_app_with(|s| {
        s.server.trust_forwarded_for = true;
        s.auth.login_per_ip_per_minute = nz!(3);
    })
    .await;
    app.register("alice").await;
    // The client prepends whatever it likes; the proxy appends the address it saw.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let chain = format!("192.0.2.{}, 10.9.9.9", i + 1);
        let (status, _) = login_from(&app, &chain, "alice", "wrong password").await;
        statuses.push(status);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    // Another client behind the proxy still gets in.
    let (status, _) = login_from(&app, "10.9.9.10", "alice", PASSWORD).await;
    assert_eq!(status, 200);
}

/// The page's headers for a raw request with this Host header.
async fn page_headers(app: &TestApp, host: &str) -> String {
    let port: u16 = app
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("a response")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test]
async fn security_the_page_headers_hold_whatever_the_host_header_says() {
    let app = spawn_app().await;
    for host in [
        "127.0.0.1".to_owned(),
        "evil.example; script-src * 'unsafe-inline'".to_owned(),
        "x'; frame-ancestors *".to_owned(),
        "a b".to_owned(),
    ] {
        let head = page_headers(&app, &host).await;
        assert!(head.starts_with("HTTP/1.1 200"), "Host `{host}`: {head}");
        let csp = header(&head, "content-security-policy");
        assert_eq!(csp.len(), 1, "one CSP for Host `{host}`: {head}");
        let directives: Vec<&str> = csp[0].split(';').map(str::trim).collect();
        let script = directives
            .iter()
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_else(|| panic!("script-src in {}", csp[0]));
        assert_eq!(*script, "script-src 'self'", "Host `{host}`");
        assert!(
            !csp[0].contains("unsafe-inline"),
            "Host `{host}`: {}",
            csp[0]
        );
        assert_eq!(
            directives
                .iter()
                .filter(|d| d.starts_with("frame-ancestors"))
                .collect::<Vec<_>>(),
            vec![&"frame-ancestors 'none'"],
            "Host `{host}`: {}",
            csp[0]
        );
        assert_eq!(header(&head, "x-content-type-options"), vec!["nosniff"]);
        assert_eq!(header(&head, "x-frame-options"), vec!["DENY"]);
    }
}
