//! Who may read and send where: the one place the right to read a conversation
//! ([`can_read`]), to take part in it and to send to a user or a group is decided.

use std::collections::HashMap;
use std::sync::Arc;

use mongodb::bson::oid::ObjectId;

use crate::chat::Chat;
use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::GroupView;
use crate::store::mongo::messages::{self, MessageDoc};
use crate::store::mongo::reads;
use crate::store::mongo::reads::ReadPosition;
use crate::store::mysql::groups::{self, MemberOf, Membership};
use crate::store::mysql::invitations;
use crate::store::mysql::relations::SendRelation;

impl Chat {
    /// Checks that `user` takes part in the conversation.
    /// Not a participant → 40003; an unknown group → 40004.
    pub(crate) async fn check_participant(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> AppResult<()> {
        match conversation {
            ConversationId::Direct { .. } => {
                if conversation.peer_of(user).is_some() {
                    Ok(())
                } else {
                    Err(not_participant())
                }
            }
            ConversationId::Group(group) => self.check_member(user, group).await,
        }
    }

    pub(crate) async fn check_member(&self, user: UserId, group: GroupId) -> AppResult<()> {
        if group.is_lobby() {
            return Ok(());
        }
        match group_view(self, group).await? {
            None => Err(AppError::NotFound("no such group".into())),
            Some(view) => membership_in(self, &view, user).await.map(|_| ()),
        }
    }

    /// Whether a non-member may know that a private group exists: they have a pending request to
    /// join it or a pending invitation into it.
    pub(crate) async fn knows_of(&self, group: GroupId, user: UserId) -> AppResult<bool> {
        if groups::has_pending_request(&self.mysql, group, user).await? {
            return Ok(true);
        }
        Ok(invitations::pending_of(&self.mysql, group, user)
            .await?
            .is_some())
    }

    /// Checks many conversations at once.
    pub(crate) async fn check_participant_all(
        &self,
        user: UserId,
        conversations: &[ConversationId],
    ) -> AppResult<()> {
        for conversation in conversations {
            self.check_participant(user, *conversation).await?;
        }
        Ok(())
    }

    /// Checks that `user` may read the conversation and that it exists: a participant of a 1:1
    /// with a user who exists (40004 / 404 otherwise), a member of a group. Used before anything
    /// that writes the caller's position, so nobody makes rows for conversations that are not there.
    pub(crate) async fn can_read(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> AppResult<()> {
        self.check_participant(user, conversation).await?;
        if let Some(peer) = conversation.peer_of(user)
            && peer != user
        {
            let relation = self
                .hub
                .directory()
                .send_relation(&self.mysql, user, peer)
                .await?;
            if !relation.recipient_exists {
                return Err(AppError::NotFound("no such conversation".into()));
            }
        }
        Ok(())
    }

    /// The read positions of the conversations the user may read now. A stored position is never a
    /// right by itself: one left behind by a leave whose delete failed, or re-created by a race, is
    /// ignored here.
    pub(crate) async fn readable_positions(
        &self,
        user: UserId,
    ) -> AppResult<(Vec<(ConversationId, ReadPosition)>, ReadRights)> {
        let (positions, rights) =
            tokio::try_join!(reads::list(&self.mongo, user), ReadRights::of(self, user))?;
        let readable = positions
            .into_iter()
            .filter_map(|p| ConversationId::parse(&p.conversation).map(|c| (c, p)))
            .filter(|(c, _)| rights.may_read(*c))
            .collect();
        Ok((readable, rights))
    }

    /// Checks that `from` may reach `to` directly (a message or a typing notice): the recipient
    /// exists (40004), has not blocked the sender and, when `messaging.require_friendship` is on, is
    /// a friend (40003).
    pub(crate) async fn check_recipient(
        &self,
        from: UserId,
        to: UserId,
    ) -> AppResult<SendRelation> {
        let relation = self
            .hub
            .directory()
            .send_relation(&self.mysql, from, to)
            .await?;
        if !relation.recipient_exists {
            return Err(AppError::NotFound("no such user".into()));
        }
        if relation.blocked_by_recipient {
            return Err(AppError::forbidden(
                "forbidden",
                "this user does not accept your messages",
            ));
        }
        if self.settings.messaging.require_friendship && !relation.friends {
            return Err(AppError::forbidden(
                "forbidden",
                "you can only message your friends",
            ));
        }
        Ok(relation)
    }

    /// Whether either of two users has blocked the other: then nothing ephemeral of one (typing,
    /// read receipts) is pushed to the other.
    pub(crate) async fn blocked_either_way(&self, a: UserId, b: UserId) -> AppResult<bool> {
        let directory = self.hub.directory();
        let (a_to_b, b_to_a) = tokio::try_join!(
            directory.send_relation(&self.mysql, a, b),
            directory.send_relation(&self.mysql, b, a),
        )?;
        Ok(a_to_b.blocked_by_recipient || b_to_a.blocked_by_recipient)
    }

    /// Who may send to a group right now: a member of a group that is not dissolved, not muted
    /// (the whole group, unless a manager; or personally). Returns the sender's group nickname.
    pub(crate) async fn check_sender(
        &self,
        user: UserId,
        group: GroupId,
    ) -> AppResult<Option<String>> {
        if group.is_lobby() {
            return Ok(None);
        }
        let view = group_view(self, group).await?;
        let Some(view) = view.filter(|v| !v.group.dissolved) else {
            return Err(AppError::NotFound("no such group".into()));
        };
        let membership = membership_in(self, &view, user).await?;
        if view.group.muted && !membership.is_manager() {
            return Err(AppError::forbidden("forbidden", "the group is muted"));
        }
        if let Some(until) = membership.muted_until() {
            return Err(AppError::forbidden(
                "forbidden",
                format!(
                    "you are muted in this group until {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ));
        }
        Ok(membership.nickname.clone())
    }

    /// A stored message and its conversation, for a caller who will check the right to it (and
    /// answer someone else's id as unknown: 404 / 40004 "no such message", as for a missing one).
    pub(crate) async fn message_by_id(
        &self,
        id: ObjectId,
    ) -> AppResult<(MessageDoc, ConversationId)> {
        let doc = messages::find_by_id(&self.mongo, id)
            .await?
            .ok_or_else(no_such_message)?;
        let conversation = ConversationId::parse(&doc.conversation).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "stored conversation id {}",
                doc.conversation
            ))
        })?;
        Ok((doc, conversation))
    }
}

/// The user's membership of the group, or the refusal for whom is not in it. A private group's
/// existence is not revealed to a stranger: the very answer of an unknown id (as
/// `GET /groups/{id}` gives); who has a pending request or invitation gets "not a participant".
async fn membership_in<'v>(
    state: &Chat,
    view: &'v GroupView,
    user: UserId,
) -> AppResult<&'v Membership> {
    if let Some(membership) = view.members.get(&user) {
        return Ok(membership);
    }
    if view.group.join_mode.is_private() && !state.knows_of(view.group.id, user).await? {
        return Err(AppError::NotFound("no such group".into()));
    }
    Err(not_participant())
}

/// A group with its members, from the cache in front of MySQL.
pub(crate) async fn group_view(state: &Chat, group: GroupId) -> AppResult<Option<Arc<GroupView>>> {
    state.hub.directory().group(&state.mysql, group).await
}

/// The user's current right to read, for all their conversations at once: one MySQL query for
/// every group they are a member of (dissolved ones included: the members at dissolution keep
/// reading them), whatever their number.
pub(crate) struct ReadRights {
    user: UserId,
    groups: HashMap<GroupId, MemberOf>,
}

impl ReadRights {
    pub(crate) async fn of(state: &Chat, user: UserId) -> AppResult<Self> {
        let groups = groups::all_memberships_of(&state.mysql, user)
            .await?
            .into_iter()
            .map(|m| (m.group, m))
            .collect();
        Ok(Self { user, groups })
    }

    pub(crate) fn may_read(&self, conversation: ConversationId) -> bool {
        match conversation {
            ConversationId::Direct { .. } => conversation.peer_of(self.user).is_some(),
            ConversationId::Group(group) => group.is_lobby() || self.groups.contains_key(&group),
        }
    }

    /// The groups the user may read (the lobby not among them).
    pub(crate) fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// The user's membership of a group (None for the lobby and groups they are not in).
    pub(crate) fn membership(&self, group: GroupId) -> Option<&MemberOf> {
        self.groups.get(&group)
    }
}

pub(crate) fn not_participant() -> AppError {
    AppError::forbidden(
        "forbidden",
        "you are not a participant of this conversation",
    )
}

/// The answer for a message that is missing or not the caller's to know of.
pub(crate) fn no_such_message() -> AppError {
    AppError::NotFound("no such message".into())
}
