//! Changing a custom field: its labels, options, default, flags, and the indexes that
//! follow `unique`, `indexed` and `searchable`.

use super::checks::{
    check_default, check_label, check_option_labels, check_options, check_portal_editable,
    check_searchable, trgm_index,
};
use super::{bump_metadata_version, get, FieldDef};
use crate::meta::ObjectKey;
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// What may change on a custom field; key, type, target and encryption are fixed.
#[derive(Debug, Default, Clone)]
pub struct FieldPatch {
    pub label: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub indexed: Option<bool>,
    /// `Some(None)` removes the default.
    pub default: Option<Option<Value>>,
    pub options: Option<Vec<String>>,
    pub option_labels: Option<Value>,
    pub sensitive: Option<bool>,
    pub portal_editable: Option<bool>,
    pub position: Option<i32>,
    pub searchable: Option<bool>,
}

/// Changes a field's metadata (and its indexes when `unique` / `indexed` change).
pub(crate) async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    object: ObjectKey,
    key: &str,
    patch: FieldPatch,
) -> Result<FieldDef> {
    caller.require(Permission::FieldsManage)?;
    let current = get(tx, object, key).await?;
    if current.sensitive && patch.sensitive == Some(false) && !caller.unmask() {
        // Clearing the flag would unmask the values for everyone, the caller included.
        return Err(Error::forbidden(
            "field.sensitive",
            format!(
                "making '{key}' no longer sensitive shows its values unmasked to everyone; that needs the permission sensitive:read, which you lack"
            ),
        ));
    }
    let mut v = Validator::new();
    if let Some(label) = &patch.label {
        check_label(&mut v, "label", label);
    }
    let options = patch
        .options
        .clone()
        .unwrap_or_else(|| current.options.clone());
    if patch.options.is_some() {
        check_options(&mut v, current.ty, &options);
    }
    if let Some(labels) = &patch.option_labels {
        check_option_labels(&mut v, labels, &options);
    }
    // A changed option list must still contain the default (the new one, or the kept one).
    let default_after = match &patch.default {
        Some(d) => d.as_ref(),
        None if patch.options.is_some() => current.default.as_ref(),
        None => None,
    };
    check_default(
        &mut v,
        current.ty,
        &options,
        current.target,
        current.encrypted,
        default_after,
    );
    if current.encrypted && patch.sensitive == Some(false) {
        v.push(FieldError::new(
            "sensitive",
            "not_allowed",
            "encrypted fields are always sensitive",
        ));
    }
    check_portal_editable(&mut v, object, patch.portal_editable);
    if patch.searchable == Some(true) {
        check_searchable(&mut v, current.ty, current.encrypted);
    }
    v.finish()?;

    let table = object.table();
    let column = current.key.column();
    let searchable = patch.searchable.unwrap_or(current.searchable);
    if searchable && !current.searchable {
        sqlx::query(&trgm_index(&table, &column))
            .execute(tx.conn())
            .await?;
    } else if !searchable && current.searchable {
        sqlx::query(&format!("DROP INDEX IF EXISTS \"{table}_{column}_trgm\""))
            .execute(tx.conn())
            .await?;
    }
    let index_target = if current.encrypted {
        current.key.index_column()
    } else {
        column.clone()
    };
    let unique = patch.unique.unwrap_or(current.unique);
    if unique != current.unique {
        if unique {
            sqlx::query(&format!(
                "CREATE UNIQUE INDEX \"{table}_{column}_unique\" ON {table} (\"{index_target}\") WHERE deleted_at IS NULL"
            ))
            .execute(tx.conn())
            .await
            .map_err(|e| match crm_core::error::unique_violation(&e) {
                Some(_) => Error::conflict(
                    "field.duplicate_values",
                    format!("records already share values of '{key}'; make them distinct before making it unique"),
                ),
                None => e.into(),
            })?;
        } else {
            sqlx::query(&format!("DROP INDEX IF EXISTS \"{table}_{column}_unique\""))
                .execute(tx.conn())
                .await?;
        }
    }
    // A relation keeps its index whatever is asked: its foreign key needs it.
    let relation = current.ty == crate::meta::FieldType::Relation;
    let indexed = patch.indexed.unwrap_or(current.indexed) || unique || relation;
    let had_plain_index = current.indexed && !current.unique && !current.encrypted && !relation;
    let wants_plain_index = indexed && !unique && !current.encrypted && !relation;
    if wants_plain_index && !had_plain_index {
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_{column}_idx\" ON {table} (\"{column}\") WHERE deleted_at IS NULL"
        ))
        .execute(tx.conn())
        .await?;
    } else if !wants_plain_index && had_plain_index {
        sqlx::query(&format!("DROP INDEX IF EXISTS \"{table}_{column}_idx\""))
            .execute(tx.conn())
            .await?;
    }
    let default = match patch.default {
        Some(d) => d,
        None => current.default.clone(),
    };
    sqlx::query(
        "UPDATE field_defs SET label = $3, labels = $4, required = $5, is_unique = $6, indexed = $7, \
         default_value = $8, options = $9, option_labels = $10, sensitive = $11, position = $12, portal_editable = $13, \
         searchable = $14, updated_at = now() \
         WHERE object = $1 AND key = $2",
    )
    .bind(object.as_str())
    .bind(key)
    .bind(patch.label.as_deref().map(str::trim).unwrap_or(&current.label))
    .bind(sqlx::types::Json(patch.labels.as_ref().unwrap_or(&current.labels)))
    .bind(patch.required.unwrap_or(current.required))
    .bind(unique)
    .bind(indexed)
    .bind(default)
    .bind(sqlx::types::Json(&options))
    .bind(patch.option_labels.unwrap_or(current.option_labels))
    .bind(patch.sensitive.unwrap_or(current.sensitive) || current.encrypted)
    .bind(patch.position.unwrap_or(current.position))
    .bind(patch.portal_editable.unwrap_or(current.portal_editable))
    .bind(searchable)
    .execute(tx.conn())
    .await?;
    bump_metadata_version(tx).await?;
    get(tx, object, key).await
}
