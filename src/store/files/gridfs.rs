//! Files in GridFS, written through the `mongodb` crate's `GridFsBucket` (its upload stream
//! cuts the chunks and writes the files document; its delete removes both).
//!
//! Reading does not use the bucket's download stream, for two reasons: it cannot start at an
//! offset (HTTP ranges would read and drop every chunk before the range), and it reads the
//! files document into a type whose `uploadDate` is a date, which the local MongoDB stand-in
//! returns as a string (a real MongoDB returns a date). So reads ask `<bucket>.chunks` for the
//! chunks of the range by `files_id` and `n`, the documented GridFS layout, after reading only
//! `chunkSize` from the files document. File ids are strings (the upload's hex id), not
//! ObjectIds: the stand-in matches no ObjectId by equality outside `_id`, and the crate's
//! delete and our chunk queries select chunks by `files_id` equality.
//!
//! The bucket is prepared at startup ([`prepare_bucket`]): its indexes, and a zero-length
//! marker file. The GridFS spec has a driver create the indexes before its first write to a
//! bucket whose files collection is empty, and the crate does that by first creating the
//! collections with `create`, which the local MongoDB stand-in refuses for dotted names
//! (`uploads.files`); with the marker present the crate's upload stream skips that step, and
//! the indexes made here with `createIndexes` (which both servers accept) are the ones the
//! spec asks for.

use std::ops::Range;

use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document, doc};
use mongodb::gridfs::{GridFsBucket, GridFsUploadStream};
use mongodb::options::GridFsBucketOptions;
use mongodb::{Collection, Database};

use super::ByteStream;
use crate::error::{AppError, AppResult};

/// The bucket: collections `uploads.files` and `uploads.chunks`.
pub(crate) const BUCKET: &str = "uploads";
/// Chunks fetched per round trip while reading.
const CHUNKS_PER_BATCH: u32 = 4;

/// The `_id` of the bucket's marker file (never a 24-hex-digit upload id).
const MARKER_ID: &str = "bucket";

/// Creates the bucket's indexes and its marker file, idempotently (see the module's notes).
pub(crate) async fn prepare_bucket(db: &Database) -> AppResult<()> {
    use mongodb::IndexModel;
    use mongodb::options::IndexOptions;
    let files: Collection<Document> = db.collection(&format!("{BUCKET}.files"));
    let chunks: Collection<Document> = db.collection(&format!("{BUCKET}.chunks"));
    files
        .create_index(
            IndexModel::builder()
                .keys(doc! { "filename": 1, "uploadDate": 1 })
                .build(),
        )
        .await?;
    chunks
        .create_index(
            IndexModel::builder()
                .keys(doc! { "files_id": 1, "n": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    if files.find_one(doc! { "_id": MARKER_ID }).await?.is_none() {
        let marker = doc! {
            "_id": MARKER_ID,
            "length": 0_i64,
            "chunkSize": 261_120_i32,
            "uploadDate": mongodb::bson::DateTime::now(),
            "filename": ".bucket",
        };
        match files.insert_one(marker).await {
            Ok(_) => {}
            // Another process made it first.
            Err(err) if crate::store::mongo::is_duplicate(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

#[derive(Clone)]
pub(crate) struct GridFsStore {
    bucket: GridFsBucket,
    files: Collection<Document>,
    chunks: Collection<Document>,
}

impl GridFsStore {
    pub(crate) fn new(db: &Database, chunk_bytes: u32) -> Self {
        let options = GridFsBucketOptions::builder()
            .bucket_name(BUCKET.to_owned())
            .chunk_size_bytes(chunk_bytes)
            .build();
        Self {
            bucket: db.gridfs_bucket(options),
            files: db.collection(&format!("{BUCKET}.files")),
            chunks: db.collection(&format!("{BUCKET}.chunks")),
        }
    }

    pub(crate) async fn create(&self, key: &str) -> AppResult<GridFsWriter> {
        let stream = self
            .bucket
            .open_upload_stream(key)
            .id(Bson::String(key.to_owned()))
            .await?;
        Ok(GridFsWriter {
            stream: Some(stream),
        })
    }

    pub(crate) async fn read(&self, key: &str, range: Range<u64>) -> AppResult<ByteStream> {
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let file = self
            .files
            .find_one(doc! { "_id": key })
            .projection(doc! { "chunkSize": 1 })
            .await?
            .ok_or_else(|| AppError::NotFound("no such file".into()))?;
        let chunk = match file.get("chunkSize") {
            Some(Bson::Int32(n)) if *n > 0 => u64::from(n.unsigned_abs()),
            Some(Bson::Int64(n)) if *n > 0 => n.unsigned_abs(),
            _ => {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "GridFS file {key} has no chunkSize"
                )));
            }
        };
        let first = range.start / chunk;
        let last = (range.end - 1) / chunk;
        // A few chunks per query, each its own short query: a slow reader holds no cursor open
        // on the server (a real MongoDB closes idle cursors after ten minutes).
        let chunks = self.chunks.clone();
        let key: std::sync::Arc<str> = key.into();
        let start = (first, std::collections::VecDeque::<Document>::new());
        let stream = futures_util::stream::try_unfold(start, move |(n, mut batch)| {
            let key = key.clone();
            let range = range.clone();
            let chunks = chunks.clone();
            async move {
                if n > last {
                    return Ok(None);
                }
                if batch.is_empty() {
                    let to = last.min(n + u64::from(CHUNKS_PER_BATCH) - 1);
                    let found: Vec<Document> = chunks
                        .find(doc! {
                            "files_id": &*key,
                            "n": { "$gte": as_i64(n), "$lte": as_i64(to) },
                        })
                        .sort(doc! { "n": 1 })
                        .projection(doc! { "n": 1, "data": 1 })
                        .await?
                        .try_collect()
                        .await?;
                    batch.extend(found);
                }
                let missing = || {
                    AppError::Internal(anyhow::anyhow!("GridFS file {key}: chunk {n} is missing"))
                };
                let found = batch.pop_front().ok_or_else(missing)?;
                if chunk_number(&found) != Some(n) {
                    return Err(missing());
                }
                let Some(Bson::Binary(data)) = found.get("data") else {
                    return Err(missing());
                };
                // The part of this chunk inside the range.
                let chunk_start = n * chunk;
                let from = as_usize(range.start.saturating_sub(chunk_start));
                let to = as_usize((range.end - chunk_start).min(data.bytes.len() as u64));
                if from >= to {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "GridFS file {key}: chunk {n} is shorter than the file"
                    )));
                }
                let bytes = Bytes::copy_from_slice(&data.bytes[from..to]);
                Ok(Some((bytes, (n + 1, batch))))
            }
        });
        Ok(stream.boxed())
    }

    /// Deletes the file through the bucket (its files document, then its chunks). A file
    /// without a files document (an upload cut off before it completed) has only its chunks
    /// deleted: the local MongoDB stand-in answers the bucket's delete of a missing files
    /// document with an error instead of deleting nothing.
    pub(crate) async fn delete(&self, key: &str) -> AppResult<()> {
        let exists = self
            .files
            .find_one(doc! { "_id": key })
            .projection(doc! { "_id": 1 })
            .await?
            .is_some();
        if !exists {
            self.chunks.delete_many(doc! { "files_id": key }).await?;
            return Ok(());
        }
        match self.bucket.delete(Bson::String(key.to_owned())).await {
            Ok(()) => Ok(()),
            Err(err) if matches!(*err.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

fn chunk_number(chunk: &Document) -> Option<u64> {
    match chunk.get("n") {
        Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
        Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A GridFS upload in progress (dropped unfinished: the crate removes its chunks).
pub(crate) struct GridFsWriter {
    stream: Option<GridFsUploadStream>,
}

impl GridFsWriter {
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("write after the end")))?;
        stream
            .write_all(bytes)
            .await
            .map_err(|e| super::io_error(e, "writing to GridFS"))
    }

    pub(crate) async fn finish(mut self) -> AppResult<()> {
        if let Some(mut stream) = self.stream.take() {
            stream
                .close()
                .await
                .map_err(|e| super::io_error(e, "finishing a GridFS file"))?;
        }
        Ok(())
    }

    pub(crate) async fn abort(mut self) {
        if let Some(mut stream) = self.stream.take()
            && let Err(err) = stream.abort().await
        {
            tracing::warn!(error = %err, "aborting a GridFS upload left chunks behind");
        }
    }
}
