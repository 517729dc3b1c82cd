//! The `files` table: what is known of each upload (the bytes are in the file store under the
//! same id). A row is `UPLOADING` from the start of an upload and made `COMPLETE` when its bytes
//! are all stored ([`complete_within_quota`]), under a lock on the owner's `users` row, so
//! uploads finishing together cannot overshoot the quota; a row to delete is first claimed
//! (`DELETING`), then its bytes go, then the row. Only complete rows are seen by anything else.

/// `state` of a complete upload.
const COMPLETE: i8 = 0;
/// `state` of an upload in progress (or cut off by a crash).
const UPLOADING: i8 = 1;
/// `state` of a file whose bytes are being deleted.
const DELETING: i8 = 2;

/// `referenced_at` of a mark the sweep confirmed (a stored message carries the file).
const CONFIRMED: i64 = -1;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::MySqlPool;

use crate::domain::{FileId, Timestamp, UserId};
use crate::error::AppResult;

/// An upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecord {
    pub id: FileId,
    pub owner: UserId,
    /// Sniffed from the bytes.
    pub mime: String,
    pub size: u64,
    /// Sanitised.
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Images only.
    pub width: Option<u32>,
    /// Images only.
    pub height: Option<u32>,
    /// The bytes of the thumbnail (images that decode), None without one.
    pub thumbnail_size: Option<u32>,
    pub created_at: Timestamp,
}

impl FileRecord {
    pub(crate) fn has_thumbnail(&self) -> bool {
        self.thumbnail_size.is_some()
    }
}

#[derive(sqlx::FromRow)]
struct FileRow {
    id: String,
    owner_id: u64,
    mime: String,
    size: u64,
    name: String,
    sha256: String,
    width: Option<u32>,
    height: Option<u32>,
    thumbnail_size: Option<u32>,
    created_at: NaiveDateTime,
}

impl FileRow {
    fn into_record(self) -> Option<FileRecord> {
        Some(FileRecord {
            id: FileId::parse(&self.id)?,
            owner: UserId(self.owner_id),
            mime: self.mime,
            size: self.size,
            name: self.name,
            sha256: self.sha256,
            width: self.width,
            height: self.height,
            thumbnail_size: self.thumbnail_size,
            created_at: self.created_at.and_utc().into(),
        })
    }
}

const COLUMNS: &str =
    "id, owner_id, mime, size, name, sha256, width, height, thumbnail_size, created_at";

/// SUM is a DECIMAL in MySQL; cast back to the column's type.
const USAGE_SQL: &str = "SELECT CAST(COUNT(*) AS UNSIGNED), CAST(COALESCE(SUM(size), 0) AS UNSIGNED) \
     FROM files WHERE owner_id = ? AND state = 0";

/// How many complete uploads the owner has, and the bytes they take.
pub(crate) async fn usage(pool: &MySqlPool, owner: UserId) -> AppResult<(u64, u64)> {
    Ok(sqlx::query_as(USAGE_SQL)
        .bind(owner.0)
        .fetch_one(pool)
        .await?)
}

/// Records an upload that starts now (pending until completed).
pub(crate) async fn begin(pool: &MySqlPool, id: FileId, owner: UserId) -> AppResult<()> {
    let now = Utc::now().naive_utc();
    sqlx::query(
        "INSERT INTO files (id, owner_id, state, orphan_since, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id.to_hex())
    .bind(owner.0)
    .bind(UPLOADING)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// How completing an upload went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    Done,
    /// The owner's uploads would exceed the quota (bytes) or the count.
    OverQuota,
    /// The pending row is gone (the sweep took it for an abandoned upload).
    Gone,
}

/// Completes the pending row of `file` unless the owner's uploads would then exceed `quota`
/// bytes or `max_files` files.
pub(crate) async fn complete_within_quota(
    pool: &MySqlPool,
    file: &FileRecord,
    quota: u64,
    max_files: u64,
) -> AppResult<Completion> {
    let mut tx = pool.begin().await?;
    // Uploads of one owner finishing at once take turns here.
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE")
        .bind(file.owner.0)
        .fetch_optional(&mut *tx)
        .await?;
    let (count, used): (u64, u64) = sqlx::query_as(USAGE_SQL)
        .bind(file.owner.0)
        .fetch_one(&mut *tx)
        .await?;
    if used.saturating_add(file.size) > quota || count >= max_files {
        tx.rollback().await?;
        return Ok(Completion::OverQuota);
    }
    let done = sqlx::query(
        "UPDATE files SET state = ?, mime = ?, size = ?, name = ?, sha256 = ?, width = ?, \
         height = ?, thumbnail_size = ?, orphan_since = ?, created_at = ? \
         WHERE id = ? AND owner_id = ? AND state = ?",
    )
    .bind(COMPLETE)
    .bind(&file.mime)
    .bind(file.size)
    .bind(&file.name)
    .bind(&file.sha256)
    .bind(file.width)
    .bind(file.height)
    .bind(file.thumbnail_size)
    .bind(file.created_at.0.naive_utc())
    .bind(file.created_at.0.naive_utc())
    .bind(file.id.to_hex())
    .bind(file.owner.0)
    .bind(UPLOADING)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(Completion::Gone);
    }
    tx.commit().await?;
    Ok(Completion::Done)
}

/// Forgets an upload that was refused or failed, or a claimed file whose bytes are deleted
/// (the caller deleted them).
pub(crate) async fn delete_incomplete(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("DELETE FROM files WHERE id = ? AND state <> 0")
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

/// A complete upload.
pub(crate) async fn find(pool: &MySqlPool, id: FileId) -> AppResult<Option<FileRecord>> {
    let row: Option<FileRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files WHERE id = ? AND state = 0"
    ))
    .bind(id.to_hex())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(FileRow::into_record))
}

/// The owner's complete uploads, newest first, at most `limit`, after `before` when given.
pub(crate) async fn list_of(
    pool: &MySqlPool,
    owner: UserId,
    before: Option<FileId>,
    limit: u32,
) -> AppResult<Vec<FileRecord>> {
    let rows: Vec<FileRow> = match before {
        Some(before) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM files WHERE owner_id = ? AND state = 0 \
                 AND (created_at, id) < (SELECT created_at, id FROM files WHERE id = ? AND owner_id = ?) \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ))
            .bind(owner.0)
            .bind(before.to_hex())
            .bind(owner.0)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM files WHERE owner_id = ? AND state = 0 \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ))
            .bind(owner.0)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().filter_map(FileRow::into_record).collect())
}

/// Marks the file as about to be carried by a message (the sweep and DELETE leave it alone);
/// false when the file is not there (any more).
pub(crate) async fn mark_referenced(pool: &MySqlPool, id: FileId) -> AppResult<bool> {
    let done = sqlx::query(
        "UPDATE files SET referenced = 1, referenced_at = ? WHERE id = ? AND state = 0",
    )
    .bind(Utc::now().timestamp_millis())
    .bind(id.to_hex())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the file as carried by no message from now on, unless a message was marked as about
/// to carry it after `settled_before_ms` (a send still on its way: its mark stays).
pub(crate) async fn mark_orphaned(
    pool: &MySqlPool,
    id: FileId,
    settled_before_ms: i64,
) -> AppResult<()> {
    sqlx::query(
        "UPDATE files SET referenced = 0, orphan_since = ? \
         WHERE id = ? AND state = 0 AND referenced_at < ?",
    )
    .bind(Utc::now().naive_utc())
    .bind(id.to_hex())
    .bind(settled_before_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Complete uploads unreferenced since before `cutoff`, oldest first, at most `limit`.
pub(crate) async fn orphans(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> AppResult<Vec<FileRecord>> {
    let rows: Vec<FileRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files WHERE referenced = 0 AND state = 0 AND orphan_since < ? \
         ORDER BY orphan_since LIMIT ?"
    ))
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(FileRow::into_record).collect())
}

/// Files marked as carried before `before_ms` (epoch ms), with their mark's time: for the
/// sweep to check that a message really carries them (a send can fail after its mark).
pub(crate) async fn settled_marks(
    pool: &MySqlPool,
    before_ms: i64,
    limit: u32,
) -> AppResult<Vec<(FileId, i64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id, referenced_at FROM files WHERE referenced = 1 AND referenced_at > 0 \
         AND referenced_at < ? AND state = 0 ORDER BY referenced_at LIMIT ?",
    )
    .bind(before_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| Some((FileId::parse(&id)?, at)))
        .collect())
}

/// Confirms a checked mark (a stored message carries the file): not checked again.
pub(crate) async fn confirm_mark(pool: &MySqlPool, id: FileId, checked_ms: i64) -> AppResult<()> {
    sqlx::query(
        "UPDATE files SET referenced_at = ? WHERE id = ? AND referenced = 1 AND referenced_at = ?",
    )
    .bind(CONFIRMED)
    .bind(id.to_hex())
    .bind(checked_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Files whose bytes are to be removed: uploads in progress since before `cutoff` (their
/// request is over: a crash, a client gone) and claimed files whose deletion was cut off.
pub(crate) async fn abandoned(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> AppResult<Vec<FileId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM files WHERE state = ? OR (state = ? AND created_at < ?) \
         ORDER BY created_at LIMIT ?",
    )
    .bind(DELETING)
    .bind(UPLOADING)
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().filter_map(|id| FileId::parse(id)).collect())
}

/// Claims an abandoned row for deletion (an upload in progress since before `cutoff` may no
/// longer complete then); true when the row is claimed now (by this call or an earlier one),
/// false when it completed or is gone meanwhile.
pub(crate) async fn claim_abandoned(
    pool: &MySqlPool,
    id: FileId,
    cutoff: DateTime<Utc>,
) -> AppResult<bool> {
    sqlx::query("UPDATE files SET state = ? WHERE id = ? AND state = ? AND created_at < ?")
        .bind(DELETING)
        .bind(id.to_hex())
        .bind(UPLOADING)
        .bind(cutoff.naive_utc())
        .execute(pool)
        .await?;
    let state: Option<i8> = sqlx::query_scalar("SELECT state FROM files WHERE id = ?")
        .bind(id.to_hex())
        .fetch_optional(pool)
        .await?;
    Ok(state == Some(DELETING))
}

/// Takes an orphan from before `cutoff` for deletion: it turns into a claimed row (invisible,
/// out of the quota, no message may be marked as carrying it any more) whose bytes the caller
/// deletes before [`delete_incomplete`]; a failure in between is retried by the sweep's pass
/// over abandoned rows. False when it is no orphan from before `cutoff` (any
/// more), or another process took it.
pub(crate) async fn claim_orphan(
    pool: &MySqlPool,
    id: FileId,
    cutoff: DateTime<Utc>,
) -> AppResult<bool> {
    let done = sqlx::query(
        "UPDATE files SET state = ? \
         WHERE id = ? AND state = 0 AND referenced = 0 AND orphan_since < ?",
    )
    .bind(DELETING)
    .bind(id.to_hex())
    .bind(cutoff.naive_utc())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the owner's upload for deletion as [`claim_orphan`] does, unless a message was marked
/// as about to carry it after `settled_before_ms` (a send still on its way).
pub(crate) async fn claim_owned(
    pool: &MySqlPool,
    id: FileId,
    owner: UserId,
    settled_before_ms: i64,
) -> AppResult<bool> {
    let done = sqlx::query(
        "UPDATE files SET state = ? \
         WHERE id = ? AND owner_id = ? AND state = 0 AND (referenced = 0 OR referenced_at < ?)",
    )
    .bind(DELETING)
    .bind(id.to_hex())
    .bind(owner.0)
    .bind(settled_before_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
