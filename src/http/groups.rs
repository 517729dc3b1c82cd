//! Groups over HTTP: create and describe, join (open, by approval, by invitation), members and
//! roles, moderation (whole-group and member mutes), per-member settings, dissolution. Every
//! membership change is announced in the group (a type 10 message and `event: group`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::Params;
use crate::http::people::path_user;
use crate::http::profile::parse_avatar;
use crate::messaging::{announce, group_event, start_reading};
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::directory::Change;
use crate::store::mongo::reads;
use crate::store::mysql::groups::{
    self, GroupChange, JOIN_APPROVAL, JOIN_INVITE_ONLY, JOIN_OPEN, Membership, NewGroup,
    ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER, SettingsChange,
};
use crate::store::mysql::users;

pub const NAME_MAX_CHARS: usize = 64;
pub const NOTICE_MAX_CHARS: usize = 1000;
pub const NICKNAME_MAX_CHARS: usize = 32;
pub const REMARK_MAX_CHARS: usize = 64;
pub const MESSAGE_MAX_CHARS: usize = 200;
/// Longest member mute: 30 days.
pub const MUTE_MAX_SECS: u64 = 30 * 24 * 3600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/groups")
            .route(web::post().to(create))
            .route(web::get().to(mine)),
    )
    .service(
        web::resource("/groups/{id}")
            .route(web::get().to(describe))
            .route(web::patch().to(update))
            .route(web::delete().to(dissolve)),
    )
    .service(web::resource("/groups/{id}/join").route(web::post().to(join)))
    .service(
        web::resource("/groups/{id}/members")
            .route(web::post().to(invite))
            .route(web::get().to(members)),
    )
    .service(web::resource("/groups/{id}/members/{user_id}").route(web::delete().to(remove)))
    .service(web::resource("/groups/{id}/requests").route(web::get().to(requests)))
    .service(web::resource("/groups/{id}/requests/{rid}/{decision}").route(web::post().to(decide)))
    .service(web::resource("/groups/{id}/transfer").route(web::post().to(transfer)))
    .service(web::resource("/groups/{id}/admins").route(web::post().to(add_admin)))
    .service(web::resource("/groups/{id}/admins/{user_id}").route(web::delete().to(remove_admin)))
    .service(web::resource("/groups/{id}/mutes").route(web::post().to(mute)))
    .service(web::resource("/groups/{id}/mutes/{user_id}").route(web::delete().to(unmute)))
    .service(web::resource("/groups/{id}/me").route(web::patch().to(my_settings)));
}

fn no_such_group() -> AppError {
    AppError::NotFound("no such group".into())
}

/// A live group from a path (the lobby and dissolved groups are not managed here).
async fn load(state: &AppState, raw: &str) -> AppResult<groups::Group> {
    let id = match GroupId::parse(raw) {
        Some(id) if !id.is_lobby() && !raw.trim().is_empty() => id,
        _ => return Err(no_such_group()),
    };
    groups::find(&state.mysql, id)
        .await?
        .filter(|g| !g.dissolved)
        .ok_or_else(no_such_group)
}

async fn membership(
    state: &AppState,
    group: GroupId,
    user: UserId,
) -> AppResult<Option<Membership>> {
    groups::membership(&state.mysql, group, user).await
}

/// The membership of the user an action is about (404 when they are not in the group).
async fn require_target(state: &AppState, group: GroupId, user: UserId) -> AppResult<Membership> {
    membership(state, group, user)
        .await?
        .ok_or_else(|| AppError::NotFound("not a member of this group".into()))
}

async fn require_member(state: &AppState, group: GroupId, user: UserId) -> AppResult<Membership> {
    membership(state, group, user)
        .await?
        .ok_or_else(|| AppError::forbidden("not_a_member", "you are not a member of this group"))
}

async fn require_manager(state: &AppState, group: GroupId, user: UserId) -> AppResult<Membership> {
    let me = require_member(state, group, user).await?;
    if me.is_manager() {
        Ok(me)
    } else {
        Err(AppError::forbidden(
            "forbidden",
            "only the owner and admins may do this",
        ))
    }
}

async fn require_owner(state: &AppState, group: GroupId, user: UserId) -> AppResult<Membership> {
    let me = require_member(state, group, user).await?;
    if me.role == ROLE_OWNER {
        Ok(me)
    } else {
        Err(AppError::forbidden(
            "forbidden",
            "only the owner may do this",
        ))
    }
}

fn text_field<'a>(
    value: &'a str,
    field: &'static str,
    min: usize,
    max: usize,
) -> AppResult<&'a str> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min || chars > max || trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::validation(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(trimmed)
}

fn join_mode(raw: &str) -> AppResult<&'static str> {
    match raw {
        JOIN_OPEN => Ok(JOIN_OPEN),
        JOIN_APPROVAL => Ok(JOIN_APPROVAL),
        JOIN_INVITE_ONLY => Ok(JOIN_INVITE_ONLY),
        _ => Err(AppError::validation(
            "join_mode",
            "must be open, approval or invite_only",
        )),
    }
}

/// Adds the user (idempotently) and announces it; false when they already were a member.
/// 404 when the group was dissolved meanwhile.
async fn admit(state: &AppState, group: GroupId, user: UserId, by: UserId) -> AppResult<bool> {
    let lock = lock_group(state, group).await?;
    let added = admit_locked(state, group, user, by).await;
    lock.release().await;
    added
}

async fn admit_locked(
    state: &AppState,
    group: GroupId,
    user: UserId,
    by: UserId,
) -> AppResult<bool> {
    require_live(state, group).await?;
    let added = groups::add_member(&state.mysql, group, user).await?;
    if added {
        state.hub.changed(Change::group(group)).await;
    }
    // Idempotent: also repairs a read position a failed earlier attempt did not create.
    start_reading(state, user, group).await?;
    if added {
        announce(
            state,
            group,
            by,
            json!({ "action": "join", "user_id": user, "by": by }),
        )
        .await?;
    }
    Ok(added)
}

/// The group's lock against concurrent joins and dissolve (see [`groups::GroupLock`]).
async fn lock_group(state: &AppState, group: GroupId) -> AppResult<groups::GroupLock> {
    groups::lock(
        &state.mysql,
        group,
        state.settings.mysql.acquire_timeout_secs,
    )
    .await
}

/// 404 unless the group exists and is not dissolved (checked again under the group's lock).
async fn require_live(state: &AppState, group: GroupId) -> AppResult<()> {
    groups::find(&state.mysql, group)
        .await?
        .filter(|g| !g.dissolved)
        .map(|_| ())
        .ok_or_else(no_such_group)
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    join_mode: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn create(
    session: CurrentSession,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> AppResult<HttpResponse> {
    let name = text_field(&body.name, "name", 1, NAME_MAX_CHARS)?;
    let notice = body
        .notice
        .as_deref()
        .map(|n| text_field(n, "notice", 0, NOTICE_MAX_CHARS))
        .transpose()?
        .unwrap_or("");
    let avatar = body
        .avatar
        .as_deref()
        .map(parse_avatar)
        .transpose()?
        .unwrap_or("");
    let join_mode = body
        .join_mode
        .as_deref()
        .map(join_mode)
        .transpose()?
        .unwrap_or(JOIN_OPEN);
    let group = groups::create(
        &state.mysql,
        NewGroup {
            name,
            notice,
            avatar,
            join_mode,
            owner: session.user_id,
        },
    )
    .await?;
    start_reading(&state, session.user_id, group.id).await?;
    Ok(HttpResponse::Created().json(json!({ "group": group })))
}

async fn mine(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let (groups, total) = page.slice(groups::groups_of(&state.mysql, session.user_id).await?);
    Ok(HttpResponse::Ok().json(page.body("groups", groups, total)?))
}

async fn describe(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    let me = membership(&state, group.id, session.user_id).await?;
    if me.is_none() && group.join_mode != JOIN_OPEN {
        return Err(AppError::forbidden(
            "not_a_member",
            "you are not a member of this group",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "group": group, "my_role": me.map(|m| m.role) })))
}

#[derive(Deserialize)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    join_mode: Option<String>,
    #[serde(default)]
    muted: Option<bool>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn update(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_manager(&state, group.id, session.user_id).await?;
    let change = GroupChange {
        name: body
            .name
            .as_deref()
            .map(|n| text_field(n, "name", 1, NAME_MAX_CHARS))
            .transpose()?,
        notice: body
            .notice
            .as_deref()
            .map(|n| text_field(n, "notice", 0, NOTICE_MAX_CHARS))
            .transpose()?,
        avatar: body.avatar.as_deref().map(parse_avatar).transpose()?,
        join_mode: body.join_mode.as_deref().map(join_mode).transpose()?,
        muted: body.muted,
    };
    groups::update(&state.mysql, group.id, change).await?;
    state.hub.changed(Change::group(group.id)).await;
    let updated = groups::find(&state.mysql, group.id)
        .await?
        .ok_or_else(no_such_group)?;
    group_event(
        &state,
        group.id,
        json!({ "action": "update", "group": updated, "by": session.user_id }),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({ "group": updated })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn dissolve(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_owner(&state, group.id, session.user_id).await?;
    let lock = lock_group(&state, group.id).await?;
    let dissolved = async {
        require_live(&state, group.id).await?;
        announce(
            &state,
            group.id,
            session.user_id,
            json!({ "action": "dissolve", "by": session.user_id }),
        )
        .await?;
        groups::dissolve(&state.mysql, group.id).await?;
        state.hub.changed(Change::group(group.id)).await;
        Ok::<_, AppError>(())
    }
    .await;
    lock.release().await;
    dissolved?;
    Ok(HttpResponse::Ok().json(json!({ "group_id": group.id.to_string(), "dissolved": true })))
}

#[derive(Deserialize, Default)]
struct JoinBody {
    #[serde(default)]
    message: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn join(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Option<JsonBody<JoinBody>>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    let me = session.user_id;
    if membership(&state, group.id, me).await?.is_some() {
        return Err(AppError::Conflict {
            field: None,
            message: "you are a member already".into(),
        });
    }
    let body = body.map(|b| b.0).unwrap_or_default();
    let message = body
        .message
        .as_deref()
        .map(|m| text_field(m, "message", 0, MESSAGE_MAX_CHARS))
        .transpose()?
        .filter(|m| !m.is_empty());
    match group.join_mode.as_str() {
        JOIN_OPEN => {
            admit(&state, group.id, me, me).await?;
            Ok(HttpResponse::Ok().json(json!({ "status": "joined" })))
        }
        JOIN_APPROVAL => {
            let request = groups::request_join(&state.mysql, group.id, me, None, message).await?;
            Ok(HttpResponse::Accepted().json(json!({ "status": "pending", "request": request })))
        }
        _ => Err(AppError::forbidden(
            "forbidden",
            "this group is invite-only",
        )),
    }
}

#[derive(Deserialize)]
struct UserBody {
    user_id: UserId,
}

/// An invitation by a member: adds at once in open groups (and when a manager invites),
/// becomes a request in approval groups, and needs a manager in invite-only groups.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn invite(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    let me = require_member(&state, group.id, session.user_id).await?;
    if !users::exists(&state.mysql, body.user_id).await? {
        return Err(AppError::NotFound("no such user".into()));
    }
    if crate::store::mysql::people::blocked_either_way(&state.mysql, session.user_id, body.user_id)
        .await?
    {
        return Err(AppError::forbidden(
            "blocked",
            "one of you has blocked the other",
        ));
    }
    if membership(&state, group.id, body.user_id).await?.is_some() {
        start_reading(&state, body.user_id, group.id).await?;
        return Ok(HttpResponse::Ok().json(json!({
            "status": "member", "group_id": group.id.to_string(), "user_id": body.user_id
        })));
    }
    let joined =
        || json!({ "status": "joined", "group_id": group.id.to_string(), "user_id": body.user_id });
    match group.join_mode.as_str() {
        JOIN_APPROVAL if !me.is_manager() => {
            let request = groups::request_join(
                &state.mysql,
                group.id,
                body.user_id,
                Some(session.user_id),
                None,
            )
            .await?;
            Ok(HttpResponse::Accepted().json(json!({ "status": "pending", "request": request })))
        }
        JOIN_INVITE_ONLY if !me.is_manager() => Err(AppError::forbidden(
            "forbidden",
            "only the owner and admins may invite to this group",
        )),
        _ => {
            admit(&state, group.id, body.user_id, session.user_id).await?;
            Ok(HttpResponse::Ok().json(joined()))
        }
    }
}

async fn requests(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: Params,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_manager(&state, group.id, session.user_id).await?;
    let page = params.page()?;
    let (requests, total) =
        groups::list_join_requests(&state.mysql, group.id, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(page.body("requests", requests, total)?))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn decide(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_request, decision) = path.into_inner();
    let accept = match decision.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return Err(AppError::NotFound("no such route".into())),
    };
    let group = load(&state, &raw_group).await?;
    require_manager(&state, group.id, session.user_id).await?;
    let not_found = || AppError::NotFound("no such join request".into());
    let id: u64 = raw_request.parse().map_err(|_| not_found())?;
    let request = groups::find_join_request(&state.mysql, id)
        .await?
        .filter(|r| r.group_id == group.id)
        .ok_or_else(not_found)?;
    let lock = lock_group(&state, group.id).await?;
    let decided = decide_locked(&state, group.id, request.id, accept, session.user_id).await;
    lock.release().await;
    Ok(HttpResponse::Ok().json(json!({ "request": decided? })))
}

async fn decide_locked(
    state: &AppState,
    group: GroupId,
    request: u64,
    accept: bool,
    by: UserId,
) -> AppResult<groups::JoinRequest> {
    require_live(state, group).await?;
    let decided = groups::decide_join_request(&state.mysql, request, accept)
        .await?
        .ok_or_else(|| AppError::Conflict {
            field: None,
            message: "this request was already decided".into(),
        })?;
    if accept {
        state.hub.changed(Change::group(group)).await;
        start_reading(state, decided.user_id, group).await?;
        announce(
            state,
            group,
            by,
            json!({ "action": "join", "user_id": decided.user_id, "by": by }),
        )
        .await?;
    }
    Ok(decided)
}

async fn members(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: Params,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_member(&state, group.id, session.user_id).await?;
    let page = params.page()?;
    let (rows, total) = page.slice(groups::members(&state.mysql, group.id).await?);
    let ids: Vec<UserId> = rows.iter().map(|m| UserId(m.user_id)).collect();
    let (people, online) = tokio::try_join!(
        users::find_many(&state.mysql, &ids),
        state.hub.online_many(&ids),
    )?;
    let list: Vec<serde_json::Value> = rows
        .iter()
        .zip(online)
        .map(|(m, online)| {
            let user = people.iter().find(|u| u.id.0 == m.user_id);
            json!({
                "user_id": UserId(m.user_id),
                "user_name": user.map(|u| u.user_name.clone()),
                "nick_name": user.map(|u| u.nick_name.clone()),
                "nickname": m.nickname,
                "role": m.role,
                "muted_until": m.muted_until().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "online": online,
                "joined_at": m.joined_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("members", list, total)?))
}

/// `me` leaves; otherwise a kick: admins kick members, the owner kicks anyone.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn remove(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    let group = load(&state, &raw_group).await?;
    let me = session.user_id;
    let (target, action) = if raw_user == "me" {
        let mine = membership(&state, group.id, me)
            .await?
            .ok_or_else(|| AppError::NotFound("you are not a member of this group".into()))?;
        if mine.role == ROLE_OWNER {
            return Err(AppError::Conflict {
                field: None,
                message: "the owner cannot leave: transfer ownership or dissolve the group first"
                    .into(),
            });
        }
        (me, "leave")
    } else {
        let target = path_user(&raw_user)?;
        let mine = require_member(&state, group.id, me).await?;
        let theirs = require_target(&state, group.id, target).await?;
        let allowed = target != me
            && (mine.role == ROLE_OWNER || (mine.role == ROLE_ADMIN && theirs.role == ROLE_MEMBER));
        if !allowed {
            return Err(AppError::forbidden(
                "forbidden",
                "you may not remove this member",
            ));
        }
        (target, "kick")
    };
    groups::remove_member(&state.mysql, group.id, target).await?;
    state.hub.changed(Change::group(group.id)).await;
    reads::remove(
        &state.mongo,
        target,
        &ConversationId::Group(group.id).to_string(),
    )
    .await?;
    let description = if action == "leave" {
        json!({ "action": "leave", "user_id": target })
    } else {
        json!({ "action": "kick", "user_id": target, "by": me })
    };
    announce(&state, group.id, me, description).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "group_id": group.id.to_string(), "user_id": target, "removed": true })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn transfer(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_owner(&state, group.id, session.user_id).await?;
    if body.user_id == session.user_id {
        return Err(AppError::validation("user_id", "you are the owner already"));
    }
    require_target(&state, group.id, body.user_id).await?;
    if !groups::transfer(&state.mysql, group.id, session.user_id, body.user_id).await? {
        return Err(AppError::Conflict {
            field: None,
            message: "the group changed meanwhile; reload and retry".into(),
        });
    }
    state.hub.changed(Change::group(group.id)).await;
    announce(
        &state,
        group.id,
        session.user_id,
        json!({ "action": "transfer", "user_id": body.user_id, "by": session.user_id }),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "group_id": group.id.to_string(), "owner_id": body.user_id })))
}

async fn change_role(
    session: &CurrentSession,
    state: &AppState,
    raw_group: &str,
    target: UserId,
    admin: bool,
) -> AppResult<HttpResponse> {
    let group = load(state, raw_group).await?;
    require_owner(state, group.id, session.user_id).await?;
    let theirs = require_target(state, group.id, target).await?;
    if theirs.role == ROLE_OWNER {
        return Err(AppError::validation(
            "user_id",
            "the owner's role changes only by transfer",
        ));
    }
    let role = if admin { ROLE_ADMIN } else { ROLE_MEMBER };
    if theirs.role != role {
        groups::set_role(&state.mysql, group.id, target, role).await?;
        state.hub.changed(Change::group(group.id)).await;
        let action = if admin { "admin" } else { "unadmin" };
        announce(
            state,
            group.id,
            session.user_id,
            json!({ "action": action, "user_id": target, "by": session.user_id }),
        )
        .await?;
    }
    Ok(HttpResponse::Ok()
        .json(json!({ "group_id": group.id.to_string(), "user_id": target, "role": role })))
}

async fn add_admin(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> AppResult<HttpResponse> {
    change_role(&session, &state, &path, body.user_id, true).await
}

async fn remove_admin(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    change_role(&session, &state, &raw_group, path_user(&raw_user)?, false).await
}

/// Whether `mine` may mute or unmute `theirs`: admins mute members, the owner anyone else.
fn may_moderate(mine: &Membership, theirs: &Membership, me: UserId) -> bool {
    theirs.user_id != me.0
        && (mine.role == ROLE_OWNER || (mine.role == ROLE_ADMIN && theirs.role == ROLE_MEMBER))
}

#[derive(Deserialize)]
struct MuteBody {
    user_id: UserId,
    duration_secs: u64,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn mute(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<MuteBody>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    if !(1..=MUTE_MAX_SECS).contains(&body.duration_secs) {
        return Err(AppError::validation(
            "duration_secs",
            format!("must be from 1 to {MUTE_MAX_SECS} seconds"),
        ));
    }
    let mine = require_manager(&state, group.id, session.user_id).await?;
    let theirs = require_target(&state, group.id, body.user_id).await?;
    if !may_moderate(&mine, &theirs, session.user_id) {
        return Err(AppError::forbidden(
            "forbidden",
            "you may not mute this member",
        ));
    }
    let secs = i64::try_from(body.duration_secs).unwrap_or(i64::MAX);
    let until = chrono::Utc::now() + chrono::Duration::seconds(secs);
    groups::set_muted_until(&state.mysql, group.id, body.user_id, Some(until)).await?;
    state.hub.changed(Change::group(group.id)).await;
    let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    announce(
        &state,
        group.id,
        session.user_id,
        json!({ "action": "mute", "user_id": body.user_id, "by": session.user_id, "until": until_text }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "user_id": body.user_id, "muted_until": until_text })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn unmute(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    let group = load(&state, &raw_group).await?;
    let target = path_user(&raw_user)?;
    let mine = require_manager(&state, group.id, session.user_id).await?;
    let theirs = require_target(&state, group.id, target).await?;
    if !may_moderate(&mine, &theirs, session.user_id) {
        return Err(AppError::forbidden(
            "forbidden",
            "you may not unmute this member",
        ));
    }
    groups::set_muted_until(&state.mysql, group.id, target, None).await?;
    state.hub.changed(Change::group(group.id)).await;
    announce(
        &state,
        group.id,
        session.user_id,
        json!({ "action": "unmute", "user_id": target, "by": session.user_id }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "user_id": target, "muted_until": null })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    dnd: Option<bool>,
    #[serde(default)]
    folded: Option<bool>,
    #[serde(default)]
    show_in_contacts: Option<bool>,
}

async fn my_settings(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<SettingsBody>,
) -> AppResult<HttpResponse> {
    let group = load(&state, &path).await?;
    require_member(&state, group.id, session.user_id).await?;
    let optional_text = |value: Option<String>,
                         field: &'static str,
                         max: usize|
     -> AppResult<Option<Option<String>>> {
        value
            .map(|v| {
                let text = text_field(&v, field, 0, max)?;
                Ok((!text.is_empty()).then(|| text.to_owned()))
            })
            .transpose()
    };
    let change = SettingsChange {
        nickname: optional_text(body.nickname, "nickname", NICKNAME_MAX_CHARS)?,
        remark: optional_text(body.remark, "remark", REMARK_MAX_CHARS)?,
        dnd: body.dnd,
        folded: body.folded,
        show_in_contacts: body.show_in_contacts,
    };
    groups::update_settings(&state.mysql, group.id, session.user_id, change).await?;
    state.hub.changed(Change::group(group.id)).await;
    let now = require_member(&state, group.id, session.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "settings": {
        "group_id": group.id.to_string(),
        "nickname": now.nickname,
        "remark": now.remark,
        "dnd": now.dnd != 0,
        "folded": now.folded != 0,
        "show_in_contacts": now.show_in_contacts != 0,
    }})))
}
