//! Redis: the shared handle (standalone or cluster, see shared.rs) and the key layout. Every
//! key starts with `redis.key_prefix`, so deployments (and tests) can share one server.
//!
//! Keys that one script or transaction touches together carry the same hash tag, so that in
//! cluster mode they live in one slot: `{u:<id>}` for a user's keys, `{cs:<n>}` for the keys of
//! the conversations of delivery shard n (a conversation's seq counter, publication watermark
//! and held messages) and its delivery channels, `{e:<purpose>:<email>}` for an email code.

pub(crate) mod counters;
pub(crate) mod email_codes;
pub(crate) mod group_lock;
pub(crate) mod login_failures;
pub(crate) mod logins;
pub(crate) mod seq;
pub(crate) mod shared;

pub(crate) mod session_store;

pub(crate) use shared::{Link, Shared};

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

/// The pool of standalone mode.
pub(crate) fn pool(settings: &RedisSettings) -> anyhow::Result<Pool> {
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

pub(crate) async fn ping(redis: &Shared) -> anyhow::Result<()> {
    let mut conn = redis.get().await.context("no redis connection")?;
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
    shards: u16,
}

/// The hash tag of a user's keys.
pub(crate) fn user_tag(user_id: u64) -> String {
    format!("{{u:{user_id}}}")
}

impl Keys {
    /// `shards`: how many delivery shards conversations are spread over (1 in standalone mode).
    pub(crate) fn new(prefix: impl Into<String>, shards: u16) -> Self {
        Self {
            prefix: prefix.into(),
            shards: shards.max(1),
        }
    }

    pub(crate) fn shards(&self) -> u16 {
        self.shards
    }

    /// The delivery shard of a conversation.
    pub(crate) fn shard_of(&self, conversation: &str) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(conversation.as_bytes()) % self.shards
    }

    /// The hash tag of delivery shard `shard`.
    fn shard_tag(shard: u16) -> String {
        format!("{{cs:{shard}}}")
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
        let tag = Self::shard_tag(self.shard_of(conversation));
        format!("{}seq:{tag}{conversation}", self.prefix)
    }

    /// The highest seq of a conversation published live (or given up on): its messages leave
    /// in seq order cluster-wide (see hub::relay). Beside the seq counter.
    pub(crate) fn published(&self, conversation: &str) -> String {
        let tag = Self::shard_tag(self.shard_of(conversation));
        format!("{}pub:{tag}{conversation}", self.prefix)
    }

    /// Messages of a conversation stored but waiting for a lower seq to be published first
    /// (hash: seq → what to publish). Beside the seq counter.
    pub(crate) fn held(&self, conversation: &str) -> String {
        let tag = Self::shard_tag(self.shard_of(conversation));
        format!("{}held:{tag}{conversation}", self.prefix)
    }

    /// A key of delivery shard `shard`'s slot that is never written: it routes a delivery
    /// script with no ordered message to the shard's node in cluster mode.
    pub(crate) fn shard_route(&self, shard: u16) -> String {
        format!("{}{}route", self.prefix, Self::shard_tag(shard))
    }

    /// The live connections of a user: a sorted set of `<conn>@<node>` scored by expiry (ms).
    pub(crate) fn presence(&self, user_id: u64) -> String {
        format!("{}presence:{}", self.prefix, user_tag(user_id))
    }

    /// The delivery channel of one server process for one shard.
    pub(crate) fn node_channel(&self, shard: u16, node_id: &str) -> String {
        format!("{}{}node:{node_id}", self.prefix, Self::shard_tag(shard))
    }

    /// The delivery channel of one shard that every process listens on (the lobby).
    pub(crate) fn everyone_channel(&self, shard: u16) -> String {
        format!("{}{}all", self.prefix, Self::shard_tag(shard))
    }

    /// The channel every process listens on (revocations, cache invalidations).
    pub(crate) fn broadcast_channel(&self) -> String {
        format!("{}broadcast", self.prefix)
    }

    /// An anti-spam counter or marker of one user (see antispam::keys for the layout).
    pub(crate) fn antispam(&self, user_id: u64, name: &str) -> String {
        format!("{}as:{}{name}", self.prefix, user_tag(user_id))
    }

    /// An anti-spam counter of a scope that is not a user (a group).
    pub(crate) fn antispam_scoped(&self, scope: &str, name: &str) -> String {
        format!("{}as:{{s:{scope}}}{name}", self.prefix)
    }

    /// The marker of a passed send (`client_msg_id` of `from`): set by anti-spam when the send
    /// passes, so a retry is neither checked nor counted again.
    pub(crate) fn sent(&self, from: u64, client_msg_id: &str) -> String {
        self.antispam(from, &format!("cmid:{client_msg_id}"))
    }

    /// A pending email code (hash: code, attempts) for `<purpose>:<email>`.
    pub(crate) fn email_code(&self, name: &str) -> String {
        format!("{}email_code:{{e:{name}}}", self.prefix)
    }

    /// Failed logins for a (lowercased) user name in the current window.
    pub(crate) fn login_failures(&self, user_name: &str) -> String {
        format!("{}login_failures:{user_name}", self.prefix)
    }

    /// Wrong codes for `<purpose>:<email>` in the last day.
    pub(crate) fn email_code_failures(&self, name: &str) -> String {
        format!("{}email_code_failures:{{e:{name}}}", self.prefix)
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
