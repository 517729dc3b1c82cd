//! Who is connected where. Each process keeps a [`registry`] of its own sockets; Redis holds a
//! [`presence`] record per connection (refreshed by its process, lapsing by itself when the
//! process dies) and carries events between processes over pub/sub ([`relay`]); changes to
//! what the send path caches are broadcast and confirmed ([`invalidation`]).

mod invalidation;
pub(crate) mod outbound;
mod presence;
pub(crate) mod registry;
pub(crate) mod relay;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::Settings;
use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::directory::Directory;
use crate::store::redis::{Keys, Shared};
pub(crate) use registry::{ConnId, Kick, LocalConn, Registry};
pub(crate) use relay::{Audience, Delivery};

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
    /// `messages.order_hold_ms`.
    order_hold_ms: u64,
    /// Invalidations broadcast from here, waiting to be confirmed.
    confirmations: Arc<relay::Confirmations>,
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
        let confirmations = Arc::new(relay::Confirmations::default());
        let hub = Self {
            inner: Arc::new(Inner {
                node_id: node_id.clone(),
                keys: keys.clone(),
                redis: redis.clone(),
                registry: registry.clone(),
                directory: directory.clone(),
                closing: AtomicBool::new(false),
                invalidation_wait: Duration::from_millis(settings.cache.invalidation_wait_ms.get()),
                order_hold_ms: settings.messages.order_hold_ms.get(),
                confirmations: confirmations.clone(),
                presence_ttl_ms: i64::try_from(settings.ws.presence_ttl_secs * 1000)
                    .unwrap_or(i64::MAX),
            }),
        };
        let mut channels: Vec<String> = (0..keys.shards())
            .flat_map(|shard| {
                [
                    keys.node_channel(shard, &node_id),
                    keys.everyone_channel(shard),
                ]
            })
            .collect();
        channels.push(keys.broadcast_channel());
        let confirm_keys = keys.clone();
        let receiver = relay::Receiver {
            registry: Arc::downgrade(&registry),
            directory,
            confirmations,
            redis: redis.clone(),
            confirm_channel: Box::new(move |node| confirm_keys.node_channel(0, node)),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(relay::listen(
            settings.redis.clone(),
            redis.is_cluster(),
            channels,
            receiver,
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

    /// Publishes events: one round trip for the recipients' presence, then one delivery script
    /// per delivery shard (all at once). Returns, per delivery, how many of its primary users
    /// had a live connection.
    pub(crate) async fn deliver(&self, deliveries: &[Delivery]) -> AppResult<Vec<u32>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let nodes = self.nodes_of(deliveries).await?;
        let mut online = Vec::with_capacity(deliveries.len());
        // Per shard, the script's items in order: (conversation, seq, publications).
        let mut shards: Vec<(u16, Vec<Item>)> = Vec::new();
        for delivery in deliveries {
            let shard = match (&delivery.conversation, &delivery.audience) {
                (Some(c), _) => inner.keys.shard_of(c),
                (None, Audience::Users { users, .. }) => users
                    .first()
                    .map_or(0, |u| (u.0 % u64::from(inner.keys.shards())) as u16),
                (None, Audience::Everyone) => 0,
            };
            let skip = delivery.skip.as_deref().unwrap_or("");
            let mut publications = Vec::new();
            match &delivery.audience {
                Audience::Everyone => {
                    online.push(0);
                    publications.push((
                        inner.keys.everyone_channel(shard),
                        relay::event_message(None, skip, &delivery.event),
                    ));
                }
                Audience::Users { users, primary } => {
                    let mut per_node: Vec<(&str, Vec<u64>)> = Vec::new();
                    let mut live = 0;
                    for (i, user) in users.iter().enumerate() {
                        let held = nodes.get(&user.0).map_or(&[][..], Vec::as_slice);
                        if i < *primary && !held.is_empty() {
                            live += 1;
                        }
                        for node in held {
                            match per_node.iter_mut().find(|(n, _)| n == node) {
                                Some((_, list)) => {
                                    if list.last() != Some(&user.0) {
                                        list.push(user.0);
                                    }
                                }
                                None => per_node.push((node, vec![user.0])),
                            }
                        }
                    }
                    online.push(live);
                    for (node, list) in per_node {
                        publications.push((
                            inner.keys.node_channel(shard, node),
                            relay::event_message(Some(&list), skip, &delivery.event),
                        ));
                    }
                }
            }
            let at = match shards.iter().position(|(s, _)| *s == shard) {
                Some(at) => at,
                None => {
                    shards.push((shard, Vec::new()));
                    shards.len() - 1
                }
            };
            let items = &mut shards[at].1;
            let seq = delivery.seq.unwrap_or(-1).max(-1);
            // The pushes of one message (its own and a mention's) are one item: one seq.
            match items.last_mut() {
                Some(last)
                    if seq > 0
                        && last.seq == seq
                        && last.conversation.as_deref() == delivery.conversation.as_deref() =>
                {
                    last.publications.extend(publications);
                }
                _ => items.push(Item {
                    conversation: delivery.conversation.clone(),
                    seq,
                    publications,
                }),
            }
        }
        let runs = shards
            .into_iter()
            .map(|(shard, items)| self.run_deliver(shard, items));
        futures_util::future::try_join_all(runs).await?;
        Ok(online)
    }

    /// [`Hub::deliver`] for stored messages: should Redis fail (a failover, a restart), the
    /// publication is tried again in the background for up to `messages.order_hold_ms`, so the
    /// recipients still get them live and later messages of their conversations are not held
    /// for them. Nothing goes out twice: the delivery script drops a seq already published.
    pub(crate) async fn deliver_messages(&self, deliveries: Vec<Delivery>) -> AppResult<Vec<u32>> {
        match self.deliver(&deliveries).await {
            Ok(online) => Ok(online),
            Err(err) => {
                let hub = self.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let budget = Duration::from_millis(hub.inner.order_hold_ms);
                    let mut pause = Duration::from_millis(100);
                    while started.elapsed() + pause < budget {
                        tokio::time::sleep(pause).await;
                        match hub.deliver(&deliveries).await {
                            Ok(_) => {
                                tracing::info!("stored messages published on a later try");
                                return;
                            }
                            Err(err) => tracing::debug!(error = %err, "publishing again failed"),
                        }
                        pause *= 2;
                    }
                    tracing::warn!("stored messages not published live; recipients resume");
                });
                Err(err)
            }
        }
    }

    /// The processes holding a live connection of each user the deliveries name.
    async fn nodes_of(&self, deliveries: &[Delivery]) -> AppResult<HashMap<u64, Vec<String>>> {
        let mut users: Vec<u64> = deliveries
            .iter()
            .filter_map(|d| match &d.audience {
                Audience::Users { users, .. } => Some(users.iter().map(|u| u.0)),
                Audience::Everyone => None,
            })
            .flatten()
            .collect();
        users.sort_unstable();
        users.dedup();
        let now = now_ms();
        let cmds = users
            .iter()
            .map(|user| {
                let mut cmd = redis::cmd("ZRANGE");
                // Lapsed records are skipped here and pruned by the presence refresh.
                cmd.arg(self.inner.keys.presence(*user))
                    .arg(now)
                    .arg("+inf")
                    .arg("BYSCORE");
                cmd
            })
            .collect();
        let replies = self.inner.redis.run(cmds).await?;
        let mut nodes = HashMap::with_capacity(users.len());
        for (user, reply) in users.into_iter().zip(replies) {
            let members: Vec<String> = redis::from_redis_value(&reply)?;
            let mut held: Vec<String> = members
                .into_iter()
                .filter_map(|m| m.split_once('@').map(|(_, node)| node.to_owned()))
                .collect();
            held.sort_unstable();
            held.dedup();
            if !held.is_empty() {
                nodes.insert(user, held);
            }
        }
        Ok(nodes)
    }

    /// One delivery script on one shard; messages held for a lower seq get a later look.
    async fn run_deliver(&self, shard: u16, items: Vec<Item>) -> AppResult<()> {
        let fates = self.invoke_deliver(shard, &items).await?;
        let mut waiting: Vec<&str> = Vec::new();
        for (item, fate) in items.iter().zip(fates) {
            let Some(conversation) = item.conversation.as_deref().filter(|_| item.seq > 0) else {
                continue;
            };
            tracing::trace!(
                conversation,
                seq = item.seq,
                fate,
                channels = ?item.publications.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                "delivery"
            );
            if fate == 1 && !waiting.contains(&conversation) {
                waiting.push(conversation);
            } else if fate == 2 {
                tracing::debug!(conversation, seq = item.seq, "not published again");
            }
        }
        for conversation in waiting {
            self.look_again_later(conversation.to_owned());
        }
        Ok(())
    }

    async fn invoke_deliver(&self, shard: u16, items: &[Item]) -> AppResult<Vec<i64>> {
        let inner = &self.inner;
        let mut invocation = relay::DELIVER.prepare_invoke();
        invocation
            .arg(now_ms())
            .arg(inner.order_hold_ms)
            .arg(inner.redis.publish_command())
            .arg(items.len());
        for item in items {
            invocation
                .arg(item.conversation.as_deref().unwrap_or(""))
                .arg(item.seq)
                .arg(item.publications.len());
            for (channel, payload) in &item.publications {
                invocation.arg(channel).arg(payload);
            }
            if let (Some(conversation), true) = (&item.conversation, item.seq >= 0) {
                invocation
                    .key(inner.keys.published(conversation))
                    .key(inner.keys.held(conversation));
            }
        }
        // In cluster mode a script runs on the node of its first key: give one of the shard's
        // slot when no item is ordered (the script does not touch it).
        invocation.key(inner.keys.shard_route(shard));
        let mut conn = inner.redis.get().await?;
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Held messages go out with their predecessor; should it never come, this gives it up
    /// once the hold is over (and looks again, as long as something is held).
    fn look_again_later(&self, conversation: String) {
        let hub = self.clone();
        tokio::spawn(async move {
            let pause = Duration::from_millis(hub.inner.order_hold_ms + 10);
            let shard = hub.inner.keys.shard_of(&conversation);
            let look = [Item {
                conversation: Some(conversation.clone()),
                seq: 0,
                publications: Vec::new(),
            }];
            for _ in 0..100 {
                tokio::time::sleep(pause).await;
                match hub.invoke_deliver(shard, &look).await {
                    Ok(fates) if fates.first() == Some(&1) => {}
                    Ok(_) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, conversation, "held messages not looked at");
                    }
                }
            }
        });
    }

    /// Closes the sockets of these logins on every process.
    pub(crate) async fn revoke_logins(&self, login_ids: &[String]) -> AppResult<()> {
        if login_ids.is_empty() {
            return Ok(());
        }
        self.inner.registry.kick_logins(login_ids, Kick::Revoked);
        let redis = &self.inner.redis;
        let mut conn = redis.get().await?;
        let _: i64 = redis::cmd(redis.publish_command())
            .arg(self.inner.keys.broadcast_channel())
            .arg(relay::revoke_message(login_ids))
            .query_async(&mut conn)
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

/// One message (or event) of a delivery script.
struct Item {
    conversation: Option<String>,
    seq: i64,
    publications: Vec<(String, String)>,
}

/// Milliseconds since the epoch, the unit of presence records and markers.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
