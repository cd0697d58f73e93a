//! `crm tenant backup` and `crm tenant restore`: the operator's door to crm-tenants' backups
//! (the same archive, register and restore as the API's), with the server's file store and
//! master key as configured.

use crate::config::Config;
use anyhow::Context;
use crm_core::crypto::MasterKey;
use crm_core::db::Db;
use crm_core::domain::DisplayName;
use crm_tenants::backup::restore::{self, Source};
use crm_tenants::backup::{dump, ledger, Backups};
use crm_tenants::{registry, TenantSlug};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// What `crm tenant restore` was asked.
pub struct RestoreRequest {
    pub from: String,
    pub tenant: Option<String>,
    pub as_slug: String,
    pub name: Option<String>,
    pub archive_master_key: Option<String>,
}

async fn open(config: &Config, pool: &PgPool) -> anyhow::Result<Backups> {
    let files = crm_core::files::open(&config.files, &config.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the file store ([files]): {e}"))?;
    let master = config.master_key(false)?.map(Arc::new);
    Ok(crate::wiring::backups(
        config,
        &Db::new(pool.clone(), config.tenant_isolation),
        files,
        master,
    ))
}

async fn tenant(pool: &PgPool, slug: &str) -> anyhow::Result<crm_tenants::Tenant> {
    registry::by_slug(pool, slug)
        .await?
        .with_context(|| format!("no tenant '{slug}'"))
}

/// Takes a backup of `slug` now; with `out`, also copies the archive there.
pub async fn backup(
    config: &Config,
    pool: &PgPool,
    slug: &str,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let backups = open(config, pool).await?;
    let t = tenant(pool, slug).await?;
    let ctx = t.ctx()?;
    let started = std::time::Instant::now();
    let taken = dump::take(&backups, &ctx, &t.name).await?;
    let mut tx = backups.db.tenant_tx(&ctx).await?;
    let backup = ledger::insert_taken(&mut tx, &taken).await?;
    tx.commit().await?;
    println!(
        "backup {} of {}: {} bytes, sha256 {}, schema version {}, {:.1} s",
        backup.id,
        t.slug,
        taken.size_bytes,
        taken.sha256,
        taken.schema_version,
        started.elapsed().as_secs_f64()
    );
    if let Some(out) = out {
        backups.files.get_to_file(&taken.key, out).await?;
        println!("archive written to {}", out.display());
    }
    Ok(())
}

/// Restores an archive file or a tenant's backup into a new tenant.
pub async fn restore(config: &Config, pool: &PgPool, req: RestoreRequest) -> anyhow::Result<()> {
    let field = |e: crm_core::FieldError| anyhow::anyhow!("{}: {}", e.field, e.message);
    let backups = open(config, pool).await?;
    let slug = TenantSlug::parse("--as", &req.as_slug).map_err(field)?;
    let name = req
        .name
        .as_deref()
        .map(|n| DisplayName::parse("--name", n))
        .transpose()
        .map_err(field)?;
    let previous = req
        .archive_master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--archive-master-key: {e}"))?;
    let started = std::time::Instant::now();
    let path = PathBuf::from(&req.from);
    let restored = if path.is_file() {
        restore::into_new_tenant(&backups, Source::File(&path), slug, name, previous.as_ref())
            .await?
    } else {
        let id = Uuid::parse_str(&req.from).with_context(|| {
            format!(
                "--from {}: neither an archive file nor a backup id",
                req.from
            )
        })?;
        let of = req
            .tenant
            .as_deref()
            .context("--from names a backup by id: say whose with --tenant <slug>")?;
        let t = tenant(pool, of).await?;
        let mut tx = backups.db.tenant_tx(&t.ctx()?).await?;
        let backup = ledger::find(&mut tx, id).await?;
        tx.commit().await?;
        restore::into_new_tenant(
            &backups,
            Source::Stored(&backup),
            slug,
            name,
            previous.as_ref(),
        )
        .await?
    };
    println!(
        "restored into tenant {} ({}): {} tables, {} rows, {} files, schema version {} -> {}, {:.1} s",
        restored.slug,
        restored.tenant_id,
        restored.tables,
        restored.rows,
        restored.files,
        restored.from_schema_version,
        restored.schema_version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
