//! `/settings/read-limit` as a caller reads and changes it (`tenant:manage`).

use super::log;
use crate::audit::{self, Actor};
use crate::authz::{Caller, Permission};
use crate::db::TenantTx;
use crate::error::{Error, FieldError, Result};
use serde::{Deserialize, Serialize};

/// The read limit and the read-access log of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLimitSettings {
    /// Whether users over `max_reads` per window are frozen.
    pub enabled: bool,
    /// 1 to 1,000,000 customer records per user per window (default 1,000).
    pub max_reads: i32,
    /// 1 to 10,080 minutes (a week; default 60).
    pub window_minutes: i32,
    /// Users holding any of these roles are never counted (still logged).
    pub exempt_roles: Vec<String>,
    /// Whether every customer record read is logged.
    pub log_enabled: bool,
    /// 1 to 3,650 days (default 180).
    pub log_retention_days: i32,
}

impl Default for ReadLimitSettings {
    fn default() -> Self {
        ReadLimitSettings {
            enabled: false,
            max_reads: 1000,
            window_minutes: 60,
            exempt_roles: Vec::new(),
            log_enabled: false,
            log_retention_days: 180,
        }
    }
}

/// The settings row's read-limit columns as JSON; `None` before schema v12.
async fn load(tx: &mut TenantTx) -> Result<Option<ReadLimitSettings>> {
    let raw: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT CASE WHEN j ? 'read_limit_enabled' THEN jsonb_build_object( \
           'enabled', j -> 'read_limit_enabled', 'max_reads', j -> 'read_limit_max', \
           'window_minutes', j -> 'read_limit_window_minutes', \
           'exempt_roles', j -> 'read_limit_exempt_roles', 'log_enabled', j -> 'read_log_enabled', \
           'log_retention_days', j -> 'read_log_retention_days') END \
         FROM (SELECT to_jsonb(s) AS j FROM settings s) sj",
    )
    .fetch_one(tx.conn())
    .await?;
    raw.map(|v| {
        serde_json::from_value(v)
            .map_err(|e| Error::internal(format!("read-limit settings unreadable: {e}")))
    })
    .transpose()
}

/// The settings (`tenant:manage`); the defaults on a tenant being upgraded.
pub async fn get(tx: &mut TenantTx, caller: &Caller) -> Result<ReadLimitSettings> {
    caller.require(Permission::TenantManage)?;
    Ok(load(tx).await?.unwrap_or_default())
}

fn range(field: &str, value: i32, low: i32, high: i32, errors: &mut Vec<FieldError>) {
    if !(low..=high).contains(&value) {
        errors.push(FieldError::new(
            field,
            "out_of_range",
            format!("must be between {low} and {high}"),
        ));
    }
}

/// Checks every value; all broken ones in one 422.
fn validate(wanted: &ReadLimitSettings) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    range("max_reads", wanted.max_reads, 1, 1_000_000, &mut errors);
    range(
        "window_minutes",
        wanted.window_minutes,
        1,
        10_080,
        &mut errors,
    );
    range(
        "log_retention_days",
        wanted.log_retention_days,
        1,
        3650,
        &mut errors,
    );
    let roles = crate::roles::parse_names("exempt_roles", &wanted.exempt_roles, &mut errors);
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    Ok(roles)
}

/// Replaces the settings (`tenant:manage`); exempt roles must exist. Applies from each
/// principal's next request. Turning the log on schedules its pruning. Audited.
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    wanted: ReadLimitSettings,
) -> Result<ReadLimitSettings> {
    caller.require(Permission::TenantManage)?;
    let roles = validate(&wanted)?;
    crate::roles::ensure_exist(tx, "exempt_roles", &roles).await?;
    if load(tx).await?.is_none() {
        return Err(Error::Busy {
            code: "tenant.upgrading",
            message: "your company's data is being upgraded; retry in a minute".to_owned(),
            retry_after_secs: 60,
        });
    }
    let saved = ReadLimitSettings {
        exempt_roles: roles,
        ..wanted
    };
    sqlx::query(
        "UPDATE settings SET read_limit_enabled = $1, read_limit_max = $2, \
           read_limit_window_minutes = $3, read_limit_exempt_roles = $4, read_log_enabled = $5, \
           read_log_retention_days = $6, updated_at = now()",
    )
    .bind(saved.enabled)
    .bind(saved.max_reads)
    .bind(saved.window_minutes)
    .bind(&saved.exempt_roles)
    .bind(saved.log_enabled)
    .bind(saved.log_retention_days)
    .execute(tx.conn())
    .await?;
    if saved.log_enabled {
        log::schedule_prune(tx, chrono::Utc::now()).await?;
    }
    let detail = serde_json::to_value(&saved)
        .map_err(|e| Error::internal(format!("read-limit settings: {e}")))?;
    audit::record(tx, actor, "settings.read_limit_updated", None, detail).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_broken_value_is_named() {
        let wanted = ReadLimitSettings {
            max_reads: 0,
            window_minutes: 20_000,
            log_retention_days: 0,
            exempt_roles: vec!["Not A Role!".into()],
            ..ReadLimitSettings::default()
        };
        let Err(Error::Invalid { fields, .. }) = validate(&wanted) else {
            panic!("expected 422");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "max_reads",
                "window_minutes",
                "log_retention_days",
                "exempt_roles[0]"
            ]
        );
        assert!(validate(&ReadLimitSettings::default()).is_ok());
    }
}
