//! The sweep of uploads no message carries: every `files.sweep_interval_secs`, the files
//! unreferenced for longer than `files.orphan_ttl_hours` are deleted (their row first, then
//! their bytes). Safe with several processes sweeping: a row is deleted by one of them only,
//! and only while no message is marked as carrying it.

use std::time::Duration;

use chrono::Utc;

use crate::chat::Chat;
use crate::error::AppResult;
use crate::store::mongo::messages;
use crate::store::mysql::files as file_rows;

/// Orphans looked at per query.
const BATCH: u32 = 100;

/// Runs the sweep for as long as the process runs.
pub(crate) fn start(chat: Chat) {
    let every = Duration::from_secs(chat.settings.files.sweep_interval_secs.get());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match chat.sweep_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "swept uploads no message carries"),
                Err(err) => {
                    tracing::warn!(error = %err, "the sweep of unreferenced uploads failed")
                }
            }
        }
    });
}

impl Chat {
    /// Deletes the uploads unreferenced for longer than `files.orphan_ttl_hours`; returns how
    /// many.
    pub(crate) async fn sweep_orphans(&self) -> AppResult<usize> {
        let ttl_hours =
            i64::try_from(self.settings.files.orphan_ttl_hours.get()).unwrap_or(i64::MAX);
        let cutoff = Utc::now() - chrono::Duration::hours(ttl_hours.min(24 * 365 * 100));
        let mut deleted = 0;
        loop {
            let batch = file_rows::orphans(&self.mysql, cutoff, BATCH).await?;
            let full = batch.len() == BATCH as usize;
            let mut progressed = false;
            for file in batch {
                // A message stored without the mark (a mark lost to a failure): keep the file.
                if messages::is_carried(&self.mongo, file.id).await? {
                    file_rows::mark_referenced(&self.mysql, file.id).await?;
                    progressed = true;
                    continue;
                }
                if file_rows::delete_unreferenced(&self.mysql, file.id).await? {
                    self.delete_bytes(&file).await;
                    deleted += 1;
                    progressed = true;
                }
            }
            if !full || !progressed {
                return Ok(deleted);
            }
        }
    }
}
