//! Profiles, PATCH /user/me, search and the list envelope (docs/people.md, "Lists" and
//! "Profiles and search"), and the session every people route needs.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_error, json_of, new_client, spawn_app, spawn_app_sharing};
use crate::people_support::{
    assert_profile_shape, delete, enc, eventually, expect_validation, get_list, ids_of, items,
    json_with, make_friends, patch, profile, register_user,
};

#[tokio::test]
async fn people_routes_need_a_session() {
    let app = spawn_app().await;
    let anonymous = new_client();
    let one = json!({"user_id": "1"});
    let gets = [
        "/users/1",
        "/users?q=al",
        "/users?user_name=alice",
        "/friends/requests",
        "/friends",
        "/friends/1",
        "/blocks",
        "/user/devices",
    ];
    for path in gets {
        let resp = app.get(&anonymous, path).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let posts = [
        ("/friends/requests", one.clone()),
        ("/friends/requests/1/accept", json!({})),
        ("/friends/requests/1/reject", json!({})),
        ("/friends/requests/1/ignore", json!({})),
        ("/blocks", one.clone()),
    ];
    for (path, body) in posts {
        let resp = app.post(&anonymous, path, &body).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let patches = [
        ("/user/me", json!({"nick_name": "x"})),
        ("/friends/1", json!({"remark": "x"})),
    ];
    for (path, body) in patches {
        let resp = patch(&app, &anonymous, path, &body).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    for path in ["/friends/1", "/blocks/1", "/user/devices/1"] {
        let resp = delete(&app, &anonymous, path).await;
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_profile_shows_only_public_fields_and_an_unknown_id_is_404() {
    let app = spawn_app().await;
    let alice = register_user(&app, "alice", "Alice A.", Some("alice@example.com")).await;
    let bob = app.chatter("bob").await;
    let alice_id = alice["id"].as_str().unwrap();

    let seen = profile(&app, &bob, alice_id).await;
    assert_profile_shape(&seen);
    assert_eq!(seen["id"], alice_id);
    assert_eq!(seen["user_name"], "alice");
    assert_eq!(seen["nick_name"], "Alice A.");
    assert_eq!(seen["avatar"], "");
    assert_eq!(seen["sex"], 0);
    assert_eq!(seen["online"], false, "{seen}");
    assert_eq!(seen["is_friend"], false, "{seen}");
    assert_eq!(seen["remark"], Value::Null, "{seen}");
    assert!(
        !seen.to_string().contains("alice@example.com"),
        "never the email: {seen}"
    );

    // One's own profile works too.
    let own = profile(&app, &bob, &bob.id).await;
    assert_profile_shape(&own);
    assert_eq!(own["user_name"], "bob");

    let resp = app.get(&bob.http, "/users/987654321").await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn online_follows_a_live_socket_on_any_process() {
    let app = spawn_app().await;
    let second = spawn_app_sharing(&app).await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    // Presence is shown to contacts (privacy.online_visible_to = "contacts").
    make_friends(&app, &alice, &bob).await;
    assert_eq!(profile(&app, &alice, &bob.id).await["online"], false);

    // Bob connects to the other process; alice asks this one.
    let bob_ws = second.connect_ws(&bob).await;
    eventually("bob shows online", || async {
        profile(&app, &alice, &bob.id).await["online"] == true
    })
    .await;

    bob_ws.close().await;
    eventually("bob shows offline after closing his socket", || async {
        profile(&app, &alice, &bob.id).await["online"] == false
    })
    .await;
}

#[tokio::test]
async fn is_friend_and_remark_are_from_the_callers_point_of_view() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let carol = app.chatter("carol").await;
    make_friends(&app, &alice, &bob).await;
    let resp = patch(
        &app,
        &alice.http,
        &format!("/friends/{}", bob.id),
        &json!({"remark": "Bobby from work"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let alice_sees_bob = profile(&app, &alice, &bob.id).await;
    assert_profile_shape(&alice_sees_bob);
    assert_eq!(alice_sees_bob["is_friend"], true, "{alice_sees_bob}");
    assert_eq!(
        alice_sees_bob["remark"], "Bobby from work",
        "{alice_sees_bob}"
    );

    let bob_sees_alice = profile(&app, &bob, &alice.id).await;
    assert_eq!(bob_sees_alice["is_friend"], true, "{bob_sees_alice}");
    assert_eq!(bob_sees_alice["remark"], Value::Null, "{bob_sees_alice}");

    let carol_sees_bob = profile(&app, &carol, &bob.id).await;
    assert_eq!(carol_sees_bob["is_friend"], false, "{carol_sees_bob}");
    assert_eq!(carol_sees_bob["remark"], Value::Null, "{carol_sees_bob}");
}

#[tokio::test]
async fn patch_me_changes_each_field() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;

    let resp = patch(
        &app,
        &alice.http,
        "/user/me",
        &json!({"nick_name": "  Queen Alice  "}),
    )
    .await;
    let user = json_with(resp, StatusCode::OK).await["user"].clone();
    assert_eq!(
        user["nick_name"], "Queen Alice",
        "trimmed as at registration"
    );
    assert_eq!(user["user_name"], "alice");
    assert_eq!(user["id"], alice.id);
    for field in ["avatar", "sex", "email", "created_at"] {
        assert!(user.get(field).is_some(), "the full user object: {user}");
    }

    let avatar = "https://cdn.example.com/a/alice.png";
    let user = json_with(
        patch(&app, &alice.http, "/user/me", &json!({ "avatar": avatar })).await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["avatar"], avatar);
    assert_eq!(user["nick_name"], "Queen Alice", "other fields stay");

    let user = json_with(
        patch(&app, &alice.http, "/user/me", &json!({"sex": 2})).await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["sex"], 2);
    assert_eq!(user["avatar"], avatar);

    let user = json_with(
        patch(
            &app,
            &alice.http,
            "/user/me",
            &json!({"email": "alice@example.com"}),
        )
        .await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["email"], "alice@example.com");

    // GET /user/me and the public profile agree (the profile without the email).
    let me = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    assert_eq!(me, user);
    let seen = profile(&app, &bob, &alice.id).await;
    assert_profile_shape(&seen);
    assert_eq!(seen["nick_name"], "Queen Alice");
    assert_eq!(seen["avatar"], avatar);
    assert_eq!(seen["sex"], 2);

    // Several at once; "" clears the avatar; plain http is fine; sex back to 0 and 1.
    let user = json_with(
        patch(
            &app,
            &alice.http,
            "/user/me",
            &json!({"avatar": "", "sex": 1, "nick_name": "Al"}),
        )
        .await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(
        (&user["avatar"], &user["sex"], &user["nick_name"]),
        (&json!(""), &json!(1), &json!("Al"))
    );
    let user = json_with(
        patch(
            &app,
            &alice.http,
            "/user/me",
            &json!({"avatar": "http://example.com/x.jpg", "sex": 0}),
        )
        .await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["avatar"], "http://example.com/x.jpg");
    assert_eq!(user["sex"], 0);
    let longest = format!("https://example.com/{}", "a".repeat(512 - 20));
    assert_eq!(longest.chars().count(), 512);
    let user = json_with(
        patch(&app, &alice.http, "/user/me", &json!({ "avatar": longest })).await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(
        user["avatar"],
        longest.as_str(),
        "512 characters are allowed"
    );

    // The email can be removed with null, and with "".
    let user = json_with(
        patch(&app, &alice.http, "/user/me", &json!({"email": null})).await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["email"], Value::Null, "{user}");
    patch(
        &app,
        &alice.http,
        "/user/me",
        &json!({"email": "alice2@example.com"}),
    )
    .await;
    let user = json_with(
        patch(&app, &alice.http, "/user/me", &json!({"email": ""})).await,
        StatusCode::OK,
    )
    .await["user"]
        .clone();
    assert_eq!(user["email"], Value::Null, "\"\" removes the email: {user}");
}

#[tokio::test]
async fn patch_me_names_each_invalid_field_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let before = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    let too_long_avatar = format!("https://example.com/{}", "a".repeat(512 - 19));
    assert_eq!(too_long_avatar.chars().count(), 513);
    let cases = [
        (json!({"nick_name": "   "}), "nick_name"),
        (json!({"nick_name": "n".repeat(33)}), "nick_name"),
        (json!({"avatar": "ftp://example.com/a.png"}), "avatar"),
        (json!({"avatar": "javascript:alert(1)"}), "avatar"),
        (json!({"avatar": "data:image/png;base64,AAAA"}), "avatar"),
        (json!({"avatar": "example.com/a.png"}), "avatar"),
        (json!({ "avatar": too_long_avatar }), "avatar"),
        (json!({"sex": 3}), "sex"),
        (json!({"sex": -1}), "sex"),
        (json!({"email": "not-an-email"}), "email"),
        // One bad field spoils the whole change.
        (json!({"nick_name": "Fine", "sex": 7}), "sex"),
    ];
    for (body, field) in cases {
        let resp = patch(&app, &alice.http, "/user/me", &body).await;
        let status = resp.status();
        let err = json_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "for {body}: {err}");
        assert_eq!(err["code"], "validation_failed", "for {body}: {err}");
        assert_eq!(err["field"], field, "for {body}: {err}");
    }
    let after = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    assert_eq!(after, before, "nothing changed");
}

#[tokio::test]
async fn patch_me_with_a_taken_email_is_a_conflict() {
    let app = spawn_app().await;
    register_user(&app, "bob", "Bob", Some("bob@example.com")).await;
    let alice = app.chatter("alice").await;
    let resp = patch(
        &app,
        &alice.http,
        "/user/me",
        &json!({"email": "bob@example.com"}),
    )
    .await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    let me = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    assert_eq!(me["email"], Value::Null);

    // One's own email again is no conflict.
    let bob = app.log_in("bob").await;
    let resp = patch(
        &app,
        &bob.http,
        "/user/me",
        &json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_me_with_an_empty_body_changes_nothing() {
    let app = spawn_app().await;
    register_user(&app, "alice", "Alice", Some("alice@example.com")).await;
    let alice = app.log_in("alice").await;
    let before = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    let body = json_with(
        patch(&app, &alice.http, "/user/me", &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["user"], before);
    let after = json_of(app.get(&alice.http, "/user/me").await).await["user"].clone();
    assert_eq!(after, before);
}

fn names(users: &[Value]) -> BTreeSet<String> {
    users
        .iter()
        .map(|u| u["user_name"].as_str().unwrap().to_owned())
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn search_matches_a_user_name_or_nick_name_prefix_ignoring_case() {
    let app = spawn_app().await;
    register_user(&app, "alice", "Wonder", None).await;
    register_user(&app, "ALBERT", "Bert", None).await;
    register_user(&app, "malory", "Mx M", None).await; // "al" inside the name, not a prefix
    register_user(&app, "bob", "Royal Pal", None).await; // "al" inside the nick, not a prefix
    register_user(&app, "frank", "ALfie", None).await; // "AL" starts the nick
    register_user(&app, "carol", "Carrie", None).await;
    let searcher = {
        register_user(&app, "zed", "Zed", None).await;
        app.log_in("zed").await
    };

    for q in ["al", "AL", "aL"] {
        let users = get_list(
            &app,
            &searcher.http,
            &format!("/users?q={}", enc(q)),
            "users",
        )
        .await;
        assert_eq!(
            names(&users),
            set(&["alice", "ALBERT", "frank"]),
            "q={q}: {users:?}"
        );
        for user in &users {
            assert_profile_shape(user);
        }
    }
    let users = get_list(&app, &searcher.http, "/users?q=carr", "users").await;
    assert_eq!(names(&users), set(&["carol"]));
    let users = get_list(&app, &searcher.http, "/users?q=xyz", "users").await;
    assert!(users.is_empty(), "{users:?}");
}

#[tokio::test]
async fn search_treats_like_metacharacters_literally() {
    let app = spawn_app().await;
    register_user(&app, "sure_user", "100% sure", None).await;
    register_user(&app, "other_one", "1000 things", None).await;
    register_user(&app, "x_ray", "Xray", None).await;
    register_user(&app, "xoray", "Xoray", None).await;
    register_user(&app, "searcher", "Searcher", None).await;
    let searcher = app.log_in("searcher").await;

    let search = |q: &str| format!("/users?q={}", enc(q));
    let users = get_list(&app, &searcher.http, &search("100%"), "users").await;
    assert_eq!(names(&users), set(&["sure_user"]), "% is literal");
    let users = get_list(&app, &searcher.http, &search("%%"), "users").await;
    assert!(users.is_empty(), "%% is literal, not everybody: {users:?}");
    let users = get_list(&app, &searcher.http, &search("x_"), "users").await;
    assert_eq!(names(&users), set(&["x_ray"]), "_ is literal");
    let users = get_list(&app, &searcher.http, &search("__"), "users").await;
    assert_eq!(
        names(&users),
        BTreeSet::new(),
        "no user or nick name starts with __"
    );
    let users = get_list(&app, &searcher.http, &search("\\\\"), "users").await;
    assert!(users.is_empty(), "a backslash is literal too: {users:?}");
}

#[tokio::test]
async fn search_needs_a_q() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    for path in ["/users?q=", "/users"] {
        expect_validation(app.get(&alice.http, path).await, "q").await;
    }
}

#[tokio::test]
async fn search_pages_with_limit_offset_total_and_has_more() {
    let app = spawn_app().await;
    for n in 1..=5 {
        register_user(&app, &format!("pager{n}"), &format!("Pager {n}"), None).await;
    }
    register_user(&app, "searcher", "Searcher", None).await;
    let searcher = app.log_in("searcher").await;

    let body = json_with(
        app.get(&searcher.http, "/users?q=pager").await,
        StatusCode::OK,
    )
    .await;
    let all = items(&body, "users");
    assert_eq!(all.len(), 5);
    assert_eq!(
        (
            &body["total"],
            &body["offset"],
            &body["limit"],
            &body["has_more"]
        ),
        (&json!(5), &json!(0), &json!(20), &json!(false)),
        "defaults: {body}"
    );

    let mut seen = Vec::new();
    for (offset, len, has_more) in [(0, 2, true), (2, 2, true), (4, 1, false)] {
        let body = json_with(
            app.get(
                &searcher.http,
                &format!("/users?q=pager&limit=2&offset={offset}"),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let page = items(&body, "users");
        assert_eq!(page.len(), len, "offset {offset}: {body}");
        assert_eq!(body["total"], 5, "{body}");
        assert_eq!(body["offset"], offset, "{body}");
        assert_eq!(body["limit"], 2, "{body}");
        assert_eq!(body["has_more"], has_more, "{body}");
        seen.extend(ids_of(&page, "id"));
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        5,
        "the pages cover every match once: {seen:?}"
    );
    assert_eq!(distinct, ids_of(&all, "id").iter().collect::<BTreeSet<_>>());

    let body = json_with(
        app.get(&searcher.http, "/users?q=pager&limit=100&offset=10")
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(items(&body, "users").is_empty());
    assert_eq!(body["total"], 5);
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn an_invalid_limit_is_400_on_every_list() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let lists = [
        "/users?q=al&",
        "/friends?",
        "/friends/requests?",
        "/friends/requests?direction=outgoing&",
        "/blocks?",
        "/user/devices?",
    ];
    for list in lists {
        for limit in ["0", "-1", "abc"] {
            let resp = app.get(&alice.http, &format!("{list}limit={limit}")).await;
            let status = resp.status();
            let body = json_of(resp).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{list}limit={limit}: {body}"
            );
            assert_eq!(
                body["code"], "validation_failed",
                "{list}limit={limit}: {body}"
            );
            assert_eq!(body["field"], "limit", "{list}limit={limit}: {body}");
        }
        // The defaults, on an empty or small list.
        let body = json_with(
            app.get(&alice.http, list.trim_end_matches(['?', '&']))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body["offset"], 0, "{list}: {body}");
        assert_eq!(body["limit"], 20, "{list}: {body}");
        assert_eq!(body["has_more"], false, "{list}: {body}");
    }
}

#[tokio::test]
async fn exact_lookups_by_user_name_and_email() {
    let app = spawn_app().await;
    register_user(&app, "alice", "Alice", Some("alice@example.com")).await;
    register_user(&app, "alicia", "Alicia", Some("alicia@example.com")).await;
    let bob = app.chatter("bob").await;

    let found = get_list(&app, &bob.http, "/users?user_name=alice", "users").await;
    assert_eq!(found.len(), 1, "exact, not a prefix: {found:?}");
    assert_profile_shape(&found[0]);
    assert_eq!(found[0]["user_name"], "alice");
    // Names compare as logins do: case aside.
    let found = get_list(&app, &bob.http, "/users?user_name=ALICE", "users").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["user_name"], "alice");

    let path = format!("/users?email={}", enc("alicia@example.com"));
    let found = get_list(&app, &bob.http, &path, "users").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_profile_shape(&found[0]);
    assert_eq!(found[0]["user_name"], "alicia");
    assert!(
        !found[0].to_string().contains("alicia@example.com"),
        "the profile found by email still has no email: {}",
        found[0]
    );

    for path in [
        "/users?user_name=ali".to_owned(),
        "/users?user_name=nobody".to_owned(),
        // A lookalike is nobody's name (no account can be registered under it).
        format!("/users?user_name={}", enc("alicé")),
        format!("/users?email={}", enc("nobody@example.com")),
    ] {
        let found = get_list(&app, &bob.http, &path, "users").await;
        assert!(found.is_empty(), "{path}: {found:?}");
    }
}
