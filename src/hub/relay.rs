//! Delivery between processes over Redis pub/sub.
//!
//! Conversations are spread over delivery shards (`redis.delivery_shards` in cluster mode, one
//! in standalone mode). Each process listens on two channels per shard, its own
//! (`{cs:<n>}node:<id>`) and everyone's (`{cs:<n>}all`, the lobby), plus the broadcast channel
//! (revocations, cache invalidations). A send looks up its recipients' presence (which
//! processes hold a live connection of each), then one [`DELIVER`] script per shard publishes
//! each event once per such process. In cluster mode the channels are sharded
//! (`SSUBSCRIBE`/`SPUBLISH`): a shard's channels and its conversations' keys share one slot, so
//! the script runs and publishes on the one node that owns it, and no message is broadcast to
//! every node.
//!
//! **Order.** The script also keeps, per conversation, the highest seq published (the
//! watermark, beside the seq counter): a message whose predecessor is not published yet is held
//! in Redis and goes out, in seq order, with the script run that publishes the predecessor.
//! Scripts are atomic and a conversation's channels are on one node, so every connection on
//! every process gets a conversation's messages in strictly increasing seq order. A seq drawn
//! but never stored is given up by its writer; one whose process died is given up after
//! `messages.order_hold_ms` (by the process that holds the next message), and the connections
//! are told with `event: gap`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::config::RedisSettings;
use crate::domain::UserId;
use crate::hub::registry::{ConnId, Kick, Registry};
use crate::store::directory::{Change, Directory};
use crate::store::redis::Shared;

/// Who an event is for.
#[derive(Debug, Clone)]
pub(crate) enum Audience {
    /// These users' live connections; the first `primary` of them are the ones whose
    /// online state the caller wants to know.
    Users { users: Vec<UserId>, primary: usize },
    /// Every live connection of every process (the lobby).
    Everyone,
}

#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The event JSON, as it goes out on the socket (empty for a seq given up).
    pub event: Arc<str>,
    pub audience: Audience,
    /// The connection the event came from, which does not get it back.
    pub skip: Option<ConnId>,
    /// The conversation the event is about: it travels on the conversation's delivery shard.
    pub conversation: Option<String>,
    /// For a message: its seq. Messages of a conversation are published in seq order; a
    /// message already published (a retried send) is not published again.
    pub seq: Option<i64>,
}

impl Delivery {
    /// A seq drawn for a message that was not stored: later ones need not wait for it.
    pub(crate) fn given_up(conversation: String, seq: i64) -> Self {
        Self {
            event: Arc::from(""),
            audience: Audience::Users {
                users: Vec::new(),
                primary: 0,
            },
            skip: None,
            conversation: Some(conversation),
            seq: Some(seq),
        }
    }
}

/// ARGV: 1 now ms, 2 hold ms, 3 publish command, 4 item count; per item: conversation, seq
/// (-1: not ordered, 0: only look at what the conversation holds), n, then n pairs (channel,
/// payload). KEYS per ordered item (seq >= 0): the conversation's watermark and held hash.
/// Returns per item 0 published, 1 held, 2 late; for a seq 0 item, 1 while messages are held.
pub(crate) static DELIVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local now, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
        local publish_cmd = ARGV[3]
        local count = tonumber(ARGV[4])
        local function publish(list, first, n, gap)
            for i = 0, n - 1 do
                local payload = list[first + 2 * i + 1]
                if gap then
                    payload = gap .. payload .. '}'
                end
                redis.call(publish_cmd, list[first + 2 * i], payload)
            end
        end
        -- Publishes what is held next in line; a gap notice not told yet (its message was a
        -- seq given up, with nobody to tell) goes with the first message that has recipients.
        local function drain(held, w, gap)
            while true do
                local raw = redis.call('HGET', held, tostring(w + 1))
                if not raw then
                    return w
                end
                local entry = cjson.decode(raw)
                publish(entry.p, 1, #entry.p / 2, gap)
                if #entry.p > 0 then
                    gap = nil
                end
                redis.call('HDEL', held, tostring(w + 1))
                w = w + 1
            end
        end
        -- Gives up on missing seqs whose successor waited longer than `hold`.
        local function expire(conversation, watermark, held, w)
            while redis.call('HLEN', held) > 0 do
                local lowest, entry = nil, nil
                for _, field in ipairs(redis.call('HKEYS', held)) do
                    local seq = tonumber(field)
                    if lowest == nil or seq < lowest then
                        lowest = seq
                    end
                end
                if lowest <= w then
                    redis.call('HDEL', held, tostring(lowest))
                else
                    entry = cjson.decode(redis.call('HGET', held, tostring(lowest)))
                    if now - entry.t < hold then
                        return true
                    end
                    local gap = '{"gap":{"conversation":"' .. conversation .. '","from":' ..
                        (w + 1) .. ',"to":' .. (lowest - 1) .. '},"then":'
                    publish(entry.p, 1, #entry.p / 2, gap)
                    redis.call('HDEL', held, tostring(lowest))
                    w = drain(held, lowest, #entry.p == 0 and gap or nil)
                    redis.call('SET', watermark, w)
                end
            end
            return false
        end
        local a, k = 5, 1
        local out = {}
        local touched = {}
        for d = 1, count do
            local conversation, seq, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
            local first = a + 3
            a = first + 2 * n
            if seq < 0 then
                publish(ARGV, first, n, nil)
                out[d] = 0
            else
                local watermark, held = KEYS[k], KEYS[k + 1]
                k = k + 2
                local w = tonumber(redis.call('GET', watermark) or '-1')
                if seq == 0 then
                    out[d] = 0
                elseif w < 0 or seq == w + 1 then
                    -- No watermark: Redis lost it with the counter; take this one as next.
                    publish(ARGV, first, n, nil)
                    redis.call('SET', watermark, drain(held, seq, nil))
                    out[d] = 0
                elseif seq <= w then
                    out[d] = 2
                else
                    local list = {}
                    for i = 0, 2 * n - 1 do
                        list[i + 1] = ARGV[first + i]
                    end
                    redis.call('HSET', held, tostring(seq), cjson.encode({t = now, p = list}))
                    out[d] = 1
                end
                table.insert(touched, {conversation, watermark, held, d, seq == 0})
            end
        end
        for _, t in ipairs(touched) do
            local w = tonumber(redis.call('GET', t[2]) or '-1')
            local waiting = w >= 0 and expire(t[1], t[2], t[3], w)
            if t[5] then
                out[t[4]] = waiting and 1 or 0
            end
        end
        return out
        "#,
    )
});

#[derive(Deserialize)]
#[serde(untagged)]
enum Users {
    List(Vec<u64>),
    /// `"*"`: everyone.
    All(String),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    users: Option<Users>,
    #[serde(default)]
    skip: Option<String>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    revoke: Option<Vec<String>>,
    #[serde(default)]
    invalidate: Option<Change>,
    /// The invalidation's id, confirmed to the process `from` that waits for it.
    #[serde(default)]
    ack: Option<String>,
    #[serde(default)]
    from: Option<String>,
    /// A confirmation of an invalidation this process broadcast.
    #[serde(default)]
    confirm: Option<String>,
    /// Seqs of a conversation given up before the message in `then`.
    #[serde(borrow, default)]
    gap: Option<&'a RawValue>,
    #[serde(borrow, default)]
    then: Option<&'a RawValue>,
}

/// The envelope of an event for `users` (or everyone), as the delivery script publishes it.
pub(crate) fn event_message(users: Option<&[u64]>, skip: &str, event: &str) -> String {
    let users = match users {
        Some(list) => serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned()),
        None => "\"*\"".to_owned(),
    };
    let skip = serde_json::to_string(skip).unwrap_or_else(|_| "\"\"".to_owned());
    format!(r#"{{"users":{users},"skip":{skip},"event":{event}}}"#)
}

/// The broadcast message that closes the sockets of revoked logins on every process.
pub(crate) fn revoke_message(login_ids: &[String]) -> String {
    serde_json::json!({ "revoke": login_ids }).to_string()
}

/// The broadcast message that makes every process forget cached groups and relations, and
/// confirm it to process `from`.
pub(crate) fn invalidate_message(change: &Change, ack: &str, from: &str) -> String {
    serde_json::json!({ "invalidate": change, "ack": ack, "from": from }).to_string()
}

/// Invalidations this process broadcast and waits to have confirmed: id → where to count.
#[derive(Default)]
pub(crate) struct Confirmations {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<()>>>,
}

impl Confirmations {
    pub(crate) fn expect(&self, id: &str) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn done(&self, id: &str) {
        self.lock().remove(id);
    }

    fn confirmed(&self, id: &str) {
        if let Some(tx) = self.lock().get(id) {
            let _ = tx.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<()>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the listener hands pub/sub payloads to.
pub(crate) struct Receiver {
    pub registry: std::sync::Weak<Registry>,
    pub directory: Arc<Directory>,
    pub confirmations: Arc<Confirmations>,
    pub redis: Shared,
    /// Where to confirm an invalidation to process `<id>`.
    pub confirm_channel: Box<dyn Fn(&str) -> String + Send + Sync>,
}

/// Hands one pub/sub payload to the local connections (and the cache).
pub(crate) fn dispatch(receiver: &Receiver, registry: &Registry, payload: &str) {
    let envelope: Envelope<'_> = match serde_json::from_str(payload) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(error = %err, "dropping a malformed relay message");
            return;
        }
    };
    if let Some(id) = envelope.confirm {
        receiver.confirmations.confirmed(&id);
    }
    if let Some(change) = envelope.invalidate {
        receiver.directory.forget(&change);
        if let (Some(ack), Some(from)) = (envelope.ack, envelope.from) {
            confirm(receiver, &(receiver.confirm_channel)(&from), ack);
        }
    }
    if let Some(logins) = envelope.revoke {
        registry.kick_logins(&logins, Kick::Revoked);
    }
    if let (Some(gap), Some(then)) = (envelope.gap, envelope.then) {
        // The message after seqs given up: tell its recipients first, then deliver it.
        if let Ok(inner) = serde_json::from_str::<Envelope<'_>>(then.get()) {
            let notice: Arc<str> = Arc::from(format!(r#"{{"event":"gap","data":{}}}"#, gap.get()));
            dispatch_event(registry, inner.users.as_ref(), None, &notice);
        }
        dispatch(receiver, registry, then.get());
        return;
    }
    let Some(event) = envelope.event else {
        return;
    };
    let event: Arc<str> = Arc::from(event.get());
    let skip = envelope.skip.as_deref().filter(|s| !s.is_empty());
    dispatch_event(registry, envelope.users.as_ref(), skip, &event);
}

fn dispatch_event(
    registry: &Registry,
    users: Option<&Users>,
    skip: Option<&str>,
    event: &Arc<str>,
) {
    match users {
        Some(Users::List(users)) => registry.dispatch(Some(users), skip, event),
        Some(Users::All(all)) if all == "*" => registry.dispatch(None, skip, event),
        Some(Users::All(_)) | None => {}
    }
}

/// Confirms an applied invalidation to the process waiting for it (in the background, so the
/// listener goes on with the next message at once).
fn confirm(receiver: &Receiver, channel: &str, id: String) {
    let redis = receiver.redis.clone();
    let channel = channel.to_owned();
    tokio::spawn(async move {
        let confirmed = async {
            let mut conn = redis.get().await?;
            let _: i64 = redis::cmd(redis.publish_command())
                .arg(&channel)
                .arg(serde_json::json!({ "confirm": id }).to_string())
                .query_async(&mut conn)
                .await?;
            Ok::<_, crate::error::AppError>(())
        };
        if let Err(err) = confirmed.await {
            tracing::warn!(error = %err, "cache invalidation applied but not confirmed");
        }
    });
}

/// After a subscription was lost (and is back): events published meanwhile are gone, so every
/// socket here reconnects and resumes (op 7) rather than silently missing them, and cache
/// invalidations missed meanwhile mean the cache is suspect.
fn recover(receiver: &Receiver) {
    receiver.directory.clear();
    if let Some(registry) = receiver.registry.upgrade() {
        registry.kick_all(Kick::Restart);
    }
}

/// Listens on `channels` for as long as the registry lives, resubscribing after any failure.
/// `ready` fires once the first subscription is in place.
pub(crate) async fn listen(
    settings: RedisSettings,
    cluster: bool,
    channels: Vec<String>,
    receiver: Receiver,
    ready: oneshot::Sender<()>,
) {
    if cluster {
        listen_sharded(settings, channels, receiver, ready).await;
    } else {
        listen_classic(settings, channels, receiver, ready).await;
    }
}

async fn listen_classic(
    settings: RedisSettings,
    channels: Vec<String>,
    receiver: Receiver,
    ready: oneshot::Sender<()>,
) {
    use secrecy::ExposeSecret;
    let client = match redis::Client::open(settings.url.expose_secret()) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "redis.url is not a valid Redis URL");
            return;
        }
    };
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        if receiver.registry.strong_count() == 0 {
            return;
        }
        match subscribe(&client, &channels).await {
            Ok(mut pubsub) => {
                tracing::info!("relay subscribed");
                backoff = Duration::from_millis(100);
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(());
                    }
                    None => recover(&receiver),
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Some(registry) = receiver.registry.upgrade() else {
                        return;
                    };
                    match message.get_payload::<String>() {
                        Ok(payload) => dispatch(&receiver, &registry, &payload),
                        Err(err) => tracing::warn!(error = %err, "unreadable relay message"),
                    }
                }
                tracing::warn!("relay subscription lost; reconnecting");
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "relay cannot subscribe");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(
    client: &redis::Client,
    channels: &[String],
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channels).await?;
    Ok(pubsub)
}

/// Cluster mode: sharded subscriptions through the cluster client (RESP3 pushes). A node that
/// goes away (failover) or a slot that moves (resharding) ends the subscriptions it carried:
/// they are made again on the slot's new owner, and then the sockets here are sent to resume.
///
/// A subscription counts as in place only once a probe published on its channel has come
/// back: after a failover the client may answer a subscription that no published message
/// reaches. Probes go out after every (re)subscription and every [`PROBE_EVERY`]; a channel
/// whose probe does not come back within [`PROBE_WAIT`] is subscribed again (and the sockets
/// here resume, since what was published on it meanwhile is lost).
async fn listen_sharded(
    settings: RedisSettings,
    channels: Vec<String>,
    receiver: Receiver,
    ready: oneshot::Sender<()>,
) {
    let (pushes_tx, mut pushes) = mpsc::unbounded_channel();
    let client = match crate::store::redis::shared::subscriber_client(&settings, pushes_tx) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the cluster subscriber");
            return;
        }
    };
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    let mut conn = loop {
        if receiver.registry.strong_count() == 0 {
            return;
        }
        match client.get_async_connection().await {
            Ok(conn) => break conn,
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "relay cannot reach the cluster");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let mut missing: HashSet<String> = channels.iter().cloned().collect();
    // Channels subscribed whose probe has not come back yet: nonce → channel.
    let mut probing: HashMap<String, String> = HashMap::new();
    let mut probe_deadline = tokio::time::Instant::now();
    let mut next_probe = tokio::time::Instant::now() + PROBE_EVERY;
    let mut lost_since_ready = false;
    loop {
        if receiver.registry.strong_count() == 0 {
            return;
        }
        if !missing.is_empty() {
            let mut failed = None;
            for channel in missing.clone() {
                match conn.ssubscribe(&channel).await {
                    Ok(()) => {
                        missing.remove(&channel);
                        probing.retain(|_, c| *c != channel);
                        probing.insert(probe(&receiver.redis, &channel).await, channel);
                    }
                    Err(err) => failed = Some(err),
                }
            }
            probe_deadline = tokio::time::Instant::now() + PROBE_WAIT;
            if let Some(err) = failed {
                tracing::warn!(error = %err, retry_in = ?backoff, left = missing.len(), "relay cannot subscribe");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            backoff = Duration::from_millis(100);
        }
        if missing.is_empty() && probing.is_empty() {
            match ready.take() {
                Some(ready) => {
                    tracing::info!(channels = channels.len(), "relay subscribed (sharded)");
                    let _ = ready.send(());
                }
                None if lost_since_ready => {
                    tracing::info!(
                        channels = channels.len(),
                        "relay subscribed again (sharded)"
                    );
                    recover(&receiver);
                }
                None => {}
            }
            lost_since_ready = false;
        }
        let wake = if probing.is_empty() {
            next_probe
        } else {
            probe_deadline
        };
        let push = tokio::select! {
            push = pushes.recv() => push,
            () = tokio::time::sleep_until(wake) => {
                if probing.is_empty() {
                    // Every PROBE_EVERY: check that every channel still delivers.
                    for channel in &channels {
                        probing.insert(probe(&receiver.redis, channel).await, channel.clone());
                    }
                    probe_deadline = tokio::time::Instant::now() + PROBE_WAIT;
                    next_probe = tokio::time::Instant::now() + PROBE_EVERY;
                } else {
                    tracing::warn!(channels = probing.len(), "relay probes did not come back; resubscribing");
                    missing.extend(probing.drain().map(|(_, c)| c));
                    lost_since_ready = true;
                }
                continue;
            }
        };
        let Some(push) = push else {
            return;
        };
        let Some(registry) = receiver.registry.upgrade() else {
            return;
        };
        match push.kind {
            redis::PushKind::SMessage | redis::PushKind::Message => {
                let payload = push
                    .data
                    .get(1)
                    .and_then(|v| redis::from_redis_value::<String>(v).ok());
                match payload {
                    Some(payload) => match probe_nonce(&payload) {
                        Some(nonce) => {
                            probing.remove(nonce);
                        }
                        None => dispatch(&receiver, &registry, &payload),
                    },
                    None => tracing::warn!("unreadable relay message"),
                }
            }
            redis::PushKind::SUnsubscribe => {
                // The server ends a sharded subscription when its slot moves away.
                let channel = push
                    .data
                    .first()
                    .and_then(|v| redis::from_redis_value::<String>(v).ok());
                if let Some(channel) = channel.filter(|c| channels.contains(c)) {
                    tracing::warn!(channel, "relay subscription moved; resubscribing");
                    missing.insert(channel);
                    lost_since_ready = true;
                }
            }
            redis::PushKind::Disconnection => {
                tracing::warn!("relay lost a cluster node; resubscribing");
                missing = channels.iter().cloned().collect();
                probing.clear();
                lost_since_ready = true;
            }
            _ => {}
        }
    }
}

/// How often every sharded subscription is checked with a probe.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long a probe may take to come back.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Publishes a probe on `channel`; returns its nonce. A probe that cannot be published does
/// not come back, which is what it is for.
async fn probe(redis: &Shared, channel: &str) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sent = async {
        let mut conn = redis.get().await?;
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(format!(r#"{{"probe":"{nonce}"}}"#))
            .query_async(&mut conn)
            .await?;
        Ok::<_, crate::error::AppError>(())
    };
    if let Err(err) = sent.await {
        tracing::debug!(error = %err, channel, "relay probe not published");
    }
    nonce
}

/// The nonce of a probe payload (`{"probe":"<nonce>"}`), or None for any other message.
fn probe_nonce(payload: &str) -> Option<&str> {
    payload
        .strip_prefix(r#"{"probe":""#)
        .and_then(|rest| rest.strip_suffix(r#""}"#))
}
