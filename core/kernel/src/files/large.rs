//! Large objects (an import's file): stored from a file on disk and read back in ranges, so
//! neither side ever holds the whole object in memory.

use super::{
    create_private_dir, error_chain, is_missing_object, not_found, private_file_options, sync_dir,
    LocalStore, S3Store, StoredKey,
};
use crate::error::{Error, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
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

    /// The object (a byte range of it), or `file.not_found`.
    pub(super) async fn open_object(
        &self,
        key: &StoredKey,
        range: Option<String>,
    ) -> Result<GetObjectOutput> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .set_range(range)
            .send()
            .await
            .map_err(|e| {
                let absent = e
                    .as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key);
                if absent || is_missing_object(&e) {
                    not_found(key)
                } else if e.code() == Some("InvalidRange") {
                    Error::bad_request("file.past_end", "the range starts past the end")
                } else {
                    self.sdk_error("reading", key, e)
                }
            })
    }

    /// The store stopped sending an object half-way.
    pub(super) fn broke_off(
        &self,
        key: &StoredKey,
        e: &(dyn std::error::Error + 'static),
    ) -> Error {
        Error::Unavailable(format!(
            "the S3 file store at {} (bucket '{}') broke off sending '{key}': {}",
            self.endpoint,
            self.bucket,
            error_chain(e)
        ))
    }

    /// Streams the object into a file at `path`; its size.
    pub(super) async fn download_to_file(&self, key: &StoredKey, path: &Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let object = self.open_object(key, None).await?;
        let local = |e: io::Error| Error::internal(format!("writing {}: {e}", path.display()));
        let mut file = tokio::fs::File::create(path).await.map_err(local)?;
        let mut body = object.body;
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| self.broke_off(key, &e))? {
            file.write_all(&chunk).await.map_err(local)?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(local)?;
        Ok(size)
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
            .open_object(key, Some(format!("bytes={start}-{last}")))
            .await
        {
            Ok(object) => object,
            // Past the end: nothing more to read.
            Err(Error::BadRequest {
                code: "file.past_end",
                ..
            }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| self.broke_off(key, &e))?;
        Ok(body.into_bytes().to_vec())
    }
}
