//! op 1: send to a user. Checked by anti-spam, stored durably, then pushed; 50004 when the
//! recipient was live. Checked and queued in the connection's turn (see ws::order).

use crate::antispam;
use crate::domain::{ConversationId, UserId};
use crate::error::AppResult;
use crate::hub::Audience;
use crate::messaging::check_recipient;
use crate::messaging::writer::{Draft, Outcome};
use crate::ws::ops::{Done, OpCtx};
use crate::ws::order::Ticket;
use crate::ws::protocol::{CODE_DELIVERED, CODE_STORED_OFFLINE, Outgoing};

pub async fn run(
    ctx: &OpCtx,
    to: UserId,
    message: Outgoing,
    client_msg_id: Option<String>,
    ticket: Option<Ticket>,
) -> AppResult<Done> {
    if let Some(ticket) = &ticket {
        ticket.wait().await;
    }
    let state = &ctx.state;
    let friends = if to == ctx.user {
        false
    } else {
        check_recipient(state, ctx.user, to).await?.friends
    };
    state
        .antispam
        .check_send(
            ctx.user,
            antispam::Target::Direct { to, friends },
            &message.content,
            client_msg_id.as_deref(),
        )
        .await?;
    // The recipient first: they are the one whose being online decides 50004 / 50005.
    let users = if to == ctx.user {
        vec![to]
    } else {
        vec![to, ctx.user]
    };
    let draft = Draft {
        conversation: ConversationId::direct(ctx.user, to),
        from: ctx.user,
        to: to.to_string(),
        kind: message.kind,
        content: message.content,
        client_msg_id,
        audience: Audience::Users { users, primary: 1 },
        skip: Some(ctx.conn_id.clone()),
        nickname: None,
    };
    let queued = state.writer.queue(draft).await?;
    // Queued: the connection's next send may go.
    drop(ticket);
    let (message, online) = match queued.outcome().await? {
        Outcome::Stored { message, online } => {
            state.metrics.sent(false);
            (message, online > 0)
        }
        Outcome::Duplicate(message) => (message, state.hub.is_online(to).await?),
    };
    if online {
        Done::with(CODE_DELIVERED, "delivered", message)
    } else {
        Done::with(CODE_STORED_OFFLINE, "stored; recipient offline", message)
    }
}
