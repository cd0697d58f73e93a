//! The tenant's data key for encrypted fields: created on first need, stored in `settings`
//! wrapped by the server master key, unwrapped per request.

use crate::crypto::{DataKey, MasterKey};
use crate::db::TenantTx;
use crate::error::{Error, Result};

/// The tenant's data key, creating it if `create` and none exists yet.
pub async fn data_key(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    create: bool,
) -> Result<Option<DataKey>> {
    let Some(master) = master else {
        return Err(Error::conflict(
            "encryption.unavailable",
            "the server has no master key configured (set master_key / CRM_MASTER_KEY); encrypted fields cannot be used",
        ));
    };
    // Lock the row only when a key may be created, so reads never queue behind each other.
    let sql = if create {
        "SELECT data_key FROM settings FOR UPDATE"
    } else {
        "SELECT data_key FROM settings"
    };
    let wrapped: Option<Vec<u8>> = sqlx::query_scalar(sql).fetch_one(tx.conn()).await?;
    match wrapped {
        Some(bytes) => DataKey::unwrap(master, &bytes).map(Some).map_err(|e| {
            Error::internal(format!(
                "tenant data key cannot be unwrapped with this master key: {e}"
            ))
        }),
        None if create => {
            let key = DataKey::generate();
            let bytes = key
                .wrap(master)
                .map_err(|e| Error::internal(format!("wrapping data key: {e}")))?;
            sqlx::query("UPDATE settings SET data_key = $1")
                .bind(bytes)
                .execute(tx.conn())
                .await?;
            Ok(Some(key))
        }
        None => Ok(None),
    }
}
