//! The connections this process holds, by user. Delivery never waits on a connection: a full
//! outbound queue (in frames or bytes, see [`super::outbound`]) means the client reads too
//! slowly, and it is told to go (it resumes with op 7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::domain::UserId;
use crate::hub::outbound::{Frame, Outbound, Refused};

pub(crate) type ConnId = Arc<str>;

/// Why the server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The outbound queue was full.
    SlowConsumer,
    /// The session was revoked (logout, password change) or expired.
    Revoked,
    /// The server is shutting down.
    Restart,
}

#[derive(Clone)]
pub(crate) struct LocalConn {
    pub conn_id: ConnId,
    pub login_id: Arc<str>,
    pub outbound: Arc<Outbound>,
    pub kick: mpsc::Sender<Kick>,
}

#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<UserId, Vec<LocalConn>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Vec<LocalConn>>> {
        // A panic while holding this lock cannot leave the map half-updated (each change is one
        // push or retain), so a poisoned lock is still safe to use.
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add(&self, user: UserId, conn: LocalConn) {
        self.lock().entry(user).or_default().push(conn);
    }

    pub(crate) fn remove(&self, user: UserId, conn_id: &str) {
        let mut conns = self.lock();
        if let Some(list) = conns.get_mut(&user) {
            list.retain(|c| &*c.conn_id != conn_id);
            if list.is_empty() {
                conns.remove(&user);
            }
        }
    }

    /// Queues `event` for the users' connections here (all connections when `users` is None),
    /// except `skip`.
    pub(crate) fn dispatch(&self, users: Option<&[u64]>, skip: Option<&str>, event: &Arc<str>) {
        let conns = self.lock();
        let mut offer = |conn: &LocalConn| {
            if Some(&*conn.conn_id) == skip {
                return;
            }
            if let Err(Refused::Full) = conn.outbound.push(Frame::Event(event.clone())) {
                let _ = conn.kick.try_send(Kick::SlowConsumer);
            }
        };
        match users {
            Some(users) => {
                for user in users {
                    for conn in conns.get(&UserId(*user)).into_iter().flatten() {
                        offer(conn);
                    }
                }
            }
            None => conns.values().flatten().for_each(&mut offer),
        }
    }

    /// Tells the connections of these logins to close.
    pub(crate) fn kick_logins(&self, login_ids: &[String], why: Kick) {
        let conns = self.lock();
        for conn in conns.values().flatten() {
            if login_ids.iter().any(|l| **l == *conn.login_id) {
                let _ = conn.kick.try_send(why);
            }
        }
    }

    pub(crate) fn kick_all(&self, why: Kick) {
        for conn in self.lock().values().flatten() {
            let _ = conn.kick.try_send(why);
        }
    }

    /// Forgets connections whose task is gone without detaching (it panicked); returns them.
    pub(crate) fn prune_closed(&self) -> Vec<(UserId, ConnId)> {
        let mut gone = Vec::new();
        let mut conns = self.lock();
        for (user, list) in conns.iter_mut() {
            list.retain(|c| {
                let closed = c.outbound.is_ended();
                if closed {
                    gone.push((*user, c.conn_id.clone()));
                }
                !closed
            });
        }
        conns.retain(|_, list| !list.is_empty());
        gone
    }

    /// (user, connection, login) for every connection here.
    pub(crate) fn snapshot(&self) -> Vec<(UserId, ConnId, Arc<str>)> {
        self.lock()
            .iter()
            .flat_map(|(user, list)| {
                list.iter()
                    .map(|c| (*user, c.conn_id.clone(), c.login_id.clone()))
            })
            .collect()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}
