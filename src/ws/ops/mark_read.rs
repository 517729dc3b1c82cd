//! op 4: move the caller's read position forward and tell the other participants (receipts).

use serde::Serialize;

use crate::domain::{ConversationId, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::{Audience, Delivery};
use crate::messaging::{audience, check_participant, event_json};
use crate::state::AppState;
use crate::store::mongo::{messages, reads};
use crate::store::redis::seq;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::ReadTarget;

#[derive(Serialize)]
struct ReadEvent<'a> {
    conversation: &'a str,
    user_id: UserId,
    seq: i64,
}

#[derive(Serialize)]
struct ReadPosition<'a> {
    conversation: &'a str,
    seq: i64,
}

pub async fn run(ctx: &OpCtx, target: ReadTarget) -> AppResult<Done> {
    let state = &ctx.state;
    let (conversation, seq) = match target {
        ReadTarget::Message(id) => {
            let doc = messages::find_by_id(&state.mongo, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no such message".into()))?;
            let conversation = ConversationId::parse(&doc.conversation).ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "stored conversation id {}",
                    doc.conversation
                ))
            })?;
            // Someone else's message id is not theirs to learn about.
            check_participant(state, ctx.user, conversation)
                .await
                .map_err(|_| AppError::NotFound("no such message".into()))?;
            (conversation, doc.seq)
        }
        ReadTarget::Position { conversation, seq } => {
            check_participant(state, ctx.user, conversation).await?;
            // Never past the last message: later ones must still count as unread.
            let last = seq::current(
                &state.redis_link,
                &state.mongo,
                &state.keys,
                &conversation.to_string(),
            )
            .await?;
            (conversation, seq.min(last))
        }
    };
    let position = advance_and_tell(
        state,
        ctx.user,
        conversation,
        seq,
        Some(ctx.conn_id.clone()),
    )
    .await?;
    Done::ok(ReadPosition {
        conversation: &conversation.to_string(),
        seq: position,
    })
}

/// Moves the reader's position up to `seq` and sends the receipt; returns the position now in
/// force. Receipts go to everyone in the conversation (and the reader's other devices, but
/// `skip`), except in the lobby, where they would be a broadcast per reader.
pub async fn advance_and_tell(
    state: &AppState,
    reader: UserId,
    conversation: ConversationId,
    seq: i64,
    skip: Option<crate::hub::ConnId>,
) -> AppResult<i64> {
    let name = conversation.to_string();
    let position = reads::advance(&state.mongo, reader, &name, seq).await?;
    let audience = audience(state, conversation).await?;
    if matches!(audience, Audience::Users { .. }) {
        let delivery = Delivery {
            event: event_json(
                "read",
                &ReadEvent {
                    conversation: &name,
                    user_id: reader,
                    seq: position,
                },
            ),
            audience,
            skip,
            mark: None,
        };
        if let Err(err) = state.hub.deliver(&[delivery]).await {
            tracing::warn!(error = %err, "read receipt not pushed");
        }
    }
    Ok(position)
}
