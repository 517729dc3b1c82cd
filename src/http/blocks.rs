//! Blocking over HTTP (the rules are chat::friends'): a blocked user cannot message or befriend
//! the blocker; a block ends a friendship.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::chat::Chat;
use crate::http::replies::{Block, BlockReply, Unblocked};

use crate::domain::UserId;
use crate::error::AppResult;
use crate::http::json::JsonBody;
use crate::http::pagination::MyPage;
use crate::http::people::path_user;
use crate::session::CurrentSession;
use crate::store::mysql::relations;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
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
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<BlockBody>,
) -> AppResult<HttpResponse> {
    let created = state.block(session.user_id, body.user_id).await?;
    let block = BlockReply {
        block: Block {
            user_id: body.user_id,
            created_at: crate::domain::Timestamp::now(),
        },
    };
    Ok(if created {
        HttpResponse::Created().json(block)
    } else {
        HttpResponse::Ok().json(block)
    })
}

async fn unblock(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let other = path_user(&path)?;
    state.unblock(session.user_id, other).await?;
    Ok(HttpResponse::Ok().json(Unblocked {
        user_id: other,
        blocked: false,
    }))
}

#[derive(Serialize)]
struct Blocked {
    user_id: UserId,
    user_name: String,
    nick_name: String,
    created_at: crate::domain::Timestamp,
}

async fn list(state: web::Data<Chat>, mine: MyPage) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (rows, total) =
        relations::list_blocks(&state.mysql, mine.user, page.limit, page.offset).await?;
    let blocks: Vec<Blocked> = rows
        .into_iter()
        .map(|r| Blocked {
            user_id: UserId(r.blocked_id),
            user_name: r.user_name,
            nick_name: r.nick_name,
            created_at: r.created_at.and_utc().into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("blocks", blocks, total)?))
}
