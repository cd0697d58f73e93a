//! Installs: a package at work in this tenant, with its config (checked against the
//! manifest's schema), secrets (sealed under the tenant's data key, never shown back),
//! grants (only what the manifest asks for and never more than the installing admin holds),
//! allowed hosts and limits (within the platform's maxima). An install acts as its own
//! principal, `p:<install id>`.

use crate::calls::InstallCtx;
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::packages::{self, Package};
use crate::service::PluginHost;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Grants, Permission};
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::error::FieldError;
use crm_core::{keys, Error, Result};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::FromRow;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// An install as the API shows it (secrets by name only).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Install {
    pub id: Uuid,
    pub package_id: Uuid,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub enabled: bool,
    pub config: Value,
    pub secret_keys: Vec<String>,
    pub grants: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub events: Vec<String>,
    #[sqlx(json)]
    pub limits: Limits,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "i.id, i.package_id, p.name, p.version, p.wit_version, i.enabled, i.config, \
    i.secret_keys, i.grants, i.allowed_hosts, i.events, i.limits, i.consecutive_failures, \
    i.disabled_reason, i.created_by, i.created_at, i.updated_at";
const FROM: &str = "plugin_installs i JOIN plugin_packages p ON p.id = i.package_id";

/// What an admin sends to install a package.
#[derive(Debug, Clone, Default)]
pub struct NewInstall {
    pub package_id: Uuid,
    pub config: Value,
    pub secrets: BTreeMap<String, String>,
    pub grants: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub limits: Option<Limits>,
}

/// A change to an install; `None` leaves a part as it is. A secret set to `None` is removed.
#[derive(Debug, Clone, Default)]
pub struct InstallPatch {
    pub enabled: Option<bool>,
    pub config: Option<Value>,
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    pub grants: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub limits: Option<Limits>,
    /// Another version of the same plugin (an upgrade or a downgrade).
    pub package_id: Option<Uuid>,
}

fn not_found() -> Error {
    Error::not_found(
        "plugin.install_not_found",
        "no such plugin install; list them with GET /api/v1/plugins/installs",
    )
}

fn secrets_aad(id: Uuid) -> Vec<u8> {
    format!("plugin_installs.secrets:{id}").into_bytes()
}

/// Grants named as permissions: each one a permission the manifest asks for, none beyond
/// what `caller` holds.
fn check_grants(caller: &Caller, manifest: &Manifest, grants: &[String]) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    let mut perms = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        match Permission::parse(g) {
            None => errors.push(FieldError::new(
                format!("grants[{i}]"),
                "unknown",
                format!("'{g}' is not a permission"),
            )),
            Some(_) if !manifest.permissions.contains(g) => errors.push(FieldError::new(
                format!("grants[{i}]"),
                "not_requested",
                format!(
                    "the plugin does not ask for {g}; it asks for: {}",
                    if manifest.permissions.is_empty() {
                        "nothing".to_owned()
                    } else {
                        manifest.permissions.join(", ")
                    }
                ),
            )),
            Some(p) => perms.push(p),
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    caller
        .grants
        .ensure_may_grant(&Grants::of_role(perms, &BTreeMap::new()))?;
    let set: BTreeSet<String> = grants.iter().cloned().collect();
    Ok(set.into_iter().collect())
}

fn check_hosts(hosts: &[String]) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !name.starts_with(['.', '-'])
            && !name.ends_with(['.', '-']);
        if !ok {
            errors.push(FieldError::new(
                format!("allowed_hosts[{i}]"),
                "invalid",
                format!("'{h}' is not a host name like hooks.example.com or *.example.com (no scheme, port or path)"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    let set: BTreeSet<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    Ok(set.into_iter().collect())
}

fn check_limits(host: &PluginHost, limits: Limits) -> Result<Limits> {
    if let Some((name, asked, allowed)) = limits.exceeds(&host.platform.max) {
        return Err(Error::invalid_field(
            format!("limits.{name}"),
            "too_high",
            format!("{asked} is above the platform's maximum of {allowed}"),
        ));
    }
    Ok(limits)
}

async fn data_key(tx: &mut TenantTx, master: Option<&MasterKey>) -> Result<DataKey> {
    keys::data_key(tx, master, true)
        .await?
        .ok_or_else(|| Error::internal("the tenant data key could not be created"))
}

fn seal(key: &DataKey, id: Uuid, secrets: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(secrets).map_err(|e| Error::internal(e.to_string()))?;
    key.encrypt(&plain, &secrets_aad(id))
        .map_err(|e| Error::internal(format!("sealing plugin secrets: {e}")))
}

fn open(key: &DataKey, id: Uuid, sealed: &[u8]) -> Result<BTreeMap<String, String>> {
    let plain = key
        .decrypt(sealed, &secrets_aad(id))
        .map_err(|e| Error::internal(format!("opening plugin secrets: {e}")))?;
    serde_json::from_slice(&plain).map_err(|e| Error::internal(e.to_string()))
}

async fn package_for(tx: &mut TenantTx, id: Uuid) -> Result<Package> {
    packages::find(tx, id).await?.ok_or_else(|| {
        Error::invalid_field(
            "package_id",
            "unknown",
            "no such package; upload it first (POST /api/v1/plugins/packages)",
        )
    })
}

/// Installs a package.
pub async fn create(
    host: &PluginHost,
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    new: NewInstall,
) -> Result<Install> {
    caller.require(Permission::PluginsManage)?;
    let package = package_for(tx, new.package_id).await?;
    let config = if new.config.is_null() {
        json!({})
    } else {
        new.config
    };
    package.manifest.check_config(&config)?;
    let grants = check_grants(caller, &package.manifest, &new.grants)?;
    let hosts = check_hosts(&new.allowed_hosts)?;
    let limits = check_limits(host, new.limits.unwrap_or(host.platform.defaults))?;
    let id = Uuid::now_v7();
    let sealed = if new.secrets.is_empty() {
        None
    } else {
        let key = data_key(tx, host.master.as_deref()).await?;
        Some(seal(&key, id, &new.secrets)?)
    };
    let secret_keys: Vec<String> = new.secrets.keys().cloned().collect();
    sqlx::query(
        "INSERT INTO plugin_installs (id, package_id, config, secrets, secret_keys, grants, allowed_hosts, events, limits, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(package.id)
    .bind(&config)
    .bind(sealed)
    .bind(&secret_keys)
    .bind(&grants)
    .bind(&hosts)
    .bind(&package.manifest.events)
    .bind(Json(limits))
    .bind(caller.user_id)
    .execute(tx.conn())
    .await?;
    if !package.manifest.endpoints.is_empty() {
        endpoints_changed(tx).await?;
    }
    audit::record(
        tx,
        actor,
        "plugin.installed",
        Some(("plugin_install", id.to_string())),
        json!({ "package": package.name, "version": package.version, "grants": grants, "allowed_hosts": hosts }),
    )
    .await?;
    find(tx, id).await?.ok_or_else(not_found)
}

pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Install>> {
    caller.require(Permission::PluginsManage)?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {FROM} ORDER BY i.created_at"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// An enabled install with its package's manifest.
#[derive(FromRow)]
struct ServedRow {
    #[sqlx(flatten)]
    install: Install,
    #[sqlx(json)]
    manifest: Manifest,
}

/// The enabled installs and their manifests, oldest first: what the tenant's OpenAPI
/// document and GraphQL schema describe. Unchecked, because it only describes; every call
/// still passes [`crate::endpoints::open`].
pub async fn served(tx: &mut TenantTx) -> Result<Vec<(Install, Manifest)>> {
    if !tables_ready(tx).await? {
        return Ok(Vec::new());
    }
    let rows: Vec<ServedRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, p.manifest FROM {FROM} WHERE i.enabled ORDER BY i.created_at, i.id"
    ))
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| (r.install, r.manifest)).collect())
}

/// Whether the tenant's schema has the plugin tables (version 16): a tenant one version
/// behind keeps working without plugins until it is upgraded. Once seen, remembered per
/// process (schemas only move forward), so the check costs a query once per tenant.
pub async fn tables_ready(tx: &mut TenantTx) -> Result<bool> {
    static READY: std::sync::OnceLock<std::sync::Mutex<lru::LruCache<Uuid, ()>>> =
        std::sync::OnceLock::new();
    let ready = READY.get_or_init(|| {
        std::sync::Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(100_000).unwrap_or(std::num::NonZeroUsize::MIN),
        ))
    });
    let tenant = tx.tenant().id;
    if ready.lock().is_ok_and(|mut r| r.get(&tenant).is_some()) {
        return Ok(true);
    }
    let present: bool = sqlx::query_scalar("SELECT to_regclass('plugin_installs') IS NOT NULL")
        .fetch_one(tx.conn())
        .await?;
    if present {
        if let Ok(mut r) = ready.lock() {
            r.put(tenant, ());
        }
    }
    Ok(present)
}

/// Per-tenant caches of what installs serve (the GraphQL schema's `ext` fields) key on the
/// metadata version: an install whose endpoints appear or go bumps it.
pub(crate) async fn endpoints_changed(tx: &mut TenantTx) -> Result<()> {
    crm_records::fields::bump_metadata_version(tx).await
}

pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Install> {
    caller.require(Permission::PluginsManage)?;
    find(tx, id).await?.ok_or_else(not_found)
}

pub(crate) async fn find(tx: &mut TenantTx, id: Uuid) -> Result<Option<Install>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM {FROM} WHERE i.id = $1"))
            .bind(id)
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// The enabled installs `plugin` names: an install id, or a plugin (package) name.
pub(crate) async fn enabled_of(tx: &mut TenantTx, plugin: &str) -> Result<Vec<Uuid>> {
    let as_id = Uuid::parse_str(plugin).ok();
    Ok(sqlx::query_scalar(
        "SELECT i.id FROM plugin_installs i JOIN plugin_packages p ON p.id = i.package_id \
         WHERE i.enabled AND (i.id = $1 OR p.name = $2) ORDER BY i.created_at",
    )
    .bind(as_id)
    .bind(plugin)
    .fetch_all(tx.conn())
    .await?)
}

/// Changes an install. Re-enabling clears its failure count.
pub async fn update(
    host: &PluginHost,
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    patch: InstallPatch,
) -> Result<Install> {
    caller.require(Permission::PluginsManage)?;
    // Locked for the change; its sealed secrets come with the lock.
    let sealed = sealed_secrets(tx, id, true).await?.ok_or_else(not_found)?;
    let current = find(tx, id).await?.ok_or_else(not_found)?;
    let package = match patch.package_id {
        Some(pid) => {
            let p = package_for(tx, pid).await?;
            if p.name != current.name {
                return Err(Error::invalid_field(
                    "package_id",
                    "other_plugin",
                    format!(
                        "that package is '{}', not '{}'; install it separately",
                        p.name, current.name
                    ),
                ));
            }
            p
        }
        None => package_for(tx, current.package_id).await?,
    };
    let config = patch.config.unwrap_or(current.config.clone());
    package.manifest.check_config(&config)?;
    let grants = check_grants(
        caller,
        &package.manifest,
        patch.grants.as_deref().unwrap_or(&current.grants),
    )?;
    let hosts = match &patch.allowed_hosts {
        Some(h) => check_hosts(h)?,
        None => current.allowed_hosts.clone(),
    };
    let limits = check_limits(host, patch.limits.unwrap_or(current.limits))?;
    if let Some(changes) = &patch.secrets {
        let key = data_key(tx, host.master.as_deref()).await?;
        let mut secrets = match sealed {
            Some(s) => open(&key, id, &s)?,
            None => BTreeMap::new(),
        };
        for (k, v) in changes {
            match v {
                Some(v) => secrets.insert(k.clone(), v.clone()),
                None => secrets.remove(k),
            };
        }
        let keys_now: Vec<String> = secrets.keys().cloned().collect();
        sqlx::query("UPDATE plugin_installs SET secrets = $2, secret_keys = $3 WHERE id = $1")
            .bind(id)
            .bind(seal(&key, id, &secrets)?)
            .bind(&keys_now)
            .execute(tx.conn())
            .await?;
    }
    let enabled = patch.enabled.unwrap_or(current.enabled);
    let reenabled = enabled && !current.enabled;
    sqlx::query(
        "UPDATE plugin_installs SET package_id = $2, enabled = $3, config = $4, grants = $5, \
         allowed_hosts = $6, events = $7, limits = $8, updated_at = now(), \
         consecutive_failures = CASE WHEN $9 THEN 0 ELSE consecutive_failures END, \
         disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(package.id)
    .bind(enabled)
    .bind(&config)
    .bind(&grants)
    .bind(&hosts)
    .bind(&package.manifest.events)
    .bind(Json(limits))
    .bind(reenabled)
    .execute(tx.conn())
    .await?;
    if enabled != current.enabled || package.id != current.package_id {
        endpoints_changed(tx).await?;
    }
    audit::record(
        tx,
        actor,
        "plugin.install_updated",
        Some(("plugin_install", id.to_string())),
        json!({
            "version": package.version,
            "enabled": enabled,
            "grants": grants,
            "allowed_hosts": hosts,
            "secrets_changed": patch.secrets.map(|s| s.keys().cloned().collect::<Vec<_>>()),
        }),
    )
    .await?;
    find(tx, id).await?.ok_or_else(not_found)
}

/// An install's sealed secrets (`None`: no install; `Some(None)`: no secrets), the row
/// locked for a change when `lock`.
async fn sealed_secrets(
    tx: &mut TenantTx,
    id: Uuid,
    lock: bool,
) -> Result<Option<Option<Vec<u8>>>> {
    let sql = if lock {
        "SELECT secrets FROM plugin_installs WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT secrets FROM plugin_installs WHERE id = $1"
    };
    Ok(sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

/// Uninstalls: the install, its key/value data and its run log.
pub async fn delete(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::PluginsManage)?;
    let current = find(tx, id).await?.ok_or_else(not_found)?;
    sqlx::query("DELETE FROM plugin_installs WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    if current.enabled {
        endpoints_changed(tx).await?;
    }
    audit::record(
        tx,
        actor,
        "plugin.uninstalled",
        Some(("plugin_install", id.to_string())),
        json!({ "package": current.name, "version": current.version }),
    )
    .await?;
    Ok(())
}

/// An install ready to run: its context (secrets opened) and its package.
pub(crate) struct Runnable {
    pub install: Install,
    pub package: Package,
    pub ctx: InstallCtx,
}

/// Loads an install for a call (unchecked: the caller of the host decided it may run).
pub(crate) async fn runnable(
    host: &PluginHost,
    tx: &mut TenantTx,
    id: Uuid,
) -> Result<Option<Runnable>> {
    let Some(install) = find(tx, id).await? else {
        return Ok(None);
    };
    let package = package_for(tx, install.package_id).await?;
    let sealed = sealed_secrets(tx, id, false).await?.flatten();
    let secrets = match sealed {
        Some(s) => {
            // Not `create`: that would lock the settings row for the whole call.
            let key = keys::data_key(tx, host.master.as_deref(), false)
                .await?
                .ok_or_else(|| Error::internal("the tenant data key is missing"))?;
            open(&key, id, &s)?
        }
        None => BTreeMap::new(),
    };
    let permissions: Vec<Permission> = install
        .grants
        .iter()
        .filter_map(|g| Permission::parse(g))
        .collect();
    let ctx = InstallCtx {
        id,
        name: install.name.clone(),
        grants: Grants::of_role(permissions, &BTreeMap::new()),
        config: install.config.clone(),
        secrets,
        allowed_hosts: install.allowed_hosts.clone(),
        limits: install.limits.within(&host.platform.max),
    };
    Ok(Some(Runnable {
        install,
        package,
        ctx,
    }))
}
