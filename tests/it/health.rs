use reqwest::StatusCode;

use crate::helpers::{json_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn ping_answers() {
    let app = spawn_app().await;
    let resp = app.get(&app.client, "/ping").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_reports_every_backend_ok() {
    let app = spawn_app().await;
    let resp = app.get(&app.client, "/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json_of(resp).await,
        serde_json::json!({"mysql": "ok", "redis": "ok", "mongodb": "ok"})
    );
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn health_marks_an_unreachable_mongodb_down() {
    let port = closed_port();
    let app = spawn_app_with(|s| {
        s.mongodb.uri = format!("mongodb://127.0.0.1:{port}").into();
        s.mongodb.server_selection_timeout_ms = 300;
        s.server.health_timeout_ms = nz!(1000);
    })
    .await;
    let resp = app.get(&app.client, "/health").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(resp).await,
        serde_json::json!({"mysql": "ok", "redis": "ok", "mongodb": "down"})
    );
}

#[tokio::test]
async fn health_marks_an_unreachable_redis_down() {
    let port = closed_port();
    let app = spawn_app_with(|s| {
        // Either mode: the one server, or the cluster's only seed node.
        s.redis.url = format!("redis://127.0.0.1:{port}").into();
        s.redis.urls = vec![format!("redis://127.0.0.1:{port}").into()];
        s.redis.timeout_ms = 300;
        s.server.health_timeout_ms = nz!(1000);
    })
    .await;
    let resp = app.get(&app.client, "/health").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(resp).await,
        serde_json::json!({"mysql": "ok", "redis": "down", "mongodb": "ok"})
    );
}
