//! Leaving and being removed, bans, member mutes, roles and ownership. Who may act against
//! whom is [`super::may_moderate`]'s; every action passes the `moderation` anti-spam rule after
//! the checks of rights, and is announced in the group.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::may_moderate;
use crate::chat::Chat;
use crate::domain::{ConversationId, GroupId, Role, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::Change;
use crate::store::mongo::reads;
use crate::store::mysql::bans::{self, Ban};
use crate::store::mysql::{groups, users};

/// What a kick did.
pub(crate) struct Kicked {
    /// False for a ban of someone who had left meanwhile.
    pub removed: bool,
    /// The ban made with the kick, when one was asked for.
    pub ban: Option<Ban>,
}

impl Chat {
    /// `user` leaves the group (404 when not a member; the owner may not: 409).
    pub(crate) async fn leave_group(&self, user: UserId, group: GroupId) -> AppResult<()> {
        let seen = self.visible_group(group, user).await?;
        let mine = seen
            .me
            .as_ref()
            .ok_or_else(|| AppError::NotFound("you are not a member of this group".into()))?;
        if mine.role == Role::Owner {
            return Err(AppError::Conflict {
                field: None,
                message: "the owner cannot leave: transfer ownership or dissolve the group first"
                    .into(),
            });
        }
        groups::remove_member(&self.mysql, seen.id(), user).await?;
        self.removed(
            seen.id(),
            user,
            json!({ "action": "leave", "user_id": user }),
            user,
        )
        .await
    }

    /// `actor` removes `target`: admins kick members, the owner kicks anyone. `ban`, when
    /// given, also bans them (until the time given; for good without one).
    pub(crate) async fn kick(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
        ban: Option<Option<DateTime<Utc>>>,
    ) -> AppResult<Kicked> {
        let seen = self.visible_group(group, actor).await?;
        let mine = seen.member()?;
        let group = seen.id();
        let theirs = self.require_target(group, target).await?;
        if !may_moderate(mine, Some(&theirs), actor) {
            return Err(AppError::forbidden(
                "forbidden",
                "you may not remove this member",
            ));
        }
        self.moderation_allowed(actor).await?;
        let Some(until) = ban else {
            groups::remove_member(&self.mysql, group, target).await?;
            self.kicked(group, target, actor).await?;
            return Ok(Kicked {
                removed: true,
                ban: None,
            });
        };
        let (ban, removed) = self.write_ban(group, target, actor, until).await?;
        Ok(Kicked {
            removed,
            ban: Some(ban),
        })
    }

    /// A ban of a member (who is removed with it) or of anyone else; the rights of a kick.
    /// Returns the ban and whether they were removed.
    pub(crate) async fn ban(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
        until: Option<DateTime<Utc>>,
    ) -> AppResult<(Ban, bool)> {
        let seen = self.visible_group(group, actor).await?;
        let mine = seen.manager()?;
        let group = seen.id();
        if target == actor {
            return Err(AppError::forbidden("forbidden", "you may not ban yourself"));
        }
        if !users::exists(&self.mysql, target).await? {
            return Err(AppError::NotFound("no such user".into()));
        }
        let theirs = groups::membership(&self.mysql, group, target).await?;
        if !may_moderate(mine, theirs.as_ref(), actor) {
            return Err(AppError::forbidden(
                "forbidden",
                "you may not ban this member",
            ));
        }
        self.moderation_allowed(actor).await?;
        self.write_ban(group, target, actor, until).await
    }

    /// Writes a ban (removing a member) and announces the removal and the ban; the rights are
    /// checked by the caller.
    async fn write_ban(
        &self,
        group: GroupId,
        target: UserId,
        by: UserId,
        until: Option<DateTime<Utc>>,
    ) -> AppResult<(Ban, bool)> {
        let (ban, was_member) = groups::ban(&self.mysql, group, target, by, until).await?;
        if was_member {
            self.kicked(group, target, by).await?;
        }
        let until = ban.until.map(|t| t.to_string());
        self.announce(
            group,
            by,
            json!({ "action": "ban", "user_id": target, "by": by, "until": until }),
        )
        .await?;
        Ok((ban, was_member))
    }

    /// The bans in force in a group, for its managers.
    pub(crate) async fn bans(
        &self,
        actor: UserId,
        group: GroupId,
        limit: i64,
        offset: i64,
    ) -> AppResult<(Vec<Ban>, i64)> {
        let seen = self.visible_group(group, actor).await?;
        seen.manager()?;
        bans::list(&self.mysql, seen.id(), limit, offset).await
    }

    /// Lifts a ban: the owner lifts any, an admin those not made by the owner (404 when no ban
    /// is in force).
    pub(crate) async fn unban(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
    ) -> AppResult<()> {
        let seen = self.visible_group(group, actor).await?;
        let mine = seen.manager()?;
        let group = seen.id();
        let not_banned = || AppError::NotFound("this user is not banned from this group".into());
        let existing = bans::find(&self.mysql, group, target)
            .await?
            .ok_or_else(not_banned)?;
        if mine.role != Role::Owner && existing.banned_by == seen.group.owner_id {
            return Err(AppError::forbidden(
                "forbidden",
                "only the owner may lift the owner's ban",
            ));
        }
        self.moderation_allowed(actor).await?;
        if !bans::unban(&self.mysql, group, target).await? {
            return Err(not_banned());
        }
        self.announce(
            group,
            actor,
            json!({ "action": "unban", "user_id": target, "by": actor }),
        )
        .await
    }

    /// Mutes a member for `secs` seconds (already checked against the longest mute); returns
    /// the end of the mute.
    pub(crate) async fn mute_member(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
        secs: u64,
    ) -> AppResult<DateTime<Utc>> {
        let seen = self.visible_group(group, actor).await?;
        let group = self
            .may_moderate_member(&seen, actor, target, "mute")
            .await?;
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let until = Utc::now() + chrono::Duration::seconds(secs);
        groups::set_muted_until(&self.mysql, group, target, Some(until)).await?;
        self.membership_changed(
            group,
            actor,
            json!({
                "action": "mute", "user_id": target, "by": actor,
                "until": Timestamp(until).to_string()
            }),
        )
        .await?;
        Ok(until)
    }

    /// Lifts a member's mute.
    pub(crate) async fn unmute_member(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
    ) -> AppResult<()> {
        let seen = self.visible_group(group, actor).await?;
        let group = self
            .may_moderate_member(&seen, actor, target, "unmute")
            .await?;
        groups::set_muted_until(&self.mysql, group, target, None).await?;
        self.membership_changed(
            group,
            actor,
            json!({ "action": "unmute", "user_id": target, "by": actor }),
        )
        .await
    }

    /// The checks of an action of a manager against a member (`what`: mute, unmute), and the
    /// `moderation` rule.
    async fn may_moderate_member(
        &self,
        seen: &super::Visible,
        actor: UserId,
        target: UserId,
        what: &str,
    ) -> AppResult<GroupId> {
        let mine = seen.manager()?;
        let theirs = self.require_target(seen.id(), target).await?;
        if !may_moderate(mine, Some(&theirs), actor) {
            return Err(AppError::forbidden(
                "forbidden",
                format!("you may not {what} this member"),
            ));
        }
        self.moderation_allowed(actor).await?;
        Ok(seen.id())
    }

    /// The owner makes a member an admin (`admin`) or a plain member again; returns the role
    /// they have now.
    pub(crate) async fn set_role(
        &self,
        actor: UserId,
        group: GroupId,
        target: UserId,
        admin: bool,
    ) -> AppResult<Role> {
        let seen = self.visible_group(group, actor).await?;
        seen.owner()?;
        let group = seen.id();
        let theirs = self.require_target(group, target).await?;
        if theirs.role == Role::Owner {
            return Err(AppError::validation(
                "user_id",
                "the owner's role changes only by transfer",
            ));
        }
        let role = if admin { Role::Admin } else { Role::Member };
        if theirs.role != role {
            self.moderation_allowed(actor).await?;
            groups::set_role(&self.mysql, group, target, role).await?;
            let action = if admin { "admin" } else { "unadmin" };
            self.membership_changed(
                group,
                actor,
                json!({ "action": action, "user_id": target, "by": actor }),
            )
            .await?;
        }
        Ok(role)
    }

    /// The owner hands the group to another member (409 when the group changed meanwhile, or
    /// the new owner owns `groups.max_owned_per_user` groups).
    pub(crate) async fn transfer_ownership(
        &self,
        actor: UserId,
        group: GroupId,
        to: UserId,
    ) -> AppResult<()> {
        let seen = self.visible_group(group, actor).await?;
        seen.owner()?;
        let group = seen.id();
        if to == actor {
            return Err(AppError::validation("user_id", "you are the owner already"));
        }
        self.require_target(group, to).await?;
        if !groups::transfer(
            &self.mysql,
            group,
            actor,
            to,
            self.settings.groups.max_owned_per_user.get(),
        )
        .await?
        {
            return Err(AppError::Conflict {
                field: None,
                message: "the group changed meanwhile; reload and retry".into(),
            });
        }
        self.membership_changed(
            group,
            actor,
            json!({ "action": "transfer", "user_id": to, "by": actor }),
        )
        .await
    }

    async fn kicked(&self, group: GroupId, user: UserId, by: UserId) -> AppResult<()> {
        self.removed(
            group,
            user,
            json!({ "action": "kick", "user_id": user, "by": by }),
            by,
        )
        .await
    }

    /// What follows a member's removal: caches, their read position, the notice.
    async fn removed(
        &self,
        group: GroupId,
        user: UserId,
        description: serde_json::Value,
        by: UserId,
    ) -> AppResult<()> {
        self.hub.changed(Change::group(group)).await;
        reads::remove(&self.mongo, user, &ConversationId::Group(group).to_string()).await?;
        self.announce(group, by, description).await
    }
}
