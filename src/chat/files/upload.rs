//! Taking an upload in: [`Chat::begin_upload`] checks the anti-spam rule `uploads` and the
//! room left in the quota, then [`Upload::write`] streams the bytes to the file store (never
//! more than a chunk held here, the hash taken on the way, `files.max_bytes` and the quota
//! checked as the bytes come), and [`Upload::finish`] sniffs the type from the first bytes,
//! measures and thumbnails images, and records the file within the quota. An upload dropped
//! or failed before `finish` returns leaves nothing behind.

use sha2::{Digest, Sha256};

use crate::antispam::EventRule;
use crate::chat::Chat;
use crate::chat::files::{images, thumbnail_key};
use crate::domain::{FileId, Timestamp, UserId, sanitize_file_name};
use crate::error::{AppError, AppResult};
use crate::store::files::FileWriter;
use crate::store::mysql::files::{self as file_rows, FileRecord};

/// The first bytes kept for sniffing the type (every signature `infer` knows fits).
const HEAD_BYTES: usize = 8192;

/// An upload in progress.
pub(crate) struct Upload<'a> {
    chat: &'a Chat,
    owner: UserId,
    id: FileId,
    writer: Option<FileWriter>,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    /// `files.max_bytes`.
    max_bytes: u64,
    /// What the owner's quota leaves when the upload began.
    room: u64,
}

impl Chat {
    /// Starts an upload of `owner`'s: 429 `rate_limited` (rule `uploads`) over the rule, 413
    /// `quota_exceeded` when the quota is used up already.
    pub(crate) async fn begin_upload(&self, owner: UserId) -> AppResult<Upload<'_>> {
        self.antispam
            .check_event(owner, EventRule::Uploads, &owner.to_string(), None)
            .await?;
        let quota = self.settings.files.quota_bytes_per_user.get();
        let used = file_rows::used_bytes(&self.mysql, owner).await?;
        if used >= quota {
            return Err(AppError::QuotaExceeded { quota });
        }
        let id = FileId::new();
        let writer = self.files.create(&id.to_hex()).await?;
        Ok(Upload {
            chat: self,
            owner,
            id,
            writer: Some(writer),
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(HEAD_BYTES),
            max_bytes: self.settings.files.max_bytes.get(),
            room: quota - used,
        })
    }
}

impl Upload<'_> {
    /// The next bytes of the file: 413 `payload_too_large` past `files.max_bytes`, 413
    /// `quota_exceeded` past the room in the quota (nothing is kept then).
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        let size = self.size + bytes.len() as u64;
        if size > self.max_bytes {
            return Err(AppError::PayloadTooLarge {
                limit: usize::try_from(self.max_bytes).unwrap_or(usize::MAX),
            });
        }
        if size > self.room {
            return Err(AppError::QuotaExceeded {
                quota: self.chat.settings.files.quota_bytes_per_user.get(),
            });
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("upload written after its end")))?;
        writer.write(bytes).await?;
        self.hasher.update(bytes);
        let keep = (HEAD_BYTES - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..keep]);
        self.size = size;
        Ok(())
    }

    /// Completes the upload as `name` (sanitised): 400 for an empty file, 400 `invalid_image`
    /// for an image that does not decode or is too large, 413 `quota_exceeded` when uploads
    /// finishing meanwhile used the room up.
    pub(crate) async fn finish(mut self, name: Option<&str>) -> AppResult<FileRecord> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("upload finished twice")))?;
        if self.size == 0 {
            writer.abort().await;
            return Err(AppError::validation("file", "the file is empty"));
        }
        writer.finish().await?;
        let chat = self.chat;
        let key = self.id.to_hex();
        let mime = sniff(&self.head);
        let measured = match images::format_of(&mime) {
            Some(format) => match self.measure(format).await {
                Ok(m) => Some(m),
                Err(err) => {
                    self.forget(&key, false).await;
                    return Err(err);
                }
            },
            None => None,
        };
        let mut thumbnail_size = None;
        if let Some(m) = &measured {
            if let Err(err) = chat.files.put(&thumbnail_key(self.id), &m.thumbnail).await {
                self.forget(&key, false).await;
                return Err(err);
            }
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
            referenced: false,
            created_at: Timestamp::now(),
        };
        let quota = chat.settings.files.quota_bytes_per_user.get();
        match file_rows::insert_within_quota(&chat.mysql, &record, quota).await {
            Ok(true) => {
                chat.metrics.uploaded(record.size);
                Ok(record)
            }
            Ok(false) => {
                self.forget(&key, thumbnail_size.is_some()).await;
                Err(AppError::QuotaExceeded { quota })
            }
            Err(err) => {
                self.forget(&key, thumbnail_size.is_some()).await;
                Err(err)
            }
        }
    }

    /// Removes what was written so far (on a refused or failed upload the caller ends).
    pub(crate) async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
    }

    /// Reads the image back and measures it on the blocking pool, at most
    /// `files.image_workers` at once per process.
    async fn measure(&self, format: image::ImageFormat) -> AppResult<images::Measured> {
        let chat = self.chat;
        let _slot = chat
            .image_slots
            .acquire()
            .await
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

    async fn forget(&self, key: &str, thumbnail: bool) {
        let store = &self.chat.files;
        if let Err(err) = store.delete(key).await {
            tracing::warn!(error = %err, file_id = key, "removing a refused upload failed");
        }
        if thumbnail && let Err(err) = store.delete(&thumbnail_key(self.id)).await {
            tracing::warn!(error = %err, file_id = key, "removing a refused upload's thumbnail failed");
        }
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
}
