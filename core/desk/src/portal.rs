//! The customer portal: contacts (never staff users) sign in with a single-use link mailed to
//! them and then hold a session that sees their customer's tickets only — with public replies,
//! never internal notes — and may open tickets, reply and rate resolved ones. Also the survey
//! link that rates one ticket without signing in.

use super::comments::{self, Author, Comment};
use super::csat::{self, Survey};
use super::notices;
use super::workflow::{self, Workflow};
use chrono::{DateTime, Duration, Utc};
use crm_core::audit::Actor;
use crm_core::context::{cut_page, Page, RequestMeta};
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::domain::Email;
use crm_core::error::{Error, FieldError, Result};
use crm_core::identity::tokens::{self, CredentialKind};
use crm_core::mail::{self, Lang, OutgoingMail};
use crm_records::engine::Access;
use crm_records::service::{self, CreateOptions};
use crm_records::{ObjectKey, ObjectSchema};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::FromRow;
use uuid::Uuid;

/// How long a mailed sign-in link stays valid.
pub const LINK_TTL_MINUTES: i64 = 30;

/// Most contacts one link request mails (one address may belong to contacts of several
/// customers).
pub const MAX_LINKS_PER_REQUEST: i64 = 5;

/// What a contact may set on a new ticket; everything else is the service team's.
pub const TICKET_FIELDS: &[&str] = &["subject", "description", "type", "priority", "custom"];

/// 401 for a link that cannot open a session.
pub fn invalid_link() -> Error {
    Error::unauthenticated(
        "portal.invalid_link",
        "this sign-in link is unknown, expired or already used; ask for a new one at POST /portal/api/login-link",
    )
}

/// 401 for a survey token that rates nothing.
pub fn invalid_survey() -> Error {
    Error::unauthenticated(
        "survey.invalid_token",
        "this survey link is unknown; open the link from the survey mail you received",
    )
}

fn ticket_not_found(id: Uuid) -> Error {
    Error::not_found(
        "ticket.not_found",
        format!("no ticket {id}; list your tickets with GET /portal/api/tickets"),
    )
}

/// `a_b%` as a LIKE pattern that matches only itself.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Mails a sign-in link to each live contact (of a live customer) with this address, at most
/// [`MAX_LINKS_PER_REQUEST`]; returns how many were mailed. Callers answer the same whatever
/// it returns, so the portal never reveals who is a contact.
pub async fn send_links(tx: &mut TenantTx, email: &Email, company: &str) -> Result<usize> {
    // ILIKE on the escaped address: case-insensitive, and served by the e-mail trigram index.
    let contacts: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT c.id, c.email FROM contacts c \
         JOIN customers cu ON cu.id = c.customer_id AND cu.deleted_at IS NULL \
         WHERE c.deleted_at IS NULL AND c.email ILIKE $1 ORDER BY c.id LIMIT $2",
    )
    .bind(like_literal(email.as_str()))
    .bind(MAX_LINKS_PER_REQUEST)
    .fetch_all(tx.conn())
    .await?;
    if contacts.is_empty() {
        return Ok(0);
    }
    let lang = notices::tenant_lang(tx).await?;
    for (contact, address) in &contacts {
        let token = tokens::generate(CredentialKind::PortalLink, tx.tenant().id);
        let hash = tokens::hash(&token);
        sqlx::query(
            "INSERT INTO portal_links (token_hash, contact_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(mins => $3))",
        )
        .bind(&hash)
        .bind(contact)
        .bind(LINK_TTL_MINUTES as i32)
        .execute(tx.conn())
        .await?;
        let link = format!("{{{{base_url}}}}/portal/login?token={token}");
        let (subject, text) = notices::portal_link(lang, company, &link);
        mail::enqueue(
            tx,
            &OutgoingMail {
                to: vec![address.clone()],
                subject,
                text,
                purpose: "portal.login_link".into(),
            },
            format!("mail:portal.login_link:{hash}"),
            Some(*contact),
        )
        .await?;
    }
    Ok(contacts.len())
}

/// The contact behind a portal session, and the customer whose tickets it sees.
#[derive(Debug, Clone)]
pub struct PortalPrincipal {
    pub contact_id: Uuid,
    pub contact_name: String,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// SHA-256 of the session token (what logout deletes).
    pub session_hash: String,
    pub expires_at: DateTime<Utc>,
}

impl PortalPrincipal {
    /// The actor of this contact's changes (history, outbox events).
    pub fn actor(&self, meta: &RequestMeta) -> Actor {
        Actor {
            kind: crm_core::audit::ActorKind::Contact,
            id: Some(self.contact_id),
            name: Some(self.contact_name.clone()),
            meta: meta.clone(),
        }
    }
}

/// A freshly opened portal session; the token is shown to the client once.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub principal: PortalPrincipal,
}

/// The contact's name, its customer and the customer's name, when both are live.
async fn live_contact(tx: &mut TenantTx, contact: Uuid) -> Result<Option<(String, Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT c.name, cu.id, cu.name FROM contacts c \
         JOIN customers cu ON cu.id = c.customer_id AND cu.deleted_at IS NULL \
         WHERE c.id = $1 AND c.deleted_at IS NULL",
    )
    .bind(contact)
    .fetch_optional(tx.conn())
    .await?)
}

/// Exchanges a sign-in link (by its hash) for a session of `ttl`. The link is used up
/// atomically, so two exchanges of one link never both succeed; the contact's other unused
/// links die with it.
pub async fn open_session(tx: &mut TenantTx, link_hash: &str, ttl: Duration) -> Result<NewSession> {
    let contact: Option<Uuid> = sqlx::query_scalar(
        "UPDATE portal_links SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING contact_id",
    )
    .bind(link_hash)
    .fetch_optional(tx.conn())
    .await?;
    let contact = contact.ok_or_else(invalid_link)?;
    let (contact_name, customer_id, customer_name) =
        live_contact(tx, contact).await?.ok_or_else(invalid_link)?;
    sqlx::query(
        "UPDATE portal_links SET used_at = now() WHERE contact_id = $1 AND used_at IS NULL",
    )
    .bind(contact)
    .execute(tx.conn())
    .await?;
    // Housekeeping for this contact only: spent links and dead sessions go.
    sqlx::query(
        "DELETE FROM portal_links WHERE contact_id = $1 AND expires_at < now() - interval '1 day'",
    )
    .bind(contact)
    .execute(tx.conn())
    .await?;
    sqlx::query("DELETE FROM portal_sessions WHERE contact_id = $1 AND expires_at < now()")
        .bind(contact)
        .execute(tx.conn())
        .await?;
    let token = tokens::generate(CredentialKind::PortalSession, tx.tenant().id);
    let session_hash = tokens::hash(&token);
    let expires_at = Utc::now() + ttl;
    sqlx::query(
        "INSERT INTO portal_sessions (token_hash, contact_id, customer_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&session_hash)
    .bind(contact)
    .bind(customer_id)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    Ok(NewSession {
        token,
        principal: PortalPrincipal {
            contact_id: contact,
            contact_name,
            customer_id,
            customer_name,
            session_hash,
            expires_at,
        },
    })
}

/// Resolves a session token hash; extends the expiry once half of `ttl` has passed. `None`
/// for an unknown or expired session, a deleted contact or customer, or a contact moved to
/// another customer since signing in.
pub async fn authenticate(
    tx: &mut TenantTx,
    session_hash: &str,
    ttl: Duration,
) -> Result<Option<PortalPrincipal>> {
    let row: Option<(Uuid, String, Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.contact_id, c.name, s.customer_id, cu.name, s.expires_at \
         FROM portal_sessions s \
         JOIN contacts c ON c.id = s.contact_id AND c.deleted_at IS NULL \
              AND c.customer_id = s.customer_id \
         JOIN customers cu ON cu.id = s.customer_id AND cu.deleted_at IS NULL \
         WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(session_hash)
    .fetch_optional(tx.conn())
    .await?;
    let Some((contact_id, contact_name, customer_id, customer_name, mut expires_at)) = row else {
        return Ok(None);
    };
    if expires_at - Utc::now() < ttl / 2 {
        expires_at = Utc::now() + ttl;
        sqlx::query(
            "UPDATE portal_sessions SET expires_at = $2, last_used_at = now() WHERE token_hash = $1",
        )
        .bind(session_hash)
        .bind(expires_at)
        .execute(tx.conn())
        .await?;
    }
    Ok(Some(PortalPrincipal {
        contact_id,
        contact_name,
        customer_id,
        customer_name,
        session_hash: session_hash.to_owned(),
        expires_at,
    }))
}

/// Ends a session (logout).
pub async fn end_session(tx: &mut TenantTx, session_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
        .bind(session_hash)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A ticket as its customer sees it: no assignee, team, tags or SLA internals.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct PortalTicket {
    pub id: Uuid,
    pub number: String,
    pub subject: String,
    pub description: Option<String>,
    pub status: String,
    /// The status in the company's language (`处理中`, `Open`).
    #[sqlx(skip)]
    pub status_name: String,
    pub priority: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub ticket_type: Option<String>,
    pub channel: Option<String>,
    /// The contact who opened it (any contact of the customer may see it).
    pub contact_id: Option<Uuid>,
    pub contact_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// 1-5, once rated.
    pub rating: Option<i16>,
}

const TICKET_SELECT: &str = "SELECT t.id, t.number, t.subject, t.description, t.status, \
    t.priority, t.type, t.channel, t.contact_id, ct.name AS contact_name, t.created_at, \
    t.updated_at, t.resolved_at, t.closed_at, s.rating FROM tickets t \
    LEFT JOIN contacts ct ON ct.id = t.contact_id \
    LEFT JOIN csat_surveys s ON s.ticket_id = t.id";

/// A state's name in `lang`: its label in that language, else its own name.
fn status_name(wf: &Workflow, lang: Lang, status: &str) -> String {
    let Some(state) = wf.state(status) else {
        return status.to_owned();
    };
    match lang {
        Lang::En => state
            .labels
            .get("en")
            .cloned()
            .unwrap_or_else(|| state.name.clone()),
        Lang::ZhCn => state.name.clone(),
    }
}

async fn name_statuses(tx: &mut TenantTx, tickets: &mut [PortalTicket]) -> Result<()> {
    let wf = workflow::load(tx).await?;
    let lang = notices::tenant_lang(tx).await?;
    for t in tickets {
        t.status_name = status_name(&wf, lang, &t.status);
    }
    Ok(())
}

/// Encodes the keyset position of a ticket in the newest-first list.
fn ticket_cursor(t: &PortalTicket) -> String {
    format!("{}~{}", t.created_at.timestamp_micros(), t.id)
}

fn parse_ticket_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid)> {
    let bad = || {
        Error::bad_request(
            "request.invalid_cursor",
            "cursor is not one this API returned; start again without it",
        )
    };
    let (micros, id) = raw.split_once('~').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The customer's live tickets, newest first, optionally in one status.
pub async fn list_tickets(
    tx: &mut TenantTx,
    customer: Uuid,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<PortalTicket>> {
    if let Some(status) = status {
        let wf = workflow::load(tx).await?;
        if wf.state(status).is_none() {
            return Err(Error::invalid_field(
                "status",
                "unknown_status",
                format!("use one of: {}", wf.keys().join(", ")),
            ));
        }
    }
    let after = cursor.map(parse_ticket_cursor).transpose()?;
    let mut items: Vec<PortalTicket> = sqlx::query_as(&format!(
        "{TICKET_SELECT} WHERE t.customer_id = $1 AND t.deleted_at IS NULL \
           AND ($2::text IS NULL OR t.status = $2) \
           AND ($3::timestamptz IS NULL OR (t.created_at, t.id) < ($3, $4)) \
         ORDER BY t.created_at DESC, t.id DESC LIMIT $5"
    ))
    .bind(customer)
    .bind(status)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, ticket_cursor);
    name_statuses(tx, &mut items).await?;
    Ok(Page { items, next_cursor })
}

/// One live ticket of the customer; 404 for any other (another customer's is not revealed).
pub async fn get_ticket(tx: &mut TenantTx, customer: Uuid, id: Uuid) -> Result<PortalTicket> {
    let ticket: Option<PortalTicket> = sqlx::query_as(&format!(
        "{TICKET_SELECT} WHERE t.id = $1 AND t.customer_id = $2 AND t.deleted_at IS NULL"
    ))
    .bind(id)
    .bind(customer)
    .fetch_optional(tx.conn())
    .await?;
    let mut ticket = ticket.ok_or_else(|| ticket_not_found(id))?;
    name_statuses(tx, std::slice::from_mut(&mut ticket)).await?;
    Ok(ticket)
}

/// Refuses any key but [`TICKET_FIELDS`], naming each: status, assignee, team, tags,
/// channel, customer and contact are the service team's (or fixed by the session). Inside
/// `custom`, only fields an admin marked `portal_editable` are accepted.
fn portal_ticket_body(body: &Value, who: &PortalPrincipal, schema: &ObjectSchema) -> Result<Value> {
    let Some(obj) = body.as_object() else {
        return Err(Error::bad_request(
            "request.invalid",
            "the body must be a JSON object",
        ));
    };
    let mut refused: Vec<FieldError> = obj
        .keys()
        .filter(|k| !TICKET_FIELDS.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.clone(),
                "not_allowed",
                format!(
                    "'{k}' is set by the service team; a ticket from the portal takes only: {}",
                    TICKET_FIELDS.join(", ")
                ),
            )
        })
        .collect();
    if let Some(custom) = obj.get("custom").and_then(Value::as_object) {
        let open: Vec<&str> = schema
            .custom
            .iter()
            .filter(|f| f.portal_editable)
            .map(|f| f.key.as_str())
            .collect();
        refused.extend(
            custom
                .keys()
                .filter(|k| !open.contains(&k.as_str()))
                .map(|k| {
                    FieldError::new(
                        format!("custom.{k}"),
                        "not_allowed",
                        format!(
                            "'{k}' is filled in by the service team; fields customers may fill in: {}",
                            if open.is_empty() { "none".to_owned() } else { open.join(", ") }
                        ),
                    )
                }),
        );
    }
    if !refused.is_empty() {
        return Err(Error::invalid(refused));
    }
    let mut out: Map<String, Value> = obj.clone();
    out.insert("channel".into(), Value::String("portal".into()));
    out.insert(
        "customer_id".into(),
        Value::String(who.customer_id.to_string()),
    );
    out.insert(
        "contact_id".into(),
        Value::String(who.contact_id.to_string()),
    );
    Ok(Value::Object(out))
}

/// Opens a ticket for the contact through the record engine (numbering, SLA, assignment and
/// history all as for staff), on channel `portal`, for the session's customer and contact.
pub async fn create_ticket(
    tx: &mut TenantTx,
    who: &PortalPrincipal,
    body: &Value,
    master: Option<&MasterKey>,
    actor: &Actor,
) -> Result<PortalTicket> {
    let schema = ObjectSchema::load(tx, ObjectKey::Tickets).await?;
    let body = portal_ticket_body(body, who, &schema)?;
    let key = schema.data_key(tx, master).await?;
    let access = Access::portal(actor, key.as_ref());
    let record = service::create(tx, &schema, &access, &body, CreateOptions::default()).await?;
    let id = record["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::internal("created ticket without an id"))?;
    get_ticket(tx, who.customer_id, id).await
}

/// Checks the ticket is a live one of the customer (404 otherwise).
async fn ensure_of_customer(tx: &mut TenantTx, customer: Uuid, id: Uuid) -> Result<()> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tickets WHERE id = $1 AND customer_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(customer)
    .fetch_optional(tx.conn())
    .await?;
    found.map(|_| ()).ok_or_else(|| ticket_not_found(id))
}

/// The public conversation of one of the customer's tickets, oldest first.
pub async fn list_comments(
    tx: &mut TenantTx,
    who: &PortalPrincipal,
    ticket: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Comment>> {
    ensure_of_customer(tx, who.customer_id, ticket).await?;
    comments::list(tx, ticket, true, cursor, limit).await
}

/// The contact replies on one of the customer's tickets (always public).
pub async fn add_comment(
    tx: &mut TenantTx,
    who: &PortalPrincipal,
    ticket: Uuid,
    body: &str,
    actor: &Actor,
) -> Result<Comment> {
    ensure_of_customer(tx, who.customer_id, ticket).await?;
    comments::add(
        tx,
        ticket,
        Author::Contact(who.contact_id),
        body,
        true,
        actor,
    )
    .await
}

/// The contact rates one of the customer's resolved tickets (once per ticket).
pub async fn rate(
    tx: &mut TenantTx,
    who: &PortalPrincipal,
    ticket: Uuid,
    rating: i64,
    comment: Option<&str>,
) -> Result<Survey> {
    ensure_of_customer(tx, who.customer_id, ticket).await?;
    csat::rate(tx, ticket, Some(who.contact_id), rating, comment).await
}

/// What a survey link shows before it is answered.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct SurveyView {
    pub ticket_id: Uuid,
    pub number: String,
    pub subject: String,
    pub rating: Option<i16>,
    pub comment: Option<String>,
    pub rated_at: Option<DateTime<Utc>>,
}

/// The survey a token opens (of a live ticket).
pub async fn survey_of_token(tx: &mut TenantTx, token_hash: &str) -> Result<SurveyView> {
    let view: Option<SurveyView> = sqlx::query_as(
        "SELECT t.id AS ticket_id, t.number, t.subject, s.rating, s.comment, s.rated_at \
         FROM csat_surveys s JOIN tickets t ON t.id = s.ticket_id AND t.deleted_at IS NULL \
         WHERE s.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(tx.conn())
    .await?;
    view.ok_or_else(invalid_survey)
}

/// Rates the ticket a survey token is for (a live one).
pub async fn rate_by_token(
    tx: &mut TenantTx,
    token_hash: &str,
    rating: i64,
    comment: Option<&str>,
) -> Result<Survey> {
    let survey = survey_of_token(tx, token_hash).await?;
    csat::rate(tx, survey.ticket_id, None, rating, comment).await
}

/// Ends every portal session and spends every unused sign-in link of the tenant (after a
/// restore brought back sessions and links that had ended or been used since the backup).
pub async fn end_all_sessions(tx: &mut TenantTx) -> Result<u64> {
    let links = sqlx::query("UPDATE portal_links SET used_at = now() WHERE used_at IS NULL")
        .execute(tx.conn())
        .await?;
    let sessions = sqlx::query("DELETE FROM portal_sessions")
        .execute(tx.conn())
        .await?;
    Ok(links.rows_affected() + sessions.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_literal_escapes_wildcards() {
        assert_eq!(like_literal("wang_lei%@a\\b.cn"), "wang\\_lei\\%@a\\\\b.cn");
    }

    #[test]
    fn ticket_cursor_round_trips_and_rejects_garbage() {
        let at = DateTime::from_timestamp_micros(1_780_000_000_123_456).expect("time");
        let id = Uuid::now_v7();
        let (back_at, back_id) =
            parse_ticket_cursor(&format!("{}~{id}", at.timestamp_micros())).expect("parses");
        assert_eq!((back_at, back_id), (at, id));
        for bad in ["", "12", "x~y", "1~not-a-uuid", "~"] {
            assert!(parse_ticket_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn portal_bodies_take_only_customer_fields() {
        let who = PortalPrincipal {
            contact_id: Uuid::now_v7(),
            contact_name: "王磊".into(),
            customer_id: Uuid::now_v7(),
            customer_name: "上海蓝天贸易".into(),
            session_hash: String::new(),
            expires_at: Utc::now(),
        };
        let schema = ObjectSchema {
            object: ObjectKey::Tickets,
            def: None,
            custom: Vec::new(),
            feeds: Vec::new(),
            referrers: Vec::new(),
            record_types: Vec::new(),
            city_column: false,
        };
        let ok = portal_ticket_body(
            &serde_json::json!({"subject": "打印机卡纸", "priority": "high"}),
            &who,
            &schema,
        )
        .expect("accepted");
        assert_eq!(ok["channel"], "portal");
        assert_eq!(ok["customer_id"], who.customer_id.to_string());
        assert_eq!(ok["contact_id"], who.contact_id.to_string());
        let Err(Error::Invalid { fields, .. }) = portal_ticket_body(
            &serde_json::json!({"subject": "x", "status": "closed", "assignee_id": null, "custom": {"cost": 1}}),
            &who,
            &schema,
        ) else {
            panic!("refused");
        };
        let mut named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        named.sort_unstable();
        assert_eq!(named, ["assignee_id", "custom.cost", "status"]);
    }
}
