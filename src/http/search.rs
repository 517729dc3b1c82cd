//! `GET /search/messages?q=&conversation=&before=&limit=`: message search in the caller's
//! conversations (the rules: [`crate::chat::search`]).

use actix_web::{HttpResponse, web};
use mongodb::bson::oid::ObjectId;

use crate::chat::Chat;
use crate::chat::search::SearchAsked;
use crate::domain::ConversationId;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Params;
use crate::session::CurrentSession;

/// Hits per page when the caller gives no `limit`, and the most they may ask for.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 50;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search/messages").route(web::get().to(search)));
}

fn parse(params: &Params) -> AppResult<SearchAsked> {
    let query = params
        .get("q")
        .ok_or_else(|| AppError::validation("q", "is required"))?
        .to_owned();
    let conversation = params
        .get("conversation")
        .filter(|c| !c.is_empty())
        .map(|raw| {
            ConversationId::parse(raw).ok_or_else(|| {
                AppError::validation("conversation", "must be u:<a>:<b> or g:<group id>")
            })
        })
        .transpose()?;
    let before = params
        .get("before")
        .filter(|b| !b.is_empty())
        .map(|raw| {
            ObjectId::parse_str(raw).map_err(|_| {
                AppError::validation("before", "must be a next_before of a previous page")
            })
        })
        .transpose()?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(AppError::validation(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    Ok(SearchAsked {
        query,
        conversation,
        before,
        limit,
    })
}

async fn search(
    session: CurrentSession,
    state: web::Data<Chat>,
    params: Params,
) -> AppResult<HttpResponse> {
    let asked = parse(&params)?;
    Ok(HttpResponse::Ok().json(state.search(session.user_id, asked).await?))
}
