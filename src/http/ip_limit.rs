//! The per-IP limits of the HTTP routes (login, registration, email codes): each counts the
//! request's client ([`crate::peer::client_ip`]) against one of the limiters of the state.

use actix_web::HttpRequest;

use crate::chat::Chat;
use crate::error::AppResult;
use crate::peer::limiter::IpLimiter;

/// Counts the request against `limiter` by its client's key; 429 over the limit.
pub(crate) fn limit(req: &HttpRequest, state: &Chat, limiter: &IpLimiter) -> AppResult<()> {
    match crate::peer::client_ip(req, &state.settings.server) {
        Some(ip) => limiter.check(ip),
        // No peer address (e.g. a Unix socket): nothing to key on, so nothing to limit.
        None => Ok(()),
    }
}
