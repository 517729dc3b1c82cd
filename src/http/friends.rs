//! Friends: requests (send, list, accept / reject / ignore), the friend list, remarks, and
//! ending a friendship. Changes are pushed to both users' sockets.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::chat::Chat;
use crate::http::replies::{FriendReply, Friendship, RequestReply};

use crate::chat::friends::{Asked, Decision};
use crate::chat::profiles::Profile;
use crate::domain::{RequestStatus, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::MyPage;
use crate::http::people::path_user;
use crate::session::CurrentSession;
use crate::store::mysql::relations;
use crate::store::mysql::users;

/// Longest request message and remark, in characters.
pub(crate) const MESSAGE_MAX_CHARS: usize = 200;
pub(crate) const REMARK_MAX_CHARS: usize = 64;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    // The fixed /friends/requests paths go first so they never read as a user id.
    cfg.service(
        web::resource("/friends/requests")
            .route(web::post().to(send_request))
            .route(web::get().to(list_requests)),
    )
    .service(web::resource("/friends/requests/{id}/{decision}").route(web::post().to(decide)))
    .service(web::resource("/friends").route(web::get().to(list_friends)))
    .service(
        web::resource("/friends/{user_id}")
            .route(web::get().to(is_friend))
            .route(web::patch().to(set_remark))
            .route(web::delete().to(unfriend)),
    );
}

#[derive(Deserialize)]
struct RequestBody {
    user_id: UserId,
    #[serde(default)]
    message: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn send_request(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<RequestBody>,
) -> AppResult<HttpResponse> {
    let message = body
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    if message.is_some_and(|m| m.chars().count() > MESSAGE_MAX_CHARS) {
        return Err(AppError::validation(
            "message",
            format!("must be at most {MESSAGE_MAX_CHARS} characters"),
        ));
    }
    Ok(
        match state
            .ask_friend(session.user_id, body.user_id, message)
            .await?
        {
            Asked::Created(request) => HttpResponse::Created().json(RequestReply { request }),
            Asked::Accepted(request) | Asked::Existing(request) => {
                HttpResponse::Ok().json(RequestReply { request })
            }
        },
    )
}

async fn list_requests(state: web::Data<Chat>, mine: MyPage) -> AppResult<HttpResponse> {
    let page = mine.page;
    let incoming = match mine.params.get("direction").unwrap_or("incoming") {
        "incoming" => true,
        "outgoing" => false,
        _ => {
            return Err(AppError::validation(
                "direction",
                "must be incoming or outgoing",
            ));
        }
    };
    let status = match mine.params.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if RequestStatus::from_name(s).is_some() => RequestStatus::from_name(s),
        Some(_) => {
            return Err(AppError::validation(
                "status",
                "must be pending, accepted, rejected or ignored",
            ));
        }
    };
    let (requests, total) = relations::list_requests(
        &state.mysql,
        mine.user,
        incoming,
        status,
        page.limit,
        page.offset,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.body("requests", requests, total)?))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn decide(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_id, decision) = path.into_inner();
    let decision =
        Decision::parse(&decision).ok_or_else(|| AppError::NotFound("no such route".into()))?;
    let id: u64 = raw_id
        .parse()
        .map_err(|_| AppError::NotFound("no such friend request".into()))?;
    let decided = state
        .decide_friend_request(session.user_id, id, decision)
        .await?;
    Ok(HttpResponse::Ok().json(RequestReply { request: decided }))
}

#[derive(Serialize)]
struct Friend {
    #[serde(flatten)]
    profile: Profile,
    since: crate::domain::Timestamp,
}

async fn list_friends(state: web::Data<Chat>, mine: MyPage) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (rows, total) =
        relations::list_friends(&state.mysql, mine.user, page.limit, page.offset).await?;
    let ids: Vec<UserId> = rows.iter().map(|r| UserId(r.friend_id)).collect();
    let found = users::find_many(&state.mysql, &ids).await?;
    let since: std::collections::HashMap<UserId, chrono::DateTime<chrono::Utc>> = rows
        .iter()
        .map(|r| (UserId(r.friend_id), r.created_at.and_utc()))
        .collect();
    let friends: Vec<Friend> = state
        .profiles(mine.user, found)
        .await?
        .into_iter()
        .map(|profile| Friend {
            since: since.get(&profile.id).copied().unwrap_or_default().into(),
            profile,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("friends", friends, total)?))
}

async fn is_friend(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let is_friend = match UserId::parse(&path) {
        Some(other) => {
            relations::relation(&state.mysql, session.user_id, other)
                .await?
                .is_friend
        }
        None => false,
    };
    Ok(HttpResponse::Ok().json(Friendship {
        user_id: None,
        is_friend,
    }))
}

#[derive(Deserialize)]
struct RemarkBody {
    #[serde(default)]
    remark: Option<String>,
}

async fn set_remark(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<RemarkBody>,
) -> AppResult<HttpResponse> {
    let friend = path_user(&path)?;
    let remark = body
        .remark
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if remark
        .is_some_and(|r| r.chars().count() > REMARK_MAX_CHARS || r.chars().any(char::is_control))
    {
        return Err(AppError::validation(
            "remark",
            format!("must be at most {REMARK_MAX_CHARS} printable characters"),
        ));
    }
    if !relations::set_remark(&state.mysql, session.user_id, friend, remark).await? {
        return Err(AppError::NotFound("not your friend".into()));
    }
    let since = relations::friendship_since(&state.mysql, session.user_id, friend)
        .await?
        .map(|t| t.and_utc())
        .unwrap_or_default();
    let user = users::find_by_id(&state.mysql, friend)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    let profile = state.profile_of(session.user_id, user).await?;
    Ok(HttpResponse::Ok().json(FriendReply {
        friend: Friend {
            profile,
            since: since.into(),
        },
    }))
}

async fn unfriend(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let friend = path_user(&path)?;
    state.unfriend(session.user_id, friend).await?;
    Ok(HttpResponse::Ok().json(Friendship {
        user_id: Some(friend),
        is_friend: false,
    }))
}
