//! Logins: one Redis hash per logged-in session, listed in a per-user set. A session cookie is
//! only honoured while its login exists, so deleting logins revokes sessions everywhere at once
//! (the session state itself is opaque to us inside actix-session).

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, AsyncCommands};

use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::redis::Keys;

pub struct NewLogin<'a> {
    pub login_id: &'a str,
    pub user_id: UserId,
    pub user_agent: &'a str,
    pub ip: &'a str,
    pub ttl_secs: u64,
}

#[tracing::instrument(skip_all, fields(user_id = %login.user_id))]
pub async fn create(pool: &Pool, keys: &Keys, login: NewLogin<'_>) -> AppResult<()> {
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
pub async fn owner(pool: &Pool, keys: &Keys, login_id: &str) -> AppResult<Option<UserId>> {
    let mut conn = pool.get().await?;
    let user_id: Option<u64> = conn.hget(keys.login(login_id), "user_id").await?;
    Ok(user_id.map(UserId))
}

#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn delete(pool: &Pool, keys: &Keys, user_id: UserId, login_id: &str) -> AppResult<()> {
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
pub async fn revoke_all_except(
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
