//! Login throttling across tenants: attempts are counted per (tenant, e-mail) and per client
//! IP in `platform.login_throttle`; past the limit a key is locked for a time that doubles
//! with each further failure. Keys are hashes, so no e-mail address sits in the platform schema.
//!
//! An attempt is counted *before* its password is checked ([`begin_attempt`], one atomic
//! statement per key), so parallel guesses cannot slip through between a check and a count:
//! whatever the concurrency, a key sees at most `max_failures` password checks before it
//! locks. A successful login forgets the account's count and gives the address its attempt
//! back.

use crm_core::Result;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// How strict throttling is.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures allowed before a key is locked.
    pub max_failures: i32,
    /// The same for a client address ([`ip_key`]): many people of one office share one
    /// address, so it is allowed more than one account.
    pub max_failures_per_address: i32,
    /// First lock duration; each further failure doubles it.
    pub base_lock_secs: i64,
    /// Longest lock.
    pub max_lock_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_address: 50,
            base_lock_secs: 30,
            max_lock_secs: 3600,
        }
    }
}

impl ThrottlePolicy {
    /// The failures `key` is allowed before it locks.
    fn limit(&self, key: &str) -> i32 {
        if key.starts_with("ip:") {
            self.max_failures_per_address
        } else {
            self.max_failures
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

/// Counts an attempt against every key before its password is checked. `Err(secs)`: refused
/// without checking, a key is locked (or this attempt is one past the limit, which locks it)
/// for `secs` more seconds. Attempts on a locked key do not lengthen its lock.
pub async fn begin_attempt(
    pool: &PgPool,
    keys: &[String],
    policy: ThrottlePolicy,
) -> Result<std::result::Result<(), u64>> {
    let mut locked: Option<u64> = None;
    for k in keys {
        let (failures, state): (i32, String) = sqlx::query_as(
            "INSERT INTO platform.login_throttle AS t (key, failures, updated_at) VALUES ($1, 1, now()) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN coalesce(t.locked_until, '-infinity') > now() THEN t.failures \
                               WHEN t.updated_at < now() - interval '15 minutes' \
                                 AND t.locked_until IS NULL THEN 1 \
                               ELSE t.failures + 1 END, \
               updated_at = CASE WHEN coalesce(t.locked_until, '-infinity') > now() \
                                 THEN t.updated_at ELSE now() END \
             RETURNING failures, CASE WHEN t.locked_until IS NULL THEN 'open' \
               WHEN t.locked_until > now() THEN \
                 ceil(extract(epoch FROM t.locked_until - now()))::bigint::text \
               ELSE 'lapsed' END",
        )
        .bind(k)
        .fetch_one(pool)
        .await
        .map_err(crm_core::db::unavailable)?;
        let secs = match state.as_str() {
            "open" if failures > policy.limit(k) => {
                // One past the limit: locked as the last checked failure would have locked it.
                Some(lock(pool, k, failures - 1, policy).await?)
            }
            "open" => None,
            // A lock ran out: one attempt (whoever clears it first) is checked again.
            "lapsed" => {
                let cleared = sqlx::query(
                    "UPDATE platform.login_throttle SET locked_until = NULL \
                     WHERE key = $1 AND locked_until <= now()",
                )
                .bind(k)
                .execute(pool)
                .await
                .map_err(crm_core::db::unavailable)?;
                (cleared.rows_affected() == 0).then_some(policy.base_lock_secs.max(1) as u64)
            }
            locked_secs => Some(locked_secs.parse::<u64>().unwrap_or(1).max(1)),
        };
        if let Some(secs) = secs {
            locked = Some(locked.map_or(secs, |l| l.max(secs)));
        }
    }
    Ok(locked.map_or(Ok(()), Err))
}

/// The attempt begun with [`begin_attempt`] failed its password check: locks the keys whose
/// count has reached the limit.
pub async fn attempt_failed(pool: &PgPool, keys: &[String], policy: ThrottlePolicy) -> Result<()> {
    for k in keys {
        let failures: Option<i32> = sqlx::query_scalar(
            "SELECT failures FROM platform.login_throttle WHERE key = $1 \
               AND coalesce(locked_until, '-infinity') <= now()",
        )
        .bind(k)
        .fetch_optional(pool)
        .await
        .map_err(crm_core::db::unavailable)?;
        if let Some(failures) = failures.filter(|f| *f >= policy.limit(k)) {
            lock(pool, k, failures, policy).await?;
        }
    }
    Ok(())
}

/// The attempt succeeded: the account starts again from zero, the address gets its attempt
/// back.
pub async fn attempt_succeeded(pool: &PgPool, account: &str, address: &str) -> Result<()> {
    reset(pool, account).await?;
    give_back(pool, address).await
}

/// Takes back the count of an attempt that succeeded (only failures add up).
pub async fn give_back(pool: &PgPool, key: &str) -> Result<()> {
    sqlx::query(
        "UPDATE platform.login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $1",
    )
    .bind(key)
    .execute(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    Ok(())
}

/// Locks `key` for the doubling time its `failures` earn; returns the seconds.
async fn lock(pool: &PgPool, key: &str, failures: i32, policy: ThrottlePolicy) -> Result<u64> {
    let doublings = (failures - policy.limit(key)).clamp(0, 20) as u32;
    let secs = policy
        .base_lock_secs
        .saturating_mul(1_i64 << doublings)
        .min(policy.max_lock_secs)
        .max(1);
    sqlx::query(
        "UPDATE platform.login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE key = $1",
    )
    .bind(key)
    .bind(secs as f64)
    .execute(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    Ok(secs as u64)
}

/// Deletes counters idle for a day and not locked (called by the worker now and then).
pub async fn prune(pool: &PgPool) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM platform.login_throttle WHERE updated_at < now() - interval '1 day' \
           AND coalesce(locked_until, '-infinity') < now()",
    )
    .execute(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    Ok(done.rows_affected())
}

/// Forgets the failures of a key (after a successful login).
pub async fn reset(pool: &PgPool, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM platform.login_throttle WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
