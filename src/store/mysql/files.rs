//! The `files` table: what is known of each upload (the bytes are in the file store under the
//! same id). A user's quota is the sum of their rows' sizes; a new row is added under a lock
//! on the owner's `users` row, so uploads finishing together cannot overshoot it.

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
    /// Some message carries it (set before such a message is stored).
    pub referenced: bool,
    pub created_at: Timestamp,
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
    referenced: bool,
    created_at: NaiveDateTime,
}

impl FileRecord {
    pub(crate) fn has_thumbnail(&self) -> bool {
        self.thumbnail_size.is_some()
    }
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
            referenced: self.referenced,
            created_at: self.created_at.and_utc().into(),
        })
    }
}

const COLUMNS: &str =
    "id, owner_id, mime, size, name, sha256, width, height, thumbnail_size, referenced, created_at";

/// The bytes a user's uploads take now.
pub(crate) async fn used_bytes(pool: &MySqlPool, owner: UserId) -> AppResult<u64> {
    Ok(sqlx::query_scalar(USED_SQL)
        .bind(owner.0)
        .fetch_one(pool)
        .await?)
}

/// SUM is a DECIMAL in MySQL; cast back to the column's type.
const USED_SQL: &str =
    "SELECT CAST(COALESCE(SUM(size), 0) AS UNSIGNED) FROM files WHERE owner_id = ?";

/// Adds the row unless the owner's uploads would then exceed `quota` bytes: Ok(false) and
/// nothing added when they would.
pub(crate) async fn insert_within_quota(
    pool: &MySqlPool,
    file: &FileRecord,
    quota: u64,
) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    // Uploads of one owner finishing at once take turns here.
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE")
        .bind(file.owner.0)
        .fetch_optional(&mut *tx)
        .await?;
    let used: u64 = sqlx::query_scalar(USED_SQL)
        .bind(file.owner.0)
        .fetch_one(&mut *tx)
        .await?;
    if used.saturating_add(file.size) > quota {
        tx.rollback().await?;
        return Ok(false);
    }
    let created: DateTime<Utc> = file.created_at.0;
    sqlx::query(
        "INSERT INTO files (id, owner_id, mime, size, name, sha256, width, height, \
         thumbnail_size, referenced, orphan_since, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
    )
    .bind(file.id.to_hex())
    .bind(file.owner.0)
    .bind(&file.mime)
    .bind(file.size)
    .bind(&file.name)
    .bind(&file.sha256)
    .bind(file.width)
    .bind(file.height)
    .bind(file.thumbnail_size)
    .bind(created.naive_utc())
    .bind(created.naive_utc())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn find(pool: &MySqlPool, id: FileId) -> AppResult<Option<FileRecord>> {
    let row: Option<FileRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM files WHERE id = ?"))
        .bind(id.to_hex())
        .fetch_optional(pool)
        .await?;
    Ok(row.and_then(FileRow::into_record))
}

/// The owner's uploads, newest first, at most `limit`, older than `before` when given.
pub(crate) async fn list_of(
    pool: &MySqlPool,
    owner: UserId,
    before: Option<FileId>,
    limit: u32,
) -> AppResult<Vec<FileRecord>> {
    // Ids are ObjectIds: their hex order is their creation order.
    let rows: Vec<FileRow> =
        match before {
            Some(before) => sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM files WHERE owner_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
            ))
            .bind(owner.0)
            .bind(before.to_hex())
            .bind(limit)
            .fetch_all(pool)
            .await?,
            None => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM files WHERE owner_id = ? ORDER BY id DESC LIMIT ?"
                ))
                .bind(owner.0)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
    Ok(rows.into_iter().filter_map(FileRow::into_record).collect())
}

/// Marks the file as carried by a message, so the sweep leaves it alone.
pub(crate) async fn mark_referenced(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("UPDATE files SET referenced = 1 WHERE id = ? AND referenced = 0")
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the file as carried by no message from now on (its last message was recalled).
pub(crate) async fn mark_orphaned(pool: &MySqlPool, id: FileId) -> AppResult<()> {
    sqlx::query("UPDATE files SET referenced = 0, orphan_since = ? WHERE id = ?")
        .bind(Utc::now().naive_utc())
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(())
}

/// Unreferenced files orphaned before `cutoff`, oldest first, at most `limit`.
pub(crate) async fn orphans(
    pool: &MySqlPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> AppResult<Vec<FileRecord>> {
    let rows: Vec<FileRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files WHERE referenced = 0 AND orphan_since < ? \
         ORDER BY orphan_since LIMIT ?"
    ))
    .bind(cutoff.naive_utc())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(FileRow::into_record).collect())
}

/// Deletes the row if no message was marked as carrying it meanwhile: true when deleted (the
/// caller then deletes the bytes; of several processes sweeping, one does).
pub(crate) async fn delete_unreferenced(pool: &MySqlPool, id: FileId) -> AppResult<bool> {
    let done = sqlx::query("DELETE FROM files WHERE id = ? AND referenced = 0")
        .bind(id.to_hex())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the owner's row whatever its mark (the caller checked no message carries it).
pub(crate) async fn delete_owned(pool: &MySqlPool, id: FileId, owner: UserId) -> AppResult<bool> {
    let done = sqlx::query("DELETE FROM files WHERE id = ? AND owner_id = ?")
        .bind(id.to_hex())
        .bind(owner.0)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
