//! Getting into a group: joining (open, by request), additions by members (friends at once,
//! anybody else by an invitation they decide themselves), and the managers' decisions on join
//! requests. Nobody becomes a member of a group without their consent or a manager's.

use serde_json::json;

use super::no_such_group;
use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::domain::{GroupId, JoinMode, RequestStatus, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::Change;
use crate::store::mysql::groups::{self, Group, JoinRequest, Membership};
use crate::store::mysql::invitations::{self, Invitation};
use crate::store::mysql::{relations, users};

/// What a join did.
pub(crate) enum Joined {
    /// An open group: the user is a member.
    Joined,
    /// An `approval` group: the join waits for a manager as this request.
    Pending(JoinRequest),
}

/// What adding someone to a group did.
pub(crate) enum Addition {
    /// They were a member already.
    Member,
    Joined,
    /// An `approval` group: the addition waits for a manager as this join request.
    Pending(JoinRequest),
    /// Not a friend of the adder: they were invited (the invitation already pending, if any).
    Invited(Invitation),
}

fn already_decided_request() -> AppError {
    AppError::Conflict {
        field: None,
        message: "this request was already decided".into(),
    }
}

fn already_decided_invitation() -> AppError {
    AppError::Conflict {
        field: None,
        message: "this invitation was already decided".into(),
    }
}

/// Whether this member may add people to the group at all: only managers in `invite_only`
/// groups.
fn may_add(group: &Group, adder: &Membership) -> AppResult<()> {
    if group.join_mode == JoinMode::InviteOnly && !adder.is_manager() {
        return Err(AppError::forbidden(
            "forbidden",
            "only the owner and admins may invite to this group",
        ));
    }
    Ok(())
}

impl Chat {
    /// A join by `user` with an optional message to the managers (already checked). The answers
    /// that need no lock (unknown, already a member, banned, at the limit) come first; only an
    /// open group's join then queues for the group's lock.
    pub(crate) async fn join_group(
        &self,
        user: UserId,
        group: GroupId,
        message: Option<&str>,
    ) -> AppResult<Joined> {
        let group = self.live_group(group).await?;
        if groups::membership(&self.mysql, group.id, user)
            .await?
            .is_some()
        {
            return Err(AppError::Conflict {
                field: None,
                message: "you are a member already".into(),
            });
        }
        // Nobody learns of an invite-only group by knocking on it.
        if group.join_mode == JoinMode::InviteOnly && !self.may_see(&group, user, None).await? {
            return Err(no_such_group());
        }
        self.ensure_can_join(group.id, user).await?;
        match group.join_mode {
            JoinMode::Open => {
                self.admit(group.id, user, user).await?;
                Ok(Joined::Joined)
            }
            JoinMode::Approval => {
                let request =
                    groups::request_join(&self.mysql, group.id, user, None, message).await?;
                Ok(Joined::Pending(request))
            }
            JoinMode::InviteOnly => Err(AppError::forbidden(
                "forbidden",
                "this group is invite-only",
            )),
        }
    }

    /// An addition of `user` by the member `actor`: a friend of theirs is added as
    /// [`Chat::add_by`] says; anybody else gets an invitation (pushed to them as
    /// `event: group` `{"kind": "invited"}`). A banned user, or one at the joined-groups limit,
    /// is refused before anything is queued; so is an addition between users one of whom
    /// blocks the other.
    pub(crate) async fn add_member(
        &self,
        actor: UserId,
        group: GroupId,
        user: UserId,
    ) -> AppResult<Addition> {
        let seen = self.visible_group(group, actor).await?;
        let adder = seen.member()?;
        let group = &seen.group;
        if !users::exists(&self.mysql, user).await? {
            return Err(AppError::NotFound("no such user".into()));
        }
        if relations::blocked_either_way(&self.mysql, actor, user).await? {
            return Err(AppError::forbidden(
                "blocked",
                "one of you has blocked the other",
            ));
        }
        if groups::membership(&self.mysql, group.id, user)
            .await?
            .is_some()
        {
            self.start_reading(user, group.id).await?;
            return Ok(Addition::Member);
        }
        self.ensure_can_join(group.id, user).await?;
        may_add(group, adder)?;
        self.antispam
            .check_event(actor, EventRule::Invites, EventScope::Actor, None)
            .await?;
        if !relations::relation(&self.mysql, actor, user)
            .await?
            .is_friend
        {
            return Ok(Addition::Invited(self.invite(group, actor, user).await?));
        }
        self.add_by(group, adder, user).await
    }

    /// Invites `invitee` (not a friend of `inviter`): the pending invitation, the one already
    /// pending when there is one (pushed to the invitee only the first time).
    async fn invite(
        &self,
        group: &Group,
        inviter: UserId,
        invitee: UserId,
    ) -> AppResult<Invitation> {
        let (invitation, created) =
            invitations::create(&self.mysql, group.id, invitee, inviter).await?;
        if created {
            self.push_to(
                vec![invitee],
                "group",
                &json!({
                    "kind": "invited",
                    "group_id": group.id.to_string(),
                    "invitation": invitation,
                }),
            )
            .await;
        }
        Ok(invitation)
    }

    /// Adds `user` as `adder` (a member) may: at once in open groups and when a manager adds,
    /// as a join request in approval groups, and only by managers in invite-only groups.
    async fn add_by(&self, group: &Group, adder: &Membership, user: UserId) -> AppResult<Addition> {
        may_add(group, adder)?;
        let by = UserId(adder.user_id);
        if group.join_mode == JoinMode::Approval && !adder.is_manager() {
            let request = groups::request_join(&self.mysql, group.id, user, Some(by), None).await?;
            return Ok(Addition::Pending(request));
        }
        self.admit(group.id, user, by).await?;
        Ok(Addition::Joined)
    }

    /// Adds the user (idempotently) under the group's lock and announces it; false when they
    /// already were a member. 404 when the group was dissolved meanwhile, 403 `banned`, 409
    /// `limit_reached` (checked in the transaction that adds them).
    pub(crate) async fn admit(&self, group: GroupId, user: UserId, by: UserId) -> AppResult<bool> {
        let lock = self.lock_group(group).await?;
        let added = self.admit_locked(group, user, by).await;
        lock.release().await;
        added
    }

    async fn admit_locked(&self, group: GroupId, user: UserId, by: UserId) -> AppResult<bool> {
        let added = groups::admit(
            &self.mysql,
            group,
            user,
            self.settings.groups.max_joined_per_user.get(),
        )
        .await?;
        self.joined(group, user, by, added).await?;
        Ok(added)
    }

    /// What follows an admission: caches, the read position (idempotent: also repairs one a
    /// failed earlier attempt did not create), the notice when the user was `added`.
    async fn joined(&self, group: GroupId, user: UserId, by: UserId, added: bool) -> AppResult<()> {
        if added {
            self.hub.changed(Change::group(group)).await;
        }
        self.start_reading(user, group).await?;
        if added {
            self.announce(
                group,
                by,
                json!({ "action": "join", "user_id": user, "by": by }),
            )
            .await?;
        }
        Ok(())
    }

    /// The join requests of a group, for its managers.
    pub(crate) async fn join_requests(
        &self,
        actor: UserId,
        group: GroupId,
        limit: i64,
        offset: i64,
    ) -> AppResult<(Vec<JoinRequest>, i64)> {
        let seen = self.visible_group(group, actor).await?;
        seen.manager()?;
        groups::list_join_requests(&self.mysql, seen.id(), limit, offset).await
    }

    /// A manager's decision on a join request (an unknown one, or one of another group: 404;
    /// one decided already: 409).
    pub(crate) async fn decide_request(
        &self,
        actor: UserId,
        group: GroupId,
        request: u64,
        accept: bool,
    ) -> AppResult<JoinRequest> {
        let seen = self.visible_group(group, actor).await?;
        seen.manager()?;
        let group = seen.id();
        let request = groups::find_join_request(&self.mysql, request)
            .await?
            .filter(|r| r.group_id == group)
            .ok_or_else(|| AppError::NotFound("no such join request".into()))?;
        if request.status != RequestStatus::Pending {
            return Err(already_decided_request());
        }
        if accept {
            self.ensure_can_join(group, request.user_id).await?;
        }
        let lock = self.lock_group(group).await?;
        let decided = self.decide_locked(group, request.id.0, accept, actor).await;
        lock.release().await;
        decided
    }

    async fn decide_locked(
        &self,
        group: GroupId,
        request: u64,
        accept: bool,
        by: UserId,
    ) -> AppResult<JoinRequest> {
        let (decided, added) = groups::decide_join_request(
            &self.mysql,
            group,
            request,
            accept,
            self.settings.groups.max_joined_per_user.get(),
        )
        .await?
        .ok_or_else(already_decided_request)?;
        if accept {
            self.joined(group, decided.user_id, by, added).await?;
        }
        Ok(decided)
    }

    /// The user's invitation: someone else's or an unknown one is 404 alike.
    async fn invitation_of(&self, user: UserId, id: u64) -> AppResult<Invitation> {
        invitations::find(&self.mysql, id)
            .await?
            .filter(|i| i.invitee == user)
            .ok_or_else(|| AppError::NotFound("no such invitation".into()))
    }

    /// Whether the invitation can still take its invitee into the group: the group is not
    /// dissolved, the inviter is still a member (the addition is theirs) and neither of the two
    /// blocks the other. Returns the group and the inviter's membership.
    async fn admission(&self, invitation: &Invitation) -> AppResult<(Group, Membership)> {
        let group = groups::find(&self.mysql, invitation.group.id)
            .await?
            .filter(|g| !g.dissolved)
            .ok_or_else(|| AppError::Conflict {
                field: None,
                message: "the group was dissolved: this invitation can no longer be accepted"
                    .into(),
            })?;
        let inviter = groups::membership(&self.mysql, group.id, invitation.inviter.id)
            .await?
            .ok_or_else(|| AppError::Conflict {
                field: None,
                message: "the inviter is no longer a member of this group: this invitation can \
                          no longer be accepted"
                    .into(),
            })?;
        if relations::blocked_either_way(&self.mysql, invitation.invitee, invitation.inviter.id)
            .await?
        {
            return Err(AppError::forbidden(
                "blocked",
                "one of you has blocked the other",
            ));
        }
        // A ban, or the joined-groups limit, refuses the invitation as it would a join.
        self.ensure_can_join(group.id, invitation.invitee).await?;
        Ok((group, inviter))
    }

    /// Accepting joins the group as if the inviter had added the user: at once, or as a join
    /// request for a manager in an `approval` group when the inviter is not a manager. Returns
    /// what the addition did (never [`Addition::Invited`]) and the decided invitation.
    pub(crate) async fn accept_invitation(
        &self,
        user: UserId,
        id: u64,
    ) -> AppResult<(Addition, Invitation)> {
        let invitation = self.invitation_of(user, id).await?;
        if invitation.status != RequestStatus::Pending {
            return Err(already_decided_invitation());
        }
        let (group, inviter) = self.admission(&invitation).await?;
        if !invitations::decide(&self.mysql, invitation.id.0, RequestStatus::Accepted).await? {
            return Err(already_decided_invitation());
        }
        let decided = Invitation {
            status: RequestStatus::Accepted,
            ..invitation
        };
        if groups::membership(&self.mysql, group.id, user)
            .await?
            .is_some()
        {
            return Ok((Addition::Member, decided));
        }
        match self.add_by(&group, &inviter, user).await {
            Ok(addition) => Ok((addition, decided)),
            Err(err) => {
                // Nothing came of the acceptance: the invitation stays the invitee's to decide.
                if let Err(reopen) = invitations::reopen(&self.mysql, decided.id.0).await {
                    tracing::warn!(error = %reopen, "accepted invitation not reopened");
                }
                Err(err)
            }
        }
    }

    /// Rejecting an invitation (409 once decided).
    pub(crate) async fn reject_invitation(&self, user: UserId, id: u64) -> AppResult<Invitation> {
        let invitation = self.invitation_of(user, id).await?;
        if invitation.status != RequestStatus::Pending
            || !invitations::decide(&self.mysql, invitation.id.0, RequestStatus::Rejected).await?
        {
            return Err(already_decided_invitation());
        }
        Ok(Invitation {
            status: RequestStatus::Rejected,
            ..invitation
        })
    }
}
