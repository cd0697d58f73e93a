//! [`PluginHost`]: what the server holds to run plugins (the runtime, the database, the keys,
//! the outbound client, the platform limits), and one call of an install from start to run
//! log: load the compiled package, build the call's environment, call, log, count failures
//! (an install failing [`PlatformLimits::disable_after_failures`] times in a row is disabled
//! and the admin who installed it notified).

use crate::calls::{CallEnv, InstallCtx, TenantAccess};
use crate::host::HostState;
use crate::installs::Runnable;
use crate::limits::PlatformLimits;
use crate::packages::{self, Package};
use crate::runs::{self, NewRun};
use crate::runtime::{CallError, CallStats, Loaded, Runtime};
use chrono::Utc;
use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::notifications::{self, NewNotification};
use crm_core::outbound::Outbound;
use crm_core::{Error, Result};
use crm_workflows::RuleEngine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server's plugin host.
#[derive(Clone)]
pub struct PluginHost {
    pub runtime: Runtime,
    pub db: Db,
    pub master: Option<Arc<MasterKey>>,
    pub outbound: Outbound,
    pub platform: PlatformLimits,
    /// `[objects] max_fields`, for `ensure-field`.
    pub max_fields: i64,
    /// Carries out the actions `on-event` returns.
    pub rules: RuleEngine,
    /// Per-install gates of [`PlatformLimits::concurrent_calls_per_install`].
    pub gates: Gates,
}

/// One semaphore per install seen recently (bounded: a forgotten install's gate is made
/// again when it is next called).
#[derive(Clone)]
pub struct Gates(Arc<Mutex<lru::LruCache<uuid::Uuid, Arc<Semaphore>>>>);

impl Default for Gates {
    fn default() -> Self {
        let capacity = std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN);
        Gates(Arc::new(Mutex::new(lru::LruCache::new(capacity))))
    }
}

impl Gates {
    fn of(&self, install: uuid::Uuid, permits: usize) -> Arc<Semaphore> {
        match self.0.lock() {
            Ok(mut m) => m
                .get_or_insert(install, || Arc::new(Semaphore::new(permits.max(1))))
                .clone(),
            Err(_) => Arc::new(Semaphore::new(permits.max(1))),
        }
    }
}

impl PluginHost {
    /// A slot to call `install`, waiting at most `wait`; 503 `plugin.busy` when none frees.
    pub(crate) async fn slot(
        &self,
        install: uuid::Uuid,
        wait: std::time::Duration,
    ) -> Result<OwnedSemaphorePermit> {
        let gate = self
            .gates
            .of(install, self.platform.concurrent_calls_per_install);
        match tokio::time::timeout(wait, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::Busy {
                code: "plugin.busy",
                message: format!(
                    "the plugin install already runs {} calls; try again shortly",
                    self.platform.concurrent_calls_per_install
                ),
                retry_after_secs: 1,
            }),
        }
    }

    /// The compiled package, reading its bytes in `tx` only when no cache holds it.
    pub(crate) async fn loaded(&self, tx: &mut TenantTx, package: &Package) -> Result<Arc<Loaded>> {
        let bytes = if self.runtime.is_loaded(&package.sha256) {
            Vec::new()
        } else {
            packages::wasm(tx, package.id).await?
        };
        self.runtime
            .load(&package.sha256, async move { Ok(bytes) })
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "plugin {} {} cannot be loaded: {e}",
                    package.name, package.version
                ))
            })
    }

    /// The environment of one call of `install` in `tenant`.
    pub(crate) fn env(
        &self,
        tenant: &TenantCtx,
        install: InstallCtx,
        request_id: String,
    ) -> Arc<CallEnv> {
        Arc::new(CallEnv {
            install,
            tenant: Some(TenantAccess {
                db: self.db.clone(),
                tenant: tenant.clone(),
                master: self.master.clone(),
                max_fields: self.max_fields,
            }),
            outbound: self.outbound.clone(),
            request_id,
            offline_kv: Mutex::new(BTreeMap::new()),
        })
    }

    pub(crate) fn state(&self, env: Arc<CallEnv>) -> HostState {
        HostState::for_install(env)
    }
}

/// The run log's error for a failed call.
pub(crate) fn error_json(e: &CallError) -> Value {
    json!({ "code": e.code(), "message": e.message() })
}

/// Logs a call and counts failures in a row; disables the install after too many and tells
/// the admin who installed it. Returns the run id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn settle(
    host: &PluginHost,
    tenant: &TenantCtx,
    run: &Runnable,
    trigger: Value,
    started_at: chrono::DateTime<Utc>,
    stats: &CallStats,
    error: Option<Value>,
    actions: Value,
) -> Result<i64> {
    // A transaction of its own: a failed event job rolls its own back, the log stays.
    let mut tx = host.db.tenant_tx(tenant).await?;
    let failed = error.is_some();
    crate::stats::record(
        run.install.id,
        trigger["kind"].as_str().unwrap_or_default(),
        failed,
        stats,
    );
    let id = runs::log(
        &mut tx,
        NewRun {
            install_id: run.install.id,
            trigger,
            started_at,
            stats,
            error: error.clone(),
            actions,
        },
    )
    .await?;
    let failures: i32 = sqlx::query_scalar(
        "UPDATE plugin_installs SET consecutive_failures = CASE WHEN $2 THEN consecutive_failures + 1 ELSE 0 END \
         WHERE id = $1 RETURNING consecutive_failures",
    )
    .bind(run.install.id)
    .bind(failed)
    .fetch_one(tx.conn())
    .await?;
    let limit = host.platform.disable_after_failures;
    if failed && limit > 0 && failures >= limit {
        let reason = format!(
            "disabled after {failures} failed runs in a row; the last: {}",
            error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("unknown")
        );
        let disabled: bool = sqlx::query_scalar(
            "UPDATE plugin_installs SET enabled = false, disabled_reason = $2, updated_at = now() \
             WHERE id = $1 AND enabled RETURNING true",
        )
        .bind(run.install.id)
        .bind(&reason)
        .fetch_optional(tx.conn())
        .await?
        .unwrap_or(false);
        if disabled {
            // Its endpoints leave the tenant's GraphQL schema and OpenAPI document.
            crate::installs::endpoints_changed(&mut tx).await?;
        }
        if let (true, Some(admin)) = (disabled, run.install.created_by) {
            let title = format!(
                "Plugin {} was disabled / 插件 {} 已停用",
                run.install.name, run.install.name
            );
            notifications::create(
                &mut tx,
                NewNotification {
                    user_id: admin,
                    kind: "plugin.disabled",
                    title: &title,
                    body: Some(&reason),
                    record: None,
                    job_id: None,
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(id)
}
