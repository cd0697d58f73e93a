//! Service-desk endpoints beside the ticket records: the status machine, SLA policies and
//! business calendars, the conversation, and team assignment / availability.

use super::auth::Auth;
use super::error::ApiResult;
use super::records::open;
use super::{Created, NoContent};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::business_hours::CalendarSpec;
use crm_core::context::page_size;
use crm_core::Error;
use crm_desk::{assignment, comments, sla, staff, workflow};
use crm_records::ObjectKey;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use serde_json::Value;
use uuid::Uuid;

#[derive(Tags)]
enum DeskTag {
    /// Tickets' status machine, SLA, conversation and assignment.
    ServiceDesk,
}

pub struct DeskApi(pub AppState);

/// Reads a JSON body into a typed document, reporting shape errors as 422.
fn parse_doc<T: serde::de::DeserializeOwned>(body: Value, what: &str) -> ApiResult<T> {
    serde_json::from_value(body).map_err(|e| {
        Error::invalid_field(
            what,
            "invalid",
            format!("{what} does not have the expected shape: {e}"),
        )
        .into()
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| Error::internal(format!("cannot render: {e}")).into())
}

#[derive(Object)]
pub struct PolicyOut {
    pub id: Uuid,
    pub name: String,
    /// Lower is tried first.
    pub position: i32,
    /// Matches tickets of these priorities (empty: any).
    pub priorities: Vec<String>,
    /// Matches tickets of these types (empty: any).
    pub types: Vec<String>,
    /// Matches tickets of customers of these levels (empty: any).
    pub customer_levels: Vec<String>,
    /// Business minutes to the first public reply.
    #[oai(skip_serializing_if_is_none)]
    pub first_response_minutes: Option<i32>,
    /// Business minutes to resolution.
    #[oai(skip_serializing_if_is_none)]
    pub resolution_minutes: Option<i32>,
    pub calendar_id: Uuid,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<sla::Policy> for PolicyOut {
    fn from(p: sla::Policy) -> Self {
        PolicyOut {
            id: p.id,
            name: p.name,
            position: p.position,
            priorities: p.priorities,
            types: p.types,
            customer_levels: p.customer_levels,
            first_response_minutes: p.first_response_minutes,
            resolution_minutes: p.resolution_minutes,
            calendar_id: p.calendar_id,
            enabled: p.enabled,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Object)]
pub struct PolicyRequest {
    pub name: String,
    pub position: Option<i32>,
    #[oai(default)]
    pub priorities: Vec<String>,
    #[oai(default)]
    pub types: Vec<String>,
    #[oai(default)]
    pub customer_levels: Vec<String>,
    pub first_response_minutes: Option<i32>,
    pub resolution_minutes: Option<i32>,
    /// Default: the default calendar.
    pub calendar_id: Option<Uuid>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl From<PolicyRequest> for sla::PolicyInput {
    fn from(r: PolicyRequest) -> Self {
        sla::PolicyInput {
            name: r.name,
            position: r.position,
            priorities: r.priorities,
            types: r.types,
            customer_levels: r.customer_levels,
            first_response_minutes: r.first_response_minutes,
            resolution_minutes: r.resolution_minutes,
            calendar_id: r.calendar_id,
            enabled: r.enabled.unwrap_or(true),
        }
    }
}

#[derive(Object)]
pub struct CalendarRequest {
    pub name: String,
    /// `{timezone, hours: {mon: [{start, end}], …}, holidays: [date], workdays: [date], workday_hours}`.
    pub spec: Value,
    #[oai(default)]
    pub is_default: bool,
}

#[derive(Object)]
pub struct CommentRequest {
    pub body: String,
    /// `true`: a reply the customer sees (and is mailed); `false`: an internal note.
    pub public: bool,
}

#[derive(Object)]
pub struct CommentOut {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub body: String,
    pub public: bool,
    /// `user`, `contact` or `system`.
    pub author_kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub author_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub author_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<comments::Comment> for CommentOut {
    fn from(c: comments::Comment) -> Self {
        CommentOut {
            id: c.id,
            ticket_id: c.ticket_id,
            body: c.body,
            public: c.public,
            author_kind: c.author_kind,
            author_id: c.author_id,
            author_name: c.author_name,
            created_at: c.created_at,
        }
    }
}

#[derive(Object)]
pub struct CommentPage {
    pub items: Vec<CommentOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A ticket's satisfaction survey as staff see it: `sent: false` when none was sent (the
/// ticket was never resolved, or it has no contact with an e-mail address).
#[derive(Object)]
pub struct SatisfactionOut {
    pub sent: bool,
    #[oai(skip_serializing_if_is_none)]
    pub sent_at: Option<DateTime<Utc>>,
    /// 1 (poor) to 5 (excellent), once the contact has rated.
    #[oai(skip_serializing_if_is_none)]
    pub rating: Option<i16>,
    #[oai(skip_serializing_if_is_none)]
    pub comment: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub rated_at: Option<DateTime<Utc>>,
}

#[derive(Object)]
pub struct AssignmentRequest {
    /// `manual`, `round_robin` or `least_open`.
    pub mode: String,
}

#[derive(Object)]
pub struct CandidateOut {
    pub user_id: Uuid,
    pub name: String,
    pub active: bool,
    pub available: bool,
    pub open_tickets: i64,
}

#[derive(Object)]
pub struct AssignmentOut {
    pub mode: String,
    pub members: Vec<CandidateOut>,
}

#[derive(Object)]
pub struct AvailabilityRequest {
    /// `false`: away, skipped by automatic assignment.
    pub available: bool,
}

#[OpenApi(tag = "DeskTag::ServiceDesk")]
impl DeskApi {
    /// The ticket status machine: states (with `sla`: counting|paused and `category`:
    /// open|resolved|closed), `initial`, `transitions` and ticket `types`.
    #[oai(path = "/ticket-workflow", method = "get")]
    async fn get_workflow(&self, auth: Auth) -> ApiResult<Json<Value>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let wf = workflow::get(&mut tx, &caller).await?;
        tx.commit().await?;
        to_json(&wf)
    }

    /// Replaces the status machine (states tickets are in must stay: 409).
    #[oai(path = "/ticket-workflow", method = "put")]
    async fn put_workflow(&self, auth: Auth, body: Json<Value>) -> ApiResult<Json<Value>> {
        let wf: workflow::Workflow = parse_doc(body.0, "workflow")?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let saved = workflow::save(&mut tx, &caller, &wf).await?;
        tx.commit().await?;
        to_json(&saved)
    }

    /// SLA policies, in the order they are tried.
    #[oai(path = "/sla-policies", method = "get")]
    async fn list_policies(&self, auth: Auth) -> ApiResult<Json<Vec<PolicyOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = sla::list_policies(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Add an SLA policy.
    #[oai(path = "/sla-policies", method = "post")]
    async fn create_policy(
        &self,
        auth: Auth,
        body: Json<PolicyRequest>,
    ) -> ApiResult<Created<PolicyOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = sla::create_policy(&mut tx, &caller, &body.0.into()).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(p.into())))
    }

    /// One SLA policy.
    #[oai(path = "/sla-policies/:id", method = "get")]
    async fn get_policy(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<PolicyOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = sla::get_policy(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Replace an SLA policy (tickets get the new targets when their clock next changes).
    #[oai(path = "/sla-policies/:id", method = "put")]
    async fn put_policy(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PolicyRequest>,
    ) -> ApiResult<Json<PolicyOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = sla::update_policy(&mut tx, &caller, id.0, &body.0.into()).await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Delete an SLA policy.
    #[oai(path = "/sla-policies/:id", method = "delete")]
    async fn delete_policy(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        sla::delete_policy(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Business-hours calendars.
    #[oai(path = "/business-calendars", method = "get")]
    async fn list_calendars(&self, auth: Auth) -> ApiResult<Json<Value>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = sla::list_calendars(&mut tx, &caller).await?;
        tx.commit().await?;
        to_json(&all)
    }

    /// Add a calendar (`is_default` makes it the default).
    #[oai(path = "/business-calendars", method = "post")]
    async fn create_calendar(
        &self,
        auth: Auth,
        body: Json<CalendarRequest>,
    ) -> ApiResult<Created<Value>> {
        let spec: CalendarSpec = parse_doc(body.0.spec, "spec")?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let c =
            sla::create_calendar(&mut tx, &caller, &body.0.name, &spec, body.0.is_default).await?;
        tx.commit().await?;
        Ok(Created::Created(to_json(&c)?))
    }

    /// One calendar.
    #[oai(path = "/business-calendars/:id", method = "get")]
    async fn get_calendar(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<Value>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let c = sla::get_calendar(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        to_json(&c)
    }

    /// Replace a calendar.
    #[oai(path = "/business-calendars/:id", method = "put")]
    async fn put_calendar(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<CalendarRequest>,
    ) -> ApiResult<Json<Value>> {
        let spec: CalendarSpec = parse_doc(body.0.spec, "spec")?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let c = sla::update_calendar(
            &mut tx,
            &caller,
            id.0,
            &body.0.name,
            &spec,
            body.0.is_default,
        )
        .await?;
        tx.commit().await?;
        to_json(&c)
    }

    /// Delete a calendar no policy uses (never the default).
    #[oai(path = "/business-calendars/:id", method = "delete")]
    async fn delete_calendar(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        sla::delete_calendar(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Reply publicly (mailed to the contact; the first one stops the first-response clock)
    /// or add an internal note (`public: false`).
    #[oai(path = "/tickets/:id/comments", method = "post")]
    async fn add_comment(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<CommentRequest>,
    ) -> ApiResult<Created<CommentOut>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let (text, public) = (&body.0.body, body.0.public);
        let c = staff::add_comment(&mut tx, &rc.access(), id.0, text, public).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(c.into())))
    }

    /// The conversation, oldest first: replies and internal notes.
    #[oai(path = "/tickets/:id/comments", method = "get")]
    async fn list_comments(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<CommentPage>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let (cursor, limit) = (cursor.0.as_deref(), page_size(limit.0));
        let page = staff::list_comments(&mut tx, &rc.access(), id.0, cursor, limit).await?;
        tx.commit().await?;
        Ok(Json(CommentPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// The ticket's satisfaction survey and its rating, if one was sent.
    #[oai(path = "/tickets/:id/satisfaction", method = "get")]
    async fn get_satisfaction(
        &self,
        auth: Auth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<SatisfactionOut>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Tickets).await?;
        let survey = staff::satisfaction(&mut tx, &rc.access(), id.0).await?;
        tx.commit().await?;
        Ok(Json(match survey {
            None => SatisfactionOut {
                sent: false,
                sent_at: None,
                rating: None,
                comment: None,
                rated_at: None,
            },
            Some(s) => SatisfactionOut {
                sent: true,
                sent_at: Some(s.sent_at),
                rating: s.rating,
                comment: s.comment,
                rated_at: s.rated_at,
            },
        }))
    }

    /// A team's assignment mode and its members' availability and open tickets.
    #[oai(path = "/teams/:id/assignment", method = "get")]
    async fn get_assignment(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<AssignmentOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (mode, members) = assignment::overview(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(AssignmentOut {
            mode,
            members: members
                .into_iter()
                .map(|m| CandidateOut {
                    user_id: m.user_id,
                    name: m.name,
                    active: m.active,
                    available: m.available,
                    open_tickets: m.open_tickets,
                })
                .collect(),
        }))
    }

    /// Sets how a team's new tickets are assigned: `manual`, `round_robin`, `least_open`.
    #[oai(path = "/teams/:id/assignment", method = "put")]
    async fn put_assignment(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<AssignmentRequest>,
    ) -> ApiResult<Json<AssignmentOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        assignment::set_mode(&mut tx, &caller, id.0, &body.0.mode).await?;
        tx.commit().await?;
        self.get_assignment(auth, id).await
    }

    /// Marks a user available or away for automatic assignment (the user themself, or
    /// `users:manage`).
    #[oai(path = "/users/:id/availability", method = "put")]
    async fn put_availability(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<AvailabilityRequest>,
    ) -> ApiResult<NoContent> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        assignment::set_available(&mut tx, &caller, id.0, body.0.available).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
