//! Relations between users: friend requests and their decisions, ending a friendship, blocks,
//! and their pushes (a request to its recipient, a new friendship to both, each with the other's
//! profile as they see it, an ended one to both). A block ends a friendship; a blocked user
//! cannot message or befriend the blocker.

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::domain::{RequestStatus, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::Change;
use crate::store::mysql::relations::{self, FriendRequest};
use crate::store::mysql::users;

impl Chat {
    /// Pushes a friend request (new, or decided) to `to`.
    pub(crate) async fn push_request(&self, to: UserId, request: &FriendRequest) {
        self.push_to(
            vec![to],
            "friend_request",
            &serde_json::json!({ "request": request }),
        )
        .await;
    }

    /// Tells both users they are friends now, each with the other's profile.
    pub(crate) async fn push_friendship(&self, a: UserId, b: UserId) -> AppResult<()> {
        let both = users::find_many(&self.mysql, &[a, b]).await?;
        for user in both {
            let other = if user.id == a { b } else { a };
            let profile = self.profile_of(other, user).await?;
            self.push_to(
                vec![other],
                "friend",
                &serde_json::json!({ "action": "added", "user": profile }),
            )
            .await;
        }
        Ok(())
    }

    /// Tells both users their friendship ended.
    pub(crate) async fn push_unfriended(&self, a: UserId, b: UserId) {
        self.push_to(
            vec![a],
            "friend",
            &serde_json::json!({ "action": "removed", "user_id": b }),
        )
        .await;
        self.push_to(
            vec![b],
            "friend",
            &serde_json::json!({ "action": "removed", "user_id": a }),
        )
        .await;
    }
}

/// What a friend request did.
pub(crate) enum Asked {
    /// They had asked first: asking back accepted their request; friends now.
    Accepted(FriendRequest),
    /// A request of the caller's that is pending (or ignored, which looks pending to them).
    Existing(FriendRequest),
    /// A new request, pushed to its recipient.
    Created(FriendRequest),
}

/// How a friend request is decided by its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Accept,
    Reject,
    /// Stays silent: the requester keeps seeing it pending.
    Ignore,
}

impl Decision {
    /// The decision of a path word (`accept`, `reject`, `ignore`).
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "accept" => Some(Self::Accept),
            "reject" => Some(Self::Reject),
            "ignore" => Some(Self::Ignore),
            _ => None,
        }
    }

    fn status(self) -> RequestStatus {
        match self {
            Self::Accept => RequestStatus::Accepted,
            Self::Reject => RequestStatus::Rejected,
            Self::Ignore => RequestStatus::Ignored,
        }
    }
}

impl Chat {
    /// A friend request from `me` to `to` with an optional message (checked already): refused
    /// between users one of whom blocks the other, and between friends; counted by the
    /// `friend_requests` rule (its message by the duplicate rule, as a chat message would be)
    /// before anything is written or pushed.
    pub(crate) async fn ask_friend(
        &self,
        me: UserId,
        to: UserId,
        message: Option<&str>,
    ) -> AppResult<Asked> {
        if to == me {
            return Err(AppError::validation(
                "user_id",
                "you cannot befriend yourself",
            ));
        }
        if !users::exists(&self.mysql, to).await? {
            return Err(AppError::NotFound("no such user".into()));
        }
        if relations::blocked_either_way(&self.mysql, me, to).await? {
            return Err(AppError::forbidden(
                "blocked",
                "one of you has blocked the other",
            ));
        }
        if relations::relation(&self.mysql, me, to).await?.is_friend {
            return Err(AppError::Conflict {
                field: Some("user_id"),
                message: "you are friends already".into(),
            });
        }
        self.antispam
            .check_event(me, EventRule::FriendRequests, EventScope::Actor, message)
            .await?;
        // They asked first: asking back is saying yes.
        if let Some(theirs) = relations::pending_between(&self.mysql, to, me).await?
            && let Some(accepted) =
                relations::decide(&self.mysql, theirs.id.0, RequestStatus::Accepted).await?
        {
            self.befriended(&accepted).await?;
            return Ok(Asked::Accepted(accepted));
        }
        // An ignored request stays "pending" to its sender: asking again changes nothing.
        if let Some(ignored) = relations::ignored_between(&self.mysql, me, to).await? {
            return Ok(Asked::Existing(ignored));
        }
        let (request, created) = relations::create_request(&self.mysql, me, to, message).await?;
        if !created {
            return Ok(Asked::Existing(request));
        }
        self.push_request(to, &request).await;
        Ok(Asked::Created(request))
    }

    /// The recipient `me` decides request `id` (someone else's or an unknown one: 404; its
    /// sender may not: 403; decided already: 409).
    pub(crate) async fn decide_friend_request(
        &self,
        me: UserId,
        id: u64,
        decision: Decision,
    ) -> AppResult<FriendRequest> {
        let not_found = || AppError::NotFound("no such friend request".into());
        let request = relations::find_request(&self.mysql, id)
            .await?
            .ok_or_else(not_found)?;
        if request.from == me {
            return Err(AppError::forbidden(
                "forbidden",
                "only the recipient decides a request",
            ));
        }
        if request.to != me {
            return Err(not_found());
        }
        let decided = relations::decide(&self.mysql, id, decision.status())
            .await?
            .ok_or_else(|| AppError::Conflict {
                field: None,
                message: "this request was already decided".into(),
            })?;
        match decision {
            Decision::Accept => self.befriended(&decided).await?,
            Decision::Reject => self.push_request(decided.from, &decided).await,
            Decision::Ignore => {}
        }
        Ok(decided)
    }

    /// What follows an accepted request: caches, the answer to the requester, both told.
    async fn befriended(&self, accepted: &FriendRequest) -> AppResult<()> {
        self.hub
            .changed(Change::pair(accepted.from, accepted.to))
            .await;
        self.push_request(accepted.from, accepted).await;
        self.push_friendship(accepted.from, accepted.to).await
    }

    /// Ends a friendship (404 when there is none); both are told.
    pub(crate) async fn unfriend(&self, me: UserId, friend: UserId) -> AppResult<()> {
        if !relations::unfriend(&self.mysql, me, friend).await? {
            return Err(AppError::NotFound("not your friend".into()));
        }
        self.hub.changed(Change::pair(me, friend)).await;
        self.push_unfriended(me, friend).await;
        Ok(())
    }

    /// `me` blocks `other` (ending a friendship); true when the block is new.
    pub(crate) async fn block(&self, me: UserId, other: UserId) -> AppResult<bool> {
        if other == me {
            return Err(AppError::validation("user_id", "you cannot block yourself"));
        }
        if !users::exists(&self.mysql, other).await? {
            return Err(AppError::NotFound("no such user".into()));
        }
        let (created, unfriended) = relations::block(&self.mysql, me, other).await?;
        self.hub.changed(Change::pair(me, other)).await;
        if unfriended {
            self.push_unfriended(me, other).await;
        }
        Ok(created)
    }

    /// Lifts a block (404 when there is none).
    pub(crate) async fn unblock(&self, me: UserId, other: UserId) -> AppResult<()> {
        if !relations::unblock(&self.mysql, me, other).await? {
            return Err(AppError::NotFound("this user is not blocked".into()));
        }
        self.hub.changed(Change::pair(me, other)).await;
        Ok(())
    }
}
