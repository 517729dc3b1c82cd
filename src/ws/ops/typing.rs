//! op 8: an ephemeral typing notice to the other participants (the rules:
//! [`crate::chat::typing`]). Answered 200 whether or not it was pushed.

use serde::Serialize;

use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::Target;

pub(super) async fn run(ctx: &OpCtx, target: Target) -> AppResult<Done> {
    let conversation = target.conversation_for(ctx.user);
    ctx.state
        .typing(ctx.user, conversation, ctx.conn_id.clone())
        .await?;
    Done::ok(Typed {
        conversation: conversation.to_string(),
    })
}

/// The reply: the conversation the notice was for.
#[derive(Serialize)]
struct Typed {
    conversation: String,
}
