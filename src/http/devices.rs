//! Devices: every login, listed and revocable. Revoking closes that session's sockets.

use actix_web::{HttpResponse, web};

use crate::chat::Chat;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Params;
use crate::http::replies::DeviceRevoked;
use crate::session::CurrentSession;
use crate::store::redis::logins;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/devices").route(web::get().to(list)))
        .service(web::resource("/user/devices/{id}").route(web::delete().to(revoke)));
}

async fn list(
    session: CurrentSession,
    state: web::Data<Chat>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let all = logins::devices(
        &state.redis,
        &state.keys,
        session.user_id,
        &session.login_id,
    )
    .await?;
    let (devices, total) = page.slice(all);
    Ok(HttpResponse::Ok().json(page.body("devices", devices, total)?))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn revoke(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    if !logins::revoke(&state.redis, &state.keys, session.user_id, &id).await? {
        return Err(AppError::NotFound("no such device".into()));
    }
    state.hub.revoke_logins(std::slice::from_ref(&id)).await?;
    Ok(HttpResponse::Ok().json(DeviceRevoked { id, revoked: true }))
}
