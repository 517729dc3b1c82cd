//! Cache invalidation across processes: a change to a group or a relation is broadcast, and
//! its answer waits until every process that received the notice confirmed it forgot the
//! entries (see store::directory and relay::dispatch).

use super::{Hub, relay};
use crate::store::directory::Change;

impl Hub {
    /// Makes every process forget the cached groups and relations `change` touches, and waits
    /// (up to `cache.invalidation_wait_ms`) until each process that received the notice has
    /// confirmed it applied it: once this returns, a send through any process sees the change.
    /// Called after the change is in MySQL. Should the broadcast fail, other processes notice
    /// within `cache.ttl_secs`. Confirmations come back over this process's own channel.
    pub(crate) async fn changed(&self, change: Change) {
        let inner = &self.inner;
        inner.directory.forget(&change);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut confirmations = inner.confirmations.expect(&id);
        let receivers = async {
            let mut conn = inner.redis.get().await?;
            let receivers: u64 = redis::cmd(inner.redis.publish_command())
                .arg(inner.keys.broadcast_channel())
                .arg(relay::invalidate_message(&change, &id, &inner.node_id))
                .query_async(&mut conn)
                .await?;
            Ok::<_, crate::error::AppError>(receivers)
        };
        let receivers = match receivers.await {
            Ok(n) => n,
            Err(err) => {
                inner.confirmations.done(&id);
                tracing::warn!(error = %err, "cache invalidation not broadcast");
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + inner.invalidation_wait;
        let mut confirmed = 0;
        while confirmed < receivers {
            match tokio::time::timeout_at(deadline, confirmations.recv()).await {
                Ok(Some(())) => confirmed += 1,
                Ok(None) | Err(_) => break,
            }
        }
        inner.confirmations.done(&id);
        if confirmed < receivers {
            tracing::warn!(
                receivers,
                confirmed,
                "not every process confirmed a cache invalidation in time"
            );
        }
    }
}
