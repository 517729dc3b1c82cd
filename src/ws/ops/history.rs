//! op 2: a page of history (see chat::history).

use crate::chat::history::PageAsked;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::{Paging, Target};

pub(super) async fn run(ctx: &OpCtx, target: Target, paging: Paging) -> AppResult<Done> {
    let asked = match paging {
        Paging::SkipLimit { skip, limit } => PageAsked {
            before_seq: None,
            skip,
            limit,
        },
        Paging::Before { before_seq, limit } => PageAsked {
            before_seq,
            skip: 0,
            limit,
        },
    };
    let conversation = target.conversation_for(ctx.user);
    Done::ok(ctx.state.history(ctx.user, conversation, asked).await?)
}
