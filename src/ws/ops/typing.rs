//! op 8: an ephemeral typing notice to the other participants. Nothing is stored.

use serde::Serialize;

use crate::domain::UserId;
use crate::error::AppResult;
use crate::hub::{Audience, Delivery};
use crate::messaging::{audience, check_participant, check_recipient, event_json};
use crate::ws::ops::{Done, OpCtx};
use crate::ws::protocol::Target;

#[derive(Serialize)]
struct Typing<'a> {
    conversation: &'a str,
    user_id: UserId,
}

pub async fn run(ctx: &OpCtx, target: Target) -> AppResult<Done> {
    let state = &ctx.state;
    let conversation = target.conversation_for(ctx.user);
    check_participant(state, ctx.user, conversation).await?;
    // A blocked user reaches the blocker with a typing notice no more than with a message.
    if let Some(peer) = conversation.peer_of(ctx.user)
        && peer != ctx.user
    {
        check_recipient(state, ctx.user, peer).await?;
    }
    let audience = match audience(state, conversation).await? {
        Audience::Users { mut users, .. } => {
            users.retain(|u| *u != ctx.user);
            Audience::Users { users, primary: 0 }
        }
        // In the lobby a typing notice would go to every socket of every process.
        Audience::Everyone => {
            return Done::ok(serde_json::json!({ "conversation": conversation.to_string() }));
        }
    };
    let name = conversation.to_string();
    let delivery = Delivery {
        event: event_json(
            "typing",
            &Typing {
                conversation: &name,
                user_id: ctx.user,
            },
        ),
        audience,
        skip: Some(ctx.conn_id.clone()),
        mark: None,
    };
    state.hub.deliver(&[delivery]).await?;
    Done::ok(serde_json::json!({ "conversation": name }))
}
