//! `Application::build` connects the backends, applies migrations, binds the listener itself
//! (so tests can ask for port 0 and read the real port back) and assembles the actix server.

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::{ConfigError, Settings};
use crate::http;
use crate::http::ip_limit::IpLimiter;
use crate::session;
use crate::state::AppState;
use crate::store;
use crate::store::redis::Keys;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mysql = store::mysql::connect(&settings.mysql).await?;
        store::mysql::migrate(&mysql).await?;
        // MySQL must answer (migrations run now); Redis and MongoDB pools connect lazily, so a
        // backend that is down at boot is reported here and by /health, and used once it is up.
        let redis = store::redis::connect(&settings.redis)?;
        if let Err(err) = store::redis::ping(&redis).await {
            tracing::error!(error = ?err, "Redis (redis.url) is not reachable yet");
        }
        let mongo = store::mongo::connect(&settings.mongodb).await?;
        if let Err(err) = store::mongo::ping(&mongo).await {
            tracing::error!(error = ?err, "MongoDB (mongodb.uri) is not reachable yet");
        }

        let keys = Keys::new(settings.redis.key_prefix.clone());
        let session_store = session::middleware::store(redis.clone(), &keys).await?;
        let dummy_password_hash =
            session::password::hash(dummy_password(), settings.auth.bcrypt_cost)
                .await
                .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?;
        let state = AppState {
            login_limiter: IpLimiter::per_minute(non_zero(
                settings.auth.login_per_ip_per_minute,
                "auth.login_per_ip_per_minute",
            )?),
            register_limiter: IpLimiter::per_minute(non_zero(
                settings.auth.register_per_ip_per_minute,
                "auth.register_per_ip_per_minute",
            )?),
            settings: Arc::new(settings),
            mysql,
            redis,
            mongo,
            keys,
            dummy_password_hash: dummy_password_hash.into(),
        };

        let addr = state.settings.listen_addr()?;
        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot bind server.addr {addr}"))?;
        let port = listener.local_addr()?.port();
        let server = run(listener, state, session_store)?;
        tracing::info!(%addr, port, "chat-server listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, graceful within
    /// `server.shutdown_timeout_secs`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// A password nobody knows, short enough for bcrypt's 72-byte limit.
fn dummy_password() -> String {
    use secrecy::ExposeSecret;
    crate::config::random_secret()
        .expose_secret()
        .chars()
        .take(32)
        .collect()
}

fn non_zero(value: u32, key: &'static str) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(value).ok_or(ConfigError::Invalid {
        key,
        message: "must be positive".into(),
    })
}

fn run(
    listener: TcpListener,
    state: AppState,
    session_store: actix_session::storage::RedisSessionStore,
) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    let workers = settings.server.workers;
    let shutdown_timeout = settings.server.shutdown_timeout_secs;
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(http::json_error_body))
            .wrap(session::middleware::build(&settings, session_store.clone()))
            .wrap(TracingLogger::default())
            .app_data(data.clone())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .shutdown_timeout(shutdown_timeout);
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
