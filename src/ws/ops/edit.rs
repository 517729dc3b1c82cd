//! op 9: edit one's own message (the rules: [`crate::chat::editing`]); answers the message as
//! it is now.

use mongodb::bson::oid::ObjectId;

use crate::domain::MessageContent;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};

pub(super) async fn run(ctx: &OpCtx, id: ObjectId, content: MessageContent) -> AppResult<Done> {
    let message = ctx
        .state
        .edit_message(ctx.user, id, content, ctx.conn_id.clone())
        .await?;
    Done::ok(message)
}
