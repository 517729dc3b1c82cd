//! `GET /ws`: a logged-in user (401 otherwise) from an allowed Origin (403 otherwise, against
//! cross-site WebSocket hijacking), within the connection caps (429/503 otherwise), gets a
//! socket and a connection task.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{AppError, AppResult};
use crate::http::client_ip;
use crate::messaging::ensure_lobby_reader;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::ws::connection;
use crate::ws::ops::OpCtx;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ws").route(web::get().to(upgrade)));
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    session: CurrentSession,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    check_origin(&req, &state.settings.server.allowed_origins)?;
    let slot = state
        .ws_slots
        .acquire(client_ip(&req, state.settings.server.trust_forwarded_for))?;
    let (response, socket, stream) = actix_ws::handle(&req, body)
        .map_err(|e| AppError::BadRequest(format!("expected a WebSocket upgrade: {e}").into()))?;
    // Every user reads the lobby; joining it "now" keeps its past out of their unread.
    ensure_lobby_reader(&state, session.user_id).await?;
    let attached = state
        .hub
        .attach(
            session.user_id,
            &session.login_id,
            state.settings.ws.outbound_queue,
        )
        .await?;
    let ctx = OpCtx {
        state: state.clone(),
        user: session.user_id,
        conn_id: attached.conn_id.clone(),
    };
    actix_web::rt::spawn(connection::run(ctx, socket, stream, attached, slot));
    Ok(response)
}

/// Browsers always send `Origin` on a WebSocket upgrade; it must be an allowed origin, or the
/// same host as the request when none are configured. Requests without one are not from a
/// browser page and cannot be hijacked.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> AppResult<()> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    let ok = if allowed.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        !host.is_empty() && authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
    } else {
        allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if ok {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "forbidden_origin",
            "this Origin may not open a WebSocket here",
        ))
    }
}
