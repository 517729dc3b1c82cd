//! Liveness (`/ping`), readiness (`/health`: every backend answers within the timeout) and
//! `/metrics` (behind `Authorization: Bearer <metrics.token>` when a token is set).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::chat::Chat;
use crate::error::AppError;
use crate::http::replies::Status;
use crate::store;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ping").route(web::get().to(ping)))
        .service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Prometheus text format: messages sent, refusals per anti-spam rule, live connections.
async fn metrics(req: HttpRequest, state: web::Data<Chat>) -> HttpResponse {
    let token = state.settings.metrics.token.expose_secret();
    if !token.is_empty() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(presented.trim().as_bytes(), token.as_bytes()) {
            let mut refused = AppError::Unauthorized.error_response();
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return refused;
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(state.hub.connection_count()))
}

/// Compares in time independent of where the two differ, so the token cannot be guessed byte
/// by byte from response times. (Only the length may show, which the token's randomness covers.)
fn same_secret(presented: &[u8], secret: &[u8]) -> bool {
    if presented.len() != secret.len() {
        return false;
    }
    let diff = presented
        .iter()
        .zip(secret)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[derive(Serialize)]
struct Health {
    mysql: &'static str,
    redis: &'static str,
    mongodb: &'static str,
}

async fn health(state: web::Data<Chat>) -> HttpResponse {
    let timeout = Duration::from_millis(state.settings.server.health_timeout_ms.get());
    let (mysql, redis, mongodb) = tokio::join!(
        check("mysql", timeout, store::mysql::ping(&state.mysql)),
        check("redis", timeout, store::redis::ping(&state.redis)),
        check("mongodb", timeout, store::mongo::ping(&state.mongo)),
    );
    let body = Health {
        mysql,
        redis,
        mongodb,
    };
    if [mysql, redis, mongodb].iter().all(|s| *s == "ok") {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn check(
    name: &'static str,
    timeout: Duration,
    probe: impl Future<Output = anyhow::Result<()>>,
) -> &'static str {
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(backend = name, error = ?err, "health check failed");
            "down"
        }
        Err(_) => {
            tracing::warn!(backend = name, "health check timed out");
            "down"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
