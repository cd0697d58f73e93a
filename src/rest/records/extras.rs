//! What only some objects have: a customer's duplicates, merge, timeline and contacts; the
//! call register for activities. And every object's export and printable PDF, which the
//! generic `/records/{object}` paths serve too.

use super::super::auth::Auth;
use super::super::error::ApiResult;
use super::super::exports::ExportOut;
use super::super::{Created, Tag};
use super::{account_reads, etag, list, open, open_list, query_pairs, RecordPage, RecordResponse};
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::context::page_size;
use crm_core::read_limit::{ReadVerdict, Via};
use crm_records::export::print::{self, Printing};
use crm_records::export::{self, Columns, ExportParams, Outcome};
use crm_records::{customers, register, ObjectKey};
use poem::{Body, Request};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

/// A list's records as CSV (streamed) or XLSX (built here, or by a job when large): the
/// caller's scope and masking, headers in their language. The service checks, counts and
/// audits; this parses and maps.
pub(super) async fn export(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    req: &Request,
) -> ApiResult<ExportResponse> {
    let (params, pairs) = ExportParams::split(query_pairs(req))?;
    let (mut tx, rc, lq) = open_list(state, &auth, object, &pairs).await?;
    let lang = export::caller_lang(&mut tx, &rc.caller, req.header("accept-language")).await?;
    let columns = Columns::resolve(&rc.schema, params.fields.as_deref(), lang, params.headers)?;
    let tenant = rc.ctx.tenant.clone();
    let exporter = rc.into_exporter(columns, lang);
    let day = chrono::Utc::now().format("%Y%m%d");
    let filename = format!("{object}-{day}.{}", params.format.as_str());
    let disposition = format!("attachment; filename=\"{filename}\"");
    let outcome = export::export(
        tx,
        &state.db,
        &tenant,
        exporter,
        lq,
        params.format,
        &state.config.export,
    )
    .await?;
    Ok(match outcome {
        Outcome::Csv(stream) => ExportResponse::Ok(
            Binary(Body::from_bytes_stream(stream.into_stream())),
            params.format.content_type().to_owned(),
            disposition,
        ),
        Outcome::File(bytes) => ExportResponse::Ok(
            Binary(Body::from(bytes)),
            params.format.content_type().to_owned(),
            disposition,
        ),
        Outcome::Queued(view) => {
            let location = format!("/api/v1/exports/{}", view.id);
            ExportResponse::Accepted(Json(view.into()), location)
        }
    })
}

/// A printable PDF of one record (its object's read and export permissions), counted
/// against the read limit for customers and audited as `<object>.exported`.
pub(super) async fn record_pdf(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    req: &Request,
) -> ApiResult<PdfResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let lang = export::caller_lang(&mut tx, &rc.caller, req.header("accept-language")).await?;
    let printing = Printing {
        by: &rc.ctx.principal.name,
        lang,
    };
    let doc = print::record(&mut tx, &rc.schema, &rc.access(), id, &printing).await?;
    let verdict = account_reads(&mut tx, &rc, Via::Export, &[id]).await?;
    if verdict == ReadVerdict::Frozen {
        // The freeze must stay: commit, then refuse.
        tx.commit().await?;
        return Err(crm_core::read_limit::frozen_error().into());
    }
    // Rendered before the commit: without the font, nothing is audited as exported.
    let bytes = state.pdf_font.render(doc).await?;
    tx.commit().await?;
    Ok(PdfResponse::pdf(bytes, &format!("{object}-{id}.pdf")))
}

/// A printable PDF.
#[derive(ApiResponse)]
pub enum PdfResponse {
    #[oai(status = 200, content_type = "application/pdf")]
    Ok(
        Binary<Vec<u8>>,
        /// `attachment; filename="customers-<id>.pdf"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

impl PdfResponse {
    /// `bytes` downloaded as `filename` (ASCII).
    pub fn pdf(bytes: Vec<u8>, filename: &str) -> PdfResponse {
        PdfResponse::Ok(
            Binary(bytes),
            format!("attachment; filename=\"{filename}\""),
        )
    }
}

/// An export: the file, or a job writing it.
#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The file: CSV (UTF-8 with a BOM, streamed) or XLSX.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        /// `text/csv; charset=utf-8` or the XLSX type.
        #[oai(header = "Content-Type")]
        String,
        /// `attachment; filename="customers-20250301.csv"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
    /// Too many rows for one request: a job writes the file. Poll `Location`
    /// (`GET /api/v1/exports/{id}`) until `status` is `done`, then download.
    #[oai(status = 202)]
    Accepted(Json<ExportOut>, #[oai(header = "Location")] String),
}

#[derive(Object)]
pub struct MergeRequest {
    /// The customer merged into this one (it goes to the recycle bin).
    pub other_id: Uuid,
    /// Per field, whose value to keep: "this" or "other".
    #[oai(default)]
    pub keep: std::collections::BTreeMap<String, String>,
}

#[derive(Object)]
pub struct DuplicatePairOut {
    pub customer_id: Uuid,
    pub customer_name: String,
    pub other_id: Uuid,
    pub other_name: String,
    /// `phone` or `email`.
    pub reason: String,
}

#[derive(Object)]
pub struct DuplicatesResponse {
    pub items: Vec<DuplicatePairOut>,
}

#[derive(Object)]
pub struct TimelineEntryOut {
    /// `activity`, `task`, `stage_change` or `history`.
    pub kind: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: String,
    pub data: Value,
}

#[derive(Object)]
pub struct TimelinePage {
    pub items: Vec<TimelineEntryOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct RegisterRequest {
    /// The caller's or visitor's phone (any common format; China is the default region).
    pub phone: String,
    /// Name for a new customer (default: the phone number).
    pub name: Option<String>,
    /// `call` (default) or `visit`.
    pub kind: Option<String>,
    /// `inbound` (default) or `outbound`.
    pub direction: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Create the customer when no customer has this phone.
    #[oai(default)]
    pub create_customer: bool,
}

#[derive(Object)]
pub struct RegisterResponse {
    pub customer_id: Uuid,
    pub customer_created: bool,
    pub activity: Value,
}

/// What only activities have: the walk-in and call register.
pub struct ActivityExtrasApi(pub AppState);

#[OpenApi(tag = "Tag::Records")]
impl ActivityExtrasApi {
    /// Register a call or visit by phone: logs it on the customer with that phone. For an
    /// unknown phone it answers 404 `register.unknown_caller`, offering `create_customer: true`
    /// to create the customer and log the activity in one step.
    #[oai(path = "/activities/register", method = "post")]
    async fn register(
        &self,
        auth: Auth,
        body: Json<RegisterRequest>,
    ) -> ApiResult<Created<RegisterResponse>> {
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let done = register::register(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            self.0.master_key.as_deref(),
            register::Entry {
                phone: b.phone,
                name: b.name,
                kind: b.kind,
                direction: b.direction,
                subject: b.subject,
                body: b.body,
                create_customer: b.create_customer,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(RegisterResponse {
            customer_id: done.customer_id,
            customer_created: done.customer_created,
            activity: done.activity,
        })))
    }
}

/// What only customers have: duplicates, merge, their contacts.
pub struct CustomerExtrasApi(pub AppState);

#[OpenApi(tag = "Tag::Records")]
impl CustomerExtrasApi {
    /// Exports the customers a list with the same parameters would return (all pages, in
    /// your scope, masked as you see them), as `/records/customers/export` does: `format`
    /// (csv, xlsx), `fields`, `headers`. Needs `customers:read` and `customers:export`.
    #[oai(path = "/customers/export", method = "get")]
    async fn customer_export(&self, auth: Auth, req: &Request) -> ApiResult<ExportResponse> {
        export(&self.0, auth, ObjectKey::Customers, req).await
    }

    /// A printable PDF of one customer, as `/records/customers/{id}/pdf`.
    #[oai(path = "/customers/:id/pdf", method = "get")]
    async fn customer_pdf(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        req: &Request,
    ) -> ApiResult<PdfResponse> {
        record_pdf(&self.0, auth, ObjectKey::Customers, id.0, req).await
    }

    /// Pairs of live customers sharing a phone or e-mail.
    #[oai(path = "/customers/duplicates", method = "get")]
    async fn customer_duplicates(
        &self,
        auth: Auth,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<DuplicatesResponse>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Customers).await?;
        let pairs = customers::duplicates(&mut tx, &rc.access(), page_size(limit.0)).await?;
        tx.commit().await?;
        Ok(Json(DuplicatesResponse {
            items: pairs
                .into_iter()
                .map(|p| DuplicatePairOut {
                    customer_id: p.customer_id,
                    customer_name: p.customer_name,
                    other_id: p.other_id,
                    other_name: p.other_name,
                    reason: p.reason,
                })
                .collect(),
        }))
    }

    /// The customer's timeline: activities, tasks, stage moves of its opportunities and its
    /// own change history, newest first.
    #[oai(path = "/customers/:id/timeline", method = "get")]
    async fn customer_timeline(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<TimelinePage>> {
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Customers).await?;
        let page = crm_records::timeline::customer_timeline(
            &mut tx,
            &rc.schema,
            &rc.access(),
            &rc.caller,
            id.0,
            cursor.0.as_deref(),
            page_size(limit.0),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(TimelinePage {
            items: page
                .items
                .into_iter()
                .map(|e| TimelineEntryOut {
                    kind: e.kind,
                    at: e.at,
                    id: e.id,
                    data: e.data,
                })
                .collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Contacts of a customer (same list parameters as /contacts).
    #[oai(path = "/customers/:id/contacts", method = "get")]
    async fn customer_contacts(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        req: &Request,
    ) -> ApiResult<Json<RecordPage>> {
        list(&self.0, auth, ObjectKey::Contacts, req, Some(id.0)).await
    }

    /// Merge another customer into this one: contacts move over, the other goes to the
    /// recycle bin, both histories stay.
    #[oai(path = "/customers/:id/merge", method = "post")]
    async fn merge_customer(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<MergeRequest>,
    ) -> ApiResult<RecordResponse> {
        let state = &self.0;
        let (mut tx, rc) = open(state, &auth, ObjectKey::Customers).await?;
        let keep: serde_json::Map<String, Value> = body
            .keep
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let record = customers::merge(
            &mut tx,
            &rc.schema,
            &rc.access(),
            id.0,
            body.other_id,
            &keep,
        )
        .await?;
        tx.commit().await?;
        let tag = etag(&record);
        Ok(RecordResponse::Ok(Json(record), tag))
    }
}
