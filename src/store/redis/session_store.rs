//! actix-session's state in Redis, through the server's own handle, so sessions work the same
//! on a single Redis and on a Redis Cluster. The layout is the one actix-session's own Redis
//! store uses (one key per session holding its state as JSON, with the session's TTL), so
//! sessions written by either are read by the other.

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use rand::distr::{Alphanumeric, SampleString};
use redis::AsyncCommands;

use crate::store::redis::{Keys, Shared};

type State = std::collections::HashMap<String, String>;

#[derive(Clone)]
pub(crate) struct RedisSessions {
    redis: Shared,
    keys: Keys,
}

impl RedisSessions {
    pub(crate) fn new(redis: Shared, keys: Keys) -> Self {
        Self { redis, keys }
    }

    fn key(&self, session_key: &SessionKey) -> String {
        self.keys.session(session_key.as_ref())
    }

    /// Writes the state under `key` (only if it exists already when `existing`); false when
    /// that condition failed.
    async fn write(
        &self,
        key: &str,
        state: &State,
        ttl: &Duration,
        existing: bool,
    ) -> anyhow::Result<bool> {
        let body = serde_json::to_string(state)?;
        let mut conn = self.redis.get().await?;
        let written: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(body)
            .arg(if existing { "XX" } else { "NX" })
            .arg("EX")
            .arg(ttl.whole_seconds().max(1))
            .query_async(&mut conn)
            .await?;
        Ok(written.is_some())
    }
}

/// A fresh session key: 64 alphanumeric characters, as actix-session makes them.
fn new_session_key() -> Result<SessionKey, SaveError> {
    Alphanumeric
        .sample_string(&mut rand::rng(), 64)
        .try_into()
        .map_err(|err| SaveError::Other(anyhow::Error::new(err)))
}

impl SessionStore for RedisSessions {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let key = self.key(session_key);
        let value: Option<String> = async {
            let mut conn = self.redis.get().await?;
            Ok::<_, anyhow::Error>(conn.get(&key).await?)
        }
        .await
        .map_err(LoadError::Other)?;
        match value {
            None => Ok(None),
            Some(value) => serde_json::from_str(&value)
                .map(Some)
                .map_err(|err| LoadError::Deserialization(err.into())),
        }
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        // A key collision (2^-380) would be refused by NX: draw again.
        for _ in 0..3 {
            let session_key = new_session_key()?;
            if self
                .write(&self.key(&session_key), &state, ttl, false)
                .await
                .map_err(SaveError::Other)?
            {
                return Ok(session_key);
            }
        }
        Err(SaveError::Other(anyhow::anyhow!("no free session key")))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let written = self
            .write(&self.key(&session_key), &state, ttl, true)
            .await
            .map_err(UpdateError::Other)?;
        if written {
            return Ok(session_key);
        }
        // The state lapsed between load and update: save it under a fresh key.
        self.save(state, ttl).await.map_err(|err| match err {
            SaveError::Serialization(err) => UpdateError::Serialization(err),
            SaveError::Other(err) => UpdateError::Other(err),
        })
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let mut conn = self.redis.get().await?;
        let _: () = conn
            .expire(self.key(session_key), ttl.whole_seconds().max(1))
            .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let mut conn = self.redis.get().await?;
        let _: () = conn.del(self.key(session_key)).await?;
        Ok(())
    }
}
