//! Pinned messages: in a group its owner and admins pin, in a 1:1 either participant (unless
//! the other blocked them); at most `messages.max_pins` per conversation. Pinning and
//! unpinning write a system message (type 10) and push `event: pinned` / `unpinned` to every
//! participant; a recalled message is unpinned.

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::chat::access::{group_view, no_such_message};
use crate::domain::{ConversationId, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mongo::messages::{self, Message, SYSTEM_TYPE};
use crate::store::mongo::pins::{self, PinDoc};

/// A pin as `GET /conversations/{c}/pins` lists it and `POST` answers it.
#[derive(Debug, Serialize)]
pub(crate) struct Pin {
    pub conversation: String,
    pub message: Message,
    pub pinned_by: String,
    pub pinned_at: Timestamp,
}

/// What `event: pinned` / `unpinned` carries.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PinEvent {
    pub conversation: String,
    pub message_id: String,
    /// Who pinned or unpinned it (the sender of a recall that unpinned it).
    pub by: String,
    pub at: Timestamp,
    /// `event: pinned` only: the pinned message (reactions counted, `me` false for all), so
    /// clients show it without asking for the pins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

impl Chat {
    /// Pins message `id` in `conversation`; true when it was not pinned before (nothing new
    /// is written or pushed otherwise).
    pub(crate) async fn pin(
        &self,
        user: UserId,
        conversation: ConversationId,
        id: ObjectId,
    ) -> AppResult<(Pin, bool)> {
        self.check_may_pin(user, conversation).await?;
        let (doc, found_in) = self.readable_message(user, id).await?;
        if found_in != conversation {
            return Err(no_such_message());
        }
        if doc.kind == SYSTEM_TYPE {
            return Err(AppError::validation(
                "message_id",
                "system messages cannot be pinned",
            ));
        }
        let name = conversation.to_string();
        let message_id = id.to_hex();
        self.antispam
            .check_event(user, EventRule::Pins, EventScope::Actor, None)
            .await?;
        let (pin, new) = pins::add(&self.mongo, &name, &message_id, user).await?;
        if new {
            // A recall racing the pin may have run its unpin before the pin was written.
            let recalled = messages::find_by_id(&self.mongo, id)
                .await?
                .is_none_or(|d| d.recalled_at.is_some());
            if recalled {
                pins::remove(&self.mongo, &name, &message_id).await?;
                return Err(no_such_message());
            }
            let max = self.settings.messages.max_pins.get();
            if pins::count(&self.mongo, &name).await? > max {
                pins::remove(&self.mongo, &name, &message_id).await?;
                return Err(AppError::LimitReached(
                    format!("at most {max} messages can be pinned in a conversation").into(),
                ));
            }
        }
        let message = self.message_for(user, &doc).await?;
        if new {
            self.pin_changed(
                conversation,
                &message_id,
                user,
                Some(message.for_everyone()),
            )
            .await?;
        }
        Ok((pin_of(pin, message), new))
    }

    /// Unpins message `id` (404 when it is not pinned there).
    pub(crate) async fn unpin(
        &self,
        user: UserId,
        conversation: ConversationId,
        id: ObjectId,
    ) -> AppResult<PinEvent> {
        self.check_may_pin(user, conversation).await?;
        self.antispam
            .check_event(user, EventRule::Pins, EventScope::Actor, None)
            .await?;
        let message_id = id.to_hex();
        if !pins::remove(&self.mongo, &conversation.to_string(), &message_id).await? {
            return Err(AppError::NotFound("no such pinned message".into()));
        }
        self.pin_changed(conversation, &message_id, user, None)
            .await
    }

    /// The pins of a conversation the caller may read, newest first.
    pub(crate) async fn pins(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> AppResult<Vec<Pin>> {
        self.check_participant(user, conversation).await?;
        let limit = i64::try_from(self.settings.messages.max_pins.get()).unwrap_or(i64::MAX);
        let listed = pins::list(&self.mongo, &conversation.to_string(), limit).await?;
        let ids: Vec<ObjectId> = listed
            .iter()
            .filter_map(|p| ObjectId::parse_str(&p.message_id).ok())
            .collect();
        let docs = messages::find_many(&self.mongo, &ids).await?;
        let mut found: Vec<Message> = docs
            .iter()
            .filter(|d| d.recalled_at.is_none() && !d.hidden_for(user))
            .map(Message::from)
            .collect();
        self.with_reactions(user, &mut found).await?;
        Ok(listed
            .into_iter()
            .filter_map(|pin| {
                let at = found.iter().position(|m| m.id == pin.message_id)?;
                Some(pin_of(pin, found.swap_remove(at)))
            })
            .collect())
    }

    /// After a recall: the message's pin goes, and the participants are told.
    pub(crate) async fn unpin_recalled(
        &self,
        user: UserId,
        conversation: ConversationId,
        id: ObjectId,
    ) -> AppResult<()> {
        let message_id = id.to_hex();
        if pins::remove(&self.mongo, &conversation.to_string(), &message_id).await? {
            let event = pin_event(conversation, &message_id, user);
            let audience = self.audience(conversation).await?;
            self.push_event("unpinned", &event, audience, None).await;
        }
        Ok(())
    }

    /// Who may pin here: a group's owner and admins (not in a dissolved group, not the lobby),
    /// either participant of a 1:1 the other has not blocked them in.
    async fn check_may_pin(&self, user: UserId, conversation: ConversationId) -> AppResult<()> {
        self.check_participant(user, conversation).await?;
        match conversation {
            ConversationId::Group(group) => {
                let manager = if group.is_lobby() {
                    false
                } else {
                    let view = group_view(self, group)
                        .await?
                        .filter(|v| !v.group.dissolved)
                        .ok_or_else(|| AppError::NotFound("no such group".into()))?;
                    view.members.get(&user).is_some_and(|m| m.is_manager())
                };
                if manager {
                    Ok(())
                } else {
                    Err(AppError::forbidden(
                        "forbidden",
                        "only the owner and admins may pin messages",
                    ))
                }
            }
            direct => match direct.peer_of(user) {
                Some(peer) if peer != user => {
                    let relation = self
                        .hub
                        .directory()
                        .send_relation(&self.mysql, user, peer)
                        .await?;
                    if relation.blocked_by_recipient {
                        return Err(AppError::forbidden(
                            "forbidden",
                            "this user does not accept your messages",
                        ));
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
        }
    }

    /// The system message and the event of a pin (with the pinned message) or an unpin
    /// (`pinned` None).
    async fn pin_changed(
        &self,
        conversation: ConversationId,
        message_id: &str,
        user: UserId,
        pinned: Option<Message>,
    ) -> AppResult<PinEvent> {
        let kind = if pinned.is_some() {
            "pinned"
        } else {
            "unpinned"
        };
        self.system_notice(
            conversation,
            user,
            serde_json::json!({ "action": kind, "message_id": message_id, "by": user.to_string() }),
        )
        .await?;
        let mut event = pin_event(conversation, message_id, user);
        event.message = pinned;
        let audience = self.audience(conversation).await?;
        self.push_event(kind, &event, audience, None).await;
        Ok(event)
    }
}

fn pin_event(conversation: ConversationId, message_id: &str, by: UserId) -> PinEvent {
    PinEvent {
        conversation: conversation.to_string(),
        message_id: message_id.to_owned(),
        by: by.to_string(),
        at: Timestamp::now(),
        message: None,
    }
}

fn pin_of(pin: PinDoc, message: Message) -> Pin {
    Pin {
        conversation: pin.conversation,
        message,
        pinned_by: pin.pinned_by.to_string(),
        pinned_at: Timestamp::from_millis(pin.pinned_at).unwrap_or_default(),
    }
}
