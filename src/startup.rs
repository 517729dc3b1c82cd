//! `Application::build` connects the backends, applies migrations, binds the listener itself
//! (so tests can ask for port 0 and read the real port back) and assembles the actix server.

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::antispam::Antispam;
use crate::chat::Chat;
use crate::chat::writer::MessageWriter;
use crate::config::{ConfigError, Settings};
use crate::http;
use crate::hub::{Hub, Kick};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::peer::limiter::IpLimiter;
use crate::peer::slots::Slots;
use crate::session;
use crate::store;
use crate::store::redis::{Keys, Shared};

/// A built server: its listener bound, its backends connected, not serving yet.
pub struct Application {
    port: u16,
    server: Server,
    hub: Hub,
}

impl Application {
    /// Connects the backends, applies the migrations, starts the hub and binds `server.addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mysql = store::mysql::connect(&settings.mysql).await?;
        store::mysql::migrate(&mysql).await?;
        // MySQL must answer (migrations run now); Redis and MongoDB pools connect lazily, so a
        // backend that is down at boot is reported here and by /health, and used once it is up.
        let redis = Shared::connect(&settings.redis)?;
        if let Err(err) = store::redis::ping(&redis).await {
            tracing::error!(error = ?err, mode = ?settings.redis.mode, "Redis is not reachable yet");
        }
        let mongo = store::mongo::connect(&settings.mongodb).await?;
        if let Err(err) = store::mongo::ping(&mongo).await {
            tracing::error!(error = ?err, "MongoDB (mongodb.uri) is not reachable yet");
        }

        let shards = if redis.is_cluster() {
            settings.redis.delivery_shards.get()
        } else {
            1
        };
        let keys = Keys::new(settings.redis.key_prefix.clone(), shards);
        if let Err(err) = store::mongo::ensure_indexes(&mongo).await {
            tracing::error!(error = %err, "creating MongoDB indexes failed; retrying in the background");
            spawn_index_setup(mongo.clone());
        }
        let hub = Hub::start(&settings, redis.clone(), keys.clone()).await?;
        let writer = MessageWriter::start(
            redis.clone(),
            mongo.clone(),
            keys.clone(),
            hub.clone(),
            &settings.messages,
        );
        let session_store =
            store::redis::session_store::RedisSessions::new(redis.clone(), keys.clone());
        let dummy_password_hash =
            crate::chat::password::hash(dummy_password(), settings.auth.bcrypt_cost)
                .await
                .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?;
        let app_hub = hub.clone();
        let mailer = Mailer::new(&settings.mail)?;
        let metrics = Arc::new(Metrics::default());
        let antispam = Antispam::new(
            settings.antispam.clone(),
            redis.clone(),
            keys.clone(),
            metrics.clone(),
        );
        let state = Chat {
            login_limiter: IpLimiter::per_minute(non_zero(
                settings.auth.login_per_ip_per_minute.get(),
                "auth.login_per_ip_per_minute",
            )?),
            register_limiter: IpLimiter::per_minute(non_zero(
                settings.auth.register_per_ip_per_minute.get(),
                "auth.register_per_ip_per_minute",
            )?),
            ws_slots: Slots::new(
                settings.ws.max_connections_per_ip.get(),
                settings.ws.max_connections,
            ),
            lobby_readers: Arc::default(),
            group_locks: Arc::default(),
            read_events: Arc::default(),
            files: store::files::FileStore::new(&settings.files, &mongo),
            image_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.files.image_workers.get(),
            )),
            uploads_in_flight: Arc::default(),
            settings: Arc::new(settings),
            mysql,
            redis,
            mongo,
            keys,
            hub,
            writer,
            antispam,
            metrics,
            mailer,
            dummy_password_hash: dummy_password_hash.into(),
        };

        let addr = state.settings.server.addr;
        warn_if_exposed(&state.settings, addr);
        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot bind server.addr {addr}"))?;
        let port = listener.local_addr()?.port();
        crate::chat::files::sweep::start(state.clone());
        let server = run(listener, state, session_store)?;
        tracing::info!(%addr, port, "chat-server listening");
        Ok(Self {
            port,
            server,
            hub: app_hub,
        })
    }

    /// The port bound (the one picked for `server.addr` port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully: no new connections, sockets are
    /// told to reconnect elsewhere (close 1012), in-flight requests get
    /// `server.shutdown_timeout_secs` to finish.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let hub = self.hub.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            // Stop accepting first (the command goes out now; awaiting waits for the end), then
            // tell the sockets to reconnect elsewhere.
            let stopped = handle.stop(true);
            hub.close_all(Kick::Restart);
            stopped.await;
            tracing::info!("stopped");
        });
        self.server.await
    }
}

/// Creates the MongoDB indexes, retrying in the background while MongoDB is unreachable.
fn spawn_index_setup(mongo: mongodb::Database) {
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            match store::mongo::ensure_indexes(&mongo).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::error!(error = %err, retry_in = ?delay, "creating MongoDB indexes failed")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(30));
        }
    });
}

/// Settings that are fine on a developer's machine but not on a reachable address.
fn warn_if_exposed(settings: &Settings, addr: std::net::SocketAddr) {
    use secrecy::ExposeSecret;
    if addr.ip().is_loopback() {
        return;
    }
    if !settings.server.secure_cookies {
        tracing::warn!(
            %addr,
            "listening beyond loopback with server.secure_cookies = false: the session cookie \
             is also sent over plain HTTP"
        );
    }
    if settings.metrics.token.expose_secret().is_empty() {
        tracing::warn!(
            %addr,
            "listening beyond loopback without metrics.token: anyone can read /metrics"
        );
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

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn non_zero(value: u32, key: &'static str) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(value).ok_or(ConfigError::Invalid {
        key,
        message: "must be positive".into(),
    })
}

fn run(
    listener: TcpListener,
    state: Chat,
    session_store: store::redis::session_store::RedisSessions,
) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    let workers = settings.server.workers;
    let shutdown_timeout = settings.server.shutdown_timeout_secs;
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(http::json_error_body))
            .wrap(session::middleware::build(&settings, session_store.clone()))
            .wrap(from_fn(session::middleware::store_unavailable))
            // Before the session is loaded: a cross-site request costs no Redis round trip.
            .wrap(from_fn(http::origin::refuse_cross_site))
            .wrap(TracingLogger::default())
            .app_data(data.clone())
            .configure(http::configure)
            .configure(crate::ws::configure)
            .default_service(web::to(http::not_found))
    })
    .shutdown_timeout(shutdown_timeout)
    // Signals are handled by `run_until_signalled`, which closes sockets first.
    .disable_signals();
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
