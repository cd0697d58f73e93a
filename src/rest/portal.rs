//! The customer portal, `/portal/api` (its own OpenAPI service, apart from the staff
//! `/api/v1`): contacts sign in with a mailed single-use link, then open tickets, follow the
//! public conversation, reply and rate. Portal credentials (`tcp_…`) open these routes only,
//! and staff credentials never open them. The survey routes rate one ticket by the `tcv_…`
//! token of the survey mail, without signing in.

use super::auth::{request_meta, tenant_suspended};
use super::error::{ApiError, ApiResult};
use super::{Created, NoContent};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::context::{page_size, RequestMeta};
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::identity::tokens::{self, CredentialKind, ParsedToken};
use crm_core::Error;
use crm_desk::comments::Comment;
use crm_desk::csat::Survey;
use crm_desk::portal::{self, PortalPrincipal, PortalTicket};
use crm_desk::portal_links;
use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi,
    OpenApiService, Tags,
};
use serde_json::Value;
use uuid::Uuid;

#[derive(Tags)]
enum PortalTag {
    /// Signing in with a mailed link, and the session.
    SignIn,
    /// The customer's tickets, their public conversation and ratings.
    Tickets,
    /// Rating a resolved ticket from the survey mail, without signing in.
    Survey,
}

/// The portal API.
pub struct PortalApi(pub AppState);

/// The OpenAPI service mounted at /portal/api.
pub fn service(state: AppState) -> OpenApiService<PortalApi, ()> {
    OpenApiService::new(
        PortalApi(state),
        "TC CRM customer portal",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "The customer portal: a company's customers (its contacts) sign in with a single-use \
         link mailed by POST /login-link, exchange it at POST /session for a portal token, \
         and send it as `Authorization: Bearer tcp_…`. Staff credentials are not accepted \
         here, and portal tokens are not accepted on /api/v1. Errors are RFC 9457 \
         application/problem+json with a stable `code`.",
    )
    .server("/portal/api")
}

/// A portal session, as `Authorization: Bearer tcp_…`.
pub struct PortalAuth(pub PortalCtx);

/// An authenticated portal request: the tenant, the contact and the request's facts.
pub struct PortalCtx {
    pub tenant: TenantCtx,
    pub principal: PortalPrincipal,
    pub meta: RequestMeta,
}

fn invalid_token() -> Error {
    Error::unauthenticated(
        "portal.invalid_token",
        "send 'Authorization: Bearer tcp_…' with a portal token from POST /portal/api/session; \
         it is unknown, expired or ended, or a staff credential — staff credentials are not \
         accepted on the portal; sign in with a link (POST /portal/api/login-link)",
    )
}

impl<'a> ApiExtractor<'a> for PortalAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            "PortalAuth",
            MetaSecurityScheme {
                ty: "http",
                description: Some("A portal session token (`tcp_…`) from POST /session."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("tcp_…"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["PortalAuth"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| ApiError(Error::internal("application state missing")))?;
        Ok(PortalAuth(resolve(state, req).await?))
    }
}

/// The bearer token of a request, if it sent one.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.header(header::AUTHORIZATION)?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A live tenant, for a token of `kind` (refusing other kinds with `refuse`).
async fn tenant_of(
    state: &AppState,
    token: &str,
    kind: CredentialKind,
    refuse: fn() -> Error,
) -> ApiResult<(TenantCtx, ParsedToken)> {
    let parsed = tokens::parse(token)
        .filter(|p| p.kind == kind)
        .ok_or_else(refuse)?;
    let tenant = state
        .tenants
        .by_id(parsed.tenant_id)
        .await?
        .ok_or_else(refuse)?;
    if !tenant.is_active() {
        return Err(tenant_suspended().into());
    }
    Ok((tenant.ctx()?, parsed))
}

async fn resolve(state: &AppState, req: &Request) -> ApiResult<PortalCtx> {
    let token = bearer(req).ok_or_else(invalid_token)?;
    let (tenant, parsed) =
        tenant_of(state, token, CredentialKind::PortalSession, invalid_token).await?;
    let mut tx = state.db.tenant_tx(&tenant).await?;
    let principal = portal::authenticate(&mut tx, &parsed.hash, state.session_ttl())
        .await?
        .ok_or_else(invalid_token)?;
    tx.commit().await?;
    Ok(PortalCtx {
        tenant,
        principal,
        meta: request_meta(req, state),
    })
}

/// 202 with a body that says the same whoever asked.
#[derive(ApiResponse)]
pub enum Accepted {
    #[oai(status = 202)]
    Accepted(Json<LinkRequested>),
}

#[derive(Object)]
pub struct LinkRequest {
    /// The company's short name (slug), as in its portal address.
    pub tenant: String,
    pub email: String,
}

#[derive(Object)]
pub struct LinkRequested {
    /// Always `sent_if_known`: a link was mailed if the address belongs to a customer
    /// contact of the company.
    pub status: String,
}

#[derive(Object)]
pub struct SessionRequest {
    /// The `tcl_…` token from the link in the mail.
    pub token: String,
}

#[derive(Object)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

#[derive(Object)]
pub struct SessionOut {
    /// The portal token (`tcp_…`), shown once: send it as `Authorization: Bearer`.
    pub token: String,
    /// Slides forward while the session is used.
    pub expires_at: DateTime<Utc>,
    pub contact: Named,
    pub customer: Named,
    pub tenant: PortalTenant,
}

/// The company the portal belongs to (its slug is what `login-link` asks for).
#[derive(Object)]
pub struct PortalTenant {
    pub slug: String,
}

#[derive(Object)]
pub struct MeOut {
    pub expires_at: DateTime<Utc>,
    pub contact: Named,
    pub customer: Named,
    pub tenant: PortalTenant,
}

#[derive(Object)]
pub struct TicketOut {
    pub id: Uuid,
    pub number: String,
    pub subject: String,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The status key (`new`, `open`, `resolved`, …).
    pub status: String,
    /// The status in the company's language.
    pub status_name: String,
    pub priority: String,
    #[oai(rename = "type", skip_serializing_if_is_none)]
    pub ticket_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub channel: Option<String>,
    /// The contact who opened it.
    #[oai(skip_serializing_if_is_none)]
    pub contact_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub contact_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub closed_at: Option<DateTime<Utc>>,
    /// 1-5, once rated.
    #[oai(skip_serializing_if_is_none)]
    pub rating: Option<i16>,
}

impl From<PortalTicket> for TicketOut {
    fn from(t: PortalTicket) -> Self {
        TicketOut {
            id: t.id,
            number: t.number,
            subject: t.subject,
            description: t.description,
            status: t.status,
            status_name: t.status_name,
            priority: t.priority,
            ticket_type: t.ticket_type,
            channel: t.channel,
            contact_id: t.contact_id,
            contact_name: t.contact_name,
            created_at: t.created_at,
            updated_at: t.updated_at,
            resolved_at: t.resolved_at,
            closed_at: t.closed_at,
            rating: t.rating,
        }
    }
}

#[derive(Object)]
pub struct TicketPage {
    pub items: Vec<TicketOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct CommentOut {
    pub id: Uuid,
    pub body: String,
    /// `staff` (the service team) or `contact` (someone of the customer).
    pub author_kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub author_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Comment> for CommentOut {
    fn from(c: Comment) -> Self {
        CommentOut {
            id: c.id,
            body: c.body,
            author_kind: if c.author_kind == "contact" {
                "contact".into()
            } else {
                "staff".into()
            },
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

#[derive(Object)]
pub struct TicketDetail {
    #[oai(flatten)]
    pub ticket: TicketOut,
    /// The public conversation, oldest first (never internal notes).
    pub comments: Vec<CommentOut>,
    /// More comments: GET /tickets/{id}/comments?cursor=….
    #[oai(skip_serializing_if_is_none)]
    pub comments_next_cursor: Option<String>,
}

#[derive(Object)]
pub struct CommentRequest {
    pub body: String,
}

#[derive(Object)]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    pub rating: i64,
    /// At most 2000 characters.
    pub comment: Option<String>,
}

#[derive(Object)]
pub struct SurveyRatingRequest {
    /// The `tcv_…` token from the survey link.
    pub token: String,
    /// 1 (poor) to 5 (excellent).
    pub rating: i64,
    /// At most 2000 characters.
    pub comment: Option<String>,
}

#[derive(Object)]
pub struct RatingOut {
    pub ticket_id: Uuid,
    pub rating: i16,
    #[oai(skip_serializing_if_is_none)]
    pub comment: Option<String>,
    pub rated_at: DateTime<Utc>,
}

impl TryFrom<Survey> for RatingOut {
    type Error = ApiError;

    fn try_from(s: Survey) -> ApiResult<Self> {
        match (s.rating, s.rated_at) {
            (Some(rating), Some(rated_at)) => Ok(RatingOut {
                ticket_id: s.ticket_id,
                rating,
                comment: s.comment,
                rated_at,
            }),
            _ => Err(Error::internal("a survey just rated has no rating").into()),
        }
    }
}

#[derive(Object)]
pub struct SurveyTicket {
    pub number: String,
    pub subject: String,
}

#[derive(Object)]
pub struct SurveyOut {
    pub ticket: SurveyTicket,
    /// Whether the ticket was rated already (each ticket is rated once).
    pub rated: bool,
    #[oai(skip_serializing_if_is_none)]
    pub rating: Option<i16>,
    #[oai(skip_serializing_if_is_none)]
    pub comment: Option<String>,
}

/// A ticket's public conversation, first page.
const DETAIL_COMMENTS: i64 = 100;

impl PortalApi {
    async fn tx(&self, ctx: &PortalCtx) -> ApiResult<TenantTx> {
        Ok(self.0.db.tenant_tx(&ctx.tenant).await?)
    }

    /// Mails sign-in links unless the address or the client is throttled.
    async fn send_links(&self, req: &Request, body: &LinkRequest) -> ApiResult<()> {
        let meta = request_meta(req, &self.0);
        Ok(portal_links::request(&self.0.db, &body.tenant, &body.email, &meta).await?)
    }
}

#[OpenApi]
impl PortalApi {
    /// Ask for a sign-in link: each contact of the company with this e-mail gets a single-use
    /// link, valid 30 minutes. The answer is always 202, whether or not the address (or the
    /// company) is known; repeated requests are throttled silently.
    #[oai(path = "/login-link", method = "post", tag = "PortalTag::SignIn")]
    async fn login_link(&self, req: &Request, body: Json<LinkRequest>) -> ApiResult<Accepted> {
        // Even a failure answers 202: an error that only known addresses could meet would
        // tell who is a contact.
        if let Err(e) = self.send_links(req, &body.0).await {
            tracing::error!(error = %e.0, "portal link request failed; answered 202 all the same");
        }
        Ok(Accepted::Accepted(Json(LinkRequested {
            status: "sent_if_known".into(),
        })))
    }

    /// Exchange the link's token for a portal session (the link works once: 401
    /// `portal.invalid_link` when unknown, expired or used).
    #[oai(path = "/session", method = "post", tag = "PortalTag::SignIn")]
    async fn open_session(&self, body: Json<SessionRequest>) -> ApiResult<Created<SessionOut>> {
        let (tenant, parsed) = tenant_of(
            &self.0,
            body.0.token.trim(),
            CredentialKind::PortalLink,
            portal::invalid_link,
        )
        .await?;
        let mut tx = self.0.db.tenant_tx(&tenant).await?;
        let session = portal::open_session(&mut tx, &parsed.hash, self.0.session_ttl()).await?;
        tx.commit().await?;
        let p = session.principal;
        Ok(Created::Created(Json(SessionOut {
            tenant: PortalTenant {
                slug: tenant.slug.clone(),
            },
            token: session.token,
            expires_at: p.expires_at,
            contact: Named {
                id: p.contact_id,
                name: p.contact_name,
            },
            customer: Named {
                id: p.customer_id,
                name: p.customer_name,
            },
        })))
    }

    /// Who is signed in, and until when.
    #[oai(path = "/me", method = "get", tag = "PortalTag::SignIn")]
    async fn me(&self, auth: PortalAuth) -> ApiResult<Json<MeOut>> {
        let tenant = PortalTenant {
            slug: auth.0.tenant.slug.clone(),
        };
        let p = auth.0.principal;
        Ok(Json(MeOut {
            tenant,
            expires_at: p.expires_at,
            contact: Named {
                id: p.contact_id,
                name: p.contact_name,
            },
            customer: Named {
                id: p.customer_id,
                name: p.customer_name,
            },
        }))
    }

    /// Sign out: ends this portal session.
    #[oai(path = "/logout", method = "post", tag = "PortalTag::SignIn")]
    async fn logout(&self, auth: PortalAuth) -> ApiResult<NoContent> {
        let ctx = auth.0;
        let mut tx = self.tx(&ctx).await?;
        portal::end_session(&mut tx, &ctx.principal.session_hash).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The customer's tickets (opened by any of its contacts), newest first; `status`
    /// filters by a status key.
    #[oai(path = "/tickets", method = "get", tag = "PortalTag::Tickets")]
    async fn list_tickets(
        &self,
        auth: PortalAuth,
        status: Query<Option<String>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<TicketPage>> {
        let ctx = auth.0;
        let mut tx = self.tx(&ctx).await?;
        let page = portal::list_tickets(
            &mut tx,
            ctx.principal.customer_id,
            status.0.as_deref().map(str::trim).filter(|s| !s.is_empty()),
            cursor.0.as_deref(),
            page_size(limit.0),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(TicketPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Open a ticket: `{subject, description?, type?, priority?, custom?}`. Anything else
    /// (status, assignee, team, tags, channel, customer, contact) is 422 `not_allowed`:
    /// the ticket comes in on channel `portal`, for this contact and its customer.
    #[oai(path = "/tickets", method = "post", tag = "PortalTag::Tickets")]
    async fn create_ticket(
        &self,
        auth: PortalAuth,
        body: Json<Value>,
    ) -> ApiResult<Created<TicketOut>> {
        let ctx = auth.0;
        let actor = ctx.principal.actor(&ctx.meta);
        let mut tx = self.tx(&ctx).await?;
        let ticket = portal::create_ticket(
            &mut tx,
            &ctx.principal,
            &body.0,
            self.0.master_key.as_deref(),
            &actor,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(ticket.into())))
    }

    /// One of the customer's tickets with its public conversation (404 for any other).
    #[oai(path = "/tickets/:id", method = "get", tag = "PortalTag::Tickets")]
    async fn get_ticket(&self, auth: PortalAuth, id: Path<Uuid>) -> ApiResult<Json<TicketDetail>> {
        let ctx = auth.0;
        let mut tx = self.tx(&ctx).await?;
        let ticket = portal::get_ticket(&mut tx, ctx.principal.customer_id, id.0).await?;
        let comments =
            portal::list_comments(&mut tx, &ctx.principal, id.0, None, DETAIL_COMMENTS).await?;
        tx.commit().await?;
        Ok(Json(TicketDetail {
            ticket: ticket.into(),
            comments: comments.items.into_iter().map(Into::into).collect(),
            comments_next_cursor: comments.next_cursor,
        }))
    }

    /// The public conversation of a ticket, oldest first.
    #[oai(
        path = "/tickets/:id/comments",
        method = "get",
        tag = "PortalTag::Tickets"
    )]
    async fn list_comments(
        &self,
        auth: PortalAuth,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<CommentPage>> {
        let ctx = auth.0;
        let mut tx = self.tx(&ctx).await?;
        let page = portal::list_comments(
            &mut tx,
            &ctx.principal,
            id.0,
            cursor.0.as_deref(),
            page_size(limit.0),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(CommentPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Reply on a ticket (the service team sees it in the ticket's conversation).
    #[oai(
        path = "/tickets/:id/comments",
        method = "post",
        tag = "PortalTag::Tickets"
    )]
    async fn add_comment(
        &self,
        auth: PortalAuth,
        id: Path<Uuid>,
        body: Json<CommentRequest>,
    ) -> ApiResult<Created<CommentOut>> {
        let ctx = auth.0;
        let actor = ctx.principal.actor(&ctx.meta);
        let mut tx = self.tx(&ctx).await?;
        let comment =
            portal::add_comment(&mut tx, &ctx.principal, id.0, &body.0.body, &actor).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(comment.into())))
    }

    /// Rate a resolved ticket, 1-5 with an optional comment, once (409 `csat.not_resolved`,
    /// 409 `csat.already_rated`).
    #[oai(
        path = "/tickets/:id/rating",
        method = "post",
        tag = "PortalTag::Tickets"
    )]
    async fn rate(
        &self,
        auth: PortalAuth,
        id: Path<Uuid>,
        body: Json<RatingRequest>,
    ) -> ApiResult<Created<RatingOut>> {
        let ctx = auth.0;
        let mut tx = self.tx(&ctx).await?;
        let survey = portal::rate(
            &mut tx,
            &ctx.principal,
            id.0,
            body.0.rating,
            body.0.comment.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(survey.try_into()?)))
    }

    /// What a survey link is for: the ticket, and whether it was rated already.
    #[oai(path = "/survey", method = "get", tag = "PortalTag::Survey")]
    async fn get_survey(&self, token: Query<String>) -> ApiResult<Json<SurveyOut>> {
        let (tenant, parsed) = tenant_of(
            &self.0,
            token.0.trim(),
            CredentialKind::Survey,
            portal::invalid_survey,
        )
        .await?;
        let mut tx = self.0.db.tenant_tx(&tenant).await?;
        let view = portal::survey_of_token(&mut tx, &parsed.hash).await?;
        tx.commit().await?;
        Ok(Json(SurveyOut {
            ticket: SurveyTicket {
                number: view.number,
                subject: view.subject,
            },
            rated: view.rating.is_some(),
            rating: view.rating,
            comment: view.comment,
        }))
    }

    /// Rate the ticket of a survey link, 1-5 with an optional comment, once.
    #[oai(path = "/survey", method = "post", tag = "PortalTag::Survey")]
    async fn rate_survey(&self, body: Json<SurveyRatingRequest>) -> ApiResult<Created<RatingOut>> {
        let body = body.0;
        let (tenant, parsed) = tenant_of(
            &self.0,
            body.token.trim(),
            CredentialKind::Survey,
            portal::invalid_survey,
        )
        .await?;
        let mut tx = self.0.db.tenant_tx(&tenant).await?;
        let survey =
            portal::rate_by_token(&mut tx, &parsed.hash, body.rating, body.comment.as_deref())
                .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(survey.try_into()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_token_after_the_scheme() {
        let req = Request::builder()
            .header(header::AUTHORIZATION, "bearer  tcp_x ")
            .finish();
        assert_eq!(bearer(&req), Some("tcp_x"));
        let basic = Request::builder()
            .header(header::AUTHORIZATION, "Basic abc")
            .finish();
        assert_eq!(bearer(&basic), None);
        assert_eq!(bearer(&Request::default()), None);
    }
}
