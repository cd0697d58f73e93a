//! `/records/{object}`: the record endpoints of every object — built-in and custom — under
//! one generic path, so the route table stays fixed however many objects a tenant defines.
//! The same handlers serve `/customers` and the other fixed paths.

use super::{
    account_reads, add_tags, count, create, delete, expand, get, history, json_object, list,
    open_list, patch, query_pairs, remove_tag, restore, AddTagsRequest, CountResponse, HistoryPage,
    RecordPage, RecordResponse,
};
use crate::rest::auth::Auth;
use crate::rest::error::ApiResult;
use crate::rest::fields::object_of;
use crate::rest::{NoContent, Tag};
use crate::server::AppState;
use crm_core::read_limit::Via;
use crm_records::ObjectKey;
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use serde_json::Value;
use uuid::Uuid;

/// The records of `child` pointing to record `id` of `parent`.
async fn related(
    state: &AppState,
    auth: Auth,
    parent: ObjectKey,
    id: Uuid,
    child: ObjectKey,
    req: &Request,
) -> ApiResult<Json<RecordPage>> {
    let pairs = query_pairs(req);
    let via = pairs
        .iter()
        .find(|(k, _)| k == "via")
        .map(|(_, v)| v.clone());
    let rest: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "via").collect();
    let (mut tx, rc, lq) = open_list(state, &auth, child, &rest).await?;
    let mut page = crm_records::relations::list_related(
        &mut tx,
        &rc.schema,
        &rc.access(),
        parent,
        id,
        via.as_deref(),
        &lq,
    )
    .await?;
    expand(&mut tx, &rc, &rest, &mut page.items).await?;
    let ids = crm_records::export::record_ids(&page.items);
    let verdict = account_reads(&mut tx, &rc, Via::List, &ids).await?;
    tx.commit().await?;
    verdict.admit()?;
    Ok(Json(RecordPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Record endpoints of any object.
pub struct RecordsApi(pub AppState);

#[OpenApi(tag = "Tag::Records")]
impl RecordsApi {
    /// Create a record of any object (`customers`, `tickets`, or one of yours such as
    /// `policies`). A custom object's fields sit at the top level; a built-in object's custom
    /// fields go in `custom`. `Idempotency-Key` replays.
    #[oai(path = "/records/:object", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        object: Path<String>,
        body: Json<Value>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        allow_duplicate: Query<Option<bool>>,
    ) -> ApiResult<RecordResponse> {
        create(
            &self.0,
            auth,
            object_of(&object.0)?,
            json_object(body.0)?,
            idempotency_key.0,
            allow_duplicate.0.unwrap_or(false),
        )
        .await
    }

    /// List records: `q`, `filter[<field>][<op>]`, `tag`, `sort`, `limit`, `cursor`,
    /// `deleted=true`, as on /customers.
    #[oai(path = "/records/:object", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        object: Path<String>,
        req: &Request,
    ) -> ApiResult<Json<RecordPage>> {
        list(&self.0, auth, object_of(&object.0)?, req, None).await
    }

    /// Export the records a list with the same parameters would return (all pages, in your
    /// scope, masked as you see them). `format=csv` (default; UTF-8 with a BOM, streamed) or
    /// `xlsx`; `fields=name,phone,custom.vip_level` chooses and orders the columns (API paths;
    /// an unknown one is 422 `export.unknown_field`); `headers=labels` (default: the field
    /// labels in your language — your locale, else `Accept-Language`, else the company's) or
    /// `keys` (API paths). Needs the object's read and export permissions (`customers:export`
    /// for built-in objects, `<key>:export` for yours); at most `[export] max_rows` rows (400
    /// `export.too_large`). An XLSX of more than `[export] async_rows` rows answers 202: a
    /// job writes it, `GET /exports/{id}` tells when it can be downloaded. Audited as
    /// `<object>.exported` with the format and row count.
    #[oai(path = "/records/:object/export", method = "get")]
    async fn export(
        &self,
        auth: Auth,
        object: Path<String>,
        req: &Request,
    ) -> ApiResult<super::extras::ExportResponse> {
        super::extras::export(&self.0, auth, object_of(&object.0)?, req).await
    }

    /// A printable PDF of one record: its fields by label in your language, users and related
    /// records by name, masked as you see them, with Chinese text. Needs the object's read
    /// and export permissions; audited as `<object>.exported`. 503
    /// `export.pdf_font_missing` when the server has no CJK font (`[export] pdf_font`).
    #[oai(path = "/records/:object/:id/pdf", method = "get")]
    async fn pdf(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        req: &Request,
    ) -> ApiResult<super::extras::PdfResponse> {
        super::extras::record_pdf(&self.0, auth, object_of(&object.0)?, id.0, req).await
    }

    /// Count the records matching the same filters as the list.
    #[oai(path = "/records/:object/count", method = "get")]
    async fn count(
        &self,
        auth: Auth,
        object: Path<String>,
        req: &Request,
    ) -> ApiResult<Json<CountResponse>> {
        count(&self.0, auth, object_of(&object.0)?, req).await
    }

    /// One record (ETag = its version). `expand=policy,policy.customer` adds the display
    /// fields of the records its relation fields point to under `expanded` (two levels at
    /// most; one you may not read comes back as `{id, hidden: true}`).
    #[oai(path = "/records/:object/:id", method = "get")]
    async fn get(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        expand: Query<Option<String>>,
    ) -> ApiResult<RecordResponse> {
        get(&self.0, auth, object_of(&object.0)?, id.0, expand.0).await
    }

    /// The records of `related` whose relation field points to this record (a customer's
    /// policies): `via=<field>` when `related` has several pointing here; list parameters
    /// as on any list. 404 unless you see this record.
    #[oai(path = "/records/:object/:id/related/:related", method = "get")]
    async fn related(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        #[oai(name = "related")] child: Path<String>,
        req: &Request,
    ) -> ApiResult<Json<RecordPage>> {
        related(
            &self.0,
            auth,
            object_of(&object.0)?,
            id.0,
            object_of(&child.0)?,
            req,
        )
        .await
    }

    /// Change fields; `If-Match` with the ETag refuses stale writes (412).
    #[oai(path = "/records/:object/:id", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        #[oai(name = "If-Match")] if_match_header: Header<Option<String>>,
        body: Json<Value>,
    ) -> ApiResult<RecordResponse> {
        patch(
            &self.0,
            auth,
            object_of(&object.0)?,
            id.0,
            if_match_header.0.as_deref(),
            json_object(body.0)?,
        )
        .await
    }

    /// Move to the recycle bin; `purge=true` deletes for good (the purge permission).
    #[oai(path = "/records/:object/:id", method = "delete")]
    async fn delete(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        purge: Query<Option<bool>>,
    ) -> ApiResult<NoContent> {
        delete(
            &self.0,
            auth,
            object_of(&object.0)?,
            id.0,
            purge.0.unwrap_or(false),
        )
        .await
    }

    /// Bring a record back from the recycle bin.
    #[oai(path = "/records/:object/:id/restore", method = "post")]
    async fn restore(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
    ) -> ApiResult<RecordResponse> {
        restore(&self.0, auth, object_of(&object.0)?, id.0).await
    }

    /// Change history, newest first.
    #[oai(path = "/records/:object/:id/history", method = "get")]
    async fn history(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<HistoryPage>> {
        history(
            &self.0,
            auth,
            object_of(&object.0)?,
            id.0,
            cursor.0,
            limit.0,
        )
        .await
    }

    /// Add tags.
    #[oai(path = "/records/:object/:id/tags", method = "post")]
    async fn tag(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        body: Json<AddTagsRequest>,
    ) -> ApiResult<RecordResponse> {
        add_tags(&self.0, auth, object_of(&object.0)?, id.0, body.0.tags).await
    }

    /// Remove a tag.
    #[oai(path = "/records/:object/:id/tags/:tag", method = "delete")]
    async fn untag(
        &self,
        auth: Auth,
        object: Path<String>,
        id: Path<Uuid>,
        tag: Path<String>,
    ) -> ApiResult<RecordResponse> {
        remove_tag(&self.0, auth, object_of(&object.0)?, id.0, &tag.0).await
    }
}
