//! The `chat_groups`, `group_members`, `group_mutes` and `group_join_requests` tables.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool};

use crate::domain::{GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mysql::violated_unique_key;

pub const ROLE_OWNER: &str = "owner";
pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_MEMBER: &str = "member";

pub const JOIN_OPEN: &str = "open";
pub const JOIN_APPROVAL: &str = "approval";
pub const JOIN_INVITE_ONLY: &str = "invite_only";

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    #[serde(serialize_with = "serialize_group_id")]
    pub id: GroupId,
    pub name: String,
    pub notice: String,
    pub avatar: String,
    pub owner_id: UserId,
    pub join_mode: String,
    pub muted: bool,
    pub member_count: i64,
    #[serde(serialize_with = "crate::http::json::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub dissolved: bool,
}

pub fn serialize_group_id<S: serde::Serializer>(id: &GroupId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: u64,
    name: String,
    notice: String,
    avatar: String,
    owner_id: u64,
    join_mode: String,
    muted: i8,
    member_count: i64,
    created_at: NaiveDateTime,
    dissolved_at: Option<NaiveDateTime>,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Self {
        Self {
            id: GroupId(row.id),
            name: row.name,
            notice: row.notice,
            avatar: row.avatar,
            owner_id: UserId(row.owner_id),
            join_mode: row.join_mode,
            muted: row.muted != 0,
            member_count: row.member_count,
            created_at: row.created_at.and_utc(),
            dissolved: row.dissolved_at.is_some(),
        }
    }
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.notice, g.avatar, g.owner_id, g.join_mode, g.muted, \
     (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) AS member_count, \
     g.created_at, g.dissolved_at";

pub struct NewGroup<'a> {
    pub name: &'a str,
    pub notice: &'a str,
    pub avatar: &'a str,
    pub join_mode: &'a str,
    pub owner: UserId,
}

/// Creates the group with its owner as first member, atomically.
#[tracing::instrument(skip_all, fields(owner = %new.owner))]
pub async fn create(pool: &MySqlPool, new: NewGroup<'_>) -> AppResult<Group> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    let id = sqlx::query(
        "INSERT INTO chat_groups (name, notice, avatar, join_mode, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(new.name)
    .bind(new.notice)
    .bind(new.avatar)
    .bind(new.join_mode)
    .bind(new.owner.0)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(new.owner.0)
    .bind(ROLE_OWNER)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    find(pool, GroupId(id))
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("created group vanished")))
}

/// A group, dissolved or not.
pub async fn find(pool: &MySqlPool, id: GroupId) -> AppResult<Option<Group>> {
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = ?"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Group::from))
}

pub async fn find_many(pool: &MySqlPool, ids: &[GroupId]) -> AppResult<Vec<Group>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::store::mysql::placeholders(ids.len());
    let sql = format!("SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id IN ({placeholders})");
    let mut query = sqlx::query_as::<_, GroupRow>(&sql);
    for id in ids {
        query = query.bind(id.0);
    }
    Ok(query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(Group::from)
        .collect())
}

/// The changes `PATCH /groups/{id}` may make; `None` leaves a field as it is.
#[derive(Default)]
pub struct GroupChange<'a> {
    pub name: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub avatar: Option<&'a str>,
    pub join_mode: Option<&'a str>,
    pub muted: Option<bool>,
}

pub async fn update(pool: &MySqlPool, id: GroupId, change: GroupChange<'_>) -> AppResult<()> {
    let mut sets = Vec::new();
    for (name, present) in [
        ("name", change.name.is_some()),
        ("notice", change.notice.is_some()),
        ("avatar", change.avatar.is_some()),
        ("join_mode", change.join_mode.is_some()),
        ("muted", change.muted.is_some()),
    ] {
        if present {
            sets.push(format!("{name} = ?"));
        }
    }
    if sets.is_empty() {
        return Ok(());
    }
    let sql = format!("UPDATE chat_groups SET {} WHERE id = ?", sets.join(", "));
    let mut query = sqlx::query(&sql);
    for value in [change.name, change.notice, change.avatar, change.join_mode]
        .into_iter()
        .flatten()
    {
        query = query.bind(value);
    }
    if let Some(muted) = change.muted {
        query = query.bind(i8::from(muted));
    }
    query.bind(id.0).execute(pool).await?;
    Ok(())
}

pub async fn dissolve(pool: &MySqlPool, id: GroupId) -> AppResult<()> {
    sqlx::query("UPDATE chat_groups SET dissolved_at = ? WHERE id = ? AND dissolved_at IS NULL")
        .bind(Utc::now().naive_utc())
        .bind(id.0)
        .execute(pool)
        .await?;
    Ok(())
}

/// A cluster-wide lock on one group's joins and dissolve: a MySQL named lock (per database),
/// held by one pooled connection until [`GroupLock::release`]. Under it nobody joins a group
/// being dissolved, and the group's join and dissolve notices come in the order of the changes.
pub struct GroupLock {
    conn: PoolConnection<MySql>,
}

/// Takes the group's lock, waiting up to `wait_secs` for whoever holds it.
pub async fn lock(pool: &MySqlPool, id: GroupId, wait_secs: u64) -> AppResult<GroupLock> {
    let mut conn = pool.acquire().await?;
    // Should the lock be dropped without a release (an error, a cancelled request), closing its
    // connection is what releases it; back in the pool it would stay held.
    conn.close_on_drop();
    let got: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT(DATABASE(), ':group:', ?), ?)")
            .bind(id.0)
            .bind(wait_secs)
            .fetch_one(&mut *conn)
            .await?;
    if got != Some(1) {
        return Err(AppError::Unavailable(anyhow::anyhow!(
            "group {id} stayed locked for {wait_secs} s"
        )));
    }
    Ok(GroupLock { conn })
}

impl GroupLock {
    pub async fn release(mut self) {
        // Closing the connection (on drop) releases the lock too, so a failure here is harmless.
        let _ = sqlx::query("SELECT RELEASE_ALL_LOCKS()")
            .execute(&mut *self.conn)
            .await;
    }
}

/// One member's row: role, mute and settings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    pub user_id: u64,
    pub role: String,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub dnd: i8,
    pub folded: i8,
    pub show_in_contacts: i8,
    pub muted_until: Option<NaiveDateTime>,
    pub joined_at: NaiveDateTime,
}

impl Membership {
    pub fn is_manager(&self) -> bool {
        self.role == ROLE_OWNER || self.role == ROLE_ADMIN
    }

    /// The end of a member mute still in force.
    pub fn muted_until(&self) -> Option<DateTime<Utc>> {
        self.muted_until
            .map(|t| t.and_utc())
            .filter(|until| *until > Utc::now())
    }
}

/// Membership rows with their member's mute (kept in its own table: it outlives the row).
const MEMBER_COLUMNS: &str = "m.user_id, m.role, m.nickname, m.remark, m.dnd, m.folded, \
     m.show_in_contacts, mu.muted_until, m.joined_at";
const MEMBERS_FROM: &str = "group_members m LEFT JOIN group_mutes mu \
     ON mu.group_id = m.group_id AND mu.user_id = m.user_id";

pub async fn membership(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
) -> AppResult<Option<Membership>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM {MEMBERS_FROM} WHERE m.group_id = ? AND m.user_id = ?"
    ))
    .bind(group.0)
    .bind(user.0)
    .fetch_optional(pool)
    .await?)
}

/// Every member, owner first, then admins, then members by joining time.
pub async fn members(pool: &MySqlPool, group: GroupId) -> AppResult<Vec<Membership>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM {MEMBERS_FROM} WHERE m.group_id = ? \
         ORDER BY FIELD(m.role, 'owner', 'admin', 'member'), m.joined_at, m.user_id"
    ))
    .bind(group.0)
    .fetch_all(pool)
    .await?)
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

/// Removes a member; the owner is never removed (ownership moves only by transfer).
pub async fn remove_member(pool: &MySqlPool, group: GroupId, user: UserId) -> AppResult<bool> {
    let done = sqlx::query(
        "DELETE FROM group_members WHERE group_id = ? AND user_id = ? AND role <> 'owner'",
    )
    .bind(group.0)
    .bind(user.0)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets an admin's or member's role; the owner's role changes only by transfer.
pub async fn set_role(pool: &MySqlPool, group: GroupId, user: UserId, role: &str) -> AppResult<()> {
    sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role <> 'owner'",
    )
    .bind(role)
    .bind(group.0)
    .bind(user.0)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes `to` the owner and the old owner an admin, atomically: the group row is locked and
/// both changes must hit exactly the rows expected, so concurrent transfers, leaves or kicks
/// can never leave a group with two owners or none. False (nothing changed) when they would.
pub async fn transfer(
    pool: &MySqlPool,
    group: GroupId,
    from: UserId,
    to: UserId,
) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let owner: Option<u64> = sqlx::query_scalar(
        "SELECT owner_id FROM chat_groups WHERE id = ? AND dissolved_at IS NULL FOR UPDATE",
    )
    .bind(group.0)
    .fetch_optional(&mut *tx)
    .await?;
    if owner != Some(from.0) {
        return Ok(false);
    }
    let promoted = sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role <> ?",
    )
    .bind(ROLE_OWNER)
    .bind(group.0)
    .bind(to.0)
    .bind(ROLE_OWNER)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let demoted = sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role = ?",
    )
    .bind(ROLE_ADMIN)
    .bind(group.0)
    .bind(from.0)
    .bind(ROLE_OWNER)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if promoted != 1 || demoted != 1 {
        // Dropping the transaction rolls it back.
        return Ok(false);
    }
    sqlx::query("UPDATE chat_groups SET owner_id = ? WHERE id = ?")
        .bind(to.0)
        .bind(group.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn set_muted_until(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    until: Option<DateTime<Utc>>,
) -> AppResult<()> {
    match until {
        Some(until) => {
            sqlx::query(
                "INSERT INTO group_mutes (group_id, user_id, muted_until) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE muted_until = VALUES(muted_until)",
            )
            .bind(group.0)
            .bind(user.0)
            .bind(until.naive_utc())
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM group_mutes WHERE group_id = ? AND user_id = ?")
                .bind(group.0)
                .bind(user.0)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The member's own settings; `None` leaves a field as it is.
#[derive(Default)]
pub struct SettingsChange {
    pub nickname: Option<Option<String>>,
    pub remark: Option<Option<String>>,
    pub dnd: Option<bool>,
    pub folded: Option<bool>,
    pub show_in_contacts: Option<bool>,
}

pub async fn update_settings(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    change: SettingsChange,
) -> AppResult<()> {
    let mut sets = Vec::new();
    if change.nickname.is_some() {
        sets.push("nickname = ?");
    }
    if change.remark.is_some() {
        sets.push("remark = ?");
    }
    if change.dnd.is_some() {
        sets.push("dnd = ?");
    }
    if change.folded.is_some() {
        sets.push("folded = ?");
    }
    if change.show_in_contacts.is_some() {
        sets.push("show_in_contacts = ?");
    }
    if sets.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE group_members SET {} WHERE group_id = ? AND user_id = ?",
        sets.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for text in [change.nickname, change.remark].into_iter().flatten() {
        query = query.bind(text);
    }
    for flag in [change.dnd, change.folded, change.show_in_contacts]
        .into_iter()
        .flatten()
    {
        query = query.bind(i8::from(flag));
    }
    query.bind(group.0).bind(user.0).execute(pool).await?;
    Ok(())
}

/// The user's groups that are not dissolved.
pub async fn groups_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<Group>> {
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM chat_groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = ? AND g.dissolved_at IS NULL ORDER BY g.id"
    ))
    .bind(user.0)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// The user's groups shown among their contacts.
pub async fn contact_groups_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<Group>> {
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM chat_groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = ? AND m.show_in_contacts = 1 AND g.dissolved_at IS NULL ORDER BY g.name"
    ))
    .bind(user.0)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// The caller's memberships among these groups.
pub async fn memberships_of(
    pool: &MySqlPool,
    user: UserId,
    groups: &[GroupId],
) -> AppResult<Vec<(GroupId, Membership)>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::store::mysql::placeholders(groups.len());
    let sql = format!(
        "SELECT m.group_id, {MEMBER_COLUMNS} FROM {MEMBERS_FROM} \
         WHERE m.user_id = ? AND m.group_id IN ({placeholders})"
    );
    #[derive(sqlx::FromRow)]
    struct Row {
        group_id: u64,
        #[sqlx(flatten)]
        membership: Membership,
    }
    let mut query = sqlx::query_as::<_, Row>(&sql).bind(user.0);
    for group in groups {
        query = query.bind(group.0);
    }
    Ok(query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (GroupId(r.group_id), r.membership))
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct JoinRequest {
    #[serde(serialize_with = "crate::http::json::as_string")]
    pub id: u64,
    #[serde(serialize_with = "serialize_group_id")]
    pub group_id: GroupId,
    pub user_id: UserId,
    pub inviter_id: Option<UserId>,
    pub message: Option<String>,
    pub status: String,
    #[serde(serialize_with = "crate::http::json::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct JoinRow {
    id: u64,
    group_id: u64,
    user_id: u64,
    inviter_id: Option<u64>,
    message: Option<String>,
    status: String,
    created_at: NaiveDateTime,
}

impl From<JoinRow> for JoinRequest {
    fn from(r: JoinRow) -> Self {
        Self {
            id: r.id,
            group_id: GroupId(r.group_id),
            user_id: UserId(r.user_id),
            inviter_id: r.inviter_id.map(UserId),
            message: r.message,
            status: r.status,
            created_at: r.created_at.and_utc(),
        }
    }
}

const JOIN_COLUMNS: &str = "id, group_id, user_id, inviter_id, message, status, created_at";

pub async fn find_join_request(pool: &MySqlPool, id: u64) -> AppResult<Option<JoinRequest>> {
    let row: Option<JoinRow> = sqlx::query_as(&format!(
        "SELECT {JOIN_COLUMNS} FROM group_join_requests WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(JoinRequest::from))
}

/// A pending request for the user to join; the existing one when there is one.
pub async fn request_join(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    inviter: Option<UserId>,
    message: Option<&str>,
) -> AppResult<JoinRequest> {
    let inserted = sqlx::query(
        "INSERT INTO group_join_requests (group_id, user_id, inviter_id, message, status, created_at) \
         VALUES (?, ?, ?, ?, 'pending', ?)",
    )
    .bind(group.0)
    .bind(user.0)
    .bind(inviter.map(|i| i.0))
    .bind(message)
    .bind(Utc::now().naive_utc())
    .execute(pool)
    .await;
    let id = match inserted {
        Ok(done) => done.last_insert_id(),
        Err(err) if violated_unique_key(&err).is_some() => sqlx::query_scalar(
            "SELECT id FROM group_join_requests WHERE group_id = ? AND user_id = ? AND status = 'pending'",
        )
        .bind(group.0)
        .bind(user.0)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| AppError::Conflict {
            field: None,
            message: "the request changed concurrently, retry".into(),
        })?,
        Err(err) => return Err(err.into()),
    };
    find_join_request(pool, id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("join request vanished")))
}

pub async fn list_join_requests(
    pool: &MySqlPool,
    group: GroupId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<JoinRequest>, i64)> {
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM group_join_requests WHERE group_id = ?")
            .bind(group.0)
            .fetch_one(pool)
            .await?;
    let rows: Vec<JoinRow> = sqlx::query_as(&format!(
        "SELECT {JOIN_COLUMNS} FROM group_join_requests WHERE group_id = ? \
         ORDER BY status = 'pending' DESC, id DESC LIMIT ? OFFSET ?"
    ))
    .bind(group.0)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows.into_iter().map(JoinRequest::from).collect(), total))
}

/// Decides a pending request; accepting adds the member in the same transaction.
/// None when it was no longer pending.
pub async fn decide_join_request(
    pool: &MySqlPool,
    id: u64,
    accept: bool,
) -> AppResult<Option<JoinRequest>> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    let row: Option<JoinRow> = sqlx::query_as(&format!(
        "SELECT {JOIN_COLUMNS} FROM group_join_requests WHERE id = ? FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row.filter(|r| r.status == "pending") else {
        return Ok(None);
    };
    sqlx::query("UPDATE group_join_requests SET status = ?, decided_at = ? WHERE id = ?")
        .bind(if accept { "accepted" } else { "rejected" })
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if accept {
        sqlx::query(
            "INSERT IGNORE INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
        )
        .bind(row.group_id)
        .bind(row.user_id)
        .bind(ROLE_MEMBER)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    find_join_request(pool, id).await
}
