//! Who is connected where. Each process keeps a [`registry`] of its own sockets; Redis holds a
//! [`presence`] record per connection (refreshed by its process, lapsing by itself when the
//! process dies) and carries events between processes over pub/sub ([`relay`]); changes to
//! what the send path caches are broadcast and confirmed ([`invalidation`]).

mod invalidation;
pub(crate) mod outbound;
mod presence;
pub(crate) mod registry;
pub(crate) mod relay;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot};

use crate::config::Settings;
use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::directory::Directory;
use crate::store::redis::{Keys, Shared};
pub(crate) use registry::{ConnId, Kick, LocalConn, Registry};
pub(crate) use relay::{Audience, Delivery, Mark};

#[derive(Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

/// What the hub's parts (registry, presence, relay, invalidation) share.
struct Inner {
    node_id: String,
    keys: Keys,
    redis: Shared,
    registry: Arc<Registry>,
    directory: Arc<Directory>,
    presence_ttl_ms: i64,
    /// How long a publication marker lives: as long as a send's retry is recognised.
    mark_ttl_ms: u64,
    /// Set once the process is shutting down.
    closing: AtomicBool,
    /// How long a change waits for every process to confirm its cache invalidation.
    invalidation_wait: Duration,
}

/// What a new connection gets from the hub: its id and where it is told to go. Events go
/// straight into the connection's outbound queue.
pub(crate) struct Attached {
    pub conn_id: ConnId,
    pub kicks: mpsc::Receiver<Kick>,
}

impl Hub {
    /// Creates the hub and starts its background tasks: the relay listener and the presence
    /// refresher. Waits (up to the Redis timeout) for the relay to subscribe, so no event
    /// published to this process after startup is missed.
    pub(crate) async fn start(
        settings: &Settings,
        redis: Shared,
        keys: Keys,
    ) -> anyhow::Result<Self> {
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let registry = Arc::new(Registry::default());
        let directory = Directory::new(&settings.cache);
        let hub = Self {
            inner: Arc::new(Inner {
                node_id: node_id.clone(),
                keys: keys.clone(),
                redis: redis.clone(),
                registry: registry.clone(),
                directory: directory.clone(),
                closing: AtomicBool::new(false),
                invalidation_wait: Duration::from_millis(settings.cache.invalidation_wait_ms.get()),
                mark_ttl_ms: settings
                    .antispam
                    .retry_memory_secs
                    .get()
                    .saturating_mul(1000),
                presence_ttl_ms: i64::try_from(settings.ws.presence_ttl_secs * 1000)
                    .unwrap_or(i64::MAX),
            }),
        };
        let client = redis::Client::open(settings.redis.url.expose_secret())
            .context("redis.url is not a valid Redis URL")?;
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(relay::listen(
            client,
            redis,
            settings.cache.invalidation_wait_ms.get().saturating_mul(2),
            vec![keys.node_channel(&node_id), keys.broadcast_channel()],
            Arc::downgrade(&registry),
            directory,
            ready_tx,
        ));
        let wait = Duration::from_millis(settings.redis.timeout_ms);
        if tokio::time::timeout(wait, ready_rx).await.is_err() {
            tracing::error!("relay not subscribed yet (Redis unreachable?); continuing");
        }
        tokio::spawn(presence::refresh_presence(
            Arc::downgrade(&hub.inner),
            Duration::from_secs(settings.ws.heartbeat_secs.get()),
        ));
        tracing::info!(node_id, "hub started");
        Ok(hub)
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.inner.registry.connection_count()
    }

    /// Registers a new socket of `user` (sending through `outbound`) here and in the presence
    /// records.
    pub(crate) async fn attach(
        &self,
        user: UserId,
        login_id: &str,
        outbound: Arc<outbound::Outbound>,
    ) -> AppResult<Attached> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(crate::error::AppError::ServerBusy);
        }
        let conn_id: ConnId = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        let (kick, kicks) = mpsc::channel(1);
        self.inner.registry.add(
            user,
            LocalConn {
                conn_id: conn_id.clone(),
                login_id: Arc::from(login_id),
                outbound,
                kick,
            },
        );
        if let Err(err) = self.touch(&[(user, conn_id.clone())]).await {
            self.inner.registry.remove(user, &conn_id);
            return Err(err);
        }
        Ok(Attached { conn_id, kicks })
    }

    /// Forgets a socket, here at once and in Redis in the background.
    pub(crate) fn detach(&self, user: UserId, conn_id: &ConnId) {
        self.inner.registry.remove(user, conn_id);
        let inner = self.inner.clone();
        let conn_id = conn_id.clone();
        tokio::spawn(async move { presence::remove_presence(&inner, user, &conn_id).await });
    }

    /// Publishes events (one Redis round trip for all of them); returns, per delivery, how many
    /// of its primary users had a live connection.
    pub(crate) async fn deliver(&self, deliveries: &[Delivery]) -> AppResult<Vec<u32>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let mut invocation = relay::DELIVER.prepare_invoke();
        invocation
            .arg(now_ms())
            .arg(inner.keys.node_channel_prefix())
            .arg(inner.keys.broadcast_channel())
            .arg(deliveries.len())
            .arg(inner.mark_ttl_ms);
        for delivery in deliveries {
            invocation
                .arg(&*delivery.event)
                .arg(delivery.skip.as_deref().unwrap_or(""));
            let (n, primary) = match &delivery.audience {
                Audience::Everyone => (-1, 0),
                Audience::Users { users, primary } => (users.len() as i64, *primary),
            };
            invocation.arg(n).arg(primary);
            match &delivery.mark {
                None => {
                    invocation.arg(0);
                }
                Some(mark) => {
                    invocation
                        .arg(if mark.replay { 2 } else { 1 })
                        .key(&mark.key);
                }
            }
            if let Audience::Users { users, .. } = &delivery.audience {
                for user in users {
                    invocation.arg(user.0).key(inner.keys.presence(user.0));
                }
            }
        }
        let mut conn = inner.redis.get().await?;
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Closes the sockets of these logins on every process.
    pub(crate) async fn revoke_logins(&self, login_ids: &[String]) -> AppResult<()> {
        if login_ids.is_empty() {
            return Ok(());
        }
        self.inner.registry.kick_logins(login_ids, Kick::Revoked);
        let mut conn = self.inner.redis.get().await?;
        let _: () = conn
            .publish(
                self.inner.keys.broadcast_channel(),
                relay::revoke_message(login_ids),
            )
            .await?;
        Ok(())
    }

    /// The cache of groups and relations the send path reads.
    pub(crate) fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// Asks every local socket to close (graceful shutdown); sockets opened later (on a
    /// connection accepted before) are refused.
    pub(crate) fn close_all(&self, why: Kick) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.registry.kick_all(why);
    }
}

/// Milliseconds since the epoch, the unit of presence records and markers.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
