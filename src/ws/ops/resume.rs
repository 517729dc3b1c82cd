//! op 7: everything the caller has not seen, after a reconnect (see chat::history).

use crate::domain::ConversationId;
use crate::error::AppResult;
use crate::store::mongo::messages::ChangeCursor;
use crate::ws::ops::{Done, OpCtx};

pub(super) async fn run(
    ctx: &OpCtx,
    since: Vec<(ConversationId, i64)>,
    changed_since: Option<ChangeCursor>,
) -> AppResult<Done> {
    Done::ok(ctx.state.resume(ctx.user, since, changed_since).await?)
}
