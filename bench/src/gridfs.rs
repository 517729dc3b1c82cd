//! The raw write limit of uploads: the same bytes the uploads scenario sends through
//! `POST /files`, written straight into the server's GridFS bucket with the `mongodb` crate's
//! `GridFsBucket`, as the server's file store does (src/store/files/gridfs.rs): the bucket
//! `uploads` of the server's database, its chunk size (`files.chunk_bytes`), string file ids.
//! What this sustains is the ceiling for upload throughput on this store.
//!
//! Open it only once a server of the run has started: the server prepares the bucket at
//! startup (its indexes and a marker file), and without the marker the crate would first try to
//! create the collections, which the local MongoDB stand-in refuses for dotted names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use mongodb::Client;
use mongodb::bson::Bson;
use mongodb::gridfs::GridFsBucket;
use mongodb::options::GridFsBucketOptions;

use crate::server_conf;

/// The server's bucket (`BUCKET` in src/store/files/gridfs.rs): `uploads.files`,
/// `uploads.chunks`.
pub const BUCKET: &str = "uploads";

/// The server's bucket, reached directly.
#[derive(Clone)]
pub struct RawBucket {
    bucket: GridFsBucket,
    /// `files.chunk_bytes`: the size of each write (see [`RawBucket::write_one`]).
    chunk_bytes: usize,
}

impl RawBucket {
    /// The bucket in the database and with the chunk size of the shipped conf/config.toml (the
    /// benchmark's servers override neither).
    pub async fn open(uri: &str) -> Result<Self> {
        let settings = server_conf::shipped()?;
        let client = Client::with_uri_str(uri)
            .await
            .context("connecting to MongoDB")?;
        let options = GridFsBucketOptions::builder()
            .bucket_name(BUCKET.to_owned())
            .chunk_size_bytes(settings.files.chunk_bytes.get())
            .build();
        Ok(Self {
            bucket: client
                .database(&settings.mongodb.database)
                .gridfs_bucket(options),
            chunk_bytes: settings.files.chunk_bytes.get() as usize,
        })
    }

    /// Writes `files[n]` as the file `<id_prefix>-<n>`, `writers` at a time (each takes the
    /// next file when it is done with one); returns the seconds it took.
    pub async fn write(&self, files: &[Bytes], id_prefix: &str, writers: usize) -> Result<f64> {
        let files: Arc<[Bytes]> = files.into();
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers.max(1))
            .map(|_| {
                let (this, files, next) = (self.clone(), files.clone(), next.clone());
                let id_prefix = id_prefix.to_owned();
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(bytes) = files.get(n) else {
                            return Ok::<_, anyhow::Error>(());
                        };
                        this.write_one(&format!("{id_prefix}-{n}"), bytes).await?;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Deletes the files `<id_prefix>-0` .. `<id_prefix>-<count - 1>` (their chunks too).
    pub async fn delete(&self, id_prefix: &str, count: usize) -> Result<()> {
        for n in 0..count {
            let id = format!("{id_prefix}-{n}");
            self.bucket
                .delete(Bson::String(id.clone()))
                .await
                .with_context(|| format!("deleting GridFS file {id}"))?;
        }
        Ok(())
    }

    /// Writes one file a chunk at a time. The crate's upload stream inserts whatever whole
    /// chunks its buffer holds after a write: one at a time for the server, which writes the
    /// multipart pieces as they arrive, but all of them in one `insert_many` for a single write
    /// of the whole file. Writing chunk by chunk keeps the round trips the server's.
    async fn write_one(&self, id: &str, bytes: &[u8]) -> Result<()> {
        let mut stream = self
            .bucket
            .open_upload_stream(id)
            .id(Bson::String(id.to_owned()))
            .await
            .with_context(|| format!("opening GridFS file {id}"))?;
        for chunk in bytes.chunks(self.chunk_bytes.max(1)) {
            stream
                .write_all(chunk)
                .await
                .with_context(|| format!("writing GridFS file {id}"))?;
        }
        stream
            .close()
            .await
            .with_context(|| format!("finishing GridFS file {id}"))?;
        Ok(())
    }
}
