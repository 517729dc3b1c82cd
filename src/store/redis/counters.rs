//! Fixed-window counters of one caller's requests (e.g. email lookups per hour), shared by every
//! process: the first request opens a window of `window_secs`, and past `limit` requests in it
//! the caller waits for the window to end.

use crate::store::redis::Shared;

use crate::error::{AppError, AppResult};

/// Counts one request against `key`; 429 `rate_limited` naming `rule`, with the seconds left
/// in the window, once there were already `limit` of them.
pub(crate) async fn hit(
    redis: &Shared,
    key: &str,
    rule: &'static str,
    limit: u64,
    window_secs: u64,
) -> AppResult<()> {
    let mut conn = redis.get().await?;
    let (count, ttl_ms): (u64, i64) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .cmd("EXPIRE")
        .arg(key)
        .arg(window_secs)
        .arg("NX")
        .ignore()
        .pttl(key)
        .query_async(&mut conn)
        .await?;
    if count > limit {
        return Err(AppError::RuleLimited {
            rule,
            retry_after_secs: u64::try_from(ttl_ms).unwrap_or(1000).div_ceil(1000).max(1),
        });
    }
    Ok(())
}
