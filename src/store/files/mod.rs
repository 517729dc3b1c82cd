//! Where the bytes of uploads live, behind one interface with two backends (`files.store`):
//! GridFS in MongoDB ([`gridfs`], every server process sees every file) or a folder
//! ([`disk`], one node). A file is written once as a stream (memory held: one chunk), read back
//! as a stream of chunks from any byte offset (for HTTP ranges), and deleted. What is known
//! about a file (owner, type, size) is in MySQL (`store::mysql::files`), not here.

pub(crate) mod disk;
pub(crate) mod gridfs;

use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use mongodb::Database;

use crate::config::{FileBackend, FileSettings};
use crate::error::AppResult;

/// The bytes of a file, chunk by chunk.
pub(crate) type ByteStream = BoxStream<'static, AppResult<Bytes>>;

/// The file store of this process.
#[derive(Clone)]
pub(crate) enum FileStore {
    GridFs(gridfs::GridFsStore),
    Disk(disk::DiskStore),
}

impl FileStore {
    pub(crate) fn new(settings: &FileSettings, mongo: &Database) -> Self {
        let chunk = settings.chunk_bytes.get();
        match settings.store {
            FileBackend::Mongodb => Self::GridFs(gridfs::GridFsStore::new(mongo, chunk)),
            FileBackend::Disk => Self::Disk(disk::DiskStore::new(settings.dir.clone(), chunk)),
        }
    }

    /// Starts writing the file `key` (a new one: keys are never reused).
    pub(crate) async fn create(&self, key: &str) -> AppResult<FileWriter> {
        Ok(match self {
            Self::GridFs(s) => FileWriter::GridFs(s.create(key).await?),
            Self::Disk(s) => FileWriter::Disk(s.create(key).await?),
        })
    }

    /// A whole small file at once (thumbnails).
    pub(crate) async fn put(&self, key: &str, bytes: &[u8]) -> AppResult<()> {
        let mut writer = self.create(key).await?;
        if let Err(err) = writer.write(bytes).await {
            writer.abort().await;
            return Err(err);
        }
        writer.finish().await
    }

    /// The bytes `range` of the file `key` (a range within its size).
    pub(crate) async fn read(&self, key: &str, range: Range<u64>) -> AppResult<ByteStream> {
        match self {
            Self::GridFs(s) => s.read(key, range).await,
            Self::Disk(s) => s.read(key, range).await,
        }
    }

    /// The whole file in memory (for decoding an image; the caller bounds the size).
    pub(crate) async fn read_all(&self, key: &str, size: u64) -> AppResult<Vec<u8>> {
        use futures_util::TryStreamExt;
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut stream = self.read(key, 0..size).await?;
        while let Some(chunk) = stream.try_next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Deletes the file `key`; a file that is not there is no error.
    pub(crate) async fn delete(&self, key: &str) -> AppResult<()> {
        match self {
            Self::GridFs(s) => s.delete(key).await,
            Self::Disk(s) => s.delete(key).await,
        }
    }
}

/// A file being written. [`FileWriter::finish`] makes it readable; [`FileWriter::abort`] (or
/// dropping the writer) leaves nothing behind.
pub(crate) enum FileWriter {
    GridFs(gridfs::GridFsWriter),
    Disk(disk::DiskWriter),
}

impl FileWriter {
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        match self {
            Self::GridFs(w) => w.write(bytes).await,
            Self::Disk(w) => w.write(bytes).await,
        }
    }

    pub(crate) async fn finish(self) -> AppResult<()> {
        match self {
            Self::GridFs(w) => w.finish().await,
            Self::Disk(w) => w.finish().await,
        }
    }

    /// Removes what was written so far; failures are logged (the sweep of the backend's own
    /// leftovers is the backend's: GridFS chunks without a files document, `.part` files).
    pub(crate) async fn abort(self) {
        match self {
            Self::GridFs(w) => w.abort().await,
            Self::Disk(w) => w.abort().await,
        }
    }
}

/// An I/O failure of the store, as the error type of the server.
pub(crate) fn io_error(err: std::io::Error, what: &'static str) -> crate::error::AppError {
    crate::error::AppError::Internal(anyhow::Error::new(err).context(what))
}
