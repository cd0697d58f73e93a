//! Finding tenants with due jobs: `platform.job_hints` holds each tenant's earliest due time,
//! lowered by the tenant's own transactions when they enqueue (see `crm_core::jobs`) and
//! recomputed by the worker after each visit. The worker never scans tenant schemas.

use chrono::{DateTime, Duration, Utc};
use crm_core::db::{SchemaName, TenantCtx};
use crm_core::{Error, Result};
use sqlx::PgPool;
use uuid::Uuid;

/// Leases up to `limit` active tenants whose earliest job is due, for `lease` (another worker
/// skips them meanwhile; a crashed worker's lease simply runs out).
pub async fn claim_due_tenants(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<TenantCtx>> {
    let mut rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH due AS ( \
           SELECT h.tenant_id FROM platform.job_hints h \
           JOIN platform.tenants t ON t.id = h.tenant_id AND t.status = 'active' \
           WHERE h.next_run_at <= now() AND (h.leased_until IS NULL OR h.leased_until < now()) \
           ORDER BY h.next_run_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED) \
         UPDATE platform.job_hints h SET leased_until = now() + make_interval(secs => $2) \
         FROM due, platform.tenants t WHERE h.tenant_id = due.tenant_id AND t.id = h.tenant_id \
         RETURNING t.id, t.slug, t.schema_name, h.next_run_at",
    )
    .bind(limit)
    .bind(lease.num_milliseconds() as f64 / 1000.0)
    .fetch_all(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    // Longest waiting first (RETURNING keeps no order).
    rows.sort_by_key(|r| r.3);
    rows.into_iter()
        .map(|(id, slug, schema, _)| {
            let schema = SchemaName::parse(&schema).ok_or_else(|| {
                Error::internal(format!("tenant {id} has a malformed schema name"))
            })?;
            Ok(TenantCtx { id, slug, schema })
        })
        .collect()
}

/// Recomputes a tenant's hint from its jobs and releases the lease; returns when its next job
/// is due.
pub async fn settle(pool: &PgPool, tenant: Uuid) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT platform_api.settle_jobs($1)")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .map_err(crm_core::db::unavailable)
}
