//! op 4: move the caller's read position forward and tell the other participants (receipts);
//! the rules are in [`crate::chat::reads`].

use serde::Serialize;

use crate::chat::reads::Mark;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::ReadTarget;

#[derive(Serialize)]
struct ReadPosition<'a> {
    conversation: &'a str,
    seq: i64,
}

pub(crate) async fn run(ctx: &OpCtx, target: ReadTarget) -> AppResult<Done> {
    let what = match target {
        ReadTarget::Message(id) => Mark::Message(id),
        ReadTarget::Position { conversation, seq } => Mark::Position { conversation, seq },
    };
    let (conversation, seq) = ctx
        .state
        .mark_read(ctx.user, what, Some(ctx.conn_id.clone()))
        .await?;
    Done::ok(ReadPosition {
        conversation: &conversation.to_string(),
        seq,
    })
}
