//! `crm bench backup`: a tenant of N customers backed up (snapshot, archive, store) and
//! restored into a new tenant (unpack, check, load, indexes, migrations), timed, with the
//! archive's size; both tenants removed afterwards unless kept.

use super::dataset;
use crate::config::Config;
use crm_core::db::Db;
use crm_tenants::backup::{dump, restore};
use crm_tenants::TenantSlug;
use std::sync::Arc;
use std::time::Instant;

pub async fn backup(
    config: &Config,
    pool: &sqlx::PgPool,
    customers: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let files = crm_core::files::open(&config.files, &config.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("file store: {e}"))?;
    let master = config.master_key(true)?.map(Arc::new);
    let backups = crate::wiring::backups(config, &db, files.clone(), master);
    let bench = dataset::provision(&db, "bench-backup", "备份基准公司").await?;
    dataset::load_customers(&db, &bench.tenant, bench.admin, customers).await?;

    let started = Instant::now();
    let taken = dump::take(&backups, &bench.tenant.ctx()?, &bench.tenant.name).await?;
    let backup_time = started.elapsed();
    println!(
        "backup: {customers} customers -> archive of {:.1} MiB in {:.2} s ({:.0} rows/s)",
        taken.size_bytes as f64 / 1048576.0,
        backup_time.as_secs_f64(),
        customers as f64 / backup_time.as_secs_f64().max(1e-9)
    );

    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let slug = TenantSlug::parse("slug", &format!("bench-restored-{run}"))
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut tx = backups.db.tenant_tx(&bench.tenant.ctx()?).await?;
    let entered = crm_tenants::backup::ledger::insert_taken(&mut tx, &taken).await?;
    tx.commit().await?;
    let started = Instant::now();
    let restored = restore::into_new_tenant(
        &backups,
        restore::Source::Stored(&entered),
        slug,
        None,
        None,
    )
    .await?;
    let restore_time = started.elapsed();
    println!(
        "restore into a new tenant: {} tables, {} rows, schema v{} in {:.2} s ({:.0} rows/s)",
        restored.tables,
        restored.rows,
        restored.schema_version,
        restore_time.as_secs_f64(),
        restored.rows as f64 / restore_time.as_secs_f64().max(1e-9)
    );
    let copy = crm_tenants::registry::by_id(pool, restored.tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the restored tenant is missing"))?;
    files.delete(&taken.key).await?;
    dataset::finish(&db, &copy, keep).await?;
    dataset::finish(&db, &bench.tenant, keep).await
}
