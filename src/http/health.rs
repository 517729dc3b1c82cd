//! Liveness (`/ping`), readiness (`/health`: every backend answers within the timeout) and
//! `/metrics`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;
use crate::store;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ping").route(web::get().to(ping)))
        .service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus text format: messages sent, refusals per anti-spam rule, live connections.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(state.hub.connection_count()))
}

#[derive(Serialize)]
struct Health {
    mysql: &'static str,
    redis: &'static str,
    mongodb: &'static str,
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(state.settings.server.health_timeout_ms);
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
