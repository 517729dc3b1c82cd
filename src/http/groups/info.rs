//! Creating, describing, editing and dissolving a group; the caller's list of groups.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{GroupPath, NAME_MAX_CHARS, NOTICE_MAX_CHARS, join_mode, text_field};
use crate::chat::Chat;
use crate::domain::JoinMode;
use crate::error::AppResult;
use crate::http::json::JsonBody;
use crate::http::pagination::MyPage;
use crate::http::profile::parse_avatar;
use crate::http::replies::{Described, Dissolved, GroupReply};
use crate::session::CurrentSession;
use crate::store::mysql::groups::{self, GroupChange, NewGroup};

#[derive(Deserialize)]
pub(super) struct CreateBody {
    name: String,
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    join_mode: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn create(
    session: CurrentSession,
    state: web::Data<Chat>,
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
        .unwrap_or(JoinMode::Open);
    let group = state
        .create_group(NewGroup {
            name,
            notice,
            avatar,
            join_mode,
            owner: session.user_id,
        })
        .await?;
    Ok(HttpResponse::Created().json(GroupReply { group }))
}

pub(super) async fn mine(state: web::Data<Chat>, mine: MyPage) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (groups, total) = page.slice(groups::groups_of(&state.mysql, mine.user).await?);
    Ok(HttpResponse::Ok().json(page.body("groups", groups, total)?))
}

pub(super) async fn describe(
    session: CurrentSession,
    state: web::Data<Chat>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let seen = state.visible_group(group, session.user_id).await?;
    if seen.group.join_mode != JoinMode::Open {
        seen.member()?;
    }
    Ok(HttpResponse::Ok().json(Described {
        my_role: seen.me.map(|m| m.role),
        group: seen.group,
    }))
}

#[derive(Deserialize)]
pub(super) struct UpdateBody {
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
pub(super) async fn update(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<UpdateBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let wanted = GroupChange {
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
    let updated = state.update_group(session.user_id, group, wanted).await?;
    Ok(HttpResponse::Ok().json(GroupReply { group: updated }))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn dissolve(
    session: CurrentSession,
    state: web::Data<Chat>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    state.dissolve_group(session.user_id, group).await?;
    Ok(HttpResponse::Ok().json(Dissolved {
        group_id: group,
        dissolved: true,
    }))
}
