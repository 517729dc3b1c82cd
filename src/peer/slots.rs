//! Connection caps: at most `ws.max_connections_per_ip` open WebSockets per client IP (an IPv6
//! client by its /64) and `ws.max_connections` in all, per process. A slot is taken before the
//! upgrade and held by the connection task; dropping the guard frees it, however the socket ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{AppError, AppResult};
use crate::peer::limit_key;

pub(crate) struct Slots {
    per_ip: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place; released on drop.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: Option<IpAddr>,
}

impl Slots {
    pub(crate) fn new(per_ip: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_ip,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Every change is a pair of counter updates made under the lock without anything that
        // can panic in between, so a poisoned lock still holds consistent counts.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for a connection from `ip` (None: the peer address is unknown, which only
    /// the global cap applies to).
    pub(crate) fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> AppResult<Slot> {
        // Counted like every per-IP limit: IPv6 by the /64.
        let ip = ip.map(limit_key);
        let mut open = self.lock();
        if open.total >= self.total {
            return Err(AppError::ServerBusy);
        }
        if let Some(ip) = ip {
            let count = open.by_ip.entry(ip).or_default();
            if *count >= self.per_ip {
                return Err(AppError::TooManyConnections { max: self.per_ip });
            }
            *count += 1;
        }
        open.total += 1;
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// Open connections.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(count) = open.by_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_in_all_and_frees_on_drop() {
        let slots = Slots::new(2, 3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = slots.acquire(Some(a)).unwrap();
        let _a2 = slots.acquire(Some(a)).unwrap();
        assert!(matches!(
            slots.acquire(Some(a)),
            Err(AppError::TooManyConnections { max: 2 })
        ));
        let _b1 = slots.acquire(Some(b)).unwrap();
        assert!(matches!(slots.acquire(Some(b)), Err(AppError::ServerBusy)));
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _a3 = slots.acquire(Some(a)).unwrap();
        assert_eq!(slots.open(), 3);
    }
}
