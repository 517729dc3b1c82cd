//! Cache invalidation across processes: a change to a group or a relation is broadcast, and
//! its answer waits until every process that received the notice confirmed it forgot the
//! entries (see store::directory and relay::dispatch).

use redis::AsyncCommands;

use super::{Hub, relay};
use crate::error::AppResult;
use crate::store::directory::Change;

impl Hub {
    /// Makes every process forget the cached groups and relations `change` touches, and waits
    /// (up to `cache.invalidation_wait_ms`) until each process that received the notice has
    /// confirmed it applied it: once this returns, a send through any process sees the change.
    /// Called after the change is in MySQL. Should the broadcast fail, other processes notice
    /// within `cache.ttl_secs`.
    pub(crate) async fn changed(&self, change: Change) {
        let inner = &self.inner;
        inner.directory.forget(&change);
        let acks = inner
            .keys
            .cache_ack(&uuid::Uuid::new_v4().simple().to_string());
        let receivers = async {
            let mut conn = inner.redis.get().await?;
            let receivers: u64 = conn
                .publish(
                    inner.keys.broadcast_channel(),
                    relay::invalidate_message(&change, &acks),
                )
                .await?;
            Ok::<_, crate::error::AppError>(receivers)
        };
        let receivers = match receivers.await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "cache invalidation not broadcast");
                return;
            }
        };
        match self.await_confirmations(&acks, receivers).await {
            Ok(confirmed) if confirmed >= receivers => {}
            Ok(confirmed) => tracing::warn!(
                receivers,
                confirmed,
                "not every process confirmed a cache invalidation in time"
            ),
            Err(err) => tracing::warn!(error = %err, "cache invalidation confirmations not read"),
        }
    }

    /// Waits for `expected` confirmations in the list `acks`; returns how many came.
    async fn await_confirmations(&self, acks: &str, expected: u64) -> AppResult<u64> {
        if expected == 0 {
            return Ok(0);
        }
        let deadline = tokio::time::Instant::now() + self.inner.invalidation_wait;
        // BLPOP blocks its connection: it takes one of its own, never the shared one.
        let mut conn = self.inner.redis.pool().get().await?;
        let mut confirmed = 0;
        while confirmed < expected {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // BLPOP takes seconds; its finest step is a millisecond.
            let secs = (left.as_secs_f64() * 1000.0).ceil() / 1000.0;
            let popped: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(acks)
                .arg(secs)
                .query_async(&mut conn)
                .await?;
            if popped.is_none() {
                break;
            }
            confirmed += 1;
        }
        let _: () = conn.del(acks).await?;
        Ok(confirmed)
    }
}
