//! The `read_positions` collection: one document per user and conversation they take part in,
//! holding how far they have read. It doubles as the index of a user's conversations.

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::mongo::is_duplicate;
use crate::store::mongo::messages::user_key;

pub const COLLECTION: &str = "read_positions";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadPosition {
    pub user_id: i64,
    pub conversation: String,
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

/// Every conversation of the user with its read position.
pub async fn list(db: &Database, user: UserId) -> AppResult<Vec<ReadPosition>> {
    Ok(collection(db)
        .find(doc! { "user_id": user_key(user) })
        .await?
        .try_collect()
        .await?)
}

/// Moves the read position up to `seq` (never back); returns the position now in force.
pub async fn advance(db: &Database, user: UserId, conversation: &str, seq: i64) -> AppResult<i64> {
    let filter = doc! { "user_id": user_key(user), "conversation": conversation };
    let update = doc! { "$max": { "read_seq": seq } };
    let attempt = collection(db)
        .find_one_and_update(filter.clone(), update.clone())
        .upsert(true)
        .return_document(ReturnDocument::After)
        .await;
    let updated = match attempt {
        Err(err) if is_duplicate(&err) => {
            // A concurrent upsert inserted the document first; now it exists, update it.
            collection(db)
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After)
                .await?
        }
        other => other?,
    };
    Ok(updated.map_or(seq, |r| r.read_seq))
}

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
    collection(db)
        .update_one(
            doc! { "user_id": user_key(user), "conversation": conversation },
            update,
        )
        .await?;
    Ok(())
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
