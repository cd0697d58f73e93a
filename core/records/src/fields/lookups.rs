//! What other parts of the engine ask of the field definitions: who points at an object,
//! and forgetting a dropped object's fields.

use super::{from_row, FieldDef, FieldRow, COLUMNS};
use crate::meta::ObjectKey;
use crm_core::db::TenantTx;
use crm_core::error::Result;

/// The relation fields of other objects that point to `object`, as `object.key`.
pub(crate) async fn referencing(tx: &mut TenantTx, object: ObjectKey) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT object || '.' || key FROM field_defs WHERE object <> $1 \
         AND (target = $1 OR (type = 'rollup' AND rollup ->> 'child' = $1)) ORDER BY 1",
    )
    .bind(object.as_str())
    .fetch_all(tx.conn())
    .await?)
}

/// Forgets the field definitions of a dropped object.
pub(crate) async fn forget_object(tx: &mut TenantTx, object: ObjectKey) -> Result<()> {
    sqlx::query("DELETE FROM field_defs WHERE object = $1")
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The relation fields (of any object) that point to `object`.
pub(crate) async fn relations_to(tx: &mut TenantTx, object: ObjectKey) -> Result<Vec<FieldDef>> {
    let rows: Vec<FieldRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM field_defs WHERE target = $1 AND type = 'relation' ORDER BY object, key"
    ))
    .bind(object.as_str())
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(from_row).collect()
}
