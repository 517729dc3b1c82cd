//! op 6: send to a group (or the lobby). Members who are not muted, in a group that is not
//! dissolved; checked by anti-spam (in the connection's turn, see ws::order), stored once, pushed to every member not in do-not-disturb.

use crate::antispam;
use crate::domain::{ConversationId, GroupId};
use crate::error::AppResult;
use crate::messaging::writer::{Draft, Outcome};
use crate::messaging::{check_sender, message_audience};
use crate::ws::ops::{Done, OpCtx};
use crate::ws::order::Ticket;
use crate::ws::protocol::Outgoing;

pub async fn run(
    ctx: &OpCtx,
    group: GroupId,
    message: Outgoing,
    client_msg_id: Option<String>,
    ticket: Option<Ticket>,
) -> AppResult<Done> {
    if let Some(ticket) = &ticket {
        ticket.wait().await;
    }
    let state = &ctx.state;
    let nickname = check_sender(state, ctx.user, group).await?;
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
        audience: message_audience(state, group).await?,
        skip: Some(ctx.conn_id.clone()),
        nickname,
    };
    let queued = state.writer.queue(draft).await?;
    // Queued: the connection's next send may go.
    drop(ticket);
    let message = match queued.outcome().await? {
        Outcome::Stored { message, .. } => {
            state.metrics.sent(true);
            message
        }
        Outcome::Duplicate(message) => message,
    };
    Done::ok(message)
}
