//! Files attached to tickets and to their comments. The bytes live in the [`FileStore`] under a
//! [`StoredKey`] we generate; a `ticket_attachments` row keeps the name shown to people, the
//! checked type, size and SHA-256. The user's file name is only ever displayed, never used to
//! store or find anything.
//!
//! Objects and rows cannot share a transaction, so the order is chosen to never orphan a row:
//! an upload stores the object first and deletes it again when the row's transaction fails; a
//! deletion removes the row first and the object after the commit. When an object cannot be
//! removed then (the store is down), or when a ticket is purged (its rows cascade), the keys go
//! to a durable [`DELETE_FILES_JOB`] committed with the change, which retries until the store
//! answers.

use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::error::{Error, FieldError, Result};
use crm_core::files::{FileStore, StoredKey, UploadPolicy};
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob};
use crm_records::history;
use crm_records::meta::ObjectKey;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use std::sync::Arc;
use uuid::Uuid;

/// Job kind that deletes stored objects whose rows are gone (`payload.keys`).
pub const DELETE_FILES_JOB: &str = "attachment.delete_files";

/// The stored objects to delete.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DeleteFiles {
    pub keys: Vec<String>,
}

impl crm_core::jobs::Payload for DeleteFiles {
    const KIND: &'static str = DELETE_FILES_JOB;
}

/// Longest file name kept, in characters; longer names are shortened, keeping the extension.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// The column holding the stored keys of attachment bytes: tenant backups carry those files
/// and a restore into a new tenant rewrites it (wired in by the binary).
pub const STORED_FILE_COLUMNS: &[crm_tenants::backup::FileColumn] =
    &[crm_tenants::backup::FileColumn {
        table: "ticket_attachments",
        column: "storage_key",
    }];

/// The type assumed for a part sent without `Content-Type` (what browsers send for unknowns).
const UNKNOWN_TYPE: &str = "application/octet-stream";

/// One attachment, as shown to staff (and later the portal).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Attachment {
    pub id: Uuid,
    pub ticket_id: Uuid,
    /// The comment it was sent with, if any.
    pub comment_id: Option<Uuid>,
    /// The uploader's file name, cleaned for display.
    pub file_name: String,
    /// The checked, normalised content type.
    pub content_type: String,
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// `user` (staff) or `contact` (portal).
    pub uploaded_by_kind: String,
    /// The user or contact; `None` for an API key that acts for nobody.
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct Row {
    #[sqlx(flatten)]
    attachment: Attachment,
    storage_key: String,
}

const COLUMNS: &str = "id, ticket_id, comment_id, file_name, content_type, size_bytes, sha256, \
    uploaded_by_kind, uploaded_by, created_at, storage_key";

/// Who uploads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader {
    /// A staff user (`None` for an API key that acts for nobody).
    Staff(Option<Uuid>),
    /// A contact, through the customer portal: may attach only to public comments.
    Contact(Uuid),
}

impl Uploader {
    fn kind(self) -> &'static str {
        match self {
            Uploader::Staff(_) => "user",
            Uploader::Contact(_) => "contact",
        }
    }

    fn id(self) -> Option<Uuid> {
        match self {
            Uploader::Staff(u) => u,
            Uploader::Contact(c) => Some(c),
        }
    }
}

/// A file that passed the upload policy, with its display name and digest; ready to store.
#[derive(Debug)]
pub struct Upload {
    file_name: String,
    content_type: String,
    sha256: String,
    bytes: Vec<u8>,
}

impl Upload {
    /// Checks size, type, content and name; a part without a content type counts as
    /// `application/octet-stream` (so it is refused unless the policy allows that).
    pub fn check(
        policy: &UploadPolicy,
        file_name: Option<&str>,
        declared_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<Self> {
        let content_type = policy.check(declared_type.unwrap_or(UNKNOWN_TYPE), &bytes)?;
        let file_name = display_name(file_name.unwrap_or_default())?;
        Ok(Upload {
            file_name,
            content_type,
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
        })
    }

    /// The cleaned display name.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The normalised content type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

/// Cleans an uploaded file name for display: the last path component (browsers on Windows
/// may send `C:\Users\…\a.png`), trimmed, at most [`MAX_FILE_NAME_CHARS`] characters (the
/// extension kept). Refuses names that are empty or carry control characters or invisible
/// direction overrides (which can disguise `gnp.exe` as `exe.png`).
pub fn display_name(raw: &str) -> Result<String> {
    let invalid =
        |message: &str| Error::invalid_field("file", "invalid_file_name", message.to_owned());
    if raw
        .chars()
        .any(|c| c.is_control() || is_direction_control(c))
    {
        return Err(invalid(
            "the file name contains control characters or direction overrides; rename the file",
        ));
    }
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if last.is_empty() || last == "." || last == ".." {
        return Err(invalid(
            "the file part has no file name; send it with Content-Disposition: form-data; \
             name=\"file\"; filename=\"…\"",
        ));
    }
    Ok(shorten(last, MAX_FILE_NAME_CHARS))
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// At most `max` characters, cutting the stem so a short extension survives.
fn shorten(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        return name.to_owned();
    }
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.chars().count() <= 16 && e.chars().count() < count);
    match ext {
        Some(ext) => {
            let keep = max - ext.chars().count();
            let stem: String = name.chars().take(keep).collect();
            format!("{}{ext}", stem.trim_end())
        }
        None => name.chars().take(max).collect(),
    }
}

/// Where a file goes: a ticket, and optionally one of its comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub ticket: Uuid,
    pub comment: Option<Uuid>,
}

/// Checks that the ticket is live and the comment (if any) is one of its comments — a public
/// one for a contact. The caller has already checked that the uploader may see the ticket.
pub async fn check_target(tx: &mut TenantTx, target: Target, uploader: Uploader) -> Result<()> {
    let Target { ticket, comment } = target;
    let live: Option<bool> =
        sqlx::query_scalar("SELECT deleted_at IS NULL FROM tickets WHERE id = $1 FOR SHARE")
            .bind(ticket)
            .fetch_optional(tx.conn())
            .await?;
    if live != Some(true) {
        return Err(Error::not_found(
            "record.not_found",
            format!("ticket {ticket} not found"),
        ));
    }
    let Some(comment) = comment else {
        return Ok(());
    };
    let public: Option<bool> =
        sqlx::query_scalar("SELECT public FROM ticket_comments WHERE id = $1 AND ticket_id = $2")
            .bind(comment)
            .bind(ticket)
            .fetch_optional(tx.conn())
            .await?;
    let fits = match uploader {
        Uploader::Staff(_) => public.is_some(),
        // Internal notes do not exist as far as the customer knows.
        Uploader::Contact(_) => public == Some(true),
    };
    if !fits {
        return Err(Error::invalid(vec![FieldError::new(
            "comment_id",
            "not_of_ticket",
            format!(
                "{comment} is not a comment of ticket {ticket}; list them with \
                 GET /api/v1/tickets/{ticket}/comments"
            ),
        )]));
    }
    Ok(())
}

/// Stores a checked upload under a fresh key of the tenant, then records it in a transaction of
/// its own (checking the target again); when that fails the object is deleted again. The
/// caller must have checked that the uploader may see and work on the ticket — for a contact,
/// that the ticket is one of its customer's. This is the one entry point for staff and portal.
pub async fn attach(
    db: &Db,
    tenant: &TenantCtx,
    store: &dyn FileStore,
    target: Target,
    uploader: Uploader,
    upload: Upload,
    actor: &Actor,
) -> Result<Attachment> {
    let key = StoredKey::generate(tenant.id);
    let Upload {
        file_name,
        content_type,
        sha256,
        bytes,
    } = upload;
    let size = i64::try_from(bytes.len())
        .map_err(|_| Error::internal("an upload larger than i64::MAX bytes"))?;
    store.put(&key, &content_type, bytes).await?;
    let recorded = async {
        let mut tx = db.tenant_tx(tenant).await?;
        check_target(&mut tx, target, uploader).await?;
        let row: Row = sqlx::query_as(&format!(
            "INSERT INTO ticket_attachments (id, ticket_id, comment_id, file_name, content_type, \
               size_bytes, sha256, storage_key, uploaded_by_kind, uploaded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(target.ticket)
        .bind(target.comment)
        .bind(&file_name)
        .bind(&content_type)
        .bind(size)
        .bind(&sha256)
        .bind(key.as_str())
        .bind(uploader.kind())
        .bind(uploader.id())
        .fetch_one(tx.conn())
        .await?;
        let a = row.attachment;
        history::emit(
            &mut tx,
            ObjectKey::Tickets,
            target.ticket,
            "attachment_added",
            actor,
            json!({
                "attachment_id": a.id, "comment_id": a.comment_id, "file_name": a.file_name,
                "content_type": a.content_type, "size_bytes": a.size_bytes, "sha256": a.sha256,
                "uploaded_by_kind": a.uploaded_by_kind, "uploaded_by": a.uploaded_by,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(a)
    }
    .await;
    if recorded.is_err() {
        // Nothing points at the object: remove it now (a failure here only leaves unreachable
        // bytes, never a row without its file).
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(error = %e, key = %key, "could not delete the object of a failed upload");
        }
    }
    recorded
}

/// A ticket's attachments, oldest first; `public_only` leaves out those sent with internal
/// notes (for the portal).
pub async fn list(
    tx: &mut TenantTx,
    ticket: Uuid,
    public_only: bool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Attachment>> {
    let after: Option<Uuid> = parse_cursor(cursor)?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ticket_attachments a WHERE ticket_id = $1 \
           AND (NOT $2 OR comment_id IS NULL OR EXISTS (SELECT 1 FROM ticket_comments c \
                WHERE c.id = a.comment_id AND c.public)) \
           AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"
    ))
    .bind(ticket)
    .bind(public_only)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let mut items: Vec<Attachment> = rows.into_iter().map(|r| r.attachment).collect();
    let next_cursor = cut_page(&mut items, limit, |a| a.id);
    Ok(Page { items, next_cursor })
}

/// An attachment and where its bytes are.
#[derive(Debug, Clone)]
pub struct Stored {
    pub attachment: Attachment,
    /// Checked to belong to the transaction's tenant.
    pub key: StoredKey,
}

/// 404 `attachment.not_found`; also what callers answer when the attachment's ticket is not
/// visible to the caller, so the ticket's id is not revealed.
pub fn not_found(id: Uuid) -> Error {
    Error::not_found(
        "attachment.not_found",
        format!("attachment {id} not found; list a ticket's files with GET /api/v1/tickets/{{id}}/attachments"),
    )
}

/// One attachment with its key; the caller checks the ticket is visible before serving it.
/// A stored key that is malformed or names another tenant is never returned.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Stored> {
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ticket_attachments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| not_found(id))?;
    let key = own_key(tx.tenant(), &row.storage_key).ok_or_else(|| {
        Error::internal(format!(
            "attachment {id} of tenant {} has the storage key '{}', which is not one of this \
             tenant's; refusing to read it",
            tx.tenant().slug,
            row.storage_key
        ))
    })?;
    Ok(Stored {
        attachment: row.attachment,
        key,
    })
}

fn own_key(tenant: &TenantCtx, raw: &str) -> Option<StoredKey> {
    StoredKey::parse(raw).filter(|k| k.belongs_to(tenant.id))
}

/// Deletes an attachment's row (announcing it on the ticket); returns its key so the caller
/// can delete the object after the commit, with [`discard`].
pub async fn remove(tx: &mut TenantTx, stored: &Stored, actor: &Actor) -> Result<StoredKey> {
    let a = &stored.attachment;
    let done = sqlx::query("DELETE FROM ticket_attachments WHERE id = $1")
        .bind(a.id)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(a.id));
    }
    history::emit(
        tx,
        ObjectKey::Tickets,
        a.ticket_id,
        "attachment_deleted",
        actor,
        json!({ "attachment_id": a.id, "comment_id": a.comment_id, "file_name": a.file_name }),
    )
    .await?;
    Ok(stored.key.clone())
}

/// Deletes an object whose row is gone (committed). When the store fails, a
/// [`DELETE_FILES_JOB`] retries later; only if that cannot be queued either are the bytes
/// left behind (logged).
pub async fn discard(db: &Db, tenant: &TenantCtx, store: &dyn FileStore, key: StoredKey) {
    let Err(e) = store.delete(&key).await else {
        return;
    };
    tracing::warn!(error = %e, key = %key, "deleting an attachment's object failed; queued a retry");
    let queued = async {
        let mut tx = db.tenant_tx(tenant).await?;
        enqueue_deletion(&mut tx, None, vec![key.to_string()]).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = queued {
        tracing::error!(error = %e, key = %key, "could not queue the deletion of an attachment's object; it stays in the store");
    }
}

/// Queues the deletion of a ticket's objects before the ticket is purged (its attachment rows
/// cascade away with it); call it in the purge's transaction, so both happen or neither.
pub async fn before_ticket_purge(tx: &mut TenantTx, ticket: Uuid) -> Result<()> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT storage_key FROM ticket_attachments WHERE ticket_id = $1")
            .bind(ticket)
            .fetch_all(tx.conn())
            .await?;
    if keys.is_empty() {
        return Ok(());
    }
    enqueue_deletion(tx, Some(ticket), keys).await
}

async fn enqueue_deletion(
    tx: &mut TenantTx,
    ticket: Option<Uuid>,
    keys: Vec<String>,
) -> Result<()> {
    let mut job = NewJob::of(&DeleteFiles { keys })?;
    job.subject_id = ticket;
    jobs::enqueue(tx, job).await?;
    Ok(())
}

/// Runs [`DELETE_FILES_JOB`]: deletes the listed objects of the job's tenant that no row uses.
pub struct DeleteFilesJob {
    pub store: Arc<dyn FileStore>,
}

#[async_trait::async_trait]
impl JobHandler for DeleteFilesJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let raw = job.payload_as::<DeleteFiles>()?.keys;
        // A key still on a row is in use (never expected, but never worth losing a file over).
        let in_use: Vec<String> = sqlx::query_scalar(
            "SELECT storage_key FROM ticket_attachments WHERE storage_key = ANY($1)",
        )
        .bind(&raw)
        .fetch_all(tx.conn())
        .await?;
        for raw_key in raw.iter().filter(|k| !in_use.contains(k)) {
            let Some(key) = own_key(tx.tenant(), raw_key) else {
                tracing::error!(key = %raw_key, tenant = %tx.tenant().slug, "refusing to delete an object that is not this tenant's");
                continue;
            };
            self.store.delete(&key).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> Option<&'static str> {
        match display_name(raw) {
            Ok(_) => None,
            Err(Error::Invalid { fields, .. }) => Some(fields[0].code),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn display_names_keep_the_users_name_without_its_path() {
        assert_eq!(
            display_name("  报价单 2024.pdf ").unwrap(),
            "报价单 2024.pdf"
        );
        assert_eq!(
            display_name("C:\\Users\\张伟\\截图.png").unwrap(),
            "截图.png"
        );
        assert_eq!(display_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(display_name("a/b/ c.txt").unwrap(), "c.txt");
        assert_eq!(display_name("..hidden").unwrap(), "..hidden");
    }

    #[test]
    fn empty_and_control_names_are_refused() {
        for bad in [
            "", "   ", "dir/", "a\\", ".", "..", "x/..", "a\nb.png", "a\0.png", "\u{7f}",
        ] {
            assert_eq!(code(bad), Some("invalid_file_name"), "{bad:?}");
        }
        // gnp.exe shown right-to-left reads as exe.png.
        assert_eq!(code("invoice\u{202E}gnp.exe"), Some("invalid_file_name"));
        assert_eq!(code("x\u{2067}.png"), Some("invalid_file_name"));
    }

    #[test]
    fn long_names_are_cut_to_255_characters_keeping_the_extension() {
        let long = format!("{}.pdf", "合同".repeat(200));
        let short = display_name(&long).unwrap();
        assert_eq!(short.chars().count(), MAX_FILE_NAME_CHARS);
        assert!(short.ends_with("合.pdf"), "{short}");
        let no_ext = "x".repeat(300);
        assert_eq!(display_name(&no_ext).unwrap(), "x".repeat(255));
        let long_ext = format!("a.{}", "e".repeat(300));
        assert_eq!(display_name(&long_ext).unwrap().chars().count(), 255);
        let exact = "y".repeat(255);
        assert_eq!(display_name(&exact).unwrap(), exact);
    }

    #[test]
    fn uploads_are_checked_by_the_policy_then_named_and_hashed() {
        let policy = UploadPolicy::default();
        let up = Upload::check(
            &policy,
            Some("说明.txt"),
            Some("text/plain; charset=utf-8"),
            b"abc".to_vec(),
        )
        .unwrap();
        assert_eq!(up.file_name(), "说明.txt");
        assert_eq!(up.content_type(), "text/plain");
        assert_eq!(
            up.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = Upload::check(&policy, Some("a.bin"), None, b"abc".to_vec()).unwrap_err();
        assert_eq!(err.code(), "file.type_not_allowed");
        assert!(
            err.to_string().contains("application/octet-stream"),
            "{err}"
        );
        let err = Upload::check(&policy, None, Some("text/plain"), b"abc".to_vec()).unwrap_err();
        assert_eq!(err.code(), "validation.failed");
    }

    #[test]
    fn keys_of_other_tenants_or_bad_shape_are_not_own() {
        let tenant = TenantCtx {
            id: Uuid::new_v4(),
            slug: "acme".into(),
            schema: crm_core::db::SchemaName::for_tenant(Uuid::new_v4()),
        };
        let own = StoredKey::generate(tenant.id);
        assert_eq!(own_key(&tenant, own.as_str()), Some(own));
        let other = StoredKey::generate(Uuid::new_v4());
        assert_eq!(own_key(&tenant, other.as_str()), None);
        assert_eq!(own_key(&tenant, "../x"), None);
    }
}
