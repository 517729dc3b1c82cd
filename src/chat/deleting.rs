//! Deleting a message: for oneself (hidden from one's own history), or recalled for everyone by
//! its sender within `messages.recall_window_secs` (never a system message).

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::chat::Chat;
use crate::chat::access::no_such_message;
use crate::chat::events::event_json;
use crate::domain::{FileId, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::{Audience, ConnId, Delivery};
use crate::store::mongo::messages::{self, user_key};

/// What was deleted, as the reply and the `deleted` event carry it.
#[derive(Serialize)]
pub(crate) struct Deleted {
    conversation: String,
    id: String,
    scope: &'static str,
}

impl Chat {
    /// Hides the message for `user`, or (`everyone`) recalls it for all, and tells the others;
    /// `skip` is the connection that asked.
    pub(crate) async fn delete_message(
        &self,
        user: UserId,
        id: ObjectId,
        everyone: bool,
        skip: ConnId,
    ) -> AppResult<Deleted> {
        let (doc, conversation) = self.message_by_id(id).await?;
        self.check_participant(user, conversation)
            .await
            .map_err(|_| no_such_message())?;

        let (scope, audience) = if everyone {
            // A group's record of joins, kicks, notices ... stays: its actor is stored as the
            // sender, but not even they may take it back.
            if doc.kind == messages::SYSTEM_TYPE {
                return Err(AppError::forbidden(
                    "forbidden",
                    "system messages cannot be recalled",
                ));
            }
            if doc.from != user_key(user) {
                return Err(AppError::forbidden(
                    "forbidden",
                    "only the sender may recall a message",
                ));
            }
            let window_ms =
                i64::try_from(self.settings.messages.recall_window_secs * 1000).unwrap_or(i64::MAX);
            let age_ms = chrono::Utc::now().timestamp_millis() - doc.created_at.timestamp_millis();
            if age_ms > window_ms {
                return Err(AppError::forbidden(
                    "forbidden",
                    format!(
                        "messages can only be recalled within {} seconds",
                        self.settings.messages.recall_window_secs
                    ),
                ));
            }
            messages::recall(&self.mongo, id).await?;
            // Its file: nobody else may download it through this message now; with no other
            // message carrying it, it is swept after files.orphan_ttl_hours.
            if let Some(file) = doc
                .attachment
                .as_ref()
                .and_then(|a| FileId::parse(&a.file_id))
                && let Err(err) = self.release_file(file).await
            {
                tracing::warn!(error = %err, file_id = %file, "releasing a recalled message's file");
            }
            if let Err(err) = self.unpin_recalled(user, conversation, id).await {
                tracing::warn!(error = %err, "unpinning a recalled message");
            }
            ("all", self.audience(conversation).await?)
        } else {
            messages::hide_for(&self.mongo, id, user).await?;
            (
                "me",
                Audience::Users {
                    users: vec![user],
                    primary: 0,
                },
            )
        };
        let deleted = Deleted {
            conversation: doc.conversation.clone(),
            id: id.to_hex(),
            scope,
        };
        let delivery = Delivery {
            event: event_json("deleted", &deleted),
            audience,
            skip: Some(skip),
            conversation: Some(doc.conversation.clone()),
            seq: None,
        };
        if let Err(err) = self.hub.deliver(&[delivery]).await {
            tracing::warn!(error = %err, "delete event not pushed");
        }
        Ok(deleted)
    }
}
