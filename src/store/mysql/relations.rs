//! Relations between users: friend requests, friendships (two rows, one per side, each with
//! that side's private remark) and blocks; who may see whom online.

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::domain::{RecordId, RequestStatus, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mysql::violated_unique_key;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FriendRequest {
    pub id: RecordId,
    pub from: UserId,
    pub to: UserId,
    pub message: Option<String>,
    pub status: RequestStatus,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: u64,
    from_id: u64,
    to_id: u64,
    message: Option<String>,
    #[sqlx(try_from = "String")]
    status: RequestStatus,
    created_at: NaiveDateTime,
}

impl From<RequestRow> for FriendRequest {
    fn from(r: RequestRow) -> Self {
        Self {
            id: RecordId(r.id),
            from: UserId(r.from_id),
            to: UserId(r.to_id),
            message: r.message,
            status: r.status,
            created_at: r.created_at.and_utc().into(),
        }
    }
}

const REQUEST_COLUMNS: &str = "id, from_id, to_id, message, status, created_at";

pub(crate) async fn find_request(pool: &MySqlPool, id: u64) -> AppResult<Option<FriendRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(FriendRequest::from))
}

/// The newest request `from` sent `to` with this status.
async fn latest_between(
    pool: &MySqlPool,
    from: UserId,
    to: UserId,
    status: RequestStatus,
) -> AppResult<Option<FriendRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE from_id = ? AND to_id = ? AND status = ? \
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(from.0)
    .bind(to.0)
    .bind(status.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(FriendRequest::from))
}

pub(crate) async fn pending_between(
    pool: &MySqlPool,
    from: UserId,
    to: UserId,
) -> AppResult<Option<FriendRequest>> {
    latest_between(pool, from, to, RequestStatus::Pending).await
}

/// The newest request `from` sent `to` that `to` ignored, shown to its sender as pending.
pub(crate) async fn ignored_between(
    pool: &MySqlPool,
    from: UserId,
    to: UserId,
) -> AppResult<Option<FriendRequest>> {
    Ok(latest_between(pool, from, to, RequestStatus::Ignored)
        .await?
        .map(|mut request| {
            request.status = RequestStatus::Pending;
            request
        }))
}

/// Creates a pending request, or returns the pending one that already exists (the unique
/// index on pending pairs decides, so two racing requests make one).
pub(crate) async fn create_request(
    pool: &MySqlPool,
    from: UserId,
    to: UserId,
    message: Option<&str>,
) -> AppResult<(FriendRequest, bool)> {
    let inserted = sqlx::query(
        "INSERT INTO friend_requests (from_id, to_id, message, status, created_at) VALUES (?, ?, ?, 'pending', ?)",
    )
    .bind(from.0)
    .bind(to.0)
    .bind(message)
    .bind(Utc::now().naive_utc())
    .execute(pool)
    .await;
    match inserted {
        Ok(done) => {
            let request = find_request(pool, done.last_insert_id())
                .await?
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("inserted request vanished")))?;
            Ok((request, true))
        }
        Err(err) if violated_unique_key(&err).is_some() => {
            let existing =
                pending_between(pool, from, to)
                    .await?
                    .ok_or_else(|| AppError::Conflict {
                        field: None,
                        message: "request changed concurrently, retry".into(),
                    })?;
            Ok((existing, false))
        }
        Err(err) => Err(err.into()),
    }
}

/// Decides a pending request; accepting makes the friendship on both sides in the same
/// transaction. None when it was no longer pending.
pub(crate) async fn decide(
    pool: &MySqlPool,
    id: u64,
    status: RequestStatus,
) -> AppResult<Option<FriendRequest>> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE id = ? FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row.filter(|r| r.status == RequestStatus::Pending) else {
        return Ok(None);
    };
    sqlx::query("UPDATE friend_requests SET status = ?, decided_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if status == RequestStatus::Accepted {
        for (a, b) in [(row.from_id, row.to_id), (row.to_id, row.from_id)] {
            sqlx::query(
                "INSERT IGNORE INTO friendships (user_id, friend_id, remark, created_at) VALUES (?, ?, NULL, ?)",
            )
            .bind(a)
            .bind(b)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    find_request(pool, id).await
}

pub(crate) async fn list_requests(
    pool: &MySqlPool,
    user: UserId,
    incoming: bool,
    status: Option<RequestStatus>,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<FriendRequest>, i64)> {
    let side = if incoming { "to_id" } else { "from_id" };
    // The requester is never told about an ignore: to them an ignored request is pending.
    let (status_filter, status) = match (incoming, status) {
        (_, None) => ("", None),
        (false, Some(RequestStatus::Pending)) => (
            " AND status IN (?, 'ignored')",
            Some(RequestStatus::Pending),
        ),
        (false, Some(RequestStatus::Ignored)) => {
            (" AND FALSE AND status = ?", Some(RequestStatus::Ignored))
        }
        (_, Some(s)) => (" AND status = ?", Some(s)),
    };
    let count_sql = format!("SELECT COUNT(*) FROM friend_requests WHERE {side} = ?{status_filter}");
    let page_sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM friend_requests WHERE {side} = ?{status_filter} \
         ORDER BY id DESC LIMIT ? OFFSET ?"
    );
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(user.0);
    let mut page = sqlx::query_as::<_, RequestRow>(&page_sql).bind(user.0);
    if let Some(status) = status {
        count = count.bind(status.as_str());
        page = page.bind(status.as_str());
    }
    let total = count.fetch_one(pool).await?;
    let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
    let mut requests: Vec<FriendRequest> = rows.into_iter().map(FriendRequest::from).collect();
    if !incoming {
        for request in &mut requests {
            if request.status == RequestStatus::Ignored {
                request.status = RequestStatus::Pending;
            }
        }
    }
    Ok((requests, total))
}

/// What `viewer` has with `other`: friendship and the viewer's remark.
#[derive(Debug, Clone, Default)]
pub(crate) struct Relation {
    pub is_friend: bool,
    pub remark: Option<String>,
}

pub(crate) async fn relation(
    pool: &MySqlPool,
    viewer: UserId,
    other: UserId,
) -> AppResult<Relation> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT remark FROM friendships WHERE user_id = ? AND friend_id = ?")
            .bind(viewer.0)
            .bind(other.0)
            .fetch_optional(pool)
            .await?;
    Ok(row.map_or_else(Relation::default, |(remark,)| Relation {
        is_friend: true,
        remark,
    }))
}

/// The viewer's relations with many users at once.
pub(crate) async fn relations(
    pool: &MySqlPool,
    viewer: UserId,
    others: &[UserId],
) -> AppResult<std::collections::HashMap<UserId, Relation>> {
    if others.is_empty() {
        return Ok(Default::default());
    }
    let placeholders = crate::store::mysql::placeholders(others.len());
    let sql = format!(
        "SELECT friend_id, remark FROM friendships WHERE user_id = ? AND friend_id IN ({placeholders})"
    );
    let mut query = sqlx::query_as::<_, (u64, Option<String>)>(&sql).bind(viewer.0);
    for other in others {
        query = query.bind(other.0);
    }
    Ok(query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, remark)| {
            (
                UserId(id),
                Relation {
                    is_friend: true,
                    remark,
                },
            )
        })
        .collect())
}

/// A friend with when the friendship started.
#[derive(sqlx::FromRow)]
pub(crate) struct FriendRow {
    pub friend_id: u64,
    pub created_at: NaiveDateTime,
}

/// How many rows of `table` (friendships, blocks) belong to `user`.
async fn rows_of(pool: &MySqlPool, table: &'static str, user: UserId) -> AppResult<i64> {
    Ok(
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE user_id = ?"))
            .bind(user.0)
            .fetch_one(pool)
            .await?,
    )
}

pub(crate) async fn list_friends(
    pool: &MySqlPool,
    user: UserId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<FriendRow>, i64)> {
    let total = rows_of(pool, "friendships", user).await?;
    let rows: Vec<FriendRow> = sqlx::query_as(
        "SELECT f.friend_id, f.created_at FROM friendships f JOIN users u ON u.id = f.friend_id \
         WHERE f.user_id = ? ORDER BY u.nick_name, u.user_name LIMIT ? OFFSET ?",
    )
    .bind(user.0)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

pub(crate) async fn friendship_since(
    pool: &MySqlPool,
    user: UserId,
    friend: UserId,
) -> AppResult<Option<NaiveDateTime>> {
    Ok(
        sqlx::query_scalar(
            "SELECT created_at FROM friendships WHERE user_id = ? AND friend_id = ?",
        )
        .bind(user.0)
        .bind(friend.0)
        .fetch_optional(pool)
        .await?,
    )
}

/// Sets the user's private remark; false when they are not friends.
pub(crate) async fn set_remark(
    pool: &MySqlPool,
    user: UserId,
    friend: UserId,
    remark: Option<&str>,
) -> AppResult<bool> {
    // MySQL reports 0 affected rows when the value does not change, so existence is checked.
    if friendship_since(pool, user, friend).await?.is_none() {
        return Ok(false);
    }
    sqlx::query("UPDATE friendships SET remark = ? WHERE user_id = ? AND friend_id = ?")
        .bind(remark)
        .bind(user.0)
        .bind(friend.0)
        .execute(pool)
        .await?;
    Ok(true)
}

/// Ends a friendship on both sides; false when there was none.
pub(crate) async fn unfriend(pool: &MySqlPool, a: UserId, b: UserId) -> AppResult<bool> {
    Ok(delete_friendship(pool, a, b).await? > 0)
}

/// Deletes both rows of a friendship (alone, or inside a caller's transaction).
async fn delete_friendship<'e>(
    executor: impl sqlx::MySqlExecutor<'e>,
    a: UserId,
    b: UserId,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
    )
    .bind(a.0)
    .bind(b.0)
    .bind(b.0)
    .bind(a.0)
    .execute(executor)
    .await?
    .rows_affected())
}

/// Whether either user blocks the other.
pub(crate) async fn blocked_either_way(pool: &MySqlPool, a: UserId, b: UserId) -> AppResult<bool> {
    let found: Option<u64> = sqlx::query_scalar(
        "SELECT user_id FROM blocks WHERE (user_id = ? AND blocked_id = ?) OR (user_id = ? AND blocked_id = ?) LIMIT 1",
    )
    .bind(a.0)
    .bind(b.0)
    .bind(b.0)
    .bind(a.0)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Blocks `blocked` for `user`: ends their friendship and declines pending requests between
/// them, all at once. Returns (created now, a friendship ended).
pub(crate) async fn block(
    pool: &MySqlPool,
    user: UserId,
    blocked: UserId,
) -> AppResult<(bool, bool)> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    let created =
        sqlx::query("INSERT IGNORE INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)")
            .bind(user.0)
            .bind(blocked.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    let unfriended = delete_friendship(&mut *tx, user, blocked).await? > 0;
    sqlx::query(
        "UPDATE friend_requests SET status = 'rejected', decided_at = ? WHERE status = 'pending' \
         AND ((from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?))",
    )
    .bind(now)
    .bind(user.0)
    .bind(blocked.0)
    .bind(blocked.0)
    .bind(user.0)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((created, unfriended))
}

pub(crate) async fn unblock(pool: &MySqlPool, user: UserId, blocked: UserId) -> AppResult<bool> {
    let done = sqlx::query("DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?")
        .bind(user.0)
        .bind(blocked.0)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(sqlx::FromRow)]
pub(crate) struct BlockRow {
    pub blocked_id: u64,
    pub user_name: String,
    pub nick_name: String,
    pub created_at: NaiveDateTime,
}

pub(crate) async fn list_blocks(
    pool: &MySqlPool,
    user: UserId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<BlockRow>, i64)> {
    let total = rows_of(pool, "blocks", user).await?;
    let rows: Vec<BlockRow> = sqlx::query_as(
        "SELECT b.blocked_id, u.user_name, u.nick_name, b.created_at FROM blocks b \
         JOIN users u ON u.id = b.blocked_id WHERE b.user_id = ? ORDER BY b.created_at DESC LIMIT ? OFFSET ?",
    )
    .bind(user.0)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// What decides a 1:1 send, in one query: does the recipient exist, do they block the
/// sender, are the two friends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendRelation {
    pub recipient_exists: bool,
    pub blocked_by_recipient: bool,
    pub friends: bool,
}

pub(crate) async fn send_relation(
    pool: &MySqlPool,
    from: UserId,
    to: UserId,
) -> AppResult<SendRelation> {
    let (exists, blocked, friends): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
           EXISTS(SELECT 1 FROM users WHERE id = ?), \
           EXISTS(SELECT 1 FROM blocks WHERE user_id = ? AND blocked_id = ?), \
           EXISTS(SELECT 1 FROM friendships WHERE user_id = ? AND friend_id = ?)",
    )
    .bind(to.0)
    .bind(to.0)
    .bind(from.0)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(pool)
    .await?;
    Ok(SendRelation {
        recipient_exists: exists == 1,
        blocked_by_recipient: blocked == 1,
        friends: friends == 1,
    })
}

/// Of `others`, those `viewer` shares a relation with that lets them see presence: friends and
/// members of a group (not dissolved) the viewer is in.
pub(crate) async fn contacts_among(
    pool: &MySqlPool,
    viewer: UserId,
    others: &[UserId],
) -> AppResult<std::collections::HashSet<UserId>> {
    if others.is_empty() {
        return Ok(Default::default());
    }
    let placeholders = crate::store::mysql::placeholders(others.len());
    let sql = format!(
        "SELECT friend_id FROM friendships WHERE user_id = ? AND friend_id IN ({placeholders}) \
         UNION \
         SELECT m.user_id FROM group_members m JOIN chat_groups g ON g.id = m.group_id \
         WHERE m.user_id IN ({placeholders}) AND g.dissolved_at IS NULL AND EXISTS ( \
           SELECT 1 FROM group_members v WHERE v.group_id = m.group_id AND v.user_id = ?)"
    );
    let mut query = sqlx::query_scalar::<_, u64>(&sql).bind(viewer.0);
    for other in others {
        query = query.bind(other.0);
    }
    for other in others {
        query = query.bind(other.0);
    }
    Ok(query
        .bind(viewer.0)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(UserId)
        .collect())
}
