//! What staff do around a ticket besides editing it — the conversation and the attachments —
//! checked against their record [`Access`]: reading needs `tickets:read`, writing
//! `tickets:update`, and the ticket must be a live one in the caller's ticket scope (404
//! otherwise, as if it did not exist).

use super::attachments::{self, Attachment, Stored, Target, Uploader};
use super::comments::{self, Author, Comment};
use crm_core::context::Page;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::files::StoredKey;
use crm_records::{engine, Access, ObjectKey, RecordAction, Visibility};
use uuid::Uuid;

/// 403 unless `access` may do `action` to tickets; 404 unless ticket `id` is live and in its
/// scope.
pub async fn ensure_ticket(
    tx: &mut TenantTx,
    access: &Access<'_>,
    id: Uuid,
    action: RecordAction,
) -> Result<()> {
    access.require(ObjectKey::Tickets, action)?;
    engine::ensure_visible(tx, ObjectKey::Tickets, access.scope(), id, Visibility::Live).await
}

/// Replies publicly (mailed to the contact; the first one stops the first-response clock) or
/// adds an internal note.
pub async fn add_comment(
    tx: &mut TenantTx,
    access: &Access<'_>,
    ticket: Uuid,
    body: &str,
    public: bool,
) -> Result<Comment> {
    ensure_ticket(tx, access, ticket, RecordAction::Update).await?;
    let author = Author::Staff(access.user_id());
    comments::add(tx, ticket, author, body, public, access.actor()).await
}

/// The ticket's satisfaction survey, if one was sent (404 unless the caller reads the ticket).
pub async fn satisfaction(
    tx: &mut TenantTx,
    access: &Access<'_>,
    ticket: Uuid,
) -> Result<Option<super::csat::Survey>> {
    ensure_ticket(tx, access, ticket, RecordAction::Read).await?;
    super::csat::of_ticket(tx, ticket).await
}

/// The conversation, oldest first: replies and internal notes.
pub async fn list_comments(
    tx: &mut TenantTx,
    access: &Access<'_>,
    ticket: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Comment>> {
    ensure_ticket(tx, access, ticket, RecordAction::Read).await?;
    comments::list(tx, ticket, false, cursor, limit).await
}

/// Checks that `access` may attach a file to `target` and returns who uploads it; the bytes
/// are stored afterwards, outside the transaction ([`attachments::attach`]).
pub async fn attachment_target(
    tx: &mut TenantTx,
    access: &Access<'_>,
    target: Target,
) -> Result<Uploader> {
    ensure_ticket(tx, access, target.ticket, RecordAction::Update).await?;
    let uploader = Uploader::Staff(access.user_id());
    attachments::check_target(tx, target, uploader).await?;
    Ok(uploader)
}

/// A ticket's attachments, oldest first.
pub async fn list_attachments(
    tx: &mut TenantTx,
    access: &Access<'_>,
    ticket: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Attachment>> {
    ensure_ticket(tx, access, ticket, RecordAction::Read).await?;
    attachments::list(tx, ticket, false, cursor, limit).await
}

/// Attachment `id`, whose ticket `access` must see and may `action`; 404 otherwise.
pub async fn attachment(
    tx: &mut TenantTx,
    access: &Access<'_>,
    id: Uuid,
    action: RecordAction,
) -> Result<Stored> {
    access.require(ObjectKey::Tickets, action)?;
    let stored = attachments::get(tx, id).await?;
    ensure_ticket(tx, access, stored.attachment.ticket_id, action)
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => attachments::not_found(id),
            other => other,
        })?;
    Ok(stored)
}

/// Deletes attachment `id`'s row; returns its stored object's key, for
/// [`attachments::discard`] once the transaction has committed.
pub async fn remove_attachment(
    tx: &mut TenantTx,
    access: &Access<'_>,
    id: Uuid,
) -> Result<StoredKey> {
    let stored = attachment(tx, access, id, RecordAction::Update).await?;
    attachments::remove(tx, &stored, access.actor()).await
}
