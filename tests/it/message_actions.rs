//! Message actions: op 9 edit, op 10 reactions, reply_to and forward_of, pins and search,
//! against the real services.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{json_of, spawn_app};
use crate::ws_client::{BAD_FRAME, DELIVERED, FORBIDDEN, NOT_FOUND, OK, dm};

#[tokio::test]
async fn an_edit_replaces_the_text_for_everyone_and_keeps_no_old_text_visible() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let sent = alice_ws.send_to(&bob.id, "helo").await;
    sent.expect(DELIVERED);
    let id = sent.data["id"].as_str().unwrap().to_owned();
    assert_eq!(sent.data["edited_at"], Value::Null);
    bob_ws.next_message().await;

    let edited = alice_ws
        .request(json!({"op_type": 9, "message_id": id, "content": "hello"}))
        .await;
    edited.expect(OK);
    assert_eq!(edited.data["content"], "hello");
    assert!(edited.data["edited_at"].is_string());
    assert!(edited.data.get("edits").is_none(), "no history on the wire");
    let event = bob_ws.next_event("edited").await;
    assert_eq!(
        (event["id"].as_str(), event["content"].as_str()),
        (Some(id.as_str()), Some("hello"))
    );

    // The same text again: answered, nothing pushed.
    alice_ws
        .request(json!({"op_type": 9, "message_id": id, "content": "hello"}))
        .await
        .expect(OK);
    bob_ws.expect_no_event_of("edited", 400).await;

    // Only the sender; history shows the new text.
    bob_ws
        .request(json!({"op_type": 9, "message_id": id, "content": "mine now"}))
        .await
        .expect(FORBIDDEN);
    let page = bob_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    assert_eq!(page.data["messages"][0]["content"], "hello");
    alice_ws
        .request(json!({"op_type": 9, "message_id": id, "content": " "}))
        .await
        .expect(BAD_FRAME);
}

#[tokio::test]
async fn reactions_are_counted_per_reader_and_bounded() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let sent = alice_ws.send_to(&bob.id, "react to me").await;
    let id = sent.data["id"].as_str().unwrap().to_owned();

    let react = |emoji: &str, action: &str| json!({"op_type": 10, "message_id": id, "emoji": emoji, "action": action});
    let reply = bob_ws.request(react("👍", "add")).await;
    reply.expect(OK);
    assert_eq!(
        reply.data["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": true}])
    );
    let event = alice_ws.next_event("reaction").await;
    assert_eq!(
        (event["user_id"].as_str(), event["action"].as_str()),
        (Some(bob.id.as_str()), Some("add"))
    );

    let page = alice_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    assert_eq!(
        page.data["messages"][0]["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": false}])
    );
    // At most three distinct per user; not an emoji: 40000.
    for emoji in ["🎉", "❤️"] {
        bob_ws.request(react(emoji, "add")).await.expect(OK);
    }
    bob_ws.request(react("😀", "add")).await.expect(BAD_FRAME);
    bob_ws.request(react("a", "add")).await.expect(BAD_FRAME);
    let reply = bob_ws.request(react("👍", "remove")).await;
    reply.expect(OK);
    assert_eq!(reply.data["reactions"].as_array().map(Vec::len), Some(2));
    // Someone outside the conversation learns nothing.
    let (_, mut carol_ws) = app.login_ws("carol").await;
    carol_ws.request(react("👍", "add")).await.expect(NOT_FOUND);
}

#[tokio::test]
async fn replies_quote_the_original_until_it_is_recalled_and_forwards_copy_it() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let (carol, mut carol_ws) = app.login_ws("carol").await;
    let original = alice_ws.send_to(&bob.id, "the plan").await;
    let id = original.data["id"].as_str().unwrap().to_owned();

    let reply = bob_ws
        .request(json!({"op_type": 1, "to": alice.id, "type": 1, "content": "ok", "reply_to": id}))
        .await;
    reply.expect(DELIVERED);
    assert_eq!(reply.data["reply_to"]["excerpt"], "the plan");
    assert_eq!(reply.data["reply_to"]["from"], alice.id.as_str());

    // Bob forwards it to carol: a copy; carol could not read the original, so no author.
    let forward = bob_ws
        .request(json!({"op_type": 1, "to": carol.id, "forward_of": id}))
        .await;
    assert!(
        [DELIVERED, 50005].contains(&forward.code),
        "{:?}",
        forward.code
    );
    assert_eq!(forward.data["content"], "the plan");
    assert_eq!(forward.data["forwarded"], true);
    assert!(forward.data.get("forwarded_from").is_none());
    // Carol cannot forward what she cannot read.
    carol_ws
        .request(json!({"op_type": 1, "to": alice.id, "forward_of": id}))
        .await
        .expect(NOT_FOUND);

    alice_ws
        .request(json!({"op_type": 5, "message_id": id, "scope": "all"}))
        .await
        .expect(OK);
    let page = bob_ws
        .request(json!({"op_type": 2, "conversation": dm(&alice.id, &bob.id)}))
        .await;
    let quoted = &page.data["messages"][0]["reply_to"];
    assert_eq!(
        (quoted["excerpt"].clone(), quoted["recalled"].clone()),
        (Value::Null, json!(true))
    );
}

#[tokio::test]
async fn search_finds_accented_and_cjk_words_only_where_the_caller_reads() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, _bob_ws) = app.login_ws("bob").await;
    let (carol, _carol_ws) = app.login_ws("carol").await;
    alice_ws.send_to(&bob.id, "Rendez-vous au Café Crème").await;
    alice_ws.send_to(&bob.id, "明天在東京都开会").await;
    alice_ws.send_to(&bob.id, "nothing here").await;

    let search = |who: &crate::ws_client::Chatter, q: &str| {
        let url = app.url(&format!("/search/messages?q={}", urlencode(q)));
        let client = who.http.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let found = json_of(search(&bob, "cafe creme").await).await;
    assert_eq!(
        found["results"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    assert_eq!(
        found["results"][0]["message"]["content"],
        "Rendez-vous au Café Crème"
    );
    assert_eq!(found["results"][0]["conversation"], dm(&alice.id, &bob.id));
    let found = json_of(search(&bob, "東京").await).await;
    assert_eq!(
        found["results"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    let found = json_of(search(&carol, "cafe").await).await;
    assert_eq!(found["results"], json!([]), "not carol's conversation");
    let short = search(&bob, "c").await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pins_in_a_one_to_one_write_a_notice_and_list_newest_first() {
    let app = spawn_app().await;
    let (alice, mut alice_ws) = app.login_ws("alice").await;
    let (bob, mut bob_ws) = app.login_ws("bob").await;
    let conversation = dm(&alice.id, &bob.id);
    let sent = alice_ws.send_to(&bob.id, "pin me").await;
    let id = sent.data["id"].as_str().unwrap().to_owned();
    bob_ws.next_message().await;

    let path = format!("/conversations/{conversation}/pins");
    let body = json!({"message_id": id});
    let pin = || app.post(&bob.http, &path, &body);
    assert_eq!(pin().await.status(), StatusCode::CREATED);
    let event = alice_ws.next_event("pinned").await;
    assert_eq!(event["message_id"], id.as_str());
    assert_eq!(pin().await.status(), StatusCode::OK);

    let list = json_of(alice.http.get(app.url(&path)).send().await.unwrap()).await;
    assert_eq!(list["pins"][0]["message"]["id"], id.as_str());
    assert_eq!(list["pins"][0]["pinned_by"], bob.id.as_str());

    let (carol, _) = app.login_ws("carol").await;
    let refused = carol.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let gone = alice
        .http
        .delete(app.url(&format!("{path}/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);
    let list = json_of(alice.http.get(app.url(&path)).send().await.unwrap()).await;
    assert_eq!(list["pins"], json!([]));
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
