//! Large objects (an import's file): stored from a file on disk and read back in ranges, so
//! neither side ever holds the whole object in memory.

use super::{
    create_private_dir, error_chain, is_missing_object, not_found, private_file_options, sync_dir,
    LocalStore, S3Store, StoredKey,
};
use crate::error::{Error, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use uuid::Uuid;

impl LocalStore {
    /// Copies `source` in under `key` (temp file, fsync, rename).
    pub(super) async fn copy_in(&self, key: &StoredKey, source: &Path) -> Result<()> {
        let target = self.path_of(key);
        let source = source.to_path_buf();
        tokio::task::spawn_blocking(move || copy_atomically(&source, &target))
            .await
            .map_err(|e| self.io_error("writing", key, e))?
            .map_err(|e| self.io_error("writing", key, e))
    }

    pub(super) async fn read_range(
        &self,
        key: &StoredKey,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let path = self.path_of(key);
        let read = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
            let mut file = std::fs::File::open(&path)?;
            file.seek(SeekFrom::Start(start))?;
            let mut out = Vec::new();
            file.take(len).read_to_end(&mut out)?;
            Ok(out)
        })
        .await
        .map_err(|e| self.io_error("reading", key, e))?;
        match read {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(key)),
            Err(e) => Err(self.io_error("reading", key, e)),
        }
    }
}

fn copy_atomically(source: &Path, target: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io::Error::other("the target path has no directory"));
    };
    create_private_dir(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut out = private_file_options().open(&temp)?;
        io::copy(&mut std::fs::File::open(source)?, &mut out)?;
        out.sync_all()?;
        std::fs::rename(&temp, target)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

impl S3Store {
    /// One PUT streamed from the file (S3 takes up to 5 GB in one).
    pub(super) async fn upload_file(
        &self,
        key: &StoredKey,
        content_type: &str,
        path: &Path,
    ) -> Result<()> {
        let body = ByteStream::from_path(path).await.map_err(|e| {
            Error::internal(format!("cannot read {} to store it: {e}", path.display()))
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.sdk_error("storing", key, e))?;
        Ok(())
    }

    pub(super) async fn download_range(
        &self,
        key: &StoredKey,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let last = start.saturating_add(len - 1);
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .range(format!("bytes={start}-{last}"))
            .send()
            .await
        {
            Ok(object) => object,
            // Past the end: nothing more to read.
            Err(e) if e.code() == Some("InvalidRange") => return Ok(Vec::new()),
            Err(e) if is_missing_object(&e) => return Err(not_found(key)),
            Err(e) => return Err(self.sdk_error("reading", key, e)),
        };
        let body = object.body.collect().await.map_err(|e| {
            Error::Unavailable(format!(
                "the S3 file store at {} (bucket '{}') broke off sending '{key}': {}",
                self.endpoint,
                self.bucket,
                error_chain(&e)
            ))
        })?;
        Ok(body.into_bytes().to_vec())
    }
}
