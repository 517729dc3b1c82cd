//! Sending (ops 1 and 6): who may send where, anti-spam, then the group-commit writer; the
//! message is durable before it is answered, and pushed to the recipients' live connections
//! (not back to the connection it came from).
//!
//! A send is two steps so that an edge can keep a connection's sends in order: [`Chat::send`]
//! and [`Chat::send_to_group`] check and queue (the connection's next send may go once they
//! return), [`Pending::stored`] waits until the message is stored.

use mongodb::bson::oid::ObjectId;

use crate::antispam;
use crate::chat::Chat;
use crate::chat::writer::{Draft, Extras, Outcome, Queued};
use crate::domain::{
    ConversationId, FileId, GroupId, Location, MessageContent, MessageType, Payload, UserId,
};
use crate::error::AppResult;
use crate::hub::{Audience, ConnId};
use crate::store::mongo::messages::{AttachmentDoc, Message, ReplyDoc};

/// A message written by its sender (checked already: type, content rules, payload shape).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Composed {
    pub kind: MessageType,
    /// The text; for the types that carry something else, an optional caption.
    pub content: Option<MessageContent>,
    pub payload: Payload,
}

/// What a send carries: a message of the sender's, or a copy of one they can read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    New(Composed),
    /// The id of the message to forward.
    Forward(ObjectId),
}

/// Whom a group message mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mentions {
    /// These users (those who are members are kept).
    Users(Vec<UserId>),
    /// Every member (owner and admins only).
    All,
}

/// A message as a client sends it.
pub(crate) struct NewMessage {
    pub body: Body,
    /// The message of the same conversation it answers.
    pub reply_to: Option<ObjectId>,
    /// Group messages: whom it mentions.
    pub mentions: Option<Mentions>,
    /// The client's id of the send: a retry with the same one stores nothing new.
    pub client_msg_id: Option<String>,
}

/// A message ready for the writer: its attachment resolved to the sender's upload (or the
/// forwarded original's), what it answers or copies looked up.
pub(crate) struct Resolved {
    pub kind: MessageType,
    pub content: String,
    /// The upload the message carries, and what the message keeps of it.
    pub attachment: Option<(FileId, AttachmentDoc)>,
    pub location: Option<Location>,
    /// What anti-spam's duplicate rule compares: the text, or the file's sha256 or the place
    /// with the caption.
    pub fingerprint: String,
    pub reply_to: Option<ReplyDoc>,
    /// A forward, and whose the original was when the recipients may know.
    pub forwarded: Option<Option<i64>>,
}

/// A queued send.
pub(crate) struct Pending<'a> {
    chat: &'a Chat,
    queued: Queued,
    /// The recipient of a 1:1 send (whose being online the answer tells).
    to: Option<UserId>,
}

/// A stored send.
pub(crate) struct Sent {
    pub message: Message,
    /// For a 1:1 send: whether the recipient had a live connection (false for a group).
    pub online: bool,
}

impl Chat {
    /// A 1:1 send from `from` (on connection `conn`) to `to`: the recipient must exist and
    /// accept it (blocks, friendship when required), anti-spam must let it through.
    pub(crate) async fn send(
        &self,
        from: UserId,
        conn: &ConnId,
        to: UserId,
        message: NewMessage,
    ) -> AppResult<Pending<'_>> {
        let friends = if to == from {
            false
        } else {
            self.check_recipient(from, to).await?.friends
        };
        let conversation = ConversationId::direct(from, to);
        let resolved = self
            .clear_send(
                from,
                conversation,
                antispam::Target::Direct { to, friends },
                &message,
            )
            .await?;
        // The recipient first: they are the one whose being online the answer tells.
        let users = if to == from { vec![to] } else { vec![to, from] };
        let draft = resolved.into_draft(
            conversation,
            from,
            message.client_msg_id,
            Audience::Users { users, primary: 1 },
            conn,
            None,
            (Vec::new(), Vec::new()),
        );
        Ok(Pending {
            chat: self,
            queued: self.writer.queue(draft).await?,
            to: Some(to),
        })
    }

    /// A send to a group (or the lobby): by a member who is not muted, in a group that is not
    /// dissolved; pushed to every member not in do-not-disturb.
    pub(crate) async fn send_to_group(
        &self,
        from: UserId,
        conn: &ConnId,
        group: GroupId,
        message: NewMessage,
    ) -> AppResult<Pending<'_>> {
        let nickname = self.check_sender(from, group).await?;
        let mentions = self
            .mentioned(from, group, message.mentions.as_ref())
            .await?;
        let conversation = ConversationId::Group(group);
        let resolved = self
            .clear_send(
                from,
                conversation,
                antispam::Target::Group { group },
                &message,
            )
            .await?;
        // The mentioned members get their own push (see writer::Extras).
        let mut audience = self.message_audience(group).await?;
        if let Audience::Users { users, .. } = &mut audience
            && !mentions.1.is_empty()
        {
            let mentioned: std::collections::HashSet<UserId> = mentions.1.iter().copied().collect();
            users.retain(|u| !mentioned.contains(u));
        }
        let draft = resolved.into_draft(
            conversation,
            from,
            message.client_msg_id,
            audience,
            conn,
            nickname,
            mentions,
        );
        Ok(Pending {
            chat: self,
            queued: self.writer.queue(draft).await?,
            to: None,
        })
    }
}

impl Chat {
    /// What every send goes through once the sender may send there: the message resolved,
    /// anti-spam, and the mark on the upload it carries (made before the message is stored, so
    /// the sweep of unreferenced uploads never takes it).
    async fn clear_send(
        &self,
        from: UserId,
        conversation: ConversationId,
        target: antispam::Target,
        message: &NewMessage,
    ) -> AppResult<Resolved> {
        let mut resolved = match &message.body {
            Body::New(composed) => self.resolve(from, composed).await?,
            Body::Forward(original) => self.forward_copy(from, conversation, *original).await?,
        };
        if let Some(answered) = message.reply_to {
            resolved.reply_to = Some(self.reply_doc(from, conversation, answered).await?);
        }
        self.antispam
            .check_send(
                from,
                target,
                &resolved.fingerprint,
                message.client_msg_id.as_deref(),
            )
            .await?;
        if let Some((file, _)) = &resolved.attachment {
            self.mark_carried(*file).await?;
        }
        Ok(resolved)
    }

    /// The message as the writer stores it: an attachment must be the sender's own upload of a
    /// type that fits the message's (see [`Chat::attachment_for`]).
    async fn resolve(&self, from: UserId, message: &Composed) -> AppResult<Resolved> {
        let content = message
            .content
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        let resolved = |content: String| Resolved {
            kind: message.kind,
            fingerprint: content.clone(),
            content,
            attachment: None,
            location: None,
            reply_to: None,
            forwarded: None,
        };
        Ok(match &message.payload {
            Payload::Text => resolved(content),
            Payload::Attachment(wanted) => {
                let attached = self.attachment_for(from, message.kind, wanted).await?;
                Resolved {
                    fingerprint: file_fingerprint(&attached.sha256, &content),
                    attachment: Some((attached.file, attached.doc)),
                    ..resolved(content)
                }
            }
            Payload::Location(place) => Resolved {
                fingerprint: place_fingerprint(place, &content),
                location: Some(place.clone()),
                ..resolved(content)
            },
        })
    }
}

/// The duplicate rule's view of a file message: the file's bytes (their sha256, or the upload's
/// id for a forward) and the caption.
pub(crate) fn file_fingerprint(file: &str, caption: &str) -> String {
    format!("\u{1}file:{file}\u{1}{caption}")
}

/// The duplicate rule's view of a location: the address as people read it, else the place to
/// about 100 m (moving the point a little does not make the same message new), and the caption.
pub(crate) fn place_fingerprint(place: &Location, caption: &str) -> String {
    match &place.address {
        Some(address) => format!("\u{1}place:{}\u{1}{caption}", address.to_lowercase()),
        None => format!("\u{1}place:{:.3},{:.3}\u{1}{caption}", place.lat, place.lon),
    }
}

impl Resolved {
    /// The draft the writer stores and delivers.
    #[allow(clippy::too_many_arguments)]
    fn into_draft(
        self,
        conversation: ConversationId,
        from: UserId,
        client_msg_id: Option<String>,
        audience: Audience,
        conn: &ConnId,
        nickname: Option<String>,
        (mentions, mentioned): (Vec<String>, Vec<UserId>),
    ) -> Draft {
        let to = match conversation {
            ConversationId::Group(group) => group.to_string(),
            direct => direct.peer_of(from).unwrap_or(from).to_string(),
        };
        Draft {
            conversation,
            from,
            to,
            kind: self.kind,
            content: self.content,
            client_msg_id,
            audience,
            skip: Some(conn.clone()),
            nickname,
            attachment: self.attachment.map(|(_, doc)| doc),
            location: self.location,
            extras: Extras {
                reply_to: self.reply_to,
                forwarded: self.forwarded.is_some(),
                forwarded_from: self.forwarded.flatten(),
                mentions,
                mentioned,
            },
        }
    }
}

impl Pending<'_> {
    /// Waits until the message is stored (or known to be stored already, for a retry).
    pub(crate) async fn stored(self) -> AppResult<Sent> {
        let group = self.to.is_none();
        match self.queued.outcome().await? {
            Outcome::Stored { message, online } => {
                self.chat.metrics.sent(group);
                self.chat.settle_reply_later(&message);
                Ok(Sent {
                    message,
                    online: online > 0,
                })
            }
            Outcome::Duplicate(message) => {
                let online = match self.to {
                    Some(to) => self.chat.hub.is_online(to).await?,
                    None => false,
                };
                Ok(Sent { message, online })
            }
        }
    }
}
