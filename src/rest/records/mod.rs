//! `/customers`, `/contacts` and the other fixed paths, and `/records/{object}` for every
//! object: one set of handlers over the record engine, parameterised by object. A built-in
//! object's custom fields travel in a `custom` object on each record; a custom object's
//! fields sit at the top level.

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::{NoContent, Tag};
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::context::{page_size, RequestCtx};
use crm_core::crypto::DataKey;
use crm_core::db::TenantTx;
use crm_core::read_limit::{self, ReadVerdict, Via};
use crm_core::Error;
use crm_records::engine::{self, Access, Visibility};
use crm_records::query::{self, ListQuery};
use crm_records::service::{self, CreateOptions};
use crm_records::{ObjectKey, ObjectSchema};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

mod extras;
mod generic;
pub use extras::{ActivityExtrasApi, CustomerExtrasApi, ExportResponse, PdfResponse};
pub use generic::RecordsApi;

/// A record with its version as ETag (send it back as If-Match when updating).
#[derive(ApiResponse)]
pub enum RecordResponse {
    #[oai(status = 200)]
    Ok(Json<Value>, #[oai(header = "ETag")] String),
    #[oai(status = 201)]
    Created(Json<Value>, #[oai(header = "ETag")] String),
}

/// A page of records.
#[derive(Object)]
pub struct RecordPage {
    pub items: Vec<Value>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct CountResponse {
    pub count: i64,
}

#[derive(Object)]
pub struct HistoryEntryOut {
    pub id: i64,
    /// created, updated, deleted, restored, merged, purged
    pub action: String,
    pub actor_kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub actor_id: Option<Uuid>,
    pub at: chrono::DateTime<chrono::Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    /// `{field: {before, after}}`.
    pub changes: Value,
}

#[derive(Object)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntryOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct AddTagsRequest {
    pub tags: Vec<String>,
}

/// Everything a record request needs besides the transaction.
pub struct RecordCtx {
    pub schema: Arc<ObjectSchema>,
    pub caller: Caller,
    pub ctx: RequestCtx,
    actor: Actor,
    key: Option<DataKey>,
}

impl RecordCtx {
    /// The request as an export's reader: owned, so a streamed body can keep it.
    pub fn into_exporter(
        self,
        columns: crm_records::export::Columns,
        lang: crm_core::mail::Lang,
    ) -> crm_records::export::Exporter {
        crm_records::export::Exporter {
            schema: self.schema,
            caller: self.caller,
            actor: self.actor,
            key: self.key,
            columns,
            lang,
        }
    }

    pub fn access(&self) -> Access<'_> {
        Access::of_caller(
            &self.caller,
            &self.actor,
            self.schema.object,
            self.key.as_ref(),
        )
    }
}

/// Opens the tenant transaction, builds the caller in it, then loads the object's fields and
/// the data key. The services called with [`RecordCtx::access`] check the permission.
pub async fn open(
    state: &AppState,
    auth: &Auth,
    object: ObjectKey,
) -> ApiResult<(TenantTx, RecordCtx)> {
    let (mut tx, caller, ctx) = state.begin(auth).await?;
    let schema = state
        .schemas
        .get(&mut tx, object, ctx.principal.metadata_version)
        .await?;
    let key = schema
        .data_key(&mut tx, state.master_key.as_deref())
        .await?;
    Ok((
        tx,
        RecordCtx {
            schema,
            caller,
            actor: Actor::of(&ctx),
            ctx,
            key,
        },
    ))
}

/// Counts the customer records a request hands out against the tenant's read limit and logs
/// them (`crm_core::read_limit`); other objects are not counted. A refused read comes back as
/// [`ReadVerdict::Frozen`]: commit first (the freeze must stay), then `admit()`.
async fn account_reads(
    tx: &mut TenantTx,
    rc: &RecordCtx,
    via: Via,
    ids: &[Uuid],
) -> ApiResult<ReadVerdict> {
    if rc.schema.object != ObjectKey::Customers {
        return Ok(ReadVerdict::Admitted);
    }
    Ok(read_limit::account(tx, &rc.caller, &rc.ctx.meta, via, ids).await?)
}

fn etag(record: &Value) -> String {
    format!("\"{}\"", record["version"].as_i64().unwrap_or_default())
}

/// Reads `If-Match`: a quoted version (weak or strong), or `*`.
fn if_match(raw: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(None);
    }
    let bare = raw.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        Error::bad_request(
            "request.invalid_if_match",
            "If-Match must be the ETag you received, e.g. \"3\"",
        )
        .into()
    })
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn create(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    body: Value,
    idempotency_key: Option<String>,
    allow_duplicate: bool,
) -> ApiResult<RecordResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let principal = rc.ctx.principal.subject();
    let route = format!("POST /{object}?allow_duplicate={allow_duplicate}");
    let idempotent = idempotency_key.as_deref().map(|key| service::Idempotent {
        principal: &principal,
        key,
        route: &route,
    });
    let options = CreateOptions { allow_duplicate };
    let (status, record) = service::create_once(
        &mut tx,
        &rc.schema,
        &rc.access(),
        &body,
        options,
        idempotent,
    )
    .await?;
    tx.commit().await?;
    let tag = etag(&record);
    Ok(if status == 201 {
        RecordResponse::Created(Json(record), tag)
    } else {
        RecordResponse::Ok(Json(record), tag)
    })
}

async fn list(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    req: &Request,
    parent: Option<Uuid>,
) -> ApiResult<Json<RecordPage>> {
    let pairs = query_pairs(req);
    let (mut tx, rc, lq) = open_list(state, &auth, object, &pairs).await?;
    let access = rc.access();
    let page = match parent {
        Some(customer) => {
            query::list_of_customer(&mut tx, &rc.schema, &access, customer, &lq).await?
        }
        None => query::list(&mut tx, &rc.schema, &access, &lq).await?,
    };
    let mut page = page;
    expand(&mut tx, &rc, &pairs, &mut page.items).await?;
    let ids = crm_records::export::record_ids(&page.items);
    let verdict = account_reads(&mut tx, &rc, Via::List, &ids).await?;
    tx.commit().await?;
    verdict.admit()?;
    Ok(Json(RecordPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Opens a record request for a list or count and reads its query: the shared parameters
/// plus `mine` (activities, tasks) and `due` (tasks).
async fn open_list(
    state: &AppState,
    auth: &Auth,
    object: ObjectKey,
    pairs: &[(String, String)],
) -> ApiResult<(TenantTx, RecordCtx, ListQuery)> {
    let extras: &[&str] = match object {
        ObjectKey::Tasks => &["mine", "due"],
        ObjectKey::Activities => &["mine"],
        _ => &[],
    };
    query::check_unknown(pairs, extras)?;
    let mut lq = ListQuery::from_pairs(pairs)?;
    lq.limit = page_size(Some(lq.limit));
    let (mut tx, rc) = open(state, auth, object).await?;
    for (key, value) in pairs {
        match (key.as_str(), value.as_str()) {
            ("mine", "true") if extras.contains(&"mine") => {
                let me = rc.access().user_id().ok_or_else(|| {
                    Error::invalid_field("mine", "no_user", "this credential acts for no user")
                })?;
                lq.filters.push(query::Filter {
                    field: object.owner_column().into(),
                    op: query::Op::Eq,
                    value: me.to_string(),
                });
            }
            ("mine", "false") => {}
            ("mine", _) => {
                return Err(Error::invalid_field("mine", "invalid", "use true or false").into())
            }
            ("due", when) if extras.contains(&"due") => {
                lq.filters.extend(query::due_filters(&mut tx, when).await?);
            }
            _ => {}
        }
    }
    Ok((tx, rc, lq))
}

async fn count(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    req: &Request,
) -> ApiResult<Json<CountResponse>> {
    let pairs = query_pairs(req);
    let (mut tx, rc, lq) = open_list(state, &auth, object, &pairs).await?;
    let count = query::count(&mut tx, &rc.schema, &rc.access(), &lq).await?;
    tx.commit().await?;
    Ok(Json(CountResponse { count }))
}

/// Adds `expanded` to records for the `expand` parameter, if any.
async fn expand(
    tx: &mut TenantTx,
    rc: &RecordCtx,
    pairs: &[(String, String)],
    records: &mut [Value],
) -> ApiResult<()> {
    for (_, raw) in pairs.iter().filter(|(k, _)| k == "expand") {
        let tree = crm_records::expand::parse(raw)?;
        crm_records::expand::apply(tx, &rc.schema, &rc.access(), records, &tree).await?;
    }
    Ok(())
}

async fn get(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    expand_param: Option<String>,
) -> ApiResult<RecordResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let record = engine::fetch(
        &mut tx,
        &rc.schema,
        &rc.access(),
        id,
        Visibility::Live,
        false,
    )
    .await?;
    let mut one = [record];
    let pairs: Vec<(String, String)> = expand_param
        .map(|e| vec![("expand".to_owned(), e)])
        .unwrap_or_default();
    expand(&mut tx, &rc, &pairs, &mut one).await?;
    let [record] = one;
    let verdict = account_reads(&mut tx, &rc, Via::Get, &[id]).await?;
    tx.commit().await?;
    verdict.admit()?;
    let tag = etag(&record);
    Ok(RecordResponse::Ok(Json(record), tag))
}

async fn patch(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    if_match_header: Option<&str>,
    body: Value,
) -> ApiResult<RecordResponse> {
    let expected = if_match(if_match_header)?;
    let (mut tx, rc) = open(state, &auth, object).await?;
    let record = service::update(&mut tx, &rc.schema, &rc.access(), id, expected, &body).await?;
    tx.commit().await?;
    let tag = etag(&record);
    Ok(RecordResponse::Ok(Json(record), tag))
}

async fn delete(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    purge: bool,
) -> ApiResult<NoContent> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    if purge {
        service::purge(&mut tx, &rc.schema, &rc.access(), id).await?;
    } else {
        service::soft_delete(&mut tx, &rc.schema, &rc.access(), id).await?;
    }
    tx.commit().await?;
    Ok(NoContent::NoContent)
}

async fn restore(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
) -> ApiResult<RecordResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let record = service::restore(&mut tx, &rc.schema, &rc.access(), id).await?;
    tx.commit().await?;
    let tag = etag(&record);
    Ok(RecordResponse::Ok(Json(record), tag))
}

async fn history(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    cursor: Option<String>,
    limit: Option<i64>,
) -> ApiResult<Json<HistoryPage>> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let page = engine::history(
        &mut tx,
        &rc.schema,
        &rc.access(),
        id,
        cursor.as_deref(),
        page_size(limit),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(HistoryPage {
        items: page
            .items
            .into_iter()
            .map(|e| HistoryEntryOut {
                id: e.id,
                action: e.action,
                actor_kind: e.actor_kind,
                actor_id: e.actor_id,
                at: e.at,
                request_id: e.request_id,
                changes: e.changes,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn add_tags(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    tags: Vec<String>,
) -> ApiResult<RecordResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let mut v = crm_core::domain::Validator::new();
    let tags: Vec<String> = tags
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            v.check(crm_records::values::parse_tag(
                &format!("tags[{i}]"),
                &json!(t),
            ))
        })
        .collect();
    v.finish()?;
    let record = service::add_tags(&mut tx, &rc.schema, &rc.access(), id, &tags).await?;
    tx.commit().await?;
    let tag = etag(&record);
    Ok(RecordResponse::Ok(Json(record), tag))
}

async fn remove_tag(
    state: &AppState,
    auth: Auth,
    object: ObjectKey,
    id: Uuid,
    tag: &str,
) -> ApiResult<RecordResponse> {
    let (mut tx, rc) = open(state, &auth, object).await?;
    let record = service::remove_tag(&mut tx, &rc.schema, &rc.access(), id, tag).await?;
    tx.commit().await?;
    let etag_value = etag(&record);
    Ok(RecordResponse::Ok(Json(record), etag_value))
}

fn json_object(body: Value) -> ApiResult<Value> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError(Error::bad_request(
            "request.invalid",
            "the body must be a JSON object of fields",
        )))
    }
}

/// The endpoints every record object has, for one object under one path prefix. Paths must be
/// literals for the OpenAPI derive, so each object names its own.
macro_rules! record_endpoints {
    ($api:ident, $object:expr, $collection:literal, $count:literal, $item:literal, $restore:literal,
     $history:literal, $tags:literal, $tag:literal) => {
        /// Record endpoints of one object.
        pub struct $api(pub AppState);

        #[OpenApi(tag = "Tag::Records")]
        impl $api {
            /// Create a record; custom field values go in `custom`. For customers, a phone or
            /// e-mail another customer has is 409 `customer.duplicate` (its id in
            /// `existing_id`) unless `allow_duplicate=true`. `Idempotency-Key` replays.
            #[oai(path = $collection, method = "post")]
            async fn create(
                &self,
                auth: Auth,
                body: Json<Value>,
                #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
                allow_duplicate: Query<Option<bool>>,
            ) -> ApiResult<RecordResponse> {
                create(
                    &self.0,
                    auth,
                    $object,
                    json_object(body.0)?,
                    idempotency_key.0,
                    allow_duplicate.0.unwrap_or(false),
                )
                .await
            }

            /// List: `q` (search name, phone, e-mail, text custom fields), `filter[<field>]` /
            /// `filter[<field>][<op>]` (eq, ne, lt, lte, gt, gte, in, contains, is_null), `tag`,
            /// `sort` (`field` or `-field`), `limit` (max 200), `cursor`, `deleted=true`.
            #[oai(path = $collection, method = "get")]
            async fn list(&self, auth: Auth, req: &Request) -> ApiResult<Json<RecordPage>> {
                list(&self.0, auth, $object, req, None).await
            }

            /// Count the records matching the same filters as the list.
            #[oai(path = $count, method = "get")]
            async fn count(&self, auth: Auth, req: &Request) -> ApiResult<Json<CountResponse>> {
                count(&self.0, auth, $object, req).await
            }

            /// One record (ETag = its version); `expand=<relation>[,<relation>.<relation>]`
            /// adds the related records' display fields under `expanded`.
            #[oai(path = $item, method = "get")]
            async fn get(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                expand: Query<Option<String>>,
            ) -> ApiResult<RecordResponse> {
                get(&self.0, auth, $object, id.0, expand.0).await
            }

            /// Change fields; `If-Match` with the ETag refuses stale writes (412).
            #[oai(path = $item, method = "patch")]
            async fn patch(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                #[oai(name = "If-Match")] if_match_header: Header<Option<String>>,
                body: Json<Value>,
            ) -> ApiResult<RecordResponse> {
                patch(
                    &self.0,
                    auth,
                    $object,
                    id.0,
                    if_match_header.0.as_deref(),
                    json_object(body.0)?,
                )
                .await
            }

            /// Move to the recycle bin; `purge=true` deletes for good (needs the purge permission).
            #[oai(path = $item, method = "delete")]
            async fn delete(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                purge: Query<Option<bool>>,
            ) -> ApiResult<NoContent> {
                delete(&self.0, auth, $object, id.0, purge.0.unwrap_or(false)).await
            }

            /// Bring a record back from the recycle bin.
            #[oai(path = $restore, method = "post")]
            async fn restore(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<RecordResponse> {
                restore(&self.0, auth, $object, id.0).await
            }

            /// Change history, newest first.
            #[oai(path = $history, method = "get")]
            async fn history(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                cursor: Query<Option<String>>,
                limit: Query<Option<i64>>,
            ) -> ApiResult<Json<HistoryPage>> {
                history(&self.0, auth, $object, id.0, cursor.0, limit.0).await
            }

            /// Add tags.
            #[oai(path = $tags, method = "post")]
            async fn tag(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                body: Json<AddTagsRequest>,
            ) -> ApiResult<RecordResponse> {
                add_tags(&self.0, auth, $object, id.0, body.0.tags).await
            }

            /// Remove a tag.
            #[oai(path = $tag, method = "delete")]
            async fn untag(
                &self,
                auth: Auth,
                id: Path<Uuid>,
                tag: Path<String>,
            ) -> ApiResult<RecordResponse> {
                remove_tag(&self.0, auth, $object, id.0, &tag.0).await
            }
        }
    };
}

record_endpoints!(
    CustomersApi,
    ObjectKey::Customers,
    "/customers",
    "/customers/count",
    "/customers/:id",
    "/customers/:id/restore",
    "/customers/:id/history",
    "/customers/:id/tags",
    "/customers/:id/tags/:tag"
);

record_endpoints!(
    ContactsApi,
    ObjectKey::Contacts,
    "/contacts",
    "/contacts/count",
    "/contacts/:id",
    "/contacts/:id/restore",
    "/contacts/:id/history",
    "/contacts/:id/tags",
    "/contacts/:id/tags/:tag"
);

record_endpoints!(
    OpportunitiesApi,
    ObjectKey::Opportunities,
    "/opportunities",
    "/opportunities/count",
    "/opportunities/:id",
    "/opportunities/:id/restore",
    "/opportunities/:id/history",
    "/opportunities/:id/tags",
    "/opportunities/:id/tags/:tag"
);

record_endpoints!(
    ActivitiesApi,
    ObjectKey::Activities,
    "/activities",
    "/activities/count",
    "/activities/:id",
    "/activities/:id/restore",
    "/activities/:id/history",
    "/activities/:id/tags",
    "/activities/:id/tags/:tag"
);

record_endpoints!(
    TicketsApi,
    ObjectKey::Tickets,
    "/tickets",
    "/tickets/count",
    "/tickets/:id",
    "/tickets/:id/restore",
    "/tickets/:id/history",
    "/tickets/:id/tags",
    "/tickets/:id/tags/:tag"
);

record_endpoints!(
    TasksApi,
    ObjectKey::Tasks,
    "/tasks",
    "/tasks/count",
    "/tasks/:id",
    "/tasks/:id/restore",
    "/tasks/:id/history",
    "/tasks/:id/tags",
    "/tasks/:id/tags/:tag"
);
