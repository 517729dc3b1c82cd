//! Hostile input against a running server, generated with proptest (bounded case counts, so
//! the file runs in seconds): arbitrary bytes and invalid UTF-8 as frames, deeply nested JSON,
//! huge and negative numbers, ids that are not ids, MongoDB operators where strings belong,
//! SQL metacharacters and Unicode edge cases in every HTTP field. Never a 500 or a 50000 for
//! bad input, always an error with a code and a message, the connection keeps serving its
//! client, and another user's conversation keeps flowing throughout.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as RawFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::authz_support::marker;
use crate::groups_support::group_in_mode;
use crate::helpers::{TestApp, spawn_app};
use crate::people_support::{enc, make_friends};
use crate::ws_client::{BAD_FRAME, Chatter, Ended, OK, WsClient, dm};

/// A message round trip between two bystanders must stay under this.
const ROUND_TRIP_BUDGET: Duration = Duration::from_secs(2);

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // Cases run against a live server; the failing input is in the panic message.
        failure_persistence: None,
        max_shrink_iters: 16,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Strings that have broken parsers, queries and renderers before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "'",
    "\"",
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "\\",
    "\\'",
    "%",
    "_",
    "%_%",
    "`",
    "$ne",
    "$where",
    "{\"$gt\": \"\"}",
    "$regex",
    "\u{202e}gnp.exe",
    "e\u{301}\u{301}\u{301}",
    "\u{1F600}",
    "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}",
    "\u{FEFF}",
    "\u{200B}",
    "\u{FFFF}",
    "\u{10FFFF}",
    "\u{0085}",
    "\u{2028}",
    "\r\n",
    "\t",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "\u{FF21}\u{FF22}",
    "\u{130}",
    "\u{DF}",
    "\u{1D11E}",
    "null",
    "true",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "u:1:2",
    "g:0",
    "https://example.com/a.png",
    "javascript:alert(1)",
    "a@b.co",
    " A@B.CO ",
    "x@y",
];

/// Hostile strings: the list above, arbitrary Unicode, combinations and long runs.
fn hostile_string() -> impl Strategy<Value = String> {
    let nasty = prop::sample::select(NASTY).prop_map(str::to_owned);
    prop_oneof![
        4 => nasty.clone(),
        2 => any::<String>(),
        2 => prop::collection::vec(nasty.clone(), 1..6).prop_map(|parts| parts.concat()),
        1 => (nasty, 1usize..400).prop_map(|(s, n)| s.repeat(n).chars().take(6000).collect()),
        1 => "[a-zA-Z0-9_.-]{3,32}",
    ]
}

/// Raw JSON texts for a field: numbers JSON parsers choke on, operators, nesting, surrogates.
const RAW_VALUES: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "-0",
    "0",
    "-1",
    "1.5",
    "1e3",
    "null",
    "true",
    "[]",
    "{}",
    "{\"$ne\": null}",
    "{\"$gt\": \"\"}",
    "{\"$where\": \"sleep(1000)\"}",
    "{\"$oid\": \"ffffffffffffffffffffffff\"}",
    "\"$ne\"",
    "\"$where\"",
    "\"\\ud800\"",
    "\"\\udfff\"",
    "\"a\\ud83d\"",
    "\"\\ud83d\\ude00\"",
    "\"\\u0000\"",
    "\"u:1:2\"",
    "\"u:2:1\"",
    "\"u:1\"",
    "\"u:1:2:3\"",
    "\"g:\"",
    "\"g:-1\"",
    "\"g:0x1\"",
    "\"g:18446744073709551616\"",
    "\"U:1:2\"",
    "\" 1\"",
    "\"01\"",
    "\"-1-5\"",
    "\"5--3\"",
    "\"1-2-3\"",
    "\"99999999999999999999-1\"",
    "\"1000000001-1\"",
    "\"+1-+1\"",
    "\"0-0\"",
    "\"all\"",
    "\"me\"",
    "\"ALL\"",
    "\"ffffffffffffffffffffffff\"",
    "\"fffffffffffffffffffffff\"",
    "\"zzzzzzzzzzzzzzzzzzzzzzzz\"",
];

fn json_text(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(RAW_VALUES).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        3 => hostile_string().prop_map(|s| json_text(&s)),
        1 => (0usize..300).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        1 => (any::<i64>(), any::<i64>()).prop_map(|(a, b)| format!("\"{a}-{b}\"")),
        1 => (any::<i64>(), any::<i64>()).prop_map(|(a, b)| format!("\"u:{a}:{b}\"")),
        1 => any::<i64>().prop_map(|g| format!("\"g:{g}\"")),
        1 => prop::collection::vec((hostile_string(), hostile_value_leaf()), 0..4).prop_map(|pairs| {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {v}", json_text(k)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }),
    ]
}

fn hostile_value_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(RAW_VALUES).prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

const FIELDS: &[&str] = &[
    "to",
    "conversation",
    "content",
    "type",
    "limit",
    "before_seq",
    "seq",
    "scope",
    "since",
    "client_msg_id",
    "from",
    "$where",
    "op_type",
];

/// A frame with a (mostly) real op_type and hostile values in its fields.
fn hostile_frame() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        6 => (1i64..=8).prop_map(|n| n.to_string()),
        1 => prop::sample::select(RAW_VALUES).prop_map(str::to_owned),
    ];
    let fields = prop::collection::vec((prop::sample::select(FIELDS), hostile_value()), 0..6);
    (op, fields).prop_map(|(op, fields)| {
        let mut parts = vec![format!("\"op_type\": {op}")];
        parts.extend(fields.iter().map(|(k, v)| format!("\"{k}\": {v}")));
        format!("{{{}}}", parts.join(", "))
    })
}

/// The reply codes a request may get; 50000 (server failure) is not among them.
const ANSWERS: &[i64] = &[200, 40000, 40003, 40004, 40013, 50004, 50005];

/// Two users who keep talking while the attack runs; each check is one round trip.
struct Bystanders {
    a_ws: WsClient,
    b_id: String,
    b_ws: WsClient,
    count: usize,
}

impl Bystanders {
    async fn new(app: &TestApp) -> Self {
        let (a, a_ws) = app.login_ws("bystander_a").await;
        let (b, b_ws) = app.login_ws("bystander_b").await;
        make_friends(app, &a, &b).await;
        let mut this = Self {
            a_ws,
            b_id: b.id,
            b_ws,
            count: 0,
        };
        this.check().await.expect("the bystanders talk");
        this
    }

    /// a writes to b, and b gets it within the budget.
    async fn check(&mut self) -> Result<(), String> {
        self.count += 1;
        let text = format!("still talking {}", self.count);
        let started = Instant::now();
        let reply = self.a_ws.send_to(&self.b_id, &text).await;
        if reply.code != 50004 {
            return Err(format!("the bystander's send got {}", reply.raw));
        }
        // Lobby messages from the attacker may arrive in between.
        while self.b_ws.next_event("message").await["content"] != text.as_str() {}
        let took = started.elapsed();
        if took > ROUND_TRIP_BUDGET {
            return Err(format!("a bystander round trip took {took:?}"));
        }
        Ok(())
    }
}

/// The attacker's connection, reopened whenever the server closed it.
struct Attacker {
    chatter: Chatter,
    ws: Option<WsClient>,
    /// Text of a conversation the attacker is not in: no reply may carry it.
    secret: String,
}

impl Attacker {
    async fn ws(&mut self, app: &TestApp) -> &mut WsClient {
        if self.ws.is_none() {
            self.ws = Some(app.connect_ws(&self.chatter).await);
        }
        self.ws.as_mut().expect("connected")
    }

    /// A valid frame still gets its answer.
    async fn still_served(&mut self, app: &TestApp) -> Result<(), String> {
        let reply = self.ws(app).await.request(json!({"op_type": 3})).await;
        if reply.code == OK {
            Ok(())
        } else {
            Err(format!("a valid frame afterwards got {}", reply.raw))
        }
    }
}

struct Arena {
    app: TestApp,
    attacker: Attacker,
    bystanders: Bystanders,
}

/// A server with a private conversation the attacker is not in, the attacker, and bystanders.
async fn arena() -> Arena {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let bob = app.chatter("bob").await;
    let secret = marker("secret");
    alice_ws.send_to(&bob.id, &secret).await;
    let group = group_in_mode(&app, &alice, "invite_only").await;
    alice_ws.send_group(&group, &secret).await.expect(OK);
    let chatter = app.chatter("mallory").await;
    let bystanders = Bystanders::new(&app).await;
    Arena {
        app,
        attacker: Attacker {
            chatter,
            ws: None,
            secret,
        },
        bystanders,
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// Sends one text frame as the attacker and checks the reply.
async fn probe_text(arena: &mut Arena, frame: String) -> Result<(), TestCaseError> {
    let app = &arena.app;
    let ws = arena.attacker.ws(app).await;
    ws.send_raw(Frame::text(frame.clone())).await;
    let reply = match ws.reply_or_end().await {
        Ok(reply) => reply,
        Err(how) => {
            arena.attacker.ws = None;
            return Err(fail(format!(
                "{frame}: the server closed the connection ({how:?})"
            )));
        }
    };
    if !ANSWERS.contains(&reply.code) {
        return Err(fail(format!("{frame}: reply {}", reply.raw)));
    }
    if reply.code == BAD_FRAME && reply.raw["msg"].as_str().is_none_or(str::is_empty) {
        return Err(fail(format!(
            "{frame}: a 40000 without a message: {}",
            reply.raw
        )));
    }
    if reply.raw.to_string().contains(&arena.attacker.secret) {
        return Err(fail(format!(
            "{frame}: leaks another conversation: {}",
            reply.raw
        )));
    }
    arena.attacker.still_served(app).await.map_err(fail)?;
    arena.bystanders.check().await.map_err(fail)
}

#[test]
fn hostile_ws_frames_with_hostile_fields_never_fail_the_server_or_leak() {
    let rt = runtime();
    let arena = Mutex::new(rt.block_on(arena()));
    let mut runner = runner(256);
    let result = runner.run(&hostile_frame(), |frame| {
        rt.block_on(async { probe_text(&mut *arena.lock().await, frame).await })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn hostile_ws_arbitrary_text_and_binary_frames_get_40000() {
    let rt = runtime();
    let arena = Mutex::new(rt.block_on(arena()));
    let mut runner = runner(128);
    let text_or_bytes = prop_oneof![
        any::<String>().prop_map(Ok),
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(Err),
    ];
    let result = runner.run(&text_or_bytes, |input| {
        rt.block_on(async {
            let mut guard = arena.lock().await;
            let arena = &mut *guard;
            match input {
                Ok(text) => probe_text(arena, text).await,
                Err(bytes) => {
                    let app = &arena.app;
                    let reply = arena
                        .attacker
                        .ws(app)
                        .await
                        .request_raw(Frame::binary(bytes))
                        .await;
                    if reply.code != BAD_FRAME || reply.op_type != 0 {
                        return Err(fail(format!("binary frame: {}", reply.raw)));
                    }
                    arena.attacker.still_served(app).await.map_err(fail)?;
                    arena.bystanders.check().await.map_err(fail)
                }
            }
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007.
#[test]
fn hostile_ws_invalid_utf8_in_a_text_frame_is_refused_and_hurts_nobody_else() {
    let rt = runtime();
    let arena = Mutex::new(rt.block_on(arena()));
    let mut runner = runner(32);
    let invalid = prop::collection::vec(any::<u8>(), 1..512)
        .prop_filter("not UTF-8", |b| std::str::from_utf8(b).is_err());
    let result = runner.run(&invalid, |bytes| {
        rt.block_on(async {
            let mut guard = arena.lock().await;
            let arena = &mut *guard;
            let app = &arena.app;
            let ws = arena.attacker.ws(app).await;
            let raw = RawFrame::message(bytes.clone(), OpCode::Data(Data::Text), true);
            ws.send_raw(Frame::Frame(raw)).await;
            match ws.reply_or_end().await {
                Ok(reply) if reply.code == BAD_FRAME => {}
                Ok(reply) => return Err(fail(format!("{bytes:?}: reply {}", reply.raw))),
                Err(Ended::Close(Some(1007))) => arena.attacker.ws = None,
                Err(how) => {
                    arena.attacker.ws = None;
                    return Err(fail(format!(
                        "{bytes:?}: the connection ended with {how:?}, not a 40000 reply or a 1007 close"
                    )));
                }
            }
            arena.attacker.still_served(app).await.map_err(fail)?;
            arena.bystanders.check().await.map_err(fail)
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[tokio::test]
async fn hostile_ws_deep_nesting_and_operator_objects_get_40000_without_leaking() {
    let mut arena = arena().await;
    let depth = 10_000;
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let alice_bob = dm("1", "2");
    let frames = [
        deep_array.clone(),
        deep_object.clone(),
        format!("{{\"op_type\": 2, \"to\": {deep_array}}}"),
        format!("{{\"op_type\": 7, \"since\": {deep_object}}}"),
        format!("{{\"op_type\": 1, \"to\": \"2\", \"type\": 1, \"content\": {deep_array}}}"),
        // MongoDB operators where a string or a number belongs.
        r#"{"op_type": 2, "conversation": {"$ne": null}}"#.to_owned(),
        r#"{"op_type": 2, "conversation": {"$regex": ".*"}, "limit": 100}"#.to_owned(),
        r#"{"op_type": 2, "to": {"$gt": ""}}"#.to_owned(),
        r#"{"op_type": 3, "conversation": {"$ne": null}}"#.to_owned(),
        r#"{"op_type": 4, "content": {"$ne": null}}"#.to_owned(),
        r#"{"op_type": 5, "content": {"$exists": true}, "scope": "all"}"#.to_owned(),
        r#"{"op_type": 7, "since": {"$where": "1"}}"#.to_owned(),
        format!(r#"{{"op_type": 7, "since": {{"{alice_bob}": {{"$gt": 0}}}}}}"#),
        r#"{"op_type": 2, "conversation": "g:1", "before_seq": {"$gt": 0}}"#.to_owned(),
        r#"{"op_type": 6, "to": {"$ne": null}, "type": 1, "content": "x"}"#.to_owned(),
        r#"{"op_type": 1, "to": "2", "type": {"$gt": 0}, "content": "x"}"#.to_owned(),
        r#"{"op_type": 1, "to": "2", "type": 1, "content": "x", "client_msg_id": {"$ne": null}}"#
            .to_owned(),
        r#"{"op_type": 2, "conversation": "$where"}"#.to_owned(),
        r#"{"op_type": {"$gt": 0}}"#.to_owned(),
    ];
    for frame in frames {
        let shown: String = frame.chars().take(120).collect();
        let ws = arena.attacker.ws(&arena.app).await;
        ws.send_raw(Frame::text(frame)).await;
        let reply = ws
            .reply_or_end()
            .await
            .unwrap_or_else(|how| panic!("{shown}: the connection ended ({how:?})"));
        assert_eq!(reply.code, BAD_FRAME, "{shown}: {}", reply.raw);
        assert!(
            reply.raw["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}: a message in {}",
            reply.raw
        );
        assert!(
            !reply.raw.to_string().contains(&arena.attacker.secret),
            "{shown}: leaks {}",
            reply.raw
        );
        arena.attacker.still_served(&arena.app).await.unwrap();
    }
    // `$`-strings where text belongs are stored and read back as text.
    let me = arena.attacker.chatter.id.clone();
    let ws = arena.attacker.ws(&arena.app).await;
    for text in ["$where", "{\"$ne\": null}", "$gt"] {
        ws.send_to(&me, text)
            .await
            .expect(crate::ws_client::DELIVERED);
    }
    let history = ws.history_of(&dm(&me, &me)).await;
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, vec!["$where", "{\"$ne\": null}", "$gt"]);
    arena.bystanders.check().await.unwrap();
}

#[tokio::test]
async fn hostile_ws_paging_values_out_of_range_get_40000_and_valid_extremes_are_capped() {
    let mut arena = arena().await;
    let me = arena.attacker.chatter.id.clone();
    let own = dm(&me, &me);
    let ws = arena.attacker.ws(&arena.app).await;
    for i in 0..3 {
        ws.send_to(&me, &format!("note {i}"))
            .await
            .expect(crate::ws_client::DELIVERED);
    }
    let bad = BAD_FRAME;
    // (paging fields as raw JSON, the reply code docs/protocol.md gives them)
    let cases: &[(&str, i64)] = &[
        (r#""limit": 0"#, bad),
        (r#""limit": -1"#, bad),
        (r#""limit": -0"#, bad),
        (r#""limit": -9223372036854775808"#, bad),
        (r#""limit": 18446744073709551616"#, bad),
        (r#""limit": 1e400"#, bad),
        (r#""limit": 1.5"#, bad),
        (r#""limit": "10""#, bad),
        (r#""limit": 9223372036854775807"#, OK),
        (r#""before_seq": 0"#, bad),
        (r#""before_seq": -1"#, bad),
        (r#""before_seq": 1e400"#, bad),
        (r#""before_seq": 9223372036854775807, "limit": 2"#, OK),
        (r#""content": "0-0""#, bad),
        (r#""content": "-1-5""#, bad),
        (r#""content": "5-""#, bad),
        (r#""content": "-5""#, bad),
        (r#""content": "a-b""#, bad),
        (r#""content": "1-2-3""#, bad),
        (r#""content": " 1-1""#, bad),
        // Deeper than messages.max_history_skip (10,000): page with before_seq instead.
        (r#""content": "10001-1""#, bad),
        (r#""content": "1000000000-100""#, bad),
        (r#""content": "18446744073709551616-1""#, bad),
        (r#""content": "1-9223372036854775808""#, bad),
        (r#""content": "0-9223372036854775807""#, OK),
        (r#""content": "10000-100""#, OK),
        (r#""content": 5"#, bad),
    ];
    for (paging, expected) in cases {
        let frame = format!(r#"{{"op_type": 2, "conversation": "{own}", {paging}}}"#);
        ws.send_raw(Frame::text(frame.clone())).await;
        let reply = ws
            .reply_or_end()
            .await
            .unwrap_or_else(|how| panic!("{frame}: the connection ended ({how:?})"));
        assert_eq!(reply.code, *expected, "{frame}: {}", reply.raw);
        if reply.code == OK {
            let page = reply.messages();
            assert!(page.len() <= 100, "{frame}: capped at 100");
            assert!(page.iter().all(|m| m.conversation == own), "{frame}");
        }
    }
    // The default page, for comparison: the three notes.
    assert_eq!(ws.history_of(&own).await.len(), 3);
    arena.bystanders.check().await.unwrap();
}

#[test]
fn hostile_ws_unicode_content_round_trips_exactly() {
    let rt = runtime();
    let arena = Mutex::new(rt.block_on(arena()));
    let mut runner = runner(64);
    let content = prop_oneof![
        hostile_string(),
        prop::collection::vec(any::<char>(), 1..200).prop_map(|c| c.into_iter().collect()),
    ];
    let result = runner.run(&content, |text: String| {
        rt.block_on(async {
            let mut guard = arena.lock().await;
            let arena = &mut *guard;
            let me = arena.attacker.chatter.id.clone();
            let app = &arena.app;
            let ws = arena.attacker.ws(app).await;
            let reply = ws.send_to(&me, &text).await;
            let chars = text.chars().count();
            match reply.code {
                50004 => {
                    let stored = reply.message();
                    if stored.content != text {
                        return Err(fail(format!("{text:?} came back as {:?}", stored.content)));
                    }
                    let page = ws
                        .request(json!({"op_type": 2, "conversation": dm(&me, &me), "limit": 1}))
                        .await;
                    let read = page.messages();
                    if read.last().map(|m| m.content.as_str()) != Some(text.as_str()) {
                        return Err(fail(format!("{text:?} reads back as {read:?}")));
                    }
                }
                40000 if text.trim().is_empty() => {}
                // Control characters other than line breaks and tabs are refused (40000).
                40000
                    if text
                        .chars()
                        .any(|c| c.is_control() && c != '\n' && c != '\t') => {}
                40013 if chars > 4000 => {}
                _ => return Err(fail(format!("{text:?}: {}", reply.raw))),
            }
            arena.bystanders.check().await.map_err(fail)
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

// ---- HTTP ------------------------------------------------------------------------------------

/// What a hostile request may get: anything but a 5xx, and a well-formed error body for a 4xx.
async fn checked(
    app: &TestApp,
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), String> {
    let mut request = client.request(method.clone(), app.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    let resp = request
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    answer_of(resp, &format!("{method} {path} {body:?}")).await
}

async fn answer_of(resp: reqwest::Response, what: &str) -> Result<(StatusCode, Value), String> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{what}: {e}"))?;
    if status.is_server_error() {
        return Err(format!("{what}: {status} {text}"));
    }
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{what}: {status} with a body that is not JSON ({e}): {text}"))?;
    if status.is_client_error()
        && !(body["code"].as_str().is_some_and(|c| !c.is_empty())
            && body["message"].as_str().is_some_and(|m| !m.is_empty()))
    {
        return Err(format!(
            "{what}: {status} without a code and a message: {body}"
        ));
    }
    Ok((status, body))
}

fn expect_in(got: (StatusCode, Value), allowed: &[u16], what: &str) -> Result<Value, String> {
    if allowed.contains(&got.0.as_u16()) {
        Ok(got.1)
    } else {
        Err(format!("{what}: {} {}", got.0, got.1))
    }
}

struct HttpArena {
    app: TestApp,
    user: Chatter,
    friend: Chatter,
    group: String,
}

/// One request of the field sweep: who, how, where, the body, and the statuses it may get.
type FieldCase<'a> = (&'a Client, Method, String, Option<Value>, &'static [u16]);

/// Every JSON field of the HTTP API, with this hostile string in it.
async fn every_field(arena: &HttpArena, s: &str) -> Result<(), String> {
    let app = &arena.app;
    let anonymous = crate::helpers::new_client();
    let me = &arena.user.http;
    let g = &arena.group;
    let f = &arena.friend.id;
    let cases: Vec<FieldCase<'_>> = vec![
        (
            &anonymous,
            Method::POST,
            "/user/register".into(),
            Some(json!({"user_name": s, "password": "long enough password", "nick_name": "N"})),
            &[201, 400, 409],
        ),
        (
            &anonymous,
            Method::POST,
            "/user/register".into(),
            Some(json!({"user_name": "fuzz_probe", "password": s, "nick_name": s, "email": s})),
            &[201, 400, 409],
        ),
        (
            &anonymous,
            Method::POST,
            "/user/login".into(),
            Some(json!({"user_name": s, "password": s})),
            &[400, 401],
        ),
        (
            &anonymous,
            Method::POST,
            "/user/email_code".into(),
            Some(json!({"email": s, "purpose": s})),
            &[400],
        ),
        (
            &anonymous,
            Method::POST,
            "/user/reset_password".into(),
            Some(json!({"email": s, "email_code": s, "new_password": s})),
            &[400],
        ),
        (
            me,
            Method::PATCH,
            "/user/me".into(),
            Some(json!({"nick_name": s})),
            &[200, 400],
        ),
        (
            me,
            Method::PATCH,
            "/user/me".into(),
            Some(json!({"avatar": s})),
            &[200, 400],
        ),
        (
            me,
            Method::PATCH,
            "/user/me".into(),
            Some(json!({"email": s})),
            &[200, 400, 409],
        ),
        (
            me,
            Method::POST,
            "/user/set_password".into(),
            Some(json!({"old_password": s, "new_password": s})),
            // Wrong old passwords count like failed logins: after a few, 429.
            &[400, 403, 429],
        ),
        (
            me,
            Method::POST,
            "/groups".into(),
            Some(json!({"name": s, "notice": s, "avatar": s, "join_mode": s})),
            &[201, 400],
        ),
        (
            me,
            Method::POST,
            "/groups".into(),
            Some(json!({"name": s})),
            &[201, 400],
        ),
        (
            me,
            Method::PATCH,
            format!("/groups/{g}"),
            Some(json!({"name": s})),
            &[200, 400],
        ),
        (
            me,
            Method::PATCH,
            format!("/groups/{g}"),
            Some(json!({"notice": s})),
            &[200, 400],
        ),
        (
            me,
            Method::PATCH,
            format!("/groups/{g}/me"),
            Some(json!({"nickname": s, "remark": s})),
            &[200, 400],
        ),
        (
            me,
            Method::POST,
            format!("/groups/{g}/members"),
            Some(json!({"user_id": s})),
            &[200, 400, 404],
        ),
        (
            me,
            Method::POST,
            format!("/groups/{g}/mutes"),
            Some(json!({"user_id": s, "duration_secs": s})),
            &[400],
        ),
        (
            me,
            Method::POST,
            "/friends/requests".into(),
            Some(json!({"user_id": s, "message": s})),
            &[400, 404],
        ),
        (
            me,
            Method::POST,
            "/friends/requests".into(),
            Some(json!({"user_id": f, "message": s})),
            &[200, 400, 409],
        ),
        (
            me,
            Method::PATCH,
            format!("/friends/{f}"),
            Some(json!({"remark": s})),
            &[200, 400],
        ),
        (
            me,
            Method::POST,
            "/blocks".into(),
            Some(json!({"user_id": s})),
            &[400, 404],
        ),
        (
            me,
            Method::PATCH,
            format!("/conversations/{}", enc(s)),
            Some(json!({"pinned": true})),
            &[200, 400, 403, 404],
        ),
        (
            me,
            Method::GET,
            format!("/users?q={}", enc(s)),
            None,
            &[200, 400],
        ),
        (
            me,
            Method::GET,
            format!("/users?user_name={}", enc(s)),
            None,
            &[200, 400],
        ),
        (
            me,
            Method::GET,
            format!("/users?email={}", enc(s)),
            None,
            &[200, 400],
        ),
        (
            me,
            Method::GET,
            format!("/users/{}", enc(s)),
            None,
            // 200 when the string happens to be an existing id (the arena's own are 1, 2 ...).
            &[200, 400, 404],
        ),
        (
            me,
            Method::GET,
            format!("/groups/{}", enc(s)),
            None,
            // 200 when the string happens to be an existing id (the arena's own are 1, 2 ...).
            &[200, 400, 404],
        ),
        (
            me,
            Method::GET,
            format!("/friends/{}", enc(s)),
            None,
            &[200, 400, 404],
        ),
        (
            me,
            Method::DELETE,
            format!("/user/devices/{}", enc(s)),
            None,
            &[400, 404],
        ),
        (
            me,
            Method::GET,
            format!("/friends?limit={}", enc(s)),
            None,
            &[200, 400],
        ),
        (
            me,
            Method::GET,
            format!("/conversations?offset={}", enc(s)),
            None,
            &[200, 400],
        ),
    ];
    for (client, method, path, body, allowed) in cases {
        let what = format!("{method} {path} {body:?}");
        let got = checked(app, client, method, &path, body.as_ref()).await?;
        expect_in(got, allowed, &what)?;
    }
    // What was accepted reads back exactly as sent (trimmed, as documented).
    let nick = json!({ "nick_name": s });
    let got = checked(app, me, Method::PATCH, "/user/me", Some(&nick)).await?;
    if got.0 == StatusCode::OK && got.1["user"]["nick_name"] != s.trim() {
        return Err(format!(
            "nick_name {s:?} reads back as {}",
            got.1["user"]["nick_name"]
        ));
    }
    let remark = json!({ "remark": s });
    let got = checked(
        app,
        me,
        Method::PATCH,
        &format!("/friends/{f}"),
        Some(&remark),
    )
    .await?;
    if got.0 == StatusCode::OK {
        let (_, profile) = checked(app, me, Method::GET, &format!("/users/{f}"), None).await?;
        let expected = if s.trim().is_empty() {
            Value::Null
        } else {
            json!(s.trim())
        };
        if profile["remark"] != expected {
            return Err(format!("remark {s:?} reads back as {}", profile["remark"]));
        }
    }
    Ok(())
}

#[test]
fn hostile_http_strings_in_every_field_get_a_4xx_with_a_code_never_a_5xx() {
    let rt = runtime();
    let arena = rt.block_on(async {
        let app = spawn_app().await;
        let user = app.chatter("fuzzer").await;
        let friend = app.chatter("friend").await;
        make_friends(&app, &user, &friend).await;
        let group = group_in_mode(&app, &user, "open").await;
        HttpArena {
            app,
            user,
            friend,
            group,
        }
    });
    let bystanders = Mutex::new(rt.block_on(Bystanders::new(&arena.app)));
    let mut runner = runner(64);
    let result = runner.run(&hostile_string(), |s| {
        rt.block_on(async {
            every_field(&arena, &s).await.map_err(fail)?;
            bystanders.lock().await.check().await.map_err(fail)
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    // Nothing was dropped or broken on the way: accounts still log in, the friend is a friend.
    rt.block_on(async {
        let resp = arena
            .app
            .login_with(
                &crate::helpers::new_client(),
                "fuzzer",
                crate::helpers::PASSWORD,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = crate::groups_support::ok_json(
            arena
                .app
                .get(&arena.user.http, &format!("/friends/{}", arena.friend.id))
                .await,
            "is friend",
        )
        .await;
        assert_eq!(body["is_friend"], true);
    });
}

/// Bodies that cannot be built as a `serde_json::Value` (lone surrogates, numbers out of range,
/// deep nesting, trailing bytes), sent raw.
#[tokio::test]
async fn hostile_http_raw_bodies_are_400_invalid_json_or_a_named_field_on_every_route() {
    let app = spawn_app().await;
    let user = app.chatter("fuzzer").await;
    let group = group_in_mode(&app, &user, "open").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // Not a body any route can read (not JSON, or nested past any parser's limit): every route
    // that reads a body answers 400.
    let broken: Vec<String> = vec![
        deep,
        "{\"name\": \"x\"} trailing".into(),
        "\u{FEFF}{\"name\": \"x\"}".into(),
        "{\"name\": \"x\"".into(),
        String::new(),
    ];
    // JSON whose hostile value sits in a field the route reads: 400, naming the field or
    // calling the JSON invalid.
    let surrogate_user =
        r#"{"user_name": "\ud800", "password": "long enough password", "nick_name": "x"}"#;
    let surrogate_password =
        r#"{"user_name": "ok_name", "password": "\udfff\udfff", "nick_name": "x"}"#;
    let mutes = format!("/groups/{group}/mutes");
    let patch_group = format!("/groups/{group}");
    let conversation = format!("/conversations/{}", dm(&user.id, &user.id));
    let targeted: Vec<(Method, &str, &str)> = vec![
        (Method::POST, "/user/register", surrogate_user),
        (Method::POST, "/user/register", surrogate_password),
        (
            Method::POST,
            "/user/login",
            r#"{"user_name": {"$ne": null}, "password": {"$ne": null}}"#,
        ),
        (
            Method::POST,
            "/user/login",
            r#"{"user_name": "fuzzer", "password": {"$gt": ""}}"#,
        ),
        (Method::PATCH, "/user/me", r#"{"nick_name": "a\ud83d"}"#),
        (Method::PATCH, "/user/me", r#"{"nick_name": "\u0000"}"#),
        (Method::PATCH, "/user/me", r#"{"sex": 1e400}"#),
        (
            Method::PATCH,
            "/user/me",
            r#"{"sex": 18446744073709551616}"#,
        ),
        (Method::PATCH, "/user/me", r#"{"sex": -1}"#),
        (Method::PATCH, "/user/me", r#"{"sex": 1.5}"#),
        (
            Method::POST,
            "/blocks",
            r#"{"user_id": 18446744073709551616}"#,
        ),
        (Method::POST, "/blocks", r#"{"user_id": -1}"#),
        (Method::POST, "/blocks", r#"{"user_id": {"$ne": null}}"#),
        (Method::POST, "/friends/requests", r#"{"user_id": ["1"]}"#),
        (
            Method::POST,
            &mutes,
            r#"{"user_id": "2", "duration_secs": 1e400}"#,
        ),
        (
            Method::POST,
            &mutes,
            r#"{"user_id": "2", "duration_secs": -5}"#,
        ),
        (
            Method::POST,
            &mutes,
            r#"{"user_id": "2", "duration_secs": 18446744073709551616}"#,
        ),
        (Method::POST, "/groups", r#"{"name": ["a"]}"#),
        (
            Method::POST,
            "/groups",
            r#"{"name": "ok", "notice": {"$gt": ""}}"#,
        ),
        (Method::PATCH, &patch_group, r#"{"name": "\ud800"}"#),
        (Method::PATCH, &patch_group, r#"{"muted": "true"}"#),
        (Method::PATCH, &conversation, r#"{"pinned": "true"}"#),
        (Method::PATCH, &conversation, r#"{"hidden": 1}"#),
    ];
    let routes: Vec<(Method, String)> = vec![
        (Method::POST, "/user/register".into()),
        (Method::POST, "/user/login".into()),
        (Method::PATCH, "/user/me".into()),
        (Method::POST, "/user/set_password".into()),
        (Method::POST, "/user/email_code".into()),
        (Method::POST, "/user/reset_password".into()),
        (Method::POST, "/groups".into()),
        (Method::PATCH, format!("/groups/{group}")),
        (Method::POST, format!("/groups/{group}/members")),
        (Method::POST, format!("/groups/{group}/mutes")),
        (Method::POST, format!("/groups/{group}/transfer")),
        (Method::POST, format!("/groups/{group}/admins")),
        (Method::PATCH, format!("/groups/{group}/me")),
        (Method::POST, "/friends/requests".into()),
        (Method::PATCH, "/friends/2".into()),
        (Method::POST, "/blocks".into()),
        (Method::PATCH, conversation.clone()),
    ];
    let mut cases: Vec<(Method, String, String)> = Vec::new();
    for (method, path) in &routes {
        for body in &broken {
            cases.push((method.clone(), path.clone(), body.clone()));
        }
    }
    for (method, path, body) in targeted {
        cases.push((method, path.to_owned(), body.to_owned()));
    }
    let mut failures = Vec::new();
    for (method, path, body) in cases {
        let shown: String = body.chars().take(80).collect();
        let resp = user
            .http
            .request(method.clone(), app.url(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let what = format!("{method} {path} {shown}");
        match answer_of(resp, &what).await {
            Ok((status, body)) if status == StatusCode::BAD_REQUEST => {
                let code = body["code"].as_str().unwrap_or("");
                if !["invalid_json", "validation_failed"].contains(&code) {
                    failures.push(format!("{what}: code {body}"));
                }
            }
            Ok((status, body)) => failures.push(format!("{what}: {status} {body}")),
            Err(problem) => failures.push(problem),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing of it changed the account, and the server is fine.
    let me = crate::groups_support::ok_json(app.get(&user.http, "/user/me").await, "me").await;
    assert_eq!(me["user"]["nick_name"], "fuzzer", "{me}");
    assert_eq!(me["user"]["sex"], 0, "{me}");
}
