//! One file per op. Each takes the parsed op and returns a reply code, message and data, or an
//! error that becomes the reply's code.

mod delete;
mod edit;
mod group_send;
mod history;
pub(crate) mod mark_read;
mod react;
mod resume;
mod send;
mod typing;
mod unread;

use std::borrow::Cow;

use actix_web::web;
use serde::Serialize;
use serde_json::Value;

use crate::chat::Chat;
use crate::chat::sending::NewMessage;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::ws::order::Ticket;
use crate::ws::protocol::{CODE_OK, ClientOp, Outgoing, Reply, Request};

/// Who is asking, on which connection.
#[derive(Clone)]
pub(crate) struct OpCtx {
    pub state: web::Data<Chat>,
    pub user: UserId,
    pub conn_id: ConnId,
}

pub(crate) struct Done {
    pub code: u32,
    pub msg: Cow<'static, str>,
    pub data: Value,
}

impl Done {
    pub(crate) fn ok(data: impl Serialize) -> AppResult<Self> {
        Self::with(CODE_OK, "ok", data)
    }

    pub(crate) fn with(code: u32, msg: &'static str, data: impl Serialize) -> AppResult<Self> {
        let data = serde_json::to_value(data)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("reply data: {e}")))?;
        Ok(Self {
            code,
            msg: msg.into(),
            data,
        })
    }
}

/// Waits for the connection's turn to send (see ws::order), then gives the message to send.
async fn in_turn(
    ticket: Option<&Ticket>,
    message: Outgoing,
    client_msg_id: Option<String>,
) -> NewMessage {
    if let Some(ticket) = ticket {
        ticket.wait().await;
    }
    NewMessage {
        body: message.body,
        reply_to: message.reply_to,
        mentions: message.mentions,
        client_msg_id,
    }
}

/// Runs one op. A send (op 1, 6) takes its turn with `ticket` (see ws::order); other ops run
/// alone and ignore it.
#[tracing::instrument(skip_all, fields(user_id = %ctx.user, op_type = request.op_type))]
pub(crate) async fn execute(ctx: OpCtx, request: Request, ticket: Option<Ticket>) -> Reply {
    let Request {
        op_type,
        client_msg_id,
        op,
    } = request;
    let cid = client_msg_id.clone();
    let result = match op {
        ClientOp::Send { to, message } => send::run(&ctx, to, message, cid, ticket).await,
        ClientOp::History { target, paging } => history::run(&ctx, target, paging).await,
        ClientOp::Unread { target } => unread::run(&ctx, target).await,
        ClientOp::MarkRead(target) => mark_read::run(&ctx, target).await,
        ClientOp::Delete { id, everyone } => delete::run(&ctx, id, everyone).await,
        ClientOp::GroupSend { group, message } => {
            group_send::run(&ctx, group, message, cid, ticket).await
        }
        ClientOp::Resume {
            since,
            changed_since,
        } => resume::run(&ctx, since, changed_since).await,
        ClientOp::Typing { target } => typing::run(&ctx, target).await,
        ClientOp::Edit { id, content } => edit::run(&ctx, id, content).await,
        ClientOp::React { id, emoji, add } => react::run(&ctx, id, emoji, add).await,
    };
    match result {
        Ok(done) => Reply {
            op_type,
            code: done.code,
            msg: done.msg,
            data: Some(done.data),
            client_msg_id,
        },
        Err(err) => Reply::error(op_type, client_msg_id, &err),
    }
}
