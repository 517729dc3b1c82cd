//! Blocking: a blocked user cannot message or befriend the blocker; a block ends a friendship.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::http::friends::push_unfriended;
use crate::http::json::JsonBody;
use crate::http::pagination::Params;
use crate::http::people::path_user;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::directory::Change;
use crate::store::mysql::{people, users};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/blocks")
            .route(web::post().to(block))
            .route(web::get().to(list)),
    )
    .service(web::resource("/blocks/{user_id}").route(web::delete().to(unblock)));
}

#[derive(Deserialize)]
struct BlockBody {
    user_id: UserId,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn block(
    session: CurrentSession,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<BlockBody>,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    if body.user_id == me {
        return Err(AppError::validation("user_id", "you cannot block yourself"));
    }
    if !users::exists(&state.mysql, body.user_id).await? {
        return Err(AppError::NotFound("no such user".into()));
    }
    let (created, unfriended) = people::block(&state.mysql, me, body.user_id).await?;
    state.hub.changed(Change::pair(me, body.user_id)).await;
    if unfriended {
        push_unfriended(&state, me, body.user_id).await;
    }
    let block = serde_json::json!({
        "block": { "user_id": body.user_id, "created_at": crate::http::json::now_rfc3339() }
    });
    Ok(if created {
        HttpResponse::Created().json(block)
    } else {
        HttpResponse::Ok().json(block)
    })
}

async fn unblock(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let other = path_user(&path)?;
    if !people::unblock(&state.mysql, session.user_id, other).await? {
        return Err(AppError::NotFound("this user is not blocked".into()));
    }
    state
        .hub
        .changed(Change::pair(session.user_id, other))
        .await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user_id": other, "blocked": false })))
}

#[derive(Serialize)]
struct Blocked {
    user_id: UserId,
    user_name: String,
    nick_name: String,
    #[serde(serialize_with = "crate::http::json::rfc3339_millis")]
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn list(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let (rows, total) =
        people::list_blocks(&state.mysql, session.user_id, page.limit, page.offset).await?;
    let blocks: Vec<Blocked> = rows
        .into_iter()
        .map(|r| Blocked {
            user_id: UserId(r.blocked_id),
            user_name: r.user_name,
            nick_name: r.nick_name,
            created_at: r.created_at.and_utc(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("blocks", blocks, total)?))
}
