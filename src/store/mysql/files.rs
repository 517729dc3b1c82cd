//! The `files` table: what is known of each upload (the bytes are in the file store under the
//! same id). A row is made `pending` when an upload starts and completed when its bytes are all
//! stored ([`complete_within_quota`]), under a lock on the owner's `users` row, so uploads
//! finishing together cannot overshoot the quota; pending rows are invisible to everything else.

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
     FROM files WHERE owner_id = ? AND pending = 0";

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
        "INSERT INTO files (id, owner_id, pending, orphan_since, created_at) VALUES (?, ?, 1, ?, ?)",
    )
    .bind(id.to_hex())
    .bind(owner.0)
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
        "UPDATE files SET pending = 0, mime = ?, size = ?, name = ?, sha256 = ?, width = ?, \
         height = ?, thumbnail_size = ?, orphan_since = ?, created_at = ? \
         WHERE id = ? AND owner_id = ? AND pending = 1",
    )
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
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(Completion::Gone);
    }
    tx.commit().await?;
    Ok(Completion::Done)
}

/// Forgets a pending upload that was refused or failed (its bytes are deleted by the caller).
pub(crate) async fn discard_pending(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("DELETE FROM files WHERE id = ? AND pending = 1")
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

/// A complete upload.
pub(crate) async fn find(pool: &MySqlPool, id: FileId) -> AppResult<Option<FileRecord>> {
    let row: Option<FileRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files WHERE id = ? AND pending = 0"
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
                "SELECT {COLUMNS} FROM files WHERE owner_id = ? AND pending = 0 \
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
                "SELECT {COLUMNS} FROM files WHERE owner_id = ? AND pending = 0 \
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
        "UPDATE files SET referenced = 1, referenced_at = ? WHERE id = ? AND pending = 0",
    )
    .bind(Utc::now().timestamp_millis())
    .bind(id.to_hex())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the file as carried by no message from now on.
pub(crate) async fn mark_orphaned(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("UPDATE files SET referenced = 0, orphan_since = ? WHERE id = ? AND pending = 0")
        .bind(Utc::now().naive_utc())
        .bind(id.to_hex())
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
        "SELECT {COLUMNS} FROM files WHERE referenced = 0 AND pending = 0 AND orphan_since < ? \
         ORDER BY orphan_since LIMIT ?"
    ))
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(FileRow::into_record).collect())
}

/// Files marked as carried before `before_ms` (epoch ms): for the sweep to check that a message
/// really carries them (a send can fail after its mark).
pub(crate) async fn settled_marks(
    pool: &MySqlPool,
    before_ms: i64,
    limit: u32,
) -> AppResult<Vec<FileId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM files WHERE referenced = 1 AND pending = 0 AND referenced_at < ? \
         ORDER BY referenced_at LIMIT ?",
    )
    .bind(before_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().filter_map(|id| FileId::parse(id)).collect())
}

/// Leaves a checked mark alone until `before_ms` comes round again (it is checked once).
pub(crate) async fn confirm_mark(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("UPDATE files SET referenced_at = ? WHERE id = ? AND referenced = 1")
        .bind(Utc::now().timestamp_millis())
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

/// Uploads still pending since before `cutoff` (abandoned: their request is long over).
pub(crate) async fn abandoned(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> AppResult<Vec<FileId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM files WHERE pending = 1 AND created_at < ? ORDER BY created_at LIMIT ?",
    )
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().filter_map(|id| FileId::parse(id)).collect())
}

/// The moment claimed rows are given as their start: before every cutoff of [`abandoned`].
fn long_ago() -> NaiveDateTime {
    DateTime::<Utc>::UNIX_EPOCH.naive_utc()
}

/// Takes an orphan from before `cutoff` for deletion: it turns into an abandoned pending row
/// (invisible, out of the quota, no message may be marked as carrying it any more) whose bytes
/// the caller deletes before [`discard_pending`]; a failure in between is retried by the
/// sweep's pass over abandoned rows. False when it is no orphan from before `cutoff` (any
/// more), or another process took it.
pub(crate) async fn claim_orphan(
    pool: &MySqlPool,
    id: FileId,
    cutoff: DateTime<Utc>,
) -> AppResult<bool> {
    let done = sqlx::query(
        "UPDATE files SET pending = 1, created_at = ? \
         WHERE id = ? AND pending = 0 AND referenced = 0 AND orphan_since < ?",
    )
    .bind(long_ago())
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
        "UPDATE files SET pending = 1, created_at = ? \
         WHERE id = ? AND owner_id = ? AND pending = 0 AND (referenced = 0 OR referenced_at < ?)",
    )
    .bind(long_ago())
    .bind(id.to_hex())
    .bind(owner.0)
    .bind(settled_before_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
