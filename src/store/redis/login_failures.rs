//! Failed password checks, across every process and client IP: past
//! `auth.login_failures_per_account` failures within `auth.login_failure_window_secs` a bucket
//! is refused (429) until the window ends, right password or not, and without running bcrypt.
//!
//! Wrong passwords at login and wrong `old_password`s at `POST /user/set_password` count alike.
//! The bucket is the account (by user id, whatever spelling of its name was typed), or, for a
//! request carrying a valid device cookie of that account, the device cookie itself: a stranger
//! who locks the account does not lock out the browsers its owner logged in from. Unknown names
//! are counted per canonical name exactly like accounts, so the answers never tell which accounts
//! exist. A password check that succeeds clears its bucket.

use crate::store::redis::Shared;
use redis::AsyncCommands;

use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::store::redis::Keys;

/// What one failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// An existing account, from a client without a device cookie for it.
    Account(UserId),
    /// A name no account has, by its canonical key.
    UnknownName(String),
    /// A browser holding a valid device cookie entry for the account: the entry is named by the
    /// account and the entry's issue time (milliseconds), which its signature covers.
    Device { user_id: UserId, issued_ms: i64 },
}

impl Bucket {
    fn key(&self, keys: &Keys) -> String {
        let id = match self {
            Self::Account(user_id) => format!("u:{}", user_id.0),
            Self::UnknownName(key) => format!("n:{key}"),
            Self::Device { user_id, issued_ms } => format!("d:{}:{issued_ms}", user_id.0),
        };
        keys.login_failures(&id)
    }
}

/// 429 while the bucket has used up its failures.
pub(crate) async fn check(redis: &Shared, keys: &Keys, bucket: &Bucket, max: u32) -> AppResult<()> {
    let key = bucket.key(keys);
    let mut conn = redis.get().await?;
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

pub(crate) async fn record(
    redis: &Shared,
    keys: &Keys,
    bucket: &Bucket,
    window_secs: u64,
) -> AppResult<()> {
    let key = bucket.key(keys);
    let mut conn = redis.get().await?;
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

pub(crate) async fn clear(redis: &Shared, keys: &Keys, bucket: &Bucket) -> AppResult<()> {
    let mut conn = redis.get().await?;
    let _: () = conn.del(bucket.key(keys)).await?;
    Ok(())
}
