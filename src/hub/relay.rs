//! Delivery between processes over Redis pub/sub. A send publishes each event once per process
//! that holds a live connection of a recipient, found in the presence records, all in one atomic
//! script per batch; the same script answers whether the primary recipients are online.
//! Each process listens on its own channel and on the broadcast channel.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

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
    /// The event JSON, as it goes out on the socket.
    pub event: Arc<str>,
    pub audience: Audience,
    /// The connection the event came from, which does not get it back.
    pub skip: Option<ConnId>,
    /// For a message sent with a `client_msg_id`: remember (or check) its publication.
    pub mark: Option<Mark>,
}

/// Remembers that a stored message was published, under the marker of its send (see
/// `Keys::sent`): a retry of the send then publishes it again only if the first attempt never
/// did (its process died between storing and publishing), so live recipients get it once.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub key: String,
    /// A retry: publish only when the marker does not say published.
    pub replay: bool,
}

/// ARGV: now_ms, node channel prefix, broadcast channel, delivery count, marker lifetime ms, then
/// per delivery: event, skip, n (-1: everyone), primary, mark mode (0 none, 1 mark, 2 replay) and
/// n user ids; KEYS per delivery: its marker key when it has a mark, then its n presence keys.
/// Returns, per delivery, how many primary users have a live connection.
pub(crate) static DELIVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local now = tonumber(ARGV[1])
        local node_prefix = ARGV[2]
        local broadcast = ARGV[3]
        local count = tonumber(ARGV[4])
        local mark_ttl = tonumber(ARGV[5])
        local a = 6
        local k = 1
        local result = {}
        for d = 1, count do
            local event = ARGV[a]
            local skip = ARGV[a + 1]
            local n = tonumber(ARGV[a + 2])
            local primary = tonumber(ARGV[a + 3])
            local mode = tonumber(ARGV[a + 4])
            a = a + 5
            local publish = true
            if mode > 0 then
                local mark = KEYS[k]
                k = k + 1
                if mode == 2 and redis.call('GET', mark) == 'p' then
                    publish = false
                else
                    redis.call('SET', mark, 'p', 'PX', mark_ttl)
                end
            end
            local online = 0
            if n < 0 then
                if publish then
                    redis.call('PUBLISH', broadcast,
                        '{"users":"*","skip":"' .. skip .. '","event":' .. event .. '}')
                end
            else
                local nodes = {}
                local order = {}
                for i = 1, n do
                    local key = KEYS[k]
                    local uid = ARGV[a]
                    k = k + 1
                    a = a + 1
                    -- Lapsed records are skipped here and pruned by the presence refresh.
                    local members = redis.call('ZRANGE', key, now, '+inf', 'BYSCORE')
                    if i <= primary and #members > 0 then
                        online = online + 1
                    end
                    for _, member in ipairs(members) do
                        local at = string.find(member, '@', 1, true)
                        if at then
                            local node = string.sub(member, at + 1)
                            if nodes[node] == nil then
                                nodes[node] = {}
                                table.insert(order, node)
                            end
                            local list = nodes[node]
                            if list[#list] ~= uid then
                                table.insert(list, uid)
                            end
                        end
                    end
                end
                if publish then
                    for _, node in ipairs(order) do
                        redis.call('PUBLISH', node_prefix .. node,
                            '{"users":[' .. table.concat(nodes[node], ',') .. '],"skip":"' .. skip ..
                            '","event":' .. event .. '}')
                    end
                end
            end
            result[d] = online
        end
        return result
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
    /// Where to confirm the invalidation (a list the changing process waits on).
    #[serde(default)]
    ack: Option<String>,
}

/// The broadcast message that closes the sockets of revoked logins on every process.
pub(crate) fn revoke_message(login_ids: &[String]) -> String {
    serde_json::json!({ "revoke": login_ids }).to_string()
}

/// The broadcast message that makes every process forget cached groups and relations, and
/// confirm it by pushing to the list `ack`.
pub(crate) fn invalidate_message(change: &Change, ack: &str) -> String {
    serde_json::json!({ "invalidate": change, "ack": ack }).to_string()
}

/// Hands one pub/sub payload to the local connections (and the cache). Returns the list to
/// confirm an applied invalidation in.
pub(crate) fn dispatch(
    registry: &Registry,
    directory: &Directory,
    payload: &str,
) -> Option<String> {
    let envelope: Envelope<'_> = match serde_json::from_str(payload) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(error = %err, "dropping a malformed relay message");
            return None;
        }
    };
    let mut confirm = None;
    if let Some(change) = envelope.invalidate {
        directory.forget(&change);
        confirm = envelope.ack;
    }
    if let Some(logins) = envelope.revoke {
        registry.kick_logins(&logins, Kick::Revoked);
    }
    let Some(event) = envelope.event else {
        return confirm;
    };
    let event: Arc<str> = Arc::from(event.get());
    let skip = envelope.skip.as_deref().filter(|s| !s.is_empty());
    match envelope.users {
        Some(Users::List(users)) => registry.dispatch(Some(&users), skip, &event),
        Some(Users::All(all)) if all == "*" => registry.dispatch(None, skip, &event),
        Some(Users::All(_)) | None => {}
    }
    confirm
}

/// Confirms an applied invalidation to the process waiting for it (in the background, so the
/// listener goes on with the next message at once).
fn confirm(redis: &Shared, list: String, keep_ms: u64) {
    let redis = redis.clone();
    tokio::spawn(async move {
        let confirmed = async {
            let mut conn = redis.get().await?;
            let _: () = redis::pipe()
                .rpush(&list, 1)
                .ignore()
                .pexpire(&list, i64::try_from(keep_ms).unwrap_or(i64::MAX))
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok::<_, crate::error::AppError>(())
        };
        if let Err(err) = confirmed.await {
            tracing::warn!(error = %err, "cache invalidation applied but not confirmed");
        }
    });
}

/// Listens on `channels` for as long as `registry` lives, reconnecting after any failure.
/// `ready` fires once the first subscription is in place.
pub(crate) async fn listen(
    client: redis::Client,
    redis: Shared,
    confirm_keep_ms: u64,
    channels: Vec<String>,
    registry: std::sync::Weak<Registry>,
    directory: Arc<Directory>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        if registry.strong_count() == 0 {
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
                    None => {
                        // Events published while unsubscribed are gone: every socket here
                        // reconnects and resumes (op 7) rather than silently missing them,
                        // and cache invalidations missed meanwhile mean the cache is suspect.
                        directory.clear();
                        if let Some(registry) = registry.upgrade() {
                            registry.kick_all(Kick::Restart);
                        }
                    }
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    match message.get_payload::<String>() {
                        Ok(payload) => {
                            if let Some(list) = dispatch(&registry, &directory, &payload) {
                                confirm(&redis, list, confirm_keep_ms);
                            }
                        }
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
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}
