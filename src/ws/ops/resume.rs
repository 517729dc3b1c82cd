//! op 7: everything the caller has not seen, after a reconnect. Conversations named in `since`
//! continue from the given seq; the caller's other conversations from their read position.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::ConversationId;
use crate::error::AppResult;
use crate::messaging::check_participant_all;
use crate::store::mongo::messages::{self, Message};
use crate::store::mongo::reads;
use crate::ws::ops::{Done, OpCtx};

#[derive(Serialize)]
struct Resumed {
    messages: Vec<Message>,
    has_more: bool,
    since: BTreeMap<String, i64>,
}

pub async fn run(ctx: &OpCtx, since: Vec<(ConversationId, i64)>) -> AppResult<Done> {
    let state = &ctx.state;
    let named: Vec<ConversationId> = since.iter().map(|(c, _)| *c).collect();
    check_participant_all(state, ctx.user, &named).await?;
    let mut from: BTreeMap<String, i64> = since
        .into_iter()
        .map(|(conversation, seq)| (conversation.to_string(), seq))
        .collect();
    for position in reads::list(&state.mongo, ctx.user).await? {
        from.entry(position.conversation)
            .or_insert(position.read_seq);
    }

    let mut budget = i64::from(state.settings.messages.resume_max);
    let mut out = Vec::new();
    let mut has_more = false;
    let mut next = from.clone();
    // Every conversation is asked (an indexed range query each): the Redis counters cannot
    // say "nothing new" reliably, they may lag behind MongoDB after a Redis restore.
    for (name, after) in &from {
        let after = *after;
        if budget == 0 {
            has_more = true;
            break;
        }
        let (docs, more) =
            messages::after(&state.mongo, ctx.user, name, after, budget, false).await?;
        if let Some(newest) = docs.last() {
            next.insert(name.clone(), newest.seq);
        }
        budget -= i64::try_from(docs.len()).unwrap_or(budget);
        out.extend(docs.iter().map(Message::from));
        if more {
            has_more = true;
            break;
        }
    }
    Done::ok(Resumed {
        messages: out,
        has_more,
        since: next,
    })
}
