//! Editing a message (op 9): only its sender, within `messages.edit_window_secs`, at most
//! `messages.max_edits` times, never a recalled or system message, and only while the sender
//! may still send there (a block, a mute or a leave ends it). The replaced texts stay in the
//! stored document only; readers, replies quoting it and search see the new text.

use mongodb::bson::oid::ObjectId;

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::chat::access::no_such_message;
use crate::domain::terms::terms;
use crate::domain::{ConversationId, MessageContent, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::store::mongo::messages::{self, Edit, EditDoc, Message, SYSTEM_TYPE, user_key};

/// Tries of an edit that raced another edit of the same message.
const EDIT_TRIES: usize = 3;

fn refused(why: impl Into<std::borrow::Cow<'static, str>>) -> AppError {
    AppError::forbidden("forbidden", why)
}

impl Chat {
    /// Replaces the text (or caption) of `user`'s message `id`. The same text again changes
    /// nothing and pushes nothing; otherwise `event: edited` goes to every participant.
    pub(crate) async fn edit_message(
        &self,
        user: UserId,
        id: ObjectId,
        content: MessageContent,
        skip: ConnId,
    ) -> AppResult<Message> {
        let mut checked = false;
        for _ in 0..EDIT_TRIES {
            let (doc, conversation) = self.message_by_id(id).await?;
            self.check_participant(user, conversation)
                .await
                .map_err(|_| no_such_message())?;
            if doc.hidden_for(user) {
                return Err(no_such_message());
            }
            self.check_editable(user, &doc)?;
            if doc.content == content.as_str() {
                return self.message_for(user, &doc).await;
            }
            if !checked {
                self.check_may_still_send(user, conversation).await?;
                self.antispam
                    .check_event(
                        user,
                        EventRule::Edits,
                        EventScope::Actor,
                        Some(content.as_str()),
                    )
                    .await?;
                checked = true;
            }
            let at_ms = chrono::Utc::now().timestamp_millis();
            let mut history = doc.edits.clone();
            history.push(EditDoc {
                content: doc.content.clone(),
                at: at_ms,
            });
            let mut edited = doc.clone();
            edited.content = content.as_str().to_owned();
            edited.edited_at = Some(at_ms);
            let edit = Edit {
                content: content.as_str(),
                edits: &history,
                terms: terms(content.as_str()),
                at_ms,
                excerpt: edited.excerpt(),
            };
            if !messages::edit(&self.mongo, &doc, edit).await? {
                // Edited or recalled meanwhile: read it again.
                continue;
            }
            edited.edits = history;
            let mine = self.message_for(user, &edited).await?;
            let event = mine.for_everyone();
            let audience = self.audience(conversation).await?;
            self.push_event("edited", &event, audience, Some(skip))
                .await;
            return Ok(mine);
        }
        Err(AppError::Conflict {
            field: None,
            message: "the message kept changing; try again".into(),
        })
    }

    /// The rules of the message itself: the sender's, not recalled, not a system message, in
    /// the window, under the edit limit.
    fn check_editable(&self, user: UserId, doc: &messages::MessageDoc) -> AppResult<()> {
        let limits = &self.settings.messages;
        if doc.kind == SYSTEM_TYPE {
            return Err(refused("system messages cannot be edited"));
        }
        if doc.recalled_at.is_some() {
            return Err(refused("a recalled message cannot be edited"));
        }
        if doc.from != user_key(user) {
            return Err(refused("only the sender may edit a message"));
        }
        if doc.forwarded {
            // A copy speaks in its author's name: changing it would put words in their mouth.
            return Err(refused("a forwarded message cannot be edited"));
        }
        let window_ms =
            i64::try_from(limits.edit_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let age_ms = chrono::Utc::now().timestamp_millis() - doc.created_at.timestamp_millis();
        if age_ms > window_ms {
            return Err(refused(format!(
                "messages can only be edited within {} seconds",
                limits.edit_window_secs
            )));
        }
        if doc.edits.len() >= usize::try_from(limits.max_edits).unwrap_or(usize::MAX) {
            return Err(refused(format!(
                "a message can be edited at most {} times",
                limits.max_edits
            )));
        }
        Ok(())
    }

    /// An edit speaks again: who could not send there now (blocked by the peer, muted, a
    /// dissolved group) cannot edit either.
    async fn check_may_still_send(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> AppResult<()> {
        match conversation {
            ConversationId::Group(group) => self.check_sender(user, group).await.map(|_| ()),
            direct => match direct.peer_of(user) {
                Some(peer) if peer != user => self.check_recipient(user, peer).await.map(|_| ()),
                _ => Ok(()),
            },
        }
    }

    /// A stored message as `reader` sees it (with their reactions).
    pub(crate) async fn message_for(
        &self,
        reader: UserId,
        doc: &messages::MessageDoc,
    ) -> AppResult<Message> {
        let mut message = Message::from(doc);
        self.with_reactions(reader, std::slice::from_mut(&mut message))
            .await?;
        Ok(message)
    }
}
