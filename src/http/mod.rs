//! The HTTP API: one module per area, each exposing `configure()`, plus what they share
//! (typed JSON bodies, client IPs, the JSON shape of framework errors).

pub mod blocks;
pub mod conversations;
pub mod devices;
pub mod email;
pub mod friends;
pub mod groups;
pub mod health;
pub mod ip_limit;
pub mod json;
pub mod page;
pub mod pagination;
pub mod people;
pub mod profile;
pub mod users;

use std::net::IpAddr;

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    users::configure(cfg);
    groups::configure(cfg);
    people::configure(cfg);
    friends::configure(cfg);
    blocks::configure(cfg);
    devices::configure(cfg);
    email::configure(cfg);
    conversations::configure(cfg);
    page::configure(cfg);
    crate::ws::configure(cfg);
}

/// Unknown routes answer 404 with the usual error body.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("no such route".into()))
}

/// Gives error responses the framework built itself (405 from a resource, 404s, extractor
/// failures of actix's own) the `{"code","message"}` body every client expects.
pub fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, original) = res.into_parts();
    let mut replacement = AppError::from_status(status).error_response();
    *replacement.status_mut() = status;
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, replacement).map_into_right_body::<B>(),
    ))
}

/// The client's IP for per-IP limits: the socket peer, or the address the reverse proxy put
/// last in `X-Forwarded-For` when `server.trust_forwarded_for` says there is one.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        // The proxy appends the address it saw; everything left of it is the client's to
        // invent, so only the rightmost entry is trusted.
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .last()
            .and_then(parse_ip);
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

fn parse_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}
