//! Groups: who sees a group, who may do what in it, and every membership change with what
//! follows it (caches forgotten on every process, read positions, the announcement: a type 10
//! message and `event: group`).
//!
//! A private group (`approval`, `invite_only`) is not revealed to whoever is not in it and has
//! not asked to join it: it answers them 404, as an unknown id. Edits of a group (`group_edits`,
//! per group) and moderation (`moderation`, per acting user) pass the anti-spam event rules,
//! after the checks of rights and input, before any write.
//!
//! - [`rules`]: who may moderate whom (no backend);
//! - [`joining`]: joins, additions by members, invitations, decisions on join requests;
//! - [`moderation`]: leaving, kicks, bans, mutes, roles, ownership;
//! - [`editing`]: creating, editing and dissolving a group; a member's own settings.

pub(crate) mod editing;
pub(crate) mod joining;
pub(crate) mod moderation;
pub(crate) mod rules;

use std::time::Duration;

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::domain::{GroupId, JoinMode, Role, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::Change;
use crate::store::mysql::groups::{self, Group, Membership};
use crate::store::redis::group_lock::GroupLock;

pub(crate) use joining::{Addition, Joined};
pub(crate) use rules::may_moderate;

/// The answer for an unknown group, and for a private one the caller may not see.
pub(crate) fn no_such_group() -> AppError {
    AppError::NotFound("no such group".into())
}

/// A live group as a user may see it, with the user's membership (None: not a member).
pub(crate) struct Visible {
    pub group: Group,
    pub me: Option<Membership>,
}

impl Visible {
    pub(crate) fn id(&self) -> GroupId {
        self.group.id
    }

    /// The user's membership; 403 `not_a_member` without one.
    pub(crate) fn member(&self) -> AppResult<&Membership> {
        self.me.as_ref().ok_or_else(|| {
            AppError::forbidden("not_a_member", "you are not a member of this group")
        })
    }

    /// The membership of an owner or admin; 403 otherwise.
    pub(crate) fn manager(&self) -> AppResult<&Membership> {
        let me = self.member()?;
        if me.is_manager() {
            Ok(me)
        } else {
            Err(AppError::forbidden(
                "forbidden",
                "only the owner and admins may do this",
            ))
        }
    }

    /// The owner's membership; 403 otherwise.
    pub(crate) fn owner(&self) -> AppResult<&Membership> {
        let me = self.member()?;
        if me.role == Role::Owner {
            Ok(me)
        } else {
            Err(AppError::forbidden(
                "forbidden",
                "only the owner may do this",
            ))
        }
    }
}

impl Chat {
    /// A live group (the lobby and dissolved groups are not managed as groups).
    pub(crate) async fn live_group(&self, id: GroupId) -> AppResult<Group> {
        if id.is_lobby() {
            return Err(no_such_group());
        }
        groups::find(&self.mysql, id)
            .await?
            .filter(|g| !g.dissolved)
            .ok_or_else(no_such_group)
    }

    /// The group for `user`: 404 for a private group the user may not see (see
    /// [`Chat::may_see`]), exactly as for an unknown id.
    pub(crate) async fn visible_group(&self, id: GroupId, user: UserId) -> AppResult<Visible> {
        let group = self.live_group(id).await?;
        let me = groups::membership(&self.mysql, group.id, user).await?;
        if !self.may_see(&group, user, me.as_ref()).await? {
            return Err(no_such_group());
        }
        Ok(Visible { group, me })
    }

    /// Whether a group's existence may be shown to the user: an `open` group to anyone, a
    /// private one to its members and to whoever is waiting for a decision on joining it.
    pub(crate) async fn may_see(
        &self,
        group: &Group,
        user: UserId,
        me: Option<&Membership>,
    ) -> AppResult<bool> {
        if group.join_mode == JoinMode::Open || me.is_some() {
            return Ok(true);
        }
        self.knows_of(group.id, user).await
    }

    /// What follows a change of a group's members, roles or mutes: every process forgets its
    /// cache of the group, and the change is announced in it.
    async fn membership_changed(
        &self,
        group: GroupId,
        by: UserId,
        description: serde_json::Value,
    ) -> AppResult<()> {
        self.hub.changed(Change::group(group)).await;
        self.announce(group, by, description).await
    }

    /// The membership of the user an action is about (404 when they are not in the group).
    async fn require_target(&self, group: GroupId, user: UserId) -> AppResult<Membership> {
        groups::membership(&self.mysql, group, user)
            .await?
            .ok_or_else(|| AppError::NotFound("not a member of this group".into()))
    }

    /// Counts one moderation action of `actor` (`antispam.moderation_*`, per acting user).
    async fn moderation_allowed(&self, actor: UserId) -> AppResult<()> {
        self.antispam
            .check_event(actor, EventRule::Moderation, EventScope::Actor, None)
            .await
    }

    /// Counts one edit of the group (`antispam.group_edits_*`, per group).
    async fn group_edit_allowed(&self, actor: UserId, group: GroupId) -> AppResult<()> {
        self.antispam
            .check_event(actor, EventRule::GroupEdits, EventScope::Group(group), None)
            .await
    }

    /// The early answer before a join, an addition or an accepted invitation is queued for the
    /// group's lock: 403 `banned` while a ban of the user is in force, 409 `limit_reached` when
    /// they are in `groups.max_joined_per_user` groups. [`Chat::admit`] checks both again,
    /// race-safely.
    pub(crate) async fn ensure_can_join(&self, group: GroupId, user: UserId) -> AppResult<()> {
        groups::can_join(
            &self.mysql,
            group,
            user,
            self.settings.groups.max_joined_per_user.get(),
        )
        .await
    }

    /// The group's lock against concurrent joins and dissolve (see store::redis::group_lock);
    /// waited for as long as a request would wait for a MySQL connection.
    async fn lock_group(&self, group: GroupId) -> AppResult<GroupLock> {
        self.group_locks
            .lock(
                &self.redis,
                &self.keys,
                group,
                Duration::from_secs(self.settings.mysql.acquire_timeout_secs),
            )
            .await
    }

    /// 404 unless the group exists and is not dissolved (checked again under the group's lock).
    async fn require_live(&self, group: GroupId) -> AppResult<()> {
        groups::find(&self.mysql, group)
            .await?
            .filter(|g| !g.dissolved)
            .map(|_| ())
            .ok_or_else(no_such_group)
    }
}
