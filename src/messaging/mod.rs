//! The message pipeline shared by the WebSocket ops and the HTTP group routes: who takes part in
//! a conversation, the group commit writer, and the event frames.

pub mod writer;

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::Audience;
use crate::state::AppState;
use crate::store::mongo::reads;
use crate::store::mysql::groups;
use crate::store::redis::seq;

/// A server push: `{"event": <kind>, "data": <data>}`, serialised once for every recipient.
pub fn event_json(kind: &str, data: &impl Serialize) -> Arc<str> {
    #[derive(Serialize)]
    struct Event<'a, T> {
        event: &'a str,
        data: &'a T,
    }
    let text = serde_json::to_string(&Event { event: kind, data })
        .unwrap_or_else(|_| format!(r#"{{"event":"{kind}","data":null}}"#));
    Arc::from(text)
}

/// Checks that `user` takes part in the conversation.
/// Not a participant → 40003; an unknown group → 40004.
pub async fn check_participant(
    state: &AppState,
    user: UserId,
    conversation: ConversationId,
) -> AppResult<()> {
    match conversation {
        ConversationId::Direct { .. } => {
            if conversation.peer_of(user).is_some() {
                Ok(())
            } else {
                Err(not_participant())
            }
        }
        ConversationId::Group(group) => check_member(state, user, group).await,
    }
}

pub async fn check_member(state: &AppState, user: UserId, group: GroupId) -> AppResult<()> {
    if group.is_lobby() || groups::is_member(&state.mysql, group, user).await? {
        return Ok(());
    }
    if groups::find(&state.mysql, group).await?.is_none() {
        return Err(AppError::NotFound("no such group".into()));
    }
    Err(not_participant())
}

/// Checks many conversations at once (one MySQL query for all their groups).
pub async fn check_participant_all(
    state: &AppState,
    user: UserId,
    conversations: &[ConversationId],
) -> AppResult<()> {
    let mut wanted: Vec<GroupId> = Vec::new();
    for conversation in conversations {
        match conversation {
            ConversationId::Group(g) if !g.is_lobby() => wanted.push(*g),
            ConversationId::Group(_) => {}
            ConversationId::Direct { .. } => check_participant(state, user, *conversation).await?,
        }
    }
    let member_of = groups::member_of_which(&state.mysql, user, &wanted).await?;
    match wanted.into_iter().find(|g| !member_of.contains(g)) {
        // Not a member: the single check says whether the group exists (40004) or not (40003).
        Some(outside) => check_member(state, user, outside).await,
        None => Ok(()),
    }
}

fn not_participant() -> AppError {
    AppError::forbidden(
        "forbidden",
        "you are not a participant of this conversation",
    )
}

/// Everyone to push a conversation's events to (the lobby: everybody).
pub async fn audience(state: &AppState, conversation: ConversationId) -> AppResult<Audience> {
    match conversation {
        ConversationId::Direct { low, high } => {
            let users = if low == high {
                vec![low]
            } else {
                vec![low, high]
            };
            Ok(Audience::Users { users, primary: 0 })
        }
        ConversationId::Group(group) if group.is_lobby() => Ok(Audience::Everyone),
        ConversationId::Group(group) => Ok(Audience::Users {
            users: groups::member_ids(&state.mysql, group).await?,
            primary: 0,
        }),
    }
}

/// Makes `user` a reader of the group conversation starting now: earlier messages are history,
/// not unread.
pub async fn start_reading(state: &AppState, user: UserId, group: GroupId) -> AppResult<()> {
    let conversation = ConversationId::Group(group).to_string();
    let current = seq::current(&state.redis, &state.mongo, &state.keys, &conversation).await?;
    reads::ensure(&state.mongo, user, &conversation, current).await
}
