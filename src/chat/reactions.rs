//! Reactions (op 10): one of each emoji per user and message, at most
//! `messages.max_reactions_per_user` distinct per user and `messages.max_reaction_emoji` per
//! message; only who may read the conversation (and, in a group, speak in it: a muted member
//! does not react), never to the message of someone who blocked the reactor. Pushed as
//! `event: reaction` to every participant; the counts are computed for each reader.

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::domain::{ConversationId, Emoji, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::store::mongo::messages::{self, Message, ReactionCount, SYSTEM_TYPE};
use crate::store::mongo::reactions;

/// What op 10 answers and `event: reaction` carries (the answer adds the reader's counts).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reacted {
    pub conversation: String,
    pub message_id: String,
    pub user_id: String,
    pub emoji: &'static str,
    pub action: &'static str,
    /// The answer only: the message's reactions as the reactor sees them now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactions: Option<Vec<ReactionCount>>,
}

impl Chat {
    /// Adds (`add`) or takes back `user`'s reaction with `emoji` to message `id`. Doing what is
    /// done already changes nothing and pushes nothing.
    pub(crate) async fn react(
        &self,
        user: UserId,
        id: ObjectId,
        emoji: Emoji,
        add: bool,
        skip: ConnId,
    ) -> AppResult<Reacted> {
        let (doc, conversation) = self.readable_message(user, id).await?;
        if doc.kind == SYSTEM_TYPE {
            return Err(AppError::forbidden(
                "forbidden",
                "system messages take no reactions",
            ));
        }
        if let ConversationId::Group(group) = conversation {
            self.check_sender(user, group).await?;
        }
        // Who would be told: in a group the author, in a 1:1 the peer (also when the
        // reactor reacts to their own message there).
        let told = match conversation {
            ConversationId::Group(_) => UserId(u64::try_from(doc.from).unwrap_or(0)),
            direct => direct.peer_of(user).unwrap_or(user),
        };
        if told != user && self.blocked_by(told, user).await? {
            return Err(AppError::forbidden(
                "forbidden",
                "this user does not accept your reactions",
            ));
        }
        self.antispam
            .check_event(user, EventRule::Reactions, EventScope::Actor, None)
            .await?;
        let message_id = id.to_hex();
        if add && doc.reacted_at.is_none() {
            // Readers look its reactions up from now on; marked first, so a reaction is
            // never stored on a message whose readers would not look.
            messages::set_reacted(&self.mongo, id).await?;
        }
        let changed = if add {
            self.add_reaction(&message_id, user, &emoji).await?
        } else {
            reactions::remove(&self.mongo, &message_id, user, &emoji).await?
        };
        if changed && let Err(err) = messages::set_reacted(&self.mongo, id).await {
            // The change stands; only op 7's changed_since misses it.
            tracing::warn!(error = %err, message = %message_id, "a reaction change could not be stamped");
        }
        let mut reacted = Reacted {
            conversation: doc.conversation.clone(),
            message_id,
            user_id: user.to_string(),
            emoji: emoji.as_str(),
            action: if add { "add" } else { "remove" },
            reactions: None,
        };
        if changed {
            let audience = self.audience(conversation).await?;
            self.push_event("reaction", &reacted, audience, Some(skip))
                .await;
        }
        let mut message = Message::from(&doc);
        message.reacted = true;
        self.with_reactions(user, std::slice::from_mut(&mut message))
            .await?;
        reacted.reactions = Some(message.reactions);
        Ok(reacted)
    }

    /// Records a reaction within the limits. The limits are checked after the insert (and the
    /// insert taken back when over): two reactions racing may both be refused, never both
    /// let through past a limit.
    async fn add_reaction(&self, message_id: &str, user: UserId, emoji: &Emoji) -> AppResult<bool> {
        if !reactions::add(&self.mongo, message_id, user, emoji).await? {
            return Ok(false);
        }
        let limits = &self.settings.messages;
        let (mine, distinct) = tokio::try_join!(
            reactions::count_of_user(&self.mongo, message_id, user),
            reactions::distinct_emoji(&self.mongo, message_id),
        )?;
        let over = if mine > limits.max_reactions_per_user.get() {
            Some(format!(
                "at most {} different reactions per message",
                limits.max_reactions_per_user
            ))
        } else if distinct > limits.max_reaction_emoji.get() {
            Some(format!(
                "a message takes at most {} different emoji",
                limits.max_reaction_emoji
            ))
        } else {
            None
        };
        if let Some(why) = over {
            reactions::remove(&self.mongo, message_id, user, emoji).await?;
            return Err(AppError::LimitReached(why.into()));
        }
        Ok(true)
    }

    /// Whether `who` has blocked `user`.
    async fn blocked_by(&self, who: UserId, user: UserId) -> AppResult<bool> {
        Ok(self
            .hub
            .directory()
            .send_relation(&self.mysql, user, who)
            .await?
            .blocked_by_recipient)
    }

    /// Fills in the reactions of the messages that have any, as `reader` sees them (two
    /// MongoDB queries when some have, none otherwise).
    pub(crate) async fn with_reactions(
        &self,
        reader: UserId,
        messages: &mut [Message],
    ) -> AppResult<()> {
        let ids: Vec<String> = messages
            .iter()
            .filter(|m| m.reacted)
            .map(|m| m.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let (mut counts, mine) = tokio::try_join!(
            reactions::counts(&self.mongo, &ids),
            reactions::mine(&self.mongo, reader, &ids),
        )?;
        for message in messages.iter_mut().filter(|m| m.reacted) {
            message.reactions = counts
                .remove(&message.id)
                .unwrap_or_default()
                .into_iter()
                .map(|c| ReactionCount {
                    me: mine.contains(&(message.id.clone(), c.emoji.clone())),
                    emoji: c.emoji,
                    count: c.count,
                })
                .collect();
        }
        Ok(())
    }
}
