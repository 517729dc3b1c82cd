//! The sweep of uploads no message carries: every `files.sweep_interval_secs`, the files
//! unreferenced for longer than `files.orphan_ttl_hours` are deleted (their row is claimed
//! first, which no send can then mark, then their bytes go, then the row). Safe with several
//! processes sweeping: a row is claimed by one of them only, and only while no message is
//! marked as carrying it. It also removes the bytes of uploads that never completed, and
//! clears marks that no stored message backs.

use std::time::Duration;

use chrono::Utc;

use crate::chat::Chat;
use crate::chat::files::SEND_SETTLE_MS;
use crate::error::AppResult;
use crate::store::mongo::messages;
use crate::store::mysql::files as file_rows;

/// Orphans looked at per query.
const BATCH: u32 = 100;
/// What finishing an upload may take after its body arrived (an image slot, the decode, the
/// thumbnail, the record), beyond `files.upload_timeout_secs`, before it counts as abandoned.
const FINISH_SECS: i64 = 600;

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
    /// One pass of the sweep: deletes the uploads unreferenced for longer than
    /// `files.orphan_ttl_hours`, clears marks no message backs, and removes what abandoned
    /// uploads left. Returns how many files it deleted.
    pub(crate) async fn sweep_orphans(&self) -> AppResult<usize> {
        self.check_settled_marks().await?;
        let f = &self.settings.files;
        let ttl_hours = i64::try_from(f.orphan_ttl_hours.get()).unwrap_or(i64::MAX);
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
                if file_rows::claim_orphan(&self.mysql, file.id, cutoff).await? {
                    progressed = true;
                    if self.remove_claimed(file.id).await {
                        deleted += 1;
                    }
                }
            }
            if !full || !progressed {
                break;
            }
        }
        // Uploads pending for longer than an upload may take: their request is over (a crash,
        // a claimed file whose bytes could not be deleted).
        let timeout = i64::try_from(f.upload_timeout_secs.get()).unwrap_or(i64::MAX);
        // (An upload still finishing past its deadline: waiting for an image slot, decoding.)
        let abandoned_before = Utc::now()
            - chrono::Duration::seconds(timeout.min(86_400 * 365).saturating_add(FINISH_SECS));
        for id in file_rows::abandoned(&self.mysql, abandoned_before, BATCH).await? {
            if file_rows::claim_abandoned(&self.mysql, id, abandoned_before).await?
                && self.remove_claimed(id).await
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Marks older than a send can take: when no message carries the file, the mark was left by
    /// a send that failed, and the file becomes an orphan from now on.
    async fn check_settled_marks(&self) -> AppResult<()> {
        let before = Utc::now().timestamp_millis() - 12 * SEND_SETTLE_MS;
        for (id, marked_at) in file_rows::settled_marks(&self.mysql, before, BATCH).await? {
            if messages::is_carried(&self.mongo, id).await? {
                file_rows::confirm_mark(&self.mysql, id, marked_at).await?;
            } else {
                file_rows::mark_orphaned(&self.mysql, id, before).await?;
            }
        }
        Ok(())
    }
}
