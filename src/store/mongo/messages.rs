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
use crate::error::{AppError, AppResult};

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
    /// Unix milliseconds of the last edit (absent: never edited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// The texts an edit replaced, oldest first (written whole by each edit: the local MongoDB
    /// stand-in stores a `$push`ed sub-document as a string). Never shown to clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<EditDoc>,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyDoc>,
    /// A copy of another message (written at insert only: a `$set` boolean becomes an integer
    /// on the stand-in).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Whose the forwarded original was, when the recipients may know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<i64>,
    /// Group messages: the mentioned members' ids (strings), or `"all"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// The search terms of the text or caption (see `domain::terms`; removed by a recall).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<String>,
    /// Unix milliseconds of the first reaction (absent: never reacted to), so reading
    /// messages asks for reactions only where there may be some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reacted_at: Option<i64>,
    /// Unix milliseconds of the last change after it was stored (an edit, a recall, a
    /// reaction, its quote brought up to date), so a client back from offline asks for what
    /// changed in what it holds (op 7 `changed_since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<i64>,
}

/// A text an edit replaced, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EditDoc {
    pub content: String,
    /// Unix milliseconds of the edit that replaced it.
    pub at: i64,
}

/// What a reply keeps of the message it answers. The excerpt follows the original's edits and
/// goes with its recall (`recalled_at` set instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplyDoc {
    /// The original's id, hex.
    pub id: String,
    pub from: i64,
    #[serde(rename = "type")]
    pub kind: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled_at: Option<i64>,
    /// The original's `edited_at` when the excerpt was taken: an older edit's update never
    /// overwrites a newer one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
}

/// The message a reply answers, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ReplyTo {
    pub id: String,
    pub from: String,
    #[serde(rename = "type")]
    pub kind: i32,
    /// The first characters of its text or caption, or `"[image]"` and the like; null once
    /// it is recalled.
    pub excerpt: Option<String>,
    pub recalled: bool,
}

impl From<&ReplyDoc> for ReplyTo {
    fn from(doc: &ReplyDoc) -> Self {
        let recalled = doc.recalled_at.is_some();
        Self {
            id: doc.id.clone(),
            from: doc.from.to_string(),
            kind: doc.kind,
            excerpt: if recalled { None } else { doc.excerpt.clone() },
            recalled,
        }
    }
}

/// Whose a forwarded message was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ForwardedFrom {
    pub user_id: String,
}

/// One emoji's reactions to a message, for one reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ReactionCount {
    pub emoji: String,
    pub count: u64,
    /// Whether the reader is among them.
    pub me: bool,
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
    /// When it was last edited (null: never).
    pub edited_at: Option<Timestamp>,
    /// The message it answers (null: none).
    pub reply_to: Option<ReplyTo>,
    /// Whether it is a copy of another message.
    pub forwarded: bool,
    /// Whose the original was, when its readers may know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<ForwardedFrom>,
    /// Group messages: the mentioned members' ids, or `["all"]`.
    pub mentions: Vec<String>,
    /// The reactions, for the reader (filled by `Chat::with_reactions`).
    pub reactions: Vec<ReactionCount>,
    /// Whether it may have reactions (then they are looked up).
    #[serde(skip)]
    pub reacted: bool,
}

impl Message {
    /// What a conversation list shows of it: the text or caption, else `"[image]"` and the like.
    pub(crate) fn preview(&self) -> String {
        preview(&self.content, self.kind)
    }

    /// The message as an event pushed to every participant carries it: the reaction counts,
    /// without anybody's `me` (each reader knows their own).
    pub(crate) fn for_everyone(&self) -> Self {
        let mut shown = self.clone();
        for reaction in &mut shown.reactions {
            reaction.me = false;
        }
        shown
    }
}

fn preview(content: &str, kind: i32) -> String {
    if !content.is_empty() {
        return content.to_owned();
    }
    MessageType(kind)
        .placeholder()
        .unwrap_or_default()
        .to_owned()
}

impl MessageDoc {
    /// What a reply shows of it (see `domain::excerpt`).
    pub(crate) fn excerpt(&self) -> String {
        crate::domain::excerpt(&preview(&self.content, self.kind))
    }

    /// Whether `user` deleted it for themselves.
    pub(crate) fn hidden_for(&self, user: UserId) -> bool {
        self.hidden_for.contains(&user_key(user))
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
            edited_at: doc.edited_at.and_then(Timestamp::from_millis),
            reply_to: doc.reply_to.as_ref().map(ReplyTo::from),
            forwarded: doc.forwarded,
            forwarded_from: doc.forwarded_from.map(|id| ForwardedFrom {
                user_id: id.to_string(),
            }),
            mentions: doc.mentions.clone(),
            reactions: Vec::new(),
            reacted: doc.reacted_at.is_some(),
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
    let index = |keys: Document, options: IndexOptions| {
        IndexModel::builder().keys(keys).options(options).build()
    };
    let sparse = || IndexOptions::builder().sparse(true).build();
    let models = [
        // One message per seq of a conversation.
        index(
            doc! { "conversation": 1, "seq": 1 },
            IndexOptions::builder().unique(true).build(),
        ),
        // A client_msg_id is stored once per sender.
        index(
            doc! { "from": 1, "client_msg_id": 1 },
            IndexOptions::builder()
                .unique(true)
                .partial_filter_expression(doc! { "client_msg_id": { "$exists": true } })
                .build(),
        ),
        // Downloads look up the messages that carry a file, in the conversations of the caller.
        index(
            doc! { "attachment.file_id": 1, "conversation": 1 },
            sparse(),
        ),
        // Search: the messages of the caller's conversations holding every term of a query.
        index(
            doc! { "conversation": 1, "terms": 1 },
            IndexOptions::default(),
        ),
        // Op 7's `changed_since`: what changed in a client's conversations while it was away.
        index(doc! { "conversation": 1, "changed_at": 1 }, sparse()),
        // Edits and recalls update the replies that quote a message.
        index(doc! { "reply_to.id": 1 }, sparse()),
    ];
    let coll = collection(db);
    for model in models {
        coll.create_index(model).await?;
    }
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
    mut options: FindOptions,
    limit: i64,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    options.projection = Some(read_projection());
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

/// Recalls the message for everyone: marks it and drops its content, edit history, search
/// terms, attachment and place; the replies quoting it lose their excerpt.
pub(crate) async fn recall(db: &Database, id: ObjectId) -> AppResult<()> {
    let now = Utc::now().timestamp_millis();
    collection(db)
        .update_one(
            doc! { "_id": id },
            doc! {
                "$set": { "recalled_at": now, "content": "", "changed_at": now },
                "$unset": { "attachment": "", "location": "", "edits": "", "terms": "" },
            },
        )
        .await?;
    collection(db)
        .update_many(
            doc! { "reply_to.id": id.to_hex() },
            quote_recalled(now, now),
        )
        .await?;
    Ok(())
}

/// An edit as [`edit`] writes it.
pub(crate) struct Edit<'a> {
    pub content: &'a str,
    /// The texts replaced so far, this edit's included.
    pub edits: &'a [EditDoc],
    pub terms: Vec<String>,
    pub at_ms: i64,
    /// What replies quoting it show now.
    pub excerpt: String,
}

/// Replaces the text of `before` (the sender's, not recalled) if nobody edited or recalled it
/// since it was read; false when somebody did (read again and retry). Replies quoting it show
/// the new excerpt.
pub(crate) async fn edit(db: &Database, before: &MessageDoc, edit: Edit<'_>) -> AppResult<bool> {
    let mut filter = doc! {
        "_id": before.id,
        "from": before.from,
        "recalled_at": { "$exists": false },
    };
    match before.edited_at {
        Some(at) => filter.insert("edited_at", at),
        None => filter.insert("edited_at", doc! { "$exists": false }),
    };
    let edits = bson::to_bson(edit.edits)
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("edit history: {e}")))?;
    let mut set = doc! {
        "content": edit.content,
        "edited_at": edit.at_ms,
        "changed_at": edit.at_ms,
        "edits": edits,
    };
    let update = if edit.terms.is_empty() {
        doc! { "$set": set, "$unset": { "terms": "" } }
    } else {
        set.insert("terms", edit.terms);
        doc! { "$set": set }
    };
    let result = collection(db).update_one(filter, update).await?;
    if result.matched_count == 0 {
        return Ok(false);
    }
    collection(db)
        .update_many(
            quoting_older_than(doc! { "reply_to.id": before.id.to_hex() }, edit.at_ms),
            quote_edited(&edit.excerpt, edit.at_ms, edit.at_ms),
        )
        .await?;
    Ok(true)
}

/// The update of a reply whose original was recalled at `recalled_at`.
fn quote_recalled(recalled_at: i64, changed_at: i64) -> Document {
    doc! {
        "$set": { "reply_to.recalled_at": recalled_at, "changed_at": changed_at },
        "$unset": { "reply_to.excerpt": "" },
    }
}

/// The update of a reply whose original reads `excerpt` since its edit of `edited_at`.
fn quote_edited(excerpt: &str, edited_at: i64, changed_at: i64) -> Document {
    doc! { "$set": {
        "reply_to.excerpt": excerpt,
        "reply_to.edited_at": edited_at,
        "changed_at": changed_at,
    } }
}

/// `filter` narrowed to replies that quote a text older than the edit of `at_ms` and not a
/// recalled one.
fn quoting_older_than(mut filter: Document, at_ms: i64) -> Document {
    filter.insert("reply_to.recalled_at", doc! { "$exists": false });
    filter.insert(
        "$or",
        vec![
            doc! { "reply_to.edited_at": { "$exists": false } },
            doc! { "reply_to.edited_at": { "$lt": at_ms } },
        ],
    );
    filter
}

/// Brings reply `reply` up to date with `original`, the message it quotes: a reply stored
/// while the original was edited or recalled may have missed that update. The quote it holds
/// now when it had, None when it was up to date.
pub(crate) async fn refresh_reply(
    db: &Database,
    reply: ObjectId,
    original: &MessageDoc,
) -> AppResult<Option<ReplyDoc>> {
    let now = Utc::now().timestamp_millis();
    let mut quote = ReplyDoc {
        id: original.id.to_hex(),
        from: original.from,
        kind: original.kind,
        excerpt: None,
        recalled_at: original.recalled_at,
        edited_at: original.edited_at,
    };
    let (filter, update) = match (original.recalled_at, original.edited_at) {
        (Some(at), _) => (
            doc! { "_id": reply, "reply_to.recalled_at": { "$exists": false } },
            quote_recalled(at, now),
        ),
        (None, Some(at)) => {
            let excerpt = original.excerpt();
            let update = quote_edited(&excerpt, at, now);
            quote.excerpt = Some(excerpt);
            (quoting_older_than(doc! { "_id": reply }, at), update)
        }
        (None, None) => return Ok(None),
    };
    let result = collection(db).update_one(filter, update).await?;
    Ok((result.modified_count > 0).then_some(quote))
}

/// Notes that the message's reactions changed (it has, or had, some).
pub(crate) async fn set_reacted(db: &Database, id: ObjectId) -> AppResult<()> {
    let now = Utc::now().timestamp_millis();
    collection(db)
        .update_one(
            doc! { "_id": id },
            doc! { "$set": { "reacted_at": now, "changed_at": now } },
        )
        .await?;
    Ok(())
}

/// Where a changes query goes on from: after the change of `ms`, or, with `after`, after the
/// change of that message at `ms` (changes of one millisecond come in `_id` order: an edit
/// stamps its replies with its own time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChangeCursor {
    pub ms: i64,
    pub after: Option<ObjectId>,
}

impl ChangeCursor {
    /// `"<ms>"` or `"<ms>.<message id>"`, as [`ChangeCursor::token`] writes it.
    pub(crate) fn parse(token: &str) -> Option<Self> {
        let (ms, after) = match token.split_once('.') {
            Some((ms, id)) => (ms, Some(ObjectId::parse_str(id).ok()?)),
            None => (token, None),
        };
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            ms: ms.parse().ok()?,
            after,
        })
    }

    pub(crate) fn token(&self) -> String {
        match self.after {
            Some(id) => format!("{}.{}", self.ms, id.to_hex()),
            None => self.ms.to_string(),
        }
    }
}

/// Messages of `conversations` changed after `from` (recalled ones included; not those
/// `viewer` deleted for themselves), oldest change first, at most `limit`, and whether more
/// follow. MongoDB gives it at most `max_time`.
pub(crate) async fn changed(
    db: &Database,
    viewer: UserId,
    conversations: Vec<String>,
    from: ChangeCursor,
    limit: i64,
    max_time: std::time::Duration,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    let mut filter = doc! {
        "conversation": { "$in": conversations },
        "hidden_for": { "$nin": [user_key(viewer)] },
    };
    match from.after {
        Some(id) => filter.insert(
            "$or",
            vec![
                doc! { "changed_at": { "$gt": from.ms } },
                doc! { "changed_at": from.ms, "_id": { "$gt": id } },
            ],
        ),
        None => filter.insert("changed_at", doc! { "$gt": from.ms }),
    };
    let options = FindOptions::builder()
        .sort(doc! { "changed_at": 1, "_id": 1 })
        .limit(limit + 1)
        .max_time(max_time)
        .build();
    find_page(db, filter, options, limit).await.map_err(|err| {
        too_broad(
            err,
            "changed_since",
            "too much changed since then to list in time: load the conversations again",
        )
    })
}

/// What reads of messages leave out: the replaced texts (up to `messages.max_edits` of
/// them) and the search terms, which no reader is shown.
fn read_projection() -> Document {
    doc! { "edits": 0, "terms": 0 }
}

/// The messages with these ids (any order; missing ones left out).
pub(crate) async fn find_many(db: &Database, ids: &[ObjectId]) -> AppResult<Vec<MessageDoc>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(collection(db)
        .find(doc! { "_id": { "$in": ids } })
        .projection(read_projection())
        .await?
        .try_collect()
        .await?)
}

/// How many messages after `read_seq` from others mention the viewer (or everyone).
pub(crate) async fn count_mentions_unread(
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
            "mentions": { "$in": [viewer.to_string(), MENTION_ALL] },
        },
        visible_to(viewer),
    );
    Ok(collection(db).count_documents(filter).await?)
}

/// The mention of every member of a group.
pub(crate) const MENTION_ALL: &str = "all";

/// Messages of `conversations` holding every one of `terms`, newest first, older than
/// `before` when given: at most `limit`, and whether there are more.
pub(crate) async fn search(
    db: &Database,
    viewer: UserId,
    conversations: Vec<String>,
    terms: Vec<String>,
    before: Option<ObjectId>,
    limit: i64,
    max_time: std::time::Duration,
) -> AppResult<(Vec<MessageDoc>, bool)> {
    let mut filter = merged(
        doc! {
            "conversation": { "$in": conversations },
            "terms": { "$all": terms },
            "type": { "$nin": [SYSTEM_TYPE] },
        },
        visible_to(viewer),
    );
    if let Some(before) = before {
        filter.insert("_id", doc! { "$lt": before });
    }
    let options = FindOptions::builder()
        .sort(doc! { "_id": -1 })
        .limit(limit + 1)
        .max_time(max_time)
        .build();
    find_page(db, filter, options, limit).await.map_err(|err| {
        too_broad(
            err,
            "q",
            "this search matches too much to finish in time: add words or pick one conversation",
        )
    })
}

/// A query MongoDB stopped at its `maxTimeMS` (error 50, MaxTimeMSExpired) as the caller's
/// request asking too much of `field`; any other failure as it was.
fn too_broad(err: AppError, field: &'static str, why: &'static str) -> AppError {
    use mongodb::error::ErrorKind;
    match err {
        AppError::Internal(cause)
            if cause
                .downcast_ref::<mongodb::error::Error>()
                .is_some_and(|e| matches!(&*e.kind, ErrorKind::Command(c) if c.code == 50)) =>
        {
            AppError::validation(field, why)
        }
        other => other,
    }
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
