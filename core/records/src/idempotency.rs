//! `Idempotency-Key` on POST: the first request with a key stores what it made (the record
//! id and status, never the record itself, which may hold decrypted values) in the same
//! transaction as its effect; a retry with the same key gets that record, read afresh as
//! the caller may see it, instead of a second record. A concurrent retry waits on the key's
//! row until the first commits. Keys expire after 24 hours.

use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A stored response to replay: re-read the record and answer with `status`.
pub struct Replay {
    pub status: u16,
    pub record_id: Uuid,
}

/// Claims `key` for this principal and request; returns the stored response when the key
/// was used before for the same request.
pub async fn claim(
    tx: &mut TenantTx,
    principal: &str,
    key: &str,
    method_path: &str,
    body: &Value,
) -> Result<Option<Replay>> {
    if key.is_empty() || key.len() > 200 {
        return Err(Error::invalid_field(
            "Idempotency-Key",
            "invalid",
            "must be 1-200 characters",
        ));
    }
    let fingerprint = format!(
        "{method_path} {}",
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    );
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours' AND principal = $1 AND key = $2")
        .bind(principal)
        .bind(key)
        .execute(tx.conn())
        .await?;
    let claimed = sqlx::query("INSERT INTO idempotency_keys (principal, key, request) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(principal)
        .bind(key)
        .bind(&fingerprint)
        .execute(tx.conn())
        .await?;
    if claimed.rows_affected() == 1 {
        return Ok(None);
    }
    let (request, status, stored): (String, Option<i32>, Option<Value>) = sqlx::query_as(
        "SELECT request, status, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .fetch_one(tx.conn())
    .await?;
    if request != fingerprint {
        return Err(Error::invalid_field(
            "Idempotency-Key",
            "key_reused",
            "this key was used for a different request; use a new key for each distinct request",
        ));
    }
    let record_id = stored
        .as_ref()
        .and_then(|b| b["id"].as_str())
        .and_then(|id| Uuid::parse_str(id).ok());
    match (status, record_id) {
        (Some(status), Some(record_id)) => Ok(Some(Replay {
            status: status as u16,
            record_id,
        })),
        _ => Err(Error::conflict(
            "idempotency.in_progress",
            "a request with this key is still being processed; retry shortly",
        )),
    }
}

/// Stores what a claimed key's request made (same transaction as the effect): only the
/// record's id, so no value of the record outlives the request in this table.
pub async fn complete(
    tx: &mut TenantTx,
    principal: &str,
    key: &str,
    status: u16,
    record_id: Uuid,
) -> Result<()> {
    let body = serde_json::json!({ "id": record_id });
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Deletes up to `limit` keys older than 24 hours (run while the worker visits a tenant).
pub async fn prune(tx: &mut TenantTx, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE (principal, key) IN (SELECT principal, key \
         FROM idempotency_keys WHERE created_at < now() - interval '24 hours' LIMIT $1)",
    )
    .bind(limit)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}
