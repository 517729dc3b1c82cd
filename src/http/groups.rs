//! Minimal group management: create, list mine, add a member, leave.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::messaging::start_reading;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::mongo::reads;
use crate::store::mysql::{groups, users};

pub const NAME_MAX_CHARS: usize = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/groups")
            .route(web::post().to(create))
            .route(web::get().to(mine)),
    )
    .service(web::resource("/groups/{id}/members").route(web::post().to(add_member)))
    .service(web::resource("/groups/{id}/members/me").route(web::delete().to(leave)));
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn create(
    session: CurrentSession,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> AppResult<HttpResponse> {
    let name = body.name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} characters after trimming"),
        ));
    }
    let group = groups::create(&state.mysql, name, session.user_id).await?;
    start_reading(&state, session.user_id, group.id).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "group": group })))
}

async fn mine(session: CurrentSession, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let groups = groups::groups_of(&state.mysql, session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "groups": groups })))
}

#[derive(Deserialize)]
struct AddMemberBody {
    user_id: UserId,
}

/// The `{id}` of a group route: a real group (the lobby has no members to manage).
fn group_id(raw: &str) -> AppResult<GroupId> {
    match GroupId::parse(raw) {
        Some(id) if !id.is_lobby() && !raw.trim().is_empty() => Ok(id),
        _ => Err(AppError::NotFound("no such group".into())),
    }
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn add_member(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<AddMemberBody>,
) -> AppResult<HttpResponse> {
    let group = group_id(&path)?;
    if groups::find(&state.mysql, group).await?.is_none() {
        return Err(AppError::NotFound("no such group".into()));
    }
    if !groups::is_member(&state.mysql, group, session.user_id).await? {
        return Err(AppError::forbidden(
            "not_a_member",
            "only members may add members",
        ));
    }
    if !users::exists(&state.mysql, body.user_id).await? {
        return Err(AppError::NotFound("no such user".into()));
    }
    groups::add_member(&state.mysql, group, body.user_id).await?;
    // Idempotent: also repairs a read position a failed earlier attempt did not create.
    start_reading(&state, body.user_id, group).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "group_id": group.to_string(),
        "user_id": body.user_id,
    })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn leave(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let group_id = group_id(&path)?;
    let group = groups::find(&state.mysql, group_id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such group".into()))?;
    if group.owner_id == session.user_id {
        return Err(AppError::Conflict {
            field: None,
            message: "the owner cannot leave the group".into(),
        });
    }
    if !groups::remove_member(&state.mysql, group_id, session.user_id).await? {
        return Err(AppError::NotFound(
            "you are not a member of this group".into(),
        ));
    }
    reads::remove(
        &state.mongo,
        session.user_id,
        &ConversationId::Group(group_id).to_string(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "group_id": group_id.to_string(), "left": true })))
}
