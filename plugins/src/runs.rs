//! The run log: one row per call of an install (trigger, time, fuel, memory peak, outcome,
//! error, actions, logs), newest first, kept with the install.

use crate::runtime::CallStats;
use chrono::{DateTime, Utc};
use crm_core::authz::{Caller, Permission};
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::TenantTx;
use crm_core::Result;
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

/// One call of an install.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Run {
    pub id: i64,
    pub install_id: Uuid,
    pub trigger: Value,
    pub started_at: DateTime<Utc>,
    pub duration_us: i64,
    pub fuel_used: i64,
    pub memory_peak: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub error: Option<Value>,
    pub actions: Value,
    pub logs: String,
}

const COLUMNS: &str = "id, install_id, trigger, started_at, duration_us, fuel_used, memory_peak, \
    outcome, error, actions, logs";

/// What to log about a call.
pub(crate) struct NewRun<'a> {
    pub install_id: Uuid,
    pub trigger: Value,
    pub started_at: DateTime<Utc>,
    pub stats: &'a CallStats,
    pub error: Option<Value>,
    pub actions: Value,
}

pub(crate) async fn log(tx: &mut TenantTx, run: NewRun<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO plugin_runs (install_id, trigger, started_at, duration_us, fuel_used, memory_peak, outcome, error, actions, logs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(run.install_id)
    .bind(&run.trigger)
    .bind(run.started_at)
    .bind(run.stats.duration.as_micros().min(i64::MAX as u128) as i64)
    .bind(run.stats.fuel_used.min(i64::MAX as u64) as i64)
    .bind(run.stats.memory_peak.min(i64::MAX as u64) as i64)
    .bind(if run.error.is_none() { "succeeded" } else { "failed" })
    .bind(&run.error)
    .bind(&run.actions)
    .bind(&run.stats.logs)
    .fetch_one(tx.conn())
    .await?)
}

/// An install's runs, newest first, `limit` per page after the cursor `after`.
pub async fn list(
    tx: &mut TenantTx,
    caller: &Caller,
    install: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Page<Run>> {
    caller.require(Permission::PluginsManage)?;
    crate::installs::get(tx, caller, install).await?;
    let after: Option<i64> = parse_cursor(after)?;
    let limit = limit.clamp(1, 200);
    let mut rows: Vec<Run> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugin_runs WHERE install_id = $1 AND ($2::bigint IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(install)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut rows, limit, |r| r.id);
    Ok(Page {
        items: rows,
        next_cursor,
    })
}
