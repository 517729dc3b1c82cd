//! Friends: requests (send, list, accept / reject / ignore), the friend list, remarks, and
//! ending a friendship. Changes are pushed to both users' sockets.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::Params;
use crate::http::people::{Profile, path_user, profile_of, profiles};
use crate::hub::{Audience, Delivery};
use crate::messaging::event_json;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::directory::Change;
use crate::store::mysql::people::{self, ACCEPTED, FriendRequest, IGNORED, PENDING, REJECTED};
use crate::store::mysql::users;

/// Longest request message and remark, in characters.
pub const MESSAGE_MAX_CHARS: usize = 200;
pub const REMARK_MAX_CHARS: usize = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
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

/// Pushes one event to these users' sockets; a failure only costs the live update.
pub async fn push(state: &AppState, users: Vec<UserId>, kind: &str, data: &impl Serialize) {
    let delivery = Delivery {
        event: event_json(kind, data),
        audience: Audience::Users { users, primary: 0 },
        skip: None,
        mark: None,
    };
    if let Err(err) = state.hub.deliver(&[delivery]).await {
        tracing::warn!(error = %err, kind, "event not pushed");
    }
}

async fn push_request(state: &AppState, to: UserId, request: &FriendRequest) {
    push(
        state,
        vec![to],
        "friend_request",
        &serde_json::json!({ "request": request }),
    )
    .await;
}

/// Tells both users they are friends now, each with the other's profile.
async fn push_friendship(state: &AppState, a: UserId, b: UserId) -> AppResult<()> {
    let both = users::find_many(&state.mysql, &[a, b]).await?;
    for user in both {
        let other = if user.id == a { b } else { a };
        let profile = profile_of(state, other, user).await?;
        push(
            state,
            vec![other],
            "friend",
            &serde_json::json!({ "action": "added", "user": profile }),
        )
        .await;
    }
    Ok(())
}

pub async fn push_unfriended(state: &AppState, a: UserId, b: UserId) {
    push(
        state,
        vec![a],
        "friend",
        &serde_json::json!({ "action": "removed", "user_id": b }),
    )
    .await;
    push(
        state,
        vec![b],
        "friend",
        &serde_json::json!({ "action": "removed", "user_id": a }),
    )
    .await;
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
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RequestBody>,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let to = body.user_id;
    if to == me {
        return Err(AppError::validation(
            "user_id",
            "you cannot befriend yourself",
        ));
    }
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
    if !users::exists(&state.mysql, to).await? {
        return Err(AppError::NotFound("no such user".into()));
    }
    if people::blocked_either_way(&state.mysql, me, to).await? {
        return Err(AppError::forbidden(
            "blocked",
            "one of you has blocked the other",
        ));
    }
    if people::relation(&state.mysql, me, to).await?.is_friend {
        return Err(AppError::Conflict {
            field: Some("user_id"),
            message: "you are friends already".into(),
        });
    }
    // They asked first: asking back is saying yes.
    if let Some(theirs) = people::pending_between(&state.mysql, to, me).await?
        && let Some(accepted) = people::decide(&state.mysql, theirs.id, ACCEPTED).await?
    {
        state.hub.changed(Change::pair(me, to)).await;
        push_request(&state, to, &accepted).await;
        push_friendship(&state, me, to).await?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "request": accepted })));
    }
    // An ignored request stays "pending" to its sender: asking again changes nothing.
    if let Some(ignored) = people::ignored_between(&state.mysql, me, to).await? {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "request": ignored })));
    }
    let (request, created) = people::create_request(&state.mysql, me, to, message).await?;
    if created {
        push_request(&state, to, &request).await;
        Ok(HttpResponse::Created().json(serde_json::json!({ "request": request })))
    } else {
        Ok(HttpResponse::Ok().json(serde_json::json!({ "request": request })))
    }
}

async fn list_requests(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let incoming = match params.get("direction").unwrap_or("incoming") {
        "incoming" => true,
        "outgoing" => false,
        _ => {
            return Err(AppError::validation(
                "direction",
                "must be incoming or outgoing",
            ));
        }
    };
    let status = match params.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if [PENDING, ACCEPTED, REJECTED, IGNORED].contains(&s) => Some(s),
        Some(_) => {
            return Err(AppError::validation(
                "status",
                "must be pending, accepted, rejected or ignored",
            ));
        }
    };
    let (requests, total) = people::list_requests(
        &state.mysql,
        session.user_id,
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
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_id, decision) = path.into_inner();
    let status = match decision.as_str() {
        "accept" => ACCEPTED,
        "reject" => REJECTED,
        "ignore" => IGNORED,
        _ => return Err(AppError::NotFound("no such route".into())),
    };
    let not_found = || AppError::NotFound("no such friend request".into());
    let id: u64 = raw_id.parse().map_err(|_| not_found())?;
    let request = people::find_request(&state.mysql, id)
        .await?
        .ok_or_else(not_found)?;
    if request.from == session.user_id {
        return Err(AppError::forbidden(
            "forbidden",
            "only the recipient decides a request",
        ));
    }
    if request.to != session.user_id {
        return Err(not_found());
    }
    let decided = people::decide(&state.mysql, id, status)
        .await?
        .ok_or_else(|| AppError::Conflict {
            field: None,
            message: "this request was already decided".into(),
        })?;
    match status {
        ACCEPTED => {
            state
                .hub
                .changed(Change::pair(decided.from, decided.to))
                .await;
            push_request(&state, decided.from, &decided).await;
            push_friendship(&state, decided.from, decided.to).await?;
        }
        // An ignored request stays silent: the requester keeps seeing it pending.
        REJECTED => push_request(&state, decided.from, &decided).await,
        _ => {}
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "request": decided })))
}

#[derive(Serialize)]
struct Friend {
    #[serde(flatten)]
    profile: Profile,
    #[serde(serialize_with = "crate::http::json::rfc3339_millis")]
    since: chrono::DateTime<chrono::Utc>,
}

async fn list_friends(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let (rows, total) =
        people::list_friends(&state.mysql, session.user_id, page.limit, page.offset).await?;
    let ids: Vec<UserId> = rows.iter().map(|r| UserId(r.friend_id)).collect();
    let found = users::find_many(&state.mysql, &ids).await?;
    let since: std::collections::HashMap<UserId, chrono::DateTime<chrono::Utc>> = rows
        .iter()
        .map(|r| (UserId(r.friend_id), r.created_at.and_utc()))
        .collect();
    let friends: Vec<Friend> = profiles(&state, session.user_id, found)
        .await?
        .into_iter()
        .map(|profile| Friend {
            since: since.get(&profile.id).copied().unwrap_or_default(),
            profile,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("friends", friends, total)?))
}

async fn is_friend(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let is_friend = match UserId::parse(&path) {
        Some(other) => {
            people::relation(&state.mysql, session.user_id, other)
                .await?
                .is_friend
        }
        None => false,
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "is_friend": is_friend })))
}

#[derive(Deserialize)]
struct RemarkBody {
    #[serde(default)]
    remark: Option<String>,
}

async fn set_remark(
    session: CurrentSession,
    state: web::Data<AppState>,
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
    if !people::set_remark(&state.mysql, session.user_id, friend, remark).await? {
        return Err(AppError::NotFound("not your friend".into()));
    }
    let since = people::friendship_since(&state.mysql, session.user_id, friend)
        .await?
        .map(|t| t.and_utc())
        .unwrap_or_default();
    let user = users::find_by_id(&state.mysql, friend)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    let profile = profile_of(&state, session.user_id, user).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "friend": Friend { profile, since } })))
}

async fn unfriend(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let friend = path_user(&path)?;
    if !people::unfriend(&state.mysql, session.user_id, friend).await? {
        return Err(AppError::NotFound("not your friend".into()));
    }
    state
        .hub
        .changed(Change::pair(session.user_id, friend))
        .await;
    push_unfriended(&state, session.user_id, friend).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user_id": friend, "is_friend": false })))
}
