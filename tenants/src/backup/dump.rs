//! Taking a backup: one REPEATABLE READ, READ ONLY tenant transaction (a consistent snapshot
//! of every table), each table copied out to a file of the working directory while hashing,
//! the referenced stored files fetched, the manifest written, the archive assembled and
//! streamed to the file store under a new key of the tenant's.

use super::ledger::Taken;
use super::manifest::{
    quoted, DataKeyInfo, FileEntry, Manifest, TableEntry, TenantInfo, FORMAT, FORMAT_VERSION,
};
use super::{archive, catalog, Backups, REGISTER_TABLES};
use base64::Engine;
use chrono::Utc;
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::files::StoredKey;
use crm_core::{keys, Error, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::Executor;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Takes a backup of `tenant` (whose display name is `name`) and stores the archive.
pub async fn take(b: &Backups, tenant: &TenantCtx, name: &str) -> Result<Taken> {
    let scratch = b.scratch()?;
    let dir = scratch.path();
    let mut tx = b.db.tenant_tx(tenant).await?;
    tx.conn()
        .execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL statement_timeout = 0",
        )
        .await?;
    let (mut manifest, mut entries) = snapshot(b, &mut tx, name, dir).await?;
    manifest.files = fetch_files(b, &mut tx, dir, &mut entries).await?;
    // Read-only: nothing to commit, but ending it cleanly returns the connection at once.
    tx.commit().await?;
    let out = dir.join("archive.tar.zst");
    let (size_bytes, sha256) = {
        let manifest = manifest.clone();
        let out = out.clone();
        super::blocking(move || archive::write(&manifest, &entries, &out)).await?
    };
    let key = StoredKey::generate(tenant.id);
    b.files.put_file(&key, archive::CONTENT_TYPE, &out).await?;
    Ok(Taken {
        key,
        size_bytes,
        sha256,
        schema_version: manifest.schema_version,
        summary: manifest.summary(),
    })
}

/// The manifest (without files) and the table entries, read in the snapshot.
async fn snapshot(
    b: &Backups,
    tx: &mut TenantTx,
    name: &str,
    dir: &Path,
) -> Result<(Manifest, Vec<(String, PathBuf)>)> {
    let tenant = tx.tenant().clone();
    let schema = tenant.schema.as_str().to_owned();
    let schema_version: i32 = sqlx::query_scalar("SELECT version FROM _schema_version")
        .fetch_one(tx.conn())
        .await?;
    let described = catalog::tables(tx.conn(), &schema).await?;
    let mut tables = Vec::new();
    let mut entries = Vec::new();
    std::fs::create_dir_all(dir.join("data"))
        .map_err(|e| Error::internal(format!("creating the working directory: {e}")))?;
    for (n, (table, columns)) in described.into_iter().enumerate() {
        if REGISTER_TABLES.contains(&table.as_str()) || !super::manifest::is_identifier(&table) {
            continue;
        }
        let mut entry = TableEntry {
            name: table,
            columns,
            rows: 0,
            entry: format!("data/{n:04}.copy"),
            bytes: 0,
            sha256: String::new(),
        };
        let path = dir.join(format!("data-{n:04}.copy"));
        copy_out(tx, &mut entry, &path).await?;
        entries.push((entry.entry.clone(), path));
        tables.push(entry);
    }
    let constraints = catalog::constraints(tx.conn(), &schema)
        .await?
        .into_iter()
        .filter(|c| !REGISTER_TABLES.contains(&c.table.as_str()))
        .collect();
    let indexes = catalog::indexes(tx.conn(), &schema)
        .await?
        .into_iter()
        .filter(|i| !REGISTER_TABLES.contains(&i.table.as_str()))
        .collect();
    let sequences = catalog::sequences(tx.conn(), &schema).await?;
    let data_key = keys::wrapped_data_key(tx)
        .await?
        .map(|wrapped| DataKeyInfo {
            wrapped: base64::engine::general_purpose::STANDARD.encode(wrapped),
            master_key_fingerprint: b.master.as_ref().map(|m| m.fingerprint()),
        });
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        tenant: TenantInfo {
            id: tenant.id,
            slug: tenant.slug.clone(),
            name: name.to_owned(),
            schema,
        },
        schema_version,
        created_at: Utc::now(),
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        tables,
        constraints,
        indexes,
        sequences,
        files: Vec::new(),
        data_key,
    };
    Ok((manifest, entries))
}

/// Copies one table out to `path` (text format: one line per row), counting and hashing.
async fn copy_out(tx: &mut TenantTx, entry: &mut TableEntry, path: &Path) -> Result<()> {
    let columns: Vec<String> = entry.copied_columns().map(|c| quoted(&c.name)).collect();
    let sql = format!(
        "COPY {} ({}) TO STDOUT",
        quoted(&entry.name),
        columns.join(", ")
    );
    let local = |e: std::io::Error| Error::internal(format!("writing {}: {e}", path.display()));
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(path).await.map_err(local)?);
    let mut hasher = Sha256::new();
    let mut stream = tx.conn().copy_out_raw(&sql).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        entry.rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        entry.bytes += chunk.len() as u64;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    entry.sha256 = hex::encode(hasher.finalize());
    Ok(())
}

/// The distinct stored keys the tenant's rows hold in the declared file columns.
pub(crate) async fn referenced_keys(b: &Backups, tx: &mut TenantTx) -> Result<Vec<String>> {
    let schema = tx.tenant().schema.as_str().to_owned();
    let described = catalog::tables(tx.conn(), &schema).await?;
    let mut keys = Vec::new();
    for fc in b.file_columns.iter() {
        let present = described
            .get(fc.table)
            .is_some_and(|cols| cols.iter().any(|c| c.name == fc.column));
        if !present {
            continue;
        }
        let found: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY 1",
            c = quoted(fc.column),
            t = quoted(fc.table)
        ))
        .fetch_all(tx.conn())
        .await?;
        keys.extend(found);
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Fetches every referenced file of the tenant into the working directory.
async fn fetch_files(
    b: &Backups,
    tx: &mut TenantTx,
    dir: &Path,
    entries: &mut Vec<(String, PathBuf)>,
) -> Result<Vec<FileEntry>> {
    let tenant = tx.tenant().id;
    let mut files = Vec::new();
    for (n, raw) in referenced_keys(b, tx).await?.into_iter().enumerate() {
        let Some(key) = StoredKey::parse(&raw).filter(|k| k.belongs_to(tenant)) else {
            tracing::warn!(tenant = %tenant, key = %raw, "a file column holds a key that is not the tenant's; not backed up");
            continue;
        };
        let path = dir.join(format!("file-{n:06}"));
        match b.files.get_to_file(&key, &path).await {
            Ok(_) => {
                let name = format!("files/{n:06}");
                let hashed = path.clone();
                let (bytes, sha256) = super::blocking(move || archive::sha256_of(&hashed)).await?;
                entries.push((name.clone(), path));
                files.push(FileEntry {
                    key: raw,
                    entry: Some(name),
                    bytes,
                    sha256: Some(sha256),
                });
            }
            Err(e) if e.code() == "file.not_found" => files.push(FileEntry {
                key: raw,
                entry: None,
                bytes: 0,
                sha256: None,
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}
