//! op 2: a page of history, newest first as paged, returned ascending.

use serde::Serialize;

use crate::error::AppResult;
use crate::messaging::check_participant;
use crate::store::mongo::messages::{self, Message};
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::{Paging, Target};

#[derive(Serialize)]
struct Page {
    messages: Vec<Message>,
    has_more: bool,
}

pub async fn run(ctx: &OpCtx, target: Target, paging: Paging) -> AppResult<Done> {
    let state = &ctx.state;
    let conversation = target.conversation_for(ctx.user);
    check_participant(state, ctx.user, conversation).await?;
    let (before_seq, skip, limit) = match paging {
        Paging::SkipLimit { skip, limit } => (None, skip, limit),
        Paging::Before { before_seq, limit } => (before_seq, 0, limit),
    };
    let (docs, has_more) = messages::history(
        &state.mongo,
        ctx.user,
        &conversation.to_string(),
        before_seq,
        skip,
        limit,
    )
    .await?;
    Done::ok(Page {
        messages: docs.iter().map(Message::from).collect(),
        has_more,
    })
}
