//! What callers do with custom fields, checked against their [`Caller`]: anyone who reads
//! an object's records reads its field definitions; `fields:manage` adds, changes and drops them
//! (audited); an encrypted field needs the tenant's data key, made on first use.

use super::fields::{self, FieldDef, FieldPatch, NewField};
use super::meta::{ObjectKey, RecordAction};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::keys;

/// 404 `object.not_found` unless the tenant has `object` (built-in objects it always has).
pub async fn ensure_object(tx: &mut TenantTx, object: ObjectKey) -> Result<()> {
    if let ObjectKey::Custom(name) = object {
        if crm_core::objects::get(tx, name).await?.is_none() {
            return Err(crm_core::objects::not_found(name.as_str()));
        }
    }
    Ok(())
}

/// The custom fields of `object`, in position order.
pub async fn list(tx: &mut TenantTx, caller: &Caller, object: ObjectKey) -> Result<Vec<FieldDef>> {
    ensure_object(tx, object).await?;
    caller.require(object.permission(RecordAction::Read))?;
    fields::list(tx, object).await
}

/// One custom field.
pub async fn get(
    tx: &mut TenantTx,
    caller: &Caller,
    object: ObjectKey,
    key: &str,
) -> Result<FieldDef> {
    ensure_object(tx, object).await?;
    caller.require(object.permission(RecordAction::Read))?;
    fields::get(tx, object, key).await
}

/// Adds a custom field: its column, its indexes, and for an encrypted field the tenant's data
/// key (422 on `encrypted` when the platform has no master key).
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    master: Option<&MasterKey>,
    object: ObjectKey,
    new: NewField,
    max_fields: i64,
) -> Result<FieldDef> {
    caller.require(Permission::FieldsManage)?;
    ensure_object(tx, object).await?;
    if new.encrypted {
        keys::data_key(tx, master, true)
            .await
            .map_err(|e| match e {
                Error::Conflict { message, .. } => {
                    Error::invalid_field("encrypted", "unavailable", message)
                }
                other => other,
            })?;
    }
    let def = fields::create(tx, object, new, max_fields).await?;
    audit::record(
        tx,
        actor,
        "field.created",
        Some(("field", format!("{object}.{}", def.key))),
        serde_json::json!({ "type": def.ty.as_str() }),
    )
    .await?;
    Ok(def)
}

/// Changes a field's metadata (clearing `sensitive` also needs `sensitive:read`).
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    object: ObjectKey,
    key: &str,
    patch: FieldPatch,
) -> Result<FieldDef> {
    caller.require(Permission::FieldsManage)?;
    ensure_object(tx, object).await?;
    let def = fields::update(tx, caller, object, key, patch).await?;
    audit::record(
        tx,
        actor,
        "field.updated",
        Some(("field", format!("{object}.{}", def.key))),
        serde_json::json!({}),
    )
    .await?;
    Ok(def)
}

/// Drops a field's column with every value in it; `confirmed` must say the caller means it
/// (400 `field.confirm_required` otherwise).
pub async fn delete(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    object: ObjectKey,
    key: &str,
    confirmed: bool,
) -> Result<()> {
    caller.require(Permission::FieldsManage)?;
    ensure_object(tx, object).await?;
    if !confirmed {
        return Err(Error::bad_request(
            "field.confirm_required",
            "deleting a field drops its column and every value in it for good; repeat with ?confirm=true",
        ));
    }
    fields::delete(tx, object, key).await?;
    audit::record(
        tx,
        actor,
        "field.deleted",
        Some(("field", format!("{object}.{key}"))),
        serde_json::json!({}),
    )
    .await
}

/// Recomputes a roll-up field on every record of `object` (`fields:manage`, audited): after
/// an import, or to check a total. Returns how many records were updated.
pub async fn rebuild_rollup(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    object: ObjectKey,
    key: &str,
) -> Result<u64> {
    caller.require(Permission::FieldsManage)?;
    ensure_object(tx, object).await?;
    let updated = crate::rollups::rebuild(tx, object, key).await?;
    audit::record(
        tx,
        actor,
        "field.rollup_rebuilt",
        Some(("field", format!("{object}.{key}"))),
        serde_json::json!({ "records": updated }),
    )
    .await?;
    Ok(updated)
}
