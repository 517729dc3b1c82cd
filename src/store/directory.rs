//! A per-process cache of what the send path asks MySQL: a group with its members, and the
//! relation between a sender and a recipient. It takes MySQL off the path of every message, and
//! keeps connected users chatting while MySQL is unreachable: no membership or block can change
//! then (changes are written to MySQL first), so the last state read is still the truth.
//!
//! Every change to a group or a relation forgets the entry here and on every other process (the
//! hub broadcasts it), so entries are right as long as they are kept; an epoch counter keeps a
//! read that raced such a change from storing what it saw before it. Entries are fresh for
//! `cache.ttl_secs` (the bound on staleness should a broadcast be lost); an older entry, up to
//! `cache.serve_stale_secs`, is still answered at once while it is read again in the
//! background, so a send never waits for an unreachable MySQL when its answer is known.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use crate::config::CacheSettings;
use crate::domain::{GroupId, UserId};
use crate::error::AppResult;
use crate::store::mysql::groups::{self, Group, Membership};
use crate::store::mysql::relations::{self, SendRelation};

/// A group as the send path sees it.
#[derive(Debug)]
pub(crate) struct GroupView {
    pub group: Group,
    pub members: HashMap<UserId, Membership>,
}

impl GroupView {
    pub(crate) fn member_ids(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }

    /// Members who want live message pushes (do-not-disturb ones do not).
    pub(crate) fn push_member_ids(&self) -> Vec<UserId> {
        self.members
            .iter()
            .filter(|(_, m)| m.dnd == 0)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A change that makes cached entries wrong.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Change {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u64>,
    /// Unordered user pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<[u64; 2]>,
}

impl Change {
    pub(crate) fn group(group: GroupId) -> Self {
        Self {
            groups: vec![group.0],
            pairs: Vec::new(),
        }
    }

    pub(crate) fn pair(a: UserId, b: UserId) -> Self {
        Self {
            groups: Vec::new(),
            pairs: vec![[a.0, b.0]],
        }
    }
}

struct Entry<T> {
    value: T,
    loaded: Instant,
}

struct Map<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    /// Keys being read again in the background.
    refreshing: Mutex<HashSet<K>>,
}

impl<K: Eq + Hash + Copy, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
        }
    }

    /// True when the caller is the one to refresh `key`.
    fn begin_refresh(&self, key: K) -> bool {
        self.refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key)
    }

    fn end_refresh(&self, key: &K) {
        self.refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        // Each change is one insert or remove: a poisoned lock still holds a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value and its age.
    fn get(&self, key: &K) -> Option<(V, Duration)> {
        self.lock()
            .get(key)
            .map(|e| (e.value.clone(), e.loaded.elapsed()))
    }

    fn put(&self, key: K, value: V, capacity: usize, keep_for: Duration) {
        let mut entries = self.lock();
        if entries.len() >= capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| e.loaded.elapsed() < keep_for);
            if entries.len() >= capacity {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                loaded: Instant::now(),
            },
        );
    }

    fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

pub(crate) struct Directory {
    groups: Map<GroupId, Option<Arc<GroupView>>>,
    pairs: Map<(UserId, UserId), SendRelation>,
    epoch: AtomicU64,
    ttl: Duration,
    keep_for: Duration,
    capacity: usize,
}

/// A value read from MySQL, and whether it may be kept (unknown ids are not: they may exist
/// later).
type Loaded<V> = AppResult<(V, bool)>;

impl Directory {
    pub(crate) fn new(settings: &CacheSettings) -> Arc<Self> {
        Arc::new(Self {
            groups: Map::new(),
            pairs: Map::new(),
            epoch: AtomicU64::new(0),
            ttl: Duration::from_secs(settings.ttl_secs),
            keep_for: Duration::from_secs(settings.serve_stale_secs.max(settings.ttl_secs)),
            capacity: settings.max_entries.get(),
        })
    }

    /// A group that exists (dissolved or not) with its members; None for an unknown group.
    pub(crate) async fn group(
        self: &Arc<Self>,
        pool: &MySqlPool,
        id: GroupId,
    ) -> AppResult<Option<Arc<GroupView>>> {
        let pool = pool.clone();
        self.lookup(|d| &d.groups, id, move || load_group(pool.clone(), id))
            .await
    }

    /// What decides a 1:1 send from `from` to `to`.
    pub(crate) async fn send_relation(
        self: &Arc<Self>,
        pool: &MySqlPool,
        from: UserId,
        to: UserId,
    ) -> AppResult<SendRelation> {
        let pool = pool.clone();
        self.lookup(
            |d| &d.pairs,
            (from, to),
            move || {
                let pool = pool.clone();
                async move {
                    let relation = relations::send_relation(&pool, from, to).await?;
                    Ok((relation, relation.recipient_exists))
                }
            },
        )
        .await
    }

    /// Forgets what `change` makes wrong.
    pub(crate) fn forget(&self, change: &Change) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for group in &change.groups {
            self.groups.remove(&GroupId(*group));
        }
        for [a, b] in &change.pairs {
            self.pairs.remove(&(UserId(*a), UserId(*b)));
            self.pairs.remove(&(UserId(*b), UserId(*a)));
        }
    }

    /// Forgets everything (after missing changes, e.g. while the relay was unsubscribed).
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.groups.clear();
        self.pairs.clear();
    }

    /// A fresh entry as it is; an old one as it is while `load` refreshes it in the background;
    /// otherwise what `load` reads.
    async fn lookup<K, V, Fut>(
        self: &Arc<Self>,
        map: fn(&Self) -> &Map<K, V>,
        key: K,
        load: impl Fn() -> Fut,
    ) -> AppResult<V>
    where
        K: Eq + Hash + Copy + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        Fut: Future<Output = Loaded<V>> + Send + 'static,
    {
        if let Some((value, age)) = map(self).get(&key) {
            if age < self.ttl {
                return Ok(value);
            }
            if age < self.keep_for {
                if map(self).begin_refresh(key) {
                    let this = self.clone();
                    let epoch = self.epoch.load(Ordering::Acquire);
                    let read = load();
                    tokio::spawn(async move {
                        match read.await {
                            Ok(loaded) => this.keep(map, key, epoch, loaded),
                            Err(err) => {
                                tracing::warn!(error = %err, "cached relation not refreshed");
                            }
                        }
                        map(&this).end_refresh(&key);
                    });
                }
                return Ok(value);
            }
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let (value, keep) = load().await?;
        self.keep(map, key, epoch, (value.clone(), keep));
        Ok(value)
    }

    /// Stores a value read at `epoch`, unless it may not be kept or a change came in since
    /// (then the entry is dropped: the next lookup reads it again).
    fn keep<K, V>(&self, map: fn(&Self) -> &Map<K, V>, key: K, epoch: u64, (value, keep): (V, bool))
    where
        K: Eq + Hash + Copy,
        V: Clone,
    {
        if keep && self.epoch.load(Ordering::Acquire) == epoch {
            map(self).put(key, value, self.capacity, self.keep_for);
        } else {
            map(self).remove(&key);
        }
    }
}

async fn load_group(pool: MySqlPool, id: GroupId) -> Loaded<Option<Arc<GroupView>>> {
    let Some(group) = groups::find(&pool, id).await? else {
        return Ok((None, false));
    };
    let members = groups::members(&pool, id)
        .await?
        .into_iter()
        .map(|m| (UserId(m.user_id), m))
        .collect();
    Ok((Some(Arc::new(GroupView { group, members })), true))
}
