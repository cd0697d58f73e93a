//! The read limit and the read-access log (schema v12): a tenant may cap how many customer
//! records one user reads per window, and may log every customer record read.
//!
//! - **What counts**: customer records a caller receives: `GET /customers/{id}` (one), each
//!   row of a customer list or search page, each row of a customer export. Other objects,
//!   counts, timelines and duplicates do not count. The interface calls [`account`] with the
//!   ids it is about to hand out; it is the one function every read path goes through.
//! - **Who counts**: the user a principal acts for ([`Caller::user_id`]): a session's user, or
//!   an API key's creator (the account that answers for the key). A principal holding one of
//!   `exempt_roles` (a key: its own role) is never counted, but is still logged. A key
//!   without a creator is logged only.
//! - **Windows** are fixed (`window_minutes` long, aligned on the Unix epoch): one row per
//!   user in `read_counters`, reset when a read falls in a newer window.
//! - **Over the limit**: the read that would pass `max_reads` is refused (the counter is left
//!   as it was, nothing is logged) and the user is frozen in the same transaction
//!   ([`freeze`]): `users.frozen_at`, every session revoked, audit `user.frozen`, an in-app
//!   notification and a mail to every active user holding `users:manage`. [`account`]
//!   returns that as [`ReadVerdict::Frozen`], not as an `Err`, so the interface commits the
//!   freeze and then answers 403 `user.frozen` ([`ReadVerdict::admit`]). From then on the
//!   user's old tokens, new logins (password or MFA) and API keys get 403 `user.frozen`
//!   until an administrator unfreezes it (`staff::unfreeze`, audited `user.unfrozen`, which
//!   also clears the user's counter).
//! - **Cost**: the settings travel with the [`Principal`], read by the statement that checks
//!   the session or key (`READ_POLICY_SQL`): with both features off (the default) a read adds
//!   no statement at all; with either on, one statement counts, checks and logs
//!   ([`account`]).
//! - **Schema one version behind**: the settings are read through the row's JSON, so a tenant
//!   without v12 reads as "both off" and nothing is counted or logged.
//! - **Retention**: log rows older than `log_retention_days` (default 180) are deleted in
//!   batches by the recurring `read_access_log.prune` job ([`log::PruneJob`]), scheduled
//!   when the log is turned on.

mod freeze;
pub mod log;
pub mod settings;

pub use freeze::unfreeze_user;

use crate::authz::Caller;
use crate::context::RequestMeta;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::identity::PrincipalKind;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use sqlx::Row;
use uuid::Uuid;

/// The tenant's read-limit settings as carried by a principal; `Default`: both off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPolicy {
    /// The limit, when on.
    pub limit: Option<ReadLimit>,
    /// Whether every counted read is logged in `read_access_log`.
    pub log: bool,
}

/// At most `max_reads` customer records per user per `window_minutes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimit {
    pub max_reads: i32,
    pub window_minutes: i32,
    pub exempt_roles: Vec<String>,
}

/// An SQL expression over `j` (the `settings` row as JSON, so a tenant without v12 reads as
/// off): NULL when both features are off, else the object [`ReadPolicy::from_json`] reads.
pub const READ_POLICY_SQL: &str =
    "CASE WHEN coalesce((j ->> 'read_limit_enabled')::boolean, false) \
       OR coalesce((j ->> 'read_log_enabled')::boolean, false) \
     THEN jsonb_build_object('limit', j -> 'read_limit_enabled', 'max', j -> 'read_limit_max', \
       'window', j -> 'read_limit_window_minutes', 'exempt', j -> 'read_limit_exempt_roles', \
       'log', j -> 'read_log_enabled') END";

#[derive(Deserialize)]
struct PolicyJson {
    limit: bool,
    max: i32,
    window: i32,
    exempt: Vec<String>,
    log: bool,
}

impl ReadPolicy {
    /// From the value of [`READ_POLICY_SQL`] (NULL: both off).
    pub fn from_json(raw: Option<serde_json::Value>) -> ReadPolicy {
        let Some(p) = raw.and_then(|v| serde_json::from_value::<PolicyJson>(v).ok()) else {
            return ReadPolicy::default();
        };
        ReadPolicy {
            limit: p.limit.then_some(ReadLimit {
                max_reads: p.max,
                window_minutes: p.window.max(1),
                exempt_roles: p.exempt,
            }),
            log: p.log,
        }
    }

    /// Whether neither the limit nor the log is on (reads cost nothing).
    pub fn is_off(&self) -> bool {
        self.limit.is_none() && !self.log
    }
}

/// The 403 of a frozen user, whatever it tries.
pub fn frozen_error() -> Error {
    Error::forbidden(
        "user.frozen",
        "this account is frozen because it read more customer records than the company allows; an administrator must unfreeze it (POST /api/v1/users/{id}/unfreeze) before it can be used again",
    )
}

/// How customer records were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Get,
    List,
    Export,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Get => "get",
            Via::List => "list",
            Via::Export => "export",
        }
    }
}

/// What [`account`] decided. `Frozen` is a value, not an `Err`, so the caller commits the
/// freeze before refusing the read.
#[must_use = "commit the transaction, then call admit()"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadVerdict {
    Admitted,
    /// The read passed the limit: the user is now frozen (uncommitted until the caller
    /// commits); answer 403 `user.frozen`.
    Frozen,
}

impl ReadVerdict {
    /// 403 `user.frozen` for a refused read; call it after committing.
    pub fn admit(self) -> Result<()> {
        match self {
            ReadVerdict::Admitted => Ok(()),
            ReadVerdict::Frozen => Err(frozen_error()),
        }
    }
}

/// Start of the fixed window of `minutes` that `now` falls in.
fn window_start(now: DateTime<Utc>, minutes: i32) -> DateTime<Utc> {
    let secs = i64::from(minutes.max(1)) * 60;
    let start = now.timestamp() - now.timestamp().rem_euclid(secs);
    Utc.timestamp_opt(start, 0).single().unwrap_or(now)
}

/// Counts (and logs) `customer_ids` read by `caller`, as its principal's [`ReadPolicy`] says:
/// no statement when both are off or nothing was read, else one. Over the limit the user is
/// frozen in `tx` and the verdict is [`ReadVerdict::Frozen`].
pub async fn account(
    tx: &mut TenantTx,
    caller: &Caller,
    meta: &RequestMeta,
    via: Via,
    customer_ids: &[Uuid],
) -> Result<ReadVerdict> {
    let policy = &caller.principal.reads;
    if policy.is_off() || customer_ids.is_empty() {
        return Ok(ReadVerdict::Admitted);
    }
    let user = caller.user_id;
    let limit = policy.limit.as_ref().filter(|_| user.is_some());
    let n = i32::try_from(customer_ids.len()).unwrap_or(i32::MAX);
    let now = Utc::now();
    let no_roles: Vec<String> = Vec::new();
    let key = (caller.principal.kind == PrincipalKind::ApiKey).then_some(caller.principal.id);
    let row = sqlx::query(
        "WITH exempt AS ( \
            SELECT EXISTS (SELECT 1 FROM casbin_rule g WHERE g.ptype = 'g' AND g.v0 = $1 \
              AND g.v2 = $2 AND g.v1 = ANY($3::text[])) AS yes), \
         counted AS ( \
            INSERT INTO read_counters AS c (user_id, window_start, reads) \
            SELECT $4, $5, $6 FROM exempt WHERE $7 AND NOT exempt.yes AND $6 <= $8 \
            ON CONFLICT (user_id) DO UPDATE SET window_start = excluded.window_start, \
              reads = CASE WHEN c.window_start = excluded.window_start \
                THEN c.reads + excluded.reads ELSE excluded.reads END \
            WHERE CASE WHEN c.window_start = excluded.window_start \
                THEN c.reads + excluded.reads ELSE excluded.reads END <= $8 \
            RETURNING reads), \
         logged AS ( \
            INSERT INTO read_access_log (user_id, api_key_id, customer_id, via, request_id) \
            SELECT $4, $9, id, $10, $11 FROM unnest($12::uuid[]) AS id \
            WHERE $13 AND (NOT $7 OR (SELECT yes FROM exempt) OR EXISTS (SELECT 1 FROM counted)) \
            RETURNING 1) \
         SELECT (SELECT yes FROM exempt) AS exempt, (SELECT reads FROM counted) AS reads",
    )
    .bind(caller.principal.subject())
    .bind(tx.tenant().id.to_string())
    .bind(limit.map_or(&no_roles, |l| &l.exempt_roles))
    .bind(user)
    .bind(window_start(now, limit.map_or(1, |l| l.window_minutes)))
    .bind(n)
    .bind(limit.is_some())
    .bind(limit.map_or(i32::MAX, |l| l.max_reads))
    .bind(key)
    .bind(via.as_str())
    .bind(Some(&meta.request_id).filter(|r| !r.is_empty()))
    .bind(customer_ids)
    .bind(policy.log)
    .fetch_one(tx.conn())
    .await?;
    let exempt: bool = row.get("exempt");
    let reads: Option<i32> = row.get("reads");
    match (limit, user) {
        (Some(limit), Some(user)) if !exempt && reads.is_none() => {
            freeze::freeze(tx, user, meta, limit, n).await?;
            Ok(ReadVerdict::Frozen)
        }
        _ => Ok(ReadVerdict::Admitted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_contain_now() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 10, 47, 13)
            .single()
            .expect("time");
        assert_eq!(
            window_start(now, 60),
            Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
                .single()
                .expect("time")
        );
        assert_eq!(
            window_start(now, 15),
            Utc.with_ymd_and_hms(2026, 3, 1, 10, 45, 0)
                .single()
                .expect("time")
        );
    }

    #[test]
    fn null_or_garbage_reads_as_off() {
        assert!(ReadPolicy::from_json(None).is_off());
        assert!(ReadPolicy::from_json(Some(serde_json::json!({"limit": true}))).is_off());
        let on = ReadPolicy::from_json(Some(serde_json::json!({
            "limit": true, "max": 3, "window": 60, "exempt": ["auditor"], "log": false
        })));
        assert_eq!(on.limit.map(|l| l.max_reads), Some(3));
    }
}
