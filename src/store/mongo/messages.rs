//! The `messages` collection. One document per message; `hidden_for` lists the users who deleted
//! it for themselves and `recalled_at` marks a recall for everyone. Both fields are created at
//! insert (an empty array, no field) so every filter below uses only forms that behave the same
//! on MongoDB and on the local wire-compatible server (`$nin` on arrays, `$exists`).

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{self, Document, doc, oid::ObjectId};
use mongodb::options::{FindOptions, IndexOptions};
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::domain::{FileId, Location, MessageType, Timestamp, UserId};
use crate::error::AppResult;

pub(crate) const COLLECTION: &str = "messages";

/// The `type` of system notices in groups; they are history, never unread.
pub const SYSTEM_TYPE: i32 = 10;

/// Duplicate key: the MongoDB error code for a unique index violation.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub conversation: String,
    pub seq: i64,
    pub from: i64,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: i32,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub created_at: bson::DateTime,
    #[serde(default)]
    pub hidden_for: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Unix milliseconds of the recall. A number, not a date: the local MongoDB stand-in turns
    /// a `$set` date into a string.
    pub recalled_at: Option<i64>,
    /// The sender's nickname in the group when they sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// The upload an image, voice, video or file message carries (removed by a recall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentDoc>,
    /// The place of a location message (removed by a recall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// What a message keeps of the upload it carries (a copy: history needs no second lookup).
/// `file_id` is the upload's hex id, a string: the local MongoDB stand-in matches no ObjectId
/// by equality outside `_id`, and downloads look messages up by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AttachmentDoc {
    pub file_id: String,
    pub mime: String,
    pub size: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    pub thumbnail: bool,
}

/// An attachment as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Attachment {
    pub file_id: String,
    pub mime: String,
    pub size: i64,
    pub name: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    /// The URL path of the thumbnail, when the file has one.
    pub thumbnail: Option<String>,
}

impl From<&AttachmentDoc> for Attachment {
    fn from(doc: &AttachmentDoc) -> Self {
        Self {
            file_id: doc.file_id.clone(),
            mime: doc.mime.clone(),
            size: doc.size,
            name: doc.name.clone(),
            width: doc.width,
            height: doc.height,
            duration_ms: doc.duration_ms,
            thumbnail: doc
                .thumbnail
                .then(|| FileId::parse(&doc.file_id))
                .flatten()
                .map(FileId::thumbnail_path),
        }
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Message {
    pub id: String,
    pub conversation: String,
    pub seq: i64,
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: i32,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: Timestamp,
    /// Group messages: the sender's group nickname, when they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Types 2, 3, 4 and 6: the file (null otherwise).
    pub attachment: Option<Attachment>,
    /// Type 5: the place (null otherwise).
    pub location: Option<Location>,
}

impl Message {
    /// What a conversation list shows of it: the text or caption, else `"[image]"` and the like.
    pub(crate) fn preview(&self) -> String {
        if !self.content.is_empty() {
            return self.content.clone();
        }
        MessageType(self.kind)
            .placeholder()
            .unwrap_or_default()
            .to_owned()
    }
}

impl From<&MessageDoc> for Message {
    fn from(doc: &MessageDoc) -> Self {
        Self {
            id: doc.id.to_hex(),
            conversation: doc.conversation.clone(),
            seq: doc.seq,
            from: doc.from.to_string(),
            to: doc.to.clone(),
            kind: doc.kind,
            content: doc.content.clone(),
            client_msg_id: doc.client_msg_id.clone(),
            created_at: DateTime::<Utc>::from_timestamp_millis(doc.created_at.timestamp_millis())
                .unwrap_or_default()
                .into(),
            nickname: doc.nickname.clone(),
            attachment: doc.attachment.as_ref().map(Attachment::from),
            location: doc.location.clone(),
        }
    }
}

pub(crate) fn collection(db: &Database) -> Collection<MessageDoc> {
    db.collection(COLLECTION)
}

pub(crate) fn user_key(user: UserId) -> i64 {
    i64::try_from(user.0).unwrap_or(i64::MAX)
}

/// Created at startup, idempotently (index metadata is never read back).
pub(crate) async fn ensure_indexes(db: &Database) -> AppResult<()> {
    let unique = || IndexOptions::builder().unique(true).build();
    let coll = collection(db);
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "conversation": 1, "seq": 1 })
            .options(unique())
            .build(),
    )
    .await?;
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "from": 1, "client_msg_id": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .partial_filter_expression(doc! { "client_msg_id": { "$exists": true } })
                    .build(),
            )
            .build(),
    )
    .await?;
    // Downloads look up the messages that carry a file, in the conversations of the caller.
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "attachment.file_id": 1, "conversation": 1 })
            .options(IndexOptions::builder().sparse(true).build())
            .build(),
    )
    .await?;
    Ok(())
}

/// What `user` may see: not deleted by them, not recalled.
fn visible_to(user: UserId) -> Document {
    doc! {
        "hidden_for": { "$nin": [user_key(user)] },
        "recalled_at": { "$exists": false },
    }
}

fn merged(mut base: Document, extra: Document) -> Document {
    base.extend(extra);
    base
}

pub(crate) async fn find_by_id(db: &Database, id: ObjectId) -> AppResult<Option<MessageDoc>> {
    Ok(collection(db).find_one(doc! { "_id": id }).await?)
}

pub(crate) async fn find_by_client_id(
    db: &Database,
    from: UserId,
    client_msg_id: &str,
) -> AppResult<Option<MessageDoc>> {
    Ok(collection(db)
        .find_one(doc! { "from": user_key(from), "client_msg_id": client_msg_id })
        .await?)
}

/// The highest seq stored in a conversation (0 when empty).
pub(crate) async fn max_seq(db: &Database, conversation: &str) -> AppResult<i64> {
    let newest = collection(db)
        .find_one(doc! { "conversation": conversation })
        .sort(doc! { "seq": -1 })
        .await?;
    Ok(newest.map_or(0, |m| m.seq))
}

/// A page of history, newest first as queried; returned ascending, with whether older ones exist.
pub(crate) async fn history(
    db: &Database,
    viewer: UserId,
    conversation: &str,
    before_seq: Option<i64>,
    skip: u64,
    limit: i64,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    let mut filter = merged(doc! { "conversation": conversation }, visible_to(viewer));
    if let Some(before) = before_seq {
        filter.insert("seq", doc! { "$lt": before });
    }
    let options = FindOptions::builder()
        .sort(doc! { "seq": -1 })
        .skip(skip)
        .limit(limit + 1)
        .build();
    let (mut page, has_more) = find_page(db, filter, options, limit).await?;
    page.reverse();
    Ok((page, has_more))
}

/// At most `limit` messages of a query asked with a limit of `limit + 1`, and whether there
/// were more.
async fn find_page(
    db: &Database,
    filter: Document,
    options: FindOptions,
    limit: i64,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    let mut page: Vec<MessageDoc> = collection(db)
        .find(filter)
        .with_options(options)
        .await?
        .try_collect()
        .await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = page.len() > limit;
    page.truncate(limit);
    Ok((page, has_more))
}

/// Messages after `after_seq`, ascending, at most `limit`, and whether more follow.
/// `from_others_only` leaves out the viewer's own messages (for unread).
pub(crate) async fn after(
    db: &Database,
    viewer: UserId,
    conversation: &str,
    after_seq: i64,
    limit: i64,
    from_others_only: bool,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    let mut filter = merged(
        doc! { "conversation": conversation, "seq": { "$gt": after_seq } },
        visible_to(viewer),
    );
    if from_others_only {
        filter.insert("from", doc! { "$nin": [user_key(viewer)] });
        filter.insert("type", doc! { "$nin": [SYSTEM_TYPE] });
    }
    let options = FindOptions::builder()
        .sort(doc! { "seq": 1 })
        .limit(limit + 1)
        .build();
    find_page(db, filter, options, limit).await
}

/// How many messages from others the viewer has not read (system notices never count).
pub(crate) async fn count_unread(
    db: &Database,
    viewer: UserId,
    conversation: &str,
    read_seq: i64,
) -> AppResult<u64> {
    let filter = merged(
        doc! {
            "conversation": conversation,
            "seq": { "$gt": read_seq },
            "from": { "$nin": [user_key(viewer)] },
            "type": { "$nin": [SYSTEM_TYPE] },
        },
        visible_to(viewer),
    );
    Ok(collection(db).count_documents(filter).await?)
}

/// Hides the message from `user` (idempotent).
pub(crate) async fn hide_for(db: &Database, id: ObjectId, user: UserId) -> AppResult<()> {
    let key = user_key(user);
    collection(db)
        .update_one(
            doc! { "_id": id, "hidden_for": { "$nin": [key] } },
            doc! { "$push": { "hidden_for": key } },
        )
        .await?;
    Ok(())
}

/// Recalls the message for everyone: marks it and drops its content, attachment and place.
pub(crate) async fn recall(db: &Database, id: ObjectId) -> AppResult<()> {
    collection(db)
        .update_one(
            doc! { "_id": id },
            doc! {
                "$set": { "recalled_at": Utc::now().timestamp_millis(), "content": "" },
                "$unset": { "attachment": "", "location": "" },
            },
        )
        .await?;
    Ok(())
}

/// Whether a message not recalled in one of `conversations` carries the file.
pub(crate) async fn is_carried_in(
    db: &Database,
    file: FileId,
    conversations: Vec<String>,
) -> AppResult<bool> {
    let filter = doc! {
        "attachment.file_id": file.to_hex(),
        "recalled_at": { "$exists": false },
        "conversation": { "$in": conversations },
    };
    any(db, filter).await
}

/// Whether a message matches (its id alone is read).
async fn any(db: &Database, filter: Document) -> AppResult<bool> {
    Ok(db
        .collection::<Document>(COLLECTION)
        .find_one(filter)
        .projection(doc! { "_id": 1 })
        .await?
        .is_some())
}

/// Whether any message not recalled carries the file.
pub(crate) async fn is_carried(db: &Database, file: FileId) -> AppResult<bool> {
    let filter = doc! {
        "attachment.file_id": file.to_hex(),
        "recalled_at": { "$exists": false },
    };
    any(db, filter).await
}
