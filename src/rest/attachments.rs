//! Attachments of tickets and comments: multipart upload, list, download and delete. Access
//! follows the ticket: reading needs `tickets:read`, changing needs `tickets:update`, and the
//! ticket must be in the caller's record scope (otherwise 404, like the ticket itself).

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::records::open;
use super::{Created, NoContent};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::context::page_size;
use crm_core::Error;
use crm_desk::attachments::{self, Attachment, Target, Upload};
use crm_desk::staff;
use crm_records::{ObjectKey, RecordAction};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::multipart::Upload as FilePart;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi, Tags};
use uuid::Uuid;

#[derive(Tags)]
enum AttachmentTag {
    /// Files on tickets and their comments.
    Attachments,
}

pub struct AttachmentsApi(pub AppState);

/// A multipart/form-data upload.
#[derive(Multipart)]
pub struct UploadForm {
    /// The file; its name and content type come from the part's headers.
    file: Option<FilePart>,
    /// Attach the file to this comment of the ticket.
    comment_id: Option<String>,
}

#[derive(Object)]
pub struct AttachmentOut {
    pub id: Uuid,
    pub ticket_id: Uuid,
    #[oai(skip_serializing_if_is_none)]
    pub comment_id: Option<Uuid>,
    /// The uploader's file name, for display only.
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// `user` (staff) or `contact` (portal).
    pub uploaded_by_kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Where to download the content (relative to the server).
    pub download_url: String,
}

impl From<Attachment> for AttachmentOut {
    fn from(a: Attachment) -> Self {
        AttachmentOut {
            download_url: format!("/api/v1/attachments/{}/content", a.id),
            id: a.id,
            ticket_id: a.ticket_id,
            comment_id: a.comment_id,
            file_name: a.file_name,
            content_type: a.content_type,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            uploaded_by_kind: a.uploaded_by_kind,
            uploaded_by: a.uploaded_by,
            created_at: a.created_at,
        }
    }
}

#[derive(Object)]
pub struct AttachmentPage {
    pub items: Vec<AttachmentOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A file download.
#[derive(ApiResponse)]
pub enum FileResponse {
    /// The stored bytes.
    #[oai(status = 200)]
    Ok(
        Binary<Vec<u8>>,
        /// The type checked at upload.
        #[oai(header = "Content-Type")]
        String,
        /// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<name>`.
        #[oai(header = "Content-Disposition")]
        String,
        /// Always `nosniff`: browsers must not reinterpret the content.
        #[oai(header = "X-Content-Type-Options")]
        String,
        /// `private, no-store`: attachments are never cached by shared caches.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

fn parse_comment_id(raw: Option<&str>) -> ApiResult<Option<Uuid>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Uuid::parse_str(s).map(Some).map_err(|_| {
            Error::invalid_field(
                "comment_id",
                "invalid_uuid",
                format!("'{s}' is not a comment id (a UUID)"),
            )
            .into()
        }),
    }
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): the ASCII fallback for old
/// clients, the exact UTF-8 name for everyone else.
pub(crate) fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(name)
    )
}

/// RFC 8187 `value-chars`: attr-chars stay, every other byte of the UTF-8 is `%XX`.
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        let attr_char = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if attr_char {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[OpenApi(tag = "AttachmentTag::Attachments")]
impl AttachmentsApi {
    /// Upload a file to a ticket (multipart/form-data: a `file` part and optionally a
    /// `comment_id` of the ticket). Size, type and content are checked against `[uploads]`:
    /// too large is 413 `file.too_large`, a refused type 422 `file.type_not_allowed`, content
    /// that does not match its type 422 `file.content_mismatch`.
    #[oai(path = "/tickets/:id/attachments", method = "post")]
    async fn upload(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        form: UploadForm,
    ) -> ApiResult<Created<AttachmentOut>> {
        let target = Target {
            ticket: id.0,
            comment: parse_comment_id(form.comment_id.as_deref())?,
        };
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let uploader = staff::attachment_target(&mut tx, &rc.access(), target).await?;
        let actor = rc.access().actor().clone();
        let tenant = rc.ctx.tenant.clone();
        // No connection is held while the bytes travel to the store.
        tx.commit().await?;
        let Some(part) = form.file else {
            return Err(Error::invalid_field(
                "file",
                "required",
                "send the file as a multipart/form-data part named 'file'",
            )
            .into());
        };
        let name = part.file_name().map(str::to_owned);
        let declared = part.content_type().map(str::to_owned);
        let bytes = part.into_vec().await.map_err(|e| {
            ApiError::from(Error::internal(format!(
                "reading the uploaded part back failed: {e}"
            )))
        })?;
        let upload = Upload::check(
            &self.0.config.uploads,
            name.as_deref(),
            declared.as_deref(),
            bytes,
        )?;
        let a = attachments::attach(
            &self.0.db,
            &tenant,
            self.0.files.as_ref(),
            target,
            uploader,
            upload,
            &actor,
        )
        .await?;
        Ok(Created::Created(Json(a.into())))
    }

    /// A ticket's attachments, oldest first.
    #[oai(path = "/tickets/:id/attachments", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<AttachmentPage>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let (cursor, limit) = (cursor.0.as_deref(), page_size(limit.0));
        let page = staff::list_attachments(&mut tx, &rc.access(), id.0, cursor, limit).await?;
        tx.commit().await?;
        Ok(Json(AttachmentPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Download an attachment (as a file, never rendered inline).
    #[oai(path = "/attachments/:id/content", method = "get")]
    async fn content(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<FileResponse> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let stored = staff::attachment(&mut tx, &rc.access(), id.0, RecordAction::Read).await?;
        tx.commit().await?;
        let bytes = self.0.files.get(&stored.key).await.map_err(|e| match e {
            // The row exists but the bytes do not: that is our fault, not a missing file.
            Error::NotFound { .. } => Error::internal(format!(
                "attachment {} has no object '{}' in the {} file store",
                id.0,
                stored.key,
                self.0.files.kind()
            )),
            other => other,
        })?;
        let a = stored.attachment;
        Ok(FileResponse::Ok(
            Binary(bytes),
            a.content_type,
            content_disposition(&a.file_name),
            "nosniff".to_owned(),
            "private, no-store".to_owned(),
        ))
    }

    /// Delete an attachment: its row at once, then its stored object.
    #[oai(path = "/attachments/:id", method = "delete")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let key = staff::remove_attachment(&mut tx, &rc.access(), id.0).await?;
        tx.commit().await?;
        attachments::discard(&self.0.db, &rc.ctx.tenant, self.0.files.as_ref(), key).await;
        Ok(NoContent::NoContent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_carries_the_exact_utf8_name_and_an_ascii_fallback() {
        assert_eq!(
            content_disposition("报价单 v2.pdf"),
            "attachment; filename=\"___ v2.pdf\"; filename*=UTF-8''%E6%8A%A5%E4%BB%B7%E5%8D%95%20v2.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\\c;d=e.txt"),
            "attachment; filename=\"a_b_c;d=e.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd%3De.txt"
        );
    }
}
