//! op 10: add or remove a reaction (the rules: [`crate::chat::reactions`]); answers the
//! message's reactions as the caller sees them now.

use mongodb::bson::oid::ObjectId;

use crate::domain::Emoji;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};

pub(super) async fn run(ctx: &OpCtx, id: ObjectId, emoji: Emoji, add: bool) -> AppResult<Done> {
    let reacted = ctx
        .state
        .react(ctx.user, id, emoji, add, ctx.conn_id.clone())
        .await?;
    Done::ok(reacted)
}
