//! Query resolvers: one record, a connection of records (the REST list's filters, search,
//! sort and keyset cursors), the record a relation field points to and the related lists
//! (batched by `loaders`), a customer's timeline and `me`. Each one locks the request's
//! transaction and calls the record services with the caller's [`Access`]; there is no
//! permission check and no SQL here.

use crate::loaders;
use crate::model::{FieldModel, ObjectModel, RelatedList};
use crate::session::Session;
use crate::values::{filter_value, raw, Rec};
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, ObjectAccessor, ResolverContext, TypeRef,
    ValueAccessor,
};
use async_graphql::Value as GqlValue;
use crm_core::context::MAX_PAGE;
use crm_core::read_limit::Via;
use crm_core::Error;
use crm_records::engine::{self, Visibility};
use crm_records::query::{self, ListQuery};
use crm_records::ObjectKey;
use futures::future::BoxFuture;
use std::sync::Arc;
use uuid::Uuid;

/// Page size when `first` is left out.
pub const DEFAULT_FIRST: i64 = 20;

/// A field whose failure is reported at its path with REST's code while the field reads
/// null and the rest of the request goes on (so it must be nullable): the top-level queries
/// and every mutation.
pub fn settled_field<F>(name: impl Into<String>, ty: TypeRef, run: F) -> Field
where
    F: for<'c> Fn(
            &'c ResolverContext<'c>,
        ) -> BoxFuture<'c, async_graphql::Result<Option<FieldValue<'static>>>>
        + Send
        + Sync
        + 'static,
{
    let run = Arc::new(run);
    Field::new(name, ty, move |ctx| {
        let run = run.clone();
        FieldFuture::new(async move {
            match run(&ctx).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    let err = ctx
                        .ctx
                        .set_error_path(e.into_server_error(ctx.ctx.item.pos));
                    ctx.ctx.add_error(err);
                    Ok(None)
                }
            }
        })
    })
}

/// An argument the client gave a value (an explicit `null` counts as left out).
pub fn arg<'a>(ctx: &'a ResolverContext<'_>, name: &str) -> Option<ValueAccessor<'a>> {
    ctx.args.get(name).filter(|v| !v.is_null())
}

/// The `first` argument (default [`DEFAULT_FIRST`]), not yet range-checked.
fn first_arg(ctx: &ResolverContext<'_>) -> async_graphql::Result<i64> {
    Ok(match arg(ctx, "first") {
        Some(v) => v.i64()?,
        None => DEFAULT_FIRST,
    })
}

/// The id of the record a field of a record type belongs to.
fn parent_id(ctx: &ResolverContext<'_>) -> Option<Uuid> {
    ctx.parent_value
        .try_downcast_ref::<Rec>()
        .ok()
        .and_then(Rec::id)
}

pub fn session(ctx: &ResolverContext<'_>) -> async_graphql::Result<Arc<Session>> {
    ctx.data::<Arc<Session>>().cloned()
}

/// A page of records and how it was asked for (for `totalCount`).
pub struct Connection {
    object: ObjectKey,
    query: ListQuery,
    edges: Vec<(Rec, String)>,
    has_next: bool,
}

struct Edge(Rec, String);

pub fn parse_id(raw: &str) -> Result<Uuid, Error> {
    raw.parse().map_err(|_| {
        Error::bad_request(
            "request.invalid_id",
            format!("'{raw}' is not a record id (a UUID)"),
        )
    })
}

/// `customer(id)`: the record, or null when it does not exist or is outside the caller's
/// scope (as REST's 404: the two are never told apart).
pub fn one(obj: &ObjectModel) -> Field {
    let object = obj.object;
    Field::new(
        obj.single.clone(),
        TypeRef::named(&obj.type_name),
        move |ctx| {
            FieldFuture::new(async move {
                let session = session(&ctx)?;
                let id =
                    parse_id(ctx.args.try_get("id")?.string()?).map_err(|e| session.fail(e))?;
                let (mut tx, schema) = session.begin(object).await?;
                let access = session.access(object);
                match engine::fetch(&mut tx, &schema, &access, id, Visibility::Live, false).await {
                    Ok(record) => {
                        session.account(&mut tx, object, Via::Get, &[id]).await?;
                        Ok(Some(FieldValue::owned_any(Rec::new(record))))
                    }
                    Err(Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(session.fail(e)),
                }
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description(format!(
        "One {} by id; null if you cannot see it.",
        obj.type_name
    ))
}

/// `customers(filter, search, tags, sort, first, after, deleted)`: a Relay connection.
pub fn many(obj: &ObjectModel, model: Arc<crate::model::Model>) -> Field {
    let object = obj.object;
    settled_field(
        obj.plural.clone(),
        TypeRef::named(&obj.names.connection),
        move |ctx| {
            let model = model.clone();
            Box::pin(async move {
                let session = session(ctx)?;
                let obj = model
                    .of(object)
                    .ok_or_else(|| async_graphql::Error::new("object gone"))?;
                let lq = list_query(obj, ctx).map_err(|e| session.fail(e))?;
                let (mut tx, schema) = session.begin(object).await?;
                let page = query::list_edges(&mut tx, &schema, &session.access(object), &lq)
                    .await
                    .map_err(|e| session.fail(e))?;
                let edges: Vec<(Rec, String)> = page
                    .items
                    .into_iter()
                    .map(|(v, c)| (Rec::new(v), c))
                    .collect();
                session.spend(edges.len())?;
                let ids: Vec<Uuid> = edges.iter().filter_map(|(r, _)| r.id()).collect();
                session.account(&mut tx, object, Via::List, &ids).await?;
                Ok(Some(FieldValue::owned_any(Connection {
                    object,
                    query: lq,
                    edges,
                    has_next: page.has_next,
                })))
            })
        },
    )
    .argument(InputValue::new("filter", TypeRef::named(&obj.names.filter)))
    .argument(
        InputValue::new("search", TypeRef::named(TypeRef::STRING))
            .description("Text search over the searchable fields (REST's q)."),
    )
    .argument(InputValue::new(
        "tags",
        TypeRef::named_nn_list(TypeRef::STRING),
    ))
    .argument(InputValue::new("sort", TypeRef::named(&obj.names.sort)))
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT))
            .description("Page size, 1 to 200 (default 20)."),
    )
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
    .argument(
        InputValue::new("deleted", TypeRef::named(TypeRef::BOOLEAN))
            .description("The recycle bin instead of live records."),
    )
    .description(format!("A page of {} you can see.", obj.plural))
}

/// Reads a connection's arguments into the REST list's query, so both validate the same.
fn list_query(obj: &ObjectModel, ctx: &ResolverContext<'_>) -> Result<ListQuery, Error> {
    let bad = |field: &str, message: String| Error::invalid_field(field, "invalid", message);
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(filter) = arg(ctx, "filter") {
        let filter = filter
            .object()
            .map_err(|e| bad("filter", e.message.clone()))?;
        filter_pairs(&obj.fields, &filter, &mut pairs)?;
        if let Some(custom) = filter.get("custom") {
            let custom = custom
                .object()
                .map_err(|e| bad("filter.custom", e.message.clone()))?;
            filter_pairs(&obj.custom_fields, &custom, &mut pairs)?;
        }
    }
    if let Some(s) = arg(ctx, "search") {
        pairs.push(("q".into(), s.string().unwrap_or_default().to_owned()));
    }
    if let Some(tags) = arg(ctx, "tags").and_then(|t| t.list().ok()) {
        for t in tags.iter() {
            pairs.push(("tag".into(), t.string().unwrap_or_default().to_owned()));
        }
    }
    if let Some(sort) = arg(ctx, "sort").and_then(|s| s.object().ok()) {
        let field = sort
            .get("field")
            .and_then(|f| f.enum_name().ok().map(str::to_owned))
            .unwrap_or_default();
        let path = obj
            .names
            .sort_values
            .iter()
            .find(|(v, _)| *v == field)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| bad("sort", format!("cannot sort by {field}")))?;
        let desc = sort
            .get("direction")
            .and_then(|d| d.enum_name().ok().map(|d| d == "DESC"))
            .unwrap_or(false);
        pairs.push(("sort".into(), if desc { format!("-{path}") } else { path }));
    }
    if let Some(after) = arg(ctx, "after") {
        pairs.push((
            "cursor".into(),
            after.string().unwrap_or_default().to_owned(),
        ));
    }
    if ctx
        .args
        .get("deleted")
        .and_then(|d| d.boolean().ok())
        .unwrap_or(false)
    {
        pairs.push(("deleted".into(), "true".into()));
    }
    let first = first_arg(ctx).map_err(|e| bad("first", e.message))?;
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(bad(
            "first",
            format!("first must be from 1 to {MAX_PAGE}; page with `after` for more"),
        ));
    }
    let mut lq = ListQuery::from_pairs(&pairs)?;
    lq.limit = first;
    Ok(lq)
}

fn filter_pairs(
    fields: &[Arc<FieldModel>],
    filter: &ObjectAccessor<'_>,
    pairs: &mut Vec<(String, String)>,
) -> Result<(), Error> {
    for f in fields {
        let Some(ops) = filter.get(&f.gql).filter(|v| !v.is_null()) else {
            continue;
        };
        let ops = ops
            .object()
            .map_err(|e| Error::invalid_field(f.gql.clone(), "invalid", e.message.clone()))?;
        if f.ty == crm_records::meta::FieldType::Address {
            for (part, cond) in ops.iter().filter(|(_, v)| !v.is_null()) {
                let cond = cond.object().map_err(|e| {
                    Error::invalid_field(f.gql.clone(), "invalid", e.message.clone())
                })?;
                push_ops(f, &format!("{}.{}", f.path, part.as_str()), &cond, pairs);
            }
        } else {
            push_ops(f, &f.path, &ops, pairs);
        }
    }
    Ok(())
}

fn push_ops(
    f: &FieldModel,
    path: &str,
    ops: &ObjectAccessor<'_>,
    pairs: &mut Vec<(String, String)>,
) {
    for (op, value) in ops.iter().filter(|(_, v)| !v.is_null()) {
        let op = match op.as_str() {
            "isNull" => "is_null",
            other => other,
        };
        pairs.push((
            format!("filter[{path}][{op}]"),
            filter_value(f, value.as_value()),
        ));
    }
}

fn connection<'a>(ctx: &'a ResolverContext<'_>) -> async_graphql::Result<&'a Connection> {
    ctx.parent_value.try_downcast_ref::<Connection>()
}

pub fn connection_edges(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let conn = connection(&ctx)?;
        Ok(Some(FieldValue::list(conn.edges.iter().map(|(r, c)| {
            FieldValue::owned_any(Edge(r.clone(), c.clone()))
        }))))
    })
}

pub fn connection_nodes(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let conn = connection(&ctx)?;
        Ok(Some(FieldValue::list(
            conn.edges
                .iter()
                .map(|(r, _)| FieldValue::owned_any(r.clone())),
        )))
    })
}

pub fn connection_page_info(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let conn = connection(&ctx)?;
        let info = serde_json::json!({
            "hasNextPage": conn.has_next,
            "hasPreviousPage": conn.query.cursor.is_some(),
            "startCursor": conn.edges.first().map(|(_, c)| c.clone()),
            "endCursor": conn.edges.last().map(|(_, c)| c.clone()),
        });
        Ok(Some(FieldValue::owned_any(crate::schema::JsonObject(info))))
    })
}

pub fn connection_total(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let conn = connection(&ctx)?;
        let session = session(&ctx)?;
        let (mut tx, schema) = session.begin(conn.object).await?;
        let mut lq = conn.query.clone();
        lq.cursor = None;
        let n = query::count(&mut tx, &schema, &session.access(conn.object), &lq)
            .await
            .map_err(|e| session.fail(e))?;
        Ok(Some(FieldValue::value(n)))
    })
}

pub fn edge_cursor(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    let v = ctx
        .parent_value
        .try_downcast_ref::<Edge>()
        .ok()
        .map(|e| FieldValue::value(e.1.clone()));
    FieldFuture::Value(v)
}

pub fn edge_node(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    let v = ctx
        .parent_value
        .try_downcast_ref::<Edge>()
        .ok()
        .map(|e| FieldValue::owned_any(e.0.clone()));
    FieldFuture::Value(v)
}

/// The record a relation field points to (`customer` beside `customerId`), batched per
/// object; null when it is gone or outside the caller's scope.
pub fn link_field(name: &str, f: &Arc<FieldModel>, target: ObjectKey, target_type: &str) -> Field {
    let model = f.clone();
    Field::new(name.to_owned(), TypeRef::named(target_type), move |ctx| {
        let model = model.clone();
        FieldFuture::new(async move {
            let Some(id) = ctx
                .parent_value
                .try_downcast_ref::<Rec>()
                .ok()
                .and_then(|rec| raw(&model, &rec.0).as_str().and_then(|s| s.parse().ok()))
            else {
                return Ok(None);
            };
            let session = session(&ctx)?;
            let loader = loaders::records(&session, target);
            let found = loader.load_one(id).await?;
            Ok(found.map(FieldValue::owned_any))
        })
    })
    .description(format!("The {target_type} that {} names.", f.gql))
}

/// A related list: the records of another object whose relation field points here.
pub fn related_field(r: &RelatedList, child_type: &str) -> Field {
    let (child, via) = (r.child, r.via.clone());
    Field::new(
        r.gql.clone(),
        TypeRef::named_nn_list_nn(child_type),
        move |ctx| {
            let via = via.clone();
            FieldFuture::new(async move {
                let session = session(&ctx)?;
                let first = first_arg(&ctx)?;
                if !(1..=MAX_PAGE).contains(&first) {
                    return Err(session.fail(Error::invalid_field(
                        "first",
                        "invalid",
                        format!("first must be from 1 to {MAX_PAGE}"),
                    )));
                }
                let Some(id) = parent_id(&ctx) else {
                    return Ok(None);
                };
                let loader = loaders::related(&session, child, &via, first);
                let found = loader.load_one(id).await?.unwrap_or_default();
                Ok(Some(FieldValue::list(
                    found.into_iter().map(FieldValue::owned_any),
                )))
            })
        },
    )
    .argument(
        InputValue::new("first", TypeRef::named(TypeRef::INT))
            .description("At most this many, newest first (default 20, at most 200)."),
    )
    .description(format!("{child_type} records whose {} points here.", r.via))
}

/// A customer's timeline (activities, tasks, tickets, stage moves, history), newest first.
pub fn timeline_field() -> Field {
    Field::new(
        "timeline",
        TypeRef::named_nn_list_nn("TimelineEntry"),
        |ctx| {
            FieldFuture::new(async move {
                let session = session(&ctx)?;
                let first = first_arg(&ctx)?.clamp(1, MAX_PAGE);
                let Some(id) = parent_id(&ctx) else {
                    return Ok(None);
                };
                let (mut tx, schema) = session.begin(ObjectKey::Customers).await?;
                let page = crm_records::timeline::customer_timeline(
                    &mut tx,
                    &schema,
                    &session.access(ObjectKey::Customers),
                    &session.caller,
                    id,
                    None,
                    first,
                )
                .await
                .map_err(|e| session.fail(e))?;
                Ok(Some(FieldValue::list(page.items.into_iter().map(|e| {
                    FieldValue::owned_any(crate::schema::JsonObject(serde_json::json!({
                        "kind": e.kind,
                        "at": e.at,
                        "id": e.id,
                        "data": e.data,
                    })))
                }))))
            })
        },
    )
    .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
}

/// `me`: who this request acts as.
pub fn me_field() -> Field {
    Field::new("me", TypeRef::named_nn("Me"), |ctx| {
        FieldFuture::new(async move {
            let session = session(&ctx)?;
            let p = &session.ctx.principal;
            let mut permissions: Vec<String> = session
                .caller
                .grants
                .permissions
                .iter()
                .map(|p| p.as_str().into_owned())
                .collect();
            permissions.sort();
            Ok(Some(FieldValue::owned_any(crate::schema::JsonObject(
                serde_json::json!({
                    "id": p.id,
                    "userId": session.caller.user_id,
                    "name": p.name,
                    "kind": format!("{:?}", p.kind).to_lowercase(),
                    "tenantId": session.ctx.tenant.id,
                    "permissions": permissions,
                }),
            ))))
        })
    })
}

/// A JSON value for a scalar field of a `JsonObject` type.
pub fn json_to_value(v: &serde_json::Value) -> Option<FieldValue<'static>> {
    if v.is_null() {
        return None;
    }
    GqlValue::from_json(v.clone()).ok().map(FieldValue::value)
}
