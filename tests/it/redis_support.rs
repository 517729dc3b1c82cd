//! Direct access to the suite's Redis, in whichever mode the suite runs (`redis.mode` from the
//! configuration and the environment): a connection, the names of a conversation's keys, and a
//! tap on the broadcast channel.

use chat_server::config::{RedisMode, Settings};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

pub enum TestRedis {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

fn seeds(settings: &Settings) -> Vec<String> {
    settings
        .redis
        .urls
        .iter()
        .map(|u| u.expose_secret().to_owned())
        .collect()
}

/// A connection to the suite's Redis.
pub async fn redis_conn(settings: &Settings) -> TestRedis {
    match settings.redis.mode {
        RedisMode::Standalone => {
            let client = redis::Client::open(settings.redis.url.expose_secret())
                .expect("the test Redis URL parses");
            TestRedis::Standalone(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("the test Redis answers"),
            )
        }
        RedisMode::Cluster => {
            let client = redis::cluster::ClusterClient::new(seeds(settings))
                .expect("the test cluster URLs parse");
            TestRedis::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("the test Redis Cluster answers"),
            )
        }
    }
}

impl ConnectionLike for TestRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The name of a conversation's key of `family` (`seq`, `pub`, `held`), as the server builds
/// it: under the hash tag of the conversation's delivery shard.
pub fn conversation_key(settings: &Settings, family: &str, conversation: &str) -> String {
    let shards = match settings.redis.mode {
        RedisMode::Standalone => 1,
        RedisMode::Cluster => settings.redis.delivery_shards.get(),
    };
    let shard = crc16::State::<crc16::XMODEM>::calculate(conversation.as_bytes()) % shards;
    format!(
        "{}{family}:{{cs:{shard}}}{conversation}",
        settings.redis.key_prefix
    )
}

/// Everything published on the broadcast channel while the tap lives (it confirms nothing).
pub struct BroadcastTap {
    payloads: mpsc::UnboundedReceiver<String>,
    _task: tokio::task::JoinHandle<()>,
}

impl BroadcastTap {
    pub async fn start(settings: &Settings) -> Self {
        let channel = format!("{}broadcast", settings.redis.key_prefix);
        let (tx, payloads) = mpsc::unbounded_channel();
        let task = match settings.redis.mode {
            RedisMode::Standalone => {
                use futures_util::StreamExt;
                let client = redis::Client::open(settings.redis.url.expose_secret())
                    .expect("the test Redis URL parses");
                let mut pubsub = client
                    .get_async_pubsub()
                    .await
                    .expect("the test Redis answers");
                pubsub.subscribe(&channel).await.expect("subscribe");
                tokio::spawn(async move {
                    let mut stream = pubsub.on_message();
                    while let Some(message) = stream.next().await {
                        if let Ok(payload) = message.get_payload::<String>() {
                            let _ = tx.send(payload);
                        }
                    }
                })
            }
            RedisMode::Cluster => {
                let (push_tx, mut pushes) = mpsc::unbounded_channel();
                let client = redis::cluster::ClusterClientBuilder::new(seeds(settings))
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(push_tx)
                    .build()
                    .expect("the test cluster URLs parse");
                let mut conn = client
                    .get_async_connection()
                    .await
                    .expect("the test Redis Cluster answers");
                conn.ssubscribe(&channel).await.expect("ssubscribe");
                tokio::spawn(async move {
                    let _conn = conn;
                    while let Some(push) = pushes.recv().await {
                        if push.kind != redis::PushKind::SMessage {
                            continue;
                        }
                        if let Some(payload) = push
                            .data
                            .get(1)
                            .and_then(|v| redis::from_redis_value::<String>(v).ok())
                        {
                            let _ = tx.send(payload);
                        }
                    }
                })
            }
        };
        Self {
            payloads,
            _task: task,
        }
    }

    /// The next payload within `wait`, if any.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<String> {
        tokio::time::timeout(wait, self.payloads.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for BroadcastTap {
    fn drop(&mut self) {
        self._task.abort();
    }
}
