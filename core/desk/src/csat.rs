//! Satisfaction surveys: when a ticket is first resolved, its contact gets a survey link
//! (a `tcv_` token good for that ticket only); the rating (1-5, with an optional comment) is
//! accepted once per ticket, through the link or the portal.

use super::notices;
use chrono::{DateTime, Utc};
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::identity::tokens::{self, CredentialKind};
use crm_core::mail::{self, Lang, OutgoingMail};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// Sends the survey of a just-resolved ticket (once per ticket; nothing without a contact
/// e-mail).
pub async fn on_resolved(tx: &mut TenantTx, ticket: Uuid) -> Result<()> {
    let row: Option<(String, String, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT t.number, t.subject, t.contact_id, c.email FROM tickets t \
         LEFT JOIN contacts c ON c.id = t.contact_id AND c.deleted_at IS NULL WHERE t.id = $1",
    )
    .bind(ticket)
    .fetch_optional(tx.conn())
    .await?;
    let Some((number, subject, Some(contact), Some(email))) = row else {
        return Ok(());
    };
    let token = tokens::generate(CredentialKind::Survey, tx.tenant().id);
    let inserted = sqlx::query(
        "INSERT INTO csat_surveys (ticket_id, contact_id, token_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(ticket)
    .bind(contact)
    .bind(tokens::hash(&token))
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(());
    }
    let lang = notices::tenant_lang(tx).await?;
    let link = format!("{{{{base_url}}}}/portal/survey?token={token}");
    let (subject, text) = notices::csat_survey(lang, &number, &subject, &link);
    mail::enqueue(
        tx,
        &OutgoingMail {
            to: vec![email],
            subject,
            text,
            purpose: "ticket.csat_survey".into(),
        },
        format!("mail:ticket.csat_survey:{ticket}"),
        Some(ticket),
    )
    .await?;
    Ok(())
}

/// A ticket's survey.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Survey {
    pub ticket_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub sent_at: DateTime<Utc>,
    pub rating: Option<i16>,
    pub comment: Option<String>,
    pub rated_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "ticket_id, contact_id, sent_at, rating, comment, rated_at";

/// The survey of a ticket, if one was sent.
pub async fn of_ticket(tx: &mut TenantTx, ticket: Uuid) -> Result<Option<Survey>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM csat_surveys WHERE ticket_id = $1"
    ))
    .bind(ticket)
    .fetch_optional(tx.conn())
    .await?)
}

/// The ticket a survey token is for.
pub async fn ticket_of_token(tx: &mut TenantTx, token_hash: &str) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT ticket_id FROM csat_surveys WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// The worst rating (poor).
pub const MIN_RATING: i64 = 1;
/// The best rating (excellent).
pub const MAX_RATING: i64 = 5;
/// Longest comment on a rating, in characters after trimming.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Records the rating of a ticket: 1-5, once. A ticket resolved without a survey (no contact
/// e-mail) gets one now, so portal users can still rate.
pub async fn rate(
    tx: &mut TenantTx,
    ticket: Uuid,
    contact: Option<Uuid>,
    rating: i64,
    comment: Option<&str>,
) -> Result<Survey> {
    if !(MIN_RATING..=MAX_RATING).contains(&rating) {
        return Err(Error::invalid_field(
            "rating",
            "out_of_range",
            "rate from 1 (poor) to 5 (excellent)",
        ));
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(Error::invalid_field(
            "comment",
            "too_long",
            format!("at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let resolved: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT resolved_at FROM tickets WHERE id = $1 AND deleted_at IS NULL")
            .bind(ticket)
            .fetch_optional(tx.conn())
            .await?;
    match resolved {
        None => {
            return Err(Error::not_found(
                "ticket.not_found",
                format!("no ticket {ticket}"),
            ))
        }
        Some(None) => {
            return Err(Error::conflict(
                "csat.not_resolved",
                "a ticket can be rated once it is resolved",
            ))
        }
        Some(Some(_)) => {}
    }
    sqlx::query(
        "INSERT INTO csat_surveys (ticket_id, contact_id, token_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(ticket)
    .bind(contact)
    .bind(tokens::hash(&tokens::generate(
        CredentialKind::Survey,
        tx.tenant().id,
    )))
    .execute(tx.conn())
    .await?;
    let rated: Option<Survey> = sqlx::query_as(&format!(
        "UPDATE csat_surveys SET rating = $2, comment = $3, rated_at = now() \
         WHERE ticket_id = $1 AND rating IS NULL RETURNING {COLUMNS}"
    ))
    .bind(ticket)
    .bind(rating as i16)
    .bind(comment)
    .fetch_optional(tx.conn())
    .await?;
    rated.ok_or_else(|| {
        Error::conflict(
            "csat.already_rated",
            "this ticket has been rated already; each ticket is rated once",
        )
    })
}

/// The language surveys and portal mails use (the company's).
pub async fn lang(tx: &mut TenantTx) -> Result<Lang> {
    notices::tenant_lang(tx).await
}
