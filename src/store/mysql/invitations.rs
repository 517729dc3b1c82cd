//! The `group_invitations` table: a member's invitation of somebody who is not their friend,
//! waiting for the invitee's decision.

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::domain::{GroupId, RecordId, RequestStatus, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mysql::violated_unique_key;

/// An invitation as the API shows it, with what the invitee needs to decide.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Invitation {
    pub id: RecordId,
    pub group: InvitationGroup,
    pub inviter: Inviter,
    #[serde(skip)]
    pub invitee: UserId,
    pub status: RequestStatus,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct InvitationGroup {
    pub id: GroupId,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Inviter {
    pub id: UserId,
    pub user_name: String,
    pub nick_name: String,
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: u64,
    group_id: u64,
    group_name: String,
    invitee_id: u64,
    inviter_id: u64,
    inviter_user_name: String,
    inviter_nick_name: String,
    #[sqlx(try_from = "String")]
    status: RequestStatus,
    created_at: NaiveDateTime,
}

impl From<InvitationRow> for Invitation {
    fn from(r: InvitationRow) -> Self {
        Self {
            id: RecordId(r.id),
            group: InvitationGroup {
                id: GroupId(r.group_id),
                name: r.group_name,
            },
            inviter: Inviter {
                id: UserId(r.inviter_id),
                user_name: r.inviter_user_name,
                nick_name: r.inviter_nick_name,
            },
            invitee: UserId(r.invitee_id),
            status: r.status,
            created_at: r.created_at.and_utc().into(),
        }
    }
}

const INVITATION_SELECT: &str = "SELECT i.id, i.group_id, g.name AS group_name, i.invitee_id, \
     i.inviter_id, u.user_name AS inviter_user_name, u.nick_name AS inviter_nick_name, \
     i.status, i.created_at \
     FROM group_invitations i \
     JOIN chat_groups g ON g.id = i.group_id \
     JOIN users u ON u.id = i.inviter_id";

/// The pending invitations a user can still accept: the group is not dissolved, the inviter is
/// still a member of it, and neither of the two blocks the other.
const STILL_VALID: &str = "i.status = 'pending' AND g.dissolved_at IS NULL \
     AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = i.group_id AND m.user_id = i.inviter_id) \
     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.user_id = i.invitee_id AND b.blocked_id = i.inviter_id) \
                                              OR (b.user_id = i.inviter_id AND b.blocked_id = i.invitee_id))";

pub(crate) async fn find(pool: &MySqlPool, id: u64) -> AppResult<Option<Invitation>> {
    let row: Option<InvitationRow> = sqlx::query_as(&format!("{INVITATION_SELECT} WHERE i.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Invitation::from))
}

/// The invitation pending for this invitee and group, if any (whoever made it).
pub(crate) async fn pending_of(
    pool: &MySqlPool,
    group: GroupId,
    invitee: UserId,
) -> AppResult<Option<Invitation>> {
    let row: Option<InvitationRow> = sqlx::query_as(&format!(
        "{INVITATION_SELECT} WHERE i.group_id = ? AND i.invitee_id = ? AND i.status = 'pending'"
    ))
    .bind(group.0)
    .bind(invitee.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Invitation::from))
}

/// Creates a pending invitation, or returns the one already pending for this invitee and group
/// (the unique index on pending pairs decides, so two racing invitations make one). True when
/// it was created now.
#[tracing::instrument(skip_all, fields(group = %group, invitee = %invitee, inviter = %inviter))]
pub(crate) async fn create(
    pool: &MySqlPool,
    group: GroupId,
    invitee: UserId,
    inviter: UserId,
) -> AppResult<(Invitation, bool)> {
    let inserted = sqlx::query(
        "INSERT INTO group_invitations (group_id, invitee_id, inviter_id, status, created_at) \
         VALUES (?, ?, ?, 'pending', ?)",
    )
    .bind(group.0)
    .bind(invitee.0)
    .bind(inviter.0)
    .bind(Utc::now().naive_utc())
    .execute(pool)
    .await;
    match inserted {
        Ok(done) => {
            let invitation = find(pool, done.last_insert_id()).await?.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("inserted invitation vanished"))
            })?;
            Ok((invitation, true))
        }
        Err(err) if violated_unique_key(&err).is_some() => {
            let existing =
                pending_of(pool, group, invitee)
                    .await?
                    .ok_or_else(|| AppError::Conflict {
                        field: None,
                        message: "the invitation changed concurrently, retry".into(),
                    })?;
            Ok((existing, false))
        }
        Err(err) => Err(err.into()),
    }
}

/// The invitee's pending invitations that can still be accepted, newest first, and their count.
pub(crate) async fn list_pending(
    pool: &MySqlPool,
    invitee: UserId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<Invitation>, i64)> {
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM group_invitations i JOIN chat_groups g ON g.id = i.group_id \
         WHERE i.invitee_id = ? AND {STILL_VALID}"
    ))
    .bind(invitee.0)
    .fetch_one(pool)
    .await?;
    let rows: Vec<InvitationRow> = sqlx::query_as(&format!(
        "{INVITATION_SELECT} WHERE i.invitee_id = ? AND {STILL_VALID} \
         ORDER BY i.id DESC LIMIT ? OFFSET ?"
    ))
    .bind(invitee.0)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows.into_iter().map(Invitation::from).collect(), total))
}

/// Decides a pending invitation (`ACCEPTED` or `REJECTED`); false when it was no longer
/// pending, so of two racing decisions exactly one wins.
pub(crate) async fn decide(pool: &MySqlPool, id: u64, status: RequestStatus) -> AppResult<bool> {
    let done = sqlx::query(
        "UPDATE group_invitations SET status = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(Utc::now().naive_utc())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts an accepted invitation back to pending when joining failed after it was claimed, so
/// the invitee can try again.
pub(crate) async fn reopen(pool: &MySqlPool, id: u64) -> AppResult<()> {
    sqlx::query(
        "UPDATE group_invitations SET status = 'pending', decided_at = NULL \
         WHERE id = ? AND status = 'accepted'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
