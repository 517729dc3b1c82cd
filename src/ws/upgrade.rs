//! `GET /ws`: a logged-in user (401 otherwise) from an allowed Origin (403 otherwise, against
//! cross-site WebSocket hijacking), within the connection caps (429/503 otherwise), gets a
//! socket and a connection task.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::chat::Chat;

use crate::error::AppResult;
use crate::peer::{client_ip, origin};
use crate::session::CurrentSession;
use crate::ws::connection;
use crate::ws::ops::OpCtx;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ws").route(web::get().to(upgrade)));
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    session: CurrentSession,
    state: web::Data<Chat>,
) -> AppResult<HttpResponse> {
    // Browsers always send `Origin` on an upgrade, so a foreign page is always recognised.
    origin::check(&req, &state.settings.server)?;
    let slot = state
        .ws_slots
        .acquire(client_ip(&req, &state.settings.server))?;
    let (response, outbound, stream) = connection::handle(&req, body, &state.settings.ws)?;
    // Every user reads the lobby; joining it "now" keeps its past out of their unread.
    state.ensure_lobby_reader(session.user_id).await?;
    let attached = state
        .hub
        .attach(session.user_id, &session.login_id, outbound.clone())
        .await?;
    let ctx = OpCtx {
        state: state.clone(),
        user: session.user_id,
        conn_id: attached.conn_id.clone(),
    };
    actix_web::rt::spawn(connection::run(ctx, outbound, stream, attached, slot));
    Ok(response)
}
