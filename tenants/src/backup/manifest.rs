//! The archive's `manifest.json`: what a tenant backup holds and how to check it. Format
//! version 1: the tenant it was taken of, its schema version, every table (columns as the
//! catalog described them, row count, entry, SHA-256), the constraints, indexes and sequence
//! positions of the schema, the stored files the tenant referenced, and its wrapped data key.
//!
//! Names read back from a manifest become SQL identifiers on restore, so [`Manifest::check`]
//! accepts only the shape every name of ours has (`[a-z_][a-z0-9_]*`, at most 63 bytes).

use chrono::{DateTime, Utc};
use crm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What [`Manifest::format`] must say.
pub const FORMAT: &str = "tc-crm-tenant-backup";
/// The manifest layout this server writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's entry name, first in every archive.
pub const MANIFEST_ENTRY: &str = "manifest.json";

/// Everything a restore needs to know about an archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tenant: TenantInfo,
    /// The tenant's `_schema_version` when the backup was taken.
    pub schema_version: i32,
    pub created_at: DateTime<Utc>,
    /// The `crm` version that wrote it.
    pub app_version: String,
    pub tables: Vec<TableEntry>,
    pub constraints: Vec<ConstraintDef>,
    pub indexes: Vec<IndexDef>,
    pub sequences: Vec<SequenceState>,
    pub files: Vec<FileEntry>,
    /// The tenant's data key as stored (wrapped by the master key), if it had one.
    pub data_key: Option<DataKeyInfo>,
}

/// The tenant the backup was taken of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantInfo {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// Its schema name: definitions read from the catalog may be qualified with it.
    pub schema: String,
}

/// One table: its columns and its data (`COPY … TO STDOUT` text format).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub rows: u64,
    pub entry: String,
    pub bytes: u64,
    pub sha256: String,
}

impl TableEntry {
    /// The columns the data holds (generated columns are computed, not copied).
    pub fn copied_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.generated.is_none())
    }
}

/// A column as the catalog described it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// `format_type` of its type, e.g. `text[]`, `numeric(12,2)`.
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (always) or `d` (by default) for identity columns.
    pub identity: Option<String>,
    /// The expression of a stored generated column.
    pub generated: Option<String>,
}

/// A table constraint (`pg_get_constraintdef`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConstraintDef {
    pub table: String,
    pub name: String,
    /// `p`, `u`, `f`, `c` or `x`.
    pub kind: String,
    pub definition: String,
}

/// An index that backs no constraint (`pg_get_indexdef`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexDef {
    pub table: String,
    pub name: String,
    pub definition: String,
}

/// Where a sequence stood.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SequenceState {
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// A stored file the tenant referenced (an attachment's bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// The `StoredKey` the tenant's rows hold.
    pub key: String,
    /// `None` when the store had no object under the key when the backup was taken.
    pub entry: Option<String>,
    pub bytes: u64,
    pub sha256: Option<String>,
}

/// The tenant's wrapped data key and which master key wrapped it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataKeyInfo {
    /// Base64 of the wrapped key (61 bytes), as `settings` holds it.
    pub wrapped: String,
    /// Fingerprint of the master key that wrapped it, when the server had one.
    pub master_key_fingerprint: Option<String>,
}

/// Whether `name` has the shape of our table, column, constraint, index and sequence names.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// `"name"`, for a name [`is_identifier`] accepted.
pub fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn refuse(message: String) -> Error {
    Error::bad_request("backup.invalid_archive", message)
}

impl Manifest {
    /// Refuses a manifest this server cannot restore, or with a name that is not one of ours.
    pub fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(refuse(format!(
                "this is not a TC CRM tenant backup (format '{}')",
                self.format
            )));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(refuse(format!(
                "backup format version {} is not supported (this server reads version {FORMAT_VERSION})",
                self.format_version
            )));
        }
        let latest = crate::migrations::latest_tenant_version();
        if !(1..=latest).contains(&self.schema_version) {
            return Err(Error::bad_request(
                "backup.schema_too_new",
                format!(
                    "the backup is of schema version {}; this server knows versions up to {latest}: \
                     restore it with a newer server",
                    self.schema_version
                ),
            ));
        }
        if crm_core::db::SchemaName::parse(&self.tenant.schema).is_none() {
            return Err(refuse(format!(
                "malformed schema name '{}'",
                self.tenant.schema
            )));
        }
        let names = self
            .tables
            .iter()
            .flat_map(|t| std::iter::once(&t.name).chain(t.columns.iter().map(|c| &c.name)))
            .chain(self.constraints.iter().flat_map(|c| [&c.table, &c.name]))
            .chain(self.indexes.iter().flat_map(|i| [&i.table, &i.name]))
            .chain(self.sequences.iter().map(|s| &s.name));
        for name in names {
            if !is_identifier(name) {
                return Err(refuse(format!("unexpected name '{name}' in the manifest")));
            }
        }
        Ok(())
    }

    /// Row counts per table, for the register and the API.
    pub fn summary(&self) -> serde_json::Value {
        let rows: serde_json::Map<String, serde_json::Value> = self
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.rows.into()))
            .collect();
        serde_json::json!({
            "format_version": self.format_version,
            "schema_version": self.schema_version,
            "tables": self.tables.len(),
            "rows": rows,
            "files": self.files.iter().filter(|f| f.entry.is_some()).count(),
            "files_missing": self.files.iter().filter(|f| f.entry.is_none()).count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_ours_only() {
        for good in [
            "customers",
            "cf_vip_level",
            "_schema_version",
            "o_policies",
            "a1",
        ] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            "Customers",
            "1abc",
            "a-b",
            "a\"b",
            "a;drop",
            "x y",
            "名字",
            &"a".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}
