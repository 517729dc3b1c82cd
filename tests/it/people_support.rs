//! Shared helpers for the people tests (docs/people.md): the HTTP verbs the routes use, list
//! envelopes, friendships in one call, and the test Maildir the SMTP server writes to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, expect_error, json_of};
use crate::ws_client::Chatter;

/// How long a test waits for something that happens in the background (a mail, presence).
pub const BACKGROUND_WAIT: Duration = Duration::from_secs(10);

pub async fn patch(app: &TestApp, client: &Client, path: &str, body: &Value) -> Response {
    client
        .patch(app.url(path))
        .json(body)
        .send()
        .await
        .expect("request sent")
}

pub async fn delete(app: &TestApp, client: &Client, path: &str) -> Response {
    client
        .delete(app.url(path))
        .send()
        .await
        .expect("request sent")
}

/// Percent-encodes a query value (everything but the unreserved characters).
pub fn enc(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[track_caller]
pub fn assert_field(body: &Value, field: &str) {
    assert_eq!(body["field"], field, "field in {body}");
}

/// Asserts a 400 `validation_failed` naming `field`; returns the body.
pub async fn expect_validation(resp: Response, field: &str) -> Value {
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_field(&body, field);
    body
}

/// Asserts a 2xx-or-other status and returns the JSON body.
pub async fn json_with(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let body = json_of(resp).await;
    assert_eq!(got, status, "status, body {body}");
    body
}

/// The items of a list answer, after checking the envelope every list shares.
#[track_caller]
pub fn items(body: &Value, key: &str) -> Vec<Value> {
    let list = body[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is an array: {body}"))
        .clone();
    assert!(body["total"].is_u64(), "total is a count: {body}");
    assert!(body["offset"].is_u64(), "offset is a number: {body}");
    assert!(body["limit"].is_u64(), "limit is a number: {body}");
    assert!(body["has_more"].is_boolean(), "has_more is a bool: {body}");
    list
}

/// GET a list route as `client`; asserts 200 and the envelope, returns the items.
pub async fn get_list(app: &TestApp, client: &Client, path: &str, key: &str) -> Vec<Value> {
    let body = json_with(app.get(client, path).await, StatusCode::OK).await;
    items(&body, key)
}

/// The ids (`id` or another key) of a list of objects.
pub fn ids_of(list: &[Value], key: &str) -> Vec<String> {
    list.iter()
        .map(|v| {
            v[key]
                .as_str()
                .unwrap_or_else(|| panic!("`{key}` is a string in {v}"))
                .to_owned()
        })
        .collect()
}

/// The public profile of `id` as `viewer` sees it; asserts 200.
pub async fn profile(app: &TestApp, viewer: &Chatter, id: &str) -> Value {
    json_with(
        app.get(&viewer.http, &format!("/users/{id}")).await,
        StatusCode::OK,
    )
    .await
}

/// Checks a profile has exactly the documented public fields (never email, devices, password).
#[track_caller]
pub fn assert_profile_shape(profile: &Value) {
    let mut fields: Vec<&str> = profile
        .as_object()
        .unwrap_or_else(|| panic!("a profile is an object: {profile}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "avatar",
            "id",
            "is_friend",
            "nick_name",
            "online",
            "remark",
            "sex",
            "user_name"
        ],
        "exactly the public profile fields: {profile}"
    );
}

/// Registers a user with this nick name (and email, when given); returns the user object.
pub async fn register_user(
    app: &TestApp,
    user_name: &str,
    nick_name: &str,
    email: Option<&str>,
) -> Value {
    let mut body = json!({"user_name": user_name, "password": PASSWORD, "nick_name": nick_name});
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    let resp = app.post(&app.client, "/user/register", &body).await;
    json_with(resp, StatusCode::CREATED).await["user"].clone()
}

/// A cookie-keeping client that sends this User-Agent.
pub fn client_with_agent(user_agent: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .expect("reqwest client")
}

/// Logs an existing user in from a client with this User-Agent: a new session (device).
pub async fn log_in_with_agent(app: &TestApp, name: &str, user_agent: &str) -> Chatter {
    log_in_with_password(app, name, PASSWORD, user_agent).await
}

pub async fn log_in_with_password(
    app: &TestApp,
    name: &str,
    password: &str,
    user_agent: &str,
) -> Chatter {
    let http = client_with_agent(user_agent);
    let resp = app.login_with(&http, name, password).await;
    assert_eq!(resp.status(), StatusCode::OK, "login {name}");
    let cookie = app.session_cookie(&resp);
    let user = json_of(resp).await["user"].clone();
    Chatter {
        id: user["id"].as_str().expect("user id is a string").to_owned(),
        name: name.to_owned(),
        cookie,
        http,
    }
}

/// POST /friends/requests from `from` to `to`; returns the response.
pub async fn send_request(app: &TestApp, from: &Chatter, to: &str) -> Response {
    app.post(&from.http, "/friends/requests", &json!({ "user_id": to }))
        .await
}

/// A new friend request from `from` to `to`; asserts 201 and returns the request object.
pub async fn new_request(app: &TestApp, from: &Chatter, to: &Chatter) -> Value {
    let body = json_with(send_request(app, from, &to.id).await, StatusCode::CREATED).await;
    body["request"].clone()
}

/// POST /friends/requests/{id}/{action} (accept, reject, ignore) as `by`.
pub async fn decide(app: &TestApp, by: &Chatter, request_id: &str, action: &str) -> Response {
    app.post(
        &by.http,
        &format!("/friends/requests/{request_id}/{action}"),
        &json!({}),
    )
    .await
}

/// `a` asks, `b` accepts: they are friends.
pub async fn make_friends(app: &TestApp, a: &Chatter, b: &Chatter) {
    let request = new_request(app, a, b).await;
    let id = request["id"].as_str().expect("request id is a string");
    let body = json_with(decide(app, b, id, "accept").await, StatusCode::OK).await;
    assert_eq!(body["request"]["status"], "accepted", "{body}");
}

/// GET /friends/{id} as `viewer`: the `is_friend` flag.
pub async fn is_friend(app: &TestApp, viewer: &Chatter, other: &str) -> bool {
    let body = json_with(
        app.get(&viewer.http, &format!("/friends/{other}")).await,
        StatusCode::OK,
    )
    .await;
    body["is_friend"]
        .as_bool()
        .unwrap_or_else(|| panic!("is_friend is a bool: {body}"))
}

/// The user ids in the viewer's GET /friends.
pub async fn friend_ids(app: &TestApp, viewer: &Chatter) -> Vec<String> {
    let friends = get_list(app, &viewer.http, "/friends?limit=100", "friends").await;
    ids_of(&friends, "id")
}

#[track_caller]
pub fn assert_rfc3339(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {value}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "{what} is RFC 3339: {text}"
    );
}

// ---- mail ---------------------------------------------------------------------------------

/// A unique address for one test.
pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Where the test SMTP server (aiosmtpd) drops each received message as one file.
pub fn maildir_new() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("var/test/mail/new")
}

/// One received mail: unfolded headers and the raw body.
#[derive(Debug, Clone)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Self {
            headers,
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_to(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        self.headers
            .iter()
            .any(|(n, v)| n == "to" && v.to_ascii_lowercase().contains(&email))
    }

    /// The 6-digit code: a line that is only the code, else the first standalone run of six
    /// digits; in the body as sent, or decoded from quoted-printable or base64.
    pub fn code(&self) -> Option<String> {
        let candidates = [
            self.body.clone(),
            decode_quoted_printable(&self.body),
            decode_base64_blocks(&self.body),
        ];
        candidates.iter().find_map(|text| find_code(text))
    }
}

fn find_code(text: &str) -> Option<String> {
    let own_line = text
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()));
    if let Some(line) = own_line {
        return Some(line.to_owned());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(text[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes every run of lines that look like base64 and joins the results.
fn decode_base64_blocks(text: &str) -> String {
    let is_b64_line = |line: &str| {
        line.len() >= 4
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    };
    let mut out = String::new();
    let mut block = String::new();
    for line in text.lines().map(str::trim).chain(std::iter::once("")) {
        if is_b64_line(line) {
            block.push_str(line);
        } else if !block.is_empty() {
            if let Some(bytes) = decode_base64(&block) {
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
            block.clear();
        }
    }
    out
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in clean {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Every mail received so far for `email`.
pub fn mails_to(email: &str) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(maildir_new()) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, Mail)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            let mail = Mail::parse(&String::from_utf8_lossy(&bytes));
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            mail.is_to(email).then_some((modified, mail))
        })
        .collect();
    found.sort_by_key(|(modified, _)| *modified);
    found.into_iter().map(|(_, mail)| mail).collect()
}

/// Waits (up to 10 s) for a mail to `email`; fails the test when none arrives.
pub async fn read_mail(email: &str) -> Mail {
    let deadline = tokio::time::Instant::now() + BACKGROUND_WAIT;
    loop {
        if let Some(mail) = mails_to(email).pop() {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail to {email} arrived in {} within {BACKGROUND_WAIT:?}",
            maildir_new().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the mail to `email` and returns the 6-digit code in it.
pub async fn read_code(email: &str) -> String {
    let mail = read_mail(email).await;
    mail.code()
        .unwrap_or_else(|| panic!("no 6-digit code in the mail to {email}: {mail:?}"))
}

/// A 6-digit code that is not `code`.
pub fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().expect("a numeric code");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// POST /user/email_code without a session.
pub async fn request_code(app: &TestApp, email: &str, purpose: &str) -> Response {
    app.post(
        &crate::helpers::new_client(),
        "/user/email_code",
        &json!({"email": email, "purpose": purpose}),
    )
    .await
}

/// Requests a code, asserts 202 `{"status":"sent"}`.
pub async fn code_sent(app: &TestApp, email: &str, purpose: &str) {
    let body = json_with(
        request_code(app, email, purpose).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(body["status"], "sent", "{body}");
}

/// Polls `check` every 100 ms until it is true; fails after `BACKGROUND_WAIT`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + BACKGROUND_WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {BACKGROUND_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
