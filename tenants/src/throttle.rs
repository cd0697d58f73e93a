//! Login throttling across tenants: failures are counted per (tenant, e-mail) and per client
//! IP in `platform.login_throttle`; past the limit a key is locked for a time that doubles
//! with each further failure. Keys are hashes, so no e-mail address sits in the platform schema.

use crm_core::Result;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// How strict throttling is.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures allowed before a key is locked.
    pub max_failures: i32,
    /// First lock duration; each further failure doubles it.
    pub base_lock_secs: i64,
    /// Longest lock.
    pub max_lock_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            base_lock_secs: 30,
            max_lock_secs: 3600,
        }
    }
}

fn key(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{kind}:{}", hex::encode(h.finalize()))
}

/// The key of an account.
pub fn account_key(tenant: Uuid, email: &str) -> String {
    key("acct", &[&tenant.to_string(), email])
}

/// The key of a client address.
pub fn ip_key(ip: &str) -> String {
    key("ip", &[ip])
}

/// Seconds until the longest lock among `keys` ends, if any is locked.
pub async fn locked_for(pool: &PgPool, keys: &[String]) -> Result<Option<u64>> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT max(extract(epoch FROM locked_until - now()))::float8 FROM platform.login_throttle \
         WHERE key = ANY($1) AND locked_until > now()",
    )
    .bind(keys)
    .fetch_one(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    Ok(secs.map(|s| s.ceil().max(1.0) as u64))
}

/// Counts a failure against each key; locks those past the limit. Counters idle for 15
/// minutes (and not locked) start again from zero.
pub async fn record_failure(pool: &PgPool, keys: &[String], policy: ThrottlePolicy) -> Result<()> {
    for k in keys {
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO platform.login_throttle AS t (key, failures, updated_at) VALUES ($1, 1, now()) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN t.updated_at < now() - interval '15 minutes' \
                               AND coalesce(t.locked_until, '-infinity') < now() \
                          THEN 1 ELSE t.failures + 1 END, \
               updated_at = now() \
             RETURNING failures",
        )
        .bind(k)
        .fetch_one(pool)
        .await?;
        if failures >= policy.max_failures {
            let doublings = (failures - policy.max_failures).min(20) as u32;
            let lock = policy
                .base_lock_secs
                .saturating_mul(1_i64 << doublings)
                .min(policy.max_lock_secs);
            sqlx::query(
                "UPDATE platform.login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE key = $1",
            )
            .bind(k)
            .bind(lock as f64)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Forgets the failures of a key (after a successful login).
pub async fn reset(pool: &PgPool, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM platform.login_throttle WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
