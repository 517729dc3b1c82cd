//! Moderation: bans, ownership transfer, admins, member mutes.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::joining::UserBody;
use super::members::parse_until;
use super::{GroupPath, MUTE_MAX_SECS, group_path};
use crate::chat::Chat;
use crate::domain::{Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::MyPage;
use crate::http::people::path_user;
use crate::http::replies::{Banned, Muted, Owner, RoleSet, Unbanned};
use crate::session::CurrentSession;

#[derive(Deserialize)]
pub(super) struct BanBody {
    user_id: UserId,
    #[serde(default)]
    until: Option<String>,
}

/// A ban of a member (who is removed with it) or of anyone else; the rights of a kick.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn ban(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<BanBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let until = body.until.as_deref().map(parse_until).transpose()?;
    let (ban, removed) = state
        .ban(session.user_id, group, body.user_id, until)
        .await?;
    Ok(HttpResponse::Ok().json(Banned { ban, removed }))
}

pub(super) async fn ban_list(
    state: web::Data<Chat>,
    mine: MyPage,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (list, total) = state
        .bans(mine.user, group, page.limit, page.offset)
        .await?;
    Ok(HttpResponse::Ok().json(page.body("bans", list, total)?))
}

/// Lifts a ban: the owner lifts any, an admin those not made by the owner.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn unban(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    let target = path_user(&raw_user)?;
    let group = group_path(&raw_group)?;
    state.unban(session.user_id, group, target).await?;
    Ok(HttpResponse::Ok().json(Unbanned {
        group_id: group,
        user_id: target,
        banned: false,
    }))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn transfer(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<UserBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    state
        .transfer_ownership(session.user_id, group, body.user_id)
        .await?;
    Ok(HttpResponse::Ok().json(Owner {
        group_id: group,
        owner_id: body.user_id,
    }))
}

async fn change_role(
    session: &CurrentSession,
    state: &Chat,
    raw_group: &str,
    target: UserId,
    admin: bool,
) -> AppResult<HttpResponse> {
    let group = group_path(raw_group)?;
    let role = state
        .set_role(session.user_id, group, target, admin)
        .await?;
    Ok(HttpResponse::Ok().json(RoleSet {
        group_id: group,
        user_id: target,
        role,
    }))
}

pub(super) async fn add_admin(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> AppResult<HttpResponse> {
    change_role(&session, &state, &path, body.user_id, true).await
}

pub(super) async fn remove_admin(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    change_role(&session, &state, &raw_group, path_user(&raw_user)?, false).await
}

#[derive(Deserialize)]
pub(super) struct MuteBody {
    user_id: UserId,
    duration_secs: u64,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn mute(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<MuteBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    if !(1..=MUTE_MAX_SECS).contains(&body.duration_secs) {
        return Err(AppError::validation(
            "duration_secs",
            format!("must be from 1 to {MUTE_MAX_SECS} seconds"),
        ));
    }
    let until = state
        .mute_member(session.user_id, group, body.user_id, body.duration_secs)
        .await?;
    Ok(HttpResponse::Ok().json(Muted {
        user_id: body.user_id,
        muted_until: Some(Timestamp(until)),
    }))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn unmute(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    let group = group_path(&raw_group)?;
    let target = path_user(&raw_user)?;
    state.unmute_member(session.user_id, group, target).await?;
    Ok(HttpResponse::Ok().json(Muted {
        user_id: target,
        muted_until: None,
    }))
}
