//! Attacks through groups (docs/groups.md): a crowd of joins that would starve the MySQL pool,
//! rejoining after a ban, owning or joining groups without bound, probing private groups,
//! no-op settings that make every process forget its cache, and floods of edits and moderation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::groups_support::{
    QUIET_MS, create_group_with, decide_request, get_group, group_in_mode, invite, join, kick,
    make_admin, members_of, mute, ok_json, patch_group, request_list, transfer, unmute,
};
use crate::helpers::{TestApp, expect_error, json_of, spawn_app, spawn_app_with};
use crate::people_support::{delete, items, patch};
use crate::ws_client::Chatter;

// ---- helpers ------------------------------------------------------------------------------------

async fn ban(app: &TestApp, by: &Chatter, group: &str, body: &Value) -> Response {
    app.post(&by.http, &format!("/groups/{group}/bans"), body)
        .await
}

async fn unban(app: &TestApp, by: &Chatter, group: &str, user_id: &str) -> Response {
    delete(app, &by.http, &format!("/groups/{group}/bans/{user_id}")).await
}

async fn ban_list(app: &TestApp, by: &Chatter, group: &str) -> Vec<Value> {
    let body = ok_json(
        app.get(&by.http, &format!("/groups/{group}/bans")).await,
        "GET bans",
    )
    .await;
    items(&body, "bans")
}

async fn member_total(app: &TestApp, who: &Chatter, group: &str) -> i64 {
    let body = ok_json(members_of(app, who, group).await, "GET members").await;
    body["total"].as_i64().expect("total")
}

/// Asserts a 429 of the named anti-spam rule with a `retry_after`.
async fn expect_rule_refusal(resp: Response, rule: &str) {
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["rule"], rule, "rule in {body}");
    assert!(
        body["retry_after"].as_u64().is_some_and(|s| s >= 1),
        "retry_after in {body}"
    );
}

async fn chatters(app: &TestApp, prefix: &str, n: usize) -> Vec<Chatter> {
    let mut all = Vec::with_capacity(n);
    // In batches: registration hashes passwords.
    for batch in (0..n).collect::<Vec<_>>().chunks(10) {
        let made = join_all(
            batch
                .iter()
                .map(|i| async move { app.chatter(&format!("{prefix}{i}")).await }),
        )
        .await;
        all.extend(made);
    }
    all
}

// ---- item 8: the pool --------------------------------------------------------------------------

/// How many users join one group at once.
const CROWD: usize = 100;
/// The p99 another user's `GET /user/me` must keep meanwhile.
const ME_P99_BUDGET: Duration = Duration::from_millis(500);

/// 100 joins of one group at once, with a pool of 5 MySQL connections (conf/test.toml): the
/// waiting joins must not hold connections, so every join succeeds and every other route
/// stays fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_do_not_starve_the_pool() {
    let app = spawn_app().await;
    assert!(
        app.settings.mysql.max_connections <= nz!(5),
        "the test bites only with a small pool"
    );
    let owner = app.chatter("owner").await;
    let bystander = app.chatter("bystander").await;
    let group = group_in_mode(&app, &owner, "open").await;
    let crowd = chatters(&app, "joiner", CROWD).await;

    let joins = join_all(crowd.iter().map(|who| {
        let app = &app;
        let group = &group;
        async move { join(app, who, group, &json!({})).await.status() }
    }));
    let joins_done = AtomicBool::new(false);
    let probe = async {
        let mut latencies = Vec::new();
        // Bounded: the joins end long before this many probes.
        for _ in 0..2_000 {
            let started = Instant::now();
            let status = app.get(&bystander.http, "/user/me").await.status();
            latencies.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "GET /user/me during the joins");
            if latencies.len() >= 20 && joins_done.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies
    };
    let (statuses, mut latencies) = tokio::join!(
        async {
            let statuses = joins.await;
            joins_done.store(true, Ordering::Release);
            statuses
        },
        probe
    );

    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(unavailable, 0, "503s among the joins: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "every join is answered 200: {statuses:?}"
    );
    assert_eq!(
        member_total(&app, &owner, &group).await,
        i64::try_from(CROWD + 1).unwrap(),
        "everyone joined"
    );
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(
        p99 < ME_P99_BUDGET,
        "GET /user/me p99 {p99:?} over {} samples during the joins",
        latencies.len()
    );
}

// ---- item 13: bans -----------------------------------------------------------------------------

#[tokio::test]
async fn banned_user_cannot_rejoin() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let admin = app.chatter("admin").await;
    let pest = app.chatter("pest").await;
    let group = group_in_mode(&app, &owner, "open").await;
    for who in [&admin, &pest] {
        assert_eq!(
            join(&app, who, &group, &json!({})).await.status(),
            StatusCode::OK
        );
    }
    make_admin(&app, &owner, &group, &admin).await;

    // An admin may not ban the owner, nobody themself; an end in the past is refused.
    expect_error(
        ban(&app, &admin, &group, &json!({ "user_id": owner.id })).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_error(
        ban(&app, &owner, &group, &json!({ "user_id": owner.id })).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let refused = ban(
        &app,
        &admin,
        &group,
        &json!({ "user_id": pest.id, "until": "2001-01-01T00:00:00Z" }),
    )
    .await;
    let body = expect_error(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(body["field"], "until");

    // The admin bans the member: removed and banned for good.
    let body = ok_json(
        ban(&app, &admin, &group, &json!({ "user_id": pest.id })).await,
        "ban",
    )
    .await;
    assert_eq!(body["removed"], true, "{body}");
    assert_eq!(body["ban"]["user_id"], pest.id, "{body}");
    assert!(body["ban"]["until"].is_null(), "for good: {body}");
    assert_eq!(member_total(&app, &owner, &group).await, 2);
    let listed = ban_list(&app, &owner, &group).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["user_id"], pest.id);
    assert_eq!(listed[0]["banned_by"], admin.id);

    // Joining again, being added, asking to join: all refused.
    expect_error(
        join(&app, &pest, &group, &json!({})).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    expect_error(
        invite(&app, &owner, &group, &pest.id).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    let approval = group_in_mode(&app, &owner, "approval").await;
    let asked = join(&app, &pest, &approval, &json!({})).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let request = json_of(asked).await["request"]["id"]
        .as_str()
        .expect("request id")
        .to_owned();
    // A ban of a non-member rejects their pending request; asking again is refused.
    let body = ok_json(
        ban(
            &app,
            &owner,
            &approval,
            &json!({ "user_id": pest.id, "until": "2999-01-01T00:00:00Z" }),
        )
        .await,
        "ban a non-member",
    )
    .await;
    assert_eq!(body["removed"], false, "{body}");
    assert_eq!(body["ban"]["until"], "2999-01-01T00:00:00.000Z", "{body}");
    let requests = request_list(&app, &owner, &approval).await;
    assert_eq!(requests[0]["status"], "rejected", "{requests:?}");
    expect_status_code(
        decide_request(&app, &owner, &approval, &request, "accept").await,
        StatusCode::CONFLICT,
    )
    .await;
    expect_error(
        join(&app, &pest, &approval, &json!({})).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;

    // An admin may not lift the owner's ban, but lifts their own; the user rejoins.
    let other = app.chatter("other").await;
    ok_json(
        ban(&app, &owner, &group, &json!({ "user_id": other.id })).await,
        "the owner bans",
    )
    .await;
    expect_error(
        unban(&app, &admin, &group, &other.id).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    ok_json(unban(&app, &admin, &group, &pest.id).await, "unban").await;
    expect_error(
        unban(&app, &admin, &group, &pest.id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let listed = ban_list(&app, &owner, &group).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["user_id"], other.id);
    assert_eq!(
        join(&app, &pest, &group, &json!({})).await.status(),
        StatusCode::OK,
        "a lifted ban lets them back"
    );
}

async fn expect_status_code(resp: Response, status: StatusCode) {
    let got = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "body {body}");
}

#[tokio::test]
async fn ban_via_kick_query() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let kicked = app.chatter("kicked").await;
    let banned = app.chatter("banned").await;
    let group = group_in_mode(&app, &owner, "open").await;
    for who in [&kicked, &banned] {
        assert_eq!(
            join(&app, who, &group, &json!({})).await.status(),
            StatusCode::OK
        );
    }
    let bad = delete(
        &app,
        &owner.http,
        &format!("/groups/{group}/members/{}?ban=maybe", banned.id),
    )
    .await;
    expect_error(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(member_total(&app, &owner, &group).await, 3, "nothing done");

    // A plain kick: they may come back.
    ok_json(kick(&app, &owner, &group, &kicked.id).await, "kick").await;
    assert_eq!(
        join(&app, &kicked, &group, &json!({})).await.status(),
        StatusCode::OK
    );

    // A kick with ?ban=true: they may not.
    let body = ok_json(
        delete(
            &app,
            &owner.http,
            &format!("/groups/{group}/members/{}?ban=true", banned.id),
        )
        .await,
        "kick and ban",
    )
    .await;
    assert_eq!(body["removed"], true, "{body}");
    assert_eq!(body["ban"]["user_id"], banned.id, "{body}");
    expect_error(
        join(&app, &banned, &group, &json!({})).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    expect_error(
        invite(&app, &kicked, &group, &banned.id).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
}

// ---- item 13: limits ---------------------------------------------------------------------------

#[tokio::test]
async fn owner_limit_reached() {
    let app = spawn_app_with(|s| s.groups.max_owned_per_user = nz!(2)).await;
    let owner = app.chatter("owner").await;
    let heir = app.chatter("heir").await;
    let first = group_in_mode(&app, &owner, "open").await;
    group_in_mode(&app, &owner, "open").await;
    expect_error(
        app.post(&owner.http, "/groups", &json!({ "name": "third" }))
            .await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;

    // Receiving ownership counts too.
    let heirs_own = group_in_mode(&app, &heir, "open").await;
    group_in_mode(&app, &heir, "open").await;
    assert_eq!(
        join(&app, &heir, &first, &json!({})).await.status(),
        StatusCode::OK
    );
    expect_error(
        transfer(&app, &owner, &first, &heir.id).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    let body = ok_json(get_group(&app, &owner, &first).await, "group").await;
    assert_eq!(
        body["group"]["owner_id"], owner.id,
        "ownership did not move"
    );

    // A dissolved group no longer counts.
    ok_json(
        delete(&app, &heir.http, &format!("/groups/{heirs_own}")).await,
        "dissolve",
    )
    .await;
    ok_json(
        transfer(&app, &owner, &first, &heir.id).await,
        "transfer now",
    )
    .await;
    create_group_with(&app, &owner, &json!({ "name": "again" })).await;
}

#[tokio::test]
async fn joined_limit_reached() {
    let app = spawn_app_with(|s| s.groups.max_joined_per_user = nz!(2)).await;
    // Owners are members of their groups: one owner per group keeps them under the limit.
    let owners = chatters(&app, "owner", 4).await;
    let owner = &owners[3];
    let joiner = app.chatter("joiner").await;
    let open: Vec<String> =
        join_all(owners[..3].iter().map(|o| group_in_mode(&app, o, "open"))).await;
    let approval = group_in_mode(&app, owner, "approval").await;

    assert_eq!(
        join(&app, &joiner, &open[0], &json!({})).await.status(),
        StatusCode::OK
    );
    // Asked while below the limit; decided once at it.
    let asked = join(&app, &joiner, &approval, &json!({})).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let request = json_of(asked).await["request"]["id"]
        .as_str()
        .expect("request id")
        .to_owned();
    assert_eq!(
        join(&app, &joiner, &open[1], &json!({})).await.status(),
        StatusCode::OK
    );

    expect_error(
        join(&app, &joiner, &open[2], &json!({})).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    expect_error(
        invite(&app, &owners[2], &open[2], &joiner.id).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    expect_error(
        decide_request(&app, owner, &approval, &request, "accept").await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    expect_error(
        app.post(&joiner.http, "/groups", &json!({ "name": "mine" }))
            .await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    assert_eq!(member_total(&app, &owners[2], &open[2]).await, 1);
    assert_eq!(member_total(&app, owner, &approval).await, 1);
    let requests = request_list(&app, owner, &approval).await;
    assert_eq!(requests[0]["status"], "pending", "the request waits");

    // Leaving one frees a place.
    ok_json(
        delete(
            &app,
            &joiner.http,
            &format!("/groups/{}/members/me", open[0]),
        )
        .await,
        "leave",
    )
    .await;
    ok_json(
        decide_request(&app, owner, &approval, &request, "accept").await,
        "accept now",
    )
    .await;
}

// ---- item 14: private groups -------------------------------------------------------------------

#[tokio::test]
async fn private_group_is_not_revealed_to_strangers() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let stranger = app.chatter("stranger").await;
    let unknown = "987654321";
    let not_found = |resp: Response| async move {
        let body = expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
        body["message"].as_str().unwrap_or("").to_owned()
    };
    let unknown_message = not_found(get_group(&app, &stranger, unknown).await).await;

    for mode in ["approval", "invite_only"] {
        let group = group_in_mode(&app, &owner, mode).await;
        let routes = [
            get_group(&app, &stranger, &group).await,
            members_of(&app, &stranger, &group).await,
            app.get(&stranger.http, &format!("/groups/{group}/requests"))
                .await,
            app.get(&stranger.http, &format!("/groups/{group}/bans"))
                .await,
            patch_group(&app, &stranger, &group, &json!({ "name": "x" })).await,
            patch(
                &app,
                &stranger.http,
                &format!("/groups/{group}/me"),
                &json!({ "dnd": true }),
            )
            .await,
            invite(&app, &stranger, &group, &owner.id).await,
        ];
        for (i, resp) in routes.into_iter().enumerate() {
            let message = not_found(resp).await;
            assert_eq!(
                message, unknown_message,
                "{mode} route {i}: the same answer as an unknown id"
            );
        }
    }

    // Knocking on an invite-only group tells nothing either.
    let invite_only = group_in_mode(&app, &owner, "invite_only").await;
    not_found(join(&app, &stranger, &invite_only, &json!({})).await).await;

    // Who asked to join sees that the group exists (not its insides).
    let approval = group_in_mode(&app, &owner, "approval").await;
    assert_eq!(
        join(&app, &stranger, &approval, &json!({})).await.status(),
        StatusCode::ACCEPTED
    );
    expect_error(
        get_group(&app, &stranger, &approval).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    )
    .await;

    // An open group is public.
    let open = group_in_mode(&app, &owner, "open").await;
    let body = ok_json(get_group(&app, &stranger, &open).await, "open group").await;
    assert!(body["my_role"].is_null());
}

/// The conversation routes and the socket tell a stranger no more than `GET /groups/{id}`: a
/// private group's conversation answers as an unknown one, an open group's as "not a member".
#[tokio::test]
async fn private_group_conversation_is_not_revealed_to_strangers() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let stranger = app.chatter("stranger").await;
    let mut ws = app.connect_ws(&stranger).await;
    let unknown = "g:987654321";
    let http_answers = |conversation: String| {
        let (app, stranger) = (&app, &stranger);
        async move {
            let read = app
                .post(
                    &stranger.http,
                    &format!("/conversations/{conversation}/read"),
                    &json!({}),
                )
                .await;
            let pin = patch(
                app,
                &stranger.http,
                &format!("/conversations/{conversation}"),
                &json!({ "pinned": true }),
            )
            .await;
            let mut out = Vec::new();
            for resp in [read, pin] {
                let status = resp.status();
                let body = json_of(resp).await;
                out.push((status, body["code"].clone(), body["message"].clone()));
            }
            out
        }
    };
    let unknown_http = http_answers(unknown.to_owned()).await;
    assert!(
        unknown_http
            .iter()
            .all(|(status, code, _)| *status == StatusCode::NOT_FOUND && code == "not_found"),
        "{unknown_http:?}"
    );
    let unknown_ws = ws
        .request(json!({"op_type": 2, "conversation": unknown}))
        .await;
    unknown_ws.expect(crate::ws_client::NOT_FOUND);

    for mode in ["approval", "invite_only"] {
        let conversation = format!("g:{}", group_in_mode(&app, &owner, mode).await);
        assert_eq!(
            http_answers(conversation.clone()).await,
            unknown_http,
            "{mode}: the same answers as an unknown group"
        );
        let reply = ws
            .request(json!({"op_type": 2, "conversation": conversation}))
            .await;
        reply.expect(crate::ws_client::NOT_FOUND);
        assert_eq!(reply.raw["msg"], unknown_ws.raw["msg"], "{mode}");
        let typing = ws
            .request(json!({"op_type": 8, "conversation": conversation}))
            .await;
        typing.expect(crate::ws_client::NOT_FOUND);
    }

    // An open group is public: its conversation exists, the stranger is just not in it.
    let open = format!("g:{}", group_in_mode(&app, &owner, "open").await);
    let read = app
        .post(
            &stranger.http,
            &format!("/conversations/{open}/read"),
            &json!({}),
        )
        .await;
    expect_error(read, StatusCode::FORBIDDEN, "forbidden").await;
    ws.request(json!({"op_type": 2, "conversation": open}))
        .await
        .expect(crate::ws_client::FORBIDDEN);
}

// ---- item 19: no-op settings -------------------------------------------------------------------

/// Collects the cache invalidations of `group` broadcast while `during` runs, and a little after.
async fn invalidations_during<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    group: &str,
    during: F,
) -> Vec<String> {
    let mut tap = crate::redis_support::BroadcastTap::start(&app.settings).await;
    during.await;
    let mut seen = Vec::new();
    let quiet = tokio::time::Instant::now() + Duration::from_millis(QUIET_MS);
    loop {
        let left = quiet.saturating_duration_since(tokio::time::Instant::now());
        let Some(payload) = tap.next(left).await else {
            break;
        };
        let parsed: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
        let groups = &parsed["invalidate"]["groups"];
        if groups.as_array().is_some_and(|g| {
            g.iter()
                .any(|id| id.as_u64().map(|n| n.to_string()).as_deref() == Some(group))
        }) {
            seen.push(payload);
        }
    }
    seen
}

#[tokio::test]
async fn noop_member_settings_publish_nothing() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let group = group_in_mode(&app, &owner, "open").await;
    let settings = format!("/groups/{group}/me");
    ok_json(
        patch(
            &app,
            &owner.http,
            &settings,
            &json!({ "nickname": "boss", "dnd": true }),
        )
        .await,
        "set",
    )
    .await;

    let same = json!({ "nickname": "boss", "dnd": true, "folded": false });
    let published = invalidations_during(&app, &group, async {
        let body = ok_json(patch(&app, &owner.http, &settings, &same).await, "no-op").await;
        assert_eq!(body["settings"]["nickname"], "boss");
        assert_eq!(body["settings"]["dnd"], true);
        // The same for the group itself.
        let current = ok_json(get_group(&app, &owner, &group).await, "group").await;
        ok_json(
            patch_group(
                &app,
                &owner,
                &group,
                &json!({ "name": current["group"]["name"], "muted": false }),
            )
            .await,
            "no-op group edit",
        )
        .await;
    })
    .await;
    assert!(
        published.is_empty(),
        "a change of nothing made the cluster forget the group: {published:?}"
    );

    // A real change still does.
    let published = invalidations_during(&app, &group, async {
        ok_json(
            patch(&app, &owner.http, &settings, &json!({ "dnd": false })).await,
            "change",
        )
        .await;
    })
    .await;
    assert_eq!(published.len(), 1, "{published:?}");
}

// ---- item 9: group edits and moderation --------------------------------------------------------

#[tokio::test]
async fn group_edit_flood_is_throttled() {
    let app = spawn_app_with(|s| s.antispam.group_edits_limit = nz!(3)).await;
    let owner = app.chatter("owner").await;
    let group = group_in_mode(&app, &owner, "open").await;
    let other = group_in_mode(&app, &owner, "open").await;
    for i in 0..3 {
        ok_json(
            patch_group(
                &app,
                &owner,
                &group,
                &json!({ "notice": format!("notice {i}") }),
            )
            .await,
            "edit",
        )
        .await;
    }
    expect_rule_refusal(
        patch_group(&app, &owner, &group, &json!({ "notice": "one too many" })).await,
        "group_edits",
    )
    .await;
    let body = ok_json(get_group(&app, &owner, &group).await, "group").await;
    assert_eq!(
        body["group"]["notice"], "notice 2",
        "the refused edit wrote nothing"
    );
    // Per group: another group of the same owner is edited as usual.
    ok_json(
        patch_group(&app, &owner, &other, &json!({ "notice": "fine" })).await,
        "other group",
    )
    .await;
}

#[tokio::test]
async fn moderation_flood_is_throttled() {
    let app = spawn_app_with(|s| s.antispam.moderation_limit = nz!(3)).await;
    let owner = app.chatter("owner").await;
    let admin = app.chatter("admin").await;
    let victim = app.chatter("victim").await;
    let group = group_in_mode(&app, &owner, "open").await;
    for who in [&admin, &victim] {
        assert_eq!(
            join(&app, who, &group, &json!({})).await.status(),
            StatusCode::OK
        );
    }
    make_admin(&app, &owner, &group, &admin).await; // the owner's first
    ok_json(mute(&app, &owner, &group, &victim.id, 60).await, "mute").await;
    ok_json(unmute(&app, &owner, &group, &victim.id).await, "unmute").await;
    expect_rule_refusal(
        mute(&app, &owner, &group, &victim.id, 60).await,
        "moderation",
    )
    .await;
    expect_rule_refusal(kick(&app, &owner, &group, &victim.id).await, "moderation").await;
    expect_rule_refusal(
        ban(&app, &owner, &group, &json!({ "user_id": victim.id })).await,
        "moderation",
    )
    .await;
    let members = ok_json(members_of(&app, &owner, &group).await, "members").await;
    let entry = items(&members, "members")
        .into_iter()
        .find(|m| m["user_id"] == victim.id)
        .expect("the victim is still a member");
    assert!(
        entry["muted_until"].is_null(),
        "the refused mute wrote nothing"
    );
    // Per acting user: the admin still moderates.
    ok_json(
        mute(&app, &admin, &group, &victim.id, 60).await,
        "admin mutes",
    )
    .await;
}
