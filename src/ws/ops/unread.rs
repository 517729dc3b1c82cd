//! op 3: unread messages of one conversation, or the unread counts of all of them.

use serde::Serialize;

use crate::domain::UserId;
use crate::error::AppResult;
use crate::messaging::check_participant;
use crate::state::AppState;
use crate::store::mongo::messages::{self, Message};
use crate::store::mongo::reads;
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::Target;

#[derive(Serialize)]
struct ConversationUnread {
    conversation: String,
    messages: Vec<Message>,
    unread: u64,
    has_more: bool,
}

#[derive(Serialize)]
pub struct UnreadCount {
    pub conversation: String,
    pub unread: u64,
    pub last_seq: i64,
}

#[derive(Serialize)]
struct AllUnread {
    conversations: Vec<UnreadCount>,
}

pub async fn run(ctx: &OpCtx, target: Option<Target>) -> AppResult<Done> {
    let state = &ctx.state;
    let Some(target) = target else {
        return Done::ok(AllUnread {
            conversations: unread_counts(state, ctx.user).await?,
        });
    };
    let conversation = target.conversation_for(ctx.user);
    check_participant(state, ctx.user, conversation).await?;
    let name = conversation.to_string();
    let read_seq = reads::get(&state.mongo, ctx.user, &name).await?;
    let limit = i64::from(state.settings.messages.unread_max);
    let (page, unread) = tokio::try_join!(
        messages::after(&state.mongo, ctx.user, &name, read_seq, limit, true),
        messages::count_unread(&state.mongo, ctx.user, &name, read_seq),
    )?;
    let (docs, has_more) = page;
    Done::ok(ConversationUnread {
        conversation: name,
        messages: docs.iter().map(Message::from).collect(),
        unread,
        has_more,
    })
}

/// How many conversations are counted at once for the summary.
const COUNT_CONCURRENCY: usize = 8;

/// Every conversation of the user with unread messages.
pub async fn unread_counts(state: &AppState, user: UserId) -> AppResult<Vec<UnreadCount>> {
    use futures_util::{StreamExt, TryStreamExt};
    let positions = reads::list(&state.mongo, user).await?;
    let counted: Vec<UnreadCount> = futures_util::stream::iter(positions)
        .map(|p| async move {
            let unread =
                messages::count_unread(&state.mongo, user, &p.conversation, p.read_seq).await?;
            let last_seq = if unread > 0 {
                messages::max_seq(&state.mongo, &p.conversation).await?
            } else {
                0
            };
            AppResult::Ok(UnreadCount {
                conversation: p.conversation,
                unread,
                last_seq,
            })
        })
        .buffer_unordered(COUNT_CONCURRENCY)
        .try_collect()
        .await?;
    let mut with_unread: Vec<UnreadCount> = counted.into_iter().filter(|c| c.unread > 0).collect();
    with_unread.sort_by(|a, b| a.conversation.cmp(&b.conversation));
    Ok(with_unread)
}
