//! Logins: one Redis hash per logged-in session, listed in a per-user set. A session cookie is
//! only honoured while its login exists, so deleting logins revokes sessions everywhere at once
//! (the session state itself is opaque to us inside actix-session).

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, AsyncCommands};

use crate::domain::{Timestamp, UserId};
use crate::error::AppResult;
use crate::store::redis::Keys;

pub(crate) struct NewLogin<'a> {
    pub login_id: &'a str,
    pub user_id: UserId,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub ttl_secs: u64,
}

#[tracing::instrument(skip_all, fields(user_id = %login.user_id))]
pub(crate) async fn create(pool: &Pool, keys: &Keys, login: NewLogin<'_>) -> AppResult<()> {
    let mut conn = pool.get().await?;
    let key = keys.login(login.login_id);
    let set = keys.user_logins(login.user_id.0);
    let now = chrono::Utc::now().timestamp_millis();
    redis::pipe()
        .atomic()
        .hset_multiple(
            &key,
            &[
                ("user_id", login.user_id.0.to_string()),
                ("created_at", now.to_string()),
                ("last_seen", now.to_string()),
                ("user_agent", login.user_agent.to_owned()),
                ("ip", login.ip.to_owned()),
            ],
        )
        .ignore()
        .expire(&key, ttl_i64(login.ttl_secs))
        .ignore()
        .sadd(&set, login.login_id)
        .ignore()
        .expire(&set, ttl_i64(login.ttl_secs))
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// The user a login belongs to, if the login still exists.
pub(crate) async fn owner(pool: &Pool, keys: &Keys, login_id: &str) -> AppResult<Option<UserId>> {
    let mut conn = pool.get().await?;
    let user_id: Option<u64> = conn.hget(keys.login(login_id), "user_id").await?;
    Ok(user_id.map(UserId))
}

#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn delete(
    pool: &Pool,
    keys: &Keys,
    user_id: UserId,
    login_id: &str,
) -> AppResult<()> {
    let mut conn = pool.get().await?;
    redis::pipe()
        .atomic()
        .del(keys.login(login_id))
        .ignore()
        .srem(keys.user_logins(user_id.0), login_id)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// Deletes every login of the user except `keep`; returns the revoked login ids.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn revoke_all_except(
    pool: &Pool,
    keys: &Keys,
    user_id: UserId,
    keep: &str,
) -> AppResult<Vec<String>> {
    let mut conn = pool.get().await?;
    let set = keys.user_logins(user_id.0);
    let members: Vec<String> = conn.smembers(&set).await?;
    let revoked: Vec<String> = members.into_iter().filter(|id| id != keep).collect();
    if revoked.is_empty() {
        return Ok(revoked);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for login_id in &revoked {
        pipe.del(keys.login(login_id)).ignore();
        pipe.srem(&set, login_id).ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok(revoked)
}

fn ttl_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A login as `GET /user/devices` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Device {
    pub id: String,
    pub user_agent: String,
    pub ip: String,
    pub created_at: String,
    pub last_seen: String,
    pub current: bool,
}

/// The user's live logins, newest first.
pub(crate) async fn devices(
    pool: &Pool,
    keys: &Keys,
    user_id: UserId,
    current: &str,
) -> AppResult<Vec<Device>> {
    let mut conn = pool.get().await?;
    let ids: Vec<String> = conn.smembers(keys.user_logins(user_id.0)).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys.login(id));
    }
    let records: Vec<std::collections::HashMap<String, String>> =
        pipe.query_async(&mut conn).await?;
    let mut devices: Vec<(i64, Device)> = ids
        .into_iter()
        .zip(records)
        // An expired login leaves its id in the set until the set is next cleaned.
        .filter(|(_, record)| record.get("user_id") == Some(&user_id.0.to_string()))
        .map(|(id, record)| {
            let millis = |field: &str| {
                record
                    .get(field)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let created = millis("created_at");
            let device = Device {
                current: id == current,
                id,
                user_agent: record.get("user_agent").cloned().unwrap_or_default(),
                ip: record.get("ip").cloned().unwrap_or_default(),
                created_at: rfc3339(created),
                last_seen: rfc3339(millis("last_seen").max(created)),
            };
            (created, device)
        })
        .collect();
    devices.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

fn rfc3339(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .map(Timestamp)
        .unwrap_or_default()
        .to_string()
}

/// Deletes one of the user's logins; false when it is not theirs (or gone).
pub(crate) async fn revoke(
    pool: &Pool,
    keys: &Keys,
    user_id: UserId,
    login_id: &str,
) -> AppResult<bool> {
    if owner(pool, keys, login_id).await? != Some(user_id) {
        return Ok(false);
    }
    delete(pool, keys, user_id, login_id).await?;
    Ok(true)
}

/// Marks these logins as seen now, without recreating revoked ones; returns which still exist.
pub(crate) async fn touch(pool: &Pool, keys: &Keys, login_ids: &[String]) -> AppResult<Vec<bool>> {
    static TOUCH: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r"
            local out = {}
            for i, key in ipairs(KEYS) do
                if redis.call('EXISTS', key) == 1 then
                    redis.call('HSET', key, 'last_seen', ARGV[1])
                    out[i] = 1
                else
                    out[i] = 0
                end
            end
            return out
            ",
        )
    });
    if login_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut invocation = TOUCH.prepare_invoke();
    for id in login_ids {
        invocation.key(keys.login(id));
    }
    invocation.arg(chrono::Utc::now().timestamp_millis());
    let mut conn = pool.get().await?;
    let alive: Vec<i64> = invocation.invoke_async(&mut conn).await?;
    Ok(alive.into_iter().map(|a| a == 1).collect())
}
