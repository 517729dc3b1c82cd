//! What the authorization matrices share: one request as a row of a table (who, what, the
//! status and code they must get), a runner that checks every row and names each one that
//! fails, and a scan for what no response may carry (password hashes, another user's email,
//! remarks, devices).

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::groups_support::{group_in_mode, join, make_admin, ok_json};
use crate::helpers::{TestApp, new_client};
use crate::people_support::{json_with, patch};
use crate::ws_client::Chatter;

/// One request of a matrix and what it must get.
pub struct Row {
    /// Who sends it: a name from the cast, or `anonymous`.
    pub who: &'static str,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub status: u16,
    /// The error `code` when the status is an error; `None` for a success.
    pub code: Option<&'static str>,
}

pub fn row(who: &'static str, method: Method, path: impl Into<String>, status: u16) -> Row {
    Row {
        who,
        method,
        path: path.into(),
        body: None,
        status,
        code: None,
    }
}

impl Row {
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// The people a matrix speaks as, and the strings only one of them may ever see.
pub struct Actors<'a> {
    pub cast: Vec<(&'static str, &'a Chatter)>,
    /// Strings private to the user named here: nobody else's response may contain them.
    pub secrets: Vec<(&'static str, String)>,
}

impl Actors<'_> {
    fn client(&self, who: &str) -> Client {
        if who == "anonymous" {
            return new_client();
        }
        self.cast
            .iter()
            .find(|(name, _)| *name == who)
            .map(|(_, chatter)| chatter.http.clone())
            .unwrap_or_else(|| panic!("no actor named {who}"))
    }
}

/// What one request got.
pub struct Answer {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub text: String,
}

pub async fn call(
    app: &TestApp,
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    let resp = request.send().await.expect("request sent");
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = resp.text().await.expect("response body");
    let body =
        if is_json {
            Some(serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("{path}: a JSON content type but not JSON ({e}): {text}")
            }))
        } else {
            None
        };
    Answer { status, body, text }
}

/// Sends every row in order and checks status, code and the leak scan; fails once at the end
/// with every row that did not get what it should.
pub async fn run_matrix(app: &TestApp, actors: &Actors<'_>, rows: &[Row]) {
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let client = actors.client(row.who);
        let answer = call(
            app,
            &client,
            row.method.clone(),
            &row.path,
            row.body.as_ref(),
        )
        .await;
        let label = format!("row {i}: {} {} {}", row.who, row.method, row.path);
        if let Some(problem) = check_answer(row, &answer) {
            failures.push(format!("{label}: {problem}"));
        }
        if let Some(body) = &answer.body
            && let Err(leak) = scan(body, row.who, &actors.secrets)
        {
            failures.push(format!("{label}: {leak}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn check_answer(row: &Row, answer: &Answer) -> Option<String> {
    if answer.status.as_u16() != row.status {
        return Some(format!(
            "expected {} {:?}, got {} {}",
            row.status, row.code, answer.status, answer.text
        ));
    }
    if answer.status.is_client_error() || answer.status.is_server_error() {
        let Some(body) = &answer.body else {
            return Some(format!("an error without a JSON body: {}", answer.text));
        };
        if body["message"].as_str().is_none_or(str::is_empty) {
            return Some(format!("an error without a message: {body}"));
        }
        if let Some(code) = row.code
            && body["code"] != code
        {
            return Some(format!("expected code {code}, got {body}"));
        }
    }
    None
}

/// Key names that must never appear in a response.
const FORBIDDEN_KEYS: &[&str] = &["password", "password_hash", "hash", "passwd", "secret"];

/// Checks one response body seen by `viewer`: no key that looks like a password or hash, and
/// none of the secrets of other users.
pub fn scan(body: &Value, viewer: &str, secrets: &[(&'static str, String)]) -> Result<(), String> {
    let mut problems = Vec::new();
    walk(body, &mut |key, value| {
        if let Some(key) = key {
            let lower = key.to_ascii_lowercase();
            if FORBIDDEN_KEYS.contains(&lower.as_str()) || lower.ends_with("_hash") {
                problems.push(format!("a `{key}` field"));
            }
        }
        if let Value::String(text) = value {
            let lower = text.to_lowercase();
            for (owner, secret) in secrets {
                if *owner != viewer && lower.contains(&secret.to_lowercase()) {
                    problems.push(format!("{owner}'s private `{secret}`"));
                }
            }
            if text.starts_with("$2a$") || text.starts_with("$2b$") || text.starts_with("$2y$") {
                problems.push("a bcrypt hash".to_owned());
            }
        }
    });
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("leaks {} in {body}", problems.join(", ")))
    }
}

fn walk(value: &Value, visit: &mut impl FnMut(Option<&str>, &Value)) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                visit(Some(key), inner);
                walk(inner, visit);
            }
        }
        Value::Array(items) => {
            for inner in items {
                visit(None, inner);
                walk(inner, visit);
            }
        }
        other => visit(None, other),
    }
}

/// A unique marker for private strings, so a scan cannot match by accident.
pub fn marker(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// An approval group of `owner` with `admin` (an admin) and `member`, the owner's private
/// group remark (a marker tagged `remark_tag`) and a pending join request by `requester`.
/// Returns the group id, the remark and the request id.
pub async fn approval_group_with_request(
    app: &TestApp,
    owner: &Chatter,
    admin: &Chatter,
    member: &Chatter,
    requester: &Chatter,
    remark_tag: &str,
) -> (String, String, String) {
    let group = group_in_mode(app, owner, "approval").await;
    app.add_to_group(owner, &group, admin).await;
    app.add_to_group(owner, &group, member).await;
    make_admin(app, owner, &group, admin).await;
    let remark = marker(remark_tag);
    let resp = patch(
        app,
        &owner.http,
        &format!("/groups/{group}/me"),
        &json!({ "remark": remark }),
    )
    .await;
    ok_json(resp, "the owner's group remark").await;
    let body = json_with(
        join(app, requester, &group, &json!({})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let request = body["request"]["id"]
        .as_str()
        .expect("join request id")
        .to_owned();
    (group, remark, request)
}
