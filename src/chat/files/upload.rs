//! Taking an upload in: [`Chat::begin_upload`] checks the anti-spam rule `uploads`, the
//! uploads the user has in progress and what their quota leaves, and records the upload as
//! pending; [`Upload::write`] streams the bytes to the file store (never more than a chunk held
//! here, the hash taken on the way, `files.max_bytes` and the quota checked as the bytes come,
//! counting the user's other uploads in progress); [`Upload::finish`] sniffs the type from the
//! first bytes, measures and thumbnails images, and completes the record within the quota.
//! A refused or failed upload leaves nothing behind; one cut off by a crash leaves a pending
//! record whose bytes the sweep removes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::chat::files::{images, thumbnail_key};
use crate::domain::{FileId, Timestamp, UserId, sanitize_file_name};
use crate::error::{AppError, AppResult};
use crate::store::files::FileWriter;
use crate::store::mysql::files::{self as file_rows, Completion, FileRecord};

/// The first bytes kept for sniffing the type (every signature `infer` knows fits).
const HEAD_BYTES: usize = 8192;
/// How long an upload waits for an image slot before the server says it is busy.
const IMAGE_SLOT_WAIT: Duration = Duration::from_secs(30);

/// The uploads in progress on this process, per user: how many, and the bytes they have
/// written (counted against the quota before they are complete).
#[derive(Default)]
pub(crate) struct InFlight {
    users: Mutex<HashMap<UserId, Arc<UserUploads>>>,
    /// Uploads in progress on this process, of all users.
    total: AtomicU64,
}

/// Why no slot was given.
#[derive(Debug, PartialEq, Eq)]
enum Full {
    /// The user has their most uploads in progress.
    User,
    /// The process has its most.
    Process,
}

#[derive(Default)]
struct UserUploads {
    count: AtomicU64,
    bytes: AtomicU64,
}

/// One upload's place in [`InFlight`]; gives it back (and its bytes) when dropped.
struct Slot {
    registry: Arc<InFlight>,
    user: UserId,
    uploads: Arc<UserUploads>,
    written: u64,
}

impl InFlight {
    fn take(self: &Arc<Self>, user: UserId, per_user: usize, total: usize) -> Result<Slot, Full> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= total as u64 {
            return Err(Full::Process);
        }
        let uploads = users.entry(user).or_default().clone();
        if uploads.count.load(Ordering::Relaxed) >= per_user as u64 {
            return Err(Full::User);
        }
        uploads.count.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            registry: self.clone(),
            user,
            uploads,
            written: 0,
        })
    }
}

impl Slot {
    /// Adds `n` bytes; returns the bytes all of the user's uploads in progress have written.
    fn add(&mut self, n: u64) -> u64 {
        self.written += n;
        self.uploads.bytes.fetch_add(n, Ordering::Relaxed) + n
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut users = self
            .registry
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.uploads
            .bytes
            .fetch_sub(self.written, Ordering::Relaxed);
        if self.uploads.count.fetch_sub(1, Ordering::Relaxed) == 1 {
            users.remove(&self.user);
        }
        self.registry.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upload in progress.
pub(crate) struct Upload<'a> {
    chat: &'a Chat,
    owner: UserId,
    id: FileId,
    writer: Option<FileWriter>,
    slot: Slot,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    /// `files.max_bytes`.
    max_bytes: u64,
    /// The owner's complete uploads' bytes when the upload began.
    used: u64,
    quota: u64,
}

impl Chat {
    /// Starts an upload of `owner`'s: 429 `rate_limited` (rule `uploads`, or
    /// `uploads_in_flight` with too many in progress), 503 `server_busy` when the process has
    /// `files.max_uploads_in_flight`, 413 `quota_exceeded` when the quota (bytes or files) is
    /// used up already.
    pub(crate) async fn begin_upload(&self, owner: UserId) -> AppResult<Upload<'_>> {
        let f = &self.settings.files;
        let slot = self
            .uploads_in_flight
            .take(
                owner,
                f.max_uploads_in_flight_per_user.get(),
                f.max_uploads_in_flight.get(),
            )
            .map_err(|full| match full {
                Full::User => AppError::RuleLimited {
                    rule: "uploads_in_flight",
                    retry_after_secs: 1,
                },
                Full::Process => AppError::ServerBusy,
            })?;
        self.antispam
            .check_event(owner, EventRule::Uploads, EventScope::Actor, None)
            .await?;
        let quota = f.quota_bytes_per_user.get();
        let (count, used) = file_rows::usage(&self.mysql, owner).await?;
        if used >= quota || count >= f.max_files_per_user.get() {
            return Err(AppError::QuotaExceeded { quota });
        }
        let id = FileId::new();
        file_rows::begin(&self.mysql, id, owner).await?;
        let writer = match self.files.create(&id.to_hex()).await {
            Ok(w) => w,
            Err(err) => {
                let _ = file_rows::delete_incomplete(&self.mysql, id).await;
                return Err(err);
            }
        };
        Ok(Upload {
            chat: self,
            owner,
            id,
            writer: Some(writer),
            slot,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(HEAD_BYTES),
            max_bytes: f.max_bytes.get(),
            used,
            quota,
        })
    }
}

impl Upload<'_> {
    /// The next bytes of the file: 413 `payload_too_large` past `files.max_bytes`, 413
    /// `quota_exceeded` past the room in the quota (the user's other uploads in progress
    /// counted). The caller then aborts.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        let n = bytes.len() as u64;
        if self.size + n > self.max_bytes {
            return Err(AppError::PayloadTooLarge {
                limit: usize::try_from(self.max_bytes).unwrap_or(usize::MAX),
            });
        }
        let in_flight = self.slot.add(n);
        if self.used.saturating_add(in_flight) > self.quota {
            return Err(AppError::QuotaExceeded { quota: self.quota });
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("upload written after its end")))?;
        writer.write(bytes).await?;
        self.hasher.update(bytes);
        let keep = (HEAD_BYTES - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..keep]);
        self.size += n;
        Ok(())
    }

    /// Completes the upload as `name` (sanitised): 400 for an empty file, 400 `invalid_image`
    /// for an image that does not decode or is too large, 413 `quota_exceeded` when uploads
    /// finishing meanwhile used the room up. Nothing is kept when it fails.
    pub(crate) async fn finish(mut self, name: Option<&str>) -> AppResult<FileRecord> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("upload finished twice")))?;
        if self.size == 0 {
            writer.abort().await;
            self.forget().await;
            return Err(AppError::validation("file", "the file is empty"));
        }
        if let Err(err) = writer.finish().await {
            self.forget().await;
            return Err(err);
        }
        let result = self.complete(name).await;
        if result.is_err() {
            self.forget().await;
        }
        result
    }

    async fn complete(&mut self, name: Option<&str>) -> AppResult<FileRecord> {
        let chat = self.chat;
        let mime = sniff(&self.head);
        let measured = match images::format_of(&mime) {
            Some(format) => Some(self.measure(format).await?),
            None => None,
        };
        let mut thumbnail_size = None;
        if let Some(m) = &measured {
            chat.files
                .put(&thumbnail_key(self.id), &m.thumbnail)
                .await?;
            thumbnail_size = u32::try_from(m.thumbnail.len()).ok();
        }
        let record = FileRecord {
            id: self.id,
            owner: self.owner,
            mime,
            size: self.size,
            name: sanitize_file_name(name.unwrap_or("")),
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
            width: measured.as_ref().map(|m| m.width),
            height: measured.as_ref().map(|m| m.height),
            thumbnail_size,
            created_at: Timestamp::now(),
        };
        let f = &chat.settings.files;
        match file_rows::complete_within_quota(
            &chat.mysql,
            &record,
            self.quota,
            f.max_files_per_user.get(),
        )
        .await?
        {
            Completion::Done => {
                chat.metrics.uploaded(record.size);
                Ok(record)
            }
            Completion::OverQuota => Err(AppError::QuotaExceeded { quota: self.quota }),
            Completion::Gone => Err(AppError::RequestTimeout(
                "the upload took too long and was given up".into(),
            )),
        }
    }

    /// Removes what was written so far (on a refused or failed upload the caller ends).
    pub(crate) async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
        self.forget().await;
    }

    /// Reads the image back and measures it on the blocking pool, at most
    /// `files.image_workers` at once per process (503 when none is free for a while).
    async fn measure(&self, format: image::ImageFormat) -> AppResult<images::Measured> {
        let chat = self.chat;
        let _slot = tokio::time::timeout(IMAGE_SLOT_WAIT, chat.image_slots.acquire())
            .await
            .map_err(|_| AppError::ServerBusy)?
            .map_err(|_| AppError::Internal(anyhow::anyhow!("image slots closed")))?;
        let bytes = chat.files.read_all(&self.id.to_hex(), self.size).await?;
        let max_pixels = chat.settings.files.max_image_pixels.get();
        let thumbnail_px = chat.settings.files.thumbnail_px.get();
        tokio::task::spawn_blocking(move || {
            images::measure(&bytes, format, max_pixels, thumbnail_px)
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("measuring an image: {e}")))?
    }

    /// Deletes what the upload wrote and its record (the sweep finishes what fails).
    async fn forget(&self) {
        self.chat.remove_claimed(self.id).await;
    }
}

/// The MIME type the bytes say (their signature), never what the client says: text when the
/// first bytes are UTF-8 without NULs, else `application/octet-stream`.
pub(crate) fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut in the middle of a character by the head's end: still text.
        Err(e) => e.error_len().is_none(),
    };
    if text && !head.contains(&0) {
        "text/plain".to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(
            sniff(b"<!DOCTYPE html><html><body>hi</body></html>"),
            "text/html"
        );
        assert_eq!(sniff("plain words, é".as_bytes()), "text/plain");
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
    }

    #[test]
    fn hashes_print_as_lowercase_hex() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn in_flight_slots_are_counted_per_user_and_given_back() {
        let registry = Arc::new(InFlight::default());
        let (a, b) = (UserId(1), UserId(2));
        let mut first = registry.take(a, 2, 10).unwrap();
        let mut second = registry.take(a, 2, 10).unwrap();
        assert_eq!(
            registry.take(a, 2, 10).err(),
            Some(Full::User),
            "a third at once"
        );
        assert!(registry.take(b, 2, 10).is_ok(), "others have their own");
        assert_eq!(
            registry.take(b, 2, 2).err(),
            Some(Full::Process),
            "the process is full"
        );
        assert_eq!(first.add(10), 10);
        assert_eq!(second.add(5), 15, "the user's uploads in progress add up");
        drop(first);
        assert_eq!(second.add(1), 6, "a finished one gives its bytes back");
        assert!(registry.take(a, 2, 10).is_ok());
        drop(second);
        assert!(
            registry.users.lock().unwrap().is_empty(),
            "nothing left behind"
        );
        // The process-wide count gives its places back too.
        let held: Vec<Slot> = (0..3)
            .map(|n| registry.take(UserId(10 + n), 2, 3).unwrap())
            .collect();
        assert_eq!(registry.take(UserId(20), 2, 3).err(), Some(Full::Process));
        drop(held);
        let again: Vec<Slot> = (0..3)
            .map(|n| registry.take(UserId(30 + n), 2, 3).unwrap())
            .collect();
        assert_eq!(again.len(), 3, "every finished upload gave its place back");
    }
}
