//! What callers do with rules, checked against their [`Caller`]: `workflows:manage` reads,
//! saves, deletes and runs rules (saves are audited, and [`rules`] checks the run-as role);
//! the company-wide workflow settings are read with `workflows:manage` and changed with
//! `tenant:manage`.

use super::executor::{self, RuleEngine, RunRequest};
use super::rules::{self, Rule, RuleInput, RuleRun, RuleVersion};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::context::Page;
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::{keys, outbound};
use crm_records::{engine, CallerScope, Visibility};
use serde_json::json;
use uuid::Uuid;

/// Live rules, oldest first.
pub async fn list(
    tx: &mut TenantTx,
    caller: &Caller,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Rule>> {
    caller.require(Permission::WorkflowsManage)?;
    rules::list(tx, cursor, limit).await
}

/// One live rule.
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Rule> {
    caller.require(Permission::WorkflowsManage)?;
    rules::get(tx, id).await
}

/// Creates a rule (version 1).
pub async fn create(
    tx: &mut TenantTx,
    engine: &RuleEngine,
    caller: &Caller,
    actor: &Actor,
    input: RuleInput,
) -> Result<Rule> {
    let rule = rules::create(tx, &engine.pool, caller, input).await?;
    let detail = json!({ "name": rule.name });
    audit::record(
        tx,
        actor,
        "rule.created",
        Some(("rule", rule.id.to_string())),
        detail,
    )
    .await?;
    Ok(rule)
}

/// Replaces a rule: a new version.
pub async fn update(
    tx: &mut TenantTx,
    engine: &RuleEngine,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    input: RuleInput,
) -> Result<Rule> {
    let rule = rules::update(tx, &engine.pool, caller, id, input).await?;
    let detail = json!({ "version": rule.version, "enabled": rule.enabled });
    audit::record(
        tx,
        actor,
        "rule.updated",
        Some(("rule", rule.id.to_string())),
        detail,
    )
    .await?;
    Ok(rule)
}

/// Deletes a rule: it stops firing; versions and runs stay.
pub async fn delete(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::WorkflowsManage)?;
    rules::delete(tx, id).await?;
    audit::record(
        tx,
        actor,
        "rule.deleted",
        Some(("rule", id.to_string())),
        json!({}),
    )
    .await
}

/// A rule's versions, newest first.
pub async fn versions(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Vec<RuleVersion>> {
    caller.require(Permission::WorkflowsManage)?;
    rules::versions(tx, id).await
}

/// A rule's run log, newest first.
pub async fn runs(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<RuleRun>> {
    caller.require(Permission::WorkflowsManage)?;
    rules::runs(tx, id, cursor, limit).await
}

/// Runs rule `id` on one live record now, whatever its trigger (its condition still
/// applies). The record must be one the caller sees; a disabled rule is 409 `rule.disabled`.
/// The run acts as the rule's own run-as role, as every run does.
pub async fn run_now(
    tx: &mut TenantTx,
    engine_: &RuleEngine,
    caller: &Caller,
    id: Uuid,
    record_id: Uuid,
) -> Result<RuleRun> {
    caller.require(Permission::WorkflowsManage)?;
    let rule = rules::get(tx, id).await?;
    if !rule.enabled {
        return Err(Error::conflict(
            "rule.disabled",
            "the rule is turned off; enable it first (PUT with enabled: true)",
        ));
    }
    let version_id = rule
        .version_id
        .ok_or_else(|| Error::internal("rule without a version"))?;
    let version = rules::version(tx, version_id).await?;
    let object = version.object_key()?;
    let scope = caller.record_scope(object);
    engine::ensure_visible(tx, object, scope, record_id, Visibility::Live).await?;
    executor::run(
        engine_,
        tx,
        RunRequest {
            version: &version,
            record_id: Some(record_id),
            changes: None,
            trigger: json!({ "kind": "manual", "user_id": caller.user_id }),
            key: format!("v{version_id}:m{}", Uuid::now_v7()),
            depth: 0,
            fresh: true,
        },
    )
    .await
}

/// Fewest failed runs in a row that may turn a rule off.
pub const MIN_FAILURE_LIMIT: i32 = 1;
/// Most failed runs in a row a company may allow before a rule is turned off.
pub const MAX_FAILURE_LIMIT: i32 = 1000;
/// Longest webhook host name, in characters (without a leading `*.`).
pub const MAX_HOST_LEN: usize = 253;
/// Longest label (dot-separated part) of a webhook host name.
pub const MAX_HOST_LABEL_LEN: usize = 63;

/// The company's workflow settings: webhook allow-list and failure limit.
pub async fn settings(tx: &mut TenantTx, caller: &Caller) -> Result<(Vec<String>, i32)> {
    caller.require(Permission::WorkflowsManage)?;
    rules::settings(tx).await
}

/// Replaces the workflow settings (`tenant:manage`): hosts are lower-cased, checked, sorted
/// and deduplicated; the failure limit is 1–1000. Returns the hosts as stored.
pub async fn set_settings(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    hosts: &[String],
    failure_limit: i32,
) -> Result<Vec<String>> {
    caller.require(Permission::TenantManage)?;
    let mut hosts: Vec<String> = hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = hosts.iter().find(|h| !valid_host(h)) {
        return Err(Error::invalid_field(
            "webhook_hosts",
            "invalid_host",
            format!("'{bad}' is not a host name; write hooks.example.com or *.example.com"),
        ));
    }
    hosts.sort();
    hosts.dedup();
    if !(MIN_FAILURE_LIMIT..=MAX_FAILURE_LIMIT).contains(&failure_limit) {
        return Err(Error::invalid_field(
            "failure_limit",
            "out_of_range",
            format!("between {MIN_FAILURE_LIMIT} and {MAX_FAILURE_LIMIT}"),
        ));
    }
    rules::set_settings(tx, &hosts, failure_limit).await?;
    audit::record(
        tx,
        actor,
        "settings.workflows_updated",
        None,
        json!({ "webhook_hosts": hosts, "failure_limit": failure_limit }),
    )
    .await?;
    Ok(hosts)
}

/// The associated data webhook secrets are sealed with.
const WEBHOOK_SECRET_AAD: &[u8] = b"tc-crm webhook secret v1";

/// Creates or replaces the secret rule webhooks are signed with (`tenant:manage`), sealed
/// under the tenant's data key, and returns it: the only time it is shown. Audited.
pub async fn rotate_webhook_secret(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    master: Option<&MasterKey>,
) -> Result<String> {
    caller.require(Permission::TenantManage)?;
    let key = keys::data_key(tx, master, true)
        .await?
        .ok_or_else(|| Error::internal("no data key after creating one"))?;
    let secret = outbound::new_signing_secret();
    let sealed = key
        .encrypt(secret.as_bytes(), WEBHOOK_SECRET_AAD)
        .map_err(|e| Error::internal(format!("sealing the webhook secret: {e}")))?;
    sqlx::query("UPDATE settings SET webhook_secret = $1, updated_at = now()")
        .bind(sealed)
        .execute(tx.conn())
        .await?;
    audit::record(
        tx,
        actor,
        "settings.webhook_secret_rotated",
        None,
        json!({}),
    )
    .await?;
    Ok(secret)
}

/// The tenant's webhook signing secret, if an admin created one.
pub(crate) async fn webhook_secret(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
) -> Result<Option<String>> {
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT webhook_secret FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let key = keys::data_key(tx, master, false)
        .await?
        .ok_or_else(|| Error::internal("the webhook secret is sealed but there is no data key"))?;
    let plain = key
        .decrypt(&sealed, WEBHOOK_SECRET_AAD)
        .map_err(|e| Error::internal(format!("cannot open the webhook secret: {e}")))?;
    Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
}

/// `hooks.example.com` or `*.example.com`: labels of letters, digits and hyphens.
pub fn valid_host(h: &str) -> bool {
    let h = h.strip_prefix("*.").unwrap_or(h);
    !h.is_empty()
        && h.len() <= MAX_HOST_LEN
        && h.contains('.')
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= MAX_HOST_LABEL_LEN
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}
