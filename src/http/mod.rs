//! The HTTP API: one module per area, each exposing `configure()`, plus what they share
//! (typed JSON bodies, per-IP limits, the cross-site guard, the JSON shape of framework errors).
//! The WebSocket route is the `ws` edge's own; startup mounts both.

pub(crate) mod blocks;
pub(crate) mod conversations;
pub(crate) mod devices;
pub(crate) mod email;
pub(crate) mod files;
pub(crate) mod friends;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod invitations;
pub(crate) mod ip_limit;
pub(crate) mod json;
pub(crate) mod origin;
pub(crate) mod page;
pub(crate) mod pagination;
pub(crate) mod people;
pub(crate) mod pins;
pub(crate) mod profile;
pub(crate) mod replies;
pub(crate) mod search;
pub(crate) mod users;

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError, web};

use crate::error::AppError;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    users::configure(cfg);
    groups::configure(cfg);
    invitations::configure(cfg);
    people::configure(cfg);
    friends::configure(cfg);
    blocks::configure(cfg);
    devices::configure(cfg);
    email::configure(cfg);
    pins::configure(cfg);
    search::configure(cfg);
    conversations::configure(cfg);
    files::configure(cfg);
    page::configure(cfg);
}

/// Unknown routes answer 404 with the usual error body.
pub(crate) async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("no such route".into()))
}

/// Gives error responses the framework built itself (405 from a resource, 404s, extractor
/// failures of actix's own) the `{"code","message"}` body every client expects.
pub(crate) fn json_error_body<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
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
