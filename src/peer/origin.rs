//! Whether a request comes from a page allowed to act here. A browser attaches the session
//! cookie to a request another site's page makes, so every unsafe method (POST, PUT, PATCH,
//! DELETE, with or without a body; `http::origin` applies it to them) and every WebSocket upgrade
//! from a foreign page is refused with 403 `forbidden_origin`.
//!
//! A request passes when its `Origin` is one of `server.allowed_origins`, or, when that list is
//! empty, the origin of the request itself (same scheme and same `Host`). Without an `Origin` it
//! passes unless the browser says it is `Sec-Fetch-Site: cross-site`: clients that are not
//! browsers send neither header, and cannot be made to send someone else's cookie.
//!
//! The request's scheme is the listener's (plain HTTP here) unless the peer is a trusted proxy
//! (`server.trusted_proxies`, or any peer with `server.trust_forwarded_for`), whose
//! `X-Forwarded-Proto` is then believed. Behind a TLS-terminating proxy that is not listed,
//! put the public `https://` origin in `server.allowed_origins`.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};

use crate::config::ServerSettings;
use crate::error::{AppError, AppResult};

const SEC_FETCH_SITE: &str = "sec-fetch-site";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// 403 `forbidden_origin` unless the request comes from an allowed page (or from no page).
pub(crate) fn check(req: &HttpRequest, server: &ServerSettings) -> AppResult<()> {
    let headers = req.headers();
    let allowed = match headers.get(header::ORIGIN) {
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| origin_allowed(origin, req, server)),
        None => !header_is(headers, SEC_FETCH_SITE, "cross-site"),
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "forbidden_origin",
            "requests from this Origin are not allowed here",
        ))
    }
}

fn origin_allowed(origin: &str, req: &HttpRequest, server: &ServerSettings) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if !server.allowed_origins.is_empty() {
        return server
            .allowed_origins
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    }
    let Some(host) = headers_str(req.headers(), header::HOST.as_str()).filter(|h| !h.is_empty())
    else {
        return false;
    };
    let scheme = request_scheme(req, server);
    origin.split_once("://").is_some_and(|(s, authority)| {
        s.eq_ignore_ascii_case(scheme) && authority.eq_ignore_ascii_case(host)
    })
}

/// `http` or `https`: what the client used to reach us.
fn request_scheme<'a>(req: &'a HttpRequest, server: &ServerSettings) -> &'a str {
    if super::peer_is_trusted_proxy(req, server) {
        // The proxy in front sets it last; anything before is the client's to invent.
        let forwarded = req
            .headers()
            .get_all(X_FORWARDED_PROTO)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .last();
        if let Some(proto) = forwarded {
            return proto;
        }
    }
    if req.app_config().secure() {
        "https"
    } else {
        "http"
    }
}

fn headers_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers_str(headers, name).is_some_and(|v| v.eq_ignore_ascii_case(value))
}
