//! op 5: delete for me (hide), or recall for everyone within the recall window.

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::domain::ConversationId;
use crate::error::{AppError, AppResult};
use crate::hub::{Audience, Delivery};
use crate::messaging::{audience, check_participant, event_json};
use crate::store::mongo::messages::{self, user_key};
use crate::ws::ops::{Done, OpCtx};

#[derive(Serialize)]
struct Deleted<'a> {
    conversation: &'a str,
    id: String,
    scope: &'static str,
}

pub async fn run(ctx: &OpCtx, id: ObjectId, everyone: bool) -> AppResult<Done> {
    let state = &ctx.state;
    let not_found = || AppError::NotFound("no such message".into());
    let doc = messages::find_by_id(&state.mongo, id)
        .await?
        .ok_or_else(not_found)?;
    let conversation = ConversationId::parse(&doc.conversation).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "stored conversation id {}",
            doc.conversation
        ))
    })?;
    check_participant(state, ctx.user, conversation)
        .await
        .map_err(|_| not_found())?;

    let (scope, audience) = if everyone {
        if doc.from != user_key(ctx.user) {
            return Err(AppError::forbidden(
                "forbidden",
                "only the sender may recall a message",
            ));
        }
        let window_ms =
            i64::try_from(state.settings.messages.recall_window_secs * 1000).unwrap_or(i64::MAX);
        let age_ms = chrono::Utc::now().timestamp_millis() - doc.created_at.timestamp_millis();
        if age_ms > window_ms {
            return Err(AppError::forbidden(
                "forbidden",
                format!(
                    "messages can only be recalled within {} seconds",
                    state.settings.messages.recall_window_secs
                ),
            ));
        }
        messages::recall(&state.mongo, id).await?;
        ("all", audience(state, conversation).await?)
    } else {
        messages::hide_for(&state.mongo, id, ctx.user).await?;
        (
            "me",
            Audience::Users {
                users: vec![ctx.user],
                primary: 0,
            },
        )
    };
    let deleted = Deleted {
        conversation: &doc.conversation,
        id: id.to_hex(),
        scope,
    };
    let delivery = Delivery {
        event: event_json("deleted", &deleted),
        audience,
        skip: Some(ctx.conn_id.clone()),
        mark: None,
    };
    if let Err(err) = state.hub.deliver(&[delivery]).await {
        tracing::warn!(error = %err, "delete event not pushed");
    }
    Done::ok(deleted)
}
