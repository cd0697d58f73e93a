//! `/plugins`: packages (upload a .wasm component, list, delete), installs (config, secrets,
//! grants, allowed hosts, limits; enable, disable, upgrade, uninstall) and each install's run
//! log. Everything needs `plugins:manage`, checked by `crm_plugins`.

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::{Created, NoContent};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::Error;
use crm_plugins::installs::{self, Install, InstallPatch, NewInstall};
use crm_plugins::packages::{self, Package};
use crm_plugins::{runs, Limits};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload as FilePart;
use poem_openapi::{Multipart, Object, OpenApi, Tags};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Tags)]
enum PluginTag {
    /// WebAssembly plugins: packages, installs, runs.
    Plugins,
}

pub struct PluginsApi(pub AppState);

/// A multipart/form-data upload of a component.
#[derive(Multipart)]
pub struct PackageForm {
    /// The .wasm component.
    file: Option<FilePart>,
}

/// An endpoint a plugin serves at /api/v1/ext/{install}/{path}.
#[derive(Object)]
pub struct EndpointOut {
    pub method: String,
    pub path: String,
    /// What a caller must hold.
    pub permission: String,
    pub summary: String,
}

/// What the plugin's describe() said.
#[derive(Object)]
pub struct ManifestOut {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Event patterns: `customers.created`, `customers.*`, `*`.
    pub events: Vec<String>,
    pub endpoints: Vec<EndpointOut>,
    /// JSON Schema of an install's config (null for none).
    pub config_schema: Option<Value>,
    /// Permissions it asks to be granted.
    pub permissions: Vec<String>,
}

impl From<crm_plugins::Manifest> for ManifestOut {
    fn from(m: crm_plugins::Manifest) -> Self {
        ManifestOut {
            config_schema: serde_json::from_str(&m.config_schema).ok(),
            name: m.name,
            version: m.version,
            description: m.description,
            events: m.events,
            endpoints: m
                .endpoints
                .into_iter()
                .map(|e| EndpointOut {
                    method: e.method,
                    path: e.path,
                    permission: e.permission,
                    summary: e.summary,
                })
                .collect(),
            permissions: m.permissions,
        }
    }
}

#[derive(Object)]
pub struct PackageOut {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    /// The crm:plugin WIT version it targets: `1.0.0`, `1.1.0`.
    pub wit_version: String,
    pub sha256: String,
    pub size: i32,
    pub manifest: ManifestOut,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<Package> for PackageOut {
    fn from(p: Package) -> Self {
        PackageOut {
            id: p.id,
            name: p.name,
            version: p.version,
            wit_version: p.wit_version,
            sha256: p.sha256,
            size: p.size,
            manifest: p.manifest.into(),
            created_by: p.created_by,
            created_at: p.created_at,
        }
    }
}

/// An install's limits; any left out take the platform's defaults.
#[derive(Object, Default)]
pub struct LimitsIo {
    pub memory_mb: Option<u32>,
    pub fuel: Option<u64>,
    pub request_ms: Option<u64>,
    pub event_ms: Option<u64>,
    pub input_bytes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub log_bytes: Option<u64>,
    pub http_requests: Option<u32>,
    pub http_ms: Option<u64>,
    pub http_bytes: Option<u64>,
    pub kv_bytes: Option<u64>,
}

impl LimitsIo {
    fn over(self, base: Limits) -> Limits {
        let size =
            |v: Option<u64>, d: usize| v.map_or(d, |v| usize::try_from(v).unwrap_or(usize::MAX));
        Limits {
            memory_mb: self.memory_mb.unwrap_or(base.memory_mb),
            fuel: self.fuel.unwrap_or(base.fuel),
            request_ms: self.request_ms.unwrap_or(base.request_ms),
            event_ms: self.event_ms.unwrap_or(base.event_ms),
            input_bytes: size(self.input_bytes, base.input_bytes),
            output_bytes: size(self.output_bytes, base.output_bytes),
            log_bytes: size(self.log_bytes, base.log_bytes),
            http_requests: self.http_requests.unwrap_or(base.http_requests),
            http_ms: self.http_ms.unwrap_or(base.http_ms),
            http_bytes: size(self.http_bytes, base.http_bytes),
            kv_bytes: size(self.kv_bytes, base.kv_bytes),
        }
    }

    fn of(l: Limits) -> Self {
        LimitsIo {
            memory_mb: Some(l.memory_mb),
            fuel: Some(l.fuel),
            request_ms: Some(l.request_ms),
            event_ms: Some(l.event_ms),
            input_bytes: Some(l.input_bytes as u64),
            output_bytes: Some(l.output_bytes as u64),
            log_bytes: Some(l.log_bytes as u64),
            http_requests: Some(l.http_requests),
            http_ms: Some(l.http_ms),
            http_bytes: Some(l.http_bytes as u64),
            kv_bytes: Some(l.kv_bytes as u64),
        }
    }
}

#[derive(Object)]
pub struct InstallOut {
    pub id: Uuid,
    pub package_id: Uuid,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub enabled: bool,
    pub config: Value,
    /// Names of the secrets set (values are never shown).
    pub secret_keys: Vec<String>,
    pub grants: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub events: Vec<String>,
    pub limits: LimitsIo,
    pub consecutive_failures: i32,
    #[oai(skip_serializing_if_is_none)]
    pub disabled_reason: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Install> for InstallOut {
    fn from(i: Install) -> Self {
        InstallOut {
            id: i.id,
            package_id: i.package_id,
            name: i.name,
            version: i.version,
            wit_version: i.wit_version,
            enabled: i.enabled,
            config: i.config,
            secret_keys: i.secret_keys,
            grants: i.grants,
            allowed_hosts: i.allowed_hosts,
            events: i.events,
            limits: LimitsIo::of(i.limits),
            consecutive_failures: i.consecutive_failures,
            disabled_reason: i.disabled_reason,
            created_by: i.created_by,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Object)]
pub struct CreateInstallRequest {
    pub package_id: Uuid,
    /// Checked against the package's config schema.
    pub config: Option<Value>,
    /// Stored encrypted; read by the plugin with secret-get, never shown back.
    #[oai(default)]
    pub secrets: BTreeMap<String, String>,
    /// Permissions given to the install (only ones its manifest asks for, none you lack).
    #[oai(default)]
    pub grants: Vec<String>,
    /// Hosts http-fetch may reach: `hooks.example.com`, `*.example.com`.
    #[oai(default)]
    pub allowed_hosts: Vec<String>,
    pub limits: Option<LimitsIo>,
}

#[derive(Object)]
pub struct PatchInstallRequest {
    pub enabled: Option<bool>,
    pub config: Option<Value>,
    /// Secrets to set; a null value removes that secret.
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    pub grants: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub limits: Option<LimitsIo>,
    /// Another uploaded version of the same plugin: upgrade (or downgrade) to it.
    pub package_id: Option<Uuid>,
}

#[derive(Object)]
pub struct RunOut {
    pub id: i64,
    /// What started it: `{"kind": "event", "event": …}` or `{"kind": "request", …}`.
    pub trigger: Value,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub fuel_used: i64,
    /// Largest linear memory, bytes.
    pub memory_peak: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<Value>,
    /// The actions carried out (events) or the response sent (requests).
    pub actions: Value,
    pub logs: String,
}

#[derive(Object)]
pub struct RunPage {
    pub items: Vec<RunOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

fn required_file() -> ApiError {
    Error::invalid_field(
        "file",
        "required",
        "send the .wasm component as a multipart/form-data part named 'file'",
    )
    .into()
}

#[OpenApi(tag = "PluginTag::Plugins")]
impl PluginsApi {
    /// Upload a plugin package (`plugins:manage`; multipart/form-data, part `file`: a
    /// WebAssembly component targeting crm:plugin 1.0 or 1.1). It is compiled and its
    /// describe() called before it is stored: 422 `plugin.invalid` says why one is refused,
    /// 409 `plugin.exists` when that name and version are already uploaded, 413
    /// `plugin.too_large` above `[plugins] package_bytes` (20 MiB).
    #[oai(path = "/plugins/packages", method = "post")]
    async fn upload(&self, auth: Auth, form: PackageForm) -> ApiResult<Created<PackageOut>> {
        let part = form.file.ok_or_else(required_file)?;
        let bytes = part.into_vec().await.map_err(|e| {
            ApiError::from(Error::internal(format!("reading the upload failed: {e}")))
        })?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let p =
            packages::upload(&self.0.plugins, &mut tx, &caller, &Actor::of(&ctx), bytes).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(p.into())))
    }

    /// Uploaded packages.
    #[oai(path = "/plugins/packages", method = "get")]
    async fn packages(&self, auth: Auth) -> ApiResult<Json<Vec<PackageOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = packages::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(PackageOut::from).collect()))
    }

    /// One package.
    #[oai(path = "/plugins/packages/:id", method = "get")]
    async fn package(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<PackageOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = packages::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Delete a package no install uses (409 `plugin.in_use` otherwise).
    #[oai(path = "/plugins/packages/:id", method = "delete")]
    async fn delete_package(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        packages::delete(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Install a package (`plugins:manage`): its config (checked against its schema),
    /// secrets (sealed), grants (what it may do as its own principal: only permissions its
    /// manifest asks for and you hold, else 422 / 403 `auth.escalation`), allowed hosts and
    /// limits (within the platform's maxima). It starts enabled.
    #[oai(path = "/plugins/installs", method = "post")]
    async fn install(
        &self,
        auth: Auth,
        body: Json<CreateInstallRequest>,
    ) -> ApiResult<Created<InstallOut>> {
        let b = body.0;
        let defaults = self.0.plugins.platform.defaults;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let i = installs::create(
            &self.0.plugins,
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            NewInstall {
                package_id: b.package_id,
                config: b.config.unwrap_or(Value::Null),
                secrets: b.secrets,
                grants: b.grants,
                allowed_hosts: b.allowed_hosts,
                limits: b.limits.map(|l| l.over(defaults)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(i.into())))
    }

    /// Installs.
    #[oai(path = "/plugins/installs", method = "get")]
    async fn installs(&self, auth: Auth) -> ApiResult<Json<Vec<InstallOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = installs::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(InstallOut::from).collect()))
    }

    /// One install.
    #[oai(path = "/plugins/installs/:id", method = "get")]
    async fn get_install(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<InstallOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let i = installs::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(i.into()))
    }

    /// Change an install: enable or disable it, its config, secrets, grants, allowed hosts
    /// or limits, or move it to another version of its plugin. Enabling resets its failure
    /// count.
    #[oai(path = "/plugins/installs/:id", method = "patch")]
    async fn patch_install(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PatchInstallRequest>,
    ) -> ApiResult<Json<InstallOut>> {
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let base = installs::get(&mut tx, &caller, id.0).await?.limits;
        let i = installs::update(
            &self.0.plugins,
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            id.0,
            InstallPatch {
                enabled: b.enabled,
                config: b.config,
                secrets: b.secrets,
                grants: b.grants,
                allowed_hosts: b.allowed_hosts,
                limits: b.limits.map(|l| l.over(base)),
                package_id: b.package_id,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Json(i.into()))
    }

    /// Uninstall: the install, its key/value data and its run log are removed.
    #[oai(path = "/plugins/installs/:id", method = "delete")]
    async fn uninstall(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        installs::delete(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The install's runs, newest first: trigger, time, fuel, memory peak, outcome, error,
    /// actions and logs.
    #[oai(path = "/plugins/installs/:id/runs", method = "get")]
    async fn runs(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        after: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<RunPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = runs::list(
            &mut tx,
            &caller,
            id.0,
            after.0.as_deref(),
            limit.0.unwrap_or(50),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(RunPage {
            items: page
                .items
                .into_iter()
                .map(|r| RunOut {
                    id: r.id,
                    trigger: r.trigger,
                    started_at: r.started_at,
                    duration_ms: r.duration_us as f64 / 1000.0,
                    fuel_used: r.fuel_used,
                    memory_peak: r.memory_peak,
                    outcome: r.outcome,
                    error: r.error,
                    actions: r.actions,
                    logs: r.logs,
                })
                .collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
