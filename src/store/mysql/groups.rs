//! The `chat_groups` and `group_members` tables.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::domain::{GroupId, UserId};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    #[serde(serialize_with = "serialize_group_id")]
    pub id: GroupId,
    pub name: String,
    pub owner_id: UserId,
    #[serde(serialize_with = "crate::http::json::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

fn serialize_group_id<S: serde::Serializer>(id: &GroupId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: u64,
    name: String,
    owner_id: u64,
    created_at: NaiveDateTime,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Self {
        Self {
            id: GroupId(row.id),
            name: row.name,
            owner_id: UserId(row.owner_id),
            created_at: row.created_at.and_utc(),
        }
    }
}

pub const ROLE_OWNER: &str = "owner";
pub const ROLE_MEMBER: &str = "member";

/// Creates the group with `owner` as its owner and first member, atomically.
#[tracing::instrument(skip(pool, name))]
pub async fn create(pool: &MySqlPool, name: &str, owner: UserId) -> AppResult<Group> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    let id = sqlx::query("INSERT INTO chat_groups (name, owner_id, created_at) VALUES (?, ?, ?)")
        .bind(name)
        .bind(owner.0)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .last_insert_id();
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(owner.0)
    .bind(ROLE_OWNER)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    find(pool, GroupId(id))
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("created group vanished")))
}

pub async fn find(pool: &MySqlPool, id: GroupId) -> AppResult<Option<Group>> {
    let row: Option<GroupRow> =
        sqlx::query_as("SELECT id, name, owner_id, created_at FROM chat_groups WHERE id = ?")
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Group::from))
}

pub async fn is_member(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<bool> {
    let found: Option<u64> =
        sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = ? AND user_id = ?")
            .bind(group.0)
            .bind(user.0)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

pub async fn member_ids(pool: &MySqlPool, group: GroupId) -> AppResult<Vec<UserId>> {
    let ids: Vec<u64> = sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = ?")
        .bind(group.0)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Adds a member; false when they already were one.
pub async fn add_member(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<bool> {
    let done = sqlx::query(
        "INSERT IGNORE INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
    )
    .bind(group.0)
    .bind(user.0)
    .bind(ROLE_MEMBER)
    .bind(Utc::now().naive_utc())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<bool> {
    let done = sqlx::query("DELETE FROM group_members WHERE group_id = ? AND user_id = ?")
        .bind(group.0)
        .bind(user.0)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn groups_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<Group>> {
    let rows: Vec<GroupRow> = sqlx::query_as(
        "SELECT g.id, g.name, g.owner_id, g.created_at FROM chat_groups g \
         JOIN group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.id",
    )
    .bind(user.0)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// Of these groups, the ones `user` is a member of (one query, however many).
pub async fn member_of_which(
    pool: &MySqlPool,
    user: UserId,
    candidates: &[GroupId],
) -> AppResult<Vec<GroupId>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; candidates.len()].join(", ");
    let sql = format!(
        "SELECT group_id FROM group_members WHERE user_id = ? AND group_id IN ({placeholders})"
    );
    let mut query = sqlx::query_scalar::<_, u64>(&sql).bind(user.0);
    for group in candidates {
        query = query.bind(group.0);
    }
    Ok(query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(GroupId)
        .collect())
}
