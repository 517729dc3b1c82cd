//! op 6: send to a group (or the lobby). Checked and queued in the connection's turn (see
//! ws::order), stored once, pushed to every member not in do-not-disturb.

use crate::domain::GroupId;
use crate::error::AppResult;
use crate::ws::ops::{Done, OpCtx, in_turn};
use crate::ws::order::Ticket;
use crate::ws::protocol::Outgoing;

pub(super) async fn run(
    ctx: &OpCtx,
    group: GroupId,
    message: Outgoing,
    client_msg_id: Option<String>,
    ticket: Option<Ticket>,
) -> AppResult<Done> {
    let message = in_turn(ticket.as_ref(), message, client_msg_id).await;
    let pending = ctx
        .state
        .send_to_group(ctx.user, &ctx.conn_id, group, message)
        .await?;
    // Queued: the connection's next send may go.
    drop(ticket);
    Done::ok(pending.stored().await?.message)
}
