//! Per-client-IP rate limits for login, registration and email codes: a governor keyed limiter,
//! local to the process (brute force is slowed on every node; the cluster-wide counters are
//! anti-spam's). Every per-IP limit, these and the WebSocket cap, keys a client by
//! [`crate::peer::limit_key`]: one IPv6 subscriber gets a whole /64, so counting
//! single IPv6 addresses would give them 2^64 budgets.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;
use crate::peer::limit_key;

/// How often keys of idle IPs are dropped so the limiter's memory stays bounded.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub(crate) struct IpLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl IpLimiter {
    /// `per_minute` requests per IP per minute, all of which may come in one burst.
    /// Spawns a pruning task that ends when the limiter is dropped.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
        let weak: Weak<DefaultKeyedRateLimiter<IpAddr>> = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self { limiter }
    }

    /// Counts one request from `ip` (by its [`crate::peer::limit_key`]); refused requests get 429 with the
    /// wait in whole seconds.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), AppError> {
        self.limiter.check_key(&limit_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}
