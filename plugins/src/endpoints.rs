//! Plugin endpoints, `/api/v1/ext/{install}/{path}`: [`open`] checks, in the caller's request
//! transaction, that the install is enabled, declares the endpoint, and that the caller holds
//! the endpoint's declared permission; [`call`] then runs `handle-request` (after that
//! transaction ended: the plugin's own host calls use transactions of their own) and logs
//! the run.

use crate::installs::{self, Runnable};
use crate::manifest::Endpoint;
use crate::runtime::{CallError, Loaded, RequestIn, ResponseOut};
use crate::service::{error_json, settle, PluginHost};
use chrono::Utc;
use crm_core::authz::{Caller, Permission};
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::{Error, Result};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// An endpoint call the caller may make.
pub struct Opened {
    run: Runnable,
    loaded: Arc<Loaded>,
    endpoint: Endpoint,
}

fn no_endpoint() -> Error {
    Error::not_found(
        "plugin.endpoint_not_found",
        "no such plugin endpoint; the install's package lists its endpoints (GET /api/v1/plugins/installs/{id})",
    )
}

/// Checks the call in the caller's transaction.
pub async fn open(
    host: &PluginHost,
    tx: &mut TenantTx,
    caller: &Caller,
    install: Uuid,
    method: &str,
    path: &str,
) -> Result<Opened> {
    let Some(run) = installs::runnable(host, tx, install).await? else {
        return Err(no_endpoint());
    };
    let endpoint = run
        .package
        .manifest
        .endpoint(method, path)
        .cloned()
        .ok_or_else(no_endpoint)?;
    let permission = Permission::parse(&endpoint.permission)
        .ok_or_else(|| Error::internal("a stored manifest names an unknown permission"))?;
    caller.require(permission)?;
    if !run.install.enabled {
        return Err(Error::conflict(
            "plugin.disabled",
            format!(
                "the plugin install is disabled{}; an administrator can enable it",
                run.install
                    .disabled_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let loaded = host.loaded(tx, &run.package).await?;
    Ok(Opened {
        run,
        loaded,
        endpoint,
    })
}

/// What an endpoint call produced: the plugin's response, or why there is none.
pub type Answer = std::result::Result<ResponseOut, CallError>;

/// Runs the call and logs it.
pub async fn call(
    host: &PluginHost,
    tenant: &TenantCtx,
    opened: Opened,
    request: RequestIn,
    request_id: String,
) -> Result<Answer> {
    let _slot = host
        .slot(opened.run.install.id, std::time::Duration::from_millis(200))
        .await?;
    let env = host.env(tenant, opened.run.ctx.clone(), request_id.clone());
    let started_at = Utc::now();
    let trigger = json!({
        "kind": "request",
        "method": opened.endpoint.method,
        "path": opened.endpoint.path,
        "user_id": request.user_id,
        "request_id": request_id,
    });
    let (result, stats) = host
        .runtime
        .handle_request(&opened.loaded, host.state(env), request)
        .await;
    let (error, actions) = match &result {
        Ok(r) => (
            None,
            json!([{ "response": { "status": r.status, "bytes": r.body.len() } }]),
        ),
        Err(e) => (Some(error_json(e)), json!([])),
    };
    settle(
        host,
        tenant,
        &opened.run,
        trigger,
        started_at,
        &stats,
        error,
        actions,
    )
    .await?;
    Ok(result)
}
