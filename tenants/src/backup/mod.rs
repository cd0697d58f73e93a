//! Per-tenant logical backups and restores.
//!
//! A backup (`dump`) is one REPEATABLE READ snapshot of the tenant's whole schema: every
//! table the catalog lists (`catalog`; no table is named here, so custom fields and custom
//! objects come along) copied out with `COPY … TO STDOUT`, the schema's constraints, indexes
//! and sequence positions, its `_schema_version`, its wrapped data key, and the bytes of every
//! stored file its rows reference (the [`FileColumn`]s the binary declares). It is written as
//! a versioned, zstd-compressed tar with a checksummed manifest (`archive`, `manifest`) to the
//! [`FileStore`] under a key of the tenant's, and entered in the tenant's register (`ledger`).
//!
//! A restore (`restore`, `staging`) builds a complete schema from an archive: the versioned
//! DDL at the archive's schema version, what the catalog description adds (custom columns,
//! tables, indexes, constraints), the data (`COPY … FROM STDIN`), the sequences, then the
//! tenant migrations since — so an archive of an older version restores into the current one.
//! Into a new tenant it is provisioning (a new id, role and schema, files copied under keys
//! of the new tenant, policies moved to its domain); into the same tenant the staged schema
//! replaces the live one in one transaction, keeping the register and the schedule.
//! `schedule` runs scheduled backups and prunes them by retention; `jobs` holds the job
//! handlers.

pub mod archive;
pub mod catalog;
pub mod dump;
pub mod jobs;
pub mod ledger;
pub mod manifest;
pub mod restore;
pub mod schedule;
mod staging;

use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantTx};
use crm_core::files::FileStore;
use crm_core::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// The tables of the backup register itself: never archived, kept by a same-tenant restore.
pub const REGISTER_TABLES: &[&str] = &["backups", "backup_schedule"];

/// A column holding [`crm_core::files::StoredKey`]s of the tenant's stored files, declared
/// by the crate that owns the table (the desk's attachments), wired in by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileColumn {
    pub table: &'static str,
    pub column: &'static str,
}

/// What a higher crate does around a restore: read what it needs from the tenant before a
/// same-tenant restore replaces it, then fix up the restored data in the restore's
/// transaction (e.g. move a cache version past every version used before).
#[async_trait::async_trait]
pub trait RestoreHook: Send + Sync {
    /// Reads, from the live tenant, what [`RestoreHook::after_restore`] needs.
    async fn before_replace(&self, _tx: &mut TenantTx) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// Runs after the data is in place, before the restore commits; `replaced` is what
    /// [`RestoreHook::before_replace`] returned (`None` for a restore into a new tenant).
    async fn after_restore(
        &self,
        tx: &mut TenantTx,
        replaced: Option<&serde_json::Value>,
    ) -> Result<()>;
}

/// What backups and restores work with, built once by the binary.
#[derive(Clone)]
pub struct Backups {
    /// The database, without a statement timeout (a large tenant's copy takes a while).
    pub db: Db,
    /// Where archives and the tenant's files live.
    pub files: Arc<dyn FileStore>,
    /// This server's master key (it wraps the tenants' data keys).
    pub master: Option<Arc<MasterKey>>,
    pub file_columns: Arc<Vec<FileColumn>>,
    pub hooks: Arc<Vec<Arc<dyn RestoreHook>>>,
    /// Where archives are assembled and unpacked (a temporary directory per run).
    pub work_dir: PathBuf,
}

impl Backups {
    /// A fresh working directory, removed when dropped.
    pub(crate) fn scratch(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| {
            crm_core::Error::internal(format!(
                "cannot create the backup working directory {}: {e}",
                self.work_dir.display()
            ))
        })?;
        tempfile::Builder::new()
            .prefix("backup-")
            .tempdir_in(&self.work_dir)
            .map_err(|e| {
                crm_core::Error::internal(format!(
                    "cannot create a directory in {}: {e}",
                    self.work_dir.display()
                ))
            })
    }
}

impl Backups {
    /// An archive of the store, opened for reading from a local copy that disappears when
    /// the returned file is closed (downloads stream it); with its size.
    pub async fn open_archive(
        &self,
        key: &crm_core::files::StoredKey,
    ) -> Result<(tokio::fs::File, u64)> {
        let scratch = self.scratch()?;
        let path = scratch.path().join("archive.tar.zst");
        let size = self.files.get_to_file(key, &path).await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| crm_core::Error::internal(format!("opening {}: {e}", path.display())))?;
        // The open file stays readable after its directory is removed (unix).
        drop(scratch);
        Ok((file, size))
    }
}

/// Runs blocking archive work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| crm_core::Error::internal(format!("archive work stopped: {e}")))?
}
