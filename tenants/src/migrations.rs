//! Schema migrations. The platform schema uses sqlx's embedded migrator (its bookkeeping table
//! lives in `platform`, never in `public`). Tenant schemas are versioned one by one in
//! `_schema_version`; `migrate_tenants` upgrades them in keyset batches with bounded
//! parallelism, each tenant in its own transaction, so an interrupted run resumes where it
//! stopped and the server keeps serving tenants that are one version behind meanwhile.

use crate::registry::{Tenant, COLUMNS};
use crm_core::db::SchemaName;
use crm_core::{Error, Result};
use futures::stream::{self, StreamExt};
use sqlx::migrate::Migrator;
use sqlx::{Executor, PgConnection, PgPool};

static PLATFORM: Migrator = sqlx::migrate!("./migrations");

/// One step of the tenant schema.
pub struct TenantMigration {
    pub version: i32,
    /// DDL run with `search_path` set to the tenant schema; `{{tenant_role}}` names the role
    /// that must own what it creates.
    pub sql: &'static str,
}

/// Every tenant schema version, oldest first.
pub const TENANT_MIGRATIONS: &[TenantMigration] = &[
    TenantMigration {
        version: 1,
        sql: include_str!("tenant_sql/0001_identity.sql"),
    },
    TenantMigration {
        version: 2,
        sql: include_str!("tenant_sql/0002_records.sql"),
    },
    TenantMigration {
        version: 3,
        sql: include_str!("tenant_sql/0003_sales.sql"),
    },
    TenantMigration {
        version: 4,
        sql: include_str!("tenant_sql/0004_activities.sql"),
    },
    TenantMigration {
        version: 5,
        sql: include_str!("tenant_sql/0005_jobs.sql"),
    },
    TenantMigration {
        version: 6,
        sql: include_str!("tenant_sql/0006_service_desk.sql"),
    },
    TenantMigration {
        version: 7,
        sql: include_str!("tenant_sql/0007_workflows.sql"),
    },
    TenantMigration {
        version: 8,
        sql: include_str!("tenant_sql/0008_access.sql"),
    },
    TenantMigration {
        version: 9,
        sql: include_str!("tenant_sql/0009_webhook_secret.sql"),
    },
    TenantMigration {
        version: 10,
        sql: include_str!("tenant_sql/0010_mfa_password_policy.sql"),
    },
    TenantMigration {
        version: 11,
        sql: include_str!("tenant_sql/0011_list_indexes.sql"),
    },
    TenantMigration {
        version: 12,
        sql: include_str!("tenant_sql/0012_read_limit.sql"),
    },
    TenantMigration {
        version: 13,
        sql: include_str!("tenant_sql/0013_mail_verification.sql"),
    },
    TenantMigration {
        version: 14,
        sql: include_str!("tenant_sql/0014_customer_city.sql"),
    },
    TenantMigration {
        version: 15,
        sql: include_str!("tenant_sql/0015_custom_objects.sql"),
    },
    TenantMigration {
        version: 16,
        sql: include_str!("tenant_sql/0016_plugins.sql"),
    },
    TenantMigration {
        version: 17,
        sql: include_str!("tenant_sql/0017_imports.sql"),
    },
    TenantMigration {
        version: 18,
        sql: include_str!("tenant_sql/0018_backups.sql"),
    },
    TenantMigration {
        version: 19,
        sql: include_str!("tenant_sql/0019_exports.sql"),
    },
];

/// The version a freshly provisioned tenant has.
pub fn latest_tenant_version() -> i32 {
    TENANT_MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The SQL that brings a tenant schema from `from` to `to`; what it creates is handed to the
/// tenant role `schema` (run it with `search_path` on the schema to change).
pub(crate) fn tenant_script(schema: &SchemaName, from: i32, to: i32) -> String {
    let mut script = String::new();
    for m in TENANT_MIGRATIONS
        .iter()
        .filter(|m| m.version > from && m.version <= to)
    {
        script.push_str(&m.sql.replace("{{tenant_role}}", &format!("\"{schema}\"")));
        script.push('\n');
    }
    script
}

/// Creates the `platform` schema if needed and applies pending platform migrations.
pub async fn migrate_platform(pool: &PgPool) -> Result<()> {
    // A detached connection: the search_path change must not leak back into the pool.
    let mut conn: PgConnection = pool
        .acquire()
        .await
        .map_err(crm_core::db::unavailable)?
        .detach();
    // On Citus the platform schema must stay a regular (coordinator) schema, not a
    // distributed one; on plain Postgres the setting is an inert custom option.
    conn.execute(
        "SET citus.enable_schema_based_sharding = off; \
         CREATE SCHEMA IF NOT EXISTS platform; SET search_path = platform",
    )
    .await?;
    PLATFORM
        .run(&mut conn)
        .await
        .map_err(|e| Error::internal(format!("platform migration failed: {e}")))?;
    Ok(())
}

/// Outcome of [`migrate_tenants`].
#[derive(Debug, Default)]
pub struct MigrationReport {
    pub migrated: usize,
    pub failed: Vec<(String, String)>,
}

/// Upgrades every tenant behind the latest version, `parallelism` at a time, reading the
/// registry in batches of `batch` so memory stays flat however many tenants there are.
pub async fn migrate_tenants(
    pool: &PgPool,
    parallelism: usize,
    batch: i64,
) -> Result<MigrationReport> {
    let latest = latest_tenant_version();
    let mut report = MigrationReport::default();
    let mut after: Option<uuid::Uuid> = None;
    loop {
        let tenants: Vec<Tenant> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM platform.tenants \
             WHERE schema_version < $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(latest)
        .bind(after)
        .bind(batch)
        .fetch_all(pool)
        .await?;
        let Some(last) = tenants.last() else { break };
        after = Some(last.id);
        let results: Vec<(String, Result<()>)> = stream::iter(tenants)
            .map(|t| async move { (t.slug.clone(), migrate_tenant(pool, &t).await) })
            .buffer_unordered(parallelism.max(1))
            .collect()
            .await;
        for (slug, result) in results {
            match result {
                Ok(()) => report.migrated += 1,
                Err(e) => {
                    tracing::error!(tenant = %slug, error = %e, "tenant migration failed");
                    report.failed.push((slug, e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

/// Upgrades one tenant in one transaction (locks its version row; a concurrent run waits).
pub async fn migrate_tenant(pool: &PgPool, tenant: &Tenant) -> Result<()> {
    let ctx = tenant.ctx()?;
    let mut tx = pool.begin().await?;
    let version = upgrade_schema(&mut tx, &ctx.schema).await?;
    sqlx::query(
        "UPDATE platform.tenants SET schema_version = $2, updated_at = now() WHERE id = $1",
    )
    .bind(tenant.id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Brings one tenant schema to the latest version within the caller's transaction, locking
/// its version row first (a concurrent upgrade waits, then finds nothing to do). Returns the
/// version the schema is at afterwards. Leaves `search_path` on the schema.
pub(crate) async fn upgrade_schema(conn: &mut PgConnection, schema: &SchemaName) -> Result<i32> {
    upgrade_schema_as(conn, schema, schema).await
}

/// [`upgrade_schema`] of a schema whose owning tenant role has another name (a restore's
/// staged schema, which becomes the tenant's when it replaces the live one).
pub(crate) async fn upgrade_schema_as(
    conn: &mut PgConnection,
    schema: &SchemaName,
    role: &SchemaName,
) -> Result<i32> {
    conn.execute(format!("SET LOCAL search_path = \"{schema}\", public").as_str())
        .await?;
    let current: i32 = sqlx::query_scalar("SELECT version FROM _schema_version FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    let latest = latest_tenant_version();
    if current < latest {
        conn.execute(sqlx::raw_sql(&tenant_script(role, current, latest)))
            .await?;
        sqlx::query("UPDATE _schema_version SET version = $1")
            .bind(latest)
            .execute(&mut *conn)
            .await?;
    }
    Ok(latest.max(current))
}
