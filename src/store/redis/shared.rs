//! One multiplexed Redis connection shared by the hot paths (anti-spam on every send, seqs,
//! delivery, presence). The pool checks each connection it hands out with a `PING`, which
//! doubles the round trips of an operation that is one script; a multiplexed connection
//! carries any number of concurrent commands, so the hot paths take one from the pool once and
//! share it. After a command fails on it, the next caller takes a fresh one from the pool (which
//! reconnects), so a Redis restart costs the commands in flight and nothing more.

use std::sync::{Arc, Mutex, PoisonError};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{Connection, Pool, PoolError};

#[derive(Clone)]
pub(crate) struct Shared {
    pool: Pool,
    current: Arc<Mutex<Current>>,
}

#[derive(Default)]
struct Current {
    conn: Option<MultiplexedConnection>,
    /// Bumped each time a connection is taken, so a failure forgets only the one it happened on.
    generation: u64,
}

impl Shared {
    pub(crate) fn new(pool: Pool) -> Self {
        Self {
            pool,
            current: Arc::default(),
        }
    }

    /// The pool itself, for work that wants a connection of its own (blocking commands,
    /// transactions) or is not on a hot path.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The shared connection (taken from the pool if there is none).
    pub(crate) async fn get(&self) -> Result<Link, PoolError> {
        {
            let current = self.lock();
            if let Some(conn) = &current.conn {
                return Ok(self.link(conn.clone(), current.generation));
            }
        }
        let taken = Connection::take(self.pool.get().await?);
        let mut current = self.lock();
        // Another caller may have taken one meanwhile: use theirs, drop ours.
        let conn = match &current.conn {
            Some(theirs) => theirs.clone(),
            None => {
                current.conn = Some(taken.clone());
                current.generation += 1;
                taken
            }
        };
        Ok(self.link(conn, current.generation))
    }

    fn link(&self, conn: MultiplexedConnection, generation: u64) -> Link {
        Link {
            conn,
            generation,
            shared: self.current.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle on the shared connection; use it like any connection.
pub(crate) struct Link {
    conn: MultiplexedConnection,
    generation: u64,
    shared: Arc<Mutex<Current>>,
}

impl Link {
    /// A command failed: the connection may be broken, so the next caller takes a fresh one.
    fn forget(&self) {
        let mut current = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation == self.generation {
            current.conn = None;
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.conn.req_packed_command(cmd).await;
            if reply.is_err() {
                self.forget();
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let reply = self.conn.req_packed_commands(cmd, offset, count).await;
            if reply.is_err() {
                self.forget();
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
