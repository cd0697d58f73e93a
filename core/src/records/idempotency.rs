//! `Idempotency-Key` on POST: the first request with a key stores its response in the same
//! transaction as its effect; a retry with the same key gets that response back instead of
//! a second record. A concurrent retry waits on the key's row until the first commits.

use crate::db::TenantTx;
use crate::error::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A stored response to replay.
pub struct Replay {
    pub status: u16,
    pub body: Value,
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
    match (status, stored) {
        (Some(status), Some(body)) => Ok(Some(Replay {
            status: status as u16,
            body,
        })),
        _ => Err(Error::conflict(
            "idempotency.in_progress",
            "a request with this key is still being processed; retry shortly",
        )),
    }
}

/// Stores the response of a claimed key (same transaction as the effect).
pub async fn complete(
    tx: &mut TenantTx,
    principal: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<()> {
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
