//! File storage for attachments: local directory and S3-compatible backends.
//!
//! Uploads pass [`UploadPolicy::check`] (size, allow-listed type, bytes that agree with the
//! type) before anything is stored. Objects live under a [`StoredKey`] that we generate, so no
//! user input ever becomes a path or an object name. [`open`] builds the configured
//! [`FileStore`] from a [`FileStoreConfig`].

use crate::error::{Error, FieldError, Result};
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

mod large;

/// Where attachments are stored; part of the server configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FileStoreConfig {
    /// A directory on this machine; `None` means `<data_dir>/files`.
    Local {
        #[serde(default)]
        dir: Option<PathBuf>,
    },
    /// An S3 bucket (AWS or any S3-compatible server).
    S3(S3Config),
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig::Local { dir: None }
    }
}

impl fmt::Debug for FileStoreConfig {
    /// Delegates to the variants; the S3 secret is redacted there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileStoreConfig::Local { dir } => f.debug_struct("Local").field("dir", dir).finish(),
            FileStoreConfig::S3(s3) => f.debug_tuple("S3").field(s3).finish(),
        }
    }
}

/// Connection settings of an S3 bucket; only explicit values, never the environment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of an S3-compatible server, e.g. `http://127.0.0.1:9000`; absent means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region to sign requests for, e.g. `us-east-1`.
    pub region: String,
    /// Bucket holding the attachments; it must exist.
    pub bucket: String,
    /// Access key id of the credentials.
    pub access_key_id: String,
    /// Secret access key of the credentials.
    pub secret_access_key: String,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (most non-AWS servers).
    #[serde(default)]
    pub force_path_style: bool,
    /// Key prefix inside the bucket, e.g. `crm/attachments`, for a bucket shared with others.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl fmt::Debug for S3Config {
    /// Everything but the secret access key, which config dumps and logs must never show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Content types accepted by [`UploadPolicy::default`].
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/msword",
    "application/vnd.ms-excel",
    "message/rfc822",
];

/// Largest upload accepted by [`UploadPolicy::default`]: 20 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// Size and type limits applied before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadPolicy {
    /// Largest accepted file in bytes.
    pub max_bytes: u64,
    /// Accepted content types (`type/subtype`, compared case-insensitively).
    pub allowed_types: Vec<String>,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        }
    }
}

impl UploadPolicy {
    /// Checks size, declared type and that the bytes agree with it; returns the normalised type.
    ///
    /// The result is the lower-cased `type/subtype` without parameters, with common browser
    /// aliases (`image/jpg`, `application/x-zip-compressed`, …) mapped to their standard name.
    pub fn check(&self, declared: &str, bytes: &[u8]) -> Result<String> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(Error::bad_request(
                "file.too_large",
                format!(
                    "the file has {size} bytes; the limit is {} bytes ({})",
                    self.max_bytes,
                    human_size(self.max_bytes)
                ),
            ));
        }
        let content_type = normalise_content_type(declared);
        let allowed = self
            .allowed_types
            .iter()
            .any(|t| normalise_content_type(t) == content_type);
        if !allowed {
            return Err(rejected(
                "file.type_not_allowed",
                "content_type",
                "type_not_allowed",
                format!(
                    "files of type '{}' are not accepted; allowed types: {}",
                    declared.trim(),
                    self.allowed_types.join(", ")
                ),
            ));
        }
        let agrees = match expected_content(&content_type) {
            Expected::Format(format) => sniff(bytes) == format,
            Expected::Utf8Text => is_utf8_text(bytes),
            // RFC 5322 messages may carry 8-bit bodies in legacy charsets: only refuse binary.
            Expected::Message => !bytes.contains(&0),
            // An allow-listed type we have no signature for: refuse only programs.
            Expected::Anything => !sniff(bytes).is_executable(),
        };
        if !agrees {
            return Err(rejected(
                "file.content_mismatch",
                "file",
                "content_mismatch",
                format!(
                    "the file was declared as '{content_type}' but its content looks like {}",
                    sniff(bytes).describe()
                ),
            ));
        }
        Ok(content_type)
    }
}

/// A 422 with one field error, carrying the file-specific code the edge maps.
fn rejected(code: &'static str, field: &str, field_code: &'static str, message: String) -> Error {
    Error::Invalid {
        code,
        fields: vec![FieldError::new(field, field_code, message.clone())],
        message,
    }
}

fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// `Image/JPG; charset=x` → `image/jpeg`: essence only, lower case, aliases resolved.
fn normalise_content_type(raw: &str) -> String {
    let essence = raw.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let standard = match essence.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "image/x-png" => "image/png",
        "application/x-pdf" => "application/pdf",
        "application/x-zip-compressed" | "application/x-zip" => "application/zip",
        other => other,
    };
    standard.to_owned()
}

/// What the bytes of a declared type must look like.
enum Expected {
    Format(Format),
    Utf8Text,
    Message,
    Anything,
}

fn expected_content(content_type: &str) -> Expected {
    match content_type {
        "image/png" => Expected::Format(Format::Png),
        "image/jpeg" => Expected::Format(Format::Jpeg),
        "image/gif" => Expected::Format(Format::Gif),
        "image/webp" => Expected::Format(Format::Webp),
        "application/pdf" => Expected::Format(Format::Pdf),
        // Office Open XML documents are ZIP packages.
        "application/zip"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            Expected::Format(Format::Zip)
        }
        // Legacy Office documents are OLE2 compound files.
        "application/msword" | "application/vnd.ms-excel" => Expected::Format(Format::Ole2),
        "message/rfc822" => Expected::Message,
        t if t.starts_with("text/") => Expected::Utf8Text,
        _ => Expected::Anything,
    }
}

/// What a file's leading bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Zip,
    Ole2,
    WindowsExecutable,
    Elf,
    MachO,
    Empty,
    Utf8Text,
    NonUtf8Text,
    Binary,
}

impl Format {
    fn is_executable(self) -> bool {
        matches!(
            self,
            Format::WindowsExecutable | Format::Elf | Format::MachO
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Format::Png => "a PNG image",
            Format::Jpeg => "a JPEG image",
            Format::Gif => "a GIF image",
            Format::Webp => "a WebP image",
            Format::Pdf => "a PDF document",
            Format::Zip => "a ZIP archive (or an Office docx/xlsx/pptx document)",
            Format::Ole2 => "a legacy Office document (doc/xls, OLE2)",
            Format::WindowsExecutable => "a Windows executable",
            Format::Elf => "a Linux executable (ELF)",
            Format::MachO => "a macOS executable (Mach-O)",
            Format::Empty => "an empty file",
            Format::Utf8Text => "UTF-8 text",
            Format::NonUtf8Text => "text that is not UTF-8 (save it as UTF-8)",
            Format::Binary => "unrecognised binary data",
        }
    }
}

/// Recognises the allowed binary formats and common executables by their magic numbers.
fn sniff(bytes: &[u8]) -> Format {
    const SIGNATURES: &[(&[u8], Format)] = &[
        (b"\x89PNG\r\n\x1a\n", Format::Png),
        (b"\xff\xd8\xff", Format::Jpeg),
        (b"GIF87a", Format::Gif),
        (b"GIF89a", Format::Gif),
        (b"PK\x03\x04", Format::Zip),
        // An empty archive has only the end-of-central-directory record.
        (b"PK\x05\x06", Format::Zip),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Format::Ole2),
        (b"MZ", Format::WindowsExecutable),
        (b"\x7fELF", Format::Elf),
        (b"\xfe\xed\xfa\xce", Format::MachO),
        (b"\xfe\xed\xfa\xcf", Format::MachO),
        (b"\xce\xfa\xed\xfe", Format::MachO),
        (b"\xcf\xfa\xed\xfe", Format::MachO),
    ];
    if let Some((_, format)) = SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        return *format;
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Format::Webp;
    }
    // PDF readers accept the header anywhere in the first KiB (some generators prepend junk).
    if bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Format::Pdf;
    }
    if bytes.is_empty() {
        Format::Empty
    } else if bytes.contains(&0) {
        Format::Binary
    } else if std::str::from_utf8(bytes).is_ok() {
        Format::Utf8Text
    } else {
        Format::NonUtf8Text
    }
}

fn is_utf8_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// A stored object's key, `<tenant>/<yyyy>/<mm>/<id>`: generated by us, never from user input.
///
/// Tenant and id are lower-case simple UUIDs (the id a v7, so keys sort by upload time), which
/// makes every key a safe relative path and a plain S3 object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredKey {
    key: String,
    tenant: Uuid,
}

impl StoredKey {
    /// A fresh key for a new object of `tenant`, dated by the id's own timestamp.
    pub fn generate(tenant: Uuid) -> Self {
        let id = Uuid::now_v7();
        let created = id
            .get_timestamp()
            .and_then(|ts| {
                let (secs, nanos) = ts.to_unix();
                chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
            })
            .unwrap_or_else(chrono::Utc::now);
        Self {
            key: format!(
                "{}/{}/{}",
                tenant.simple(),
                created.format("%Y/%m"),
                id.simple()
            ),
            tenant,
        }
    }

    /// Accepts exactly the shape [`StoredKey::generate`] produces, so a stored value can never
    /// name another place (no `..`, no separators, no upper case, no extra segments).
    pub fn parse(raw: &str) -> Option<Self> {
        let mut segments = raw.split('/');
        let tenant = segments.next()?;
        let year = segments.next()?;
        let month = segments.next()?;
        let id = segments.next()?;
        if segments.next().is_some()
            || !is_simple_uuid(tenant)
            || !is_simple_uuid(id)
            || !is_digits(year, 4)
            || !is_digits(month, 2)
            || !(1..=12).contains(&month.parse::<u8>().ok()?)
        {
            return None;
        }
        if Uuid::try_parse(id).ok()?.get_version_num() != 7 {
            return None;
        }
        Some(Self {
            key: raw.to_owned(),
            tenant: Uuid::try_parse(tenant).ok()?,
        })
    }

    /// The key as stored in the database and used as object name.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The tenant that owns the object.
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// Whether the object belongs to `tenant`; check before serving a key read from storage.
    pub fn belongs_to(&self, tenant: Uuid) -> bool {
        self.tenant == tenant
    }
}

impl fmt::Display for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

fn is_simple_uuid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// Storage of attachment bytes under [`StoredKey`]s.
#[async_trait::async_trait]
pub trait FileStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing any previous object; readers never see a partial one.
    async fn put(&self, key: &StoredKey, content_type: &str, bytes: Vec<u8>) -> Result<()>;
    /// Reads the whole object; `file.not_found` when there is none.
    async fn get(&self, key: &StoredKey) -> Result<Vec<u8>>;
    /// Deletes the object; deleting an absent one succeeds.
    async fn delete(&self, key: &StoredKey) -> Result<()>;
    /// Stores the file at `path` under `key`, streamed from disk (large imports), never
    /// whole in memory; readers never see a partial object.
    async fn put_file(&self, key: &StoredKey, content_type: &str, path: &Path) -> Result<()>;
    /// At most `len` bytes of the object from byte `start` (fewer at its end, none past it);
    /// `file.not_found` when there is no object.
    async fn get_range(&self, key: &StoredKey, start: u64, len: u64) -> Result<Vec<u8>>;
    /// Writes the object to a new file at `path`, streaming it (backups); returns its size in
    /// bytes. `file.not_found` when there is none.
    async fn get_to_file(&self, key: &StoredKey, path: &Path) -> Result<u64>;
    /// Backend name for logs and metrics (`local`, `s3`).
    fn kind(&self) -> &'static str;
}

/// Builds the configured store; a local store defaults to `<data_dir>/files`.
pub async fn open(config: &FileStoreConfig, data_dir: &Path) -> Result<Arc<dyn FileStore>> {
    let store: Arc<dyn FileStore> = match config {
        FileStoreConfig::Local { dir } => {
            let dir = dir.clone().unwrap_or_else(|| data_dir.join("files"));
            let store = tokio::task::spawn_blocking(move || LocalStore::new(dir))
                .await
                .map_err(|e| {
                    Error::internal(format!("creating the file directory failed: {e}"))
                })??;
            tracing::info!(dir = %store.dir().display(), "attachments stored locally");
            Arc::new(store)
        }
        FileStoreConfig::S3(s3) => {
            let store = S3Store::new(s3)?;
            tracing::info!(endpoint = %store.endpoint, bucket = %store.bucket, "attachments stored in S3");
            Arc::new(store)
        }
    };
    Ok(store)
}

fn not_found(key: &StoredKey) -> Error {
    Error::not_found("file.not_found", format!("no stored file '{key}'"))
}

/// Attachments as files in a local directory, one per key (`<dir>/<tenant>/<yyyy>/<mm>/<id>`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// Opens `dir`, creating it (owner-only on unix) when missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(|e| {
            Error::internal(format!(
                "cannot create the file directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self { dir })
    }

    /// The root directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `key` lives; safe because a `StoredKey` is only hex and digits.
    pub fn path_of(&self, key: &StoredKey) -> PathBuf {
        key.as_str()
            .split('/')
            .fold(self.dir.clone(), |p, s| p.join(s))
    }

    fn io_error(&self, action: &str, key: &StoredKey, err: impl fmt::Display) -> Error {
        Error::internal(format!(
            "{action} file '{key}' in {} failed: {err}",
            self.dir.display()
        ))
    }
}

#[async_trait::async_trait]
impl FileStore for LocalStore {
    async fn put(&self, key: &StoredKey, _content_type: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path_of(key);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| self.io_error("writing", key, e))?
            .map_err(|e| self.io_error("writing", key, e))
    }

    async fn get(&self, key: &StoredKey) -> Result<Vec<u8>> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(key)),
            Err(e) => Err(self.io_error("reading", key, e)),
        }
    }

    async fn delete(&self, key: &StoredKey) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("deleting", key, e)),
        }
    }

    async fn put_file(&self, key: &StoredKey, _content_type: &str, path: &Path) -> Result<()> {
        self.copy_in(key, path).await
    }

    async fn get_range(&self, key: &StoredKey, start: u64, len: u64) -> Result<Vec<u8>> {
        self.read_range(key, start, len).await
    }

    async fn get_to_file(&self, key: &StoredKey, path: &Path) -> Result<u64> {
        match tokio::fs::copy(self.path_of(key), path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(key)),
            Err(e) => Err(self.io_error("reading", key, e)),
        }
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Temp file in the target's directory, fsync, rename, fsync the directory: after a crash the
/// path holds either the old or the new content, never a prefix of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other("the target path has no directory"));
    };
    create_private_dir(dir)?;
    // The leading dot keeps temp files from ever parsing as a StoredKey id.
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut file = private_file_options().open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Makes a rename durable; only unix can open and sync a directory.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Attachments as objects of an S3 bucket (AWS or an S3-compatible server).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or the configured prefix followed by one `/`.
    prefix: String,
    /// The endpoint for messages: the configured URL, or AWS and the region.
    endpoint: String,
}

impl S3Store {
    /// Builds a client from `config` alone: no environment variables, profiles or IMDS.
    pub fn new(config: &S3Config) -> Result<Self> {
        for (field, value) in [
            ("region", &config.region),
            ("bucket", &config.bucket),
            ("access_key_id", &config.access_key_id),
            ("secret_access_key", &config.secret_access_key),
        ] {
            if value.trim().is_empty() {
                return Err(Error::invalid_field(
                    format!("files.{field}"),
                    "required",
                    format!("the S3 file store needs `{field}`"),
                ));
            }
        }
        let credentials = Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            None,
            None,
            "crm-config",
        );
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.force_path_style);
        let endpoint = match &config.endpoint {
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::invalid_field(
                        "files.endpoint",
                        "invalid",
                        format!("'{url}' is not an http:// or https:// URL"),
                    ));
                }
                // S3-compatible servers often reject the newer default checksum trailers.
                builder = builder
                    .endpoint_url(url)
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                url.clone()
            }
            None => format!("AWS S3 ({})", config.region),
        };
        let prefix = match config.prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/"),
            _ => String::new(),
        };
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix,
            endpoint,
        })
    }

    /// The underlying SDK client, for administrative tasks such as creating the bucket.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object name of `key` in the bucket (the configured prefix, then the key).
    pub fn object_name(&self, key: &StoredKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Outages (no connection, timeouts, garbled answers, 5xx) become 503; refusals become 500.
    fn sdk_error<E>(&self, action: &str, key: &StoredKey, err: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let outage = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => err
                .raw_response()
                .is_some_and(|r| r.status().is_server_error()),
            _ => false,
        };
        let (endpoint, bucket) = (&self.endpoint, &self.bucket);
        if outage {
            Error::Unavailable(format!(
                "the S3 file store at {endpoint} (bucket '{bucket}') failed {action} '{key}': {}",
                error_chain(&err)
            ))
        } else {
            Error::internal(format!(
                "the S3 file store at {endpoint} (bucket '{bucket}') refused {action} '{key}': {} {}",
                err.code().unwrap_or("unknown error"),
                err.message().unwrap_or_default()
            ))
        }
    }
}

/// `outer: cause: root cause` — readable, unlike the SDK's Debug dump of the same chain.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}

/// Whether a failed request means the object is absent (but not the bucket).
fn is_missing_object<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("NoSuchKey")
        || (err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404)
            && err.code() != Some("NoSuchBucket"))
}

#[async_trait::async_trait]
impl FileStore for S3Store {
    async fn put(&self, key: &StoredKey, content_type: &str, bytes: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.sdk_error("storing", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &StoredKey) -> Result<Vec<u8>> {
        let object = self.open_object(key, None).await?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| self.broke_off(key, &e))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn delete(&self, key: &StoredKey) -> Result<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // S3 answers 204 for absent keys; some compatible servers answer 404.
            Err(e) if is_missing_object(&e) => Ok(()),
            Err(e) => Err(self.sdk_error("deleting", key, e)),
        }
    }

    async fn put_file(&self, key: &StoredKey, content_type: &str, path: &Path) -> Result<()> {
        self.upload_file(key, content_type, path).await
    }

    async fn get_range(&self, key: &StoredKey, start: u64, len: u64) -> Result<Vec<u8>> {
        self.download_range(key, start, len).await
    }

    async fn get_to_file(&self, key: &StoredKey, path: &Path) -> Result<u64> {
        self.download_to_file(key, path).await
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\0\0\0";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj";
    const ZIP: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0";
    const OLE2: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0\0";
    const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0";

    #[test]
    fn every_default_type_is_accepted_with_its_real_signature() {
        let policy = UploadPolicy::default();
        let samples: &[(&str, &[u8])] = &[
            ("image/png", PNG),
            ("image/jpeg", JPEG),
            ("image/gif", GIF),
            ("image/gif", b"GIF87a\x01\0"),
            ("image/webp", WEBP),
            ("application/pdf", PDF),
            ("text/plain", "Grüße, 你好\n".as_bytes()),
            ("text/csv", b"name,email\nAda,ada@example.com\n"),
            ("application/zip", ZIP),
            ("application/zip", b"PK\x05\x06\0\0\0\0"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ZIP,
            ),
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ZIP,
            ),
            (
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ZIP,
            ),
            ("application/msword", OLE2),
            ("application/vnd.ms-excel", OLE2),
            (
                "message/rfc822",
                b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n",
            ),
        ];
        for (declared, bytes) in samples {
            assert_eq!(
                policy.check(declared, bytes).as_deref().ok(),
                Some(*declared),
                "{declared} should be accepted"
            );
        }
        let covered: Vec<&str> = samples.iter().map(|(t, _)| *t).collect();
        for t in DEFAULT_ALLOWED_TYPES {
            assert!(covered.contains(t), "no sample for default type {t}");
        }
    }

    #[test]
    fn pdf_header_may_follow_leading_junk() {
        let mut bytes = b"\r\n\r\n".to_vec();
        bytes.extend_from_slice(PDF);
        assert!(UploadPolicy::default()
            .check("application/pdf", &bytes)
            .is_ok());
    }

    #[test]
    fn parameters_and_case_are_stripped_and_aliases_resolved() {
        let policy = UploadPolicy::default();
        let ok = |declared: &str, bytes: &[u8]| policy.check(declared, bytes).ok();
        assert_eq!(
            ok("text/plain; charset=utf-8", b"hi").as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            ok(" IMAGE/PNG ; name=x.png", PNG).as_deref(),
            Some("image/png")
        );
        assert_eq!(ok("image/jpg", JPEG).as_deref(), Some("image/jpeg"));
        assert_eq!(
            ok("application/x-zip-compressed", ZIP).as_deref(),
            Some("application/zip")
        );
    }

    #[test]
    fn disguised_files_are_refused_naming_what_they_are() {
        let policy = UploadPolicy::default();
        for (declared, bytes, looks_like) in [
            ("image/png", EXE, "Windows executable"),
            ("image/png", ZIP, "ZIP archive"),
            ("image/jpeg", PNG, "PNG image"),
            ("application/pdf", ELF, "Linux executable"),
            ("application/msword", ZIP, "ZIP archive"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                OLE2,
                "legacy Office",
            ),
            (
                "image/webp",
                b"RIFF\x24\0\0\0WAVEfmt ".as_slice(),
                "binary data",
            ),
            ("text/plain", EXE, "Windows executable"),
            ("image/gif", b"".as_slice(), "an empty file"),
        ] {
            let err = policy.check(declared, bytes).unwrap_err();
            assert_eq!(err.code(), "file.content_mismatch", "{declared}");
            assert!(matches!(err, Error::Invalid { .. }));
            assert!(err.to_string().contains(looks_like), "{declared}: {err}");
        }
    }

    #[test]
    fn text_must_be_utf8_without_nul() {
        let policy = UploadPolicy::default();
        let err = policy.check("text/plain", b"abc\0def").unwrap_err();
        assert_eq!(err.code(), "file.content_mismatch");
        assert!(err.to_string().contains("binary data"), "{err}");
        let err = policy.check("text/csv", b"caf\xe9\n").unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        let err = policy.check("message/rfc822", b"From: x\0").unwrap_err();
        assert_eq!(err.code(), "file.content_mismatch");
        // Legacy 8-bit mail bodies are still mail.
        assert!(policy
            .check("message/rfc822", b"Subject: caf\xe9\r\n\r\n")
            .is_ok());
        assert!(policy.check("text/plain", b"").is_ok());
    }

    #[test]
    fn too_large_is_refused_before_anything_else() {
        let policy = UploadPolicy {
            max_bytes: 4,
            ..UploadPolicy::default()
        };
        assert!(policy.check("image/png", &PNG[..4]).is_err()); // size ok, signature cut off
        let err = policy.check("application/x-msdownload", EXE).unwrap_err();
        assert_eq!(err.code(), "file.too_large");
        assert!(matches!(err, Error::BadRequest { .. }));
        assert!(err.to_string().contains("limit is 4 bytes"), "{err}");
        let err = UploadPolicy::default()
            .check("text/plain", &vec![b'a'; DEFAULT_MAX_BYTES as usize + 1])
            .unwrap_err();
        assert!(err.to_string().contains("20 MiB"), "{err}");
        assert!(UploadPolicy::default()
            .check("text/plain", &vec![b'a'; DEFAULT_MAX_BYTES as usize])
            .is_ok());
    }

    #[test]
    fn types_outside_the_allow_list_are_refused_listing_the_allowed_ones() {
        let policy = UploadPolicy::default();
        for declared in [
            "application/x-msdownload",
            "text/html",
            "",
            "image/svg+xml",
            "png",
        ] {
            let err = policy.check(declared, b"x").unwrap_err();
            assert_eq!(err.code(), "file.type_not_allowed", "{declared:?}");
            assert!(err.to_string().contains("image/png, image/jpeg"), "{err}");
        }
    }

    #[test]
    fn custom_types_without_a_signature_refuse_only_programs() {
        let policy = UploadPolicy {
            allowed_types: vec!["Audio/MPEG".into(), "text/markdown".into()],
            ..UploadPolicy::default()
        };
        assert_eq!(
            policy.check("audio/mpeg", b"ID3\x04\0").ok().as_deref(),
            Some("audio/mpeg")
        );
        assert_eq!(
            policy.check("audio/mpeg", EXE).unwrap_err().code(),
            "file.content_mismatch"
        );
        assert!(policy.check("text/markdown", b"# Title\n").is_ok());
        assert!(policy.check("text/markdown", b"\0").is_err());
        assert_eq!(
            policy.check("image/png", PNG).unwrap_err().code(),
            "file.type_not_allowed"
        );
    }

    #[test]
    fn policy_deserialises_with_defaults() {
        let policy: UploadPolicy = serde_json::from_str(r#"{"max_bytes": 10}"#).unwrap();
        assert_eq!(policy.max_bytes, 10);
        assert_eq!(policy.allowed_types.len(), DEFAULT_ALLOWED_TYPES.len());
        assert!(serde_json::from_str::<UploadPolicy>(r#"{"max_size": 10}"#).is_err());
    }

    #[test]
    fn generated_keys_parse_and_belong_to_their_tenant() {
        let tenant = Uuid::new_v4();
        let key = StoredKey::generate(tenant);
        let parsed = StoredKey::parse(key.as_str()).expect("a generated key parses");
        assert_eq!(parsed, key);
        assert!(key.belongs_to(tenant));
        assert!(!key.belongs_to(Uuid::new_v4()));
        assert_eq!(key.tenant(), tenant);
        let segments: Vec<&str> = key.as_str().split('/').collect();
        assert_eq!(segments[0], tenant.simple().to_string());
        assert_eq!(segments[1], chrono::Utc::now().format("%Y").to_string());
        assert_ne!(StoredKey::generate(tenant), key);
    }

    #[test]
    fn parse_refuses_anything_but_the_exact_shape() {
        let tenant = "0123456789abcdef0123456789abcdef";
        let id = Uuid::now_v7().simple().to_string();
        let good = format!("{tenant}/2026/03/{id}");
        assert!(StoredKey::parse(&good).is_some());
        let v4 = Uuid::new_v4().simple().to_string();
        for bad in [
            String::new(),
            "../x".into(),
            format!("{tenant}/../../{id}"),
            format!("../{tenant}/2026/03/{id}"),
            format!("/{good}"),
            format!("{good}/"),
            format!("{good}/x"),
            format!("{tenant}/2026/{id}"),
            format!("{tenant}//2026/03/{id}"),
            format!("{}/2026/03/{id}", tenant.to_uppercase()),
            format!("{tenant}/2026/03/{}", id.to_uppercase()),
            format!("{tenant}/2026/13/{id}"),
            format!("{tenant}/2026/00/{id}"),
            format!("{tenant}/2026/3/{id}"),
            format!("{tenant}/+026/03/{id}"),
            format!("{tenant}/2026/03/{v4}"),
            format!("{tenant}/2026/03/{}", Uuid::now_v7().hyphenated()),
            format!("{tenant}\\2026\\03\\{id}"),
            format!("{tenant}/2026/03/{}", &id[..31]),
            format!("{tenant}/2026/03/{}g", &id[..31]),
            format!("{tenant}/٢٠٢٦/03/{id}"),
        ] {
            assert!(StoredKey::parse(&bad).is_none(), "{bad:?} must be refused");
        }
        let other_tenant = StoredKey::parse(&good).unwrap();
        assert!(!other_tenant.belongs_to(Uuid::new_v4()));
    }

    #[test]
    fn config_reads_both_kinds_and_refuses_unknown_fields() {
        let local: FileStoreConfig = serde_json::from_str(r#"{"kind":"local"}"#).unwrap();
        assert_eq!(local, FileStoreConfig::default());
        let local: FileStoreConfig =
            serde_json::from_str(r#"{"kind":"local","dir":"/srv/files"}"#).unwrap();
        assert_eq!(
            local,
            FileStoreConfig::Local {
                dir: Some("/srv/files".into())
            }
        );
        let s3: FileStoreConfig = serde_json::from_str(
            r#"{"kind":"s3","endpoint":"http://127.0.0.1:9000","region":"us-east-1",
                "bucket":"crm","access_key_id":"AK","secret_access_key":"very-secret",
                "force_path_style":true,"prefix":"a/b"}"#,
        )
        .unwrap();
        let FileStoreConfig::S3(ref cfg) = s3 else {
            panic!("expected s3, got {s3:?}")
        };
        assert_eq!(cfg.bucket, "crm");
        assert!(cfg.force_path_style);
        assert!(!format!("{s3:?}").contains("very-secret"));
        let roundtrip: FileStoreConfig =
            serde_json::from_value(serde_json::to_value(&s3).unwrap()).unwrap();
        assert_eq!(roundtrip, s3);
        for bad in [
            r#"{"kind":"local","path":"/x"}"#,
            r#"{"kind":"ftp"}"#,
            r#"{"dir":"/x"}"#,
            r#"{"kind":"s3","region":"r","bucket":"b","access_key_id":"a","secret_access_key":"s","acl":"x"}"#,
            r#"{"kind":"s3","bucket":"b","access_key_id":"a","secret_access_key":"s"}"#,
        ] {
            assert!(
                serde_json::from_str::<FileStoreConfig>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn s3_store_refuses_incomplete_config() {
        let cfg = S3Config {
            endpoint: Some("127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            bucket: "crm".into(),
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            force_path_style: true,
            prefix: Some("/p/q/".into()),
        };
        assert!(S3Store::new(&cfg)
            .unwrap_err()
            .to_string()
            .contains("http://"));
        let store = S3Store::new(&S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..cfg.clone()
        })
        .unwrap();
        let key = StoredKey::generate(Uuid::new_v4());
        assert_eq!(store.object_name(&key), format!("p/q/{key}"));
        let err = S3Store::new(&S3Config {
            bucket: " ".into(),
            ..cfg
        })
        .unwrap_err();
        assert!(err.to_string().contains("bucket"), "{err}");
    }
}
