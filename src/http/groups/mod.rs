//! Groups over HTTP: create and describe, join (open, by approval, by invitation), members and
//! roles, moderation (whole-group and member mutes, bans), per-member settings, dissolution.
//! The rules and what follows each change are the core's (`chat::groups`); these handlers parse,
//! call it and answer.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::chat::groups::no_such_group;
use crate::domain::{GroupId, JoinMode};
use crate::error::{AppError, AppResult};

mod info;
mod joining;
mod members;
mod moderation;
mod settings;

use info::{create, describe, dissolve, mine, update};
pub(crate) use joining::addition_response;
use joining::{decide, invite, join, requests};
use members::{members, remove};
use moderation::{add_admin, ban, ban_list, mute, remove_admin, transfer, unban, unmute};
use settings::my_settings;

pub(crate) const NAME_MAX_CHARS: usize = 64;
pub(crate) const NOTICE_MAX_CHARS: usize = 1000;
pub(crate) const NICKNAME_MAX_CHARS: usize = 32;
pub(crate) const REMARK_MAX_CHARS: usize = 64;
pub(crate) const MESSAGE_MAX_CHARS: usize = 200;
/// Longest member mute: 30 days.
pub(crate) const MUTE_MAX_SECS: u64 = 30 * 24 * 3600;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/groups")
            .route(web::post().to(create))
            .route(web::get().to(mine)),
    )
    .service(
        web::resource("/groups/{id}")
            .route(web::get().to(describe))
            .route(web::patch().to(update))
            .route(web::delete().to(dissolve)),
    )
    .service(web::resource("/groups/{id}/join").route(web::post().to(join)))
    .service(
        web::resource("/groups/{id}/members")
            .route(web::post().to(invite))
            .route(web::get().to(members)),
    )
    .service(web::resource("/groups/{id}/members/{user_id}").route(web::delete().to(remove)))
    .service(web::resource("/groups/{id}/requests").route(web::get().to(requests)))
    .service(web::resource("/groups/{id}/requests/{rid}/{decision}").route(web::post().to(decide)))
    .service(web::resource("/groups/{id}/transfer").route(web::post().to(transfer)))
    .service(web::resource("/groups/{id}/admins").route(web::post().to(add_admin)))
    .service(web::resource("/groups/{id}/admins/{user_id}").route(web::delete().to(remove_admin)))
    .service(web::resource("/groups/{id}/mutes").route(web::post().to(mute)))
    .service(web::resource("/groups/{id}/mutes/{user_id}").route(web::delete().to(unmute)))
    .service(
        web::resource("/groups/{id}/bans")
            .route(web::post().to(ban))
            .route(web::get().to(ban_list)),
    )
    .service(web::resource("/groups/{id}/bans/{user_id}").route(web::delete().to(unban)))
    .service(web::resource("/groups/{id}/me").route(web::patch().to(my_settings)));
}

/// The group of a `/groups/{id}...` path (404 for what is no group id, as for an unknown
/// one). Handlers take it last, so a bad body is still answered before it.
struct GroupPath(GroupId);

impl FromRequest for GroupPath {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.match_info()
                .get("id")
                .ok_or_else(no_such_group)
                .and_then(group_path)
                .map(Self),
        )
    }
}

/// The group of a path (404 for what is no group id, as for an unknown one).
fn group_path(raw: &str) -> AppResult<GroupId> {
    match GroupId::parse(raw) {
        Some(id) if !raw.trim().is_empty() => Ok(id),
        _ => Err(no_such_group()),
    }
}

fn text_field<'a>(
    value: &'a str,
    field: &'static str,
    min: usize,
    max: usize,
) -> AppResult<&'a str> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min || chars > max || trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::validation(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(trimmed)
}

fn join_mode(raw: &str) -> AppResult<JoinMode> {
    JoinMode::parse(raw, "join_mode")
}
