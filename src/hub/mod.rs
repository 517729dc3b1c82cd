//! Who is connected where. Each process keeps a registry of its own sockets; Redis holds a
//! presence record per connection (refreshed by its process, lapsing by itself when the process
//! dies) and carries events between processes over pub/sub (see [`relay`]).

pub mod registry;
pub mod relay;

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
use crate::store::directory::{Change, Directory};
use crate::store::redis::{Keys, Shared};
pub use registry::{ConnId, Kick, LocalConn, Registry};
pub use relay::{Audience, Delivery, Mark};

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

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
}

/// What a new connection gets from the hub: its id and the receiving ends of its queues.
pub struct Attached {
    pub conn_id: ConnId,
    pub events: mpsc::Receiver<Arc<str>>,
    pub kicks: mpsc::Receiver<Kick>,
}

impl Hub {
    /// Creates the hub and starts its background tasks: the relay listener and the presence
    /// refresher. Waits (up to the Redis timeout) for the relay to subscribe, so no event
    /// published to this process after startup is missed.
    pub async fn start(settings: &Settings, redis: Shared, keys: Keys) -> anyhow::Result<Self> {
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let registry = Arc::new(Registry::default());
        let directory = Directory::new(&settings.cache);
        let hub = Self {
            inner: Arc::new(Inner {
                node_id: node_id.clone(),
                keys: keys.clone(),
                redis,
                registry: registry.clone(),
                directory: directory.clone(),
                closing: AtomicBool::new(false),
                mark_ttl_ms: settings.antispam.retry_memory_secs.saturating_mul(1000),
                presence_ttl_ms: i64::try_from(settings.ws.presence_ttl_secs * 1000)
                    .unwrap_or(i64::MAX),
            }),
        };
        let client = redis::Client::open(settings.redis.url.expose_secret())
            .context("redis.url is not a valid Redis URL")?;
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(relay::listen(
            client,
            vec![keys.node_channel(&node_id), keys.broadcast_channel()],
            Arc::downgrade(&registry),
            directory,
            ready_tx,
        ));
        let wait = Duration::from_millis(settings.redis.timeout_ms);
        if tokio::time::timeout(wait, ready_rx).await.is_err() {
            tracing::error!("relay not subscribed yet (Redis unreachable?); continuing");
        }
        tokio::spawn(refresh_presence(
            Arc::downgrade(&hub.inner),
            Duration::from_secs(settings.ws.heartbeat_secs),
        ));
        tracing::info!(node_id, "hub started");
        Ok(hub)
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn connection_count(&self) -> usize {
        self.inner.registry.connection_count()
    }

    /// Registers a new socket of `user` here and in the presence records.
    pub async fn attach(&self, user: UserId, login_id: &str, queue: usize) -> AppResult<Attached> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(crate::error::AppError::ServerBusy);
        }
        let conn_id: ConnId = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        let (tx, events) = mpsc::channel(queue);
        let (kick, kicks) = mpsc::channel(1);
        self.inner.registry.add(
            user,
            LocalConn {
                conn_id: conn_id.clone(),
                login_id: Arc::from(login_id),
                tx,
                kick,
            },
        );
        if let Err(err) = self.touch(&[(user, conn_id.clone())]).await {
            self.inner.registry.remove(user, &conn_id);
            return Err(err);
        }
        Ok(Attached {
            conn_id,
            events,
            kicks,
        })
    }

    /// Forgets a socket, here at once and in Redis in the background.
    pub fn detach(&self, user: UserId, conn_id: &ConnId) {
        self.inner.registry.remove(user, conn_id);
        let inner = self.inner.clone();
        let conn_id = conn_id.clone();
        tokio::spawn(async move { remove_presence(&inner, user, &conn_id).await });
    }

    /// Publishes events (one Redis round trip for all of them); returns, per delivery, how many
    /// of its primary users had a live connection.
    pub async fn deliver(&self, deliveries: &[Delivery]) -> AppResult<Vec<u32>> {
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

    /// Whether the user has a live connection on any process.
    pub async fn is_online(&self, user: UserId) -> AppResult<bool> {
        let mut conn = self.inner.redis.get().await?;
        let live: u64 = conn
            .zcount(self.inner.keys.presence(user.0), now_ms(), "+inf")
            .await?;
        Ok(live > 0)
    }

    /// For each user, whether they have a live connection (one round trip).
    pub async fn online_many(&self, users: &[UserId]) -> AppResult<Vec<bool>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for user in users {
            pipe.zcount(self.inner.keys.presence(user.0), now, "+inf");
        }
        let mut conn = self.inner.redis.get().await?;
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(counts.into_iter().map(|c| c > 0).collect())
    }

    /// Closes the sockets of these logins on every process.
    pub async fn revoke_logins(&self, login_ids: &[String]) -> AppResult<()> {
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
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// Makes every process forget the cached groups and relations `change` touches. Called
    /// after the change is in MySQL. Should the broadcast fail, other processes notice within
    /// `cache.ttl_secs`.
    pub async fn changed(&self, change: Change) {
        self.inner.directory.forget(&change);
        let published = async {
            let mut conn = self.inner.redis.get().await?;
            let _: () = conn
                .publish(
                    self.inner.keys.broadcast_channel(),
                    relay::invalidate_message(&change),
                )
                .await?;
            Ok::<_, crate::error::AppError>(())
        };
        if let Err(err) = published.await {
            tracing::warn!(error = %err, "cache invalidation not broadcast");
        }
    }

    /// Asks every local socket to close (graceful shutdown); sockets opened later (on a
    /// connection accepted before) are refused.
    pub fn close_all(&self, why: Kick) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.registry.kick_all(why);
    }

    /// Refreshes the presence records of these connections.
    async fn touch(&self, conns: &[(UserId, ConnId)]) -> AppResult<()> {
        touch(&self.inner, conns).await
    }
}

async fn touch(inner: &Inner, conns: &[(UserId, ConnId)]) -> AppResult<()> {
    if conns.is_empty() {
        return Ok(());
    }
    let expires = now_ms() + inner.presence_ttl_ms;
    let mut pipe = redis::pipe();
    let now = now_ms();
    for (user, conn_id) in conns {
        let key = inner.keys.presence(user.0);
        // Records of connections whose process died lapse: prune them here, off the send path.
        pipe.zrembyscore(&key, "-inf", now)
            .ignore()
            .zadd(&key, presence_member(conn_id, &inner.node_id), expires)
            .ignore()
            .pexpire(&key, inner.presence_ttl_ms)
            .ignore();
    }
    let mut conn = inner.redis.get().await?;
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

/// Every heartbeat: extend the presence of every local socket, mark their logins as seen, and
/// close the sockets whose login is gone (revoked while this process missed the broadcast, or
/// expired).
async fn refresh_presence(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        for (user, conn_id) in inner.registry.prune_closed() {
            remove_presence(&inner, user, &conn_id).await;
        }
        let snapshot = inner.registry.snapshot();
        if snapshot.is_empty() {
            continue;
        }
        let conns: Vec<(UserId, ConnId)> =
            snapshot.iter().map(|(u, c, _)| (*u, c.clone())).collect();
        if let Err(err) = touch(&inner, &conns).await {
            tracing::warn!(error = %err, "presence refresh failed");
            continue;
        }
        // A socket that went away while the refresh ran was just written back: take it out
        // again, or its user would look online until the record lapses.
        let still: std::collections::HashSet<ConnId> = inner
            .registry
            .snapshot()
            .into_iter()
            .map(|(_, c, _)| c)
            .collect();
        for (user, conn_id) in conns.iter().filter(|(_, c)| !still.contains(c)) {
            remove_presence(&inner, *user, conn_id).await;
        }
        match missing_logins(&inner, &snapshot).await {
            Ok(gone) if !gone.is_empty() => inner.registry.kick_logins(&gone, Kick::Revoked),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "login check failed"),
        }
    }
}

/// Marks the logins of local sockets as seen (device `last_seen`) and returns those that are
/// gone.
async fn missing_logins(
    inner: &Inner,
    snapshot: &[(UserId, ConnId, Arc<str>)],
) -> AppResult<Vec<String>> {
    let mut logins: Vec<String> = snapshot.iter().map(|(_, _, l)| l.to_string()).collect();
    logins.sort_unstable();
    logins.dedup();
    let alive =
        crate::store::redis::logins::touch(inner.redis.pool(), &inner.keys, &logins).await?;
    Ok(logins
        .into_iter()
        .zip(alive)
        .filter(|(_, alive)| !alive)
        .map(|(l, _)| l)
        .collect())
}

async fn remove_presence(inner: &Inner, user: UserId, conn_id: &str) {
    let result: AppResult<()> = async {
        let mut conn = inner.redis.get().await?;
        let _: () = conn
            .zrem(
                inner.keys.presence(user.0),
                presence_member(conn_id, &inner.node_id),
            )
            .await?;
        Ok(())
    }
    .await;
    if let Err(err) = result {
        // The record lapses by itself after presence_ttl_secs.
        tracing::warn!(error = %err, "could not remove a presence record");
    }
}

fn presence_member(conn_id: &str, node_id: &str) -> String {
    format!("{conn_id}@{node_id}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
