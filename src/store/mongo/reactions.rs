//! The `reactions` collection: one document per message, user and emoji. Its `_id` makes one
//! user's reaction with one emoji unique; `key` ("<message id> <emoji>") is what the counts are
//! grouped by (the local MongoDB stand-in groups by one field only, not by a compound `_id`).

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::{Emoji, UserId};
use crate::error::AppResult;
use crate::store::mongo::is_duplicate;
use crate::store::mongo::messages::user_key;

const COLLECTION: &str = "reactions";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReactionDoc {
    /// `<message id>/<user id>/<emoji>`.
    #[serde(rename = "_id")]
    id: String,
    message_id: String,
    key: String,
    user_id: i64,
    emoji: String,
    /// Unix milliseconds.
    at: i64,
}

fn collection(db: &Database) -> Collection<ReactionDoc> {
    db.collection(COLLECTION)
}

/// Created at startup, idempotently.
pub(crate) async fn ensure_indexes(db: &Database) -> AppResult<()> {
    let coll = collection(db);
    for keys in [
        doc! { "message_id": 1, "user_id": 1 },
        doc! { "user_id": 1, "message_id": 1 },
    ] {
        coll.create_index(
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().build())
                .build(),
        )
        .await?;
    }
    Ok(())
}

/// Records `user`'s reaction; false when they had reacted so already.
pub(crate) async fn add(
    db: &Database,
    message_id: &str,
    user: UserId,
    emoji: &Emoji,
) -> AppResult<bool> {
    let doc = ReactionDoc {
        id: format!("{message_id}/{user}/{}", emoji.as_str()),
        message_id: message_id.to_owned(),
        key: format!("{message_id} {}", emoji.as_str()),
        user_id: user_key(user),
        emoji: emoji.as_str().to_owned(),
        at: chrono::Utc::now().timestamp_millis(),
    };
    match collection(db).insert_one(doc).await {
        Ok(_) => Ok(true),
        Err(err) if is_duplicate(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Takes `user`'s reaction back; false when there was none.
pub(crate) async fn remove(
    db: &Database,
    message_id: &str,
    user: UserId,
    emoji: &Emoji,
) -> AppResult<bool> {
    let id = format!("{message_id}/{user}/{}", emoji.as_str());
    Ok(collection(db)
        .delete_one(doc! { "_id": id })
        .await?
        .deleted_count
        > 0)
}

/// The distinct emoji `user` reacted to the message with.
pub(crate) async fn count_of_user(db: &Database, message_id: &str, user: UserId) -> AppResult<u64> {
    Ok(collection(db)
        .count_documents(doc! { "message_id": message_id, "user_id": user_key(user) })
        .await?)
}

/// The distinct emoji of the message's reactions.
pub(crate) async fn distinct_emoji(db: &Database, message_id: &str) -> AppResult<usize> {
    Ok(collection(db)
        .distinct("emoji", doc! { "message_id": message_id })
        .await?
        .len())
}

/// One emoji's count on one message, and when it was first given.
pub(crate) struct Count {
    pub emoji: String,
    pub count: u64,
    pub first_at: i64,
}

/// The reaction counts of these messages (one aggregation), by message id, each in the order
/// the emoji were first given.
pub(crate) async fn counts(
    db: &Database,
    message_ids: &[String],
) -> AppResult<HashMap<String, Vec<Count>>> {
    let mut out: HashMap<String, Vec<Count>> = HashMap::new();
    if message_ids.is_empty() {
        return Ok(out);
    }
    let pipeline = [
        doc! { "$match": { "message_id": { "$in": message_ids } } },
        doc! { "$group": { "_id": "$key", "n": { "$sum": 1 }, "first": { "$min": "$at" } } },
    ];
    let groups: Vec<Document> = db
        .collection::<Document>(COLLECTION)
        .aggregate(pipeline)
        .await?
        .try_collect()
        .await?;
    for group in groups {
        let Some((message, emoji)) = group.get_str("_id").ok().and_then(|k| k.split_once(' '))
        else {
            continue;
        };
        let number = |name: &str| {
            group
                .get_i64(name)
                .or_else(|_| group.get_i32(name).map(i64::from))
                .unwrap_or(0)
        };
        out.entry(message.to_owned()).or_default().push(Count {
            emoji: emoji.to_owned(),
            count: u64::try_from(number("n")).unwrap_or(0),
            first_at: number("first"),
        });
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.first_at.cmp(&b.first_at).then(a.emoji.cmp(&b.emoji)));
    }
    Ok(out)
}

/// Which of these messages `user` reacted to, with which emoji.
pub(crate) async fn mine(
    db: &Database,
    user: UserId,
    message_ids: &[String],
) -> AppResult<HashSet<(String, String)>> {
    if message_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<ReactionDoc> = collection(db)
        .find(doc! { "user_id": user_key(user), "message_id": { "$in": message_ids } })
        .await?
        .try_collect()
        .await?;
    Ok(found.into_iter().map(|r| (r.message_id, r.emoji)).collect())
}
