//! The member list, leaving and removing members (a kick, optionally with a ban).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};

use super::{GroupPath, group_path};
use crate::chat::Chat;
use crate::domain::{Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::http::pagination::{MyPage, Params};
use crate::http::people::path_user;
use crate::http::replies::{Member, Removed};
use crate::session::CurrentSession;
use crate::store::mysql::{groups, users};

pub(super) async fn members(
    state: web::Data<Chat>,
    mine: MyPage,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let seen = state.visible_group(group, mine.user).await?;
    seen.member()?;
    let page = mine.page;
    let (rows, total) = page.slice(groups::members(&state.mysql, seen.id()).await?);
    let ids: Vec<UserId> = rows.iter().map(|m| UserId(m.user_id)).collect();
    let (people, online) = tokio::try_join!(
        users::find_many(&state.mysql, &ids),
        state.online_as_seen_by(mine.user, &ids),
    )?;
    let list: Vec<Member> = rows
        .iter()
        .zip(online)
        .map(|(m, online)| {
            let user = people.iter().find(|u| u.id.0 == m.user_id);
            Member {
                user_id: UserId(m.user_id),
                user_name: user.map(|u| u.user_name.clone()),
                nick_name: user.map(|u| u.nick_name.clone()),
                nickname: m.nickname.clone(),
                role: m.role,
                muted_until: m.muted_until().map(Timestamp),
                online,
                joined_at: Timestamp(m.joined_at.and_utc()),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("members", list, total)?))
}

/// `?ban=true` (and `?until=`) of a kick.
pub(super) fn kick_ban(params: &Params) -> AppResult<Option<Option<DateTime<Utc>>>> {
    let ban = match params.get("ban") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(AppError::validation("ban", "must be true or false")),
    };
    let until = params.get("until").map(parse_until).transpose()?;
    match (ban, until) {
        (false, Some(_)) => Err(AppError::validation("until", "only with ban=true")),
        (false, None) => Ok(None),
        (true, until) => Ok(Some(until)),
    }
}

/// The end of a ban: an RFC 3339 time in the future.
pub(super) fn parse_until(raw: &str) -> AppResult<DateTime<Utc>> {
    let invalid = || AppError::validation("until", "must be an RFC 3339 time in the future");
    let until = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| invalid())?
        .with_timezone(&Utc);
    if until <= Utc::now() {
        return Err(invalid());
    }
    Ok(until)
}

/// `me` leaves; otherwise a kick: admins kick members, the owner kicks anyone. `?ban=true`
/// also bans the kicked user (`?until=` an RFC 3339 end; for good without it).
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn remove(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String)>,
    params: Params,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_user) = path.into_inner();
    let ban = kick_ban(&params)?;
    let group = group_path(&raw_group)?;
    let me = session.user_id;
    if raw_user == "me" {
        if ban.is_some() {
            // Answered as the leave would be up to the point of the ban.
            if state.visible_group(group, me).await?.me.is_none() {
                return Err(AppError::NotFound(
                    "you are not a member of this group".into(),
                ));
            }
            return Err(AppError::forbidden("forbidden", "you may not ban yourself"));
        }
        state.leave_group(me, group).await?;
        return Ok(HttpResponse::Ok().json(Removed {
            group_id: group,
            user_id: me,
            removed: true,
            ban: None,
        }));
    }
    let target = path_user(&raw_user)?;
    let kicked = state.kick(me, group, target, ban).await?;
    Ok(HttpResponse::Ok().json(Removed {
        group_id: group,
        user_id: target,
        removed: kicked.removed,
        ban: kicked.ban,
    }))
}
