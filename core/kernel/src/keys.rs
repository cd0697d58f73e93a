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

/// The tenant's data key as stored (wrapped by the master key), if it has one: what a backup
/// carries so the tenant's encrypted fields stay readable where it is restored.
pub async fn wrapped_data_key(tx: &mut TenantTx) -> Result<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar("SELECT data_key FROM settings")
        .fetch_one(tx.conn())
        .await?)
}

/// Checks that the tenant's data key (if any) opens with `master`; when it does not and
/// `previous` is given (the master key of the server the data came from), re-wraps it under
/// `master`. 409 `encryption.master_key_mismatch` when neither opens it.
pub async fn adopt_data_key(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    previous: Option<&MasterKey>,
) -> Result<()> {
    let Some(wrapped) = wrapped_data_key(tx).await? else {
        return Ok(());
    };
    let mismatch = || {
        Error::conflict(
            "encryption.master_key_mismatch",
            "the tenant's data key was wrapped by another master key; give that server's master \
             key so it can be re-wrapped under this server's",
        )
    };
    let Some(master) = master else {
        return Err(mismatch());
    };
    if DataKey::unwrap(master, &wrapped).is_ok() {
        return Ok(());
    }
    let key = previous
        .and_then(|old| DataKey::unwrap(old, &wrapped).ok())
        .ok_or_else(mismatch)?;
    let bytes = key
        .wrap(master)
        .map_err(|e| Error::internal(format!("wrapping data key: {e}")))?;
    sqlx::query("UPDATE settings SET data_key = $1")
        .bind(bytes)
        .execute(tx.conn())
        .await?;
    Ok(())
}
