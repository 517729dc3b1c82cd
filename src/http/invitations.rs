//! Invitations to groups: a member adding somebody who is not their friend makes an invitation
//! (pushed to the invitee as `event: group` `{"kind": "invited"}`), which the invitee lists and
//! accepts or rejects. Nobody becomes a member of a group without their consent.

use actix_web::{HttpResponse, web};

use crate::chat::Chat;
use crate::http::replies::InvitationReply;

use crate::error::{AppError, AppResult};
use crate::http::groups::addition_response;
use crate::http::pagination::MyPage;
use crate::session::CurrentSession;
use crate::store::mysql::invitations;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/invitations").route(web::get().to(list)))
        .service(web::resource("/user/invitations/{id}/accept").route(web::post().to(accept)))
        .service(web::resource("/user/invitations/{id}/reject").route(web::post().to(reject)));
}

async fn list(state: web::Data<Chat>, mine: MyPage) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (items, total) =
        invitations::list_pending(&state.mysql, mine.user, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(page.body("invitations", items, total)?))
}

/// An invitation id of a path (an unknown one is 404 alike).
fn invitation_path(raw: &str) -> AppResult<u64> {
    raw.trim()
        .parse()
        .map_err(|_| AppError::NotFound("no such invitation".into()))
}

/// Accepting joins the group as if the inviter had added the caller: at once, or as a join
/// request for a manager in an `approval` group when the inviter is not a manager (202).
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn accept(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let (addition, decided) = state.accept_invitation(me, invitation_path(&path)?).await?;
    let group = decided.group.id;
    Ok(addition_response(addition, group, me, Some(decided)))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn reject(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let decided = state
        .reject_invitation(session.user_id, invitation_path(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(InvitationReply {
        invitation: decided,
    }))
}
