//! A process-local memo of idempotent work already done (a read position made, say).

/// Things some idempotent work was done for once (a read position made, say), remembered by
/// one process so it is not done again; forgotten all at once past `KNOWN_MAX` entries (only
/// the work's cost is saved, never its effect).
pub(crate) struct Known<T>(std::sync::Mutex<std::collections::HashSet<T>>);

const KNOWN_MAX: usize = 200_000;

impl<T> Default for Known<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashSet::new()))
    }
}

impl<T: std::hash::Hash + Eq> Known<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<T>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, item: &T) -> bool {
        self.lock().contains(item)
    }

    pub(crate) fn insert_all(&self, items: impl IntoIterator<Item = T>) {
        let mut known = self.lock();
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.extend(items);
    }
}
