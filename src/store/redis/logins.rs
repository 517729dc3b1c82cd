//! Logins: one Redis hash per logged-in session, listed in a per-user set. A session cookie is
//! only honoured while its login exists, so deleting logins revokes sessions everywhere at once
//! (the session state itself is opaque to us inside actix-session).
//!
//! A login and its user's set are in different slots in cluster mode, so they are written one
//! after the other, in the order that makes a half-done change harmless: a login is listed
//! before it exists and deleted before it is unlisted (a listed id without a login is skipped
//! and cleaned up; a login that exists unlisted could not be revoked by "log out everywhere").

use deadpool_redis::redis::{self, AsyncCommands};

use crate::domain::{Timestamp, UserId};
use crate::error::AppResult;
use crate::store::redis::{Keys, Shared};

pub(crate) struct NewLogin<'a> {
    pub login_id: &'a str,
    pub user_id: UserId,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub ttl_secs: u64,
}

#[tracing::instrument(skip_all, fields(user_id = %login.user_id))]
pub(crate) async fn create(redis: &Shared, keys: &Keys, login: NewLogin<'_>) -> AppResult<()> {
    let mut conn = redis.get().await?;
    let key = keys.login(login.login_id);
    let set = keys.user_logins(login.user_id.0);
    let now = chrono::Utc::now().timestamp_millis();
    redis::pipe()
        .atomic()
        .sadd(&set, login.login_id)
        .ignore()
        .expire(&set, ttl_i64(login.ttl_secs))
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
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
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// The user a login belongs to, if the login still exists.
pub(crate) async fn owner(
    redis: &Shared,
    keys: &Keys,
    login_id: &str,
) -> AppResult<Option<UserId>> {
    let mut conn = redis.get().await?;
    let user_id: Option<u64> = conn.hget(keys.login(login_id), "user_id").await?;
    Ok(user_id.map(UserId))
}

#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn delete(
    redis: &Shared,
    keys: &Keys,
    user_id: UserId,
    login_id: &str,
) -> AppResult<()> {
    let mut conn = redis.get().await?;
    let _: () = conn.del(keys.login(login_id)).await?;
    let _: () = conn.srem(keys.user_logins(user_id.0), login_id).await?;
    Ok(())
}

/// Deletes every login of the user except `keep`; returns the revoked login ids.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub(crate) async fn revoke_all_except(
    redis: &Shared,
    keys: &Keys,
    user_id: UserId,
    keep: &str,
) -> AppResult<Vec<String>> {
    let mut conn = redis.get().await?;
    let set = keys.user_logins(user_id.0);
    let members: Vec<String> = conn.smembers(&set).await?;
    let revoked: Vec<String> = members.into_iter().filter(|id| id != keep).collect();
    if revoked.is_empty() {
        return Ok(revoked);
    }
    let deletes = revoked
        .iter()
        .map(|login_id| {
            let mut del = redis::cmd("DEL");
            del.arg(keys.login(login_id));
            del
        })
        .collect();
    redis.run(deletes).await?;
    let _: () = conn.srem(&set, &revoked).await?;
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
    redis: &Shared,
    keys: &Keys,
    user_id: UserId,
    current: &str,
) -> AppResult<Vec<Device>> {
    let mut conn = redis.get().await?;
    let ids: Vec<String> = conn.smembers(keys.user_logins(user_id.0)).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let reads = ids
        .iter()
        .map(|id| {
            let mut read = redis::cmd("HGETALL");
            read.arg(keys.login(id));
            read
        })
        .collect();
    let records: Vec<std::collections::HashMap<String, String>> = redis
        .run(reads)
        .await?
        .iter()
        .map(redis::from_redis_value)
        .collect::<Result<_, _>>()?;
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
    redis: &Shared,
    keys: &Keys,
    user_id: UserId,
    login_id: &str,
) -> AppResult<bool> {
    if owner(redis, keys, login_id).await? != Some(user_id) {
        return Ok(false);
    }
    delete(redis, keys, user_id, login_id).await?;
    Ok(true)
}

/// Marks these logins as seen now, without recreating revoked ones; returns which still exist.
pub(crate) async fn touch(
    redis: &Shared,
    keys: &Keys,
    login_ids: &[String],
) -> AppResult<Vec<bool>> {
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
    let now = chrono::Utc::now().timestamp_millis();
    let conn = redis.get().await?;
    // One call for all of them, or in cluster mode (every login in a slot of its own) one
    // per login, all at once.
    let groups: Vec<&[String]> = if redis.is_cluster() {
        login_ids.chunks(1).collect()
    } else {
        vec![login_ids]
    };
    let calls = groups.into_iter().map(|ids| {
        let mut invocation = TOUCH.prepare_invoke();
        for id in ids {
            invocation.key(keys.login(id));
        }
        invocation.arg(now);
        let mut conn = conn.clone();
        async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
    });
    let alive = futures_util::future::try_join_all(calls).await?;
    Ok(alive.into_iter().flatten().map(|a| a == 1).collect())
}
