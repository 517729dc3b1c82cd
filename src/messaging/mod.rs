//! The message pipeline shared by the WebSocket ops and the HTTP group routes: who takes part in
//! a conversation, the group commit writer, and the event frames.

pub mod writer;

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::Audience;
use crate::state::AppState;
use crate::store::directory::GroupView;
use crate::store::mongo::{messages, reads};
use crate::store::mysql::people::SendRelation;
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
    if group.is_lobby() {
        return Ok(());
    }
    match group_view(state, group).await? {
        None => Err(AppError::NotFound("no such group".into())),
        Some(view) if view.members.contains_key(&user) => Ok(()),
        Some(_) => Err(not_participant()),
    }
}

/// A group with its members, from the cache in front of MySQL.
async fn group_view(state: &AppState, group: GroupId) -> AppResult<Option<Arc<GroupView>>> {
    state.hub.directory().group(&state.mysql, group).await
}

/// Checks many conversations at once.
pub async fn check_participant_all(
    state: &AppState,
    user: UserId,
    conversations: &[ConversationId],
) -> AppResult<()> {
    for conversation in conversations {
        check_participant(state, user, *conversation).await?;
    }
    Ok(())
}

/// Checks that `from` may reach `to` directly (a message or a typing notice): the recipient
/// exists (40004), has not blocked the sender and, when `messaging.require_friendship` is on, is
/// a friend (40003).
pub async fn check_recipient(
    state: &AppState,
    from: UserId,
    to: UserId,
) -> AppResult<SendRelation> {
    let relation = state
        .hub
        .directory()
        .send_relation(&state.mysql, from, to)
        .await?;
    if !relation.recipient_exists {
        return Err(AppError::NotFound("no such user".into()));
    }
    if relation.blocked_by_recipient {
        return Err(AppError::forbidden(
            "forbidden",
            "this user does not accept your messages",
        ));
    }
    if state.settings.messaging.require_friendship && !relation.friends {
        return Err(AppError::forbidden(
            "forbidden",
            "you can only message your friends",
        ));
    }
    Ok(relation)
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
            users: group_view(state, group)
                .await?
                .map(|view| view.member_ids())
                .unwrap_or_default(),
            primary: 0,
        }),
    }
}

/// Who may send to a group right now: a member of a group that is not dissolved, not muted
/// (the whole group, unless a manager; or personally). Returns the sender's group nickname.
pub async fn check_sender(
    state: &AppState,
    user: UserId,
    group: GroupId,
) -> AppResult<Option<String>> {
    if group.is_lobby() {
        return Ok(None);
    }
    let view = group_view(state, group).await?;
    let Some(view) = view.filter(|v| !v.group.dissolved) else {
        return Err(AppError::NotFound("no such group".into()));
    };
    let membership = view.members.get(&user).ok_or_else(not_participant)?;
    if view.group.muted && !membership.is_manager() {
        return Err(AppError::forbidden("forbidden", "the group is muted"));
    }
    if let Some(until) = membership.muted_until() {
        return Err(AppError::forbidden(
            "forbidden",
            format!(
                "you are muted in this group until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    Ok(membership.nickname.clone())
}

/// Who gets a group's messages live: the members, less those in do-not-disturb.
pub async fn message_audience(state: &AppState, group: GroupId) -> AppResult<Audience> {
    if group.is_lobby() {
        return Ok(Audience::Everyone);
    }
    Ok(Audience::Users {
        users: group_view(state, group)
            .await?
            .map(|view| view.push_member_ids())
            .unwrap_or_default(),
        primary: 0,
    })
}

/// Stores a system message (type 10) in the group and pushes it, plus `event: group` with the
/// same description, to the members.
pub async fn announce(
    state: &AppState,
    group: GroupId,
    actor: UserId,
    description: serde_json::Value,
) -> AppResult<()> {
    let audience = message_audience(state, group).await?;
    let draft = writer::Draft {
        conversation: ConversationId::Group(group),
        from: actor,
        to: group.to_string(),
        kind: crate::domain::MessageType(messages::SYSTEM_TYPE),
        content: description.to_string(),
        client_msg_id: None,
        audience,
        skip: None,
        nickname: None,
    };
    state.writer.submit(draft).await?;
    group_event(state, group, description).await;
    Ok(())
}

/// Pushes `event: group` to the group's live members (do-not-disturb or not).
pub async fn group_event(state: &AppState, group: GroupId, mut data: serde_json::Value) {
    if let Some(object) = data.as_object_mut() {
        object.insert("group_id".into(), group.to_string().into());
    }
    let users = match group_view(state, group).await {
        Ok(view) => view.map(|v| v.member_ids()).unwrap_or_default(),
        Err(err) => {
            tracing::warn!(error = %err, "group event not pushed");
            return;
        }
    };
    let delivery = crate::hub::Delivery {
        event: event_json("group", &data),
        audience: Audience::Users { users, primary: 0 },
        skip: None,
        mark: None,
    };
    if let Err(err) = state.hub.deliver(&[delivery]).await {
        tracing::warn!(error = %err, "group event not pushed");
    }
}

/// Things some idempotent work was done for once (a read position made, say), remembered by
/// one process so it is not done again; forgotten all at once past `KNOWN_MAX` entries (only
/// the work's cost is saved, never its effect).
pub struct Known<T>(std::sync::Mutex<std::collections::HashSet<T>>);

const KNOWN_MAX: usize = 200_000;

impl<T> Default for Known<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashSet::new()))
    }
}

impl<T: std::hash::Hash + Eq> Known<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<T>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn contains(&self, item: &T) -> bool {
        self.lock().contains(item)
    }

    pub fn insert_all(&self, items: impl IntoIterator<Item = T>) {
        let mut known = self.lock();
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.extend(items);
    }
}

/// Makes every user a reader of the lobby, once, starting when they first connect (its past is
/// history, not unread). Each process remembers whom it has done this for, so a reconnect costs
/// nothing; the start is the lobby's seq counter (at worst a few messages early, should the
/// counter lag), created from MongoDB's last lobby message when missing, so a first connect
/// does not make MongoDB look for that message again.
pub async fn ensure_lobby_reader(state: &AppState, user: UserId) -> AppResult<()> {
    if state.lobby_readers.contains(&user) {
        return Ok(());
    }
    let conversation = ConversationId::Group(GroupId::LOBBY).to_string();
    let start = match seq::counter(&state.redis_link, &state.keys, &conversation).await? {
        Some(counter) => counter,
        None => {
            // Once per counter: later connects find it.
            let stored =
                seq::current(&state.redis_link, &state.mongo, &state.keys, &conversation).await?;
            seq::seed(&state.redis_link, &state.keys, &conversation, stored).await?;
            stored
        }
    };
    reads::ensure(&state.mongo, user, &conversation, start).await?;
    state.lobby_readers.insert_all([user]);
    Ok(())
}

/// Makes `user` a reader of the group conversation starting now: earlier messages are history,
/// not unread.
pub async fn start_reading(state: &AppState, user: UserId, group: GroupId) -> AppResult<()> {
    let conversation = ConversationId::Group(group).to_string();
    let current = seq::current(&state.redis_link, &state.mongo, &state.keys, &conversation).await?;
    reads::ensure(&state.mongo, user, &conversation, current).await
}
