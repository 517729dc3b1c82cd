//! The `chat_groups`, `group_members`, `group_mutes` and `group_join_requests` tables.
//!
//! A change that must not race another (a join against a dissolve or a ban, a user's joins
//! against their limit) runs in one short transaction that first locks the group's row, then
//! the user's, always in that order; nobody waits for such a lock for longer than another
//! transaction's few statements.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use crate::config::GroupSettings;
use crate::domain::{GroupId, JoinMode, RecordId, RequestStatus, Role, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mysql::{bans, violated_unique_key};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    pub id: GroupId,
    pub name: String,
    pub notice: String,
    pub avatar: String,
    pub owner_id: UserId,
    pub join_mode: JoinMode,
    pub muted: bool,
    pub member_count: i64,
    pub created_at: Timestamp,
    #[serde(skip)]
    pub dissolved: bool,
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
            // The column only ever holds the names JoinMode writes; anything else is an open group.
            join_mode: JoinMode::try_from(row.join_mode).unwrap_or(JoinMode::Open),
            muted: row.muted != 0,
            member_count: row.member_count,
            created_at: row.created_at.and_utc().into(),
            dissolved: row.dissolved_at.is_some(),
        }
    }
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.notice, g.avatar, g.owner_id, g.join_mode, g.muted, \
     (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) AS member_count, \
     g.created_at, g.dissolved_at";

pub(crate) struct NewGroup<'a> {
    pub name: &'a str,
    pub notice: &'a str,
    pub avatar: &'a str,
    pub join_mode: JoinMode,
    pub owner: UserId,
}

/// Creates the group with its owner as first member, atomically, unless the owner owns
/// `groups.max_owned_per_user` groups or is in `groups.max_joined_per_user` already (409).
#[tracing::instrument(skip_all, fields(owner = %new.owner))]
pub(crate) async fn create(
    pool: &MySqlPool,
    new: NewGroup<'_>,
    limits: &GroupSettings,
) -> AppResult<Group> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, new.owner).await?;
    check_can_own(&mut tx, new.owner, limits.max_owned_per_user.get()).await?;
    check_joined_limit(&mut tx, new.owner, limits.max_joined_per_user.get()).await?;
    let id = sqlx::query(
        "INSERT INTO chat_groups (name, notice, avatar, join_mode, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(new.name)
    .bind(new.notice)
    .bind(new.avatar)
    .bind(new.join_mode.as_str())
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
    .bind(Role::Owner.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    find(pool, GroupId(id))
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("created group vanished")))
}

/// A group, dissolved or not.
pub(crate) async fn find(pool: &MySqlPool, id: GroupId) -> AppResult<Option<Group>> {
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM chat_groups g WHERE g.id = ?"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Group::from))
}

pub(crate) async fn find_many(pool: &MySqlPool, ids: &[GroupId]) -> AppResult<Vec<Group>> {
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
pub(crate) struct GroupChange<'a> {
    pub name: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub avatar: Option<&'a str>,
    pub join_mode: Option<JoinMode>,
    pub muted: Option<bool>,
}

impl GroupChange<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.notice.is_none()
            && self.avatar.is_none()
            && self.join_mode.is_none()
            && self.muted.is_none()
    }
}

pub(crate) async fn update(
    pool: &MySqlPool,
    id: GroupId,
    change: GroupChange<'_>,
) -> AppResult<()> {
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
    for value in [
        change.name,
        change.notice,
        change.avatar,
        change.join_mode.map(JoinMode::as_str),
    ]
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

pub(crate) async fn dissolve(pool: &MySqlPool, id: GroupId) -> AppResult<()> {
    sqlx::query("UPDATE chat_groups SET dissolved_at = ? WHERE id = ? AND dissolved_at IS NULL")
        .bind(Utc::now().naive_utc())
        .bind(id.0)
        .execute(pool)
        .await?;
    Ok(())
}

/// One member's row: role, mute and settings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Membership {
    pub user_id: u64,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub dnd: i8,
    pub folded: i8,
    pub show_in_contacts: i8,
    pub muted_until: Option<NaiveDateTime>,
    pub joined_at: NaiveDateTime,
}

impl Membership {
    pub(crate) fn is_manager(&self) -> bool {
        self.role.is_manager()
    }

    /// The end of a member mute still in force.
    pub(crate) fn muted_until(&self) -> Option<DateTime<Utc>> {
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

pub(crate) async fn membership(
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
pub(crate) async fn members(pool: &MySqlPool, group: GroupId) -> AppResult<Vec<Membership>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM {MEMBERS_FROM} WHERE m.group_id = ? \
         ORDER BY FIELD(m.role, 'owner', 'admin', 'member'), m.joined_at, m.user_id"
    ))
    .bind(group.0)
    .fetch_all(pool)
    .await?)
}

/// Locks a group's row for the rest of the transaction; 404 unless it exists, not dissolved.
async fn lock_live_group(conn: &mut MySqlConnection, group: GroupId) -> AppResult<()> {
    let live: Option<u64> = sqlx::query_scalar(
        "SELECT id FROM chat_groups WHERE id = ? AND dissolved_at IS NULL FOR UPDATE",
    )
    .bind(group.0)
    .fetch_optional(conn)
    .await?;
    live.map(|_| ())
        .ok_or_else(|| AppError::NotFound("no such group".into()))
}

/// Locks a user's row for the rest of the transaction, so their group counts cannot change
/// under it.
async fn lock_user(conn: &mut MySqlConnection, user: UserId) -> AppResult<()> {
    let found: Option<u64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ? FOR UPDATE")
        .bind(user.0)
        .fetch_optional(conn)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| AppError::NotFound("no such user".into()))
}

/// How many groups (not dissolved) the user is in.
async fn joined_count(conn: &mut MySqlConnection, user: UserId) -> AppResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM group_members m JOIN chat_groups g ON g.id = m.group_id \
         WHERE m.user_id = ? AND g.dissolved_at IS NULL",
    )
    .bind(user.0)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// 409 `limit_reached` when the user is in `max` groups already.
async fn check_joined_limit(conn: &mut MySqlConnection, user: UserId, max: u64) -> AppResult<()> {
    if joined_count(conn, user).await? >= max {
        return Err(AppError::LimitReached(
            format!("a user may be in at most {max} groups").into(),
        ));
    }
    Ok(())
}

/// 409 `limit_reached` when the user owns `max` groups (not dissolved) already.
async fn check_can_own(conn: &mut MySqlConnection, user: UserId, max: u64) -> AppResult<()> {
    let owned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_groups WHERE owner_id = ? AND dissolved_at IS NULL",
    )
    .bind(user.0)
    .fetch_one(conn)
    .await?;
    if u64::try_from(owned).unwrap_or(0) >= max {
        return Err(AppError::LimitReached(
            format!("a user may own at most {max} groups").into(),
        ));
    }
    Ok(())
}

/// What keeps the user from joining the group (or asking to, or being added): a ban in force
/// (403 `banned`) or the joined-groups limit (409 `limit_reached`).
pub(crate) async fn check_can_join(
    conn: &mut MySqlConnection,
    group: GroupId,
    user: UserId,
    max_joined: u64,
) -> AppResult<()> {
    if bans::is_banned(conn, group, user).await? {
        return Err(AppError::forbidden("banned", "banned from this group"));
    }
    check_joined_limit(conn, user, max_joined).await
}

/// [`check_can_join`] outside any transaction: the early answer before a join is queued.
pub(crate) async fn can_join(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    max_joined: u64,
) -> AppResult<()> {
    let mut conn = pool.acquire().await?;
    check_can_join(&mut conn, group, user, max_joined).await
}

async fn insert_member(
    conn: &mut MySqlConnection,
    group: GroupId,
    user: UserId,
) -> AppResult<bool> {
    let done = sqlx::query(
        "INSERT IGNORE INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
    )
    .bind(group.0)
    .bind(user.0)
    .bind(Role::Member.as_str())
    .bind(Utc::now().naive_utc())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds a member in one short transaction under the group's and the user's row locks: 404 when
/// the group is gone or dissolved, 403 `banned`, 409 `limit_reached`; false when they already
/// were a member.
#[tracing::instrument(skip_all, fields(group = %group, user_id = %user))]
pub(crate) async fn admit(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    max_joined: u64,
) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    lock_live_group(&mut tx, group).await?;
    lock_user(&mut tx, user).await?;
    let member: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?")
            .bind(group.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
    if member.is_some() {
        return Ok(false);
    }
    check_can_join(&mut tx, group, user, max_joined).await?;
    let added = insert_member(&mut tx, group, user).await?;
    tx.commit().await?;
    Ok(added)
}

/// Bans the user from the group and removes them if they are a member (never the owner), in
/// one transaction under the group's row lock, so a join racing it either lands first (and is
/// undone here) or sees the ban. Returns the ban and whether a member was removed.
#[tracing::instrument(skip_all, fields(group = %group, user_id = %user))]
pub(crate) async fn ban(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    by: UserId,
    until: Option<DateTime<Utc>>,
) -> AppResult<(bans::Ban, bool)> {
    let mut tx = pool.begin().await?;
    lock_live_group(&mut tx, group).await?;
    let ban = bans::ban(&mut tx, group, user, by, until).await?;
    let removed = sqlx::query(
        "DELETE FROM group_members WHERE group_id = ? AND user_id = ? AND role <> 'owner'",
    )
    .bind(group.0)
    .bind(user.0)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok((ban, removed))
}

/// Removes a member; the owner is never removed (ownership moves only by transfer).
pub(crate) async fn remove_member(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
) -> AppResult<bool> {
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
pub(crate) async fn set_role(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
    role: Role,
) -> AppResult<()> {
    sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role <> 'owner'",
    )
    .bind(role.as_str())
    .bind(group.0)
    .bind(user.0)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes `to` the owner and the old owner an admin, atomically: the group row is locked and
/// both changes must hit exactly the rows expected, so concurrent transfers, leaves or kicks
/// can never leave a group with two owners or none. False (nothing changed) when they would.
/// 409 `limit_reached` when `to` owns `max_owned` groups already.
pub(crate) async fn transfer(
    pool: &MySqlPool,
    group: GroupId,
    from: UserId,
    to: UserId,
    max_owned: u64,
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
    lock_user(&mut tx, to).await?;
    check_can_own(&mut tx, to, max_owned).await?;
    let promoted = sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role <> ?",
    )
    .bind(Role::Owner.as_str())
    .bind(group.0)
    .bind(to.0)
    .bind(Role::Owner.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let demoted = sqlx::query(
        "UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ? AND role = ?",
    )
    .bind(Role::Admin.as_str())
    .bind(group.0)
    .bind(from.0)
    .bind(Role::Owner.as_str())
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

pub(crate) async fn set_muted_until(
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
pub(crate) struct SettingsChange {
    pub nickname: Option<Option<String>>,
    pub remark: Option<Option<String>>,
    pub dnd: Option<bool>,
    pub folded: Option<bool>,
    pub show_in_contacts: Option<bool>,
}

impl SettingsChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.nickname.is_none()
            && self.remark.is_none()
            && self.dnd.is_none()
            && self.folded.is_none()
            && self.show_in_contacts.is_none()
    }
}

pub(crate) async fn update_settings(
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
pub(crate) async fn groups_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<Group>> {
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
pub(crate) async fn contact_groups_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<Group>> {
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM chat_groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = ? AND m.show_in_contacts = 1 AND g.dissolved_at IS NULL ORDER BY g.name"
    ))
    .bind(user.0)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// One of the user's memberships, with whether its group is dissolved.
#[derive(Debug, Clone)]
pub(crate) struct MemberOf {
    pub group: GroupId,
    pub dissolved: bool,
    pub membership: Membership,
}

/// Every membership of the user, dissolved groups included (their members keep reading them):
/// one indexed query whatever the number of groups, no `IN` list.
pub(crate) async fn all_memberships_of(pool: &MySqlPool, user: UserId) -> AppResult<Vec<MemberOf>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        group_id: u64,
        dissolved_at: Option<NaiveDateTime>,
        #[sqlx(flatten)]
        membership: Membership,
    }
    let sql = format!(
        "SELECT m.group_id, g.dissolved_at, {MEMBER_COLUMNS} FROM {MEMBERS_FROM} \
         JOIN chat_groups g ON g.id = m.group_id WHERE m.user_id = ?"
    );
    Ok(sqlx::query_as::<_, Row>(&sql)
        .bind(user.0)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| MemberOf {
            group: GroupId(r.group_id),
            dissolved: r.dissolved_at.is_some(),
            membership: r.membership,
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct JoinRequest {
    pub id: RecordId,
    pub group_id: GroupId,
    pub user_id: UserId,
    pub inviter_id: Option<UserId>,
    pub message: Option<String>,
    pub status: RequestStatus,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct JoinRow {
    id: u64,
    group_id: u64,
    user_id: u64,
    inviter_id: Option<u64>,
    message: Option<String>,
    #[sqlx(try_from = "String")]
    status: RequestStatus,
    created_at: NaiveDateTime,
}

impl From<JoinRow> for JoinRequest {
    fn from(r: JoinRow) -> Self {
        Self {
            id: RecordId(r.id),
            group_id: GroupId(r.group_id),
            user_id: UserId(r.user_id),
            inviter_id: r.inviter_id.map(UserId),
            message: r.message,
            status: r.status,
            created_at: r.created_at.and_utc().into(),
        }
    }
}

const JOIN_COLUMNS: &str = "id, group_id, user_id, inviter_id, message, status, created_at";

pub(crate) async fn find_join_request(pool: &MySqlPool, id: u64) -> AppResult<Option<JoinRequest>> {
    let row: Option<JoinRow> = sqlx::query_as(&format!(
        "SELECT {JOIN_COLUMNS} FROM group_join_requests WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(JoinRequest::from))
}

/// A pending request for the user to join; the existing one when there is one.
pub(crate) async fn request_join(
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

/// Whether the user has a request to join the group waiting for a decision.
pub(crate) async fn has_pending_request(
    pool: &MySqlPool,
    group: GroupId,
    user: UserId,
) -> AppResult<bool> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM group_join_requests WHERE group_id = ? AND user_id = ? AND status = 'pending'",
    )
    .bind(group.0)
    .bind(user.0)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

pub(crate) async fn list_join_requests(
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

/// Decides a pending request of the group; accepting adds the member in the same transaction,
/// under the group's and the user's row locks, unless a ban (403 `banned`) or the joined-groups
/// limit (409 `limit_reached`) keeps them out (the request then stays pending). None when it
/// was no longer pending; otherwise the request and whether a member was added.
pub(crate) async fn decide_join_request(
    pool: &MySqlPool,
    group: GroupId,
    id: u64,
    accept: bool,
    max_joined: u64,
) -> AppResult<Option<(JoinRequest, bool)>> {
    let now = Utc::now().naive_utc();
    let mut tx = pool.begin().await?;
    lock_live_group(&mut tx, group).await?;
    let row: Option<JoinRow> = sqlx::query_as(&format!(
        "SELECT {JOIN_COLUMNS} FROM group_join_requests WHERE id = ? AND group_id = ? FOR UPDATE"
    ))
    .bind(id)
    .bind(group.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row.filter(|r| r.status == RequestStatus::Pending) else {
        return Ok(None);
    };
    let user = UserId(row.user_id);
    let mut added = false;
    if accept {
        lock_user(&mut tx, user).await?;
        check_can_join(&mut tx, group, user, max_joined).await?;
        added = insert_member(&mut tx, group, user).await?;
    }
    sqlx::query("UPDATE group_join_requests SET status = ?, decided_at = ? WHERE id = ?")
        .bind(
            if accept {
                RequestStatus::Accepted
            } else {
                RequestStatus::Rejected
            }
            .as_str(),
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(find_join_request(pool, id).await?.map(|r| (r, added)))
}
