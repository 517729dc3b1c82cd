//! Sending (ops 1 and 6): who may send where, anti-spam, then the group-commit writer; the
//! message is durable before it is answered, and pushed to the recipients' live connections
//! (not back to the connection it came from).
//!
//! A send is two steps so that an edge can keep a connection's sends in order: [`Chat::send`]
//! and [`Chat::send_to_group`] check and queue (the connection's next send may go once they
//! return), [`Pending::stored`] waits until the message is stored.

use crate::antispam;
use crate::chat::Chat;
use crate::chat::writer::{Draft, Outcome, Queued};
use crate::domain::{
    ConversationId, FileId, GroupId, Location, MessageContent, MessageType, Payload, UserId,
};
use crate::error::AppResult;
use crate::hub::{Audience, ConnId};
use crate::store::mongo::messages::{AttachmentDoc, Message};

/// A message as a client sends it (checked already: type, content rules, payload shape).
pub(crate) struct NewMessage {
    pub kind: MessageType,
    /// The text; for the types that carry something else, an optional caption.
    pub content: Option<MessageContent>,
    pub payload: Payload,
    /// The client's id of the send: a retry with the same one stores nothing new.
    pub client_msg_id: Option<String>,
}

/// A message ready for the writer: its attachment resolved to the sender's upload.
struct Resolved {
    content: String,
    /// The upload the message carries, and what the message keeps of it.
    attachment: Option<(FileId, AttachmentDoc)>,
    location: Option<Location>,
    /// What anti-spam's duplicate rule compares: the text, or the file's sha256 or the place
    /// with the caption.
    fingerprint: String,
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
        let resolved = self
            .clear_send(from, antispam::Target::Direct { to, friends }, &message)
            .await?;
        // The recipient first: they are the one whose being online the answer tells.
        let users = if to == from { vec![to] } else { vec![to, from] };
        let draft = Draft {
            conversation: ConversationId::direct(from, to),
            from,
            to: to.to_string(),
            kind: message.kind,
            content: resolved.content,
            client_msg_id: message.client_msg_id,
            audience: Audience::Users { users, primary: 1 },
            skip: Some(conn.clone()),
            nickname: None,
            attachment: resolved.attachment.map(|(_, doc)| doc),
            location: resolved.location,
        };
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
        let resolved = self
            .clear_send(from, antispam::Target::Group { group }, &message)
            .await?;
        let draft = Draft {
            conversation: ConversationId::Group(group),
            from,
            to: group.to_string(),
            kind: message.kind,
            content: resolved.content,
            client_msg_id: message.client_msg_id,
            audience: self.message_audience(group).await?,
            skip: Some(conn.clone()),
            nickname,
            attachment: resolved.attachment.map(|(_, doc)| doc),
            location: resolved.location,
        };
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
        target: antispam::Target,
        message: &NewMessage,
    ) -> AppResult<Resolved> {
        let resolved = self.resolve(from, message).await?;
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
    async fn resolve(&self, from: UserId, message: &NewMessage) -> AppResult<Resolved> {
        let content = message
            .content
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        Ok(match &message.payload {
            Payload::Text => Resolved {
                fingerprint: content.clone(),
                content,
                attachment: None,
                location: None,
            },
            Payload::Attachment(wanted) => {
                let attached = self.attachment_for(from, message.kind, wanted).await?;
                Resolved {
                    fingerprint: format!("\u{1}file:{}\u{1}{content}", attached.sha256),
                    content,
                    attachment: Some((attached.file, attached.doc)),
                    location: None,
                }
            }
            Payload::Location(place) => Resolved {
                // The address as people read it, else the place to about 100 m: moving the
                // point a little does not make the same message new.
                fingerprint: match &place.address {
                    Some(address) => format!("\u{1}place:{}\u{1}{content}", address.to_lowercase()),
                    None => format!("\u{1}place:{:.3},{:.3}\u{1}{content}", place.lat, place.lon),
                },
                content,
                attachment: None,
                location: Some(place.clone()),
            },
        })
    }
}

impl Pending<'_> {
    /// Waits until the message is stored (or known to be stored already, for a retry).
    pub(crate) async fn stored(self) -> AppResult<Sent> {
        let group = self.to.is_none();
        match self.queued.outcome().await? {
            Outcome::Stored { message, online } => {
                self.chat.metrics.sent(group);
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
