//! One-time email codes: a hash per (purpose, email) with the code and the wrong tries so far,
//! expiring after `mail.code_ttl_secs`, plus a marker that limits how often a new code is sent.

use crate::store::redis::Shared;
use redis::AsyncCommands;

use crate::error::AppResult;
use crate::store::redis::Keys;

pub(crate) struct Limits {
    pub ttl_secs: u64,
    pub resend_secs: u64,
    pub max_attempts: u32,
    pub max_failures_per_day: u32,
}

const DAY_SECS: u64 = 24 * 3600;

fn name(purpose: &str, email: &str) -> String {
    format!("{purpose}:{}", email.to_lowercase())
}

/// Stores a fresh code; Err(seconds) when one was issued too recently.
pub(crate) async fn issue(
    redis: &Shared,
    keys: &Keys,
    purpose: &str,
    email: &str,
    code: &str,
    limits: &Limits,
) -> AppResult<Result<(), u64>> {
    let mut conn = redis.get().await?;
    // Per purpose, so asking for a register code cannot hold back somebody's reset code.
    let marker = keys.email_code_sent(&name(purpose, email));
    let fresh: bool = redis::cmd("SET")
        .arg(&marker)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(limits.resend_secs)
        .query_async::<Option<String>>(&mut conn)
        .await?
        .is_some();
    if !fresh {
        let ttl: i64 = conn.ttl(&marker).await?;
        return Ok(Err(u64::try_from(ttl).unwrap_or(1).max(1)));
    }
    let key = keys.email_code(&name(purpose, email));
    redis::pipe()
        .atomic()
        .del(&key)
        .ignore()
        .hset_multiple(&key, &[("code", code), ("attempts", "0")])
        .ignore()
        .expire(&key, i64::try_from(limits.ttl_secs).unwrap_or(i64::MAX))
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    Ok(Ok(()))
}

/// Checks a code and uses it up when right; a wrong one counts as an attempt, and the code is
/// gone after `max_attempts` wrong ones.
pub(crate) async fn verify(
    redis: &Shared,
    keys: &Keys,
    purpose: &str,
    email: &str,
    candidate: &str,
    limits: &Limits,
) -> AppResult<bool> {
    static VERIFY: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r"
            local code = redis.call('HGET', KEYS[1], 'code')
            if not code then return 0 end
            if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then
                redis.call('DEL', KEYS[1])
                return 0
            end
            if code == ARGV[1] then
                redis.call('DEL', KEYS[1])
                return 1
            end
            if redis.call('INCR', KEYS[2]) == 1 then
                redis.call('EXPIRE', KEYS[2], ARGV[4])
            end
            local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
            if attempts >= tonumber(ARGV[2]) then
                redis.call('DEL', KEYS[1])
            end
            return 0
            ",
        )
    });
    let mut conn = redis.get().await?;
    let ok: i64 = VERIFY
        .key(keys.email_code(&name(purpose, email)))
        .key(keys.email_code_failures(&name(purpose, email)))
        .arg(candidate)
        .arg(limits.max_attempts)
        .arg(limits.max_failures_per_day)
        .arg(DAY_SECS)
        .invoke_async(&mut conn)
        .await?;
    Ok(ok == 1)
}
