//! Relation fields between records: a uuid column with a real foreign key and an index. This
//! module keeps them honest on both ends: a record may only point to a live record the writer
//! can see, and deleting a record follows each pointing field's `on_delete` — `restrict`
//! (409 naming the counts), `set_null` (the field emptied, with history) or `cascade` (the
//! pointing records go to the recycle bin with it, or are purged with it). Consequences run
//! as the platform on behalf of the same actor: deleting a policy the caller may delete takes
//! its claims along whoever owns them.

use crate::engine::{self, Access, Input, Visibility};
use crate::fields::{FieldDef, OnDelete};
use crate::history;
use crate::meta::{FieldType, ObjectKey};
use crate::schema::ObjectSchema;
use crate::values::SqlValue;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde_json::json;
use uuid::Uuid;

/// How deep deletions may cascade (a chain of objects, or a cycle of cascading relations).
pub const MAX_CASCADE_DEPTH: u8 = 8;

/// Whether the record `id` of `object` is live and within `access`'s scope on that object.
pub async fn visible(
    tx: &mut TenantTx,
    access: &Access<'_>,
    object: ObjectKey,
    id: Uuid,
) -> Result<bool> {
    let scope = access.scope_on(object);
    match engine::ensure_visible(tx, object, scope, id, Visibility::Live).await {
        Ok(()) => Ok(true),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A record may only point to live records the writer can see: each custom relation value
/// in `input` is checked (422 `unknown_reference` naming the field otherwise, the same
/// answer for a record that does not exist and one that is out of sight).
pub async fn check_targets(
    tx: &mut TenantTx,
    access: &Access<'_>,
    input: &Input<'_>,
) -> Result<()> {
    for (field, value) in &input.values {
        let (FieldType::Relation, true, Some(target), SqlValue::Uuid(id)) =
            (field.ty, field.custom, field.target, value)
        else {
            continue;
        };
        if !visible(tx, access, target, *id).await? {
            return Err(Error::invalid_field(
                field.path(),
                "unknown_reference",
                format!("no {target} record {id} that you can see"),
            ));
        }
    }
    Ok(())
}

async fn count_pointing(
    tx: &mut TenantTx,
    field: &FieldDef,
    id: Uuid,
    live_only: bool,
) -> Result<i64> {
    let sql = format!(
        "SELECT count(*) FROM \"{}\" WHERE \"{}\" = $1{}",
        field.object.table(),
        field.key.column(),
        if live_only {
            " AND deleted_at IS NULL"
        } else {
            ""
        }
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(id)
        .fetch_one(tx.conn())
        .await?)
}

/// 409 `record.referenced` when a `restrict` relation still points to the record: live
/// records for a move to the recycle bin, any record (binned ones too) for a purge.
pub async fn check_restrict(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    id: Uuid,
    purge: bool,
) -> Result<()> {
    let mut blocking = Vec::new();
    for field in &schema.referrers {
        if field.on_delete != Some(OnDelete::Restrict) {
            continue;
        }
        let n = count_pointing(tx, field, id, !purge).await?;
        if n > 0 {
            blocking.push(format!("{}.{}: {n}", field.object, field.key));
        }
    }
    if blocking.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(
        "record.referenced",
        format!(
            "records still point to this {} ({}); delete or repoint them first, or change the relation's on_delete",
            schema.noun(),
            blocking.join(", ")
        ),
    ))
}

/// Applies `set_null` and `cascade` to the records pointing to `id` (which is being moved to
/// the recycle bin, or purged). For a purge this runs before the delete, so no foreign key
/// is left pointing.
pub async fn apply_on_delete(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    purge: bool,
    depth: u8,
) -> Result<()> {
    let pointing: Vec<&FieldDef> = schema
        .referrers
        .iter()
        .filter(|f| matches!(f.on_delete, Some(OnDelete::SetNull | OnDelete::Cascade)))
        .collect();
    if pointing.is_empty() {
        return Ok(());
    }
    if depth >= MAX_CASCADE_DEPTH {
        return Err(Error::conflict(
            "record.cascade_too_deep",
            format!(
                "deleting this {} would cascade through more than {MAX_CASCADE_DEPTH} levels of related records; delete the related records first",
                schema.noun()
            ),
        ));
    }
    let platform = access.as_platform();
    for field in pointing {
        let table = field.object.table();
        let column = field.key.column();
        let live = if purge { "" } else { " AND deleted_at IS NULL" };
        match field.on_delete {
            Some(OnDelete::SetNull) => {
                let emptied: Vec<Uuid> = sqlx::query_scalar(&format!(
                    "UPDATE \"{table}\" SET \"{column}\" = NULL, version = version + 1, updated_at = now() \
                     WHERE \"{column}\" = $1{live} RETURNING id"
                ))
                .bind(id)
                .fetch_all(tx.conn())
                .await?;
                let path = if field.object.is_custom() {
                    field.key.to_string()
                } else {
                    format!("custom.{}", field.key)
                };
                let changes = json!({ path: { "before": id, "after": null } });
                for child in emptied {
                    history::log(
                        tx,
                        field.object,
                        child,
                        "updated",
                        access.actor,
                        &changes,
                        json!({ "changes": changes }),
                    )
                    .await?;
                }
            }
            Some(OnDelete::Cascade) => {
                let children: Vec<Uuid> = sqlx::query_scalar(&format!(
                    "SELECT id FROM \"{table}\" WHERE \"{column}\" = $1{live} ORDER BY id"
                ))
                .bind(id)
                .fetch_all(tx.conn())
                .await?;
                if children.is_empty() {
                    continue;
                }
                let child_schema = ObjectSchema::load(tx, field.object).await?;
                for child in children {
                    if purge {
                        Box::pin(crate::service::purge_nested(
                            tx,
                            &child_schema,
                            &platform,
                            child,
                            depth + 1,
                        ))
                        .await?;
                    } else {
                        Box::pin(crate::service::soft_delete_nested(
                            tx,
                            &child_schema,
                            &platform,
                            child,
                            depth + 1,
                        ))
                        .await?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The records of `child` that point to record `id` of `parent` (a customer's policies):
/// 404 unless the caller sees that record; `via` names the relation field when `child` has
/// several pointing to `parent`. Filters, sort and paging as for any list.
pub async fn list_related(
    tx: &mut TenantTx,
    child: &ObjectSchema,
    access: &Access<'_>,
    parent: ObjectKey,
    id: Uuid,
    via: Option<&str>,
    lq: &crate::query::ListQuery,
) -> Result<crm_core::context::Page<serde_json::Value>> {
    access.require(child.object, crate::meta::RecordAction::Read)?;
    engine::ensure_visible(tx, parent, access.scope_on(parent), id, Visibility::Live).await?;
    let pointing: Vec<String> = child.pointing_to(parent).map(|f| f.path()).collect();
    let field =
        match (via, pointing.as_slice()) {
            (Some(v), _) if pointing.iter().any(|p| p == v) => v.to_owned(),
            (Some(v), _) => {
                return Err(Error::invalid_field(
                    "via",
                    "unknown_relation",
                    format!(
                    "{} has no relation field '{v}' pointing to {parent}; its relations to it: {}",
                    child.object,
                    if pointing.is_empty() { "none".to_owned() } else { pointing.join(", ") }
                ),
                ))
            }
            (None, [one]) => one.clone(),
            (None, []) => {
                return Err(Error::not_found(
                    "relation.not_found",
                    format!(
                        "{} has no relation field pointing to {parent}",
                        child.object
                    ),
                ))
            }
            (None, several) => {
                return Err(Error::invalid_field(
                    "via",
                    "required",
                    format!(
                        "{} points to {parent} through {}; name one with ?via=",
                        child.object,
                        several.join(", ")
                    ),
                ))
            }
        };
    let mut lq = lq.clone();
    lq.filters.push(crate::query::Filter {
        field,
        op: crate::query::Op::Eq,
        value: id.to_string(),
    });
    crate::query::list(tx, child, access, &lq).await
}
