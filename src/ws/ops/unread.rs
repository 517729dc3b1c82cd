//! op 3: the unread messages of one conversation, or the unread counts of all of them.

use serde::Serialize;

use crate::chat::history::UnreadCount;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::Target;

#[derive(Serialize)]
struct AllUnread {
    conversations: Vec<UnreadCount>,
}

pub(super) async fn run(ctx: &OpCtx, target: Option<Target>) -> AppResult<Done> {
    match target {
        None => Done::ok(AllUnread {
            conversations: ctx.state.unread_counts(ctx.user).await?,
        }),
        Some(target) => {
            let conversation = target.conversation_for(ctx.user);
            Done::ok(ctx.state.unread(ctx.user, conversation).await?)
        }
    }
}
