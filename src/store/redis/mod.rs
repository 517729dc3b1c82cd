//! Redis: the shared connection pool (also used by the session store) and the key layout.
//! Every key starts with `redis.key_prefix`, so deployments (and tests) can share one server.

pub(crate) mod counters;
pub(crate) mod email_codes;
pub(crate) mod group_lock;
pub(crate) mod login_failures;
pub(crate) mod logins;
pub(crate) mod seq;
pub(crate) mod shared;

pub(crate) use shared::{Link, Shared};

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

pub(crate) fn connect(settings: &RedisSettings) -> anyhow::Result<Pool> {
    let timeout = Some(Duration::from_millis(settings.timeout_ms));
    let mut config = deadpool_redis::Config::from_url(settings.url.expose_secret());
    config.pool = Some(PoolConfig {
        max_size: settings.pool_size.get(),
        timeouts: Timeouts {
            wait: timeout,
            create: timeout,
            recycle: timeout,
        },
        ..PoolConfig::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .context("redis.url is not a valid Redis URL")
}

pub(crate) async fn ping(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("no redis connection")?;
    let pong: String = deadpool_redis::redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .context("redis ping")?;
    anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong}");
    Ok(())
}

/// Builds every key the server uses, so the layout is readable in one place.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// actix-session's state for one session key.
    pub(crate) fn session(&self, session_key: &str) -> String {
        format!("{}session:{session_key}", self.prefix)
    }

    /// One login (hash: user_id, created_at, user_agent, ip); its existence is what keeps a
    /// session valid.
    pub(crate) fn login(&self, login_id: &str) -> String {
        format!("{}login:{login_id}", self.prefix)
    }

    /// The last seq handed out in a conversation (no expiry: it must outlive every message).
    pub(crate) fn seq(&self, conversation: &str) -> String {
        format!("{}seq:{conversation}", self.prefix)
    }

    /// The live connections of a user: a sorted set of `<conn>@<node>` scored by expiry (ms).
    pub(crate) fn presence(&self, user_id: u64) -> String {
        format!("{}presence:{user_id}", self.prefix)
    }

    /// The pub/sub channel of one server process.
    pub(crate) fn node_channel(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    /// The prefix of node channels, for the delivery script.
    pub(crate) fn node_channel_prefix(&self) -> String {
        format!("{}node:", self.prefix)
    }

    /// The pub/sub channel every process listens on (revocations, lobby).
    pub(crate) fn broadcast_channel(&self) -> String {
        format!("{}broadcast", self.prefix)
    }

    /// The list into which each process confirms it applied one cache invalidation.
    pub(crate) fn cache_ack(&self, invalidation_id: &str) -> String {
        format!("{}cache_ack:{invalidation_id}", self.prefix)
    }

    /// An anti-spam counter or marker (see antispam::script for the layout).
    pub(crate) fn antispam(&self, name: &str) -> String {
        format!("{}as:{name}", self.prefix)
    }

    /// The marker of a passed send (`client_msg_id` of `from`): set by anti-spam when the send
    /// passes, turned to `p` once the stored message has been published (see hub::relay).
    pub(crate) fn sent(&self, from: u64, client_msg_id: &str) -> String {
        self.antispam(&format!("cmid:{from}:{client_msg_id}"))
    }

    /// A pending email code (hash: code, attempts) for `<purpose>:<email>`.
    pub(crate) fn email_code(&self, name: &str) -> String {
        format!("{}email_code:{name}", self.prefix)
    }

    /// Failed logins for a (lowercased) user name in the current window.
    pub(crate) fn login_failures(&self, user_name: &str) -> String {
        format!("{}login_failures:{user_name}", self.prefix)
    }

    /// Wrong codes for `<purpose>:<email>` in the last day.
    pub(crate) fn email_code_failures(&self, name: &str) -> String {
        format!("{}email_code_failures:{name}", self.prefix)
    }

    /// Set while a new code for `<purpose>:<email>` may not be sent yet.
    pub(crate) fn email_code_sent(&self, email: &str) -> String {
        format!("{}email_code_sent:{email}", self.prefix)
    }

    /// The cluster-wide lock of one group's membership changes (see group_lock).
    pub(crate) fn group_lock(&self, group_id: u64) -> String {
        format!("{}group_lock:{group_id}", self.prefix)
    }

    /// A per-caller request counter of [`counters`] (e.g. `email_lookups:<user>`).
    pub(crate) fn counter(&self, name: &str) -> String {
        format!("{}counter:{name}", self.prefix)
    }

    /// The set of a user's login ids, for revoking them.
    pub(crate) fn user_logins(&self, user_id: u64) -> String {
        format!("{}user_logins:{user_id}", self.prefix)
    }
}
