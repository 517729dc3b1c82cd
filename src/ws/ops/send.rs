//! op 1: send to a user; 50004 when the recipient was live, 50005 when stored for later.
//! Checked and queued in the connection's turn (see ws::order).

use crate::domain::UserId;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx, in_turn};
use crate::ws::order::Ticket;
use crate::ws::protocol::{CODE_DELIVERED, CODE_STORED_OFFLINE, Outgoing};

pub(super) async fn run(
    ctx: &OpCtx,
    to: UserId,
    message: Outgoing,
    client_msg_id: Option<String>,
    ticket: Option<Ticket>,
) -> AppResult<Done> {
    let message = in_turn(ticket.as_ref(), message, client_msg_id).await;
    let pending = ctx.state.send(ctx.user, &ctx.conn_id, to, message).await?;
    // Queued: the connection's next send may go.
    drop(ticket);
    let sent = pending.stored().await?;
    if sent.online {
        Done::with(CODE_DELIVERED, "delivered", sent.message)
    } else {
        Done::with(
            CODE_STORED_OFFLINE,
            "stored; recipient offline",
            sent.message,
        )
    }
}
