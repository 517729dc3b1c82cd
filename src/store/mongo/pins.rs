//! The `pins` collection: the messages pinned in a conversation, one document each (its `_id`
//! is `<conversation>/<message id>`, so a message is pinned once).

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::AppResult;
use crate::store::mongo::is_duplicate;
use crate::store::mongo::messages::user_key;

const COLLECTION: &str = "pins";

/// A pinned message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PinDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub conversation: String,
    pub message_id: String,
    pub pinned_by: i64,
    /// Unix milliseconds.
    pub pinned_at: i64,
}

fn collection(db: &Database) -> Collection<PinDoc> {
    db.collection(COLLECTION)
}

fn pin_id(conversation: &str, message_id: &str) -> String {
    format!("{conversation}/{message_id}")
}

/// Created at startup, idempotently.
pub(crate) async fn ensure_indexes(db: &Database) -> AppResult<()> {
    collection(db)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "conversation": 1, "pinned_at": -1 })
                .options(IndexOptions::builder().build())
                .build(),
        )
        .await?;
    Ok(())
}

/// Pins the message; the pin already there when it was (nothing written then).
pub(crate) async fn add(
    db: &Database,
    conversation: &str,
    message_id: &str,
    by: UserId,
) -> AppResult<(PinDoc, bool)> {
    let pin = PinDoc {
        id: pin_id(conversation, message_id),
        conversation: conversation.to_owned(),
        message_id: message_id.to_owned(),
        pinned_by: user_key(by),
        pinned_at: chrono::Utc::now().timestamp_millis(),
    };
    match collection(db).insert_one(&pin).await {
        Ok(_) => Ok((pin, true)),
        Err(err) if is_duplicate(&err) => {
            let existing = collection(db).find_one(doc! { "_id": &pin.id }).await?;
            Ok((existing.unwrap_or(pin), false))
        }
        Err(err) => Err(err.into()),
    }
}

/// Unpins the message; false when it was not pinned.
pub(crate) async fn remove(db: &Database, conversation: &str, message_id: &str) -> AppResult<bool> {
    Ok(collection(db)
        .delete_one(doc! { "_id": pin_id(conversation, message_id) })
        .await?
        .deleted_count
        > 0)
}

/// How many messages are pinned in the conversation.
pub(crate) async fn count(db: &Database, conversation: &str) -> AppResult<u64> {
    Ok(collection(db)
        .count_documents(doc! { "conversation": conversation })
        .await?)
}

/// The conversation's pins, newest first, at most `limit`.
pub(crate) async fn list(db: &Database, conversation: &str, limit: i64) -> AppResult<Vec<PinDoc>> {
    Ok(collection(db)
        .find(doc! { "conversation": conversation })
        .sort(doc! { "pinned_at": -1, "_id": -1 })
        .limit(limit)
        .await?
        .try_collect()
        .await?)
}
