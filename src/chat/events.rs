//! What is pushed to whom: the event frames, the audience of a conversation, and the group
//! announcements (a stored type 10 message and `event: group`).

use std::sync::Arc;

use serde::Serialize;

use crate::chat::Chat;
use crate::chat::access::group_view;
use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::AppResult;
use crate::hub::{Audience, Delivery};
use crate::store::mongo::messages;

/// A server push: `{"event": <kind>, "data": <data>}`, serialised once for every recipient.
pub(crate) fn event_json(kind: &str, data: &impl Serialize) -> Arc<str> {
    #[derive(Serialize)]
    struct Event<'a, T> {
        event: &'a str,
        data: &'a T,
    }
    let text = serde_json::to_string(&Event { event: kind, data })
        .unwrap_or_else(|_| format!(r#"{{"event":"{kind}","data":null}}"#));
    Arc::from(text)
}

impl Chat {
    /// Everyone to push a conversation's events to (the lobby: everybody).
    pub(crate) async fn audience(&self, conversation: ConversationId) -> AppResult<Audience> {
        match conversation {
            ConversationId::Direct { low, high } => {
                let users = if low == high {
                    vec![low]
                } else {
                    vec![low, high]
                };
                Ok(Audience::Users { users, primary: 0 })
            }
            ConversationId::Group(group) if group.is_lobby() => Ok(Audience::Everyone),
            ConversationId::Group(group) => Ok(Audience::Users {
                users: group_view(self, group)
                    .await?
                    .map(|view| view.member_ids())
                    .unwrap_or_default(),
                primary: 0,
            }),
        }
    }

    /// Who gets a group's messages live: the members, less those in do-not-disturb.
    pub(crate) async fn message_audience(&self, group: GroupId) -> AppResult<Audience> {
        if group.is_lobby() {
            return Ok(Audience::Everyone);
        }
        Ok(Audience::Users {
            users: group_view(self, group)
                .await?
                .map(|view| view.push_member_ids())
                .unwrap_or_default(),
            primary: 0,
        })
    }

    /// Stores a system message (type 10) in the group and pushes it, plus `event: group` with the
    /// same description, to the members.
    pub(crate) async fn announce(
        &self,
        group: GroupId,
        actor: UserId,
        description: serde_json::Value,
    ) -> AppResult<()> {
        self.system_notice(ConversationId::Group(group), actor, description.clone())
            .await?;
        self.group_event(group, description).await;
        Ok(())
    }

    /// Pushes `event: group` to the group's live members (do-not-disturb or not).
    pub(crate) async fn group_event(&self, group: GroupId, mut data: serde_json::Value) {
        if let Some(object) = data.as_object_mut() {
            object.insert("group_id".into(), group.to_string().into());
        }
        let users = match group_view(self, group).await {
            Ok(view) => view.map(|v| v.member_ids()).unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "group event not pushed");
                return;
            }
        };
        let delivery = crate::hub::Delivery {
            event: event_json("group", &data),
            audience: Audience::Users { users, primary: 0 },
            skip: None,
            conversation: None,
            seq: None,
        };
        if let Err(err) = self.hub.deliver(&[delivery]).await {
            tracing::warn!(error = %err, "group event not pushed");
        }
    }

    /// Pushes one event to these users' sockets; a failure only costs the live update.
    pub(crate) async fn push_to(&self, users: Vec<UserId>, kind: &str, data: &impl Serialize) {
        let delivery = Delivery {
            event: event_json(kind, data),
            audience: Audience::Users { users, primary: 0 },
            skip: None,
            conversation: None,
            seq: None,
        };
        if let Err(err) = self.hub.deliver(&[delivery]).await {
            tracing::warn!(error = %err, kind, "event not pushed");
        }
    }

    /// Pushes one event to an audience, not back to `skip`; a failure only costs the live update.
    pub(crate) async fn push_event(
        &self,
        kind: &str,
        data: &impl Serialize,
        audience: Audience,
        skip: Option<crate::hub::ConnId>,
    ) {
        let delivery = Delivery {
            event: event_json(kind, data),
            audience,
            skip,
            conversation: None,
            seq: None,
        };
        if let Err(err) = self.hub.deliver(&[delivery]).await {
            tracing::warn!(error = %err, kind, "event not pushed");
        }
    }

    /// Stores a system message (type 10) in any conversation and pushes it to those who get its
    /// messages live.
    pub(crate) async fn system_notice(
        &self,
        conversation: ConversationId,
        actor: UserId,
        description: serde_json::Value,
    ) -> AppResult<()> {
        let (to, audience) = match conversation {
            ConversationId::Group(group) => {
                (group.to_string(), self.message_audience(group).await?)
            }
            direct => (
                direct.peer_of(actor).unwrap_or(actor).to_string(),
                self.audience(direct).await?,
            ),
        };
        let draft = crate::chat::writer::Draft {
            conversation,
            from: actor,
            to,
            kind: crate::domain::MessageType(messages::SYSTEM_TYPE),
            content: description.to_string(),
            client_msg_id: None,
            audience,
            skip: None,
            nickname: None,
            attachment: None,
            location: None,
            extras: crate::chat::writer::Extras::default(),
        };
        self.writer.submit(draft).await?;
        Ok(())
    }
}
