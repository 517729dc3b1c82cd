//! Failed logins per account name, across every process and client IP: past
//! `auth.login_failures_per_account` failures within `auth.login_failure_window_secs` the name
//! is refused (429) until the window ends, right password or not. Unknown names are counted
//! exactly like real ones, so the answers never tell which accounts exist. A login that succeeds
//! clears the count.

use deadpool_redis::Pool;
use redis::AsyncCommands;

use crate::domain::USER_NAME_MAX_CHARS;
use crate::error::{AppError, AppResult};
use crate::store::redis::Keys;

/// Names compare without case (as the users table does); longer names than any account can have
/// share the key of their prefix.
fn name_key(keys: &Keys, user_name: &str) -> String {
    let name: String = user_name
        .trim()
        .to_lowercase()
        .chars()
        .take(USER_NAME_MAX_CHARS)
        .collect();
    keys.login_failures(&name)
}

/// 429 while the name has used up its failures.
pub async fn check(pool: &Pool, keys: &Keys, user_name: &str, max: u32) -> AppResult<()> {
    let key = name_key(keys, user_name);
    let mut conn = pool.get().await?;
    let (count, ttl_ms): (Option<u32>, i64) = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut conn)
        .await?;
    if count.unwrap_or(0) >= max {
        let secs = u64::try_from(ttl_ms).unwrap_or(1000).div_ceil(1000).max(1);
        return Err(AppError::RateLimited {
            retry_after_secs: secs,
        });
    }
    Ok(())
}

pub async fn record(pool: &Pool, keys: &Keys, user_name: &str, window_secs: u64) -> AppResult<()> {
    let key = name_key(keys, user_name);
    let mut conn = pool.get().await?;
    // The window starts with the first failure and is not extended by later ones.
    let _: () = redis::pipe()
        .incr(&key, 1)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(window_secs)
        .arg("NX")
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(())
}

pub async fn clear(pool: &Pool, keys: &Keys, user_name: &str) -> AppResult<()> {
    let mut conn = pool.get().await?;
    let _: () = conn.del(name_key(keys, user_name)).await?;
    Ok(())
}
