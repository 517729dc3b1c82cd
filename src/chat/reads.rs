//! Read positions and receipts: a mark moves the reader's position forward (never past the last
//! stored message, never for a conversation they cannot read) and tells the other
//! participants. A receipt goes out only when the position moved; a burst of marks of one
//! conversation becomes at most one event per `antispam.read_event_interval_ms`, the last one
//! carrying the newest position. Receipts never cross a block between the two people of a 1:1.
//! op 4 and `POST /conversations/{c}/read` both come here.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::antispam::events::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::chat::access::no_such_message;
use crate::chat::events::event_json;

use crate::domain::{ConversationId, UserId};
use crate::error::AppResult;
use crate::hub::{Audience, ConnId, Delivery};
use crate::store::mongo::messages;
use crate::store::mongo::reads::{self, Advanced};

#[derive(Serialize)]
struct ReadEvent<'a> {
    conversation: &'a str,
    user_id: UserId,
    seq: i64,
}

/// What a reader marks as read.
pub(crate) enum Mark {
    /// Up to and including this message (someone else's message id answers as unknown).
    Message(ObjectId),
    /// Up to this seq of the conversation (clamped to the last stored message).
    Position {
        conversation: ConversationId,
        seq: i64,
    },
    /// Everything stored in the conversation so far.
    All(ConversationId),
}

impl Chat {
    /// Marks as read and tells the others; returns the conversation and the position now in force.
    /// `skip` is the reader's connection that asked (it knows already).
    pub(crate) async fn mark_read(
        &self,
        reader: UserId,
        what: Mark,
        skip: Option<ConnId>,
    ) -> AppResult<(ConversationId, i64)> {
        count_receipt(self, reader).await?;
        let (conversation, seq) = match what {
            Mark::Message(id) => {
                let (doc, conversation) = self.message_by_id(id).await?;
                // Someone else's message id is not theirs to learn about.
                self.can_read(reader, conversation)
                    .await
                    .map_err(|_| no_such_message())?;
                (conversation, doc.seq)
            }
            Mark::Position { conversation, seq } => {
                self.can_read(reader, conversation).await?;
                (
                    conversation,
                    clamp_to_stored(self, conversation, seq).await?,
                )
            }
            Mark::All(conversation) => {
                self.can_read(reader, conversation).await?;
                (
                    conversation,
                    clamp_to_stored(self, conversation, i64::MAX).await?,
                )
            }
        };
        let position = advance_and_tell(self, reader, conversation, seq, skip).await?;
        Ok((conversation, position))
    }
}

/// One read mark against the `receipts` rule (op 4 and `POST /conversations/{c}/read`).
async fn count_receipt(state: &Chat, reader: UserId) -> AppResult<()> {
    state
        .antispam
        .check_event(reader, EventRule::Receipts, EventScope::Actor, None)
        .await
}

/// Never past the last stored message: a seq drawn but not (yet) stored, or one from the
/// future, must not swallow the messages that will carry it.
async fn clamp_to_stored(state: &Chat, conversation: ConversationId, seq: i64) -> AppResult<i64> {
    let last = messages::max_seq(&state.mongo, &conversation.to_string()).await?;
    Ok(seq.min(last))
}

/// Moves the reader's position up to `seq` and, when it moved, sends the receipt; returns the
/// position now in force. The caller has checked the right to read. Receipts go to everyone in
/// the conversation (and the reader's other devices, but `skip`), except in the lobby, where
/// they would be a broadcast per reader.
async fn advance_and_tell(
    state: &Chat,
    reader: UserId,
    conversation: ConversationId,
    seq: i64,
    skip: Option<ConnId>,
) -> AppResult<i64> {
    let name = conversation.to_string();
    let position = match reads::advance(&state.mongo, reader, &name, seq).await? {
        Advanced::Moved(position) => {
            tell(state, reader, conversation, position, skip);
            position
        }
        Advanced::Unchanged(position) => position,
        // Nothing to read yet: no position is made for it.
        Advanced::Missing if seq == 0 => 0,
        Advanced::Missing => {
            state.ensure_reader(reader, conversation, seq).await?;
            tell(state, reader, conversation, seq, skip);
            seq
        }
    };
    Ok(position)
}

/// The receipts of one process waiting to go out, per reader and conversation: present while
/// one was pushed less than the interval ago, holding the newest position marked since.
#[derive(Default)]
pub(crate) struct ReadEvents {
    pending: Mutex<HashMap<(UserId, ConversationId), Option<Pending>>>,
}

struct Pending {
    seq: i64,
    skip: Option<ConnId>,
}

impl ReadEvents {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(UserId, ConversationId), Option<Pending>>> {
        // Each change is one small update: a poisoned lock still holds a consistent map.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when the caller is to push now; otherwise the position waits for the next push.
    fn begin(&self, key: (UserId, ConversationId), seq: i64, skip: Option<ConnId>) -> bool {
        match self.lock().entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(None);
                true
            }
            Entry::Occupied(mut slot) => {
                if slot.get().as_ref().is_none_or(|p| p.seq < seq) {
                    slot.insert(Some(Pending { seq, skip }));
                }
                false
            }
        }
    }

    /// The position marked since the last push, if any; otherwise the key is done.
    fn next(&self, key: (UserId, ConversationId)) -> Option<Pending> {
        let mut pending = self.lock();
        let waiting = pending.get_mut(&key).and_then(Option::take);
        if waiting.is_none() {
            pending.remove(&key);
        }
        waiting
    }
}

/// Pushes the receipt now, or folds it into the one that follows the interval. The pushing
/// runs in its own task, so a closed connection cannot leave a key stuck.
fn tell(
    state: &Chat,
    reader: UserId,
    conversation: ConversationId,
    seq: i64,
    skip: Option<ConnId>,
) {
    let key = (reader, conversation);
    if !state.read_events.begin(key, seq, skip.clone()) {
        return;
    }
    let state = state.clone();
    let interval = Duration::from_millis(state.settings.antispam.read_event_interval_ms);
    tokio::spawn(async move {
        let mut next = Some(Pending { seq, skip });
        while let Some(Pending { seq, skip }) = next {
            if let Err(err) = publish(&state, reader, conversation, seq, skip).await {
                tracing::warn!(error = %err, "read receipt not pushed");
            }
            tokio::time::sleep(interval).await;
            next = state.read_events.next(key);
        }
    });
}

async fn publish(
    state: &Chat,
    reader: UserId,
    conversation: ConversationId,
    seq: i64,
    skip: Option<ConnId>,
) -> AppResult<()> {
    let audience = match conversation.peer_of(reader) {
        // Across a block the receipt goes to the reader's own devices only.
        Some(peer) if peer != reader && state.blocked_either_way(reader, peer).await? => {
            Audience::Users {
                users: vec![reader],
                primary: 0,
            }
        }
        _ => state.audience(conversation).await?,
    };
    if !matches!(audience, Audience::Users { .. }) {
        return Ok(());
    }
    let name = conversation.to_string();
    let delivery = Delivery {
        event: event_json(
            "read",
            &ReadEvent {
                conversation: &name,
                user_id: reader,
                seq,
            },
        ),
        audience,
        skip,
        conversation: Some(name.clone()),
        seq: None,
    };
    state.hub.deliver(&[delivery]).await?;
    Ok(())
}
