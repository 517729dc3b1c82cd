//! Public profiles and user search. A profile shows what anybody may see, plus the caller's own
//! view of the relation (friend, remark) and whether the user is online.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Params;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::mysql::people;
use crate::store::mysql::users::{self, ExactColumn, User};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(search)))
        .service(web::resource("/users/{id}").route(web::get().to(profile)));
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub id: UserId,
    pub user_name: String,
    pub nick_name: String,
    pub avatar: String,
    pub sex: u8,
    pub online: bool,
    pub is_friend: bool,
    pub remark: Option<String>,
}

/// Profiles of these users as `viewer` sees them, in the same order.
pub async fn profiles(
    state: &AppState,
    viewer: UserId,
    users: Vec<User>,
) -> AppResult<Vec<Profile>> {
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let (relations, online) = tokio::try_join!(
        people::relations(&state.mysql, viewer, &ids),
        state.hub.online_many(&ids),
    )?;
    Ok(users
        .into_iter()
        .zip(online)
        .map(|(user, online)| {
            let relation = relations.get(&user.id).cloned().unwrap_or_default();
            Profile {
                id: user.id,
                user_name: user.user_name,
                nick_name: user.nick_name,
                avatar: user.avatar,
                sex: user.sex,
                online,
                is_friend: relation.is_friend,
                remark: relation.remark,
            }
        })
        .collect())
}

pub async fn profile_of(state: &AppState, viewer: UserId, user: User) -> AppResult<Profile> {
    profiles(state, viewer, vec![user])
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("profile vanished")))
}

/// A user id from a path; anything else is an unknown user.
pub fn path_user(raw: &str) -> AppResult<UserId> {
    UserId::parse(raw).ok_or_else(|| AppError::NotFound("no such user".into()))
}

async fn profile(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = path_user(&path)?;
    let user = users::find_by_id(&state.mysql, id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    Ok(HttpResponse::Ok().json(profile_of(&state, session.user_id, user).await?))
}

/// `?q=` searches; `?user_name=` and `?email=` are exact lookups. Listing everybody is not
/// offered: one of them is required.
async fn search(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let exact = |column, value: &str| {
        let state = state.clone();
        let value = value.trim().to_owned();
        async move { users::find_exact(&state.mysql, column, &value).await }
    };
    let (found, total) =
        if let Some(name) = params.get("user_name").filter(|v| !v.trim().is_empty()) {
            page.slice(
                exact(ExactColumn::UserName, name)
                    .await?
                    .into_iter()
                    .collect(),
            )
        } else if let Some(email) = params.get("email").filter(|v| !v.trim().is_empty()) {
            page.slice(
                exact(ExactColumn::Email, email)
                    .await?
                    .into_iter()
                    .collect(),
            )
        } else {
            let text = params.get("q").map(str::trim).unwrap_or("");
            if text.is_empty() {
                return Err(AppError::validation(
                    "q",
                    "is required (or an exact user_name or email)",
                ));
            }
            if text.chars().count() > 64 {
                return Err(AppError::validation("q", "must be at most 64 characters"));
            }
            users::search(&state.mysql, text, page.limit, page.offset).await?
        };
    let profiles = profiles(&state, session.user_id, found).await?;
    Ok(HttpResponse::Ok().json(page.body("users", profiles, total)?))
}
