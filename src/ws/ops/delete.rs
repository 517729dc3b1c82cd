//! op 5: delete for me (hide), or recall for everyone within the recall window (the rules:
//! [`crate::chat::deleting`]).

use mongodb::bson::oid::ObjectId;

use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};

pub(super) async fn run(ctx: &OpCtx, id: ObjectId, everyone: bool) -> AppResult<Done> {
    let deleted = ctx
        .state
        .delete_message(ctx.user, id, everyone, ctx.conn_id.clone())
        .await?;
    Done::ok(deleted)
}
