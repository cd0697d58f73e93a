//! The conversation on a ticket: public replies (seen by the customer, mailed to the contact)
//! and internal notes (staff only). The first public staff reply stops the first-response
//! clock.

use super::notices;
use super::tickets;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::{cut_page, Page};
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::mail::{self, OutgoingMail};
use crm_records::history;
use crm_records::meta::ObjectKey;
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

/// Who wrote a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// A staff user (`None` for an API key that acts for nobody).
    Staff(Option<Uuid>),
    /// A contact, through the portal.
    Contact(Uuid),
}

/// One comment.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Comment {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub body: String,
    pub public: bool,
    pub author_kind: String,
    pub author_id: Option<Uuid>,
    /// The author's name (user or contact).
    pub author_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT c.id, c.ticket_id, c.body, c.public, c.author_kind, c.author_id, \
    COALESCE(u.name, ct.name) AS author_name, c.created_at FROM ticket_comments c \
    LEFT JOIN users u ON c.author_kind = 'user' AND u.id = c.author_id \
    LEFT JOIN contacts ct ON c.author_kind = 'contact' AND ct.id = c.author_id";

/// Longest comment, in characters after trimming.
pub const MAX_BODY_CHARS: usize = 100_000;

/// Adds a comment to a live ticket (the caller checked access to it).
pub async fn add(
    tx: &mut TenantTx,
    ticket: Uuid,
    author: Author,
    body: &str,
    public: bool,
    actor: &Actor,
) -> Result<Comment> {
    let body = body.trim();
    if body.is_empty() {
        return Err(Error::invalid_field("body", "required", "write something"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(Error::invalid_field(
            "body",
            "too_long",
            format!("at most {MAX_BODY_CHARS} characters"),
        ));
    }
    let row = tickets::load(tx, ticket).await?;
    if !row.live {
        return Err(Error::not_found(
            "record.not_found",
            format!("ticket {ticket} not found"),
        ));
    }
    let (kind, author_id, public) = match author {
        Author::Staff(u) => ("user", u, public),
        // What a customer writes is always visible to them.
        Author::Contact(c) => ("contact", Some(c), true),
    };
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ticket_comments (id, ticket_id, body, public, author_kind, author_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(ticket)
    .bind(body)
    .bind(public)
    .bind(kind)
    .bind(author_id)
    .execute(tx.conn())
    .await?;
    history::emit(
        tx,
        ObjectKey::Tickets,
        ticket,
        "commented",
        actor,
        json!({ "comment_id": id, "public": public, "author_kind": kind, "number": row.number }),
    )
    .await?;
    if let Author::Staff(_) = author {
        if public {
            tickets::record_first_response(tx, ticket).await?;
            mail_contact(tx, ticket, &row, body, id).await?;
        }
    }
    get(tx, ticket, id).await
}

/// Mails a public staff reply to the ticket's contact, if it has an address.
async fn mail_contact(
    tx: &mut TenantTx,
    ticket: Uuid,
    row: &tickets::SlaRow,
    body: &str,
    comment: Uuid,
) -> Result<()> {
    let Some(contact) = row.contact_id else {
        return Ok(());
    };
    let email: Option<Option<String>> =
        sqlx::query_scalar("SELECT email FROM contacts WHERE id = $1 AND deleted_at IS NULL")
            .bind(contact)
            .fetch_optional(tx.conn())
            .await?;
    let Some(email) = email.flatten() else {
        return Ok(());
    };
    let lang = notices::tenant_lang(tx).await?;
    let (subject, text) = notices::ticket_reply(lang, &row.number, &row.subject, body);
    mail::enqueue(
        tx,
        &OutgoingMail {
            to: vec![email],
            subject,
            text,
            purpose: "ticket.reply".into(),
        },
        format!("mail:ticket.reply:{comment}"),
        Some(ticket),
    )
    .await?;
    Ok(())
}

async fn get(tx: &mut TenantTx, ticket: Uuid, id: Uuid) -> Result<Comment> {
    sqlx::query_as(&format!("{SELECT} WHERE c.ticket_id = $1 AND c.id = $2"))
        .bind(ticket)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| Error::not_found("comment.not_found", format!("no comment {id}")))
}

/// A ticket's comments, oldest first; `public_only` hides internal notes (the portal).
pub async fn list(
    tx: &mut TenantTx,
    ticket: Uuid,
    public_only: bool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Comment>> {
    let after: Option<Uuid> = crm_core::context::parse_cursor(cursor)?;
    let mut items: Vec<Comment> = sqlx::query_as(&format!(
        "{SELECT} WHERE c.ticket_id = $1 AND (NOT $2 OR c.public) AND ($3::uuid IS NULL OR c.id > $3) \
         ORDER BY c.id LIMIT $4"
    ))
    .bind(ticket)
    .bind(public_only)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |c| c.id);
    Ok(Page { items, next_cursor })
}
