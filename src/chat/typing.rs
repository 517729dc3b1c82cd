//! Typing notices: ephemeral, never stored. At most one is pushed per user and conversation
//! per `antispam.typing_interval_secs` (more are dropped without an error); none crosses a
//! block, and a group takes them only from who may send there.

use serde::Serialize;

use crate::chat::Chat;

use crate::chat::events::event_json;
use crate::domain::{ConversationId, UserId};
use crate::error::AppResult;
use crate::hub::{Audience, ConnId, Delivery};

#[derive(Serialize)]
struct Typing<'a> {
    conversation: &'a str,
    user_id: UserId,
}

impl Chat {
    /// Pushes `user`'s typing notice in the conversation (or drops it by the rules above); `skip`
    /// is the connection it came from.
    pub(crate) async fn typing(
        &self,
        user: UserId,
        conversation: ConversationId,
        skip: ConnId,
    ) -> AppResult<()> {
        let name = conversation.to_string();
        let answered = || Ok(());
        match conversation {
            ConversationId::Direct { .. } => {
                self.check_participant(user, conversation).await?;
                if let Some(peer) = conversation.peer_of(user)
                    && peer != user
                {
                    // A blocked user reaches the blocker with a typing notice no more than with a
                    // message; the blocker's own notices do not reach whom they blocked either.
                    self.check_recipient(user, peer).await?;
                    if self.blocked_either_way(user, peer).await? {
                        return answered();
                    }
                }
            }
            // Typing is a step towards sending: only who may send there now (not muted).
            ConversationId::Group(group) => {
                self.check_sender(user, group).await?;
            }
        }
        let audience = match self.audience(conversation).await? {
            Audience::Users { mut users, .. } => {
                users.retain(|u| *u != user);
                Audience::Users { users, primary: 0 }
            }
            // In the lobby a typing notice would go to every socket of every process.
            Audience::Everyone => return answered(),
        };
        if !self.antispam.typing_push_allowed(user, &name).await? {
            return answered();
        }
        let delivery = Delivery {
            event: event_json(
                "typing",
                &Typing {
                    conversation: &name,
                    user_id: user,
                },
            ),
            audience,
            skip: Some(skip),
            conversation: Some(name.clone()),
            seq: None,
        };
        self.hub.deliver(&[delivery]).await?;
        answered()
    }
}
