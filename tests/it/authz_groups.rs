//! The authorization matrix of the group routes (docs/groups.md) by role: owner, admin,
//! member, outsider, and a user the owner blocked; then what must survive leaving and
//! rejoining (a member mute), and a join racing the group's dissolution.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::authz_support::{Actors, Row, approval_group_with_request, row, run_matrix};
use crate::groups_support::{
    dissolve, group_in_mode, join, kick, leave, member_entry, member_list, mute, ok_json,
    raw_history, system_content,
};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::people_support::json_with;
use crate::ws_client::{Chatter, FORBIDDEN, OK, group_conv};

/// Owner, admin, member, outsider and a user the owner blocked (who asked to join), around
/// an approval group; the owner's group remark is hers alone.
struct Cast {
    owner: Chatter,
    admin: Chatter,
    member: Chatter,
    outsider: Chatter,
    blocked: Chatter,
    group: String,
    join_request: String,
    secrets: Vec<(&'static str, String)>,
}

async fn cast(app: &TestApp) -> Cast {
    let owner = app.chatter("owner").await;
    let admin = app.chatter("admin").await;
    let member = app.chatter("member").await;
    let outsider = app.chatter("outsider").await;
    let blocked = app.chatter("blocked").await;
    let resp = app
        .post(&owner.http, "/blocks", &json!({ "user_id": blocked.id }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (group, remark, join_request) =
        approval_group_with_request(app, &owner, &admin, &member, &blocked, "owner-group-remark")
            .await;
    Cast {
        owner,
        admin,
        member,
        outsider,
        blocked,
        group,
        join_request,
        secrets: vec![("owner", remark)],
    }
}

impl Cast {
    fn actors(&self) -> Actors<'_> {
        Actors {
            cast: vec![
                ("owner", &self.owner),
                ("admin", &self.admin),
                ("member", &self.member),
                ("outsider", &self.outsider),
                ("blocked", &self.blocked),
            ],
            secrets: self.secrets.clone(),
        }
    }
}

/// Every refusal a role must get, none of which may change anything.
fn refusals(c: &Cast) -> Vec<Row> {
    let g = &c.group;
    let (owner, admin, member, blocked) = (&c.owner.id, &c.admin.id, &c.member.id, &c.blocked.id);
    let rid = &c.join_request;
    let mut rows = Vec::new();
    // The group is private (approval): a stranger is told nothing, as for an unknown id; the
    // blocked user, who asked to join, knows it exists and is refused as a non-member.
    for (outsider, status, code) in [
        ("outsider", 404, "not_found"),
        ("blocked", 403, "not_a_member"),
    ] {
        rows.extend([
            row(outsider, Method::GET, format!("/groups/{g}"), status).code(code),
            row(outsider, Method::PATCH, format!("/groups/{g}"), status)
                .body(json!({"notice": "pwned"}))
                .code(code),
            row(outsider, Method::DELETE, format!("/groups/{g}"), status).code(code),
            row(
                outsider,
                Method::GET,
                format!("/groups/{g}/members"),
                status,
            )
            .code(code),
            row(
                outsider,
                Method::POST,
                format!("/groups/{g}/members"),
                status,
            )
            .body(json!({"user_id": c.outsider.id}))
            .code(code),
            row(
                outsider,
                Method::DELETE,
                format!("/groups/{g}/members/{member}"),
                status,
            )
            .code(code),
            row(
                outsider,
                Method::DELETE,
                format!("/groups/{g}/members/me"),
                404,
            )
            .code("not_found"),
            row(
                outsider,
                Method::GET,
                format!("/groups/{g}/requests"),
                status,
            )
            .code(code),
            row(
                outsider,
                Method::POST,
                format!("/groups/{g}/requests/{rid}/accept"),
                status,
            )
            .body(json!({}))
            .code(code),
            row(
                outsider,
                Method::POST,
                format!("/groups/{g}/transfer"),
                status,
            )
            .body(json!({"user_id": c.outsider.id}))
            .code(code),
            row(
                outsider,
                Method::POST,
                format!("/groups/{g}/admins"),
                status,
            )
            .body(json!({"user_id": member}))
            .code(code),
            row(
                outsider,
                Method::DELETE,
                format!("/groups/{g}/admins/{admin}"),
                status,
            )
            .code(code),
            row(outsider, Method::POST, format!("/groups/{g}/mutes"), status)
                .body(json!({"user_id": member, "duration_secs": 60}))
                .code(code),
            row(
                outsider,
                Method::DELETE,
                format!("/groups/{g}/mutes/{member}"),
                status,
            )
            .code(code),
            row(outsider, Method::PATCH, format!("/groups/{g}/me"), status)
                .body(json!({"remark": "x"}))
                .code(code),
        ]);
    }
    // The user the owner blocked cannot be invited by the owner either.
    rows.push(
        row("owner", Method::POST, format!("/groups/{g}/members"), 403)
            .body(json!({ "user_id": blocked }))
            .code("blocked"),
    );
    for who in ["member", "admin"] {
        rows.extend([
            row(who, Method::DELETE, format!("/groups/{g}"), 403).code("forbidden"),
            row(who, Method::POST, format!("/groups/{g}/transfer"), 403)
                .body(json!({"user_id": member}))
                .code("forbidden"),
            row(who, Method::POST, format!("/groups/{g}/admins"), 403)
                .body(json!({"user_id": member}))
                .code("forbidden"),
            row(
                who,
                Method::DELETE,
                format!("/groups/{g}/admins/{admin}"),
                403,
            )
            .code("forbidden"),
            row(
                who,
                Method::DELETE,
                format!("/groups/{g}/members/{owner}"),
                403,
            )
            .code("forbidden"),
            row(who, Method::POST, format!("/groups/{g}/mutes"), 403)
                .body(json!({"user_id": owner, "duration_secs": 60}))
                .code("forbidden"),
        ]);
    }
    rows.extend([
        // A member is no manager.
        row("member", Method::PATCH, format!("/groups/{g}"), 403)
            .body(json!({"notice": "pwned"}))
            .code("forbidden"),
        row("member", Method::PATCH, format!("/groups/{g}"), 403)
            .body(json!({"muted": true}))
            .code("forbidden"),
        row("member", Method::GET, format!("/groups/{g}/requests"), 403).code("forbidden"),
        row(
            "member",
            Method::POST,
            format!("/groups/{g}/requests/{rid}/accept"),
            403,
        )
        .body(json!({}))
        .code("forbidden"),
        row(
            "member",
            Method::POST,
            format!("/groups/{g}/requests/{rid}/reject"),
            403,
        )
        .body(json!({}))
        .code("forbidden"),
        row(
            "member",
            Method::DELETE,
            format!("/groups/{g}/members/{admin}"),
            403,
        )
        .code("forbidden"),
        row(
            "member",
            Method::DELETE,
            format!("/groups/{g}/members/{member}"),
            403,
        )
        .code("forbidden"),
        row(
            "member",
            Method::DELETE,
            format!("/groups/{g}/mutes/{admin}"),
            403,
        )
        .code("forbidden"),
        row("member", Method::POST, format!("/groups/{g}/mutes"), 403)
            .body(json!({"user_id": admin, "duration_secs": 60}))
            .code("forbidden"),
        // An admin manages members, not the owner, other admins or themself.
        row(
            "admin",
            Method::DELETE,
            format!("/groups/{g}/members/{admin}"),
            403,
        )
        .code("forbidden"),
        row("admin", Method::POST, format!("/groups/{g}/mutes"), 403)
            .body(json!({"user_id": admin, "duration_secs": 60}))
            .code("forbidden"),
        row(
            "admin",
            Method::DELETE,
            format!("/groups/{g}/mutes/{owner}"),
            403,
        )
        .code("forbidden"),
        // The owner cannot leave, mute or demote themself.
        row(
            "owner",
            Method::DELETE,
            format!("/groups/{g}/members/me"),
            409,
        )
        .code("conflict"),
        row("owner", Method::POST, format!("/groups/{g}/mutes"), 403)
            .body(json!({"user_id": owner, "duration_secs": 60}))
            .code("forbidden"),
        // Unknown and built-in groups.
        row("member", Method::GET, "/groups/987654321", 404).code("not_found"),
        row("member", Method::GET, "/groups/0", 404).code("not_found"),
        row("owner", Method::DELETE, "/groups/0", 404).code("not_found"),
        row("member", Method::GET, "/groups/not-an-id", 404).code("not_found"),
        // Members join no second time.
        row("member", Method::POST, format!("/groups/{g}/join"), 409)
            .body(json!({}))
            .code("conflict"),
    ]);
    rows
}

/// What each role may do, in an order where each step leaves the next one meaningful.
fn permitted(c: &Cast) -> Vec<Row> {
    let g = &c.group;
    let (owner, admin, member) = (&c.owner.id, &c.admin.id, &c.member.id);
    let rid = &c.join_request;
    vec![
        row("member", Method::GET, format!("/groups/{g}"), 200),
        row("member", Method::GET, format!("/groups/{g}/members"), 200),
        row("member", Method::PATCH, format!("/groups/{g}/me"), 200)
            .body(json!({"nickname": "m", "remark": "member's own note"})),
        row("admin", Method::GET, format!("/groups/{g}/requests"), 200),
        row("admin", Method::PATCH, format!("/groups/{g}"), 200)
            .body(json!({"notice": "by admin"})),
        row(
            "admin",
            Method::POST,
            format!("/groups/{g}/requests/{rid}/reject"),
            200,
        )
        .body(json!({})),
        row(
            "admin",
            Method::POST,
            format!("/groups/{g}/requests/{rid}/accept"),
            409,
        )
        .body(json!({}))
        .code("conflict"),
        row("admin", Method::POST, format!("/groups/{g}/mutes"), 200)
            .body(json!({"user_id": member, "duration_secs": 60})),
        row(
            "admin",
            Method::DELETE,
            format!("/groups/{g}/mutes/{member}"),
            200,
        ),
        row("owner", Method::POST, format!("/groups/{g}/mutes"), 200)
            .body(json!({"user_id": admin, "duration_secs": 60})),
        row(
            "owner",
            Method::DELETE,
            format!("/groups/{g}/mutes/{admin}"),
            200,
        ),
        row("owner", Method::POST, format!("/groups/{g}/admins"), 200)
            .body(json!({"user_id": member})),
        row(
            "owner",
            Method::DELETE,
            format!("/groups/{g}/admins/{member}"),
            200,
        ),
        row(
            "admin",
            Method::DELETE,
            format!("/groups/{g}/members/{member}"),
            200,
        ),
        // Kicked from a private group: it is hidden from them now.
        row("member", Method::GET, format!("/groups/{g}"), 404).code("not_found"),
        row("owner", Method::POST, format!("/groups/{g}/transfer"), 200)
            .body(json!({"user_id": admin})),
        // The old owner is an admin now; the new one dissolves.
        row("owner", Method::DELETE, format!("/groups/{g}"), 403).code("forbidden"),
        row("owner", Method::POST, format!("/groups/{g}/transfer"), 403)
            .body(json!({"user_id": owner}))
            .code("forbidden"),
        row("admin", Method::DELETE, format!("/groups/{g}"), 200),
        row("admin", Method::GET, format!("/groups/{g}"), 404).code("not_found"),
        row("owner", Method::PATCH, format!("/groups/{g}"), 404)
            .body(json!({"notice": "after"}))
            .code("not_found"),
    ]
}

#[tokio::test]
async fn authz_groups_every_route_by_role() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let actors = c.actors();
    run_matrix(&app, &actors, &refusals(&c)).await;

    // None of the refusals changed anything: roles, mutes, the notice, the pending request.
    let members = member_list(&app, &c.owner, &c.group).await;
    let roles: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().expect("user_id").to_owned(),
                m["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            (c.owner.id.clone(), "owner".to_owned()),
            (c.admin.id.clone(), "admin".to_owned()),
            (c.member.id.clone(), "member".to_owned()),
        ],
        "{members:?}"
    );
    assert!(
        members.iter().all(|m| m["muted_until"].is_null()),
        "{members:?}"
    );
    let group = ok_json(
        app.get(&c.owner.http, &format!("/groups/{}", c.group))
            .await,
        "group",
    )
    .await;
    assert_eq!(group["group"]["notice"], "", "{group}");
    assert_eq!(group["group"]["muted"], false, "{group}");

    run_matrix(&app, &actors, &permitted(&c)).await;
}

/// Sends op 6 as `who` and returns the reply code.
async fn group_send_code(app: &TestApp, who: &Chatter, group: &str, text: &str) -> i64 {
    let mut ws = app.connect_ws(who).await;
    let code = ws.send_group(group, text).await.code;
    ws.close().await;
    code
}

#[tokio::test]
async fn authz_groups_a_muted_member_who_leaves_and_rejoins_an_open_group_stays_muted() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let member = app.chatter("member").await;
    let group = group_in_mode(&app, &owner, "open").await;
    json_with(
        join(&app, &member, &group, &json!({})).await,
        StatusCode::OK,
    )
    .await;
    let mute_secs = 4;
    let resp = mute(&app, &owner, &group, &member.id, mute_secs).await;
    ok_json(resp, "mute").await;
    assert_eq!(
        group_send_code(&app, &member, &group, "muted?").await,
        FORBIDDEN
    );

    ok_json(leave(&app, &member, &group).await, "leave").await;
    let body = json_with(
        join(&app, &member, &group, &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["status"], "joined", "{body}");

    let entry =
        member_entry(&member_list(&app, &owner, &group).await, &member.id).expect("a member again");
    assert!(
        entry["muted_until"].is_string(),
        "leaving and rejoining must not lift the mute: {entry}"
    );
    assert_eq!(
        group_send_code(&app, &member, &group, "free again?").await,
        FORBIDDEN,
        "the mute holds until it ends, also across leave + rejoin"
    );
    // ... and ends when it was due to.
    tokio::time::sleep(Duration::from_secs(mute_secs + 1)).await;
    assert_eq!(group_send_code(&app, &member, &group, "now free").await, OK);
}

#[tokio::test]
async fn authz_groups_a_kicked_member_may_rejoin_an_open_group_and_a_mute_survives_the_kick() {
    let app = spawn_app().await;
    let owner = app.chatter("owner").await;
    let plain = app.chatter("plain").await;
    let muted = app.chatter("muted").await;
    let group = group_in_mode(&app, &owner, "open").await;
    for who in [&plain, &muted] {
        json_with(join(&app, who, &group, &json!({})).await, StatusCode::OK).await;
    }
    ok_json(mute(&app, &owner, &group, &muted.id, 600).await, "mute").await;
    for who in [&plain, &muted] {
        ok_json(kick(&app, &owner, &group, &who.id).await, "kick").await;
        assert_eq!(
            group_send_code(&app, who, &group, "kicked").await,
            FORBIDDEN,
            "{} is out",
            who.name
        );
        // docs/groups.md: anybody not a member joins an open group at once; there is no ban.
        let body = json_with(join(&app, who, &group, &json!({})).await, StatusCode::OK).await;
        assert_eq!(body["status"], "joined", "{body}");
    }
    assert_eq!(group_send_code(&app, &plain, &group, "back").await, OK);
    assert_eq!(
        group_send_code(&app, &muted, &group, "back and loud").await,
        FORBIDDEN,
        "a kick and a rejoin must not lift a mute that has not ended"
    );
}

/// How many times the join/dissolve race is run.
const RACE_ROUNDS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authz_groups_a_join_racing_the_dissolve_never_leaves_a_member_in_a_dissolved_group() {
    let app = spawn_app_with(|s| s.server.workers = 4).await;
    let owner = app.chatter("owner").await;
    let racer = app.chatter("racer").await;
    let mut owner_ws = app.connect_ws(&owner).await;
    let mut racer_ws = app.connect_ws(&racer).await;
    let mut late_joins = Vec::new();
    for round in 0..RACE_ROUNDS {
        let group = group_in_mode(&app, &owner, "open").await;
        // Sweep the join across the dissolve's window.
        let delay = Duration::from_micros((round as u64 % 10) * 700);
        let (joined, dissolved) = tokio::join!(
            async {
                tokio::time::sleep(delay).await;
                join(&app, &racer, &group, &json!({})).await.status()
            },
            dissolve(&app, &owner, &group),
        );
        assert_eq!(
            dissolved.status(),
            StatusCode::OK,
            "round {round}: dissolve"
        );
        assert!(
            joined == StatusCode::OK || joined == StatusCode::NOT_FOUND,
            "round {round}: join got {joined}"
        );

        // The owner keeps reading the dissolved group's history: the racer's join, if any,
        // must come before the dissolution, never after it.
        let history = raw_history(&mut owner_ws, &group_conv(&group)).await;
        let actions: Vec<(String, Value)> = history
            .iter()
            .filter_map(system_content)
            .map(|c| (c["action"].as_str().unwrap_or("").to_owned(), c))
            .collect();
        let dissolve_at = actions.iter().position(|(a, _)| a == "dissolve");
        let join_at = actions
            .iter()
            .position(|(a, c)| a == "join" && c["user_id"] == racer.id);
        let racer_reads = racer_ws
            .request(json!({"op_type": 2, "conversation": group_conv(&group), "limit": 1}))
            .await
            .code;
        let late = match (join_at, dissolve_at) {
            (Some(j), Some(d)) => j > d,
            (_, None) => panic!("round {round}: no dissolve notice in {actions:?}"),
            (None, Some(_)) => false,
        };
        // A member row exists exactly when the racer can read the history.
        let member_now = racer_reads == OK;
        if late || (member_now && joined == StatusCode::NOT_FOUND) {
            late_joins.push(format!(
                "round {round}: join {joined}, racer reads history: {member_now}, notices {:?}",
                actions.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>()
            ));
        }
        if joined == StatusCode::OK && !member_now {
            late_joins.push(format!(
                "round {round}: join said 200 but the racer is no member ({racer_reads})"
            ));
        }
    }
    assert!(
        late_joins.is_empty(),
        "a join landed in a dissolved group:\n{}",
        late_joins.join("\n")
    );
}
