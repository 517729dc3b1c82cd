//! The browser client: three files embedded in the binary, served with a strict Content
//! Security Policy (no inline script, no other origins) and the usual hardening headers.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

const INDEX_HTML: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const APP_CSS: &str = include_str!("../../static/app.css");

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/app.js").route(web::get().to(script)))
        .service(web::resource("/app.css").route(web::get().to(style)))
        // Browsers ask for it on every page; there is none.
        .service(web::resource("/favicon.ico").route(web::get().to(no_icon)));
}

async fn index(req: HttpRequest) -> HttpResponse {
    page(&req, "text/html; charset=utf-8", INDEX_HTML)
}

async fn script(req: HttpRequest) -> HttpResponse {
    page(&req, "text/javascript; charset=utf-8", APP_JS)
}

async fn style(req: HttpRequest) -> HttpResponse {
    page(&req, "text/css; charset=utf-8", APP_CSS)
}

async fn no_icon() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

fn page(req: &HttpRequest, content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, csp(req)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// Scripts, styles and connections only from this server; the WebSocket is named explicitly
/// because older browsers do not count ws: as 'self'.
fn csp(req: &HttpRequest) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("");
    let sockets = if host.is_empty() {
        String::new()
    } else {
        format!(" ws://{host} wss://{host}")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; \
         media-src 'self'; connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}
