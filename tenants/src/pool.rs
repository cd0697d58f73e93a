//! The sign-up pool: tenant schemas provisioned before anyone signs up, so sign-up only has to
//! claim one and add its administrator. Provisioning a tenant (a role, a schema, some forty
//! tables, the default roles) costs ~150 ms of DDL and grows with the catalog; claiming a
//! pooled one is a few row writes.
//!
//! A pooled entry (`platform.tenant_pool`) is a role and schema `t_<id hex>` with every table
//! at the entry's schema version and the default roles written with casbin domain = its id,
//! so they are right once claimed. It has no `platform.tenants` row and no user: a credential
//! names its tenant by id and is resolved through the registry, so nothing can reach an
//! unclaimed entry.
//!
//! [`claim`] does, in one transaction: take the oldest entry at this build's schema version
//! (`FOR UPDATE SKIP LOCKED`, so concurrent sign-ups never wait for each other), insert the
//! registry row with the entry's id (a taken slug is 409 `tenant.slug_taken` as before, and
//! the rollback leaves the entry in the pool), delete the entry, create the first
//! administrator and the audit entry. Deleting an entry notifies [`REFILL_CHANNEL`] (a
//! trigger), which wakes the servers' refill task.
//!
//! [`fill`] creates entries one transaction each until the target is ready, under a
//! transaction-level advisory lock held while it counts and creates: any number of servers
//! may fill at once and together they stop at the target.
//!
//! Entries behind the schema version are **upgraded** ([`upgrade`]), not dropped and
//! recreated: the upgrade runs the very migration runner `crm migrate` runs for real tenants
//! (`migrations::upgrade_schema`), so a claimed entry is exactly what an existing tenant is
//! after the same deploy, and the pool stays warm across it (recreating N entries costs N
//! provisionings, with the pool empty meanwhile). Claims only take entries at their own
//! build's version, so during a rolling deploy an older server never claims an entry a newer
//! one has upgraded past it.

use crate::migrations::{latest_tenant_version, upgrade_schema};
use crate::provision::{
    create_first_admin, create_schema, insert_registry_row, NewAdmin, NewTenant, Provisioned,
};
use crm_core::authz::default_roles;
use crm_core::db::{Db, SchemaName, TenantCtx, TenantTx};
use crm_core::{Error, Result};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

/// Notified (by a trigger on `platform.tenant_pool`) whenever entries are taken.
pub const REFILL_CHANNEL: &str = "crm_signup_pool";

/// The advisory lock fillers hold while counting and creating an entry ("tcpool").
const FILL_LOCK: i64 = 0x0000_7463_706f_6f6c;

/// Entries ready to be claimed: at the latest schema version.
pub async fn available(pool: &PgPool) -> Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM platform.tenant_pool WHERE schema_version = $1")
        .bind(latest_tenant_version())
        .fetch_one(pool)
        .await
        .map_err(crm_core::db::unavailable)
}

/// Creates entries, one transaction each, until `target` are ready; returns how many it
/// created. Safe to run from several processes at once.
pub async fn fill(db: &Db, target: usize) -> Result<usize> {
    fill_at(db, target, latest_tenant_version()).await
}

/// [`fill`] at an older schema version, as a server of that version would: for testing the
/// upgrade of pooled entries.
pub async fn fill_at(db: &Db, target: usize, version: i32) -> Result<usize> {
    if !(1..=latest_tenant_version()).contains(&version) {
        return Err(Error::internal(format!(
            "no tenant schema version {version}"
        )));
    }
    let target = i64::try_from(target).unwrap_or(i64::MAX);
    let mut created = 0;
    loop {
        let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FILL_LOCK)
            .execute(&mut *tx)
            .await?;
        // Counted under the lock, after the previous holder committed: never over target.
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM platform.tenant_pool WHERE schema_version = $1",
        )
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        if ready >= target {
            return Ok(created);
        }
        let id = Uuid::now_v7();
        let schema = SchemaName::for_tenant(id);
        sqlx::query("INSERT INTO platform.tenant_pool (id, schema_version) VALUES ($1, $2)")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        create_schema(&mut tx, &schema, version).await?;
        let ctx = TenantCtx {
            id,
            slug: format!("pool-{}", id.simple()),
            schema,
        };
        let mut ttx = TenantTx::enter(tx, &ctx, db.isolation).await?;
        crm_core::roles::seed_defaults(&mut ttx, default_roles()).await?;
        ttx.commit().await?;
        created += 1;
    }
}

/// Upgrades entries behind the latest schema version, one transaction each, with the tenant
/// migration runner; returns how many.
pub async fn upgrade(db: &Db) -> Result<usize> {
    let latest = latest_tenant_version();
    let mut upgraded = 0;
    loop {
        let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM platform.tenant_pool WHERE schema_version < $1 \
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(latest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(upgraded) };
        let version = upgrade_schema(&mut tx, &SchemaName::for_tenant(id)).await?;
        sqlx::query("UPDATE platform.tenant_pool SET schema_version = $2 WHERE id = $1")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        upgraded += 1;
    }
}

/// Signs a company up on a pooled entry: its id becomes the tenant's. `None` when no entry
/// at this build's schema version is free (the caller provisions inline). A taken slug is 409
/// `tenant.slug_taken` and leaves the entry in the pool.
pub async fn claim(db: &Db, new: &NewTenant, admin: &NewAdmin) -> Result<Option<Provisioned>> {
    let version = latest_tenant_version();
    let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM platform.tenant_pool WHERE schema_version = $1 \
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Ok(None) };
    let tenant = insert_registry_row(&mut tx, id, new, version).await?;
    sqlx::query("DELETE FROM platform.tenant_pool WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut ttx = TenantTx::enter(tx, &tenant.ctx()?, db.isolation).await?;
    let admin = create_first_admin(&mut ttx, &tenant, admin.clone()).await?;
    ttx.commit().await?;
    Ok(Some(Provisioned { tenant, admin }))
}

/// Removes every unclaimed entry (schema, role, row), one transaction each; returns how many.
/// For benchmarks and for an operator turning the pool off (`signup_pool_size = 0`): a
/// running server with the pool on refills it at once.
pub async fn drain(db: &Db) -> Result<usize> {
    let mut removed = 0;
    loop {
        let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM platform.tenant_pool LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(removed) };
        let schema = SchemaName::for_tenant(id);
        tx.execute(sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; DROP ROLE IF EXISTS \"{schema}\";"
        )))
        .await?;
        sqlx::query("DELETE FROM platform.tenant_pool WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        removed += 1;
    }
}
