//! Restoring an archive, into a new tenant or over the tenant it was taken of.
//!
//! Both build the complete schema first (`staging::build`) in one application-role
//! transaction, then finish inside the tenant's transaction (data key adopted, sessions
//! ended, jobs woken, hooks, audit `backup.restored`) before committing: either the restored
//! tenant exists afterwards or nothing changed. Into a new tenant this is provisioning: a new
//! id, role and schema, its registry row, policies moved to its domain and the stored files
//! copied under keys of its own. Over the same tenant the staged schema replaces the live
//! one (`swap`), keeping the backup register and the audit log (append-only: what happened
//! after the backup, the restore included, stays on record); policy versions move past every
//! version used before, and API keys revoked since the backup stay revoked.

use super::ledger::Backup;
use super::manifest::{quoted, Manifest};
use super::staging::{self, Staged, Target};
use super::{archive, Backups, REGISTER_TABLES};
use crate::provision::{insert_registry_row, NewTenant};
use crate::slug::TenantSlug;
use crm_core::audit::{self, Actor};
use crm_core::authz::policy;
use crm_core::crypto::MasterKey;
use crm_core::db::{SchemaName, TenantCtx, TenantTx};
use crm_core::domain::DisplayName;
use crm_core::files::StoredKey;
use crm_core::identity::{api_keys, sessions};
use crm_core::{jobs, keys, Error, Result};
use serde::Serialize;
use sqlx::{Executor, PgConnection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Where an archive comes from.
pub enum Source<'a> {
    /// A file on this machine (the operator's copy).
    File(&'a Path),
    /// A finished backup of the register (its archive in the file store, its checksum).
    Stored(&'a Backup),
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub tenant_id: Uuid,
    pub slug: String,
    /// The tenant the archive was taken of.
    pub from_tenant: Uuid,
    pub backup_created_at: chrono::DateTime<chrono::Utc>,
    /// The archive's schema version, and the schema version after the migrations.
    pub from_schema_version: i32,
    pub schema_version: i32,
    pub tables: usize,
    pub rows: u64,
    pub files: usize,
}

/// An unpacked, checked archive.
struct Unpacked {
    _scratch: tempfile::TempDir,
    manifest: Manifest,
    entries: HashMap<String, PathBuf>,
}

async fn unpack(b: &Backups, source: &Source<'_>) -> Result<Unpacked> {
    let scratch = b.scratch()?;
    let path = match source {
        Source::File(path) => path.to_path_buf(),
        Source::Stored(backup) => {
            let path = scratch.path().join("archive.tar.zst");
            b.files.get_to_file(&backup.archive_key()?, &path).await?;
            let checked = path.clone();
            let (_, sha256) = super::blocking(move || archive::sha256_of(&checked)).await?;
            if backup.sha256.as_deref() != Some(sha256.as_str()) {
                return Err(Error::bad_request(
                    "backup.checksum_mismatch",
                    format!(
                        "the stored archive of backup {} does not match the checksum recorded \
                         when it was taken: it was changed or damaged",
                        backup.id
                    ),
                ));
            }
            path
        }
    };
    let dir = scratch.path().join("entries");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::internal(format!("creating the working directory: {e}")))?;
    let (manifest, entries) = super::blocking(move || archive::read(&path, &dir)).await?;
    Ok(Unpacked {
        _scratch: scratch,
        manifest,
        entries,
    })
}

/// Restores an archive into a new tenant `slug` (named `name`, else as the original).
/// `previous_master` is the master key of the server the archive came from, when it differs
/// from this server's (its data key is then re-wrapped).
pub async fn into_new_tenant(
    b: &Backups,
    source: Source<'_>,
    slug: TenantSlug,
    name: Option<DisplayName>,
    previous_master: Option<&MasterKey>,
) -> Result<Restored> {
    let unpacked = unpack(b, &source).await?;
    let manifest = &unpacked.manifest;
    let name = match name {
        Some(name) => name,
        None => DisplayName::parse("name", &manifest.tenant.name)
            .map_err(|e| Error::invalid(vec![e]))?,
    };
    let id = Uuid::now_v7();
    let schema = SchemaName::for_tenant(id);
    let mut tx = b.db.pool.begin().await.map_err(crm_core::db::unavailable)?;
    tx.execute("SET LOCAL statement_timeout = 0").await?;
    let new = NewTenant { slug, name };
    let tenant = insert_registry_row(&mut tx, id, &new, manifest.schema_version).await?;
    let target = Target {
        schema: &schema,
        role: &schema,
        create_role: true,
    };
    let staged = staging::build(&mut tx, &target, manifest, &unpacked.entries).await?;
    set_registry_version(&mut tx, id, staged.schema_version).await?;
    let ctx = tenant.ctx()?;
    let mut ttx = TenantTx::enter(tx, &ctx, b.db.isolation).await?;
    policy::move_domain(&mut ttx, manifest.tenant.id).await?;
    let files = copy_files_to(b, &mut ttx, &unpacked).await?;
    keys::adopt_data_key(&mut ttx, b.master.as_deref(), previous_master).await?;
    let restored = finish(b, &mut ttx, manifest, &staged, files, None).await?;
    audit::record(
        &mut ttx,
        &Actor::system(),
        "backup.restored",
        Some(("tenant", id.to_string())),
        serde_json::json!({
            "into": "new_tenant",
            "from_tenant": manifest.tenant.id,
            "from_slug": manifest.tenant.slug,
            "backup_created_at": manifest.created_at,
            "from_schema_version": manifest.schema_version,
            "schema_version": staged.schema_version,
        }),
    )
    .await?;
    ttx.commit().await?;
    Ok(Restored {
        tenant_id: tenant.id,
        slug: tenant.slug,
        ..restored
    })
}

/// Replaces `tenant`'s data with a backup of its own (after the caller confirmed it).
pub async fn into_same_tenant(
    b: &Backups,
    tenant: &TenantCtx,
    backup: &Backup,
    actor: &Actor,
) -> Result<Restored> {
    let unpacked = unpack(b, &Source::Stored(backup)).await?;
    let manifest = &unpacked.manifest;
    if manifest.tenant.id != tenant.id {
        return Err(Error::bad_request(
            "backup.other_tenant",
            "this archive is of another tenant; restore it into a new tenant instead",
        ));
    }
    // What the live tenant knows that the archive must not undo.
    let mut live = b.db.tenant_tx(tenant).await?;
    let policy_floor = policy::version(&mut live).await?;
    let revoked = api_keys::revoked_ids(&mut live).await?;
    let mut states = Vec::with_capacity(b.hooks.len());
    for hook in b.hooks.iter() {
        states.push(hook.before_replace(&mut live).await?);
    }
    live.commit().await?;

    let staging_schema = SchemaName::for_tenant(Uuid::new_v4());
    let mut tx = b.db.pool.begin().await.map_err(crm_core::db::unavailable)?;
    tx.execute("SET LOCAL statement_timeout = 0").await?;
    let target = Target {
        schema: &staging_schema,
        role: &tenant.schema,
        create_role: false,
    };
    let staged = staging::build(&mut tx, &target, manifest, &unpacked.entries).await?;
    swap(&mut tx, &staging_schema, &tenant.schema).await?;
    set_registry_version(&mut tx, tenant.id, staged.schema_version).await?;
    let mut ttx = TenantTx::enter(tx, tenant, b.db.isolation).await?;
    let files = put_files_back(b, &unpacked).await?;
    policy::bump_version_past(&mut ttx, policy_floor).await?;
    api_keys::revoke_again(&mut ttx, &revoked).await?;
    keys::adopt_data_key(&mut ttx, b.master.as_deref(), None).await?;
    let restored = finish(b, &mut ttx, manifest, &staged, files, Some(&states)).await?;
    audit::record(
        &mut ttx,
        actor,
        "backup.restored",
        Some(("backup", backup.id.to_string())),
        serde_json::json!({
            "into": "same_tenant",
            "backup_created_at": manifest.created_at,
            "from_schema_version": manifest.schema_version,
            "schema_version": staged.schema_version,
            "rows": staged.rows,
        }),
    )
    .await?;
    ttx.commit().await?;
    Ok(restored)
}

/// Tables a same-tenant restore keeps from the live schema.
fn kept_tables() -> Vec<&'static str> {
    let mut kept = REGISTER_TABLES.to_vec();
    kept.push(audit::LOG_TABLE);
    kept
}

/// The staged schema takes the live one's place (and its kept tables).
async fn swap(conn: &mut PgConnection, staging: &SchemaName, live: &SchemaName) -> Result<()> {
    let live_tables = super::catalog::tables(conn, live.as_str()).await?;
    let mut sql = String::new();
    for table in kept_tables() {
        if live_tables.contains_key(table) {
            let t = quoted(table);
            sql.push_str(&format!(
                "DROP TABLE IF EXISTS \"{staging}\".{t}; ALTER TABLE \"{live}\".{t} SET SCHEMA \"{staging}\"; "
            ));
        }
    }
    sql.push_str(&format!(
        "DROP SCHEMA \"{live}\" CASCADE; ALTER SCHEMA \"{staging}\" RENAME TO \"{live}\"; \
         SET LOCAL search_path = \"{live}\", public;"
    ));
    conn.execute(sqlx::raw_sql(&sql)).await?;
    Ok(())
}

async fn set_registry_version(conn: &mut PgConnection, id: Uuid, version: i32) -> Result<()> {
    sqlx::query(
        "UPDATE platform.tenants SET schema_version = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Steps both restores share, in the restored tenant's transaction.
async fn finish(
    b: &Backups,
    tx: &mut TenantTx,
    manifest: &Manifest,
    staged: &Staged,
    files: usize,
    replaced: Option<&[serde_json::Value]>,
) -> Result<Restored> {
    // Sessions revoked since the backup would be alive again: everyone signs in anew.
    sessions::revoke_everyone(tx).await?;
    jobs::wake_pending(tx).await?;
    for (n, hook) in b.hooks.iter().enumerate() {
        hook.after_restore(tx, replaced.and_then(|states| states.get(n)))
            .await?;
    }
    let tenant = tx.tenant().clone();
    Ok(Restored {
        tenant_id: tenant.id,
        slug: tenant.slug,
        from_tenant: manifest.tenant.id,
        backup_created_at: manifest.created_at,
        from_schema_version: manifest.schema_version,
        schema_version: staged.schema_version,
        tables: staged.tables,
        rows: staged.rows,
        files,
    })
}

/// A new tenant's files: each archived file stored under a new key of the tenant's, and
/// every file column rewritten to the new keys. Returns how many files were stored.
async fn copy_files_to(b: &Backups, tx: &mut TenantTx, unpacked: &Unpacked) -> Result<usize> {
    let tenant = tx.tenant().id;
    let mut old = Vec::new();
    let mut new = Vec::new();
    let mut stored = 0;
    for file in &unpacked.manifest.files {
        let key = StoredKey::generate(tenant);
        if let Some(path) = file.entry.as_ref().and_then(|e| unpacked.entries.get(e)) {
            b.files
                .put_file(&key, "application/octet-stream", path)
                .await?;
            stored += 1;
        }
        old.push(file.key.clone());
        new.push(key.as_str().to_owned());
    }
    if old.is_empty() {
        return Ok(0);
    }
    let schema = tx.tenant().schema.as_str().to_owned();
    let described = super::catalog::tables(tx.conn(), &schema).await?;
    for fc in b.file_columns.iter() {
        let present = described
            .get(fc.table)
            .is_some_and(|cols| cols.iter().any(|c| c.name == fc.column));
        if !present {
            continue;
        }
        sqlx::query(&format!(
            "UPDATE {t} SET {c} = m.new FROM unnest($1::text[], $2::text[]) AS m(old, new) \
             WHERE {t}.{c} = m.old",
            t = quoted(fc.table),
            c = quoted(fc.column)
        ))
        .bind(&old)
        .bind(&new)
        .execute(tx.conn())
        .await?;
    }
    Ok(stored)
}

/// A same-tenant restore's files go back under their own keys (ones deleted since the backup
/// come back; the others are rewritten with the same bytes).
async fn put_files_back(b: &Backups, unpacked: &Unpacked) -> Result<usize> {
    let mut stored = 0;
    for file in &unpacked.manifest.files {
        let owner = unpacked.manifest.tenant.id;
        let (Some(key), Some(path)) = (
            StoredKey::parse(&file.key).filter(|k| k.belongs_to(owner)),
            file.entry.as_ref().and_then(|e| unpacked.entries.get(e)),
        ) else {
            continue;
        };
        b.files
            .put_file(&key, "application/octet-stream", path)
            .await?;
        stored += 1;
    }
    Ok(stored)
}
