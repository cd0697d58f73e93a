//! The tenant registry: `platform.tenants`.

use chrono::{DateTime, Utc};
use crm_core::db::{SchemaName, TenantCtx};
use crm_core::{Error, Result};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// A tenant as the platform knows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub plan: String,
    pub schema_name: String,
    pub schema_version: i32,
    pub created_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "id, slug, name, status, plan, schema_name, schema_version, created_at";

impl Tenant {
    /// The context that opens this tenant's transactions.
    pub fn ctx(&self) -> Result<TenantCtx> {
        let schema = SchemaName::parse(&self.schema_name).ok_or_else(|| {
            Error::internal(format!("tenant {} has a malformed schema name", self.id))
        })?;
        Ok(TenantCtx {
            id: self.id,
            slug: self.slug.clone(),
            schema,
        })
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// A tenant by id.
pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM platform.tenants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(crm_core::db::unavailable)
}

/// A tenant by slug.
pub async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Tenant>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM platform.tenants WHERE slug = $1"
    ))
    .bind(slug)
    .fetch_optional(pool)
    .await
    .map_err(crm_core::db::unavailable)
}

/// Tenants by slug, after `after` (keyset paging: never loads all tenants at once).
pub async fn list(pool: &PgPool, after: Option<&str>, limit: i64) -> Result<Vec<Tenant>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM platform.tenants WHERE ($1::text IS NULL OR slug > $1) ORDER BY slug LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(crm_core::db::unavailable)
}

/// Suspends (`active = false`) or resumes a tenant. A suspended tenant's users cannot log in
/// and its credentials are refused.
pub async fn set_active(pool: &PgPool, slug: &str, active: bool) -> Result<Tenant> {
    let tenant: Option<Tenant> = sqlx::query_as(&format!(
        "UPDATE platform.tenants SET status = $2, updated_at = now() WHERE slug = $1 RETURNING {COLUMNS}"
    ))
    .bind(slug)
    .bind(if active { "active" } else { "suspended" })
    .fetch_optional(pool)
    .await
    .map_err(crm_core::db::unavailable)?;
    tenant.ok_or_else(|| Error::not_found("tenant.not_found", format!("no tenant '{slug}'")))
}

/// 403 for every credential of a suspended tenant.
pub fn suspended() -> crm_core::Error {
    crm_core::Error::forbidden(
        "tenant.suspended",
        "this company's account is suspended; contact TC CRM support",
    )
}
