//! Uploads and who may have them: [`upload`] takes a file in (limits, quota, type sniffing,
//! images measured and thumbnailed by [`images`]), this module decides who may download,
//! what a message may carry and when an upload may go, and [`sweep`] deletes the uploads
//! no message carries once `files.orphan_ttl_hours` have passed.
//!
//! Who may download a file: its uploader, and every user who may read a conversation now
//! holding a message that carries it (not recalled). Everyone else gets the answer of a file
//! that does not exist, so ids reveal nothing.

pub(crate) mod images;
pub(crate) mod sweep;
pub(crate) mod upload;

use std::ops::Range;

use crate::chat::Chat;
use crate::chat::access::ReadRights;
use crate::domain::{
    AttachmentRef, ConversationId, FileId, GroupId, MediaKind, MessageType, UserId,
};
use crate::error::{AppError, AppResult};
use crate::store::files::ByteStream;
use crate::store::mongo::messages::{self, AttachmentDoc};
use crate::store::mysql::files::{self as file_rows, FileRecord};

/// A mark "a message is about to carry this file" younger than this may belong to a send still
/// on its way to MongoDB: DELETE /files and the sweep leave such a file alone.
pub(crate) const SEND_SETTLE_MS: i64 = 5 * 60 * 1000;

/// The key of a file's thumbnail in the file store.
pub(crate) fn thumbnail_key(id: FileId) -> String {
    format!("{id}.thumb")
}

fn no_such_file() -> AppError {
    AppError::NotFound("no such file".into())
}

/// An upload a message is to carry: what the message keeps of it, and its hash (for the
/// duplicate rule).
pub(crate) struct Attached {
    pub file: FileId,
    pub doc: AttachmentDoc,
    pub sha256: String,
}

/// A page of the caller's uploads and what they add up to.
pub(crate) struct MyFiles {
    pub files: Vec<FileRecord>,
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub has_more: bool,
}

impl Chat {
    /// The file, when `viewer` may download it (404 otherwise, also for anonymous callers).
    pub(crate) async fn readable_file(
        &self,
        viewer: Option<UserId>,
        id: FileId,
    ) -> AppResult<FileRecord> {
        let viewer = viewer.ok_or_else(no_such_file)?;
        let file = file_rows::find(&self.mysql, id)
            .await?
            .ok_or_else(no_such_file)?;
        if file.owner == viewer {
            return Ok(file);
        }
        // The conversations that could give the right: the uploader sends their file into
        // the viewer's groups, the lobby and the 1:1 of the two (one MySQL query for the
        // groups, one MongoDB query for a message); a forward anywhere the viewer reads.
        let rights = ReadRights::of(self, viewer).await?;
        let mut conversations: Vec<String> = rights
            .groups()
            .map(|g| ConversationId::Group(g).to_string())
            .collect();
        conversations.push(ConversationId::Group(GroupId::LOBBY).to_string());
        conversations.push(ConversationId::direct(file.owner, viewer).to_string());
        if messages::is_carried_in(&self.mongo, id, conversations).await? {
            return Ok(file);
        }
        // A forward carries it further: into any 1:1 of the viewer's (their read positions
        // list those), at the cost of one more query for the callers refused.
        let (positions, _) = self.readable_positions(viewer).await?;
        let direct: Vec<String> = positions
            .into_iter()
            .filter(|(c, _)| c.group().is_none())
            .map(|(c, _)| c.to_string())
            .collect();
        if !direct.is_empty() && messages::is_carried_in(&self.mongo, id, direct).await? {
            return Ok(file);
        }
        Err(no_such_file())
    }

    /// The bytes `range` of a file the caller may download (checked with [`Chat::readable_file`]).
    pub(crate) async fn file_bytes(
        &self,
        file: &FileRecord,
        range: Range<u64>,
    ) -> AppResult<ByteStream> {
        self.files.read(&file.id.to_hex(), range).await
    }

    /// The thumbnail (`size` bytes) of an image the caller may download.
    pub(crate) async fn thumbnail_bytes(
        &self,
        file: &FileRecord,
        size: u32,
    ) -> AppResult<ByteStream> {
        self.files
            .read(&thumbnail_key(file.id), 0..u64::from(size))
            .await
    }

    /// The attachment of a message of type `kind`: the sender's own upload (else 40004, as
    /// for a file that does not exist), of a MIME type the kind takes (else 40000 on
    /// `attachment`).
    pub(crate) async fn attachment_for(
        &self,
        from: UserId,
        kind: MessageType,
        wanted: &AttachmentRef,
    ) -> AppResult<Attached> {
        let media = MediaKind::of(kind)
            .ok_or_else(|| AppError::validation("attachment", "this type carries no attachment"))?;
        let file = file_rows::find(&self.mysql, wanted.file_id)
            .await?
            .filter(|f| f.owner == from)
            .ok_or_else(|| AppError::NotFound("no such upload of yours".into()))?;
        if !media.accepts(&file.mime) {
            return Err(AppError::validation(
                "attachment",
                format!(
                    "a message of type {} needs {}; this one is {}",
                    kind.0,
                    media.needs(),
                    file.mime
                ),
            ));
        }
        let doc = AttachmentDoc {
            file_id: file.id.to_hex(),
            mime: file.mime.clone(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            name: file.name.clone(),
            width: file.width.map(i64::from),
            height: file.height.map(i64::from),
            duration_ms: wanted.duration_ms.map(i64::from),
            thumbnail: file.has_thumbnail(),
        };
        Ok(Attached {
            file: file.id,
            doc,
            sha256: file.sha256,
        })
    }

    /// Notes that a message is about to carry the upload (the sweep and DELETE leave it alone
    /// then); 40004 when the upload is gone meanwhile.
    pub(crate) async fn mark_carried(&self, id: FileId) -> AppResult<()> {
        if file_rows::mark_referenced(&self.mysql, id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("no such upload of yours".into()))
        }
    }

    /// After a recall of a message that carried `id`: when no other message carries it, it
    /// becomes an orphan (swept after `files.orphan_ttl_hours`).
    pub(crate) async fn release_file(&self, id: FileId) -> AppResult<()> {
        if !messages::is_carried(&self.mongo, id).await? {
            let settled = chrono::Utc::now().timestamp_millis() - SEND_SETTLE_MS;
            file_rows::mark_orphaned(&self.mysql, id, settled).await?;
        }
        Ok(())
    }

    /// Deletes an upload of `owner`'s that no message carries (409 when one does; 404 for a
    /// file that is not theirs).
    pub(crate) async fn delete_file(&self, owner: UserId, id: FileId) -> AppResult<()> {
        let file = file_rows::find(&self.mysql, id)
            .await?
            .filter(|f| f.owner == owner)
            .ok_or_else(no_such_file)?;
        let carried = || AppError::Conflict {
            field: None,
            message: "a message carries this file; recall the message first".into(),
        };
        if messages::is_carried(&self.mongo, id).await? {
            return Err(carried());
        }
        let settled = chrono::Utc::now().timestamp_millis() - SEND_SETTLE_MS;
        if !file_rows::claim_owned(&self.mysql, id, owner, settled).await? {
            // A message is being sent with it right now.
            return Err(carried());
        }
        self.remove_claimed(file.id).await;
        Ok(())
    }

    /// Deletes the bytes of a file that is not complete (an upload refused or abandoned, a file
    /// claimed for deletion), then its row; a failure leaves the row for the sweep to try again
    /// (logged). True when all is gone.
    pub(crate) async fn remove_claimed(&self, id: FileId) -> bool {
        for key in [id.to_hex(), thumbnail_key(id)] {
            if let Err(err) = self.files.delete(&key).await {
                tracing::warn!(error = %err, file_id = %id, "deleting a file's bytes failed; the sweep retries");
                return false;
            }
        }
        match file_rows::delete_incomplete(&self.mysql, id).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, file_id = %id, "forgetting a deleted file failed; the sweep retries");
                false
            }
        }
    }

    /// The caller's uploads, newest first, and their quota.
    pub(crate) async fn my_files(
        &self,
        owner: UserId,
        before: Option<FileId>,
        limit: u32,
    ) -> AppResult<MyFiles> {
        let mut files = file_rows::list_of(&self.mysql, owner, before, limit + 1).await?;
        let has_more = files.len() > limit as usize;
        files.truncate(limit as usize);
        Ok(MyFiles {
            files,
            used_bytes: file_rows::usage(&self.mysql, owner).await?.1,
            quota_bytes: self.settings.files.quota_bytes_per_user.get(),
            has_more,
        })
    }
}
