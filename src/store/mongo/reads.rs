//! The `read_positions` collection: one document per user and conversation they take part in,
//! holding how far they have read. It doubles as the index of a user's conversations.

use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::mongo::is_duplicate;
use crate::store::mongo::messages::user_key;

/// The collection of read positions: one document per user and conversation.
pub const COLLECTION: &str = "read_positions";

/// How far a user has read a conversation (and their flags for it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadPosition {
    /// The reader.
    pub user_id: i64,
    /// The conversation's wire name.
    pub conversation: String,
    /// The last seq read (0: nothing).
    pub read_seq: i64,
    /// When the user pinned the conversation, in Unix milliseconds (absent: not pinned). A
    /// number, not a date: the local MongoDB stand-in turns a `$set` date into a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<i64>,
    /// Hidden while the conversation's last seq is at most this (absent: not hidden).
    /// A timestamp and a seq rather than booleans: the local MongoDB stand-in stores a `$set`
    /// boolean as an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_seq: Option<i64>,
}

fn collection(db: &Database) -> Collection<ReadPosition> {
    db.collection(COLLECTION)
}

/// Creates the collection's indexes (idempotent).
pub async fn ensure_indexes(db: &Database) -> AppResult<()> {
    collection(db)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "user_id": 1, "conversation": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    Ok(())
}

/// Records that `user` takes part in `conversation`, starting from `read_seq` when new.
pub async fn ensure(
    db: &Database,
    user: UserId,
    conversation: &str,
    read_seq: i64,
) -> AppResult<()> {
    let result = collection(db)
        .update_one(
            doc! { "user_id": user_key(user), "conversation": conversation },
            doc! { "$setOnInsert": { "read_seq": read_seq } },
        )
        .upsert(true)
        .await;
    match result {
        Ok(_) => Ok(()),
        // Two first messages racing: the other upsert created it, which is all we wanted.
        Err(err) if is_duplicate(&err) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The user's read position (0 when they never read anything there).
pub async fn get(db: &Database, user: UserId, conversation: &str) -> AppResult<i64> {
    let found = collection(db)
        .find_one(doc! { "user_id": user_key(user), "conversation": conversation })
        .await?;
    Ok(found.map_or(0, |r| r.read_seq))
}

/// Every conversation the user has a position in, with it. Positions are not rights: callers
/// keep only the conversations the user may read now (`writer::readable`).
pub async fn list(db: &Database, user: UserId) -> AppResult<Vec<ReadPosition>> {
    Ok(collection(db)
        .find(doc! { "user_id": user_key(user) })
        .await?
        .try_collect()
        .await?)
}

/// What [`advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The position moved forward to this seq.
    Moved(i64),
    /// The position was already at or past the seq asked for; this is the one in force.
    Unchanged(i64),
    /// The user has no position there: nothing was written (see below).
    Missing,
}

/// Moves an existing read position up to `seq` (never back). It never creates one: a position
/// that a leave or a kick removed meanwhile must stay removed, so creating one is left to the
/// paths that check the right to read first (`writer::ensure_reader`).
pub async fn advance(
    db: &Database,
    user: UserId,
    conversation: &str,
    seq: i64,
) -> AppResult<Advanced> {
    let moved = collection(db)
        .find_one_and_update(
            doc! {
                "user_id": user_key(user),
                "conversation": conversation,
                "read_seq": { "$lt": seq },
            },
            doc! { "$max": { "read_seq": seq } },
        )
        .return_document(ReturnDocument::After)
        .await?;
    if let Some(now) = moved {
        return Ok(Advanced::Moved(now.read_seq));
    }
    Ok(match find(db, user, conversation).await? {
        Some(now) => Advanced::Unchanged(now.read_seq),
        None => Advanced::Missing,
    })
}

/// Forgets the user's position in the conversation (after they leave it).
pub async fn remove(db: &Database, user: UserId, conversation: &str) -> AppResult<()> {
    collection(db)
        .delete_one(doc! { "user_id": user_key(user), "conversation": conversation })
        .await?;
    Ok(())
}

/// Pins or unpins the conversation for the user.
pub async fn set_pinned(
    db: &Database,
    user: UserId,
    conversation: &str,
    pinned: bool,
) -> AppResult<()> {
    let update = if pinned {
        doc! { "$set": { "pinned_at": chrono::Utc::now().timestamp_millis() } }
    } else {
        doc! { "$unset": { "pinned_at": "" } }
    };
    update_position(db, user, conversation, update).await
}

/// Applies `update` to the user's position in the conversation.
async fn update_position(
    db: &Database,
    user: UserId,
    conversation: &str,
    update: Document,
) -> AppResult<()> {
    collection(db)
        .update_one(
            doc! { "user_id": user_key(user), "conversation": conversation },
            update,
        )
        .await?;
    Ok(())
}

/// Hides the conversation until a message after `last_seq` arrives, or shows it again.
pub async fn set_hidden(
    db: &Database,
    user: UserId,
    conversation: &str,
    hidden_until_after: Option<i64>,
) -> AppResult<()> {
    let update = match hidden_until_after {
        Some(seq) => doc! { "$set": { "hidden_seq": seq } },
        None => doc! { "$unset": { "hidden_seq": "" } },
    };
    update_position(db, user, conversation, update).await
}

/// The user's position in one conversation, with its settings.
pub async fn find(
    db: &Database,
    user: UserId,
    conversation: &str,
) -> AppResult<Option<ReadPosition>> {
    Ok(collection(db)
        .find_one(doc! { "user_id": user_key(user), "conversation": conversation })
        .await?)
}
