//! Pinned messages of a conversation: `POST /conversations/{c}/pins {"message_id"}`,
//! `DELETE /conversations/{c}/pins/{message_id}`, `GET /conversations/{c}/pins` (the rules:
//! [`crate::chat::pins`]).

use actix_web::{HttpResponse, web};
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::chat::Chat;
use crate::chat::pins::{Pin, PinEvent};
use crate::domain::ConversationId;
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::session::CurrentSession;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/conversations/{conversation}/pins")
            .route(web::get().to(list))
            .route(web::post().to(pin)),
    )
    .service(
        web::resource("/conversations/{conversation}/pins/{message_id}")
            .route(web::delete().to(unpin)),
    );
}

fn parse_conversation(raw: &str) -> AppResult<ConversationId> {
    ConversationId::parse(raw)
        .ok_or_else(|| AppError::validation("conversation", "must be u:<a>:<b> or g:<group id>"))
}

fn parse_message_id(raw: &str) -> AppResult<ObjectId> {
    ObjectId::parse_str(raw).map_err(|_| AppError::validation("message_id", "must be a message id"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    message_id: String,
}

/// `{"pin": ...}`.
#[derive(Serialize)]
struct PinReply {
    pin: Pin,
}

/// `{"pins": [...]}`, newest first.
#[derive(Serialize)]
struct PinList {
    pins: Vec<Pin>,
}

/// `{"unpinned": {...}}`.
#[derive(Serialize)]
struct Unpinned {
    unpinned: PinEvent,
}

/// 201 when pinned now, 200 when it was pinned already.
async fn pin(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<PinBody>,
) -> AppResult<HttpResponse> {
    let conversation = parse_conversation(&path)?;
    let id = parse_message_id(&body.message_id)?;
    let (pin, new) = state.pin(session.user_id, conversation, id).await?;
    let mut answer = if new {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(answer.json(PinReply { pin }))
}

async fn unpin(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (conversation, message_id) = path.into_inner();
    let conversation = parse_conversation(&conversation)?;
    let id = parse_message_id(&message_id)?;
    let unpinned = state.unpin(session.user_id, conversation, id).await?;
    Ok(HttpResponse::Ok().json(Unpinned { unpinned }))
}

async fn list(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let conversation = parse_conversation(&path)?;
    let pins = state.pins(session.user_id, conversation).await?;
    Ok(HttpResponse::Ok().json(PinList { pins }))
}
