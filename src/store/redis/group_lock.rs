//! A cluster-wide lock on one group's membership changes and dissolve: under it nobody joins a
//! group being dissolved after its dissolve notice, and the group's join and dissolve notices
//! come in the order of the changes.
//!
//! Waiting for it holds no MySQL connection (the old named lock did, so a crowd of joins to one
//! group could starve the pool for every route). In one process, waiters queue on a local mutex,
//! first come first served; across processes the lock is a Redis key holding its holder's token,
//! with a lease so that a crashed holder cannot keep it. The token makes a release (or a late
//! release after the lease ran out) delete only the holder's own key. MySQL's invariants do not
//! rest on this lock: the work it guards re-checks the group under a row lock in its own short
//! transaction (see store::mysql::groups::admit).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::redis::Script;
use tokio::sync::OwnedMutexGuard;

use crate::domain::GroupId;
use crate::error::{AppError, AppResult};
use crate::store::redis::{Keys, Shared};

/// How long a holder keeps the lock at most: far beyond the few milliseconds of a join, it only
/// bounds how long a crashed process blocks the group's joins.
const LEASE: Duration = Duration::from_secs(15);

/// The first and the longest pause between two tries while another process holds the lock.
const RETRY_FIRST: Duration = Duration::from_millis(2);
const RETRY_MAX: Duration = Duration::from_millis(50);

/// KEYS: 1 the lock. ARGV: 1 the holder's token. Deletes the lock only if that holder has it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

fn unavailable(err: impl Into<anyhow::Error>) -> AppError {
    AppError::Unavailable(err.into().context("taking a group lock in Redis"))
}

/// The local queues of this process, one per group someone is waiting for or holds.
#[derive(Default)]
pub(crate) struct GroupLocks {
    local: Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>>,
}

impl GroupLocks {
    /// Takes the group's lock, waiting up to `wait` for whoever holds it (503 after that).
    pub(crate) async fn lock(
        self: &Arc<Self>,
        redis: &Shared,
        keys: &Keys,
        group: GroupId,
        wait: Duration,
    ) -> AppResult<GroupLock> {
        let deadline = tokio::time::Instant::now() + wait;
        let busy = || AppError::Unavailable(anyhow::anyhow!("group {group} stayed locked"));
        let queue = self.queue(group);
        let mut lock = GroupLock {
            group,
            locks: self.clone(),
            local: None,
            held: None,
        };
        // Dropped on a timeout or an error, `lock` leaves the queue (see its Drop).
        let local = tokio::time::timeout_at(deadline, queue.lock_owned())
            .await
            .map_err(|_| busy())?;
        lock.local = Some(local);
        let key = keys.group_lock(group.0);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut pause = RETRY_FIRST;
        loop {
            let taken: Option<String> = {
                let mut conn = redis.get().await.map_err(unavailable)?;
                deadpool_redis::redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX))
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?
            };
            if taken.is_some() {
                lock.held = Some(Held {
                    redis: redis.clone(),
                    key,
                    token,
                });
                return Ok(lock);
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(busy());
            }
            // Another process holds it: try again soon, less often the longer it takes.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    fn queue(&self, group: GroupId) -> Arc<tokio::sync::Mutex<()>> {
        self.map().entry(group).or_default().clone()
    }

    /// Forgets a group's queue once nobody waits on it or holds it (only the map refers to it).
    fn forget_idle(&self, group: GroupId) {
        let mut map = self.map();
        if map.get(&group).is_some_and(|q| Arc::strong_count(q) == 1) {
            map.remove(&group);
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>> {
        // Each change is one insert or remove: a poisoned lock still holds a consistent map.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Held {
    redis: Shared,
    key: String,
    token: String,
}

impl Held {
    async fn release(self) {
        let released: anyhow::Result<()> = async {
            let mut conn = self.redis.get().await?;
            let _: i64 = RELEASE
                .key(&self.key)
                .arg(&self.token)
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        }
        .await;
        if let Err(err) = released {
            // The lease ends it anyway.
            tracing::warn!(error = %err, key = %self.key, "group lock not released");
        }
    }
}

/// One group's lock, held until [`GroupLock::release`] (or dropped: a cancelled request still
/// releases it, in the background).
pub(crate) struct GroupLock {
    group: GroupId,
    locks: Arc<GroupLocks>,
    local: Option<OwnedMutexGuard<()>>,
    held: Option<Held>,
}

impl GroupLock {
    pub(crate) async fn release(mut self) {
        if let Some(held) = self.held.take() {
            held.release().await;
        }
        // The local queue moves on when `self` is dropped, after the Redis key is gone.
    }
}

impl Drop for GroupLock {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            // Dropped without a release: release the Redis key in the background, then let the
            // local queue move on (a local waiter would otherwise find the key still taken).
            let local = self.local.take();
            let locks = self.locks.clone();
            let group = self.group;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    held.release().await;
                    drop(local);
                    locks.forget_idle(group);
                });
                return;
            }
        }
        self.local.take();
        self.locks.forget_idle(self.group);
    }
}
