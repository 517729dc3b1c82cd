//! The `group_bans` table: users who may not join a group, ask to join it or be added to it,
//! until the ban ends (`until`; NULL for good) or a manager lifts it. A row whose `until` has
//! passed means nothing and is overwritten by the next ban of the same user.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use crate::domain::{GroupId, Timestamp, UserId};
use crate::error::AppResult;

/// A ban in force.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ban {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub banned_by: UserId,
    /// None: for good.
    pub until: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct BanRow {
    group_id: u64,
    user_id: u64,
    banned_by: u64,
    until: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

impl From<BanRow> for Ban {
    fn from(row: BanRow) -> Self {
        Self {
            group_id: GroupId(row.group_id),
            user_id: UserId(row.user_id),
            banned_by: UserId(row.banned_by),
            until: row.until.map(|t| Timestamp(t.and_utc())),
            created_at: row.created_at.and_utc().into(),
        }
    }
}

const BAN_COLUMNS: &str = "group_id, user_id, banned_by, until, created_at";
/// The condition of a ban still in force (binds: now).
const IN_FORCE: &str = "(until IS NULL OR until > ?)";

/// Whether the user is banned from the group now (on a connection, so a transaction can ask).
pub(crate) async fn is_banned(
    conn: &mut MySqlConnection,
    group: GroupId,
    user: UserId,
) -> AppResult<bool> {
    let found: Option<i32> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM group_bans WHERE group_id = ? AND user_id = ? AND {IN_FORCE}"
    ))
    .bind(group.0)
    .bind(user.0)
    .bind(Utc::now().naive_utc())
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// The user's ban in force in the group, if any.
pub(crate) async fn find(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<Option<Ban>> {
    let row: Option<BanRow> = sqlx::query_as(&format!(
        "SELECT {BAN_COLUMNS} FROM group_bans WHERE group_id = ? AND user_id = ? AND {IN_FORCE}"
    ))
    .bind(group.0)
    .bind(user.0)
    .bind(Utc::now().naive_utc())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Ban::from))
}

/// Bans the user (replacing an earlier ban of theirs) inside the caller's transaction; their
/// pending request to join, if any, is rejected with it.
pub(crate) async fn ban(
    conn: &mut MySqlConnection,
    group: GroupId,
    user: UserId,
    by: UserId,
    until: Option<DateTime<Utc>>,
) -> AppResult<Ban> {
    let now = Utc::now().naive_utc();
    sqlx::query(
        "INSERT INTO group_bans (group_id, user_id, banned_by, until, created_at) \
         VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE banned_by = VALUES(banned_by), \
         until = VALUES(until), created_at = VALUES(created_at)",
    )
    .bind(group.0)
    .bind(user.0)
    .bind(by.0)
    .bind(until.map(|t| t.naive_utc()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE group_join_requests SET status = 'rejected', decided_at = ? \
         WHERE group_id = ? AND user_id = ? AND status = 'pending'",
    )
    .bind(now)
    .bind(group.0)
    .bind(user.0)
    .execute(&mut *conn)
    .await?;
    Ok(Ban {
        group_id: group,
        user_id: user,
        banned_by: by,
        // As stored: DATETIME(3) keeps milliseconds.
        until: until.map(truncate_to_millis).map(Timestamp),
        created_at: truncate_to_millis(now.and_utc()).into(),
    })
}

fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// Lifts a ban in force; false when there was none.
pub(crate) async fn unban(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<bool> {
    let done = sqlx::query(&format!(
        "DELETE FROM group_bans WHERE group_id = ? AND user_id = ? AND {IN_FORCE}"
    ))
    .bind(group.0)
    .bind(user.0)
    .bind(Utc::now().naive_utc())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The bans in force in a group, newest first, and how many there are.
pub(crate) async fn list(
    pool: &MySqlPool,
    group: GroupId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<Ban>, i64)> {
    let now = Utc::now().naive_utc();
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM group_bans WHERE group_id = ? AND {IN_FORCE}"
    ))
    .bind(group.0)
    .bind(now)
    .fetch_one(pool)
    .await?;
    let rows: Vec<BanRow> = sqlx::query_as(&format!(
        "SELECT {BAN_COLUMNS} FROM group_bans WHERE group_id = ? AND {IN_FORCE} \
         ORDER BY created_at DESC, user_id LIMIT ? OFFSET ?"
    ))
    .bind(group.0)
    .bind(now)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows.into_iter().map(Ban::from).collect(), total))
}
