//! Files in a folder (`files.dir`), for a single node: `<dir>/<last two hex digits of the id>/<key>`.
//! A file is written under a temporary name and renamed when complete, so a reader never sees
//! half a file.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{ByteStream, io_error};
use crate::error::{AppError, AppResult};

/// Where a file is written until it is complete.
fn partial_of(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

#[derive(Clone)]
pub(crate) struct DiskStore {
    dir: PathBuf,
    chunk_bytes: usize,
}

impl DiskStore {
    pub(crate) fn new(dir: PathBuf, chunk_bytes: u32) -> Self {
        Self {
            dir,
            chunk_bytes: usize::try_from(chunk_bytes).unwrap_or(64 * 1024),
        }
    }

    /// Keys are the server's own hex ids (and `<id>.thumb`): no separators, no `..`.
    fn path_of(&self, key: &str) -> AppResult<PathBuf> {
        let safe = key.len() >= 2
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            && !key.starts_with('.');
        if !safe {
            return Err(AppError::Internal(anyhow::anyhow!(
                "unsafe file key {key:?}"
            )));
        }
        // The file's two last hex digits of its id (random) spread the files over 256 folders.
        let id = key.split('.').next().unwrap_or(key);
        Ok(self.dir.join(&id[id.len() - 2..]).join(key))
    }

    pub(crate) async fn create(&self, key: &str) -> AppResult<DiskWriter> {
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(e, "creating the folder of files.dir"))?;
        }
        // Keys are never reused, so the partial name is the key's own: deleting the key
        // removes what a crash left of it too.
        let partial = partial_of(&path);
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| io_error(e, "creating a file under files.dir"))?;
        Ok(DiskWriter {
            file: Some(file),
            partial,
            path,
        })
    }

    pub(crate) async fn read(&self, key: &str, range: Range<u64>) -> AppResult<ByteStream> {
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AppError::NotFound("no such file".into()));
            }
            Err(e) => return Err(io_error(e, "opening a file under files.dir")),
        };
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_error(e, "seeking in a file under files.dir"))?;
        let chunk = self.chunk_bytes;
        let left = range.end - range.start;
        let stream =
            futures_util::stream::try_unfold((file, left), move |(mut file, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk);
                let mut buf = BytesMut::zeroed(want);
                let mut filled = 0;
                while filled < want {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| io_error(e, "reading a file under files.dir"))?;
                    if n == 0 {
                        return Err(AppError::Internal(anyhow::anyhow!(
                            "a file under files.dir is shorter than recorded"
                        )));
                    }
                    filled += n;
                }
                let bytes: Bytes = buf.freeze();
                Ok(Some((bytes, (file, left - want as u64))))
            });
        Ok(stream.boxed())
    }

    pub(crate) async fn delete(&self, key: &str) -> AppResult<()> {
        let path = self.path_of(key)?;
        for path in [partial_of(&path), path] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e, "deleting a file under files.dir")),
            }
        }
        Ok(())
    }
}

/// A file being written under its temporary name (removed when dropped unfinished).
pub(crate) struct DiskWriter {
    file: Option<tokio::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

impl DiskWriter {
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("write after the end")))?;
        file.write_all(bytes)
            .await
            .map_err(|e| io_error(e, "writing a file under files.dir"))
    }

    pub(crate) async fn finish(mut self) -> AppResult<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| io_error(e, "writing a file under files.dir"))?;
            file.sync_all()
                .await
                .map_err(|e| io_error(e, "syncing a file under files.dir"))?;
            drop(file);
            tokio::fs::rename(&self.partial, &self.path)
                .await
                .map_err(|e| io_error(e, "renaming a file under files.dir"))?;
        }
        Ok(())
    }

    pub(crate) async fn abort(mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            if let Err(err) = tokio::fs::remove_file(&self.partial).await {
                tracing::warn!(error = %err, path = %self.partial.display(), "removing an unfinished upload");
            }
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Unfinished and not aborted (the request went away): remove it without waiting.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
