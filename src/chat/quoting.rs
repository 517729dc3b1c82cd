//! What a send refers to: the message it answers (`reply_to`, same conversation), the message
//! it copies (`forward_of`, any message the sender can read now) and the members it mentions
//! (op 6). A message the sender may not read is answered as one that does not exist.

use mongodb::bson::oid::ObjectId;

use crate::chat::Chat;
use crate::chat::access::{group_view, no_such_message};
use crate::chat::sending::{Mentions, Resolved, file_fingerprint, place_fingerprint};
use crate::domain::{ConversationId, FileId, GroupId, MessageType, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mongo::messages::{
    self, MENTION_ALL, Message, MessageDoc, ReplyDoc, ReplyTo, SYSTEM_TYPE,
};

impl Chat {
    /// A message `user` may read now (a participant, not deleted for them, not recalled), with
    /// its conversation; anything else is "no such message" (40004).
    pub(crate) async fn readable_message(
        &self,
        user: UserId,
        id: ObjectId,
    ) -> AppResult<(MessageDoc, ConversationId)> {
        let (doc, conversation) = self.message_by_id(id).await?;
        if doc.recalled_at.is_some() || doc.hidden_for(user) {
            return Err(no_such_message());
        }
        self.check_participant(user, conversation)
            .await
            .map_err(|_| no_such_message())?;
        Ok((doc, conversation))
    }

    /// What a reply keeps of the message it answers, which must be in `conversation`.
    pub(crate) async fn reply_doc(
        &self,
        from: UserId,
        conversation: ConversationId,
        answered: ObjectId,
    ) -> AppResult<ReplyDoc> {
        let (doc, found_in) = self.readable_message(from, answered).await?;
        if found_in != conversation {
            return Err(no_such_message());
        }
        if doc.kind == SYSTEM_TYPE {
            return Err(AppError::forbidden(
                "forbidden",
                "system messages take no replies",
            ));
        }
        Ok(ReplyDoc {
            id: doc.id.to_hex(),
            from: doc.from,
            kind: doc.kind,
            excerpt: Some(doc.excerpt()),
            recalled_at: None,
            edited_at: doc.edited_at,
        })
    }

    /// After a reply is stored: the message it quotes may have been edited or recalled
    /// between the quote and the store, after that edit's or recall's update of the replies
    /// ran; the stored quote is brought up to date (the reply itself stays acknowledged).
    /// Runs beside the ack, not before it: only a reply that raced needs it.
    pub(crate) fn settle_reply_later(&self, reply: &Message) {
        if reply.reply_to.is_none() {
            return;
        }
        let (chat, reply) = (self.clone(), reply.clone());
        tokio::spawn(async move { chat.settle_reply(&reply).await });
    }

    async fn settle_reply(&self, reply: &Message) {
        let Some(quoted) = &reply.reply_to else {
            return;
        };
        let (Ok(reply_id), Ok(original)) = (
            ObjectId::parse_str(&reply.id),
            ObjectId::parse_str(&quoted.id),
        ) else {
            return;
        };
        let settled = async {
            let Some(doc) = messages::find_by_id(&self.mongo, original).await? else {
                return Ok(());
            };
            let Some(quote) = messages::refresh_reply(&self.mongo, reply_id, &doc).await? else {
                return Ok(());
            };
            let Some(conversation) = ConversationId::parse(&reply.conversation) else {
                return Ok(());
            };
            // The reply went out quoting what is gone now: the participants get it again as
            // `event: edited`, its quote up to date.
            let mut updated = reply.clone();
            updated.reply_to = Some(ReplyTo::from(&quote));
            let audience = self.audience(conversation).await?;
            self.push_event("edited", &updated.for_everyone(), audience, None)
                .await;
            Ok::<(), AppError>(())
        }
        .await;
        if let Err(err) = settled {
            tracing::warn!(error = %err, reply = %reply.id, "a reply's quote could not be brought up to date");
        }
    }

    /// A copy of `original` for `dest`: its type, text, attachment and place; its author shown
    /// only when everyone in `dest` may read where it came from.
    pub(crate) async fn forward_copy(
        &self,
        from: UserId,
        dest: ConversationId,
        original: ObjectId,
    ) -> AppResult<Resolved> {
        let (doc, source) = self.readable_message(from, original).await?;
        if doc.kind == SYSTEM_TYPE {
            return Err(no_such_message());
        }
        let author = if doc.forwarded {
            doc.forwarded_from
        } else {
            Some(doc.from)
        };
        let shown = match author {
            Some(author) if self.source_readable_in(source, dest, from).await? => Some(author),
            _ => None,
        };
        let attachment = doc
            .attachment
            .clone()
            .and_then(|a| FileId::parse(&a.file_id).map(|file| (file, a)));
        let fingerprint = match (&attachment, &doc.location) {
            (Some((file, _)), _) => file_fingerprint(&file.to_hex(), &doc.content),
            (None, Some(place)) => place_fingerprint(place, &doc.content),
            (None, None) => doc.content.clone(),
        };
        Ok(Resolved {
            kind: MessageType(doc.kind),
            content: doc.content,
            attachment,
            location: doc.location,
            fingerprint,
            reply_to: None,
            forwarded: Some(shown),
        })
    }

    /// Whether everyone who reads `dest` may read `source` too (so a forward may say whose the
    /// original was).
    async fn source_readable_in(
        &self,
        source: ConversationId,
        dest: ConversationId,
        sender: UserId,
    ) -> AppResult<bool> {
        if source == dest || source == ConversationId::Group(GroupId::LOBBY) {
            return Ok(true);
        }
        match dest {
            ConversationId::Direct { .. } => {
                let reader = dest.peer_of(sender).unwrap_or(sender);
                self.may_read_now(reader, source).await
            }
            ConversationId::Group(group) if group.is_lobby() => Ok(false),
            ConversationId::Group(group) => {
                let (ConversationId::Group(source_group), Some(readers)) =
                    (source, group_view(self, group).await?)
                else {
                    return Ok(false);
                };
                let Some(source_view) = group_view(self, source_group).await? else {
                    return Ok(false);
                };
                Ok(readers
                    .members
                    .keys()
                    .all(|u| source_view.members.contains_key(u)))
            }
        }
    }

    /// Whether `user` takes part in the conversation now (from the cached group view).
    async fn may_read_now(&self, user: UserId, conversation: ConversationId) -> AppResult<bool> {
        Ok(match conversation {
            ConversationId::Direct { .. } => conversation.peer_of(user).is_some(),
            ConversationId::Group(group) if group.is_lobby() => true,
            ConversationId::Group(group) => group_view(self, group)
                .await?
                .is_some_and(|view| view.members.contains_key(&user)),
        })
    }

    /// The mentions of a group message as stored, and the members they reach (never the
    /// sender): members among the named users, or every member for `all` (owner and admins
    /// only, else 40003).
    pub(crate) async fn mentioned(
        &self,
        from: UserId,
        group: GroupId,
        mentions: Option<&Mentions>,
    ) -> AppResult<(Vec<String>, Vec<UserId>)> {
        let Some(mentions) = mentions else {
            return Ok((Vec::new(), Vec::new()));
        };
        let view = if group.is_lobby() {
            None
        } else {
            group_view(self, group).await?
        };
        match mentions {
            Mentions::All => {
                let manager = view
                    .as_ref()
                    .and_then(|v| v.members.get(&from))
                    .is_some_and(|m| m.is_manager());
                if !manager {
                    return Err(AppError::forbidden(
                        "forbidden",
                        "only the owner and admins may mention everyone",
                    ));
                }
                let everyone = view
                    .map(|v| v.member_ids().into_iter().filter(|u| *u != from).collect())
                    .unwrap_or_default();
                Ok((vec![MENTION_ALL.to_owned()], everyone))
            }
            Mentions::Users(users) => {
                let members: Vec<UserId> = users
                    .iter()
                    .copied()
                    .filter(|u| *u != from)
                    .filter(|u| view.as_ref().is_some_and(|v| v.members.contains_key(u)))
                    .collect();
                Ok((members.iter().map(ToString::to_string).collect(), members))
            }
        }
    }
}
