//! Presence: a sorted set per user in Redis of `<conn>@<node>` scored by expiry (ms), written
//! by the process holding the connection, refreshed every heartbeat and lapsing by itself
//! when that process dies. Whether a user is online is whether a record is still in force.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use super::{ConnId, Hub, Inner, Kick, now_ms};
use crate::domain::UserId;
use crate::error::AppResult;

impl Hub {
    /// Whether the user has a live connection on any process.
    pub(crate) async fn is_online(&self, user: UserId) -> AppResult<bool> {
        let mut conn = self.inner.redis.get().await?;
        let live: u64 = conn
            .zcount(self.inner.keys.presence(user.0), now_ms(), "+inf")
            .await?;
        Ok(live > 0)
    }

    /// For each user, whether they have a live connection (one round trip).
    pub(crate) async fn online_many(&self, users: &[UserId]) -> AppResult<Vec<bool>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let cmds = users
            .iter()
            .map(|user| {
                let mut cmd = redis::cmd("ZCOUNT");
                cmd.arg(self.inner.keys.presence(user.0))
                    .arg(now)
                    .arg("+inf");
                cmd
            })
            .collect();
        let counts = self.inner.redis.run(cmds).await?;
        counts
            .iter()
            .map(|c| Ok(redis::from_redis_value::<u64>(c)? > 0))
            .collect()
    }

    /// Refreshes the presence records of these connections.
    pub(super) async fn touch(&self, conns: &[(UserId, ConnId)]) -> AppResult<()> {
        touch(&self.inner, conns).await
    }
}

pub(super) async fn touch(inner: &Inner, conns: &[(UserId, ConnId)]) -> AppResult<()> {
    if conns.is_empty() {
        return Ok(());
    }
    let expires = now_ms() + inner.presence_ttl_ms;
    let now = now_ms();
    let mut cmds = Vec::with_capacity(conns.len() * 3);
    for (user, conn_id) in conns {
        let key = inner.keys.presence(user.0);
        // Records of connections whose process died lapse: prune them here, off the send path.
        let mut prune = redis::cmd("ZREMRANGEBYSCORE");
        prune.arg(&key).arg("-inf").arg(now);
        let mut add = redis::cmd("ZADD");
        add.arg(&key)
            .arg(expires)
            .arg(presence_member(conn_id, &inner.node_id));
        let mut keep = redis::cmd("PEXPIRE");
        keep.arg(&key).arg(inner.presence_ttl_ms);
        cmds.extend([prune, add, keep]);
    }
    inner.redis.run(cmds).await?;
    Ok(())
}

/// Every heartbeat: extend the presence of every local socket, mark their logins as seen, and
/// close the sockets whose login is gone (revoked while this process missed the broadcast, or
/// expired).
pub(super) async fn refresh_presence(inner: std::sync::Weak<Inner>, every: Duration) {
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
    let alive = crate::store::redis::logins::touch(&inner.redis, &inner.keys, &logins).await?;
    Ok(logins
        .into_iter()
        .zip(alive)
        .filter(|(_, alive)| !alive)
        .map(|(l, _)| l)
        .collect())
}

pub(super) async fn remove_presence(inner: &Inner, user: UserId, conn_id: &str) {
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
