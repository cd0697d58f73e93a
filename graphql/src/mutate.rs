//! Mutations: create, update, delete and restore of every object, a ticket reply or note,
//! an opportunity's stage move, and approval decisions — each one the same service call as
//! its REST endpoint, with the caller's access. Each mutation runs in a savepoint of the
//! request's transaction: one that fails leaves nothing behind, the ones before it stay.

use crate::model::{Model, ObjectModel};
use crate::resolve::{arg, parse_id, session, settled_field};
use crate::schema::JsonObject;
use crate::session::Session;
use crate::values::{input_body, Rec};
use async_graphql::dynamic::{Field, FieldValue, InputValue, ResolverContext, TypeRef};
use crm_core::db::TenantTx;
use crm_core::Error;
use crm_records::service::{self, CreateOptions};
use crm_records::ObjectKey;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

/// Runs `work` inside `SAVEPOINT gql_mutation`, rolled back to it when `work` fails.
async fn in_savepoint<T>(
    session: &Session,
    work: impl for<'t> FnOnce(&'t mut TenantTx) -> BoxFuture<'t, Result<T, Error>>,
) -> async_graphql::Result<T> {
    let mut tx = session.tx().await.map_err(|e| session.fail(e))?;
    session.count_call();
    sqlx::query("SAVEPOINT gql_mutation")
        .execute(tx.conn())
        .await
        .map_err(|e| session.fail(e.into()))?;
    match work(&mut tx).await {
        Ok(v) => {
            sqlx::query("RELEASE SAVEPOINT gql_mutation")
                .execute(tx.conn())
                .await
                .map_err(|e| session.fail(e.into()))?;
            Ok(v)
        }
        Err(e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT gql_mutation")
                .execute(tx.conn())
                .await
                .map_err(|e| session.fail(e.into()))?;
            Err(session.fail(e))
        }
    }
}

fn object_of(model: &Model, object: ObjectKey) -> async_graphql::Result<&ObjectModel> {
    model
        .of(object)
        .ok_or_else(|| async_graphql::Error::new("object no longer exists"))
}

fn id_arg(ctx: &ResolverContext<'_>, session: &Session) -> async_graphql::Result<uuid::Uuid> {
    parse_id(ctx.args.try_get("id")?.string()?).map_err(|e| session.fail(e))
}

fn body_arg(
    ctx: &ResolverContext<'_>,
    obj: &ObjectModel,
    session: &Session,
) -> async_graphql::Result<Value> {
    let input = ctx.args.try_get("input")?.object()?;
    input_body(obj, &input).map_err(|m| session.fail(Error::invalid_field("input", "invalid", m)))
}

/// `createX`, `updateX`, `deleteX`, `restoreX` for one object.
pub fn record_mutations(obj: &ObjectModel, model: &Arc<Model>) -> Vec<Field> {
    let (object, t) = (obj.object, obj.type_name.clone());
    let m = model.clone();
    let create = settled_field(format!("create{t}"), TypeRef::named(&t), move |ctx| {
        let m = m.clone();
        Box::pin(async move {
            let session = session(ctx)?;
            let body = body_arg(ctx, object_of(&m, object)?, &session)?;
            let options = CreateOptions {
                allow_duplicate: ctx
                    .args
                    .get("allowDuplicate")
                    .and_then(|v| v.boolean().ok())
                    .unwrap_or(false),
            };
            let s = session.clone();
            let record = in_savepoint(&session, move |tx| {
                Box::pin(async move {
                    let schema = s.schema(tx, object).await?;
                    service::create(tx, &schema, &s.access(object), &body, options).await
                })
            })
            .await?;
            Ok(Some(FieldValue::owned_any(Rec::new(record))))
        })
    })
    .argument(InputValue::new(
        "input",
        TypeRef::named_nn(&obj.names.input),
    ))
    .argument(
        InputValue::new("allowDuplicate", TypeRef::named(TypeRef::BOOLEAN))
            .description("Create even if a customer with the same phone or e-mail exists."),
    )
    .description(format!("Creates a {t}."));

    let m = model.clone();
    let update = settled_field(format!("update{t}"), TypeRef::named(&t), move |ctx| {
        let m = m.clone();
        Box::pin(async move {
            let session = session(ctx)?;
            let id = id_arg(ctx, &session)?;
            let body = body_arg(ctx, object_of(&m, object)?, &session)?;
            let version = match arg(ctx, "version") {
                Some(v) => Some(v.i64()?),
                None => None,
            };
            let s = session.clone();
            let record = in_savepoint(&session, move |tx| {
                Box::pin(async move {
                    let schema = s.schema(tx, object).await?;
                    service::update(tx, &schema, &s.access(object), id, version, &body).await
                })
            })
            .await?;
            Ok(Some(FieldValue::owned_any(Rec::new(record))))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("input", TypeRef::named_nn(&obj.names.input)))
    .argument(
        InputValue::new("version", TypeRef::named(TypeRef::INT))
            .description("The version you read: refused (record.version_mismatch) if it changed since, as If-Match."),
    )
    .description(format!("Changes fields of a {t}."));

    let delete = settled_field(
        format!("delete{t}"),
        TypeRef::named(TypeRef::BOOLEAN),
        move |ctx| {
            Box::pin(async move {
                let session = session(ctx)?;
                let id = id_arg(ctx, &session)?;
                let purge = ctx
                    .args
                    .get("purge")
                    .and_then(|v| v.boolean().ok())
                    .unwrap_or(false);
                let s = session.clone();
                in_savepoint(&session, move |tx| {
                    Box::pin(async move {
                        let schema = s.schema(tx, object).await?;
                        let access = s.access(object);
                        if purge {
                            service::purge(tx, &schema, &access, id).await
                        } else {
                            service::soft_delete(tx, &schema, &access, id).await
                        }
                    })
                })
                .await?;
                Ok(Some(FieldValue::value(true)))
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(
        InputValue::new("purge", TypeRef::named(TypeRef::BOOLEAN))
            .description("Delete for good instead of to the recycle bin (the purge permission)."),
    )
    .description(format!("Moves a {t} to the recycle bin."));

    let restore = settled_field(format!("restore{t}"), TypeRef::named(&t), move |ctx| {
        Box::pin(async move {
            let session = session(ctx)?;
            let id = id_arg(ctx, &session)?;
            let s = session.clone();
            let record = in_savepoint(&session, move |tx| {
                Box::pin(async move {
                    let schema = s.schema(tx, object).await?;
                    service::restore(tx, &schema, &s.access(object), id).await
                })
            })
            .await?;
            Ok(Some(FieldValue::owned_any(Rec::new(record))))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description(format!("Brings a {t} back from the recycle bin."));
    vec![create, update, delete, restore]
}

/// `moveOpportunityStage(id, stage)`: the stage change REST makes with a PATCH (probability
/// follows the stage; the pipeline's rules answer 409).
pub fn move_stage(opportunity_type: &str) -> Field {
    settled_field(
        "moveOpportunityStage",
        TypeRef::named(opportunity_type),
        |ctx| {
            Box::pin(async move {
                let session = session(ctx)?;
                let id = id_arg(ctx, &session)?;
                let stage = ctx.args.try_get("stage")?.string()?.to_owned();
                let s = session.clone();
                let object = ObjectKey::Opportunities;
                let record = in_savepoint(&session, move |tx| {
                    Box::pin(async move {
                        let schema = s.schema(tx, object).await?;
                        let body = json!({ "stage": stage });
                        service::update(tx, &schema, &s.access(object), id, None, &body).await
                    })
                })
                .await?;
                Ok(Some(FieldValue::owned_any(Rec::new(record))))
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("stage", TypeRef::named_nn(TypeRef::STRING)))
}

/// `addTicketComment(ticketId, body, internal)`: a public reply (mailed to the contact) or
/// an internal note.
pub fn add_ticket_comment() -> Field {
    settled_field(
        "addTicketComment",
        TypeRef::named_nn("TicketComment"),
        |ctx| {
            Box::pin(async move {
                let session = session(ctx)?;
                let ticket = parse_id(ctx.args.try_get("ticketId")?.string()?)
                    .map_err(|e| session.fail(e))?;
                let body = ctx.args.try_get("body")?.string()?.to_owned();
                let internal = ctx
                    .args
                    .get("internal")
                    .and_then(|v| v.boolean().ok())
                    .unwrap_or(false);
                let s = session.clone();
                let comment = in_savepoint(&session, move |tx| {
                    Box::pin(async move {
                        let access = s.access(ObjectKey::Tickets);
                        let c = crm_desk::staff::add_comment(tx, &access, ticket, &body, !internal)
                            .await?;
                        serde_json::to_value(c).map_err(|e| Error::internal(e.to_string()))
                    })
                })
                .await?;
                Ok(Some(FieldValue::owned_any(JsonObject(comment))))
            })
        },
    )
    .argument(InputValue::new("ticketId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("body", TypeRef::named_nn(TypeRef::STRING)))
    .argument(
        InputValue::new("internal", TypeRef::named(TypeRef::BOOLEAN))
            .description("An internal note instead of a public reply."),
    )
}

/// `approve(id, comment)` / `reject(id, comment)`: a decision on an approval waiting for you.
pub fn decide(name: &str, approve: bool) -> Field {
    settled_field(name, TypeRef::named("Approval"), move |ctx| {
        Box::pin(async move {
            let session = session(ctx)?;
            let id = id_arg(ctx, &session)?;
            let comment = ctx
                .args
                .get("comment")
                .and_then(|c| c.string().ok().map(str::to_owned));
            let s = session.clone();
            let approval = in_savepoint(&session, move |tx| {
                Box::pin(async move {
                    let a = crm_workflows::approval_service::decide(
                        tx,
                        &s.caller,
                        &s.actor,
                        id,
                        approve,
                        comment.as_deref(),
                    )
                    .await?;
                    serde_json::to_value(a).map_err(|e| Error::internal(e.to_string()))
                })
            })
            .await?;
            Ok(Some(FieldValue::owned_any(JsonObject(approval))))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("comment", TypeRef::named(TypeRef::STRING)))
}
