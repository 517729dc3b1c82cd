//! op 6: send to a group (or the lobby). Members only; checked by anti-spam, stored once,
//! pushed to every member.

use crate::antispam;
use crate::domain::{ConversationId, GroupId};
use crate::error::AppResult;
use crate::messaging::writer::{Draft, Outcome};
use crate::messaging::{audience, check_member};
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::Outgoing;

pub async fn run(
    ctx: &OpCtx,
    group: GroupId,
    message: Outgoing,
    client_msg_id: Option<String>,
) -> AppResult<Done> {
    let state = &ctx.state;
    check_member(state, ctx.user, group).await?;
    state
        .antispam
        .check_send(
            ctx.user,
            antispam::Target::Group { group },
            &message.content,
            client_msg_id.as_deref(),
        )
        .await?;
    let conversation = ConversationId::Group(group);
    let draft = Draft {
        conversation,
        from: ctx.user,
        to: group.to_string(),
        kind: message.kind,
        content: message.content,
        client_msg_id,
        audience: audience(state, conversation).await?,
        skip: Some(ctx.conn_id.clone()),
    };
    let message = match state.writer.submit(draft).await? {
        Outcome::Stored { message, .. } => {
            state.metrics.sent(true);
            message
        }
        Outcome::Duplicate(message) => message,
    };
    Done::ok(message)
}
