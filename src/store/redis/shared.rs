//! The Redis handle every part of the server uses, in either mode:
//!
//! - **standalone**: one multiplexed connection shared by everyone (the pool checks each
//!   connection it hands out with a `PING`, which would double the round trips of an operation
//!   that is one script). After a command fails on it, the next caller takes a fresh one from
//!   the pool (which reconnects), so a Redis restart costs the commands in flight and no more.
//! - **cluster**: the cluster client's connection, multiplexed per node; it follows MOVED/ASK,
//!   refreshes the slot map after a failover and retries.
//!
//! Work on keys of several slots goes through [`Shared::run`], which splits it by slot in
//! cluster mode (one pipeline per slot, all at once); a script always touches one slot.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{Connection, Pool};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use secrecy::ExposeSecret;

use crate::config::{RedisMode, RedisSettings};
use crate::error::{AppError, AppResult};

#[derive(Clone)]
pub(crate) struct Shared {
    backend: Arc<Backend>,
}

enum Backend {
    Standalone {
        pool: Pool,
        current: Arc<Mutex<Current>>,
    },
    Cluster {
        /// Boxed: the client is large next to the standalone handles.
        client: Box<ClusterClient>,
        /// Made on first use (the cluster may not answer at startup).
        conn: tokio::sync::Mutex<Option<ClusterConnection>>,
    },
}

#[derive(Default)]
struct Current {
    conn: Option<MultiplexedConnection>,
    /// Bumped each time a connection is taken, so a failure forgets only the one it happened on.
    generation: u64,
}

impl Shared {
    /// Builds the handle for `redis.mode`; nothing is connected yet.
    pub(crate) fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let backend = match settings.mode {
            RedisMode::Standalone => Backend::Standalone {
                pool: super::pool(settings)?,
                current: Arc::default(),
            },
            RedisMode::Cluster => Backend::Cluster {
                client: Box::new(
                    cluster_client(settings, timeout)
                        .build()
                        .context("redis.urls are not valid Redis URLs")?,
                ),
                conn: tokio::sync::Mutex::new(None),
            },
        };
        Ok(Self {
            backend: Arc::new(backend),
        })
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(*self.backend, Backend::Cluster { .. })
    }

    /// The command that publishes to a delivery channel: sharded pub/sub in cluster mode (a
    /// message goes to the one node that owns its channel's slot, not to every node).
    pub(crate) fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// The shared connection.
    pub(crate) async fn get(&self) -> AppResult<Link> {
        match &*self.backend {
            Backend::Standalone { pool, current } => {
                {
                    let now = lock(current);
                    if let Some(conn) = &now.conn {
                        return Ok(Link::standalone(conn.clone(), now.generation, current));
                    }
                }
                let taken = Connection::take(pool.get().await?);
                let mut now = lock(current);
                // Another caller may have taken one meanwhile: use theirs, drop ours.
                let conn = match &now.conn {
                    Some(theirs) => theirs.clone(),
                    None => {
                        now.conn = Some(taken.clone());
                        now.generation += 1;
                        taken
                    }
                };
                Ok(Link::standalone(conn, now.generation, current))
            }
            Backend::Cluster { client, conn } => {
                let mut slot = conn.lock().await;
                if let Some(conn) = &*slot {
                    return Ok(Link(Inner::Cluster(conn.clone())));
                }
                let made = client.get_async_connection().await.map_err(|err| {
                    AppError::Unavailable(
                        anyhow::Error::new(err).context("no Redis Cluster node answers"),
                    )
                })?;
                *slot = Some(made.clone());
                Ok(Link(Inner::Cluster(made)))
            }
        }
    }

    /// Runs `cmds` (each on the key it names first) and returns their replies in order: one
    /// pipeline in standalone mode; in cluster mode one pipeline per slot, all at once. Not
    /// atomic across slots: callers order their commands so that a partial run is harmless.
    pub(crate) async fn run(&self, cmds: Vec<Cmd>) -> AppResult<Vec<Value>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.get().await?;
        if !self.is_cluster() {
            let mut conn = conn;
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            return Ok(pipe.query_async(&mut conn).await?);
        }
        let mut by_slot: std::collections::BTreeMap<u16, (Vec<usize>, Pipeline)> =
            std::collections::BTreeMap::new();
        for (i, cmd) in cmds.into_iter().enumerate() {
            let key = cmd
                .args_iter()
                .nth(1)
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.to_vec(),
                    redis::Arg::Cursor => Vec::new(),
                })
                .unwrap_or_default();
            let entry = by_slot
                .entry(slot(&key))
                .or_insert_with(|| (Vec::new(), redis::pipe()));
            entry.0.push(i);
            entry.1.add_command(cmd);
        }
        let total = by_slot.values().map(|(at, _)| at.len()).sum::<usize>();
        let runs = by_slot.into_values().map(|(at, pipe)| {
            let mut conn = conn.clone();
            async move {
                let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>((at, replies))
            }
        });
        let done = futures_util::future::try_join_all(runs).await?;
        let mut out = vec![Value::Nil; total];
        for (at, replies) in done {
            for (i, reply) in at.into_iter().zip(replies) {
                out[i] = reply;
            }
        }
        Ok(out)
    }
}

fn cluster_client(
    settings: &RedisSettings,
    timeout: Duration,
) -> redis::cluster::ClusterClientBuilder {
    ClusterClient::builder(
        settings
            .urls
            .iter()
            .map(|url| url.expose_secret().to_owned()),
    )
    .connection_timeout(timeout)
    .response_timeout(timeout)
    // A failover takes cluster-node-timeout plus an election; retry through it rather than
    // fail at the first refused command (each attempt is bounded by the response timeout).
    .retries(6)
}

/// A cluster client for sharded subscriptions: RESP3, pushes handed to `pushes`.
pub(crate) fn subscriber_client(
    settings: &RedisSettings,
    pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> anyhow::Result<ClusterClient> {
    let timeout = Duration::from_millis(settings.timeout_ms);
    cluster_client(settings, timeout)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .build()
        .context("redis.urls are not valid Redis URLs")
}

fn lock(current: &Mutex<Current>) -> std::sync::MutexGuard<'_, Current> {
    current.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hash slot of a key (Redis Cluster: CRC16 of the hash tag, or of the whole key).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

/// A handle on the shared connection; use it like any connection.
pub(crate) struct Link(Inner);

enum Inner {
    Standalone {
        conn: MultiplexedConnection,
        generation: u64,
        shared: Arc<Mutex<Current>>,
    },
    Cluster(ClusterConnection),
}

impl Link {
    fn standalone(
        conn: MultiplexedConnection,
        generation: u64,
        shared: &Arc<Mutex<Current>>,
    ) -> Self {
        Self(Inner::Standalone {
            conn,
            generation,
            shared: shared.clone(),
        })
    }
}

impl Clone for Link {
    fn clone(&self) -> Self {
        match &self.0 {
            Inner::Standalone {
                conn,
                generation,
                shared,
            } => Self::standalone(conn.clone(), *generation, shared),
            Inner::Cluster(conn) => Self(Inner::Cluster(conn.clone())),
        }
    }
}

impl Link {
    /// A command failed: the connection may be broken, so the next caller takes a fresh one.
    /// (The cluster connection reconnects by itself.)
    fn forget(&self) {
        if let Inner::Standalone {
            generation, shared, ..
        } = &self.0
        {
            let mut current = lock(shared);
            if current.generation == *generation {
                current.conn = None;
            }
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = match &mut self.0 {
                Inner::Standalone { conn, .. } => conn.req_packed_command(cmd).await,
                Inner::Cluster(conn) => conn.req_packed_command(cmd).await,
            };
            if reply.is_err() {
                self.forget();
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let reply = match &mut self.0 {
                Inner::Standalone { conn, .. } => {
                    conn.req_packed_commands(cmd, offset, count).await
                }
                Inner::Cluster(conn) => conn.req_packed_commands(cmd, offset, count).await,
            };
            if reply.is_err() {
                self.forget();
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Standalone { conn, .. } => conn.get_db(),
            Inner::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_follow_the_hash_tag_as_redis_computes_them() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"a{u:7}b"), slot(b"{u:7}"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(
            slot(b"{}x"),
            crc16::State::<crc16::XMODEM>::calculate(b"{}x") % 16384
        );
    }
}
