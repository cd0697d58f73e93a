//! Packages: uploaded components, checked before they are stored — a component the host can
//! compile, exporting a supported `crm:plugin/handler` version, importing nothing the host
//! lacks, whose `describe()` returns a well-formed manifest. Stored per tenant
//! (`plugin_packages`), compiled once per content hash.

use crate::manifest::Manifest;
use crate::service::PluginHost;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::unique_violation;
use crm_core::{Error, Result};
use serde::Serialize;
use serde_json::json;
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

/// A stored package (without its bytes).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Package {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub sha256: String,
    pub size: i32,
    #[sqlx(json)]
    pub manifest: Manifest,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, name, version, wit_version, sha256, size, manifest, created_by, created_at";

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid {
        code: "plugin.invalid",
        message: message.into(),
        fields: Vec::new(),
    }
}

fn not_found() -> Error {
    Error::not_found(
        "plugin.package_not_found",
        "no such plugin package; list them with GET /api/v1/plugins/packages",
    )
}

/// Checks and stores an uploaded component. Compiling happens here (cached by hash), so a
/// package that is stored is one the host can run.
pub async fn upload(
    host: &PluginHost,
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    bytes: Vec<u8>,
) -> Result<Package> {
    caller.require(Permission::PluginsManage)?;
    if !host.platform.tenant_uploads {
        return Err(Error::forbidden(
            "plugin.uploads_disabled",
            "this platform does not let tenants upload plugins; ask the platform operator",
        ));
    }
    if bytes.is_empty() {
        return Err(invalid("the file is empty; upload a .wasm component"));
    }
    if bytes.len() > host.platform.package_bytes {
        return Err(Error::Invalid {
            code: "plugin.too_large",
            message: format!(
                "the package is {} bytes; the limit is {} bytes",
                bytes.len(),
                host.platform.package_bytes
            ),
            fields: Vec::new(),
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(invalid("not a WebAssembly file (no \\0asm header)"));
    }
    let sha256 = crate::runtime::sha256_hex(&bytes);
    let source = bytes.clone();
    let loaded = host
        .runtime
        .load(&sha256, async move { Ok(source) })
        .await
        .map_err(invalid)?;
    let manifest = host
        .runtime
        .describe(&loaded)
        .await
        .map_err(|e| invalid(format!("describe() failed ({}): {}", e.code(), e.message())))?;
    manifest.validate()?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query_as::<_, Package>(&format!(
        "INSERT INTO plugin_packages (id, name, version, wit_version, sha256, size, manifest, wasm, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&manifest.name)
    .bind(&manifest.version)
    .bind(loaded.wit.as_str())
    .bind(&sha256)
    .bind(bytes.len() as i32)
    .bind(Json(&manifest))
    .bind(&bytes)
    .bind(caller.user_id)
    .fetch_one(tx.conn())
    .await;
    let package = match inserted {
        Ok(p) => p,
        Err(e) if unique_violation(&e).is_some() => {
            return Err(Error::conflict(
                "plugin.exists",
                format!(
                "{} {} is already uploaded; raise the version in describe() to upload a new build",
                manifest.name, manifest.version
            ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit::record(
        tx,
        actor,
        "plugin.package_uploaded",
        Some(("plugin_package", package.id.to_string())),
        json!({ "name": package.name, "version": package.version, "sha256": package.sha256 }),
    )
    .await?;
    Ok(package)
}

/// Every package, newest first.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Package>> {
    caller.require(Permission::PluginsManage)?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugin_packages ORDER BY name, created_at DESC"
    ))
    .fetch_all(tx.conn())
    .await?)
}

pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Package> {
    caller.require(Permission::PluginsManage)?;
    find(tx, id).await?.ok_or_else(not_found)
}

/// A package by id, unchecked (for the host's own use).
pub(crate) async fn find(tx: &mut TenantTx, id: Uuid) -> Result<Option<Package>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugin_packages WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// A package's bytes, to compile it when no cache holds it.
pub(crate) async fn wasm(tx: &mut TenantTx, id: Uuid) -> Result<Vec<u8>> {
    sqlx::query_scalar("SELECT wasm FROM plugin_packages WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(not_found)
}

/// Deletes a package no install uses (409 `plugin.in_use` otherwise).
pub async fn delete(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::PluginsManage)?;
    let package = find(tx, id).await?.ok_or_else(not_found)?;
    let used: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plugin_installs WHERE package_id = $1")
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
    if used > 0 {
        return Err(Error::conflict(
            "plugin.in_use",
            format!("{used} install(s) use this package; uninstall or upgrade them first"),
        ));
    }
    sqlx::query("DELETE FROM plugin_packages WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    audit::record(
        tx,
        actor,
        "plugin.package_deleted",
        Some(("plugin_package", id.to_string())),
        json!({ "name": package.name, "version": package.version }),
    )
    .await?;
    Ok(())
}
